"""How a battery-bench run is configured, and the schedule a configuration implies."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from edgekit.bench.workload import Workload, load_workload
from edgekit.errors import InputError
from edgekit.probe import Backend

BASELINE_CAP_S = 300.0
DEFAULT_TURN_TIMEOUT_S = 300
"""A turn (one-shot: with its model load) that takes longer is killed and the run fails."""
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
    backend: Backend = Backend.CPU
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
        for name in _FLOATS:  # a result records 5 s as 5.0, however the caller wrote it
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        # Every number is checked here, once, so that none reaches the phone's run folder
        # (run_folder.prepare) or the meta JSON as NaN, inf or a value the runner refuses.
        for name in ("sample_period_s", "baseline_s", "capacity_mah", "poll_s", "timeout_s", *_SECONDS):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise InputError(f"{_FLAG.get(name, name)} must be a finite number, got {value}")
        if not 0.01 <= self.sample_period_s <= 60:
            raise InputError(f"sample period must be between 0.01 and 60 s, got {self.sample_period_s}")
        if self.baseline_s is not None and self.baseline_s < 0:
            raise InputError(f"baseline must be >= 0 s, got {self.baseline_s}")
        if self.capacity_mah is not None and self.capacity_mah <= 0:
            raise InputError(f"capacity must be a positive number of mAh, got {self.capacity_mah}")
        if self.turn_timeout_s < 1:
            raise InputError(f"per-turn timeout must be at least 1 s, got {self.turn_timeout_s}")
        if not isinstance(self.backend, Backend):  # a caller's plain "gpu" is taken too
            try:
                object.__setattr__(self, "backend", Backend(self.backend))
            except ValueError:
                raise InputError(f"backend must be cpu, gpu or npu, got {self.backend!r}") from None
        for name in _SECONDS:
            if getattr(self, name) < 0:
                raise InputError(f"{_FLAG.get(name, name)} must be >= 0 s, got {getattr(self, name)}")
        for name in ("threads", "max_num_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"{_FLAG[name]} must be at least 1, got {value}")
        if self.poll_s <= 0 or self.timeout_s <= 0:
            raise InputError(f"poll_s and timeout_s must be > 0 s, got {self.poll_s} and {self.timeout_s}")
        if not 0 <= self.low_battery_pct <= 100:
            raise InputError(f"low_battery_pct must be between 0 and 100, got {self.low_battery_pct}")


_SECONDS = ("state_s", "settle_s", "unplug_wait_s")
_FLOATS = ("sample_period_s", "baseline_s", "capacity_mah", "poll_s", "timeout_s", *_SECONDS)
_FLAG = {
    "sample_period_s": "--sample-s",
    "baseline_s": "--baseline-s",
    "capacity_mah": "--capacity-mah",
    "settle_s": "--settle-s",
    "threads": "--threads",
    "max_num_tokens": "--max-num-tokens",
}


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
