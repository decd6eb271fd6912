"""Devices: one interface (`Device`), one class per transport, and how a `--device` is opened."""

from __future__ import annotations

import enum
from collections.abc import Callable

from edgekit.device.base import BatterySample, Device, DeviceFacts, Execution, ShellResult
from edgekit.errors import DeviceError, InputError

__all__ = [
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
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit():
        return spec, 5555
    return host, int(port)


def open_device(spec: str, transport: Transport = Transport.ADB) -> Device:
    """Open `spec`: "local", an adb serial, or `host:port` (connected through the server, or
    straight to adbd with Transport.DIRECT)."""
    if spec == "local":
        from edgekit.device.local import LocalDevice

        return LocalDevice()
    if transport is Transport.DIRECT:
        from edgekit.device.direct import DirectAdbDevice

        host, port = _host_port(spec)
        return DirectAdbDevice(host, port)
    from edgekit.device.adb import AdbDevice

    return AdbDevice(spec)


def resolve_devices(
    specs: tuple[str, ...],
    transport: Transport = Transport.ADB,
    *,
    list_devices: Callable[[], list[tuple[str, str]]] | None = None,
) -> list[str]:
    """The serials `--device` values name; none given = the one attached phone.

    "all" = every adb device in state `device` (not `local`). Errors say what to pass.
    `list_devices` gives (serial, state) pairs; default: ask the adb server.
    """
    if transport is Transport.DIRECT:
        if not specs or "all" in specs:
            raise InputError("--transport direct needs --device HOST:PORT (the phone's adbd address)")
        return list(dict.fromkeys(specs))
    needs_list = not specs or "all" in specs
    ready: list[str] = []
    if needs_list:
        if list_devices is None:
            from edgekit.device.adb import list_devices as adb_list_devices

            list_devices = adb_list_devices
        listed = list_devices()
        ready = [serial for serial, state in listed if state == "device"]
        if not specs:
            if not ready:
                states = ", ".join(f"{s} ({st})" for s, st in listed)
                raise DeviceError(
                    "no device: connect a phone with USB debugging on, or pass --device HOST:PORT or --device local"
                    + (f" (seen but not ready: {states})" if states else "")
                )
            if len(ready) > 1:
                raise InputError(f"several devices ({', '.join(ready)}): choose with --device SERIAL (or --device all)")
            return ready
    out: list[str] = []
    for spec in specs:
        out.extend(ready if spec == "all" else [spec])
    if "all" in specs and not ready:
        raise DeviceError("--device all: no adb device is ready (see `edgekit devices`)")
    return list(dict.fromkeys(out))
