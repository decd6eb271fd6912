"""The services an emulated phone serves on a stream: a shell command, and sync.

`run_shell`: the command with the emulator's shell (mksh where installed) in its sandbox,
stdin from the stream, stdout and stderr back (shell v2 frames them and ends with the exit
status; the legacy `shell:` merges stderr into stdout); closing the stream kills its process
group. `run_sync`: STAT, LIST, SEND/DONE, RECV and QUIT on sandbox paths (`sync:`, adb's
SYNC.TXT), a path the emulator does not map refused with FAIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import struct
from typing import TYPE_CHECKING

from edgekit.device import shell_v2

if TYPE_CHECKING:
    from edgekit.testing.emulator.device import AdbDeviceEmulator
    from edgekit.testing.emulator.wire import Stream

SYNC_DATA_MAX = 64 * 1024


async def run_shell(emu: AdbDeviceEmulator, stream: Stream, command: str, *, v2: bool, merge_stderr: bool) -> None:
    """Run `command` (an interactive shell if empty) on `stream` until it and its output end."""
    proc = await asyncio.create_subprocess_exec(
        emu.shell,
        "-c",
        emu.map_command(command) if command else "exec /bin/sh",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merge_stderr else asyncio.subprocess.PIPE,
        cwd=emu.sandbox / "data" / "local" / "tmp",
        env=emu.command_env(),
        start_new_session=True,
    )
    stream.process = proc
    assert proc.stdin is not None and proc.stdout is not None

    async def feed_stdin() -> None:
        assert proc.stdin is not None
        decoder = shell_v2.Decoder()
        while True:
            data = await stream.inbox.get()
            if data is None:
                stream.kill()
                return
            frames = decoder.feed(data) if v2 else [(shell_v2.STDIN, data)]
            for kind, payload in frames:
                if kind == shell_v2.STDIN and not proc.stdin.is_closing():
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        proc.stdin.write(payload)
                        await proc.stdin.drain()
                elif kind == shell_v2.CLOSE_STDIN:
                    proc.stdin.close()

    async def pump(reader: asyncio.StreamReader, kind: int) -> None:
        while chunk := await reader.read(65536):
            await stream.write(shell_v2.frame(kind, chunk) if v2 else chunk)

    stdin_task = asyncio.create_task(feed_stdin())
    pumps = [pump(proc.stdout, shell_v2.STDOUT)]
    if proc.stderr is not None:
        pumps.append(pump(proc.stderr, shell_v2.STDERR))
    try:
        await asyncio.gather(*pumps)
        returncode = await proc.wait()
        if v2:
            await stream.write(shell_v2.frame(shell_v2.EXIT, bytes([returncode & 0xFF])))
    finally:
        stdin_task.cancel()
        if emu.reap_background_jobs or proc.returncode is None:
            stream.kill()


async def run_sync(emu: AdbDeviceEmulator, stream: Stream) -> None:
    """Serve sync requests on `stream` until QUIT (or an unknown request, after its FAIL)."""
    buffer = bytearray()

    async def take(n: int) -> bytes:
        while len(buffer) < n:
            data = await stream.inbox.get()
            if data is None:
                raise ConnectionResetError("sync stream closed")
            buffer.extend(data)
        out = bytes(buffer[:n])
        del buffer[:n]
        return out

    async def fail(message: str) -> None:
        msg = message.encode()
        await stream.write(b"FAIL" + struct.pack("<I", len(msg)) + msg)

    while True:
        request = await take(8)
        rid, length = request[:4], struct.unpack("<I", request[4:])[0]
        if rid == b"QUIT":
            return
        arg = (await take(length)).decode("utf-8", errors="surrogateescape")
        if rid == b"STAT":
            path = emu.map_device_path(arg)
            try:
                st = os.stat(path) if path is not None else None
            except OSError:
                st = None
            if st is None:
                await stream.write(b"STAT" + bytes(12))
            else:
                await stream.write(b"STAT" + struct.pack("<III", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime)))
        elif rid == b"LIST":
            path = emu.map_device_path(arg)
            out = bytearray()
            if path is not None and path.is_dir():
                for entry in sorted(os.scandir(path), key=lambda e: e.name):
                    st = entry.stat(follow_symlinks=False)
                    entry_name = entry.name.encode("utf-8", errors="surrogateescape")
                    out += b"DENT" + struct.pack(
                        "<IIII", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(entry_name)
                    )
                    out += entry_name
            out += b"DONE" + bytes(16)
            await stream.write(bytes(out))
        elif rid == b"SEND":
            name, _, mode_text = arg.rpartition(",")
            if emu.faults.before_send is not None:
                await asyncio.to_thread(emu.faults.before_send, name)
            path = emu.map_device_path(name)
            mode = int(mode_text) if mode_text.isdigit() else 0o644
            sink = None
            if path is not None:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    sink = open(path, "wb")  # noqa: SIM115 (closed on DONE or error)
                except OSError:
                    sink = None
            try:
                while True:
                    head = await take(8)
                    hid, hlen = head[:4], struct.unpack("<I", head[4:])[0]
                    if hid == b"DATA":
                        chunk = await take(hlen)
                        if sink is not None:
                            sink.write(chunk)
                    elif hid == b"DONE":
                        break
                    else:
                        raise ConnectionResetError(f"unexpected sync id {hid!r} in SEND")
            finally:
                if sink is not None:
                    sink.close()
            if path is None or sink is None:
                await fail(f"cannot write {name}: not a device path this emulator maps")
                continue
            os.chmod(path, stat.S_IMODE(mode) or 0o644)
            os.utime(path, (hlen, hlen))
            await stream.write(b"OKAY" + bytes(4))
        elif rid == b"RECV":
            path = emu.map_device_path(arg)
            if path is None or not path.is_file():
                await fail(f"remote object '{arg}' does not exist")
                continue
            with open(path, "rb") as f:
                while chunk := f.read(SYNC_DATA_MAX):
                    await stream.write(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
            await stream.write(b"DONE" + bytes(4))
        else:
            await fail(f"unknown sync request {rid!r}")
            return
