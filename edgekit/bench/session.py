"""battery-bench end to end: deploy, prepare the phone, run detached, collect, compute.

start_run(device, artifact, config)      deploy + prepare + start the driver; returns the run id
follow(device, run_id)                   wait for the driver to finish
collect(device, run_id)                  pull the run folder and compute a BenchResult
resume(device, run_id)                   restart a run that was cut off (finished conversations are kept)
battery_bench(device, artifact, config)  all of the above, attached (or `local`)
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import math
import re
import secrets
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.artifact import Artifact
from edgekit.bench import power as power_lib
from edgekit.bench import runner as run_lib
from edgekit.bench.result import BenchResult, TurnRecord, summarise
from edgekit.bench.stats import t_quantile
from edgekit.bench.workload import Conversation, Workload, load_workload
from edgekit.deploy import DeployConfig, DeployResult, deploy, harness_files, signal_name
from edgekit.device import parsers
from edgekit.device.base import Device
from edgekit.device.local import LocalDevice
from edgekit.engine import open_engine
from edgekit.errors import DeviceError, InputError
from edgekit.probe import MULTI_TURN, ONE_SHOT, RunnerProbe, chat_flags

ProgressFn = Callable[[int, int], None]
"""`progress(conversations_done, conversations_total)`."""

BASELINE_CAP_S = 300.0
DEFAULT_TURN_TIMEOUT_S = 300
DRIVER_START_GRACE_S = 60.0
HISTORY_RESERVE_TOKENS = 256
ASSUMED_CACHE_TOKENS = 1024
"""A turn (one-shot: with its model load) that takes longer is killed and the run fails."""
ANSWER_WORDS_PER_TOKEN = 0.75
"""One-shot prompts carry earlier answers cut to the workload's per-turn token cap, counted
as words at ~0.75 English words a token (the driver cannot tokenize; it never cuts a word)."""
_ACCELERATORS = {"gpu": "libLiteRtGpuAccelerator.so", "npu": "libLiteRtDispatch"}
_ASSUMED_TOKENS_PER_S = 20.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """How to run the benchmark. None = decided from the device or the workload."""

    workload: Path | None = None
    runner: Path | None = None
    sample_period_s: float = 0.25
    baseline_s: float | None = None
    capacity_mah: float | None = None
    threads: int | None = None
    backend: str = "cpu"
    max_num_tokens: int | None = None
    redact: bool = False
    prepare_screen: bool = True
    low_battery_pct: int = 20
    poll_s: float = 1.0
    timeout_s: float = 6 * 3600.0
    state_s: float = 5.0
    """How often the sampler reads screen and thermal state (a fork of dumpsys each)."""
    settle_s: float = 30.0
    """--detach: how long to settle after the cable is unplugged, before the baseline."""
    unplug_wait_s: float = 600.0
    """--detach: how long the phone waits for the cable to be unplugged."""
    turn_timeout_s: int = DEFAULT_TURN_TIMEOUT_S

    def __post_init__(self) -> None:
        if not 0.01 <= self.sample_period_s <= 60:
            raise InputError(f"sample period must be between 0.01 and 60 s, got {self.sample_period_s}")
        if self.baseline_s is not None and self.baseline_s < 0:
            raise InputError(f"baseline must be >= 0 s, got {self.baseline_s}")
        if self.capacity_mah is not None and self.capacity_mah <= 0:
            raise InputError(f"capacity must be a positive number of mAh, got {self.capacity_mah}")
        if self.turn_timeout_s < 1:
            raise InputError(f"per-turn timeout must be at least 1 s, got {self.turn_timeout_s}")
        if self.backend not in ("cpu", "gpu", "npu"):
            raise InputError(f"backend must be cpu, gpu or npu, got {self.backend!r}")
        for name in ("state_s", "settle_s", "unplug_wait_s"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0 s, got {getattr(self, name)}")


def default_baseline_s(workload: Workload) -> float:
    """As long as the workload is expected to take, capped at BASELINE_CAP_S."""
    estimate = workload.turns * (workload.max_output_tokens / _ASSUMED_TOKENS_PER_S + 0.5)
    return min(BASELINE_CAP_S, estimate)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Plan:
    """How long a detached run's parts are expected to take, after the cable is unplugged."""

    settle_s: float
    baseline_s: float
    workload_s: float

    @property
    def total_s(self) -> float:
        """Settle + baseline before + workload + baseline after."""
        return self.settle_s + 2 * self.baseline_s + self.workload_s


