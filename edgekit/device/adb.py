"""AdbDevice: a phone through an adb server (adbutils), the default transport.

USB phones, `adb tcpip` and Android 11+ wireless debugging all appear to the server as
serials. We use the adb `adbutils.adb_path()` picks ($ADBUTILS_ADB_PATH, else the `adb` on
PATH, which matches the server the user already runs, else the one adbutils ships). The
server is named (`--adb-server HOST:PORT`, `--device HOST:PORT/SERIAL`) or the one adb
itself would use (`address.default_server`: $ADB_SERVER_SOCKET, $ANDROID_ADB_SERVER_ADDRESS
and _PORT, localhost:5037); every adb process we start gets that server as -H/-P, so a
push goes where the shell commands go. Only the default local server is started if none
runs, as adb does; a named server that does not answer is an error naming it. A running
server of another version is never killed: we say what to do. Shell commands use shell
protocol v2 through adbutils' `shell2(..., v2=True)` (exit codes, separate stderr); bulk
pushes run that same adb binary's `push` through the same server, which is several times
faster than a sync client written in Python. The constructor does no I/O: the first
command reaches the server (starting the default one if none runs) and connects a
`host:port` serial.
"""

from __future__ import annotations

import functools
import os
import re
import select
import shlex
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import adbutils
from adbutils import AdbClient
from adbutils._adb import AdbConnection

from edgekit.device.address import AdbServer, adb_env, default_server, device_name
from edgekit.device.base import Device, ErrorTable, ProgressFn, ShellResult, check_result, mapped_errors
from edgekit.errors import CommandFailed, DeviceError, DeviceTimeout, DeviceUnauthorized, DeviceUnreachable, LinkLost

_PERCENT = re.compile(rb"\[\s*(\d+)%\]")

# What adbutils raises under a command on the device (adbutils errors.py, _adb.py), and what
# each means. adbutils turns a socket timeout into AdbTimeout ("adb read timeout"), a refused
# server connection into AdbConnectionError, a closed stream into AdbError or, from
# read_exact, EOFError.
_ERRORS: ErrorTable = {
    adbutils.AdbTimeout: DeviceTimeout,
    TimeoutError: DeviceTimeout,
    adbutils.AdbError: LinkLost,
    OSError: LinkLost,
    EOFError: LinkLost,
}


def _lost(exc: BaseException) -> str:
    return f"connection to the device lost ({exc})"


_UNAUTHORIZED = "device unauthorized: accept the RSA prompt on the phone (tick 'Always allow')"


def adb_binary() -> str:
    """The adb to use, as adbutils picks it: $ADBUTILS_ADB_PATH, the `adb` on PATH, the one it ships."""
    try:
        return str(adbutils.adb_path())
    except adbutils.AdbError as exc:
        raise DeviceError(f"no adb found ({exc}): reinstall edgekit (adbutils ships one) or put adb on PATH") from exc


def environment_server() -> AdbServer:
    """The default adb server, as adb finds it (`address.default_server` of this process's environment)."""
    return default_server(os.environ)


class _Connection(AdbConnection):  # type: ignore[misc]  # adbutils ships no stubs
    """adbutils' connection without its fallback: on a refused connection AdbConnection runs
    `adb start-server` with this process's environment, which would start (or reach) some
    other server than the one named. Here a refused connection is an error."""

    def _safe_connect(self) -> Any:
        return self._create_socket()


class ServerClient(AdbClient):  # type: ignore[misc]  # adbutils ships no stubs
    """An adbutils client of one adb server that never starts a server on its own."""

    def __init__(self, server: AdbServer, socket_timeout: float = 30) -> None:
        super().__init__(host=server.connect_host, port=server.port, socket_timeout=socket_timeout)
        self.server = server
        self._timeout = socket_timeout

    def make_connection(self, timeout: float | None = None) -> AdbConnection:
        try:
            conn = _Connection(self.host, self.port)
        except TimeoutError as exc:
            raise adbutils.AdbTimeout("connect to adb server timeout") from exc
        conn.conn.settimeout(timeout or self._timeout)
        return conn


