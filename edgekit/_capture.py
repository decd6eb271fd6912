"""Keep other libraries' output (Python prints, C++ logs, tqdm bars) out of the terminal.

litert-torch, transformers, TensorFlow and the LiteRT runtimes write to the process's
file descriptors 1 and 2 directly. `captured_output` points both at a log file for the
duration; edgekit's own progress goes through `commands._common.stderr_console()`, a
private copy of stderr taken before.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from edgekit._data import user_cache_dir


def log_dir() -> Path:
    """edgekit's log folder in the user cache (created if missing)."""
    path = user_cache_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_log_path(kind: str) -> Path:
    """A fresh log file name for one run of `kind` (e.g. "convert")."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return log_dir() / f"{kind}-{stamp}-{os.getpid()}.log"


@contextlib.contextmanager
def captured_output(
    log_path: Path, on_text: Callable[[str], None] | None = None, *, echo: bool = False
) -> Iterator[None]:
    """Send this process's fd 1 and 2 to `log_path` (appending) until the block ends.

    Each chunk also goes to `on_text`; with `echo` it is copied to the real stderr too.
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
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout.close()
        sys.stderr.close()
        sys.stdout, sys.stderr = saved_streams
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        reader.join(timeout=10)
        os.close(read_fd)
