"""Where a phone is: an adb server (`AdbServer`) and a serial on it. Pure: no I/O.

    AdbServer.parse("10.0.0.5:5037")       a server named by --adb-server HOST:PORT
    default_server(os.environ)              the server adb itself would use, by adb's own precedence
    split_device("10.0.0.5:5037/R5CT1")     (AdbServer | None, serial): `--device HOST:PORT/SERIAL`

A phone on a named server is called `HOST:PORT/SERIAL` everywhere (messages, result files,
--collect commands), so that the name alone finds it again; on the default server it keeps
its bare serial, as adb calls it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from edgekit.errors import InputError

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 5037


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdbServer:
    """An adb server: `host` and TCP `port`. `named` False: the default server, found as adb
    finds it (edgekit starts that one if none runs, as adb does; a named one never)."""

    host: str
    port: int
    named: bool = True

    def __post_init__(self) -> None:
        if not self.host or not 0 < self.port < 65536:
            raise InputError(
                f"{self.host}:{self.port} is not an adb server address: give HOST:PORT, e.g. 10.0.0.5:5037"
            )

    @classmethod
    def parse(cls, spec: str) -> AdbServer:
        """`HOST:PORT` (`[::1]:5037` for IPv6) as --adb-server takes it."""
        host, sep, port = spec.strip().rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit():
            raise InputError(f"--adb-server {spec!r}: give HOST:PORT, e.g. 10.0.0.5:5037 or localhost:5037")
        return cls(host=host, port=int(port))

    @property
    def is_local(self) -> bool:
        """On this computer (adb starts a server only there)."""
        return self.host in ("localhost", "127.0.0.1", "::1") or self.host.startswith("127.")

    @property
    def connect_host(self) -> str:
        """The host to open a socket to (`localhost` as 127.0.0.1: adb's server listens on IPv4 loopback)."""
        return "127.0.0.1" if self.host == "localhost" else self.host

    def adb_args(self) -> list[str]:
        """The adb global options that point an adb process (run with `adb_env`) at this server.

        -H/-P win over every environment variable (client/commandline.cpp, adb_commandline:
        "If -L, -H, or -P are specified, ignore environment variables"). The default server
        on localhost gets -P alone, adb's own `tcp:PORT`: with any -H adb calls the server
        remote and never starts it ("cannot start server on remote host"); a named server
        always gets -H, so an adb we run never starts one in its place."""
        if not self.named and self.host == DEFAULT_HOST:
            return ["-P", str(self.port)]
        return ["-H", self.host, "-P", str(self.port)]

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def default_server(environ: Mapping[str, str]) -> AdbServer:
    """The server a plain `adb` would talk to, in adb's own order (AOSP packages/modules/adb,
    client/commandline.cpp, adb_commandline(): -L/-H/-P first, then $ADB_SERVER_SOCKET, then
    $ANDROID_ADB_SERVER_ADDRESS and $ANDROID_ADB_SERVER_PORT, default port 5037 on localhost).

    adb reads ANDROID_ADB_SERVER_ADDRESS; adbutils reads ANDROID_ADB_SERVER_HOST instead. We
    follow adb, so that edgekit and `adb devices` see the same server."""
    socket_spec = environ.get("ADB_SERVER_SOCKET", "")
    if socket_spec:
        kind, _, rest = socket_spec.partition(":")
        host, _, port = rest.rpartition(":")
        if kind != "tcp" or not port.isdigit():
            raise InputError(
                f"ADB_SERVER_SOCKET={socket_spec!r}: edgekit speaks to an adb server over TCP only: "
                "set it to tcp:HOST:PORT (or tcp:PORT), or pass --adb-server HOST:PORT"
            )
        return AdbServer(host=host.removeprefix("[").removesuffix("]") or DEFAULT_HOST, port=int(port), named=False)
    host = environ.get("ANDROID_ADB_SERVER_ADDRESS") or DEFAULT_HOST
    port_text = environ.get("ANDROID_ADB_SERVER_PORT", "")
    if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        # adb itself exits here ("must be a positive number less than 65535").
        raise InputError(f"ANDROID_ADB_SERVER_PORT={port_text!r} is not a port: set it to a number below 65536")
    return AdbServer(host=host, port=int(port_text) if port_text else DEFAULT_PORT, named=False)


SERVER_VARIABLES = ("ADB_SERVER_SOCKET", "ANDROID_ADB_SERVER_ADDRESS", "ANDROID_ADB_SERVER_PORT")
"""The environment variables by which adb picks its server (`default_server`)."""


def adb_env(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without the server variables: with -P alone adb would still read
    $ANDROID_ADB_SERVER_ADDRESS; an adb we run takes its server from `adb_args` only."""
    return {k: v for k, v in environ.items() if k not in SERVER_VARIABLES}


def split_device(spec: str) -> tuple[AdbServer | None, str]:
    """`HOST:PORT/SERIAL` -> (that server, SERIAL); a bare serial -> (None, serial)."""
    server, sep, serial = spec.partition("/")
    if not sep:
        return None, spec
    if not serial:
        raise InputError(f"--device {spec!r}: give HOST:PORT/SERIAL (the serial the adb server lists)")
    return AdbServer.parse(server), serial


def device_name(server: AdbServer, serial: str) -> str:
    """What a device is called: `HOST:PORT/SERIAL` on a named server, its serial on the default one."""
    return f"{server}/{serial}" if server.named else serial
