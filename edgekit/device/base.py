"""The Device interface every transport implements, and the values it returns.

A transport implements `shell`, `push` and `pull`; `getprop`, `props`, `facts` and
`battery` are built on `shell` here, once, for all of them. A transport translates its
library's exceptions through one table (`ErrorTable`, applied by `mapped_errors`) into the
DeviceError subclasses of `edgekit.errors`, as httpx's `map_httpcore_exceptions` does.
Every argv is quoted with `shlex.join` before it reaches a device shell. What callers need
to know about a device they ask it (`execution`: how it runs a model; `path()`: where its
files go), never which transport class it is.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import enum
import shlex
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Self

from edgekit.device import parsers
from edgekit.errors import CommandFailed, DeviceError

ProgressFn = Callable[[int, int], None]
"""`progress(done, total)`, counted in what the function taking it says: bytes for
`Device.push`, conversations for a bench. The one progress signature (a deploy's
`PushProgress` adds the label of the file being pushed)."""

DEVICE_TMP = "/data/local/tmp"
_SYSFS_BATTERY = "/sys/class/power_supply/battery"
_SYSFS_FIELDS = (
    "capacity",
    "status",
    "charge_counter",
    "current_now",
    "voltage_now",
    "temp",
    "charge_full_design",
    "charge_full",
)
# Google's Android Emulator (goldfish / ranchu boards) has a fake battery: its figures are
# simulated. Props as the emulator's kernel command line and init set them (AOSP
# device/generic/goldfish: ro.kernel.qemu / ro.boot.qemu = 1, ro.hardware = ranchu|goldfish).
_QEMU_PROPS = (("ro.kernel.qemu", {"1"}), ("ro.boot.qemu", {"1"}), ("ro.hardware", {"ranchu", "goldfish"}))


@dataclasses.dataclass(frozen=True)
class ShellResult:
    """A finished device command."""

    returncode: int
    stdout: str
    stderr: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeviceFacts:
    """What a device is. None = the device does not say."""

    serial: str
    manufacturer: str | None
    model: str | None
    soc: str | None
    abis: tuple[str, ...]
    android_release: str | None
    sdk: int | None
    free_bytes: int | None
    emulated: bool
    emulator: str | None = None
    """Which emulator, and the evidence: "edgekit device emulator", "Android Emulator (ro.hardware=ranchu)"."""


class BatterySource(enum.StrEnum):
    """Where a BatterySample's figures were read."""

    SYSFS = "sysfs"
    """/sys/class/power_supply/battery (dumpsys battery for what it lacks)."""
    DUMPSYS = "dumpsys"
    """`dumpsys battery` only (sysfs unreadable)."""
    NONE = "none"
    """No battery to read (a computer without one): every figure is None."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatterySample:
    """One reading of the fuel gauge. None = not exposed by this device (never 0 for unknown).

    `current_now_ua` is as the device reports it: its sign convention differs by vendor.
    """

    level_pct: int | None
    status: int | None
    plugged: bool | None
    charge_counter_uah: int | None
    current_now_ua: int | None
    voltage_now_uv: int | None
    temperature_c: float | None
    charge_full_design_uah: int | None
    source: BatterySource
    charge_full_uah: int | None = None
    """What the battery holds when full today (sysfs `charge_full`); less than design as it ages."""


class Execution(str, enum.Enum):
    """How a device runs a model."""

    RUNNER = "runner"
    """The model's runtime's runner binary (edgekit.runtimes), which deploy pushes beside the
    model, driven by the harness's sh scripts on the device (a phone)."""
    ENGINE = "engine"
    """This computer's engine (edgekit.engine) in this process: the device is this computer;
    no runner and no harness scripts."""


