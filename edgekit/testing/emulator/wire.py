"""The device side of the ADB wire protocol (adb's protocol.txt): packets, AUTH, streams.

Every packet is a 24-byte header (command, arg0, arg1, data length, data checksum, command
^ 0xFFFFFFFF) and its data. CNXN, then AUTH (an RSA signature over a 20-byte token, from a
trusted key only unless the emulator accepts any key), then OPEN of a service:
`shell:` / `exec:` / `shell,v2,…:` and `sync:` (served by `services`); OKAY/WRTE/CLSE with
one unacknowledged write per stream.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import signal
import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import numpy as np

from edgekit.testing.emulator import services

if TYPE_CHECKING:
    from edgekit.testing.emulator.device import AdbDeviceEmulator

A_CNXN = 0x4E584E43
A_AUTH = 0x48545541
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
VERSION_CHECKSUM = 0x01000000
VERSION_NO_CHECKSUM = 0x01000001
MAX_PAYLOAD = 1024 * 1024
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
_HEADER = struct.Struct("<6I")
# Features a real adbd advertises that we implement; never one we do not.
FEATURES = "shell_v2,cmd"


def _checksum(data: bytes) -> int:
    return int(np.frombuffer(data, np.uint8).sum(dtype=np.uint64)) & 0xFFFFFFFF if data else 0


def decode_adb_public_key(text: bytes | str) -> tuple[int, int]:
    """(modulus, exponent) of an adb public key: base64 of Android's RSAPublicKey struct + " user@host"."""
    raw = text.encode() if isinstance(text, str) else text
    blob = base64.b64decode(raw.strip().split(b" ")[0].rstrip(b"\0"))
    words, _n0inv = struct.unpack_from("<II", blob)
    size = words * 4
    modulus = int.from_bytes(blob[8 : 8 + size], "little")
    (exponent,) = struct.unpack_from("<I", blob, 8 + 2 * size)
    return modulus, exponent


def verify_token_signature(public_key: bytes | str, token: bytes, signature: bytes) -> bool:
    """True if `signature` is adb's RSA PKCS#1 v1.5 signature of `token` (signed as a SHA-1 digest)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

    try:
        n, e = decode_adb_public_key(public_key)
        key = rsa.RSAPublicNumbers(e, n).public_key()
        key.verify(signature, token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
    except (InvalidSignature, ValueError, struct.error):
        return False
    return True


class Stream:
    """One OPEN stream: what the host wrote (`inbox`, None at its end), and the one write in
    flight the protocol allows (`can_write`, set again by the host's OKAY)."""

    def __init__(self, conn: Connection, dev_id: int, host_id: int) -> None:
        self.conn, self.dev_id, self.host_id = conn, dev_id, host_id
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.closed = False
        self.task: asyncio.Task[None] | None = None
        self.process: asyncio.subprocess.Process | None = None

    async def write(self, data: bytes) -> None:
        step = self.conn.max_payload
        for i in range(0, len(data), step):
            await self.can_write.wait()
            if self.closed:
                raise ConnectionResetError("stream closed")
            self.can_write.clear()
            await self.conn.send(A_WRTE, self.dev_id, self.host_id, data[i : i + step])

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.can_write.set()
            await self.conn.send(A_CLSE, self.dev_id, self.host_id)

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)


