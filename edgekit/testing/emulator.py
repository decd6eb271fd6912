"""An ADB device emulator: the device side of the ADB wire protocol, on 127.0.0.1 only.

It serves adb-shell directly and the real `adb` server (`adb connect 127.0.0.1:PORT`):
CNXN, AUTH (RSA signature over a 20-byte token; trusted keys only unless
`accept_any_key`), OPEN/OKAY/WRTE/CLSE with one unacknowledged write per stream, and the
services `shell:`, `exec:`, `shell,v2,raw:` / `shell,v2:` (stdin, stdout, stderr, exit,
close-stdin, window size) and `sync:` (STAT, LIST, SEND/DONE, RECV, QUIT).

Commands run with mksh (Android's shell) where it is installed, else /bin/sh, in a
sandbox folder. Device paths under /data, /sdcard, /sys,
/system and /vendor are mapped into the sandbox by rewriting them where they start a
word in the command string, and in sync paths; a sync path that escapes the sandbox
(`..`, symlinks) is refused. This is a test double, not a jail: a command can still
name host paths that do not start with those prefixes.

Stand-ins: `getprop`, `dumpsys battery` / `dumpsys thermalservice` / `dumpsys power`
(capture shapes), sysfs `power_supply/battery/*` and `power_supply/{usb,ac}/{online,type}`,
`settings`, `input`, and `df` (with a low-space fault). The simulated battery
(`testing.battery`) drains faster while a runner marks itself busy or a program stored on
the phone runs (a real llama-cli); `suspend()` stops the sampler like a suspended phone.
Closing a stream kills the command's process group.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
import platform
import posixpath
import re
import secrets
import shutil
import signal
import stat
import struct
import textwrap
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from edgekit._files import atomic_write_text
from edgekit.device import shell_v2
from edgekit.device.local import _ABI as _HOST_ABIS  # one table for LocalDevice and this
from edgekit.testing.battery import BatteryController

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
MAPPED_ROOTS = ("data", "sdcard", "sys", "system", "vendor")
SYNC_DATA_MAX = 64 * 1024
_HEADER = struct.Struct("<6I")
_PATH_IN_COMMAND = re.compile(r"(?:(?<=[\s'\"=:;|&(<>`])|^)/(" + "|".join(MAPPED_ROOTS) + r")(?=[/\s'\";|&)<>`]|$)")
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


@dataclasses.dataclass
class Faults:
    """Failures a test can switch on: each is read when the next packet arrives."""

    drop_after_bytes: int | None = None  # close the connection once this many more bytes arrived (one-shot)
    stall: bool = False  # stop answering (the connection stays open)
    refuse_auth: bool = False  # never accept a key, like a phone whose RSA prompt nobody answers
    low_space: bool = False  # `df` reports 1 MB free
    before_send: Callable[[str], None] | None = None
    """Called (on a worker thread) with the device path of each sync SEND before its data is
    taken: a test can hold a push in flight there (and so see that two pushes overlap)."""


class _Stream:
    def __init__(self, conn: _Connection, dev_id: int, host_id: int) -> None:
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


class _Connection:
    def __init__(self, emu: AdbDeviceEmulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.emu, self.reader, self.writer = emu, reader, writer
        self.version = VERSION_CHECKSUM
        self.max_payload = 4096
        self.authenticated = False
        self.token = b""
        self.streams: dict[int, _Stream] = {}
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
        handler: Callable[[_Stream], Awaitable[None]] | None = None
        # "shell,v2,TERM=xterm-256color,raw:CMD" (adb), "shell,v2,raw:CMD", "shell:CMD", "exec:CMD", "sync:"
        name, _, command = service.partition(":")
        options = name.split(",")
        if options[0] == "shell":
            v2 = "v2" in options
            handler = lambda s: self.emu.run_command(s, command, v2=v2, merge_stderr=not v2)  # noqa: E731
        elif options[0] == "exec":
            handler = lambda s: self.emu.run_command(s, command, v2=False, merge_stderr=False)  # noqa: E731
        elif options[0] == "sync":
            handler = self.emu.run_sync
        if handler is None:
            await self.send(A_CLSE, 0, host_id)
            return
        stream = _Stream(self, dev_id, host_id)
        self.streams[dev_id] = stream
        await self.send(A_OKAY, dev_id, host_id)
        stream.task = asyncio.create_task(self._serve(stream, handler))

    async def _serve(self, stream: _Stream, handler: Callable[[_Stream], Awaitable[None]]) -> None:
        try:
            await handler(stream)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            stream.kill()
        with contextlib.suppress(ConnectionError, OSError):
            await stream.close()


class AdbDeviceEmulator:
    """One emulated phone listening on 127.0.0.1:`port` (ephemeral by default).

    `start()` runs it on a background thread with its own event loop; `stop()` ends it
    and kills every command it started.
    """

    def __init__(
        self,
        sandbox: Path,
        *,
        props: dict[str, str] | None = None,
        host_abi: bool = False,
        trusted_keys: list[bytes] | None = None,
        accept_any_key: bool = False,
        require_auth: bool = True,
        battery: BatteryController | None = None,
        port: int = 0,
    ) -> None:
        self.sandbox = Path(sandbox).resolve()
        self.props = {**default_props(), **(abi_props(host_machine_abi()) if host_abi else {}), **(props or {})}
        # Only a phone of this computer's ABI runs stored programs itself (busy() looks for them).
        self.host_abi = host_abi
        """`host_abi`: report this computer's ABI (x86_64 here) instead of arm64-v8a, so that
        host binaries (a host build of llama.cpp) pass deploy's ABI check and run as the phone's."""
        self.trusted_keys: list[bytes] = list(trusted_keys or [])
        self.accept_any_key = accept_any_key
        self.require_auth = require_auth
        self.battery = battery or BatteryController()
        self.faults = Faults()
        self.extra_env: dict[str, str] = {}
        """Added to every command's environment (e.g. the runner stand-in's knobs)."""
        self.shell = shutil.which("mksh") or "/bin/sh"
        """Android's shell is mksh: commands run with it when it is installed, else /bin/sh."""
        self.tick_s = 0.05
        """How often the simulated battery advances and republishes its readings."""
        self.battery_counters = True
        """False: the fuel gauge exposes nothing (no sysfs files, dumpsys without figures)."""
        self.reap_background_jobs = True
        """True: when a shell command ends, whatever it left running in its process group is
        killed (strict: only a job started with setsid survives). False: left running, as on
        a phone, where a job a raw (no pty) adb shell left in the background outlives it
        (how a run starts on a phone without setsid)."""
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._started = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._connections: set[_Connection] = set()
        self.emu_dir = self.sandbox / ".emulator"
        self._prepare_sandbox()

    @property
    def serial(self) -> str:
        """The `host:port` adb clients use for this device."""
        return f"127.0.0.1:{self.port}"

    # --- sandbox ---------------------------------------------------------------------
    def _prepare_sandbox(self) -> None:
        for root in MAPPED_ROOTS:
            (self.sandbox / root).mkdir(parents=True, exist_ok=True)
        (self.sandbox / "data" / "local" / "tmp").mkdir(parents=True, exist_ok=True)
        self.supply_dir = self.sandbox / "sys" / "class" / "power_supply"
        self.power_dir = self.supply_dir / "battery"
        self.power_dir.mkdir(parents=True, exist_ok=True)
        (self.power_dir / "type").write_text("Battery\n")
        for name, kind in (("usb", "USB"), ("ac", "Mains")):
            (self.supply_dir / name).mkdir(exist_ok=True)
            (self.supply_dir / name / "type").write_text(f"{kind}\n")
        bin_dir = self.emu_dir / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        (self.emu_dir / "busy").mkdir(exist_ok=True)
        (self.emu_dir / "wakefulness").write_text("Asleep\n")
        for name, script in _STAND_INS.items():
            path = bin_dir / name
            path.write_text(script)
            path.chmod(0o755)
        self.write_props()
        self.refresh_battery(busy=False)

    def write_props(self) -> None:
        """Write the current `props` where the `getprop` stand-in reads them."""
        text = "".join(f"[{k}]: [{v}]\n" for k, v in sorted(self.props.items()))
        (self.emu_dir / "props.txt").write_text(text)

    def busy(self) -> bool:
        """True while a process that marked itself busy (the runner stand-in) is alive, or a
        program stored on the phone runs (a real runner binary, such as llama.cpp's llama-cli
        on a `host_abi` phone): the simulated battery drains at its busy rate for either."""
        alive = False
        for marker in (self.emu_dir / "busy").iterdir():
            try:
                os.kill(int(marker.name), 0)
                alive = True
            except (ValueError, ProcessLookupError):
                marker.unlink(missing_ok=True)
            except PermissionError:
                alive = True
        return alive or (self.host_abi and self._runs_a_stored_program())

    def _runs_a_stored_program(self) -> bool:
        data = self.sandbox / "data"
        for exe in Path("/proc").glob("[0-9]*/exe"):
            try:
                target = Path(os.readlink(exe))
            except OSError:  # gone, or not ours to read
                continue
            if data in target.parents:
                return True
        return False

    def screen_awake(self) -> bool:
        """True while the emulated screen is on (the `wakefulness` file `input` and tests switch)."""
        try:
            return (self.emu_dir / "wakefulness").read_text().strip() == "Awake"
        except OSError:
            return False

    def refresh_battery(self, busy: bool) -> None:
        """Advance the simulated battery and publish it to sysfs and `dumpsys`."""
        # The truth switches load once the new readings are out (see BatteryController.stage).
        r = self.battery.stage(busy, screen_awake=self.screen_awake())
        for key in ("charge_counter",):
            if key not in r:
                (self.power_dir / key).unlink(missing_ok=True)
        for key, value in r.items():
            if not self.battery_counters:
                (self.power_dir / key).unlink(missing_ok=True)
                continue
            _publish(self.power_dir / key, f"{value}\n")
        self.battery.commit()
        # The other supplies, as the kernel's power_supply class shows them (name/type/online).
        usb = self.battery.usb_online()
        _publish(self.supply_dir / "usb" / "online", f"{int(usb)}\n")
        _publish(self.supply_dir / "ac" / "online", "0\n")
        charging = r["status"] == "Charging"
        status = {"Charging": 2, "Not charging": 4}.get(str(r["status"]), 3)
        dumpsys = textwrap.dedent(
            f"""\
            Current Battery Service state:
              AC powered: false
              USB powered: {"true" if usb else "false"}
              Wireless powered: false
              Dock powered: false
              Max charging current: {1500000 if charging else 0}
              Max charging voltage: {5000000 if charging else 0}
              Charge counter: {r.get("charge_counter", 0)}
              status: {status}
              health: 2
              present: true
              level: {r["capacity"]}
              scale: 100
              voltage: {round(self.battery.voltage_v() * 1000)}
              temperature: {r["temp"]}
              technology: Li-ion
            """
        )
        if not self.battery_counters:
            dumpsys = "Current Battery Service state:\n  AC powered: false\n  USB powered: false\n  level: 80\n"
        _publish(self.emu_dir / "dumpsys-battery.txt", dumpsys)
        thermal = f"IsStatusOverride: false\nThermal Status: {self.battery.thermal_status}\nHAL Ready: true\n"
        _publish(self.emu_dir / "dumpsys-thermalservice.txt", thermal)
        low = self.emu_dir / "low_space"
        if self.faults.low_space:
            low.touch()
        else:
            low.unlink(missing_ok=True)

    def suspend(self, seconds: float) -> bool:
        """Suspend the phone for `seconds` as the sampler sees it: stop every running sampler
        (SIGSTOP) and let it go on afterwards; the battery's clock runs on. False if none ran."""
        pids = []
        for pid_file in (self.sandbox / "data").rglob("sampler.pid"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(pid_file.read_text().strip())
                os.kill(pid, signal.SIGSTOP)
                pids.append(pid)

        def wake() -> None:
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGCONT)

        threading.Timer(seconds, wake).start()
        return bool(pids)

    def map_device_path(self, path: str) -> Path | None:
        """The sandbox file for device path `path`, or None if it is not mapped or escapes."""
        if not path.startswith("/"):
            path = "/data/local/tmp/" + path
        norm = posixpath.normpath(path)
        parts = norm.strip("/").split("/")
        if not parts or parts[0] not in MAPPED_ROOTS:
            return None
        candidate = (self.sandbox / norm.lstrip("/")).resolve()
        if candidate != self.sandbox and self.sandbox not in candidate.parents:
            return None
        return candidate

    def map_command(self, command: str) -> str:
        """Rewrite device paths that start a word in `command` into the sandbox."""
        return _PATH_IN_COMMAND.sub(lambda m: f"{self.sandbox}/{m.group(1)}", command)

    def _env(self) -> dict[str, str]:
        tmp = self.sandbox / "data" / "local" / "tmp"
        return {
            "PATH": f"{self.emu_dir / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(tmp),
            "TMPDIR": str(tmp),
            "LANG": "C.UTF-8",
            "EDGEKIT_EMU_DIR": str(self.emu_dir),
            "EDGEKIT_EMU_SANDBOX": str(self.sandbox),
            # Device paths inside files (not command strings) get this prefix from the
            # harness scripts; empty on a phone.
            "DEVICE_ROOT": str(self.sandbox),
            **self.extra_env,
        }

    # --- services --------------------------------------------------------------------
    async def run_command(self, stream: _Stream, command: str, *, v2: bool, merge_stderr: bool) -> None:
        proc = await asyncio.create_subprocess_exec(
            self.shell,
            "-c",
            self.map_command(command) if command else "exec /bin/sh",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT if merge_stderr else asyncio.subprocess.PIPE,
            cwd=self.sandbox / "data" / "local" / "tmp",
            env=self._env(),
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
            if self.reap_background_jobs or proc.returncode is None:
                stream.kill()

    async def run_sync(self, stream: _Stream) -> None:
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
                path = self.map_device_path(arg)
                try:
                    st = os.stat(path) if path is not None else None
                except OSError:
                    st = None
                if st is None:
                    await stream.write(b"STAT" + bytes(12))
                else:
                    await stream.write(
                        b"STAT" + struct.pack("<III", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
                    )
            elif rid == b"LIST":
                path = self.map_device_path(arg)
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
                if self.faults.before_send is not None:
                    await asyncio.to_thread(self.faults.before_send, name)
                path = self.map_device_path(name)
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
                path = self.map_device_path(arg)
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

    # --- lifecycle -------------------------------------------------------------------
    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        ticker = asyncio.create_task(self._tick())
        self._started.set()
        await self._stopping.wait()
        self._server.close()
        ticker.cancel()
        for conn in list(self._connections):
            conn.writer.transport.abort()
        # Connection handlers end on their own once their socket is gone; then their streams.
        for _ in range(100):
            if not self._connections:
                break
            await asyncio.sleep(0.05)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await asyncio.wait(others, timeout=5) if others else None
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(self, reader, writer)
        self._connections.add(conn)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)

    async def _tick(self) -> None:
        while True:
            await asyncio.to_thread(lambda: self.refresh_battery(self.busy()))
            await asyncio.sleep(self.tick_s)

    def start(self) -> AdbDeviceEmulator:
        """Start serving on a background thread; returns once the port is bound."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("ADB device emulator did not start")
        return self

    def stop(self) -> None:
        """Stop serving and kill every command still running."""
        if self._loop is None or self._stopping is None:
            return
        self.faults.stall = False
        self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> AdbDeviceEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _publish(path: Path, text: str) -> None:
    """Replace a sysfs stand-in file atomically (a reader never sees half a value)."""
    atomic_write_text(path, text)


def host_machine_abi() -> str:
    """The Android ABI name of this computer's CPU (`platform.machine()` x86_64 -> "x86_64",
    aarch64 -> "arm64-v8a"); ValueError on others."""
    machine = platform.machine().lower()
    if machine not in _HOST_ABIS:
        raise ValueError(f"no Android ABI for host CPU {machine!r}: known are {', '.join(_HOST_ABIS)}")
    return _HOST_ABIS[machine]


def abi_props(abi: str) -> dict[str, str]:
    """The props that name a phone's ABI, for an emulated phone of ABI `abi`."""
    return {"ro.product.cpu.abi": abi, "ro.product.cpu.abilist": abi}


