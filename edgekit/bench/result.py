"""BenchResult: everything a battery-bench run measured, as versioned JSON.

`summary` keys are documented (docs/battery-bench.md) and stable:
battery_pct_per_25_conversations (the headline, against the design capacity),
battery_pct_ci95, battery_pct_of_full_charge_per_25_conversations, workload_charge_mah,
workload_charge_mah_ci95, workload_energy_mwh, mj_per_output_token, decode_tokens_per_s,
prefill_tokens_per_s, ttft_s_median, output_tokens, conversations, duration_s. Power
figures are None when a validity flag voids them or the device cannot measure them. Raw
samples and per-turn records are kept; the summary is derived from them.

Every part is a typed record (Summary, PowerRecord, ValidityFlag, TurnRecord, ...);
`from_json`/`load` check each key against its type with msgspec (edgekit._typed), so a
malformed file is one InputError line naming the key. Every schema-1 file reads.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

from msgspec import UNSET, UnsetType

from edgekit._files import atomic_write_text
from edgekit._typed import from_data, to_json
from edgekit.answers import Degenerate
from edgekit.artifact import Manifest
from edgekit.bench.gauge import Conventions, PowerSample
from edgekit.bench.power import PowerReport
from edgekit.bench.validity import ValidityFlag
from edgekit.device.base import DeviceFacts
from edgekit.errors import InputError
from edgekit.probe import Protocol, RunnerProbe

SCHEMA_VERSION = 1

EXIT_OK = 0
"""Complete run, battery headline valid (simulated counts), or a speed-only device with no battery counters."""
EXIT_VOID = 6
"""Complete run, speed figures valid, battery headline void (a flag with voids: true says why)."""
EXIT_FAILED = 7
"""Failed run: runner crash, timeout, missing turns (`complete` is false), or mostly degenerate answers."""
DEGENERATE_OUTPUT = "degenerate_output"
"""The validity flag of a run whose answers are mostly degenerate (edgekit.answers): it fails (exit 7)."""
CONTEXT_EXCEEDED = "context_exceeded"
"""The validity flag of a run whose runner refused turns for want of context (llama-cli): it fails (exit 7)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C on an attached run."""
SUMMARY_KEYS = (
    "battery_pct_per_25_conversations",
    "battery_pct_ci95",
    "battery_pct_of_full_charge_per_25_conversations",
    "workload_charge_mah",
    "workload_charge_mah_ci95",
    "workload_energy_mwh",
    "mj_per_output_token",
    "decode_tokens_per_s",
    "prefill_tokens_per_s",
    "ttft_s_median",
    "output_tokens",
    "conversations",
    "duration_s",
)
Interval = tuple[float, float]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TurnRecord:
    """One user turn, timed on the device's clock (seconds since the run started)."""

    conversation: str
    conversation_index: int
    turn_index: int
    prompt_tokens: int | None
    output_tokens: int | None
    ttft_s: float | None
    prefill_tokens_per_s: float | None
    decode_tokens_per_s: float | None
    wall_s: float | None
    t_start_s: float | None
    t_end_s: float | None
    load_s: float | None = None  # one-shot runners: this turn's model load (device clock)
    degenerate: Degenerate | UnsetType | None = UNSET
    """Why the answer is not an answer (edgekit.answers.classify_answer), None if it is one;
    left out where the answer was not read (results from before, turns never answered)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Summary:
    """The headline figures (SUMMARY_KEYS; docs/battery-bench.md). Power figures are None when a
    validity flag voids them or the device cannot measure them; intervals are 95%."""

    battery_pct_per_25_conversations: float | None = None
    battery_pct_ci95: Interval | None = None
    battery_pct_of_full_charge_per_25_conversations: float | None = None
    workload_charge_mah: float | None = None
    workload_charge_mah_ci95: Interval | None = None
    workload_energy_mwh: float | None = None
    mj_per_output_token: float | None = None
    decode_tokens_per_s: float | None = None
    prefill_tokens_per_s: float | None = None
    ttft_s_median: float | None = None
    output_tokens: int | None = None
    conversations: int | None = None
    duration_s: float | None = None

    def number(self, key: str) -> float | None:
        """The figure named `key` (one of SUMMARY_KEYS that is a number), None when not measured."""
        if key not in SUMMARY_KEYS:
            raise KeyError(key)
        value = getattr(self, key)
        return value if isinstance(value, (int, float)) else None

    def interval(self, key: str) -> Interval | None:
        """The 95% interval recorded for `key` (battery % and workload charge have one)."""
        ci = {"battery_pct_per_25_conversations": "battery_pct_ci95", "workload_charge_mah": "workload_charge_mah_ci95"}
        value = getattr(self, ci[key]) if key in ci else None
        return value if isinstance(value, tuple) else None


@dataclasses.dataclass(frozen=True, kw_only=True)
class PowerRecord:
    """The power analysis as a result records it: the current's conventions, the idle baselines,
    what was subtracted, the workload's gross and net charge and energy, the check against
    the charge counter. Times are seconds since the run's first event."""

    conventions: Conventions | None
    baseline_windows_s: tuple[Interval, ...] = ()
    baseline_current_ma: float | None = None
    baseline_power_mw: float | None = None
    baseline_after_current_ma: float | None = None
    baseline_drift_ma: float | None = None
    drift_bound_pct: float | None = None
    subtracted_charge_mah: float | None = None
    workload_gross_charge_mah: float | None = None
    workload_gross_energy_mwh: float | None = None
    workload_charge_mah: float | None = None
    workload_energy_mwh: float | None = None
    workload_charge_ci95_mah: Interval | None = None
    interval_basis: str | None = None
    charge_counter_check_ratio: float | None = None
    reads_interpolated: int = 0
    load_charge_mah: float | UnsetType | None = UNSET
    """One-shot runners only: the model loads' own charge (kept out of the conversations')."""
    load_energy_mwh: float | UnsetType | None = UNSET

    @classmethod
    def from_report(
        cls, report: PowerReport, t0: float, baselines: list[Interval] | None = None, **load: float | None
    ) -> PowerRecord:
        """The record of `report` (windows relative to `t0`); `load` = load_charge_mah/load_energy_mwh."""
        ci = report.workload_charge_ci95_mah
        return cls(
            conventions=report.conventions,
            baseline_windows_s=tuple((a - t0, b - t0) for a, b in baselines or []),
            baseline_current_ma=report.baseline_current_ma,
            baseline_power_mw=report.baseline_power_mw,
            baseline_after_current_ma=report.baseline_after_current_ma,
            baseline_drift_ma=report.baseline_drift_ma,
            drift_bound_pct=report.drift_bound_pct,
            subtracted_charge_mah=report.subtracted_charge_mah,
            workload_gross_charge_mah=None if report.workload is None else report.workload.charge_uah / 1000,
            workload_gross_energy_mwh=None if report.workload is None else report.workload.energy_uj / 3.6e6,
            workload_charge_mah=report.workload_charge_mah,
            workload_energy_mwh=report.workload_energy_mwh,
            workload_charge_ci95_mah=ci,
            interval_basis=report.interval_basis,
            charge_counter_check_ratio=report.counter_check_ratio,
            reads_interpolated=report.reads_interpolated,
            **load,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConversationRecord:
    """One conversation of the workload: its id and how many user turns it has."""

    id: str
    turns: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorkloadRecord:
    """Which workload ran (name, version, sha256 of its file) and its conversations."""

    name: str
    version: int
    sha256: str
    max_output_tokens: int
    conversations: tuple[ConversationRecord, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArtifactRecord:
    """The model that ran: file name, sha256 on the device, where its provenance comes from
    ("manifest" or "unknown") and its manifest, if it has one."""

    name: str
    sha256: str
    provenance: str
    manifest: Manifest | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunnerRecord:
    """What ran the workload. On a phone: the runner binary (sha256, path), the flags it got,
    its protocol, where time to first token comes from, its probe. Locally: the engine."""

    flags: tuple[str, ...]
    sha256: str | UnsetType = UNSET
    path: str | UnsetType = UNSET
    protocol: Protocol | UnsetType = UNSET
    ttft_source: str | UnsetType = UNSET
    conditions: tuple[str, ...] | UnsetType = UNSET
    probe: RunnerProbe | UnsetType = UNSET
    engine: str | UnsetType = UNSET
    runtime: str | UnsetType = UNSET
    """The runtime's name (edgekit.runtimes: Runtime.name); results from before a second runtime
    existed leave it out here and in `probe` (edgekit.runtimes.for_probe tells it from the protocol)."""

    def runtime_text(self) -> str | None:
        """The runtime, e.g. "llama.cpp 0.5.0-dev, commit 0c1e570 (GNU 12.2.0 for Linux x86_64)";
        None for a local run and for results written before the runtime was recorded."""
        if isinstance(self.probe, UnsetType) or isinstance(self.runtime, UnsetType):
            return None
        p = self.probe
        text = f"{self.runtime} {p.version or '(version unknown)'}"
        text += f", commit {p.commit}" if p.commit else ""
        return text + (f" ({p.compiler})" if p.compiler else "")


@dataclasses.dataclass(frozen=True, kw_only=True)
class BenchSettings:
    """The settings the run used (seconds, mAh, %). A phone run records all of them; a local run
    the sampling, the baseline, the capacity and the harness files it read."""

    sample_period_s: float
    baseline_s: float
    capacity_mah: float | None
    capacity_source: str | UnsetType = UNSET
    """"--capacity-mah" or "charge_full_design"."""
    full_charge_capacity_mah: float | UnsetType | None = UNSET
    low_battery_pct: int | UnsetType = UNSET
    state_s: float | UnsetType = UNSET
    detach: bool | UnsetType = UNSET
    settle_s: float | UnsetType = UNSET
    turn_timeout_s: int | UnsetType | None = UNSET
    harness_files: tuple[str, ...] | UnsetType = UNSET


@dataclasses.dataclass(frozen=True, kw_only=True)
class AggregateFigure:
    """One summary figure over --repeat runs: mean, standard deviation and a Student-t 95%
    interval over the `n` runs where it is valid, of `runs` in all (no interval with n < 2)."""

    mean: float | None
    stddev: float | None
    ci95_low: float | None
    ci95_high: float | None
    n: int
    runs: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class StartState:
    """The phone as the run found it, read just before the run started: when (UTC, ISO 8601
    with microseconds), its charge level (%) and its battery temperature (°C); None where
    the device does not report one. With several artifacts (A/B on one phone) this says
    whether each started alike: source.android.com's power guidance compares on one
    device from the same start charge."""

    started: str
    battery_level_pct: int | None
    temperature_c: float | None


@dataclasses.dataclass(kw_only=True)
class BenchResult:
    """One run of a workload on one device; `aggregate` is set on the last of --repeat runs."""

    schema_version: int = SCHEMA_VERSION
    simulated: bool
    created: str
    run_id: str
    device: DeviceFacts
    artifact: ArtifactRecord
    workload: WorkloadRecord
    runner: RunnerRecord
    settings: BenchSettings
    turns: list[TurnRecord]
    samples: list[PowerSample]
    baseline_window_s: Interval | None
    workload_window_s: Interval | None
    power: PowerRecord
    validity: list[ValidityFlag]
    summary: Summary
    complete: bool = True
    aggregate: dict[str, AggregateFigure] | None = None
    start: StartState | UnsetType = UNSET
    """Start time, charge and temperature; left out of results from before it was recorded."""

    @property
    def degenerate(self) -> bool:
        """True when most answers were degenerate: the run failed, its speed figures are no figures."""
        return any(f.code == DEGENERATE_OUTPUT for f in self.validity)

    @property
    def refused_turns(self) -> bool:
        """True when the runner refused turns for want of context: the run failed, the workload was not run."""
        return any(f.code == CONTEXT_EXCEEDED for f in self.validity)

    @property
    def battery_absent(self) -> bool:
        """True when no sample carried any battery counter (e.g. `local` without a battery)."""
        return not any(
            s.current_raw is not None or s.voltage_uv is not None or s.charge_counter_uah is not None
            for s in self.samples
        )

    def exit_code(self) -> int:
        """battery-bench's exit code for this result (docs/battery-bench.md): 7 failed,
        6 battery headline void, else 0 (a device with no battery counters is speed-only)."""
        if not self.complete or self.degenerate or self.refused_turns:
            return EXIT_FAILED
        voids = [f for f in self.validity if f.voids]
        if self.battery_absent:
            voids = [f for f in voids if f.code != "counters_missing"]
        return EXIT_VOID if voids else EXIT_OK

    def to_json(self) -> str:
        """Indented JSON."""
        return to_json(self)

    def write(self, path: Path) -> Path:
        """Write atomically to `path` (folders created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.to_json())
        return path

    @classmethod
    def from_json(cls, text: str) -> BenchResult:
        """Parse and validate result JSON; InputError (one line, naming the first bad field)
        if it is not a result this version reads. Every schema-1 file reads."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"not a battery-bench result (invalid JSON: {exc.msg})") from exc
        if not isinstance(data, dict) or data.get("schema_version") not in range(1, SCHEMA_VERSION + 1):
            raise InputError("not a battery-bench result this edgekit reads (schema_version missing or newer)")
        return from_data(data, cls, "not a valid battery-bench result")

    @classmethod
    def load(cls, path: Path) -> BenchResult:
        """Read a result file."""
        try:
            return cls.from_json(Path(path).read_text())
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}", path=path) from exc
        except InputError as exc:
            raise InputError(f"{path}: {exc}", path=path) from exc


CAMPAIGN_FILE = "campaign.json"
"""What `battery-bench -o DIR` writes beside the result files: which device ran which
artifact, and where its files are."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CampaignArtifact:
    """One artifact of a campaign: its label in file names (Campaign.labels), file name and path as given."""

    label: str
    name: str
    path: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class CampaignCell:
    """One device × artifact of a campaign: its result file (with --repeat, the one with the
    aggregate) and each run's, relative to the campaign folder; its exit code; the error
    that stopped it, if any. `artifact` None: the device failed before any artifact ran."""

    device: str
    artifact: str | None
    result: str | None
    runs: tuple[str, ...]
    exit_code: int
    error: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class CampaignRecord:
    """campaign.json, which `battery-bench -o DIR` writes beside the result files and
    `edgekit report DIR` reads: the artifacts in order (the first is the one ratios are to)
    and one cell per device × artifact."""

    schema_version: int = 1
    kind: str = "edgekit-campaign"
    created: str
    repeat: int
    artifacts: tuple[CampaignArtifact, ...]
    cells: tuple[CampaignCell, ...]

    def write(self, path: Path) -> Path:
        """Write atomically to `path` as indented JSON."""
        atomic_write_text(path, to_json(self))
        return path

    @classmethod
    def load(cls, path: Path) -> CampaignRecord:
        """Read campaign.json; InputError (one line) if it is not one."""
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}", path=path) from exc
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not a campaign record (invalid JSON: {exc.msg})", path=path) from exc
        if not isinstance(data, dict) or data.get("kind") != "edgekit-campaign":
            raise InputError(f"{path}: not a campaign record (written by battery-bench -o DIR)", path=path)
        return from_data(data, cls, f"{path}: not a valid campaign record")


def _rate(turns: list[TurnRecord], tokens: str, rate: str) -> float | None:
    """Total tokens / total time, from per-turn tokens and tokens/s."""
    total_tokens = total_s = 0.0
    for t in turns:
        n, r = getattr(t, tokens), getattr(t, rate)
        if n and r:
            total_tokens += n
            total_s += n / r
    return total_tokens / total_s if total_s else None


def summarize(
    turns: list[TurnRecord],
    power: PowerReport | None,
    *,
    conversations: int,
    duration_s: float,
    capacity_mah: float | None,
    full_capacity_mah: float | None = None,
) -> Summary:
    """The summary block (see SUMMARY_KEYS) from per-turn records and the power report."""
    output_tokens = sum(t.output_tokens or 0 for t in turns)
    ttfts = [t.ttft_s for t in turns if t.ttft_s is not None]
    speed = Summary(
        decode_tokens_per_s=_rate(turns, "output_tokens", "decode_tokens_per_s"),
        prefill_tokens_per_s=_rate(turns, "prompt_tokens", "prefill_tokens_per_s"),
        ttft_s_median=statistics.median(ttfts) if ttfts else None,
        output_tokens=output_tokens,
        conversations=conversations,
        duration_s=duration_s,
    )
    if power is None or power.voided or power.workload_charge_mah is None:
        return speed
    charge = power.workload_charge_mah
    ci = power.workload_charge_ci95_mah

    def pct(charge_mah: float, capacity: float) -> float:
        return charge_mah / capacity * 100 * 25 / conversations

    with_capacity = bool(capacity_mah and conversations)
    return dataclasses.replace(
        speed,
        workload_charge_mah=charge,
        workload_energy_mwh=power.workload_energy_mwh,
        mj_per_output_token=(
            power.workload_energy_mwh * 3600 / output_tokens
            if power.workload_energy_mwh is not None and output_tokens
            else None
        ),
        workload_charge_mah_ci95=ci,
        battery_pct_per_25_conversations=pct(charge, capacity_mah) if capacity_mah and with_capacity else None,
        battery_pct_ci95=(
            (pct(ci[0], capacity_mah), pct(ci[1], capacity_mah)) if ci and capacity_mah and with_capacity else None
        ),
        battery_pct_of_full_charge_per_25_conversations=(
            pct(charge, full_capacity_mah) if full_capacity_mah and conversations else None
        ),
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Figure:
    """A headline figure as reported: the mean of the valid runs with --repeat, else the run's own."""

    value: float | None
    low: float | None
    high: float | None
    basis: str


def figure(result: BenchResult, key: str) -> Figure:
    """The value of summary `key` that headlines, reports and compare use, with its 95% interval.

    With --repeat (an `aggregate`): the mean over the runs where the figure is valid and a
    Student-t interval (none with fewer than 2 valid runs). A single run: its own figure and,
    for battery charge and %, the interval from the idle baseline's noise (block bootstrap).
    """
    agg = (result.aggregate or {}).get(key)
    if agg is not None:
        n, runs = agg.n, agg.runs or agg.n
        if agg.ci95_low is None:
            why = "no interval: fewer than 2 valid runs" if n else "no valid run"
            return Figure(value=agg.mean, low=None, high=None, basis=f"{n} valid of {runs} runs; {why}")
        return Figure(
            value=agg.mean,
            low=agg.ci95_low,
            high=agg.ci95_high,
            basis=f"mean of {n} valid of {runs} runs; 95% interval (Student t, {n - 1} df)",
        )
    value = result.summary.number(key)
    interval = result.summary.interval(key)
    if value is not None and interval is not None:
        basis = "one run; 95% interval from idle noise"
        if not interval[0] <= value <= interval[1]:  # power.interval_basis says why
            basis += " (the figure lies outside it: skewed idle samples, see power.interval_basis)"
        return Figure(value=value, low=interval[0], high=interval[1], basis=basis)
    return Figure(value=value, low=None, high=None, basis="one run")
