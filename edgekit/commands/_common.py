"""What every command shares: the stderr console (status, progress) and JSON output."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console


def stderr_console() -> Console:
    """A console on a private copy of stderr.

    Conversion sends the process's fd 2 into a log while litert-torch runs; progress
    written through this copy still reaches the user's terminal.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return Console(file=sys.stderr, highlight=False)
    return Console(file=os.fdopen(os.dup(fd), "w", buffering=1), highlight=False)


def print_json(data: Any) -> None:
    """Data for machines: JSON on stdout, one document."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def human_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as file managers show)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
