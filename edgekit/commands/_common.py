"""What every command shares: the stderr console (status, progress) and JSON output."""

from __future__ import annotations

import json
import sys
from typing import IO, Any, cast

from rich import filesize
from rich.console import Console

from edgekit._capture import TerminalStderr


def stderr_console() -> Console:
    """A console for status and progress on the user's stderr.

    While a conversion sends the process's fd 2 into a log (`_capture.captured_output`),
    it still reaches the terminal. Opens no file descriptor.
    """
    # A text stream in all but its static type (rich takes `IO[str]`).
    return Console(file=cast(IO[str], TerminalStderr()), highlight=False)


def print_json(data: Any) -> None:
    """Data for machines: JSON on stdout, one document."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def human_bytes(n: int) -> str:
    """1234567 -> '1.2 MB' (rich.filesize.decimal: decimal units, as file managers show)."""
    return filesize.decimal(n)