def plan(config: BenchConfig) -> Plan:
    """The expected schedule of a run with `config` (the workload's duration is an estimate)."""
    workload = load_workload(config.workload)
    estimate = workload.turns * (workload.max_output_tokens / _ASSUMED_TOKENS_PER_S + 0.5)
    baseline_s = config.baseline_s if config.baseline_s is not None else default_baseline_s(workload)
    return Plan(settle_s=config.settle_s, baseline_s=baseline_s, workload_s=estimate)


def _redact(serial: str) -> str:
    return "redacted-" + secrets.token_hex(3) if serial else serial


def _facts_dict(device: Device, redact: bool) -> dict[str, Any]:
    facts = dataclasses.asdict(device.facts())
    if redact:
        facts["serial"] = _redact(str(facts["serial"]))
    return facts


def _screen(device: Device) -> str | None:
    """PowerManager's wakefulness (Awake, Asleep, Dozing, Dreaming); None where `dumpsys power`
    is unavailable. AOSP PowerManagerService.dumpInternal prints "  mWakefulness=Awake"."""
    out = device.shell(["dumpsys", "power"], check=False).stdout
    m = re.search(r"mWakefulness=(\w+)", out)
    return None if m is None else m.group(1)


def _setting(device: Device, namespace: str, key: str) -> str | None:
    r = device.shell(["settings", "get", namespace, key], check=False)
    value = r.stdout.strip()
    return value if r.returncode == 0 and value and " " not in value else None


# The screen stays ON, at a fixed low brightness, through the baselines and the workload:
# with the screen off and no wakelock (the shell user cannot take one), Android suspends
# and the run stalls; a chat app is used with the screen on; and a constant screen is part
# of the idle baseline, which is subtracted. A change of screen state voids the run.
_KEEP_SCREEN = (
    ("screen_off_timeout", str(24 * 3600 * 1000)),  # ms
    ("screen_brightness_mode", "0"),  # manual
    ("screen_brightness", "1"),  # the lowest "on" value of 0-255
)


def prepare_phone(device: Device) -> dict[str, Any]:
    """Keep the screen on at a fixed low brightness for the run; record what was there before
    (restore_phone puts it back). Where `settings`/`dumpsys power` are missing, record "unknown"."""
    state: dict[str, Any] = {"screen_before": _screen(device), "settings_before": {}, "changed": []}
    for key, value in _KEEP_SCREEN:
        before = _setting(device, "system", key)
        state["settings_before"][key] = before
        if before is None:
            continue
        if before != value:
            put = device.shell(["settings", "put", "system", key, value], check=False)
            if put.returncode == 0:
                state["changed"].append(key)
    if state["screen_before"] not in (None, "Awake"):
        device.shell(["input", "keyevent", "224"], check=False)  # KEYCODE_WAKEUP
        state["changed"].append("screen")
    device.shell(["wm", "dismiss-keyguard"], check=False)  # an unsecured lock screen would time out
    state["screen_during"] = _screen(device)
    return state


def restore_phone(device: Device, state: dict[str, Any]) -> None:
    """Undo what prepare_phone changed."""
    before = state.get("settings_before", {})
    for key in state.get("changed", []):
        if before.get(key) == "null":  # `settings get` prints null for a key that was never set
            device.shell(["settings", "delete", "system", key], check=False)
        elif before.get(key) is not None:
            device.shell(["settings", "put", "system", key, before[key]], check=False)
    if "screen" in state.get("changed", []):
        device.shell(["input", "keyevent", "223"], check=False)  # KEYCODE_SLEEP


def online_supplies(device: Device) -> list[str] | None:
    """External power supplies online now (sysfs, else `dumpsys battery`); None if unknown."""
    script = (
        'for d in /sys/class/power_supply/*; do [ -r "$d/online" ] || continue; o=; t=; '
        'read -r o < "$d/online"; [ -r "$d/type" ] && read -r t < "$d/type"; echo "${d##*/}:$t:$o"; done'
    )
    lines = [x for x in device.script(script, check=False).stdout.split() if x.count(":") == 2]
    if not lines:
        info = parsers.parse_dumpsys_battery(device.shell(["dumpsys", "battery"], check=False).stdout)
        pairs = [("ac", info.ac_powered), ("usb", info.usb_powered), ("wireless", info.wireless_powered)]
        lines = [f"dumpsys-{n}::{int(v)}" for n, v in pairs if v is not None]
    if not lines:
        return None
    sample = power_lib.PowerSample(
        t_s=0,
        charge_counter_uah=None,
        current_raw=None,
        voltage_uv=None,
        level_pct=None,
        temperature_c=None,
        status=None,
        supplies="+".join(lines),
    )
    return power_lib.external_online(sample)


