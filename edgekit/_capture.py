"""Process-wide state a command line may take over, and a library call does not by default.

litert-torch, transformers, TensorFlow and the engines edgekit runs on this computer write to the process's
file descriptors 1 and 2 directly. `captured_output` points both at a log file for the
duration; edgekit's own progress goes to `terminal_stderr`, which writes to the stderr
the user saw before the capture began. `torch_threads` sets torch's process-wide thread
count for a block and restores it afterwards.

`edgekit.convert()` uses these only when its caller opts in (the CLI does).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from edgekit._data import user_cache_dir

_saved_stderr_fds: list[int] = []
"""While `captured_output` runs: a copy of the fd 2 it replaced (innermost last)."""


def log_dir() -> Path:
    """edgekit's log folder in the user cache (created if missing)."""
    path = user_cache_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_log_path(kind: str) -> Path:
    """A fresh log file name for one run of `kind` (e.g. "convert")."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return log_dir() / f"{kind}-{stamp}-{os.getpid()}.log"


class TerminalStderr(io.TextIOBase):
    """A text stream to the stderr the user sees, also while `captured_output` sends fd 2 to a log.

    Holds no file descriptor of its own: outside a capture it writes to `sys.stderr` as it
    is at that moment (so test runners' capture sees it too); inside, to the capture's copy
    of the original fd 2.
    """

    def _fd(self) -> int | None:
        return _saved_stderr_fds[-1] if _saved_stderr_fds else None

    def write(self, text: str) -> int:
        fd = self._fd()
        if fd is None:
            return sys.stderr.write(text)
        os.write(fd, text.encode(self.encoding, errors="replace"))
        return len(text)

    def flush(self) -> None:
        if self._fd() is None:
            sys.stderr.flush()

    def isatty(self) -> bool:
        fd = self._fd()
        if fd is not None:
            return os.isatty(fd)
        return bool(getattr(sys.stderr, "isatty", lambda: False)())

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(sys.__stderr__, "encoding", None) or "utf-8"


@contextlib.contextmanager
def captured_output(
    log_path: Path, on_text: Callable[[str], None] | None = None, *, echo: bool = False
) -> Iterator[None]:
    """Send this process's fd 1 and 2 to `log_path` (appending) until the block ends.

    Each chunk also goes to `on_text`; with `echo` it is copied to the real stderr too.
    Process-wide: every thread's output goes to the log meanwhile.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    read_fd, write_fd = os.pipe()

    def pump() -> None:
        with open(log_path, "ab") as log:
            while chunk := os.read(read_fd, 65536):
                log.write(chunk)
                if echo:
                    os.write(saved_err, chunk)
                if on_text is not None:
                    on_text(chunk.decode("utf-8", errors="replace"))

    reader = threading.Thread(target=pump, name="edgekit-capture", daemon=True)
    reader.start()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    # Python-level writers may hold other streams (a test runner's, an IDE's): point them at fd 1/2 too.
    saved_streams = sys.stdout, sys.stderr
    sys.stdout = open(1, "w", buffering=1, closefd=False, errors="replace")  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="replace")  # noqa: SIM115
    _saved_stderr_fds.append(saved_err)
    try:
        yield
    finally:
        _saved_stderr_fds.remove(saved_err)
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout.close()
        sys.stderr.close()
        sys.stdout, sys.stderr = saved_streams
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        # The pipe's last write end is gone: the reader drains it (echoing to saved_err) and ends.
        reader.join(timeout=10)
        os.close(saved_out)
        os.close(saved_err)
        os.close(read_fd)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's process-wide intra-op thread count set to `threads` for the block, then restored.

    None leaves it alone. Imports torch only when `threads` is given.
    """
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
