"""DirectAdbDevice: the ADB protocol spoken straight to a phone's adbd over TCP (adb-shell).

No adb server. Reuses `~/.android/adbkey` (created, mode 600, only if missing; an existing
key is never modified) so a phone that already trusts this computer's adb keeps trusting it.
The constructor does no I/O: the first command connects. Fixes for adb-shell 0.4.4:

* `TcpTransport.bulk_write` returns after a partial `send` and adb-shell drops the rest
  (large pushes over Wi-Fi stall; JeffLIrion/adb_shell#205): our transport sends all.
* `shell()` only speaks the old `shell:` service (no exit code, stdout and stderr merged):
  we drive `shell,v2,raw:` ourselves, stdin included.
* `transport_timeout_s=None` and the default 10 s read timeout cut long commands short:
  every call passes its own timeout.
* A key the phone never accepts surfaces as a TCP timeout: we say "device unauthorized".
* A connection the phone closes makes adb-shell spin on empty reads until its read
  timeout: our transport reports it at once.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adb_shell import constants as adb_constants
from adb_shell import exceptions as adb_exceptions
from adb_shell.adb_device import AdbDevice as _AdbShellDevice
from adb_shell.adb_message import AdbMessage
from adb_shell.transport.tcp_transport import TcpTransport

from edgekit.device import shell_v2
from edgekit.device.base import Device, ErrorTable, ProgressFn, ShellResult, check_result, mapped_errors
from edgekit.errors import CommandFailed, DeviceTimeout, DeviceUnauthorized, DeviceUnreachable, LinkLost

# What adb-shell raises under a command or a copy (adb_shell exceptions.py, adb_device.py),
# and what each means; every one drops the connection (the next command connects again).
# AdbTimeoutError: no expected answer within read_timeout_s; TcpTimeoutException: our
# transport's select() timed out; AdbConnectionError: not connected; InvalidResponseError /
# InvalidCommandError: a garbled stream; AdbCommandFailureException: adbd answered FAIL to
# opening a service; PushFailedError: the sync service's FAIL (e.g. an unwritable path).
_ERRORS: ErrorTable = {
    adb_exceptions.TcpTimeoutException: DeviceTimeout,
    adb_exceptions.AdbTimeoutError: DeviceTimeout,
    TimeoutError: DeviceTimeout,
    OSError: LinkLost,
    adb_exceptions.AdbConnectionError: LinkLost,
    adb_exceptions.InvalidResponseError: LinkLost,
    adb_exceptions.InvalidCommandError: LinkLost,
    adb_exceptions.PushFailedError: CommandFailed,
    adb_exceptions.AdbCommandFailureException: CommandFailed,
}


def _lost(exc: BaseException) -> str:
    return f"connection to the device lost ({exc})"


def adb_key_path() -> Path:
    """Where adb keeps this computer's private key: $ANDROID_USER_HOME or ~/.android, `adbkey`."""
    home = os.environ.get("ANDROID_USER_HOME") or str(Path.home() / ".android")
    return Path(home) / "adbkey"


def ensure_adb_key(path: Path | None = None) -> Path:
    """Return the adb private key path, creating the key pair if it is missing.

    A key edgekit creates is made mode 600; an existing key (the user's, or adb's) is left
    exactly as it is."""
    from adb_shell.auth.keygen import keygen

    path = path or adb_key_path()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        keygen(str(path))
        path.chmod(0o600)
    return path


class _SendAllTcpTransport(TcpTransport):  # type: ignore[misc]
    """adb-shell's TCP transport, but a write sends every byte (adb_shell#205), a closed
    connection is an error at once (adb-shell would spin on empty reads until its timeout),
    and so is a connection closed under a read or write by another thread (Ctrl-C closes
    the device under a push): adb-shell's close() sets the socket to None, which select()
    refuses with TypeError, or leaves it closed, which select() refuses with ValueError."""

    def _socket(self) -> socket.socket:
        conn: socket.socket | None = self._connection
        if conn is None or conn.fileno() < 0:
            raise ConnectionAbortedError(f"the connection to {self._host}:{self._port} was closed")
        return conn

    def _select(self, conn: socket.socket, *, write: bool, timeout_s: float | None) -> bool:
        try:
            r, w, _ = select.select([] if write else [conn], [conn] if write else [], [], timeout_s)
        except (ValueError, TypeError) as exc:  # closed by another thread meanwhile
            raise ConnectionAbortedError(f"the connection to {self._host}:{self._port} was closed") from exc
        return bool(w if write else r)

    def bulk_read(self, numbytes: int, transport_timeout_s: float | None) -> bytes:
        conn = self._socket()
        if not self._select(conn, write=False, timeout_s=transport_timeout_s):
            raise adb_exceptions.TcpTimeoutException(f"reading from {self._host}:{self._port} timed out")
        data = conn.recv(numbytes)
        if not data:
            raise ConnectionResetError(f"{self._host}:{self._port} closed the connection")
        return data

    def bulk_write(self, data: bytes, transport_timeout_s: float | None) -> int:
        conn = self._socket()
        view = memoryview(data)
        while view:
            if not self._select(conn, write=True, timeout_s=transport_timeout_s):
                raise adb_exceptions.TcpTimeoutException(f"sending to {self._host}:{self._port} timed out")
            try:
                sent = conn.send(view)
            except BlockingIOError:
                continue
            view = view[sent:]
        return len(data)


