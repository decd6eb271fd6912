"""battery-bench on a phone: deploy, prepare the phone, run detached, collect.

start_run(device, artifact, config)      deploy + prepare + start the driver; returns the run id
follow(device, run_id)                   wait for the driver to finish
collect(device, run_id)                  pull the run folder and compute a BenchResult
resume(device, run_id)                   restart a run that was cut off (finished conversations are kept)
battery_bench(device, artifact, config)  all of the above, attached (or `local`)

The rest of a run has its own module: the config (bench/config.py), the phone's screen and
supplies (bench/phone.py), the device's run folder (bench/run_folder.py), result assembly
(bench/assembly.py), the local run (bench/local_run.py), repeats (bench/aggregate.py).
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable
from pathlib import Path

from edgekit import runtimes
from edgekit.artifact import Artifact
from edgekit.bench import lock, run_folder
from edgekit.bench.assembly import artifact_meta, build_result, device_meta, read_run, start_meta, workload_meta
from edgekit.bench.config import BenchConfig, Plan, default_baseline_s, plan
from edgekit.bench.local_run import run_local
from edgekit.bench.phone import PhoneState, online_supplies, prepare_phone, restore_env, restore_phone
from edgekit.bench.result import BenchResult, BenchSettings, RunnerRecord, StartState
from edgekit.bench.run_folder import RunMeta
from edgekit.bench.workload import Workload, load_workload
from edgekit.deploy import DeployConfig, DeployResult, deploy
from edgekit.device.base import BatterySample, Device, Execution, ProgressFn
from edgekit.errors import DeviceError, DeviceTimeout, InputError, RunLost, RunStillRunning
from edgekit.placement import chat_template_remote
from edgekit.probe import ChatFlags, RunnerProbe, chat_flags
from edgekit.runtimes.base import Runtime

__all__ = [
    "BenchConfig",
    "Plan",
    "RunLost",
    "battery_bench",
    "collect",
    "follow",
    "interrupt",
    "plan",
    "resume",
    "start_run",
]


DRIVER_START_GRACE_S = 60.0
HISTORY_RESERVE_TOKENS = 256
ASSUMED_CACHE_TOKENS = 1024
ANSWER_WORDS_PER_TOKEN = 0.75
"""One-shot prompts carry earlier answers cut to the workload's per-turn token cap, counted
as words at ~0.75 English words a token (the driver cannot tokenize; it never cuts a word)."""


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
    probe = _probed_runner(device, deployed, config)
    runtime = runtimes.for_probe(probe)
    _check_turns(workload, runtime)
    chosen = chat_flags(
        probe,
        backend=config.backend,
        threads=config.threads,
        max_num_tokens=config.max_num_tokens,
        max_output_tokens=workload.max_output_tokens,
        chat_template_file=(
            chat_template_remote(runtime, deployed.model.remote)
            if runtime.chat_template(artifact.path) is not None
            else None
        ),
    )
    run_id = run_folder.new_run_id()
    lock.acquire(device, run_id)  # one run per phone: before the phone is touched
    phone = PhoneState()
    paths: run_folder.RunPaths | None = None
    try:
        battery = device.battery()
        start = start_meta(battery)
        phone = prepare_phone(device) if config.prepare_screen else phone
        paths = _write_run(
            device, run_id, artifact, deployed, probe, chosen, workload, config, battery, start, phone, detach
        )
        run_folder.start(device, paths)
    except BaseException:  # the caller never hears of this run: nothing restores the phone but this
        if paths is not None:  # a Ctrl-C while (or just after) the driver started: it must not run on
            run_folder.stop(device, paths)
        restore_phone(device, phone)
        lock.release(device, run_id)
        raise
    return run_id


def _write_run(
    device: Device,
    run_id: str,
    artifact: Artifact,
    deployed: DeployResult,
    probe: RunnerProbe,
    chosen: ChatFlags,
    workload: Workload,
    config: BenchConfig,
    battery: BatterySample,
    start: StartState,
    phone: PhoneState,
    detach: bool,
) -> run_folder.RunPaths:
    """The run folder written (meta.json, run.env, conversations); its paths."""
    assert deployed.runner is not None
    flags = list(chosen.flags)
    driver_env = runtimes.for_probe(probe).driver_env(probe.protocol)
    # The template file goes to driver.sh apart (CHAT_TEMPLATE, under the work root, as the model).
    template = None
    option = driver_env.get("TEMPLATE_OPT")
    if option is not None and option in flags:
        at = flags.index(option)
        template = flags[at + 1]
        driver_flags = flags[:at] + flags[at + 2 :]
    else:
        driver_flags = flags
    paths = run_folder.run_paths(device, run_id, deployed.harness.remote)
    baseline_s = config.baseline_s if config.baseline_s is not None else default_baseline_s(workload)
    supplies = online_supplies(device)
    meta = RunMeta(
        run_id=run_id,
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        device=device_meta(device, config.redact),
        artifact=artifact_meta(artifact, deployed),
        workload=workload_meta(workload),
        runner=RunnerRecord(
            sha256=deployed.runner.sha256,
            flags=tuple(flags),
            path=deployed.runner.remote,
            protocol=probe.protocol,
            runtime=runtimes.for_probe(probe).name,
            ttft_source=chosen.ttft_source,
            conditions=chosen.conditions,
            probe=probe,
        ),
        settings=_settings(config, battery, baseline_s, detach=detach),
        phone=phone,
        battery_start=battery,
        start=start,
        supplies_online_start=None if supplies is None else tuple(supplies),
        harness=paths.harness_dir,
    )
    run_folder.prepare(
        device,
        paths,
        runner=deployed.runner.remote,
        model=deployed.model.remote,
        workload=workload,
        flags=driver_flags,
        chat_template=template,
        protocol=probe.protocol,
        turn_timeout_s=config.turn_timeout_s,
        answer_cap_words=max(1, int(workload.max_output_tokens * ANSWER_WORDS_PER_TOKEN)),
        answer_cap_bytes=answer_cap_bytes(workload, artifact),
        sample_period_s=config.sample_period_s,
        baseline_s=baseline_s,
        meta=meta,
        power_env={**_power_env(config, detach=detach), **restore_env(phone)},
    )
    return paths


def _check_turns(workload: Workload, runtime: Runtime) -> None:
    """InputError for a turn the runtime's runner would not read as one user message (Runtime.unreadable_turn)."""
    for conv in workload.conversations:
        for k, turn in enumerate(conv.turns, 1):
            why = runtime.unreadable_turn(turn)
            if why is not None:
                raise InputError(
                    f"workload {workload.path}: conversation {conv.id} turn {k} ({turn[:40]!r}) {why}: rephrase it"
                )