class Device(abc.ABC):
    """A phone (or this computer) that edgekit can run commands on and copy files to.

    A context manager: `with open_device(...) as device:` closes it however the block ends.
    """

    serial: str
    work_root: str = f"{DEVICE_TMP}/edgekit"
    """Where edgekit keeps its files on this device."""
    execution: Execution = Execution.RUNNER
    """How this device runs a model: deploy and battery-bench ask this, not the transport."""

    def path(self, *parts: str) -> str:
        """The device path of `parts` (relative names) under the work root."""
        return "/".join([self.work_root.rstrip("/"), *parts])

    @abc.abstractmethod
    def shell(self, argv: Sequence[str], *, timeout_s: float = 60.0, check: bool = True) -> ShellResult:
        """Run `argv` (quoted with shlex.join) in the device shell, stdin empty; raise
        DeviceError on a non-zero exit unless `check` is False."""

    @abc.abstractmethod
    def push(self, local: Path, remote: str, *, progress: ProgressFn | None = None) -> None:
        """Copy local file `local` to device path `remote` (overwriting)."""

    @abc.abstractmethod
    def pull(self, remote: str, local: Path) -> None:
        """Copy device file `remote` to `local`."""

    def close(self) -> None:  # noqa: B027 - most transports hold nothing
        """Release the connection, if the transport holds one."""

    def __enter__(self) -> Self:
        """The device itself: `with device:` closes it when the block ends."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        """Close the device (`close`), whether the block ended normally or raised."""
        self.close()

    def script(self, script: str, *, timeout_s: float = 60.0, check: bool = True) -> ShellResult:
        """Run a POSIX sh script whose parts the caller quoted (shlex.quote)."""
        return self.shell(["sh", "-c", script], timeout_s=timeout_s, check=check)

    def getprop(self, key: str) -> str:
        """Property `key`'s value (empty if unset)."""
        return self.shell(["getprop", key]).stdout.strip()

    def props(self) -> dict[str, str]:
        """Every property the device lists (`getprop` without a key), by name."""
        return parsers.parse_getprop(self.shell(["getprop"]).stdout)

    def facts(self) -> DeviceFacts:
        """Model, SoC, ABIs, Android version, free space of /data/local/tmp."""
        props = self.props()
        df = self.shell(["df", DEVICE_TMP], check=False)
        abis = props.get("ro.product.cpu.abilist") or props.get("ro.product.cpu.abi") or ""
        sdk = props.get("ro.build.version.sdk", "")
        emulator = "edgekit device emulator" if props.get("ro.edgekit.emulated") == "1" else None
        if not props:  # a getprop that only answers single keys: ask for the emulator's ones
            props = {key: self.getprop(key) for key, _ in _QEMU_PROPS}
            props = {k: v for k, v in props.items() if v}
        for key, values in _QEMU_PROPS:
            if emulator is None and props.get(key) in values:
                emulator = f"Android Emulator ({key}={props[key]})"
        return DeviceFacts(
            serial=self.serial,
            manufacturer=props.get("ro.product.manufacturer") or None,
            model=props.get("ro.product.model") or None,
            soc=props.get("ro.soc.model") or None,
            abis=tuple(a for a in abis.split(",") if a),
            android_release=props.get("ro.build.version.release") or None,
            sdk=int(sdk) if sdk.isdigit() else None,
            free_bytes=parsers.parse_df_available_bytes(df.stdout) if df.returncode == 0 else None,
            emulated=emulator is not None,
            emulator=emulator,
        )

    def battery(self) -> BatterySample:
        """Read the fuel gauge: sysfs where readable, the rest from `dumpsys battery`."""
        script = (
            f"cd {shlex.quote(_SYSFS_BATTERY)} 2>/dev/null || exit 0; "
            f'for f in {" ".join(_SYSFS_FIELDS)}; do printf \'%s=\' "$f"; cat "$f" 2>/dev/null || echo; done'
        )
        sysfs: dict[str, str] = {}
        for line in self.script(script, check=False).stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep and value.strip():
                sysfs[key] = value.strip()

        info = parsers.parse_dumpsys_battery(self.shell(["dumpsys", "battery"], check=False).stdout)
        temp = parsers.parse_int(sysfs.get("temp"))
        status = parsers.parse_sysfs_status(sysfs["status"]) if "status" in sysfs else None
        counter = parsers.parse_int(sysfs.get("charge_counter"))
        current = parsers.parse_int(sysfs.get("current_now"))
        return BatterySample(
            level_pct=parsers.parse_int(sysfs.get("capacity")) if "capacity" in sysfs else info.level_pct,
            status=status if status is not None else info.status,
            plugged=info.plugged,
            charge_counter_uah=counter if counter is not None else info.charge_counter_uah,
            current_now_ua=current if current is not None else info.current_now_ua,
            voltage_now_uv=parsers.parse_int(sysfs.get("voltage_now")) or info.voltage_uv,
            temperature_c=temp / 10 if temp is not None else info.temperature_c,
            charge_full_design_uah=parsers.parse_int(sysfs.get("charge_full_design")),
            charge_full_uah=parsers.parse_int(sysfs.get("charge_full")),
            source=BatterySource.SYSFS if sysfs else BatterySource.DUMPSYS,
        )


def check_result(serial: str, argv: Sequence[str] | str, result: ShellResult, check: bool) -> ShellResult:
    """Raise CommandFailed for a failed command when `check` is set; else return the result."""
    if check and result.returncode != 0:
        cmd = argv if isinstance(argv, str) else shlex.join(argv)
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise CommandFailed(
            serial,
            f"`{cmd}` exited {result.returncode}" + (f": {detail[-1]}" if detail else ""),
            cmd=cmd,
            returncode=result.returncode,
            stderr=result.stderr,
        )
    return result


ErrorTable = Mapping[type[BaseException], Callable[[Device, str], DeviceError]]
"""A transport's table: its library's exception classes -> the DeviceError subclass each means
(`DeviceTimeout`, `LinkLost`...: built from the device and the message without the prefix)."""


def map_error(table: ErrorTable, exc: BaseException) -> Callable[[Device, str], DeviceError] | None:
    """The subclass `table` gives `exc`: that of its most specific class in the table (None: not listed)."""
    for klass in type(exc).__mro__:
        if klass in table:
            return table[klass]
    return None


@contextlib.contextmanager
def mapped_errors(
    device: Device,
    table: ErrorTable,
    message: Callable[[BaseException], str],
    *,
    on_error: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Re-raise an exception `table` lists as its DeviceError subclass, for `device`, with
    `message(exc)` (the subclass writes the serial prefix), from the original; `on_error`
    runs first (a transport that must drop a broken connection). Others pass through."""
    try:
        yield
    except Exception as exc:
        to = map_error(table, exc)
        if to is None:
            raise
        if on_error is not None:
            on_error()
        raise to(device, message(exc)) from exc