def default_props() -> dict[str, str]:
    """Props of a plausible arm64 phone, marked emulated so edgekit labels its figures simulated."""
    return {
        "ro.product.manufacturer": "edgekit",
        "ro.product.model": "Emulated Phone",
        "ro.product.name": "edgekit_emu",
        "ro.product.device": "emu",
        "ro.soc.model": "EmuSoC",
        "ro.product.cpu.abi": "arm64-v8a",
        "ro.product.cpu.abilist": "arm64-v8a",
        "ro.build.version.release": "16",
        "ro.build.version.sdk": "36",
        "ro.serialno": "EMU0001",
        "ro.edgekit.emulated": "1",
    }


_STAND_INS = {
    "getprop": textwrap.dedent(
        """\
        #!/bin/sh
        # getprop stand-in: props written by the emulator, `[key]: [value]` lines.
        f="$EDGEKIT_EMU_DIR/props.txt"
        if [ $# -eq 0 ]; then cat "$f"; exit 0; fi
        awk -v k="[$1]: [" 'index($0, k) == 1 { v = substr($0, length(k) + 1); sub(/]$/, "", v); print v; found = 1 }
             END { if (!found) print "" }' "$f"
        """
    ),
    "dumpsys": textwrap.dedent(
        """\
        #!/bin/sh
        # dumpsys stand-in: battery and thermalservice in the shapes real phones print.
        case "$1" in
          battery) cat "$EDGEKIT_EMU_DIR/dumpsys-battery.txt" ;;
          thermalservice) cat "$EDGEKIT_EMU_DIR/dumpsys-thermalservice.txt" ;;
          power) echo "POWER MANAGER (dumpsys power)"; echo "  mWakefulness=$(cat "$EDGEKIT_EMU_DIR/wakefulness")" ;;
          *) echo "Can't find service: $1" >&2; exit 1 ;;
        esac
        """
    ),
    "sh": textwrap.dedent(
        """\
        #!/bin/sh
        # sh is mksh on Android: use it where it is installed.
        if command -v mksh >/dev/null 2>&1; then exec mksh "$@"; fi
        exec /bin/sh "$@"
        """
    ),
    "settings": textwrap.dedent(
        """\
        #!/bin/sh
        # settings stand-in: get/put/delete NAMESPACE KEY [VALUE], stored in files.
        d="$EDGEKIT_EMU_DIR/settings/$2"; mkdir -p "$d"
        case "$1" in
          get) cat "$d/$3" 2>/dev/null || echo null ;;
          put) printf '%s\\n' "$4" > "$d/$3" ;;
          delete) rm -f "$d/$3" ;;
          *) echo "usage: settings get|put|delete NAMESPACE KEY [VALUE]" >&2; exit 1 ;;
        esac
        """
    ),
    "input": textwrap.dedent(
        """\
        #!/bin/sh
        # input stand-in: keyevent 223 (sleep) / 224 (wake) / 26 (power) switch the screen.
        [ "$1" = keyevent ] || exit 0
        f="$EDGEKIT_EMU_DIR/wakefulness"
        case "$2" in
          223|KEYCODE_SLEEP) echo Asleep > "$f" ;;
          224|KEYCODE_WAKEUP) echo Awake > "$f" ;;
          26|KEYCODE_POWER) if grep -q Awake "$f"; then echo Asleep > "$f"; else echo Awake > "$f"; fi ;;
        esac
        """
    ),
    "df": textwrap.dedent(
        """\
        #!/bin/sh
        # df stand-in: the real df, unless the emulator's low-space fault is on.
        if [ -e "$EDGEKIT_EMU_DIR/low_space" ]; then
          echo "Filesystem        1K-blocks     Used Available Use% Mounted on"
          echo "/dev/block/dm-51  230349108 230348084      1024 100% /data"
          exit 0
        fi
        PATH=$(echo "$PATH" | cut -d: -f2-) exec df "$@"
        """
    ),
}
