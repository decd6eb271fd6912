"""BenchResult: everything a battery-bench run measured, as versioned JSON.

`summary` keys are documented (docs/battery-bench.md) and stable:
battery_pct_per_25_conversations (the headline, against the design capacity),
battery_pct_ci95, battery_pct_of_full_charge_per_25_conversations, workload_charge_mah,
workload_charge_mah_ci95, workload_energy_mwh, mj_per_output_token, decode_tokens_per_s,
prefill_tokens_per_s, ttft_s_median, output_tokens, conversations, duration_s. Power
figures are None when a validity flag voids them or the device cannot measure them. Raw
samples and per-turn records are kept; the summary is derived from them.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

from edgekit.bench.power import PowerReport
from edgekit.errors import InputError

SCHEMA_VERSION = 1

EXIT_OK = 0
"""Complete run, battery headline valid (simulated counts), or a speed-only device with no battery counters."""
EXIT_VOID = 6
"""Complete run, speed figures valid, battery headline void (a flag with voids: true says why)."""
EXIT_FAILED = 7
"""Failed run: runner crash, timeout, missing turns (`complete` is false)."""
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


@dataclasses.dataclass(kw_only=True)
class BenchResult:
    """One run of a workload on one device."""

    schema_version: int = SCHEMA_VERSION
    simulated: bool
    created: str
    run_id: str
    device: dict[str, Any]
    artifact: dict[str, Any]
    workload: dict[str, Any]
    runner: dict[str, Any]
    settings: dict[str, Any]
    turns: list[TurnRecord]
    samples: list[dict[str, Any]]
    baseline_window_s: list[float] | None
    workload_window_s: list[float] | None
    power: dict[str, Any]
    validity: list[dict[str, Any]]
    summary: dict[str, Any]
    complete: bool = True
    aggregate: dict[str, dict[str, float | None]] | None = None

    @property
    def battery_absent(self) -> bool:
        """True when no sample carried any battery counter (e.g. `local` without a battery)."""
        keys = ("current_raw", "voltage_uv", "charge_counter_uah")
        return not any(s.get(k) is not None for s in self.samples for k in keys)

    def exit_code(self) -> int:
        """battery-bench's exit code for this result (docs/battery-bench.md): 7 failed,
        6 battery headline void, else 0 (a device with no battery counters is speed-only)."""
        if not self.complete:
            return EXIT_FAILED
        voids = [f for f in self.validity if f.get("voids")]
        if self.battery_absent:
            voids = [f for f in voids if f.get("code") != "counters_missing"]
        return EXIT_VOID if voids else EXIT_OK

    def to_json(self) -> str:
        """Indented JSON."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    def write(self, path: Path) -> Path:
        """Write atomically to `path` (folders created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)
        return path

    @classmethod
    def from_json(cls, text: str) -> BenchResult:
        """Parse result JSON; InputError if it is not one this version reads."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"not a battery-bench result (invalid JSON: {exc.msg})") from exc
        if not isinstance(data, dict) or data.get("schema_version") not in range(1, SCHEMA_VERSION + 1):
            raise InputError("not a battery-bench result this edgekit reads (schema_version missing or newer)")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["turns"] = [TurnRecord(**t) for t in kwargs.get("turns", [])]
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise InputError(f"battery-bench result is missing fields: {exc}") from exc

    @classmethod
    def load(cls, path: Path) -> BenchResult:
        """Read a result file."""
        try:
            return cls.from_json(Path(path).read_text())
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}", path=path) from exc


def _rate(turns: list[TurnRecord], tokens: str, rate: str) -> float | None:
    """Total tokens / total time, from per-turn tokens and tokens/s."""
    total_tokens = total_s = 0.0
    for t in turns:
        n, r = getattr(t, tokens), getattr(t, rate)
        if n and r:
            total_tokens += n
            total_s += n / r
    return total_tokens / total_s if total_s else None


def summarise(
    turns: list[TurnRecord],
    power: PowerReport | None,
    *,
    conversations: int,
    duration_s: float,
    capacity_mah: float | None,
    full_capacity_mah: float | None = None,
) -> dict[str, Any]:
    """The summary block (see SUMMARY_KEYS) from per-turn records and the power report."""
    output_tokens = sum(t.output_tokens or 0 for t in turns)
    ttfts = [t.ttft_s for t in turns if t.ttft_s is not None]
    summary: dict[str, Any] = dict.fromkeys(SUMMARY_KEYS)
    summary.update(
        decode_tokens_per_s=_rate(turns, "output_tokens", "decode_tokens_per_s"),
        prefill_tokens_per_s=_rate(turns, "prompt_tokens", "prefill_tokens_per_s"),
        ttft_s_median=statistics.median(ttfts) if ttfts else None,
        output_tokens=output_tokens,
        conversations=conversations,
        duration_s=duration_s,
    )
    if power is not None and not power.voided and power.workload_charge_mah is not None:
        summary["workload_charge_mah"] = power.workload_charge_mah
        summary["workload_energy_mwh"] = power.workload_energy_mwh
        if power.workload_energy_mwh is not None and output_tokens:
            summary["mj_per_output_token"] = power.workload_energy_mwh * 3600 / output_tokens
        ci = power.workload_charge_ci95_mah
        summary["workload_charge_mah_ci95"] = None if ci is None else list(ci)

        def pct(charge_mah: float, capacity: float) -> float:
            return charge_mah / capacity * 100 * 25 / conversations

        if capacity_mah and conversations:
            summary["battery_pct_per_25_conversations"] = pct(power.workload_charge_mah, capacity_mah)
            summary["battery_pct_ci95"] = None if ci is None else [pct(c, capacity_mah) for c in ci]
        if full_capacity_mah and conversations:
            summary["battery_pct_of_full_charge_per_25_conversations"] = pct(
                power.workload_charge_mah, full_capacity_mah
            )
    return summary


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
        n = int(agg.get("n") or 0)
        runs = int(agg.get("runs") or n)
        if agg["ci95_low"] is None:
            why = "no interval: fewer than 2 valid runs" if n else "no valid run"
            return Figure(value=agg["mean"], low=None, high=None, basis=f"{n} valid of {runs} runs; {why}")
        return Figure(
            value=agg["mean"],
            low=agg["ci95_low"],
            high=agg["ci95_high"],
            basis=f"mean of {n} valid of {runs} runs; 95% interval (Student t, {n - 1} df)",
        )
    value = result.summary.get(key)
    ci = {"battery_pct_per_25_conversations": "battery_pct_ci95", "workload_charge_mah": "workload_charge_mah_ci95"}
    interval = result.summary.get(ci.get(key, ""))
    if isinstance(value, (int, float)) and isinstance(interval, list) and len(interval) == 2:
        return Figure(value=value, low=interval[0], high=interval[1], basis="one run; 95% interval from idle noise")
    return Figure(value=value if isinstance(value, (int, float)) else None, low=None, high=None, basis="one run")
