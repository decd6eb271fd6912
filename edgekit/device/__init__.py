"""Devices: one interface (`Device`), one class per transport, and how a `--device` is opened."""

from __future__ import annotations

import enum
from collections.abc import Callable

from edgekit.device.address import AdbServer, default_server, device_name, split_device
from edgekit.device.base import BatterySample, Device, DeviceFacts, Execution, ShellResult
from edgekit.errors import DeviceError, InputError

__all__ = [
    "AdbServer",
    "BatterySample",
    "Device",
    "DeviceFacts",
    "Execution",
    "ShellResult",
    "Transport",
    "open_device",
    "resolve_devices",
]


class Transport(str, enum.Enum):
    """How to reach a phone: through the adb server (default) or straight to adbd over TCP."""

    ADB = "adb"
    DIRECT = "direct"


def _host_port(spec: str) -> tuple[str, int]:
    """A phone's adbd address HOST[:PORT] (5555, `adb tcpip`'s default port, when none given);
    InputError for a port that is no TCP port (a socket would say only "Connection refused")."""
    host, sep, port = spec.rpartition(":")
    if not sep:
        return spec, 5555
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise InputError(f"--device {spec!r}: give the phone's adbd address as HOST:PORT, PORT 1-65535")
    return host, int(port)


def open_device(spec: str, transport: Transport = Transport.ADB) -> Device:
    """Open `spec`: "local", an adb serial (on the default adb server), `HOST:PORT/SERIAL`
    (SERIAL on the adb server at HOST:PORT), or `host:port` (connected through the server,
    or straight to adbd with Transport.DIRECT)."""
    if spec == "local":
        from edgekit.device.local import LocalDevice

        return LocalDevice()
    server, serial = split_device(spec)
    if transport is Transport.DIRECT:
        if server is not None:
            raise InputError(f"--device {spec}: HOST:PORT/SERIAL names an adb server's device: use --transport adb")
        from edgekit.device.direct import DirectAdbDevice

        host, port = _host_port(spec)
        return DirectAdbDevice(host, port)
    from edgekit.device.adb import AdbDevice

    return AdbDevice(serial, server=server)


ListFn = Callable[[AdbServer], list[tuple[str, str]]]
"""(serial, state) of every device one adb server knows."""


def _list_on(server: AdbServer) -> list[tuple[str, str]]:
    from edgekit.device.adb import list_devices

    return list_devices(server=server)


def resolve_devices(
    specs: tuple[str, ...],
    transport: Transport = Transport.ADB,
    *,
    servers: tuple[AdbServer, ...] = (),
    list_devices: ListFn | None = None,
) -> list[str]:
    """The devices `--device` values name, as `open_device` takes them; none given = the one
    attached phone (on any of `servers`).

    `servers`: the --adb-server values; none = the default server, adb's own (its devices
    keep their bare serials). On named servers every device is `HOST:PORT/SERIAL`; a bare
    SERIAL is looked up on each of them (found on two: an error naming both). "all" = every
    device in state `device` on every server (not `local`). Errors say what to pass.
    `list_devices(server)` gives (serial, state) pairs; default: ask that adb server.
    """
    for spec in specs:
        if not spec.strip():
            raise InputError("--device is empty: give a serial (see `edgekit devices`), HOST:PORT, local or all")
    if transport is Transport.DIRECT:
        for spec in specs:
            if spec != "all":
                _host_port(spec)  # a bad address fails before anything is opened
        if servers:
            raise InputError("--adb-server is for --transport adb: --transport direct talks to the phone's adbd")
        if not specs or "all" in specs:
            raise InputError("--transport direct needs --device HOST:PORT (the phone's adbd address)")
        return list(dict.fromkeys(specs))
    for spec in specs:
        # A malformed HOST:PORT/SERIAL, or an `adb connect` address HOST:PORT whose port is no
        # TCP port, fails before any server is asked.
        _, serial = split_device(spec)
        host, sep, port = serial.rpartition(":")
        if sep and host and port.isdigit():
            _host_port(serial)
    list_devices = list_devices or _list_on
    named = bool(servers)
    targets = tuple(dict.fromkeys(servers)) or (_default_server(),)
    listings: dict[AdbServer, list[tuple[str, str]]] = {}

    def listing(server: AdbServer) -> list[tuple[str, str]]:
        if server not in listings:
            listings[server] = list_devices(server)
        return listings[server]

    def ready() -> list[str]:
        return [device_name(s, serial) for s in targets for serial, state in listing(s) if state == "device"]

    if not specs:
        found = ready()
        if not found:
            states = ", ".join(f"{device_name(s, d)} ({st})" for s in targets for d, st in listing(s))
            raise DeviceError(
                "no device: connect a phone with USB debugging on, or pass --device HOST:PORT or --device local"
                + (f" (seen but not ready: {states})" if states else "")
            )
        if len(found) > 1:
            raise InputError(f"several devices ({', '.join(found)}): choose with --device SERIAL (or --device all)")
        return found
    out: list[str] = []
    for spec in specs:
        if spec == "all":
            found = ready()
            if not found:
                where = f" on {', '.join(map(str, targets))}" if named else ""
                raise DeviceError(f"--device all: no adb device is ready{where} (see `edgekit devices`)")
            out.extend(found)
        elif spec == "local" or split_device(spec)[0] is not None or not named:
            out.append(spec)
        else:
            out.append(_look_up(spec, targets, listing))
    return list(dict.fromkeys(out))


def _default_server() -> AdbServer:
    import os

    return default_server(os.environ)


def _look_up(serial: str, servers: tuple[AdbServer, ...], listing: ListFn) -> str:
    """The one named server that lists `serial`, as `HOST:PORT/SERIAL`."""
    holders = [s for s in servers if any(d == serial for d, _ in listing(s))]
    if len(holders) > 1:
        names = " and ".join(device_name(s, serial) for s in holders)
        raise InputError(f"--device {serial} is on several adb servers: {names}: name one as HOST:PORT/SERIAL")
    if holders:
        return device_name(holders[0], serial)
    if len(servers) == 1:  # e.g. a host:port to `adb connect` there: the device says what went wrong
        return device_name(servers[0], serial)
    where = ", ".join(map(str, servers))
    raise DeviceError(f"--device {serial}: no such device on the adb servers {where} (see `edgekit devices`)")
