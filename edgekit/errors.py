"""Errors edgekit raises. The CLI turns each into one line on stderr and an exit code.

EdgekitError                 root; `exit_code` is what the CLI exits with
├── InputError               bad user input: a path, a flag value, a file's contents
├── DependencyError          an optional part is not installed (e.g. edgekit[convert])
├── ConversionError          litert-torch / litert-lm-builder failed; carries `stage`
│   └── FidelityError        the artifact runs but disagrees with the PyTorch reference
└── DeviceError              a device could not be reached or a command on it failed
"""

from __future__ import annotations

from pathlib import Path


class EdgekitError(Exception):
    """Root of every error edgekit raises on purpose."""

    exit_code = 1


class InputError(EdgekitError):
    """Bad input from the user: the message says what is wrong and what to do."""

    exit_code = 2

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.path = path


class DependencyError(EdgekitError):
    """An optional dependency is missing; the message names the extra to install."""

    exit_code = 3


class ConversionError(EdgekitError):
    """Conversion failed in `stage` (load, export, quantize, bundle, verify)."""

    exit_code = 4

    def __init__(self, message: str, *, stage: str) -> None:
        super().__init__(message)
        self.stage = stage


class FidelityError(ConversionError):
    """The converted artifact does not agree with the PyTorch reference well enough."""

    def __init__(self, message: str) -> None:
        super().__init__(message, stage="verify")


class DeviceError(EdgekitError):
    """A device was unreachable, refused us, or a command on it failed."""

    exit_code = 5

    def __init__(
        self,
        message: str,
        *,
        serial: str | None = None,
        cmd: str | None = None,
        returncode: int | None = None,
        stderr: str | None = None,
    ) -> None:
        super().__init__(message)
        self.serial = serial
        self.cmd = cmd
        self.returncode = returncode
        self.stderr = stderr