@functools.cache
def _binary_protocol_version(adb: str) -> int | None:
    out = subprocess.run([adb, "version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"version 1\.0\.(\d+)", out)
    return int(m.group(1)) if m else None


def _server_listening(server: AdbServer) -> bool:
    try:
        socket.create_connection((server.connect_host, server.port), timeout=2).close()
    except OSError:
        return False
    return True


def ensure_server(adb: str | None = None, server: AdbServer | None = None) -> ServerClient:
    """A client of `server` (default: adb's own, `environment_server()`) whose version matches our adb.

    Only the default server on this computer is started if none runs, as adb does; a named
    server (or a remote one) that does not answer is a DeviceError naming it."""
    target = server or environment_server()
    if not _server_listening(target):
        if target.named or not target.is_local:
            hint = (
                "leave out its --adb-server"
                if target.named
                else "check $ADB_SERVER_SOCKET and $ANDROID_ADB_SERVER_ADDRESS"
            )
            raise DeviceError(
                f"the adb server {target} does not answer: start it there "
                f"(`adb -a -P {target.port} server nodaemon`) or {hint}"
            )
        adb = adb or adb_binary()
        argv = [adb, *target.adb_args(), "start-server"]
        proc = subprocess.run(argv, env=adb_env(os.environ), capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise DeviceError(f"could not start the adb server on {target}: {proc.stderr.strip()}")
    client = ServerClient(target)
    try:
        running = client.server_version()
    except (adbutils.AdbError, OSError) as exc:
        raise DeviceError(f"the adb server {target} does not answer: {exc}") from exc
    adb = adb or adb_binary()
    ours = _binary_protocol_version(adb)
    if ours is not None and running != ours:
        raise DeviceError(
            f"the adb server {target} is version 1.0.{running} but {adb} is 1.0.{ours}: "
            f"stop the other server with its own adb (`adb kill-server`) or put that adb first on PATH"
        )
    return client


def list_devices(client: AdbClient | None = None, *, server: AdbServer | None = None) -> list[tuple[str, str]]:
    """(serial, state) of every device an adb server knows (`client`'s, else `server`'s,
    else the default one), offline and unauthorized included."""
    client = client or ensure_server(server=server)
    try:
        return [(d.serial, d.state) for d in client.list()]
    except (adbutils.AdbError, OSError) as exc:
        where = f"the adb server {client.server}" if isinstance(client, ServerClient) else "the adb server"
        raise DeviceError(f"cannot list devices on {where}: {exc}") from exc


class AdbDevice(Device):
    """A device an adb server knows as `serial`: `server`'s (default: adb's own, `environment_server()`).

    `self.serial` is its name, `HOST:PORT/SERIAL` on a named server (what `--device` takes
    back), the bare serial on the default one; `adb_serial` is what that server calls it.
    The constructor runs nothing: the first command finds adb, starts the default server if
    none runs, connects a `host:port` serial and waits until the device is ready."""

    def __init__(
        self,
        serial: str,
        *,
        server: AdbServer | None = None,
        client: ServerClient | None = None,
        adb: str | None = None,
    ) -> None:
        self._server = server or (client.server if client is not None else None)
        self.adb_serial = serial
        self.serial = device_name(self._server, serial) if self._server is not None else serial
        self._adb_path = adb
        self._client = client
        self._device: Any = None
        self._pushing: subprocess.Popen[bytes] | None = None

    @property
    def _adb(self) -> str:
        """The adb binary (found on first use: adbutils runs `adb version` to pick one)."""
        if self._adb_path is None:
            self._adb_path = adb_binary()
        return self._adb_path

    def _adb_argv(self, *args: str) -> list[str]:
        """An adb command line for our device on our server (-H/-P, -s): never the environment's."""
        target = self._server or environment_server()
        return [self._adb, *target.adb_args(), "-s", self.adb_serial, *args]

    def _connected(self) -> Any:
        """adbutils' device for our serial, once the server runs and the device is ready."""
        if self._device is not None:
            return self._device
        if self._client is None:
            self._client = ensure_server(self._adb, self._server)
            self._server = self._client.server
        serial = self.adb_serial
        if ":" in serial and serial not in dict(list_devices(self._client)):
            try:
                message = self._client.connect(serial, timeout=15)
            except (adbutils.AdbError, OSError) as exc:
                raise DeviceUnreachable(self, f"cannot connect: {exc}") from exc
            if "authenticate" in message:
                raise DeviceUnauthorized(self, _UNAUTHORIZED)
            if "connected" not in message:
                raise DeviceUnreachable(
                    self,
                    f"cannot connect ({message.strip()}): is the phone awake, on the network, "
                    f"with wireless debugging or `adb tcpip` on?",
                )
        self._wait_ready()
        self._device = self._client.device(serial)
        return self._device

    def _wait_ready(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        state = None
        assert self._client is not None
        while time.monotonic() < deadline:
            state = dict(list_devices(self._client)).get(self.adb_serial)
            if state == "device":
                return
            if state not in (None, "connecting", "authorizing"):
                break
            time.sleep(0.2)
        if state == "unauthorized":
            raise DeviceUnauthorized(self, _UNAUTHORIZED)
        if state == "offline":
            raise DeviceUnreachable(self, "device offline: reconnect the cable or run `adb reconnect`")
        if state is None:
            raise DeviceUnreachable(self, "no such device: see `edgekit devices`")
        raise DeviceUnreachable(self, f"device is {state}, not ready")

    def shell(self, argv: Sequence[str], *, timeout_s: float = 60.0, check: bool = True) -> ShellResult:
        """Run `argv` over shell protocol v2 through the server (adbutils' shell2), stdin empty."""
        command = shlex.join(argv)
        device = self._connected()
        with mapped_errors(self, _ERRORS, _lost):
            # adbutils 2.12 `_shell_v2` opens `shell,v2:CMD`: raw, not a PTY, for a non-empty
            # command (AOSP adb daemon/services.cpp ShellService: `command.empty() ? kPty : kRaw`).
            # It never closes the command's stdin: give it /dev/null, so a command that reads
            # stdin ends, as it did with our own close-stdin frame.
            ret = device.shell2(f"{command} </dev/null", timeout=timeout_s, v2=True)
        result = ShellResult(ret.returncode, ret.stdout, ret.stderr)
        return check_result(self.serial, command, result, check)

    def close(self) -> None:
        """Stop a push under way (another thread may call this: Ctrl-C); nothing else is held."""
        proc = self._pushing
        if proc is not None and proc.poll() is None:
            proc.kill()

    def push(self, local: Path, remote: str, *, progress: ProgressFn | None = None) -> None:
        """`adb push` through the same server; progress read from its terminal output."""
        self._connected()
        total = Path(local).stat().st_size
        argv = self._adb_argv("push", str(local), remote)
        import pty  # POSIX only: imported here so that importing edgekit works everywhere

        # adb prints "[ 42%] path" only to a terminal: give it one.
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen(
                argv, env=adb_env(os.environ), stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
            )
        finally:
            os.close(slave)
        self._pushing = proc
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
            self._pushing = None
            if proc.poll() is None:  # cut short (Ctrl-C, or the caller's progress raised): no adb left pushing
                proc.kill()
                proc.wait()
        stderr = ""
        if proc.stderr is not None:
            stderr = proc.stderr.read().decode(errors="replace")
            proc.stderr.close()
        if returncode != 0:
            detail = (stderr or output.decode(errors="replace")).strip().splitlines()
            raise CommandFailed(
                self,
                f"push failed: {detail[-1] if detail else f'adb exited {returncode}'}",
                cmd=shlex.join(argv),
                returncode=returncode,
                stderr=stderr,
            )
        if progress is not None:
            progress(total, total)

    def pull(self, remote: str, local: Path) -> None:
        """`adb pull` through the same server."""
        self._connected()
        argv = self._adb_argv("pull", remote, str(local))
        proc = subprocess.run(argv, env=adb_env(os.environ), capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise CommandFailed(
                self,
                f"pull of {remote} failed: {proc.stderr.strip() or proc.stdout.strip()}",
                cmd=shlex.join(argv),
                returncode=proc.returncode,
                stderr=proc.stderr,
            )
