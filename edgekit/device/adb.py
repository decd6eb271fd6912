"""AdbDevice: a phone through the adb server (adbutils), the default transport.

USB phones, `adb tcpip` and Android 11+ wireless debugging all appear to the server as
serials. We use the `adb` on PATH when there is one (it matches the server the user
already runs) and adbutils' bundled adb otherwise, on the server port the user set
(ANDROID_ADB_SERVER_PORT, else 5037). A running server of another version is never
killed: we say what to do. Shell commands use shell protocol v2 (exit codes, separate
stderr, stdin); bulk pushes run that same adb binary's `push` through the same server,
which is several times faster than a sync client written in Python.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import adbutils
from adbutils import AdbClient

from edgekit.device import shell_v2
from edgekit.device.base import Device, ProgressFn, ShellResult, check_result
from edgekit.errors import DeviceError

_PERCENT = re.compile(rb"\[\s*(\d+)%\]")


def adb_binary() -> str:
    """The adb to use: the one on PATH, else the one adbutils ships."""
    found = shutil.which("adb")
    if found:
        return found
    from adbutils._utils import adb_path

    return str(adb_path())


def server_port() -> int:
    """The adb server port: ANDROID_ADB_SERVER_PORT, else 5037."""
    value = os.environ.get("ANDROID_ADB_SERVER_PORT", "")
    return int(value) if value.isdigit() else 5037


def _binary_protocol_version(adb: str) -> int | None:
    out = subprocess.run([adb, "version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"version 1\.0\.(\d+)", out)
    return int(m.group(1)) if m else None


def _server_listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def ensure_server(adb: str | None = None, port: int | None = None) -> AdbClient:
    """A client of a running adb server whose version matches our adb (starting one if none runs)."""
    adb = adb or adb_binary()
    port = port or server_port()
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(port)}
    if not _server_listening(port):
        proc = subprocess.run([adb, "start-server"], env=env, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise DeviceError(f"could not start the adb server on port {port}: {proc.stderr.strip()}")
    client = AdbClient(host="127.0.0.1", port=port, socket_timeout=30)
    try:
        running = client.server_version()
    except (adbutils.AdbError, OSError) as exc:
        raise DeviceError(f"the adb server on port {port} does not answer: {exc}") from exc
    ours = _binary_protocol_version(adb)
    if ours is not None and running != ours:
        raise DeviceError(
            f"the adb server on port {port} is version 1.0.{running} but {adb} is 1.0.{ours}: "
            f"stop the other server with its own adb (`adb kill-server`) or put that adb first on PATH"
        )
    return client


def list_devices(client: AdbClient | None = None) -> list[tuple[str, str]]:
    """(serial, state) of every device the adb server knows, offline and unauthorized included."""
    client = client or ensure_server()
    try:
        return [(d.serial, d.state) for d in client.list()]
    except (adbutils.AdbError, OSError) as exc:
        raise DeviceError(f"cannot list devices: {exc}") from exc


class AdbDevice(Device):
    """A device the adb server knows as `serial` (a `host:port` is connected first)."""

    def __init__(self, serial: str, *, client: AdbClient | None = None, adb: str | None = None) -> None:
        self.serial = serial
        self._adb = adb or adb_binary()
        self._client = client or ensure_server(self._adb)
        self._env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(self._client.port)}
        if ":" in serial and serial not in dict(list_devices(self._client)):
            try:
                message = self._client.connect(serial, timeout=15)
            except (adbutils.AdbError, OSError) as exc:
                raise DeviceError(f"{serial}: cannot connect: {exc}", serial=serial) from exc
            if "authenticate" in message:
                raise DeviceError(
                    f"{serial}: device unauthorized: accept the RSA prompt on the phone (tick 'Always allow')",
                    serial=serial,
                )
            if "connected" not in message:
                raise DeviceError(
                    f"{serial}: cannot connect ({message.strip()}): is the phone awake, on the network, "
                    f"with wireless debugging or `adb tcpip` on?",
                    serial=serial,
                )
        self._wait_ready()
        self._device = self._client.device(serial)

    def _wait_ready(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        state = None
        while time.monotonic() < deadline:
            state = dict(list_devices(self._client)).get(self.serial)
            if state == "device":
                return
            if state not in (None, "connecting", "authorizing"):
                break
            time.sleep(0.2)
        if state == "unauthorized":
            raise DeviceError(
                f"{self.serial}: device unauthorized: accept the RSA prompt on the phone (tick 'Always allow')",
                serial=self.serial,
            )
        if state == "offline":
            raise DeviceError(
                f"{self.serial}: device offline: reconnect the cable or run `adb reconnect`", serial=self.serial
            )
        if state is None:
            raise DeviceError(f"{self.serial}: no such device: see `edgekit devices`", serial=self.serial)
        raise DeviceError(f"{self.serial}: device is {state}, not ready", serial=self.serial)

    def _lost(self, exc: BaseException) -> DeviceError:
        return DeviceError(f"{self.serial}: connection to the device lost ({exc})", serial=self.serial)

    def shell(
        self, argv: Sequence[str], *, timeout_s: float = 60.0, check: bool = True, stdin: bytes | None = None
    ) -> ShellResult:
        """Run `argv` over shell protocol v2 through the server."""
        command = shlex.join(argv)
        try:
            conn = self._device.open_transport(timeout=timeout_s)
        except (adbutils.AdbError, OSError) as exc:
            raise self._lost(exc) from exc
        collector = shell_v2.Collector()
        try:
            conn.send_command("shell,v2,raw:" + command)
            conn.check_okay()
            for chunk in shell_v2.stdin_frames(stdin or b"", 64 * 1024):
                conn.conn.sendall(chunk)
            while collector.returncode is None:
                data = conn.conn.recv(65536)
                if not data:
                    break
                collector.feed(data)
        except (adbutils.AdbError, OSError) as exc:
            raise self._lost(exc) from exc
        finally:
            conn.close()
        return check_result(self.serial, command, collector.result(self.serial, command), check)

    def push(self, local: Path, remote: str, *, progress: ProgressFn | None = None) -> None:
        """`adb push` through the same server; progress read from its terminal output."""
        total = Path(local).stat().st_size
        argv = [self._adb, "-s", self.serial, "push", str(local), remote]
        # adb prints "[ 42%] path" only to a terminal: give it one.
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen(argv, env=self._env, stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        finally:
            os.close(slave)
        output = bytearray()
        try:
            while True:
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    try:
                        data = os.read(master, 4096)
                    except OSError:  # EIO: the child closed the terminal
                        data = b""
                    if not data:
                        break
                    output += data
                    found = _PERCENT.findall(data)
                    if found and progress is not None:
                        progress(total * int(found[-1]) // 100, total)
                elif proc.poll() is not None:
                    break
            returncode = proc.wait(timeout=60)
        finally:
            os.close(master)
        stderr = ""
        if proc.stderr is not None:
            stderr = proc.stderr.read().decode(errors="replace")
            proc.stderr.close()
        if returncode != 0:
            detail = (stderr or output.decode(errors="replace")).strip().splitlines()
            raise DeviceError(
                f"{self.serial}: push failed: {detail[-1] if detail else f'adb exited {returncode}'}",
                serial=self.serial,
                cmd=shlex.join(argv),
                returncode=returncode,
                stderr=stderr,
            )
        if progress is not None:
            progress(total, total)

    def pull(self, remote: str, local: Path) -> None:
        """`adb pull` through the same server."""
        argv = [self._adb, "-s", self.serial, "pull", remote, str(local)]
        proc = subprocess.run(argv, env=self._env, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise DeviceError(
                f"{self.serial}: pull of {remote} failed: {proc.stderr.strip() or proc.stdout.strip()}",
                serial=self.serial,
                cmd=shlex.join(argv),
                returncode=proc.returncode,
                stderr=proc.stderr,
            )
