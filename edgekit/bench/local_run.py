"""The local run: the workload through this computer's engine (edgekit.engine), in this process.

Same per-turn records and the same result assembly (`assembly.build_result`) as a phone run;
this computer's battery is sampled on a thread where it has one, else power is "not measured".
"""

from __future__ import annotations

import datetime
import threading
import time
from pathlib import Path

from edgekit.answers import classify_answer
from edgekit.artifact import Artifact
from edgekit.bench.assembly import (
    Measured,
    artifact_meta,
    build_result,
    degenerate_flags,
    device_meta,
    start_meta,
    workload_meta,
)
from edgekit.bench.config import BenchConfig, default_baseline_s
from edgekit.bench.gauge import PowerSample
from edgekit.bench.result import BenchResult, BenchSettings, RunnerRecord, TurnRecord
from edgekit.bench.run_folder import RunMeta, new_run_id
from edgekit.bench.workload import Workload, load_workload
from edgekit.deploy import DeployConfig, deploy
from edgekit.device.base import BatterySource, Device, ProgressFn
from edgekit.engine import RECORD_NAME, greedy_session, open_engine
from edgekit.placement import harness_files


class _Sampler:
    """Reads the device's battery every `period_s` on a thread, between start() and stop()."""

    def __init__(self, device: Device, period_s: float) -> None:
        self.device = device
        self.period_s = period_s
        self.samples: list[PowerSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            b = self.device.battery()
            if b.source is not BatterySource.NONE:
                self.samples.append(
                    PowerSample(
                        t_s=time.monotonic(),
                        charge_counter_uah=b.charge_counter_uah,
                        current_raw=b.current_now_ua,
                        voltage_uv=b.voltage_now_uv,
                        level_pct=b.level_pct,
                        temperature_c=b.temperature_c,
                        status=b.status,
                    )
                )
            self._stop.wait(self.period_s)

    def start(self) -> None:
        self._thread.start()

    def wait(self, seconds: float) -> None:
        """Sleep `seconds` (returns early once stopped)."""
        self._stop.wait(seconds)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _run_conversations(
    model: str, workload: Workload, config: BenchConfig, t0: float, progress: ProgressFn | None
) -> list[TurnRecord]:
    """Every conversation through the engine, greedy; timing on this computer's monotonic clock."""
    turns: list[TurnRecord] = []
    with open_engine(model, threads=config.threads, max_num_tokens=config.max_num_tokens) as engine:
        for n, conv in enumerate(workload.conversations, 1):
            session = greedy_session(engine, max_output_tokens=workload.max_output_tokens)
            try:
                for k, text in enumerate(conv.turns, 1):
                    sent = time.monotonic()
                    session.run_prefill([text])
                    first = None
                    answer = []
                    for chunk in session.run_decode_async():
                        if first is None:
                            first = time.monotonic()
                        answer += chunk.texts
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
                            degenerate=classify_answer("".join(answer)),
                        )
                    )
            finally:
                session.close()
            if progress is not None:
                progress(n, len(workload.conversations))
    return turns


def run_local(
    device: Device, artifact_path: Path | str, config: BenchConfig, progress: ProgressFn | None = None
) -> BenchResult:
    """The same workload through this computer's engine (edgekit.engine), with the same per-turn records.

    This computer's battery is sampled where it has one; otherwise power is "not measured".
    """
    workload = load_workload(config.workload)
    artifact = Artifact.load(artifact_path)
    deployed = deploy(device, artifact.path, DeployConfig(smoke=False))
    t0 = time.monotonic()
    sampler = _Sampler(device, config.sample_period_s)
    at_start = device.battery()
    start_state = start_meta(at_start)
    has_battery = at_start.source is not BatterySource.NONE
    sampler.start()
    # No battery to read: an idle baseline would measure nothing, so there is none.
    if config.baseline_s is not None:
        baseline_s = config.baseline_s
    else:
        baseline_s = default_baseline_s(workload) if has_battery else 0.0
    baseline = (time.monotonic(), time.monotonic() + baseline_s)
    sampler.wait(baseline_s)
    start = time.monotonic()
    try:
        turns = _run_conversations(deployed.model.remote, workload, config, t0, progress)
    finally:
        end = time.monotonic()
        sampler.stop()
    battery = device.battery()
    capacity = config.capacity_mah or (
        battery.charge_full_design_uah / 1000 if battery.charge_full_design_uah else None
    )
    meta = RunMeta(
        run_id=new_run_id(),
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        device=device_meta(device, config.redact),
        artifact=artifact_meta(artifact, deployed),
        workload=workload_meta(workload),
        start=start_state,
        runner=RunnerRecord(engine=RECORD_NAME, flags=(f"threads={config.threads}", "greedy")),
        settings=BenchSettings(
            sample_period_s=config.sample_period_s,
            baseline_s=baseline_s,
            capacity_mah=capacity,
            low_battery_pct=config.low_battery_pct,
            harness_files=tuple(sorted(harness_files())),
        ),
    )
    return build_result(
        Measured(
            meta=meta,
            turns=turns,
            samples=sampler.samples,
            t0=t0,
            baselines=[baseline],
            segments=[(start, end)],
            flags=degenerate_flags(turns),
            conversations_finished=len(workload.conversations),
            complete=True,
        )
    )