class Connection:
    """One host connection: CNXN and AUTH, then the streams it opens, each served by a task."""

    def __init__(self, emu: AdbDeviceEmulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.emu, self.reader, self.writer = emu, reader, writer
        self.version = VERSION_CHECKSUM
        self.max_payload = 4096
        self.authenticated = False
        self.token = b""
        self.streams: dict[int, Stream] = {}
        self.next_id = 1

    async def send(self, cmd: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        crc = _checksum(data) if self.version < VERSION_NO_CHECKSUM else 0
        self.writer.write(_HEADER.pack(cmd, arg0, arg1, len(data), crc, cmd ^ 0xFFFFFFFF) + data)
        await self.writer.drain()

    async def send_cnxn(self) -> None:
        props = self.emu.props
        banner = (
            f"device::ro.product.name={props.get('ro.product.name', 'edgekit_emu')};"
            f"ro.product.model={props.get('ro.product.model', '')};"
            f"ro.product.device={props.get('ro.product.device', '')};features={FEATURES}"
        ).encode()
        await self.send(A_CNXN, self.version, MAX_PAYLOAD, banner)

    async def send_token(self) -> None:
        self.token = secrets.token_bytes(20)
        await self.send(A_AUTH, AUTH_TOKEN, 0, self.token)

    async def run(self) -> None:
        try:
            while True:
                header = await self.reader.readexactly(_HEADER.size)
                cmd, arg0, arg1, length, _crc, _magic = _HEADER.unpack(header)
                data = await self.reader.readexactly(length) if length else b""
                faults = self.emu.faults
                if faults.drop_after_bytes is not None:
                    faults.drop_after_bytes -= _HEADER.size + length
                    if faults.drop_after_bytes <= 0:
                        faults.drop_after_bytes = None
                        self.writer.transport.abort()
                        return
                while faults.stall and not self.writer.transport.is_closing():
                    await asyncio.sleep(0.05)
                await self.dispatch(cmd, arg0, arg1, data)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            for stream in self.streams.values():
                stream.closed = True
                stream.can_write.set()
                stream.kill()
                stream.inbox.put_nowait(None)
            self.writer.transport.abort()

    async def dispatch(self, cmd: int, arg0: int, arg1: int, data: bytes) -> None:
        if cmd == A_CNXN:
            self.version = min(arg0, VERSION_NO_CHECKSUM)
            self.max_payload = max(1, min(arg1, MAX_PAYLOAD))
            if self.emu.require_auth and not self.authenticated:
                await self.send_token()
            else:
                self.authenticated = True
                await self.send_cnxn()
        elif cmd == A_AUTH:
            await self.on_auth(arg0, data)
        elif not self.authenticated:
            return
        elif cmd == A_OPEN:
            await self.on_open(arg0, data.rstrip(b"\0").decode("utf-8", errors="replace"))
        elif cmd == A_WRTE:
            stream = self.streams.get(arg1)
            if stream is not None and not stream.closed:
                await stream.inbox.put(data)
                await self.send(A_OKAY, arg1, arg0)
        elif cmd == A_OKAY:
            stream = self.streams.get(arg1)
            if stream is not None:
                stream.can_write.set()
        elif cmd == A_CLSE:
            stream = self.streams.pop(arg1, None)
            if stream is not None:
                if not stream.closed:
                    stream.closed = True
                    stream.can_write.set()
                    await self.send(A_CLSE, arg1, arg0)  # adb-shell waits for this echo
                stream.kill()
                await stream.inbox.put(None)

    async def on_auth(self, kind: int, data: bytes) -> None:
        emu = self.emu
        if kind == AUTH_SIGNATURE:
            if not emu.faults.refuse_auth and any(
                verify_token_signature(k, self.token, data) for k in list(emu.trusted_keys)
            ):
                self.authenticated = True
                await self.send_cnxn()
            else:
                await self.send_token()
        elif kind == AUTH_RSAPUBLICKEY and emu.accept_any_key and not emu.faults.refuse_auth:
            emu.trusted_keys.append(data.rstrip(b"\0"))
            self.authenticated = True
            await self.send_cnxn()
        # Otherwise the phone shows its RSA prompt and nobody answers: say nothing.

    async def on_open(self, host_id: int, service: str) -> None:
        dev_id = self.next_id
        self.next_id += 1
        handler: Callable[[Stream], Awaitable[None]] | None = None
        # "shell,v2,TERM=xterm-256color,raw:CMD" (adb), "shell,v2,raw:CMD", "shell:CMD", "exec:CMD", "sync:"
        name, _, command = service.partition(":")
        options = name.split(",")
        if options[0] == "shell":
            v2 = "v2" in options
            handler = lambda s: services.run_shell(self.emu, s, command, v2=v2, merge_stderr=not v2)  # noqa: E731
        elif options[0] == "exec":
            handler = lambda s: services.run_shell(self.emu, s, command, v2=False, merge_stderr=False)  # noqa: E731
        elif options[0] == "sync":
            handler = lambda s: services.run_sync(self.emu, s)  # noqa: E731
        if handler is None:
            await self.send(A_CLSE, 0, host_id)
            return
        stream = Stream(self, dev_id, host_id)
        self.streams[dev_id] = stream
        await self.send(A_OKAY, dev_id, host_id)
        stream.task = asyncio.create_task(self._serve(stream, handler))

    async def _serve(self, stream: Stream, handler: Callable[[Stream], Awaitable[None]]) -> None:
        try:
            await handler(stream)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            stream.kill()
        with contextlib.suppress(ConnectionError, OSError):
            await stream.close()
