"""Output: everything a command shows, in one object (hatch's `Application` for display).

Data goes to stdout (human lines, or one JSON document with --json); status, progress,
notes, the ✓/✗ lines and the error line go to the user's stderr, which still reaches the
terminal while a conversion sends fd 2 into a log (`_capture.captured_output`).
"""

from __future__ import annotations

import json
import math
import sys
import time
from contextlib import AbstractContextManager
from typing import IO, Any, cast

import click
from rich.console import Console, RenderableType
from rich.progress import Progress, ProgressColumn
from rich.text import Text

from edgekit._capture import TerminalStderr

_STAGE_LABELS = {
    "load": "load checkpoint",
    "vocab": "trim vocabulary",
    "export": "export (litert-torch)",
    "quantize": "quantize",
    "bundle": "bundle",
    "verify": "verify against PyTorch",
}


class Output:
    """The stdout and stderr consoles of one command and its --json mode (`json`).

    Opens no file descriptor: stdout is `sys.stdout` as it is at each print (so test
    runners' capture sees it), stderr the user's terminal."""

    def __init__(self, *, json: bool = False) -> None:
        self.json = json
        self.stdout = Console(highlight=False, soft_wrap=True)
        # A text stream in all but its static type (rich takes `IO[str]`).
        self.stderr = Console(file=cast(IO[str], TerminalStderr()), highlight=False)

    # stdout: data

    def print(self, *objects: RenderableType, **options: Any) -> None:
        """Human output on stdout (rich: markup on unless `markup=False`; no wrapping unless `soft_wrap=False`)."""
        self.stdout.print(*objects, **options)

    def echo(self, text: str = "", *, nl: bool = True) -> None:
        """`text` on stdout as it is (no markup, no wrapping)."""
        click.echo(text, nl=nl)

    def data(self, data: Any) -> None:
        """Data for machines: JSON on stdout, one document (a figure that is not a finite number is null)."""
        sys.stdout.write(json.dumps(_finite(data), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n")
        sys.stdout.flush()

    # stderr: what the command is doing, and what went wrong

    def say(self, text: str) -> None:
        """One plain line on stderr, as it is (no markup), never wrapped."""
        self.stderr.print(text, markup=False, highlight=False, soft_wrap=True)

    def status(self, text: str) -> AbstractContextManager[object]:
        """A spinner with `text` on stderr while the block runs."""
        return self.stderr.status(text)

    def progress(self, *columns: str | ProgressColumn) -> Progress:
        """Progress bars on stderr, gone when done."""
        return Progress(*columns, console=self.stderr, transient=True)

    def stages(self) -> StageProgress:
        """A conversion's stages (convert's `progress`): a spinner while one runs, a ✓ line when it ends."""
        return StageProgress(self)

    def ok(self, text: str) -> None:
        """`✓ TEXT` on stderr, the mark green."""
        self.stderr.print(Text.assemble(("✓", "green"), f" {text}"), soft_wrap=True)

    def note(self, text: str, *, label: str = "note") -> None:
        """`note: TEXT` (or `LABEL: TEXT`) on stderr, the label yellow, on one line."""
        self.stderr.print(Text.assemble((f"{label}:", "yellow"), f" {text}"), soft_wrap=True)

    def failed(self, name: str, error: object) -> None:
        """`✗ NAME: ERROR` in red on stderr, on one line: one device's (or run's) failure among several."""
        self.stderr.print(Text(f"✗ {name}: {error}", style="red"), soft_wrap=True)

    def error(self, message: str) -> None:
        """`edgekit: error: MESSAGE` in red on stderr, on one line: how every command reports an error."""
        one_line = " ".join(message.splitlines())
        self.stderr.print(Text(f"edgekit: error: {one_line}", style="red"), soft_wrap=True)


class StageProgress:
    """Renders stage start/done events: a spinner while a stage runs, a ✓ line when it ends."""

    def __init__(self, output: Output) -> None:
        self._output = output
        self._status: Any = None
        self._started: dict[str, float] = {}

    def __call__(self, stage: str, event: str) -> None:
        label = _STAGE_LABELS.get(stage, stage)
        if event == "start":
            self._started[stage] = time.perf_counter()
            self.stop()
            self._status = self._output.stderr.status(f"{label}…")
            self._status.start()
        else:
            self.stop()
            elapsed = time.perf_counter() - self._started.get(stage, time.perf_counter())
            self._output.ok(f"{label:<24} {elapsed:7.1f} s")

    def stop(self) -> None:
        """End the spinner of a stage that did not finish (the conversion failed)."""
        if self._status is not None:
            self._status.stop()
            self._status = None


def _finite(data: Any) -> Any:
    """`data` with every NaN or infinite float as None: JSON has no such numbers (RFC 8259)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data
