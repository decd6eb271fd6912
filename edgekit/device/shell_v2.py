"""adbd's shell protocol v2 (`shell,v2,raw:` service): framed stdin/stdout/stderr/exit.

Each frame is `id (1 byte) | length (4 bytes, little endian) | data`. Ids: 0 stdin,
1 stdout, 2 stderr, 3 exit code (1 byte of data), 4 close stdin, 5 window size change.
Used by edgekit's clients and by the device emulator in `edgekit.testing`.
"""

from __future__ import annotations

import struct

from edgekit.device.base import ShellResult
from edgekit.errors import LinkLost

STDIN = 0
STDOUT = 1
STDERR = 2
EXIT = 3
CLOSE_STDIN = 4
WINDOW_SIZE = 5
_HEADER = struct.Struct("<BI")


def frame(kind: int, data: bytes = b"") -> bytes:
    """One shell v2 frame."""
    return _HEADER.pack(kind, len(data)) + data


class Decoder:
    """Reassembles frames from a byte stream whose chunks split frames anywhere."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add bytes; returns the frames completed by them, in order."""
        self._buffer += data
        frames = []
        while len(self._buffer) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(self._buffer)
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append((kind, bytes(self._buffer[_HEADER.size : end])))
            del self._buffer[:end]
        return frames


class Collector:
    """Client side: gathers stdout, stderr and the exit code from device frames."""

    def __init__(self) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.returncode: int | None = None
        self._decoder = Decoder()

    def feed(self, data: bytes) -> None:
        for kind, payload in self._decoder.feed(data):
            if kind == STDOUT:
                self.stdout += payload
            elif kind == STDERR:
                self.stderr += payload
            elif kind == EXIT and payload:
                self.returncode = payload[0]

    def result(self, serial: str, command: str) -> ShellResult:
        """The finished command; LinkLost if the device closed the stream without an exit code."""
        if self.returncode is None:
            raise LinkLost(serial, f"`{command}` ended without an exit code", cmd=command)
        return ShellResult(
            self.returncode,
            self.stdout.decode("utf-8", errors="replace"),
            self.stderr.decode("utf-8", errors="replace"),
        )


def stdin_frames(data: bytes, chunk: int) -> list[bytes]:
    """`data` as stdin frames of at most `chunk` payload bytes, then close-stdin."""
    frames = [frame(STDIN, data[i : i + chunk]) for i in range(0, len(data), chunk)]
    return [*frames, frame(CLOSE_STDIN)]
