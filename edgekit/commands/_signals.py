"""SIGINT, SIGTERM and SIGHUP as one way to stop a command, and the exit code each gives.

A command whose work leaves state behind (battery-bench: a run on a phone, its settings
changed) stops the same whichever came, and never a second time half-way.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

from edgekit.errors import EXIT_HANGUP, EXIT_INTERRUPTED, EXIT_TERMINATED


class Stop:
    """The signal that stopped the command (SIGINT, SIGTERM or SIGHUP); None while none came."""

    signum: int | None = None

    @property
    def exit_code(self) -> int:
        """130 for Ctrl-C (and none recorded), 143 for SIGTERM, 129 for SIGHUP."""
        return {signal.SIGTERM: EXIT_TERMINATED, signal.SIGHUP: EXIT_HANGUP}.get(
            signal.Signals(self.signum) if self.signum else signal.SIGINT, EXIT_INTERRUPTED
        )


def signal_name(signum: int | None) -> str:
    """How a message names the signal that stopped the command: "interrupted" for Ctrl-C, else its name."""
    return "interrupted" if signum in (None, signal.SIGINT) else f"{signal.Signals(signum).name}"


@contextlib.contextmanager
def stop_signals() -> Iterator[Stop]:
    """SIGTERM and SIGHUP stop the command as Ctrl-C does (a KeyboardInterrupt where the
    main thread is); any signal after the first is ignored, so that a second Ctrl-C cannot
    cut short the stop of the phone's run and the restore of its settings."""
    stop = Stop()

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.signum is not None:
            return
        stop.signum = signum
        raise KeyboardInterrupt

    wanted = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    try:
        previous = {s: signal.signal(s, handler) for s in wanted}
    except ValueError:  # not the main thread (an embedding program): its own handlers stay
        yield stop
        return
    try:
        yield stop
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
