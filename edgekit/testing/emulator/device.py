"""The emulated phone: its sandbox, props, simulated battery and screen, and its server.

`AdbDeviceEmulator` listens on 127.0.0.1 and hands each connection to `wire.Connection`.
Commands run in a sandbox folder: device paths under /data, /sdcard, /sys, /system and
/vendor are mapped into it by rewriting them where they start a word in the command
string, and in sync paths; a sync path that escapes the sandbox (`..`, symlinks) is
refused. This is a test double, not a jail: a command can still name host paths that do
not start with those prefixes.

The sandbox holds what a phone's tools would read: the stand-in programs of `standins/`
(real files, copied first onto every command's PATH: getprop, dumpsys, sh, settings, input,
df), the props they print, sysfs `power_supply/battery/*` and
`power_supply/{usb,ac}/{online,type}`, and `dumpsys battery` / `thermalservice` text, all
republished from the simulated battery (`testing.battery`) every `tick_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import platform
import posixpath
import re
import shutil
import signal
import textwrap
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from edgekit._files import atomic_write_text
from edgekit.device.local import _ABI as _HOST_ABIS  # one table for LocalDevice and this
from edgekit.testing.battery import BatteryController
from edgekit.testing.emulator.wire import Connection

MAPPED_ROOTS = ("data", "sdcard", "sys", "system", "vendor")
_PATH_IN_COMMAND = re.compile(r"(?:(?<=[\s'\"=:;|&(<>`])|^)/(" + "|".join(MAPPED_ROOTS) + r")(?=[/\s'\";|&)<>`]|$)")


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
        self._connections: set[Connection] = set()
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
        for standin in resources.files(__package__).joinpath("standins").iterdir():
            path = bin_dir / standin.name
            path.write_text(standin.read_text())
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

    def command_env(self) -> dict[str, str]:
        """The environment every command runs with: the stand-ins first on PATH, HOME and
        TMPDIR in the sandbox, DEVICE_ROOT, and `extra_env`."""
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
        conn = Connection(self, reader, writer)
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