def _run_id() -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


def start_run(device: Device, artifact_path: Path | str, config: BenchConfig, *, detach: bool = False) -> str:
    """Deploy, prepare the phone, write the run folder and start the driver detached; returns the run id.

    `detach`: the driver first waits on the phone for the cable to be unplugged (it polls the
    supplies' online state, up to `config.unplug_wait_s`), settles `config.settle_s`, then
    measures; the host may go away meanwhile."""
    workload = load_workload(config.workload)
    artifact = Artifact.load(artifact_path)
    deployed = deploy(device, artifact.path, DeployConfig(runner=config.runner, smoke=False))
    if deployed.runner is None:
        raise InputError("battery-bench on a phone needs the on-device runner: pass --runner")
    battery = device.battery()
    capacity = config.capacity_mah or (
        battery.charge_full_design_uah / 1000 if battery.charge_full_design_uah else None
    )
    full = battery.charge_full_uah / 1000 if battery.charge_full_uah else None
    probe = RunnerProbe.from_dict(deployed.probe) if deployed.probe else None
    if probe is None:
        raise DeviceError(f"{device.serial}: deploy did not probe the runner", serial=device.serial)
    need = _ACCELERATORS.get(config.backend)
    if need is not None and not any(lib.startswith(need) for lib in probe.libraries):
        raise InputError(
            f"--backend {config.backend} needs LiteRT's accelerator library ({need}*.so) beside the runner, and "
            f"{probe.binary} was deployed without it: pass the runner's prebuilt/android_arm64/ folder as --runner"
        )
    chosen = chat_flags(
        probe,
        backend=config.backend,
        threads=config.threads,
        max_num_tokens=config.max_num_tokens,
        max_output_tokens=workload.max_output_tokens,
    )
    flags = list(chosen.flags)
    phone = prepare_phone(device) if config.prepare_screen else {"changed": []}
    run_id = _run_id()
    paths = run_lib.run_paths(device, run_id, deployed.harness.remote)
    baseline_s = config.baseline_s if config.baseline_s is not None else default_baseline_s(workload)
    meta = {
        "run_id": run_id,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": _facts_dict(device, config.redact),
        "artifact": _artifact_meta(artifact, deployed),
        "workload": _workload_meta(workload),
        "runner": {
            "sha256": deployed.runner.sha256,
            "flags": flags,
            "path": deployed.runner.remote,
            "protocol": probe.protocol,
            "ttft_source": chosen.ttft_source,
            "conditions": list(chosen.conditions),
            "probe": probe.to_dict(),
        },
        "settings": {
            "sample_period_s": config.sample_period_s,
            "baseline_s": baseline_s,
            "capacity_mah": capacity,
            "capacity_source": "--capacity-mah" if config.capacity_mah else "charge_full_design",
            "full_charge_capacity_mah": full,
            "low_battery_pct": config.low_battery_pct,
            "state_s": config.state_s,
            "detach": detach,
            "settle_s": config.settle_s if detach else 0.0,
            "turn_timeout_s": config.turn_timeout_s,
        },
        "phone": phone,
        "battery_start": dataclasses.asdict(battery),
        "supplies_online_start": online_supplies(device),
        "harness": paths.harness_dir,
    }
    power_env = {
        "STATE_EVERY": str(max(1, round(config.state_s / config.sample_period_s))),
        "DETACH": "1" if detach else "0",
        "SETTLE_S": f"{config.settle_s:g}",
        "UNPLUG_WAIT_S": str(round(config.unplug_wait_s)),
    }
    run_lib.prepare(
        device,
        paths,
        runner=deployed.runner.remote,
        model=deployed.model.remote,
        workload=workload,
        flags=flags,
        protocol=probe.protocol,
        turn_timeout_s=config.turn_timeout_s,
        answer_cap_words=max(1, int(workload.max_output_tokens * ANSWER_WORDS_PER_TOKEN)),
        answer_cap_bytes=answer_cap_bytes(workload, artifact),
        sample_period_s=config.sample_period_s,
        baseline_s=baseline_s,
        meta=meta,
        power_env=power_env,
    )
    run_lib.start(device, paths)
    return run_id


