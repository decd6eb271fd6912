"""LocalDevice: this computer as a device.

Deploy copies into a local folder (the user cache, `edgekit/local-device/`); the runner is
this computer's engine (edgekit.engine), in this process. Its battery is read from
`/sys/class/power_supply/BAT*` where the computer has one, else every field is None.
What fails here (a command past its timeout, a copy the disk refuses) becomes a DeviceError
through one table, `_ERRORS`, as the phone transports' failures do.
"""

from __future__ import annotations

import platform
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from edgekit._data import user_cache_dir
from edgekit.device.base import (
    BatterySample,
    BatterySource,
    Device,
    DeviceFacts,
    ErrorTable,
    Execution,
    ProgressFn,
    ShellResult,
    check_result,
    mapped_errors,
)
from edgekit.device.parsers import parse_int, parse_sysfs_status
from edgekit.errors import CommandFailed, DeviceTimeout

# What this computer raises under a command or a copy, and what each means: subprocess.run
# killed the command at its timeout (TimeoutExpired); the shell could not start, or a copy
# failed (OSError: a missing file, a full disk, no permission).
_ERRORS: ErrorTable = {
    subprocess.TimeoutExpired: DeviceTimeout,
    OSError: CommandFailed,
}


def _failed(what: str) -> Callable[[BaseException], str]:
    """The message of `what` (a quoted command, "push of X") failing with an exception."""

    def message(exc: BaseException) -> str:
        if isinstance(exc, subprocess.TimeoutExpired):
            return f"{what} timed out after {exc.timeout:.0f} s"
        return f"{what} failed: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"

    return message


_ABI = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64-v8a", "arm64": "arm64-v8a"}


def local_root() -> Path:
    """The folder that plays /data/local/tmp/edgekit for the local device."""
    return user_cache_dir() / "local-device"


class LocalDevice(Device):
    """This computer. Paths are local paths; commands run with /bin/sh."""

    serial = "local"
    execution = Execution.ENGINE

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or local_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self.work_root = str(self.root)

    def path(self, *parts: str) -> str:
        """The local path of `parts` under the local device folder."""
        return str(Path(self.work_root, *parts))

    def shell(self, argv: Sequence[str], *, timeout_s: float = 60.0, check: bool = True) -> ShellResult:
        """Run `argv` here (through /bin/sh, like a device shell)."""
        command = shlex.join(argv)
        with mapped_errors(self, _ERRORS, _failed(f"`{command}`")):
            proc = subprocess.run(
                ["/bin/sh", "-c", command], input=b"", capture_output=True, timeout=timeout_s, cwd=self.root
            )
        result = ShellResult(
            proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        )
        return check_result(self.serial, command, result, check)

    def push(self, local: Path, remote: str, *, progress: ProgressFn | None = None) -> None:
        """Copy a file (a local copy: "remote" is a local path)."""
        with mapped_errors(self, _ERRORS, _failed(f"push of {local}")):
            Path(remote).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, remote)
        if progress is not None:
            size = Path(local).stat().st_size
            progress(size, size)

    def pull(self, remote: str, local: Path) -> None:
        """Copy a file back."""
        with mapped_errors(self, _ERRORS, _failed(f"pull of {remote}")):
            shutil.copyfile(remote, local)

    def facts(self) -> DeviceFacts:
        """This computer's OS, CPU architecture and free space in the local device folder."""
        machine = platform.machine().lower()
        return DeviceFacts(
            serial="local",
            manufacturer=None,
            model=platform.node() or None,
            soc=_cpu_model(),
            abis=(_ABI.get(machine, machine),),
            android_release=None,
            sdk=None,
            free_bytes=shutil.disk_usage(self.root).free,
            emulated=False,
        )

    def battery(self) -> BatterySample:
        """A laptop battery from sysfs if there is one; otherwise every field is None."""
        supplies = sorted(Path("/sys/class/power_supply").glob("BAT*"))
        if not supplies:
            return BatterySample(
                level_pct=None,
                status=None,
                plugged=None,
                charge_counter_uah=None,
                current_now_ua=None,
                voltage_now_uv=None,
                temperature_c=None,
                charge_full_design_uah=None,
                source=BatterySource.NONE,
            )
        bat = supplies[0]

        def read(name: str) -> str | None:
            try:
                return (bat / name).read_text().strip()
            except OSError:
                return None

        status_text = read("status")
        status = parse_sysfs_status(status_text) if status_text else None
        return BatterySample(
            level_pct=parse_int(read("capacity")),
            status=status,
            plugged=None if status is None else status != 3,
            charge_counter_uah=parse_int(read("charge_now")),
            current_now_ua=parse_int(read("current_now")),
            voltage_now_uv=parse_int(read("voltage_now")),
            temperature_c=None,
            charge_full_design_uah=parse_int(read("charge_full_design")),
            source=BatterySource.SYSFS,
        )


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None
