"""The one atomic write: a file is replaced whole or not at all."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; when the block ends without an
    error it replaces `path` in one rename (a reader sees the old file or the new one,
    never half of one); on an error (Ctrl-C included) it is removed and `path` is untouched."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (see `atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)