def _probed_runner(device: Device, deployed: DeployResult, config: BenchConfig) -> RunnerProbe:
    """What deploy's probe found the runner speaks; InputError when `config.backend` needs an
    accelerator library that was not deployed beside it."""
    probe = deployed.probe
    if probe is None:
        raise DeviceError("deploy did not probe the runner", serial=device.serial)
    missing = runtimes.for_probe(probe).missing_backend(probe, config.backend)
    if missing is not None:
        raise InputError(missing)
    return probe


def _settings(config: BenchConfig, battery: BatterySample, baseline_s: float, *, detach: bool) -> BenchSettings:
    """The run's settings as meta.json records them (capacity: --capacity-mah, else the phone's design)."""
    design = battery.charge_full_design_uah / 1000 if battery.charge_full_design_uah else None
    return BenchSettings(
        sample_period_s=config.sample_period_s,
        baseline_s=baseline_s,
        capacity_mah=config.capacity_mah or design,
        capacity_source="--capacity-mah" if config.capacity_mah else "charge_full_design",
        full_charge_capacity_mah=battery.charge_full_uah / 1000 if battery.charge_full_uah else None,
        low_battery_pct=config.low_battery_pct,
        state_s=config.state_s,
        detach=detach,
        settle_s=config.settle_s if detach else 0.0,
        turn_timeout_s=config.turn_timeout_s,
    )


def _power_env(config: BenchConfig, *, detach: bool) -> dict[str, str]:
    """sampler.sh / driver.sh settings for the power side: state reads, the unplug wait, settling."""
    return {
        "STATE_EVERY": str(max(1, round(config.state_s / config.sample_period_s))),
        "DETACH": "1" if detach else "0",
        "SETTLE_S": f"{config.settle_s:g}",
        "UNPLUG_WAIT_S": str(round(config.unplug_wait_s)),
    }