def answer_cap_bytes(workload: Workload, artifact: Artifact) -> int:
    """Bytes of each earlier answer a one-shot prompt carries: ~4 bytes a token of the
    workload's cap, and no more than keeps the longest conversation's prompt inside the
    artifact's KV cache (`cache_length` in its manifest) even at one token per byte, with
    HISTORY_RESERVE_TOKENS left for the chat template, the user turns and the answer."""
    cap = workload.max_output_tokens * 4
    cache = (artifact.manifest.settings.get("cache_length", {}) if artifact.manifest else {}).get("value")
    if not isinstance(cache, int):
        cache = ASSUMED_CACHE_TOKENS  # no manifest (a published .litertlm): assume a small cache
    longest = max(len(c.turns) for c in workload.conversations)
    if longest > 1:
        cap = min(cap, max(16, (cache - HISTORY_RESERVE_TOKENS) // (longest - 1)))
    return cap


def _artifact_meta(artifact: Artifact, deployed: DeployResult) -> dict[str, Any]:
    return {
        "name": artifact.path.name,
        "sha256": deployed.model.sha256,
        "provenance": deployed.provenance,
        "manifest": dataclasses.asdict(artifact.manifest) if artifact.manifest else None,
    }


def _workload_meta(workload: Workload) -> dict[str, Any]:
    return {
        "name": workload.name,
        "version": workload.version,
        "sha256": workload.sha256,
        "max_output_tokens": workload.max_output_tokens,
        "conversations": [{"id": c.id, "turns": len(c.turns)} for c in workload.conversations],
    }


def _paths(device: Device, run_id: str) -> run_lib.RunPaths:
    if not re.fullmatch(r"[0-9A-Za-z._-]+", run_id):
        raise InputError(f"{run_id!r} is not a run id (they look like 20261125-143000-a1b2c3)")
    # The harness folder is recorded in meta.json; the driver does not need it to be collected.
    return run_lib.run_paths(device, run_id, harness_dir="")


def follow(device: Device, run_id: str, config: BenchConfig, progress: ProgressFn | None = None) -> None:
    """Wait until the run's driver is done (or has died)."""
    paths = _paths(device, run_id)
    started = time.monotonic()
    deadline = started + config.timeout_s
    total = None
    while time.monotonic() < deadline:
        state, done = run_lib.status(device, paths)
        # The driver writes its status first thing; on a busy phone that can take a moment.
        if (
            state == "missing"
            and time.monotonic() - started < DRIVER_START_GRACE_S
            and device.shell(["test", "-f", f"{paths.run_dir}/meta.json"], check=False).returncode == 0
        ):
            time.sleep(config.poll_s)
            continue
        if total is None:
            total = len(device.shell(["ls", f"{paths.run_dir}/conv"], check=False).stdout.split())
        if progress is not None:
            progress(done, total)
        if state == "done":
            return
        if state == "missing":
            log = device.shell(["cat", f"{paths.run_dir}/driver.log"], check=False)
            if log.returncode == 0:
                tail = " ".join(log.stdout.strip().splitlines()[-2:]) or "driver.log is empty"
                raise DeviceError(f"{device.serial}: run {run_id}: the driver did not start: {tail}")
            raise DeviceError(f"{device.serial}: no run {run_id} on the device", serial=device.serial)
        if not run_lib.driver_alive(device, paths):
            return  # cut off: collect keeps what it measured; --resume finishes it
        time.sleep(config.poll_s)
    raise DeviceError(
        f"{device.serial}: run {run_id} did not finish within {config.timeout_s:.0f} s; it may still be running: "
        f"`edgekit battery-bench --device {device.serial} --collect {run_id}` when it is done, "
        f"or `--resume {run_id}` if it was cut off",
        serial=device.serial,
    )


def interrupt(device: Device, run_id: str) -> None:
    """Ctrl-C on an attached run: stop the phone's driver, sampler and runner, and restore
    the screen settings (timeout, brightness) the run changed. The run folder stays for --collect."""
    paths = _paths(device, run_id)
    run_lib.stop(device, paths)
    files = run_lib.collect(device, paths)
    restore_phone(device, files.meta.get("phone", {}))


def resume(device: Device, run_id: str) -> None:
    """Restart the driver of a run that was cut off; finished conversations are not run again."""
    paths = _paths(device, run_id)
    if run_lib.driver_alive(device, paths):
        raise InputError(f"run {run_id} is still running: wait for it or collect it")
    files = run_lib.collect(device, paths)
    harness = files.meta.get("harness") or ""
    run_lib.start(device, run_lib.RunPaths(run_id=run_id, run_dir=paths.run_dir, harness_dir=harness))


def collect(device: Device, run_id: str, *, restore: bool = True) -> BenchResult:
    """Pull run `run_id` from the device and compute its result (partial if it was cut off)."""
    paths = _paths(device, run_id)
    files = run_lib.collect(device, paths)
    if restore:
        restore_phone(device, files.meta.get("phone", {}))
    return build_result(files)


def _windows(
    events: list[tuple[float, str, str, int]],
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(idle baselines: the one before the workload and the last one after it; workload segments)."""

    def pair(start: str, end: str, last: bool = False) -> tuple[float, float] | None:
        starts = [t for t, n, _, _ in events if n == start]
        ends = [t for t, n, _, _ in events if n == end]
        if not starts or not ends:
            return None
        a = starts[-1] if last else starts[0]
        b = next((t for t in ends if t >= a), None)
        return None if b is None else (a, b)

    baselines = [b for b in (pair("baseline_start", "baseline_end"), pair(*_AFTER, last=True)) if b is not None]
    segments: list[tuple[float, float]] = []
    start = last = None
    for t, name, _, _ in events:
        if name == "workload_start":
            if start is not None and last is not None and last > start:
                segments.append((start, last))
            start, last = t, t
        elif start is not None and name not in _NOT_WORKLOAD:
            last = t
            if name == "workload_end":
                if t > start:
                    segments.append((start, t))
                start = None
    if start is not None and last is not None and last > start:
        segments.append((start, last))
    return baselines, segments


_AFTER = ("baseline_after_start", "baseline_after_end")
# Events that never extend a workload segment (a resumed driver's start, the unplug wait, baselines).
_NOT_WORKLOAD = {
    *_AFTER,
    "driver_start",
    "unplug_wait",
    "unplugged",
    "unplug_timeout",
    "unplug_unknown",
    "settled",
    "baseline_start",
    "baseline_end",
}


def _between_parts(files: run_lib.RunFiles, segments: list[tuple[float, float]], t0: float) -> list[dict[str, Any]]:
    """What happened between the parts of a resumed run (reboot, recharge), in words."""
    flags: list[dict[str, Any]] = []
    boots = [key for _, name, key, _ in files.events if name == "driver_start" and key != "unknown"]
    if len(set(boots)) > 1:
        flags.append(
            {
                "code": "rebooted",
                "message": "the phone rebooted between the parts of this run (--resume): the battery figure "
                "cannot join parts measured on different boots; run it again without interruption",
                "voids": True,
                "window": "workload",
                "t_s": None,
            }
        )
    for (_, a_end), (b_start, _) in itertools.pairwise(segments):
        before = [s for s in files.samples if s.t_s <= a_end and s.level_pct is not None]
        after = [s for s in files.samples if s.t_s >= b_start and s.level_pct is not None]
        if before and after and after[0].level_pct > before[-1].level_pct:  # type: ignore[operator]
            flags.append(
                {
                    "code": "recharged_between_parts",
                    "message": f"the battery was recharged between the parts of this run (--resume): "
                    f"{before[-1].level_pct}% when it stopped, {after[0].level_pct}% when it went on. "
                    "Each part was measured on battery; the figure adds them",
                    "voids": False,
                    "window": "workload",
                    "t_s": b_start - t0,
                }
            )
    return flags


def build_result(files: run_lib.RunFiles) -> BenchResult:
    """Compute a BenchResult from a collected run folder."""
    meta = files.meta
    conversations = meta["workload"]["conversations"]
    workload = Workload(
        name=meta["workload"]["name"],
        version=meta["workload"]["version"],
        max_output_tokens=meta["workload"]["max_output_tokens"],
        # Only ids and turn counts are needed to read the run back; the text stays in the run folder.
        conversations=tuple(Conversation(id=c["id"], turns=("",) * c["turns"]) for c in conversations),
        sha256=meta["workload"]["sha256"],
        path=Path("."),
    )
    t0 = files.events[0][0] if files.events else 0.0
    runner = meta.get("runner", {})
    protocol = runner.get("protocol", MULTI_TURN)
    streams = bool(runner.get("probe", {}).get("streams_answers", False))
    turns = run_lib.turn_records(files, workload, t0, protocol=protocol, streams=streams)
    baselines, segments = _windows(files.events)
    settings = meta["settings"]
    loads = run_lib.load_windows(files) if protocol == ONE_SHOT else []
    conversation_segments = _subtract(segments, loads)
    report = power_lib.analyse_segments(
        files.samples,
        baselines=baselines,
        segments=conversation_segments,
        sample_period_s=settings["sample_period_s"],
        low_battery_pct=settings.get("low_battery_pct", 20),
        t0=t0,
    )
    load_report = (
        power_lib.analyse_segments(
            files.samples, baselines=baselines, segments=loads, sample_period_s=settings["sample_period_s"]
        )
        if loads
        else None
    )
    flags = [dataclasses.asdict(f) for f in report.flags]
    flags += _between_parts(files, segments, t0)
    names = {n for _, n, _, _ in files.events}
    if "unplug_timeout" in names:
        flags.append(
            {
                "code": "not_unplugged",
                "message": "the cable was not unplugged within the wait: the run went on with the phone powered",
                "voids": False,
                "window": None,
                "t_s": None,
            }
        )
    if "unplug_unknown" in names:
        flags.append(
            {
                "code": "supply_unknown",
                "message": "the phone reports no power-supply state, so the driver could not wait for the unplug",
                "voids": False,
                "window": None,
                "t_s": None,
            }
        )
    flags += runner_failures(files, conversations, settings.get("turn_timeout_s"))
    unmeasured = [t for t in turns if t.decode_tokens_per_s is None or t.prefill_tokens_per_s is None]
    if unmeasured:
        flags.append(
            {
                "code": "runner_figures_missing",
                "message": f"{len(unmeasured)} of {len(turns)} turns have no prefill/decode figures from the runner "
                "(no BenchmarkInfo, or fewer turns in it)",
                "voids": False,
            }
        )
    failed = sorted(set(f"{n:04d}" for n in range(1, len(conversations) + 1)) - files.done)
    complete = not failed
    if not complete:
        flags.append(
            {
                "code": "incomplete",
                "message": f"{len(failed)} of {len(conversations)} conversations did not finish"
                + ("" if any(f["code"] == "runner_failed" for f in flags) else " (collect again after --resume)"),
                "voids": True,
            }
        )
    capacity = settings.get("capacity_mah")
    if capacity is None:
        flags.append(
            {
                "code": "capacity_missing",
                "message": "the phone reports no design capacity (charge_full_design): "
                "pass --capacity-mah for the % figure",
                "voids": False,
            }
        )
    voided = any(f["voids"] for f in flags)
    duration = sum(b - a for a, b in segments)
    finished = len(files.done)
    summary = summarise(
        turns,
        None if voided else report,
        conversations=finished,
        duration_s=duration,
        capacity_mah=capacity,
        full_capacity_mah=settings.get("full_charge_capacity_mah"),
    )
    power = _power_dict(report, t0, baselines)
    if protocol == ONE_SHOT:
        power["load_charge_mah"] = None if load_report is None or voided else load_report.workload_charge_mah
        power["load_energy_mwh"] = None if load_report is None or voided else load_report.workload_energy_mwh
    return BenchResult(
        simulated=bool(meta["device"].get("emulated")),
        created=meta["created"],
        run_id=meta["run_id"],
        device=meta["device"],
        artifact=meta["artifact"],
        workload=meta["workload"],
        runner=meta["runner"],
        settings=settings,
        turns=turns,
        samples=[dataclasses.asdict(s) for s in files.samples],
        baseline_window_s=None if not baselines else [baselines[0][0] - t0, baselines[0][1] - t0],
        workload_window_s=[segments[0][0] - t0, segments[-1][1] - t0] if segments else None,
        power=power,
        validity=flags,
        summary=summary,
        complete=complete,
    )


def _subtract(segments: list[tuple[float, float]], holes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """`segments` minus the time in `holes` (one-shot model loads), as a list of segments."""
    out = []
    for a, b in segments:
        cursor = a
        for h0, h1 in sorted(holes):
            if h1 <= cursor or h0 >= b:
                continue
            if h0 > cursor:
                out.append((cursor, h0))
            cursor = max(cursor, h1)
        if cursor < b:
            out.append((cursor, b))
    return out


def runner_failures(
    files: run_lib.RunFiles, conversations: list[dict[str, Any]], turn_timeout_s: int | None
) -> list[dict[str, Any]]:
    """A `runner_failed` flag (voids) per conversation whose runner crashed, was killed,
    timed out, or exited 0 without answering every turn."""
    flags = []
    for n, conv in enumerate(conversations, 1):
        key = f"{n:04d}"
        ends = [e for e in files.events if e[1] == "conv_end" and e[2] == key]
        if key in files.done or not ends:
            continue  # finished, or never started (a cut-off run: --resume)
        rc = ends[-1][3]
        answered = len({e[3] for e in files.events if e[1] == "turn_end" and e[2] == key and e[3] > 0})
        timeout = [e for e in files.events if e[1] == "turn_timeout" and e[2] == key]
        err = files.errors.get(key) or next(
            (files.errors[k] for k in sorted(files.errors, reverse=True) if k.startswith(key + ".")), ""
        )
        tail = " ".join(line.strip() for line in err.strip().splitlines()[-2:] if line.strip())
        crash = files.crash_logs.get(key, "")
        tomb = re.search(r"Tombstone written to: (\S+)", crash)
        if timeout:
            why = f"turn {timeout[-1][3] or 1} took longer than the per-turn timeout ({turn_timeout_s} s): killed"
        elif rc == 0:
            why = f"the runner exited 0 but answered {answered} of {conv['turns']} turns"
        else:
            why = f"the runner exited {rc}{signal_name(rc)}"
        detail = f"{why}; stderr: {tail}" if tail else why
        if tomb:
            detail += f"; tombstone: {tomb.group(1)}"
        flags.append(
            {
                "code": "runner_failed",
                "message": f"conversation {key} ({conv['id']}): {detail}",
                "voids": True,
            }
        )
    return flags


def _power_dict(
    report: power_lib.PowerReport, t0: float, baselines: list[tuple[float, float]] | None = None
) -> dict[str, Any]:
    conv = report.conventions
    ci = report.workload_charge_ci95_mah
    return {
        "conventions": None if conv is None else dataclasses.asdict(conv),
        "baseline_windows_s": [[a - t0, b - t0] for a, b in baselines or []],
        "baseline_current_ma": report.baseline_current_ma,
        "baseline_power_mw": report.baseline_power_mw,
        "baseline_after_current_ma": report.baseline_after_current_ma,
        "baseline_drift_ma": report.baseline_drift_ma,
        "drift_bound_pct": report.drift_bound_pct,
        "subtracted_charge_mah": report.subtracted_charge_mah,
        "workload_gross_charge_mah": None if report.workload is None else report.workload.charge_uah / 1000,
        "workload_gross_energy_mwh": None if report.workload is None else report.workload.energy_uj / 3.6e6,
        "workload_charge_mah": report.workload_charge_mah,
        "workload_energy_mwh": report.workload_energy_mwh,
        "workload_charge_ci95_mah": None if ci is None else list(ci),
        "interval_basis": report.interval_basis,
        "charge_counter_check_ratio": report.counter_check_ratio,
        "reads_interpolated": report.reads_interpolated,
    }


def run_local(
    device: LocalDevice, artifact_path: Path | str, config: BenchConfig, progress: ProgressFn | None = None
) -> BenchResult:
    """The same workload through the LiteRT-LM engine on this computer, with the same per-turn records.

    This computer's battery is sampled where it has one; otherwise power is "not measured".
    """
    import litert_lm

    workload = load_workload(config.workload)
    artifact = Artifact.load(artifact_path)
    deployed = deploy(device, artifact.path, DeployConfig(smoke=False))
    samples: list[power_lib.PowerSample] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            b = device.battery()
            if b.source != "none":
                samples.append(
                    power_lib.PowerSample(
                        t_s=time.monotonic(),
                        charge_counter_uah=b.charge_counter_uah,
                        current_raw=b.current_now_ua,
                        voltage_uv=b.voltage_now_uv,
                        level_pct=b.level_pct,
                        temperature_c=b.temperature_c,
                        status=b.status,
                    )
                )
            stop.wait(config.sample_period_s)

    has_battery = device.battery().source != "none"
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # No battery to read: an idle baseline would measure nothing, so there is none.
    if config.baseline_s is not None:
        baseline_s = config.baseline_s
    else:
        baseline_s = default_baseline_s(workload) if has_battery else 0.0
    baseline = (time.monotonic(), time.monotonic() + baseline_s)
    stop.wait(baseline_s)
    turns: list[TurnRecord] = []
    start = time.monotonic()
    with open_engine(deployed.model.remote, threads=config.threads, max_num_tokens=config.max_num_tokens) as engine:
        for n, conv in enumerate(workload.conversations, 1):
            session = engine.create_session(
                sampler_config=litert_lm.SamplerConfig(top_k=1), max_output_tokens=workload.max_output_tokens
            )
            try:
                for k, text in enumerate(conv.turns, 1):
                    sent = time.monotonic()
                    session.run_prefill([text])
                    first = None
                    for _chunk in session.run_decode_async():
                        if first is None:
                            first = time.monotonic()
                    end = time.monotonic()
                    info = session.get_benchmark_info()
                    turns.append(
                        TurnRecord(
                            conversation=conv.id,
                            conversation_index=n,
                            turn_index=k,
                            prompt_tokens=info.last_prefill_token_count,
                            output_tokens=info.last_decode_token_count,
                            ttft_s=None if first is None else first - sent,
                            prefill_tokens_per_s=info.last_prefill_tokens_per_second,
                            decode_tokens_per_s=info.last_decode_tokens_per_second,
                            wall_s=end - sent,
                            t_start_s=sent - t0,
                            t_end_s=end - t0,
                        )
                    )
            finally:
                session.close()
            if progress is not None:
                progress(n, len(workload.conversations))
    end = time.monotonic()
    stop.set()
    sampler.join()
    report = power_lib.analyse_segments(
        samples,
        baseline=baseline,
        segments=[(start, end)],
        sample_period_s=config.sample_period_s,
        low_battery_pct=config.low_battery_pct,
    )
    flags = [dataclasses.asdict(f) for f in report.flags]
    if not samples:
        flags = [
            {
                "code": "counters_missing",
                "message": "this computer has no readable battery or energy counter",
                "voids": True,
            }
        ]
    voided = any(f["voids"] for f in flags)
    battery = device.battery()
    capacity = config.capacity_mah or (
        battery.charge_full_design_uah / 1000 if battery.charge_full_design_uah else None
    )
    return BenchResult(
        simulated=False,
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        run_id=_run_id(),
        device=_facts_dict(device, config.redact),
        artifact=_artifact_meta(artifact, deployed),
        workload=_workload_meta(workload),
        runner={"engine": "litert_lm (litert-lm-api)", "flags": [f"threads={config.threads}", "greedy"]},
        settings={
            "sample_period_s": config.sample_period_s,
            "baseline_s": baseline_s,
            "capacity_mah": capacity,
            "harness_files": sorted(harness_files()),
        },
        turns=turns,
        samples=[dataclasses.asdict(s) for s in samples],
        baseline_window_s=[baseline[0] - t0, baseline[1] - t0],
        workload_window_s=[start - t0, end - t0],
        power=_power_dict(report, t0),
        validity=flags,
        summary=summarise(
            turns,
            None if voided else report,
            conversations=len(workload.conversations),
            duration_s=end - start,
            capacity_mah=capacity,
        ),
        complete=True,
    )


def aggregate(results: list[BenchResult]) -> dict[str, dict[str, float | None]]:
    """Mean, standard deviation and 95% interval (Student t, any df) of every numeric summary
    figure over the runs where it is valid (a void run's battery figures are null: left out).
    `n` = runs that count, `runs` = all runs; with n < 2 there is no interval (None), never ± 0."""
    out: dict[str, dict[str, float | None]] = {}
    for key in results[0].summary:
        values = [r.summary[key] for r in results if isinstance(r.summary.get(key), (int, float))]
        entry: dict[str, float | None] = {
            "mean": None,
            "stddev": None,
            "ci95_low": None,
            "ci95_high": None,
            "n": len(values),
            "runs": len(results),
        }
        if values:
            entry["mean"] = statistics.fmean(values)
        if len(values) > 1:
            mean, sd = statistics.fmean(values), statistics.stdev(values)
            half = t_quantile(0.95, len(values) - 1) * sd / math.sqrt(len(values))
            entry.update(stddev=sd, ci95_low=mean - half, ci95_high=mean + half)
        out[key] = entry
    return out


def cool_down(device: Device, start_temperature_c: float | None, *, timeout_s: float = 600.0) -> None:
    """Wait until the battery is back to its starting temperature (+0.5 °C), at most `timeout_s`."""
    if start_temperature_c is None:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        t = device.battery().temperature_c
        if t is None or t <= start_temperature_c + 0.5:
            return
        time.sleep(5)


def battery_bench(
    device: Device, artifact_path: Path | str, config: BenchConfig | None = None, progress: ProgressFn | None = None
) -> BenchResult:
    """Run the workload on `device` attached (start, follow, collect) and return the result;
    on the `local` device, through the LiteRT-LM engine in this process."""
    config = config or BenchConfig()
    if isinstance(device, LocalDevice):
        return run_local(device, artifact_path, config, progress)
    run_id = start_run(device, artifact_path, config)
    follow(device, run_id, config, progress)
    return collect(device, run_id)