class DirectAdbDevice(Device):
    """A phone's adbd at `host:port`, reached without an adb server.

    Nothing happens on construction: the key is read (or created) and the connection made
    on the first command; connection errors are DeviceErrors from that call
    (DeviceUnreachable, DeviceUnauthorized)."""

    def __init__(
        self,
        host: str,
        port: int = 5555,
        *,
        key_path: Path | None = None,
        connect_timeout_s: float = 10.0,
        auth_timeout_s: float = 30.0,
    ) -> None:
        self.serial = f"{host}:{port}"
        self._host, self._port = host, port
        self._key_path = key_path
        self._io_timeout_s = connect_timeout_s
        self._auth_timeout_s = auth_timeout_s
        self._dev: Any = None

    def _connected(self) -> Any:
        """adb-shell's device, connected (on first use)."""
        if self._dev is None:
            from adb_shell.auth.sign_cryptography import CryptographySigner

            signer = CryptographySigner(str(ensure_adb_key(self._key_path)))
            dev = _AdbShellDevice(
                _SendAllTcpTransport(self._host, self._port), default_transport_timeout_s=self._io_timeout_s
            )
            self._connect(dev, signer, self._io_timeout_s, self._auth_timeout_s)
            self._dev = dev
        return self._dev

    def _connect(self, dev: Any, signer: Any, connect_timeout_s: float, auth_timeout_s: float) -> None:
        reached = False
        try:
            # adb-shell connects the socket first; a refusal or unreachable host fails here.
            socket.create_connection((self._host, self._port), timeout=connect_timeout_s).close()
            reached = True
            dev.connect(
                rsa_keys=[signer],
                transport_timeout_s=connect_timeout_s,
                auth_timeout_s=auth_timeout_s,
                read_timeout_s=connect_timeout_s,
            )
        except (adb_exceptions.TcpTimeoutException, adb_exceptions.AdbTimeoutError) as exc:
            dev.close()
            if reached:  # adbd took the connection but never answered our key: its prompt waits
                raise DeviceUnauthorized(
                    self,
                    "device unauthorized: accept the RSA prompt on the phone (tick 'Always allow'), then run again",
                ) from exc
            raise DeviceUnreachable(self, "no answer from the device") from exc
        except adb_exceptions.DeviceAuthError as exc:
            dev.close()
            raise DeviceUnauthorized(self, f"device unauthorized: {exc}") from exc
        except OSError as exc:
            dev.close()
            raise DeviceUnreachable(
                self,
                f"cannot connect ({exc.strerror or exc}): is the phone on the network "
                f"with wireless debugging or `adb tcpip` enabled?",
            ) from exc

    def close(self) -> None:
        """Close the TCP connection (the next command connects again)."""
        dev, self._dev = self._dev, None  # once, whichever thread (Ctrl-C's or a failing push's) comes first
        if dev is not None:
            dev.close()

    def _mapped(self) -> contextlib.AbstractContextManager[None]:
        """adb-shell's exceptions as this module's table says, the connection closed first."""
        return mapped_errors(self, _ERRORS, _lost, on_error=self.close)

    def shell(self, argv: Sequence[str], *, timeout_s: float = 60.0, check: bool = True) -> ShellResult:
        """Run `argv` through `shell,v2,raw:` (stdin closed at once), separate stderr and the exit code."""
        command = shlex.join(argv)
        with self._mapped():
            result = self._shell_v2(command, timeout_s, b"")
        return check_result(self.serial, command, result, check)

    def _shell_v2(self, command: str, timeout_s: float, stdin: bytes) -> ShellResult:
        dev = self._connected()
        # The command may print nothing for longer than any I/O timeout: its own timeout governs reads.
        info = dev._open(b"shell,v2,raw:" + command.encode(), timeout_s, timeout_s, timeout_s)
        chunk = max(1, dev._maxdata - 5)
        pending = shell_v2.stdin_frames(stdin, chunk)
        collector = shell_v2.Collector()

        def send_next() -> None:
            dev._io_manager.send(AdbMessage(adb_constants.WRTE, info.local_id, info.remote_id, pending.pop(0)), info)

        send_next()
        while True:
            cmd, _, _, data = dev._io_manager.read(
                [adb_constants.OKAY, adb_constants.WRTE, adb_constants.CLSE], info, allow_zeros=False
            )
            if cmd == adb_constants.WRTE:
                dev._okay(info)
                collector.feed(data)
            elif cmd == adb_constants.OKAY:
                if pending:
                    send_next()
            else:  # CLSE: echo it, as adbd expects
                dev._io_manager.send(AdbMessage(adb_constants.CLSE, info.local_id, info.remote_id), info)
                break
        return collector.result(self.serial, command)

    def push(self, local: Path, remote: str, *, progress: ProgressFn | None = None) -> None:
        """Copy `local` to `remote` over the sync service."""
        total = Path(local).stat().st_size
        done = 0

        def callback(_path: str, written: int, _total: int) -> None:
            nonlocal done
            done += written
            if progress is not None:
                progress(done, total)

        with self._mapped():
            self._connected().push(
                str(local),
                remote,
                st_mode=0o100644,
                progress_callback=callback,
                transport_timeout_s=self._io_timeout_s,
                read_timeout_s=max(60.0, total / 1e6),
            )

    def pull(self, remote: str, local: Path) -> None:
        """Copy `remote` to `local` over the sync service."""
        with self._mapped():
            self._connected().pull(remote, str(local), transport_timeout_s=self._io_timeout_s, read_timeout_s=60.0)
