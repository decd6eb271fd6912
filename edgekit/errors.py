"""Errors edgekit raises. The CLI turns each into one line on stderr and an exit code.

EdgekitError                 root; `exit_code` is what the CLI exits with
├── InputError               bad user input: a path, a flag value, a file's contents
├── DependencyError          an optional part is not installed (e.g. edgekit[convert])
├── ConversionError          litert-torch / litert-lm-builder failed; carries `stage`
│   └── FidelityError        the artifact runs but disagrees with the PyTorch reference
└── DeviceError              a device could not be reached or a command on it failed; carries `serial`
    ├── DeviceUnreachable    no such device, offline, or it does not answer: check cable / network
    ├── DeviceUnauthorized   the phone refused our key: accept the RSA prompt on it
    ├── LinkLost             the connection broke during a command or a copy: reconnect, run again
    ├── CommandFailed        a command on the device exited non-zero; carries `cmd`, `returncode`, `stderr`
    ├── DeviceTimeout        the device did not answer in time
    ├── DeviceBusy           another battery-bench run holds the phone's lock; carries `run_id`
    ├── RunLost              the link to the phone was lost during an attached run; carries `run_id`
    └── RunStillRunning      --collect of a run whose driver is still going; carries `run_id`, `done`

Every DeviceError exits 5 but RunStillRunning (75: nothing failed); the subclasses are for a
caller that acts on the case (reconnect, ask for the RSA prompt), not for the CLI. Given a
serial, a DeviceError writes the `SERIAL: ` prefix itself: messages are written without it.

Exit codes that are no error of this tree (the CLI's):
    EXIT_INTERRUPTED  130   Ctrl-C (SIGINT), once or twice: the same clean stop
    EXIT_TERMINATED   143   SIGTERM (128 + 15)
    EXIT_HANGUP       129   SIGHUP, the terminal went away (128 + 1)
    EXIT_REGRESSION     8   `compare --fail-on-regression`: B is worse than A, or lacks a figure A has
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_HANGUP = 129
EXIT_STILL_RUNNING = 75
"""--collect of a live run: nothing failed, come back later (sysexits' EX_TEMPFAIL)."""
EXIT_REGRESSION = 8
"""`compare --fail-on-regression`: a figure of B is worse than A's beyond the threshold, or
missing from B (a failed run). Its own code, so CI tells a regression from a broken compare."""


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
    """A device was unreachable, refused us, or a command on it failed.

    Given the device's `serial`, the message gets the `SERIAL: ` prefix here, once: a message
    is written without it. `reason` is the message without the prefix."""

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
        super().__init__(message if serial is None else f"{serial}: {message}")
        self.reason = message
        self.serial = serial
        self.cmd = cmd
        self.returncode = returncode
        self.stderr = stderr

    def amend(self, text: str) -> None:
        """Add `text` to the end of the message, for a caller that did something about the
        error (removed a file) and raises it on, its class and fields unchanged."""
        self.reason += text
        self.args = (f"{self.args[0]}{text}", *self.args[1:])


class _Named(Protocol):
    """Anything with a serial: a Device (errors.py imports no device module)."""

    @property
    def serial(self) -> str: ...


class _OnDevice(DeviceError):
    """A DeviceError about one device: built from the device (or its serial) and the message
    without the prefix, it writes the `SERIAL: ` prefix itself (mobly's `DeviceError(ad, msg)`)."""

    def __init__(
        self,
        device: _Named | str,
        message: str,
        *,
        cmd: str | None = None,
        returncode: int | None = None,
        stderr: str | None = None,
    ) -> None:
        serial = device if isinstance(device, str) else device.serial
        super().__init__(message, serial=serial, cmd=cmd, returncode=returncode, stderr=stderr)


class DeviceUnreachable(_OnDevice):
    """The device is not there, offline, or does not answer a connection: the message says what to check."""


class DeviceUnauthorized(_OnDevice):
    """The phone has not accepted this computer's adb key: accept the RSA prompt on the phone."""


class LinkLost(_OnDevice):
    """The connection to the device broke during a command or a copy."""


class CommandFailed(_OnDevice):
    """A command on the device (or a copy to or from it) failed: `cmd`, `returncode`, `stderr` say how."""


class DeviceTimeout(_OnDevice):
    """The device did not answer within the time allowed."""


class DeviceBusy(DeviceError):
    """Another battery-bench run (`run_id`) holds the phone: the message names it and what to do."""

    def __init__(self, message: str, *, serial: str | None = None, run_id: str) -> None:
        super().__init__(message, serial=serial)
        self.run_id = run_id


class RunStillRunning(DeviceError):
    """--collect of run `run_id` while its driver still runs: `done` conversations of `total` so far."""

    exit_code = EXIT_STILL_RUNNING

    def __init__(self, message: str, *, serial: str | None = None, run_id: str, done: int, total: int) -> None:
        super().__init__(message, serial=serial)
        self.run_id = run_id
        self.done = done
        self.total = total


class RunLost(DeviceError):
    """The link to the phone was lost during attached run `run_id`: the run goes on there and
    restores the phone's settings when it ends; the message says how to collect it."""

    def __init__(self, serial: str, run_id: str, cause: EdgekitError) -> None:
        super().__init__(
            f"{without_serial(cause, serial)}; run {run_id} goes on on the phone, "
            "which restores its own settings when it ends: "
            f"once the phone is back, `edgekit battery-bench --device {serial} --collect {run_id}` "
            "(`edgekit runs` lists it)",
            serial=serial,
        )
        self.run_id = run_id


def without_serial(error: BaseException, serial: str) -> str:
    """`error`'s message for a line that names `serial` already: a DeviceError of that device
    without its serial in front, any other error as it reads."""
    return error.reason if isinstance(error, DeviceError) and error.serial == serial else str(error)