def answer_cap_bytes(workload: Workload, artifact: Artifact) -> int:
    """Bytes of each earlier answer a one-shot prompt carries: ~4 bytes a token of the
    workload's cap, and no more than keeps the longest conversation's prompt inside the
    artifact's KV cache (`cache_length` in its manifest) even at one token per byte, with
    HISTORY_RESERVE_TOKENS left for the chat template, the user turns and the answer."""
    cap = workload.max_output_tokens * 4
    # No manifest (a published .litertlm): assume a small cache.
    cache = artifact.manifest.settings.cache_length.value if artifact.manifest else ASSUMED_CACHE_TOKENS
    longest = max(len(c.turns) for c in workload.conversations)
    if longest > 1:
        cap = min(cap, max(16, (cache - HISTORY_RESERVE_TOKENS) // (longest - 1)))
    return cap


def _paths(device: Device, run_id: str) -> run_folder.RunPaths:
    if not re.fullmatch(r"[0-9A-Za-z._-]+", run_id):
        raise InputError(f"{run_id!r} is not a run id (they look like 20261125-143000-a1b2c3)")
    # The harness folder is recorded in meta.json; the driver does not need it to be collected.
    return run_folder.run_paths(device, run_id, harness_dir="")


def follow(device: Device, run_id: str, config: BenchConfig, progress: ProgressFn | None = None) -> None:
    """Wait until the run's driver is done (or has died)."""
    paths = _paths(device, run_id)
    started = time.monotonic()
    deadline = started + config.timeout_s
    total = None
    while time.monotonic() < deadline:
        state, done = run_folder.status(device, paths)
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
                raise DeviceError(f"run {run_id}: the driver did not start: {tail}", serial=device.serial)
            raise DeviceError(f"no run {run_id} on the device", serial=device.serial)
        if not run_folder.driver_alive(device, paths):
            return  # cut off: collect keeps what it measured; --resume finishes it
        time.sleep(config.poll_s)
    raise DeviceTimeout(
        device,
        f"run {run_id} did not finish within {config.timeout_s:.0f} s; it may still be running: "
        f"`edgekit battery-bench --device {device.serial} --collect {run_id}` when it is done, "
        f"or `--resume {run_id}` if it was cut off",
    )


def interrupt(device: Device, run_id: str) -> None:
    """Ctrl-C (SIGTERM, SIGHUP) on an attached run: stop the phone's driver, sampler and
    runner, release the phone's lock, and restore the screen settings (timeout, brightness)
    the run changed if the driver did not. The run folder stays for --collect."""
    paths = _paths(device, run_id)
    run_folder.stop(device, paths)
    lock.release(device, run_id)
    files = run_folder.read_files(device, paths)
    if not files.restored:
        restore_phone(device, files.meta.phone)


def resume(device: Device, run_id: str) -> None:
    """Restart the driver of a run that was cut off; finished conversations are not run again.
    DeviceBusy when another run holds the phone."""
    paths = _paths(device, run_id)
    if run_folder.driver_alive(device, paths):
        raise InputError(f"run {run_id} is still running: wait for it or collect it")
    files = run_folder.read_files(device, paths)
    harness = files.meta.harness
    lock.acquire(device, run_id)
    try:
        run_folder.start(device, run_folder.RunPaths(run_id=run_id, run_dir=paths.run_dir, harness_dir=harness))
    except BaseException:
        lock.release(device, run_id)
        raise


def collect(device: Device, run_id: str, *, restore: bool = True) -> BenchResult:
    """Pull run `run_id` from the device and compute its result (partial if it was cut off).

    RunStillRunning while its driver still runs (nothing failed: collect it again later).
    `restore`: put back the phone settings the run changed that still hold edgekit's value,
    when the driver did not restore them itself (it was killed with SIGKILL)."""
    paths = _paths(device, run_id)
    state, done = run_folder.status(device, paths)
    if state != "done" and run_folder.driver_alive(device, paths):
        total = len(device.shell(["ls", f"{paths.run_dir}/conv"], check=False).stdout.split())
        raise RunStillRunning(
            f"run {run_id} is still running, {done} of {total} conversations done: "
            f"collect it again when it ends (nothing is lost)",
            serial=device.serial,
            run_id=run_id,
            done=done,
            total=total,
        )
    lock.release(device, run_id)  # the driver removes it; not when it was killed with SIGKILL
    files = run_folder.read_files(device, paths)
    if restore and not files.restored:
        restore_phone(device, files.meta.phone, only_if_still_ours=True)
    return build_result(read_run(files))


def battery_bench(
    device: Device,
    artifact_path: Path | str,
    config: BenchConfig | None = None,
    progress: ProgressFn | None = None,
    *,
    on_started: Callable[[str], None] | None = None,
) -> BenchResult:
    """Run the workload on `device` attached (start, follow, collect) and return the result;
    on the `local` device, through this computer's engine (edgekit.engine) in this process. `on_started(run_id)`
    hears the id of a run the device's driver has started (none on `local`)."""
    config = config or BenchConfig()
    if device.execution is Execution.ENGINE:
        return run_local(device, artifact_path, config, progress)
    run_id = start_run(device, artifact_path, config)
    if on_started is not None:
        on_started(run_id)
    follow(device, run_id, config, progress)
    return collect(device, run_id)
