"""BenchResult -> Markdown summary and a self-contained HTML report; compare two results.

The HTML report has no external reference of any kind (styles and SVG plots inline), so
it opens offline and can be attached to a bug or a pull request as it is.
"""

from __future__ import annotations

import dataclasses
import html
import math
import statistics

from msgspec import UnsetType

from edgekit._typed import to_data
from edgekit.bench.result import BenchResult, figure
from edgekit.bench.validity import ValidityFlag
from edgekit.errors import InputError

# Summary figures compared by `compare`; True = higher is better.
COMPARED = {
    "decode_tokens_per_s": True,
    "prefill_tokens_per_s": True,
    "ttft_s_median": False,
    "battery_pct_per_25_conversations": False,
    "workload_energy_mwh": False,
    "mj_per_output_token": False,
}
_LABELS = {
    "battery_pct_per_25_conversations": ("Battery per 25 conversations (of design capacity)", "%", ".3f"),
    "battery_pct_of_full_charge_per_25_conversations": ("Battery per 25 conversations (of full charge)", "%", ".3f"),
    "workload_charge_mah": ("Workload charge", " mAh", ".2f"),
    "workload_energy_mwh": ("Workload energy", " mWh", ".2f"),
    "mj_per_output_token": ("Energy per output token", " mJ", ".1f"),
    "decode_tokens_per_s": ("Decode", " tok/s", ".1f"),
    "prefill_tokens_per_s": ("Prefill", " tok/s", ".1f"),
    "ttft_s_median": ("Time to first token (median)", " s", ".3f"),
    "output_tokens": ("Output tokens", "", "d"),
    "conversations": ("Conversations", "", "d"),
    "duration_s": ("Workload duration", " s", ".1f"),
}


def _value(key: str, value: float | None, simulated: bool) -> str:
    if value is None:
        return (
            "not measured"
            if key
            in (
                "battery_pct_per_25_conversations",
                "battery_pct_of_full_charge_per_25_conversations",
                "workload_charge_mah",
                "workload_energy_mwh",
                "mj_per_output_token",
            )
            else "—"
        )
    _, unit, spec = _LABELS[key]
    return f"{value:{spec}}{unit}" + (" (simulated)" if simulated else "")


def _where(flag: ValidityFlag) -> str:
    """(window, time) of a flag, where it has them."""
    window, t = flag.window, flag.t_s
    if window and t is not None:
        return html.escape(f" ({window}, {t:.1f} s)")
    return html.escape(f" ({window})") if window else ""


def runner_line(result: BenchResult) -> str:
    """Which protocol ran and where time to first token comes from (docs/battery-bench.md)."""
    r = result.runner
    protocol = r.protocol or "unknown"
    ttft = r.ttft_source or None
    runtime = r.runtime_text()
    line = f"Runner: {runtime + ' · ' if runtime else ''}{protocol.replace('_', '-')} protocol"
    line += f" · time to first token from the {ttft}"
    options = None if isinstance(r.probe, UnsetType) else r.probe.build_options
    return line + (f" · build: {options}" if options else "")


def markdown(result: BenchResult) -> str:
    """A Markdown summary: headline table, validity flags."""
    dev = result.device
    lines = [
        f"# battery-bench {result.run_id}" + (" (SIMULATED device)" if result.simulated else ""),
        "",
        f"Device: {dev.manufacturer or ''} {dev.model or dev.serial} "
        f"(Android {dev.android_release or '—'}, {dev.soc or 'SoC unknown'}) · "
        f"artifact `{result.artifact.name}` sha256 `{result.artifact.sha256[:12]}…` · "
        f"workload {result.workload.name} v{result.workload.version}"
        + ("" if result.complete else " · **INCOMPLETE**"),
        "",
        "| figure | value |",
        "|---|---|",
    ]
    for key, (label, _, spec) in _LABELS.items():
        fig = figure(result, key)
        cell = _value(key, fig.value, result.simulated)
        if fig.low is not None and fig.high is not None:
            cell += f" (95% interval {fig.low:{spec}}–{fig.high:{spec}}; {fig.basis})"
        lines.append(f"| {label} | {cell} |")
    lines += [
        "",
        "The headline % is of the design capacity (`charge_full_design`): the same for every phone of a model, "
        "so figures compare across phones and with published ones; % of today's full charge (`charge_full`) "
        "is what this phone's aged battery loses.",
    ]
    if result.runner.protocol:
        lines += ["", runner_line(result)]
    if result.validity:
        lines += ["", "Validity flags:"]
        lines += [
            f"- {'VOIDS the headline' if f.voids else 'flag'} `{f.code}`{_where(f)}: {f.message}"
            for f in result.validity
        ]
    return "\n".join(lines) + "\n"


# --- SVG ---------------------------------------------------------------------------------
_W, _H, _PAD = 720, 220, 58


def _tick(v: float) -> str:
    return f"{v / 1000:.3g}k" if abs(v) >= 1000 else f"{v:.3g}"


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values inside [lo, hi]: the multiples of the smallest step of 1, 2 or 5 ×
    10^k that gives at most `target` of them ([lo] for an empty range)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    exponent = math.floor(math.log10((hi - lo) / max(target - 1, 1)))
    for step in (m * 10.0**e for e in range(exponent - 1, exponent + 3) for m in (1, 2, 5)):
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        if last - first + 1 <= target:
            return [round(k * step, 12) for k in range(first, last + 1)]
    return [lo, hi]  # not reached: a step of 100 × the range gives at most one tick


def _axis(x0: float, x1: float, y0: float, y1: float, xlabel: str, ylabel: str) -> list[str]:
    out = [
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - 10}" y2="{_H - _PAD}" class="axis"/>',
        f'<line x1="{_PAD}" y1="10" x2="{_PAD}" y2="{_H - _PAD}" class="axis"/>',
        f'<text x="{_W / 2}" y="{_H - 8}" class="label" text-anchor="middle">{html.escape(xlabel)}</text>',
        f'<text x="12" y="{_H / 2}" class="label" transform="rotate(-90 12 {_H / 2})" '
        f'text-anchor="middle">{html.escape(ylabel)}</text>',
    ]
    # Ticks at round values (1-2-5 steps), placed where the data's own scale puts them.
    for yv in nice_ticks(y0, y1):
        y = _scale(yv, y0, y1, _H - _PAD, 10)
        out.append(f'<text x="{_PAD - 4}" y="{y + 4:.1f}" class="tick" text-anchor="end">{_tick(yv)}</text>')
    for xv in nice_ticks(x0, x1):
        x = _scale(xv, x0, x1, _PAD, _W - 10)
        out.append(f'<text x="{x:.1f}" y="{_H - _PAD + 14}" class="tick" text-anchor="middle">{_tick(xv)}</text>')
    return out


def _scale(v: float, lo: float, hi: float, a: float, b: float) -> float:
    return a + (b - a) * ((v - lo) / (hi - lo) if hi > lo else 0.5)


def _power_svg(result: BenchResult) -> str:
    conv = result.power.conventions
    samples = result.samples
    if conv is None or not samples:
        return '<p class="muted">No power samples: this device exposes no readable battery counters.</p>'
    t0 = samples[0].t_s
    pts = [
        (s.t_s - t0, conv.discharge_ua(s.current_raw) * 1e-6 * s.voltage_uv * 1e-6 * 1000)
        for s in samples
        if s.current_raw is not None and s.voltage_uv is not None
    ]
    if len(pts) < 2:
        return '<p class="muted">Too few power samples to plot.</p>'
    x1 = pts[-1][0]
    ys = [p for _, p in pts]
    y0, y1 = min(0.0, min(ys)), max(ys) * 1.05 or 1.0
    parts = _axis(0, x1, y0, y1, "time since the run started (s)", "power (mW)")
    # Samples and events share the device's clock; the sampler starts with the run, so
    # windows and turn times (relative to the run's first event) line up to a few ms.
    if result.baseline_window_s:
        b0, b1 = result.baseline_window_s
        xa, xb = _scale(b0, 0, x1, _PAD, _W - 10), _scale(b1, 0, x1, _PAD, _W - 10)
        width = max(0.0, xb - xa)
        parts.append(f'<rect x="{xa:.1f}" y="10" width="{width:.1f}" height="{_H - _PAD - 10}" class="baseline"/>')
        parts.append(f'<text x="{xa + 4:.1f}" y="22" class="tick">idle baseline</text>')
    for t in result.turns:
        if t.turn_index == 1 and t.t_start_s is not None:
            x = _scale(t.t_start_s, 0, x1, _PAD, _W - 10)
            parts.append(f'<line x1="{x:.1f}" y1="10" x2="{x:.1f}" y2="{_H - _PAD}" class="marker"/>')
    line = " ".join(f"{_scale(x, 0, x1, _PAD, _W - 10):.1f},{_scale(y, y0, y1, _H - _PAD, 10):.1f}" for x, y in pts)
    parts.append(f'<polyline points="{line}" class="series"/>')
    return _svg(parts, "Power drawn from the battery over time; vertical lines mark conversation starts")


def _temperature_svg(result: BenchResult) -> str:
    temps = [(s.t_s, s.temperature_c) for s in result.samples if s.temperature_c is not None]
    if len(temps) < 2:
        return '<p class="muted">The phone reported no battery temperature.</p>'
    t0 = result.samples[0].t_s
    pts = [(t - t0, float(c)) for t, c in temps]
    x1 = pts[-1][0] or 1.0
    ys = [y for _, y in pts]
    y0, y1 = min(ys) - 0.5, max(ys) + 0.5
    parts = _axis(0, x1, y0, y1, "time since the run started (s)", "battery temperature (°C)")
    line = " ".join(f"{_scale(x, 0, x1, _PAD, _W - 10):.1f},{_scale(y, y0, y1, _H - _PAD, 10):.1f}" for x, y in pts)
    parts.append(f'<polyline points="{line}" class="series"/>')
    changes: list[tuple[float, int | None]] = []
    last: object = object()
    for s in result.samples:
        if s.thermal != last:
            last = s.thermal
            changes.append((s.t_s - t0, s.thermal))
    for x, status in changes:
        xs = _scale(x, 0, x1, _PAD, _W - 10)
        label = "thermal status unknown" if status is None else f"thermal status {status}"
        parts.append(f'<line x1="{xs:.1f}" y1="10" x2="{xs:.1f}" y2="{_H - _PAD}" class="marker"/>')
        parts.append(f'<text x="{xs + 3:.1f}" y="34" class="tick">{html.escape(label)}</text>')
    return _svg(parts, "Battery temperature over time; lines mark thermal status changes")


def _bars_svg(
    values: list[float], xlabel: str, ylabel: str, title: str, x_range: tuple[float, float] | None = None
) -> str:
    if not values:
        return '<p class="muted">No data.</p>'
    hi = max(values) * 1.05 or 1.0
    x0, x1 = x_range or (1, len(values))
    parts = _axis(x0, x1, 0, hi, xlabel, ylabel)
    width = (_W - 10 - _PAD) / len(values)
    for i, v in enumerate(values):
        h = _scale(v, 0, hi, 0, _H - _PAD - 10)
        parts.append(
            f'<rect x="{_PAD + i * width + 1:.1f}" y="{_H - _PAD - h:.1f}" width="{max(1.0, width - 2):.1f}" '
            f'height="{h:.1f}" class="bar"/>'
        )
    return _svg(parts, title)


def _histogram(values: list[float], bins: int = 12) -> tuple[list[float], float, float]:
    lo, hi = min(values), max(values)
    step = (hi - lo) / bins or 1.0
    counts = [0.0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / step))] += 1
    return counts, lo, hi


def _svg(parts: list[str], title: str) -> str:
    return (
        f'<svg viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" aria-label="{html.escape(title)}">'
        f"<title>{html.escape(title)}</title>{''.join(parts)}</svg>"
    )


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1b1f24;max-width:980px}
h1{font-size:1.5rem} h2{font-size:1.1rem;margin-top:2rem}
.sim{background:#fff3cd;border:1px solid #e0c36c;padding:.5rem .8rem;border-radius:6px}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{border:1px solid #d0d7de;border-radius:8px;padding:.7rem 1rem;min-width:10rem}
.card b{display:block;font-size:1.3rem} .muted{color:#57606a}
.flag{color:#9a6700} .void{color:#cf222e;font-weight:600}
svg .axis{stroke:#57606a;stroke-width:1} svg .tick,svg .label{font-size:11px;fill:#57606a}
svg .series{fill:none;stroke:#0969da;stroke-width:1.5} svg .bar{fill:#2da44e}
svg .marker{stroke:#8c959f;stroke-dasharray:3 3} svg .baseline{fill:#ddf4ff}
table{border-collapse:collapse} td,th{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left}
"""


def html_report(result: BenchResult) -> str:
    """One self-contained HTML page: headline figures, power over time, tokens/s per turn, latency."""
    sim = result.simulated
    cards = "".join(
        f'<div class="card"><span class="muted">{html.escape(_LABELS[k][0])}</span>'
        f"<b>{html.escape(_value(k, figure(result, k).value, sim))}</b>"
        f'<span class="muted">{html.escape(figure(result, k).basis)}</span></div>'
        for k in (
            "battery_pct_per_25_conversations",
            "workload_energy_mwh",
            "mj_per_output_token",
            "decode_tokens_per_s",
            "prefill_tokens_per_s",
            "ttft_s_median",
        )
    )
    flags = "".join(
        f'<li class="{"void" if f.voids else "flag"}">{"VOIDS the headline — " if f.voids else ""}'
        f"<code>{html.escape(f.code)}</code>"
        f"{_where(f)}: {html.escape(f.message)}</li>"
        for f in result.validity
    )
    decode = [t.decode_tokens_per_s or 0.0 for t in result.turns]
    ttfts = [t.ttft_s for t in result.turns if t.ttft_s is not None]
    if ttfts:
        counts, lo, hi = _histogram(ttfts)
        latency = _bars_svg(counts, "time to first token (s)", "turns", "Latency distribution", (lo, hi))
        latency += f'<p class="muted">median {statistics.median(ttfts):.3f} s over {len(ttfts)} turns</p>'
    else:
        latency = '<p class="muted">No latency records.</p>'
    dev = result.device
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in (
            ("device", f"{dev.manufacturer or ''} {dev.model or ''} ({dev.serial})"),
            ("Android / SoC", f"{dev.android_release} / {dev.soc}"),
            ("artifact", f"{result.artifact.name} · sha256 {result.artifact.sha256}"),
            ("workload", f"{result.workload.name} v{result.workload.version} · sha256 {result.workload.sha256}"),
            ("runner protocol", runner_line(result) if result.runner.protocol else "—"),
            ("runner flags", " ".join(result.runner.flags)),
            ("runner conditions", "; ".join(result.runner.conditions or ()) or "—"),
            ("current_now", result.power.conventions.basis if result.power.conventions else "—"),
        )
    )
    banner = (
        '<p class="sim">Every figure on this page comes from an <b>emulated</b> device: '
        "<b>simulated</b>, not measured on a phone.</p>"
        if sim
        else ""
    )
    incomplete = (
        "" if result.complete else '<p class="void">This run is incomplete: some conversations did not finish.</p>'
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>edgekit battery-bench {html.escape(result.run_id)}</title>
<style>{_CSS}</style></head><body>
<h1>battery-bench {html.escape(result.run_id)}</h1>
{banner}
{incomplete}
<div class="cards">{cards}</div>
{f"<h2>Validity</h2><ul>{flags}</ul>" if flags else ""}
<h2>Power over time{" (simulated)" if sim else ""}</h2>{_power_svg(result)}
<h2>Temperature and thermal status{" (simulated)" if sim else ""}</h2>{_temperature_svg(result)}
<h2>Decode tokens/s per turn{" (simulated)" if sim else ""}</h2>
{_bars_svg(decode, "turn", "decode tok/s", "Decode tokens per second, per turn")}
<h2>Time to first token{" (simulated)" if sim else ""}</h2>{latency}
<h2>Run</h2><table>{rows}</table>
<p class="muted">edgekit · schema {result.schema_version} · created {html.escape(result.created)}</p>
</body></html>
"""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Difference:
    """One compared figure: A, B (the means of the valid runs where a result has --repeat),
    their 95% intervals where known, the relative change, and whether B is a regression.

    `missing` is True when A has the figure and B has none (B's run failed or its battery
    figure is void): with a threshold set that is a regression, never a pass."""

    key: str
    a: float | None
    b: float | None
    change_pct: float | None
    worse: bool
    regression: bool
    a_interval: tuple[float, float] | None = None
    b_interval: tuple[float, float] | None = None
    within_noise: bool = False
    missing: bool = False


def check_threshold(pct: float) -> float:
    """`pct` if it is a usable --fail-on-regression threshold (finite, >= 0); else InputError naming it."""
    if not math.isfinite(pct) or pct < 0:
        raise InputError(f"--fail-on-regression must be a finite percentage >= 0, got {pct}")
    return pct


def non_finite(result: BenchResult) -> tuple[str, float] | None:
    """The first field of `result` that holds NaN or ±inf (as `summary.decode_tokens_per_s`,
    `samples[3].voltage_uv`) and its value, None when every number is finite."""

    def walk(data: object, where: str) -> tuple[str, float] | None:
        if isinstance(data, float) and not math.isfinite(data):
            return where, data
        if isinstance(data, dict):
            items = [(f"{where}.{k}" if where else str(k), v) for k, v in data.items()]
        elif isinstance(data, (list, tuple)):
            items = [(f"{where}[{i}]", v) for i, v in enumerate(data)]
        else:
            return None
        for name, value in items:
            found = walk(value, name)
            if found is not None:
                return found
        return None

    return walk(to_data(result), "")


def differences_in_kind(a: BenchResult, b: BenchResult) -> list[str]:
    """What makes A and B not comparable: another workload (its sha256), or the artifacts of
    different models (the manifests' model_type and parameter count; without a manifest on
    either side only the same artifact sha256 is known to be the same model). Empty: comparable."""
    out = []
    wa, wb = a.workload, b.workload
    if wa.sha256 != wb.sha256:
        out.append(
            f"workload differs: A ran {wa.name} v{wa.version} (sha256 {wa.sha256[:12]}), "
            f"B ran {wb.name} v{wb.version} (sha256 {wb.sha256[:12]})"
        )
    ma, mb = a.artifact.manifest, b.artifact.manifest
    if a.artifact.sha256 == b.artifact.sha256:
        return out
    if ma is None or mb is None:
        which = (
            "neither has a manifest" if ma is None and mb is None else f"{'A' if ma is None else 'B'} has no manifest"
        )
        out.append(
            f"artifact differs (A {a.artifact.name} sha256 {a.artifact.sha256[:12]}, "
            f"B {b.artifact.name} sha256 {b.artifact.sha256[:12]}) and {which}, "
            "so whether it is the same model cannot be told"
        )
    elif (ma.model.model_type, ma.model.parameter_count) != (mb.model.model_type, mb.model.parameter_count):
        out.append(
            f"model differs: A's artifact is {ma.model.model_type} ({ma.model.parameter_count} parameters), "
            f"B's is {mb.model.model_type} ({mb.model.parameter_count} parameters)"
        )
    return out


def compare(
    a: BenchResult,
    b: BenchResult,
    fail_on_regression_pct: float | None = None,
    *,
    allow_different: bool = False,
    names: tuple[str, str] = ("A", "B"),
) -> list[Difference]:
    """Differences B vs A for the COMPARED figures. A change is a regression only when it is
    worse beyond the threshold AND, where both figures have a 95% interval, the intervals do
    not overlap (overlapping intervals: within the noise of the measurement). With a
    threshold, a figure A has and B lacks (a failed run, a void battery figure) is a
    regression whatever the threshold's size.

    InputError (one line, naming the file by `names`) for a threshold that is not finite and
    >= 0, a NaN or infinite number in either result, or results of another workload or
    model (see `differences_in_kind`) unless `allow_different`."""
    if fail_on_regression_pct is not None:
        check_threshold(fail_on_regression_pct)
    for name, result in zip(names, (a, b), strict=True):
        bad = non_finite(result)
        if bad is not None:
            raise InputError(f"{name}: {bad[0]} is {bad[1]}: not a figure edgekit can compare")
    kind = differences_in_kind(a, b)
    if kind and not allow_different:
        raise InputError(
            f"{names[0]} and {names[1]} are not comparable: {'; '.join(kind)} (--allow-different to compare anyway)"
        )
    out = []
    for key, higher_better in COMPARED.items():
        fa, fb = figure(a, key), figure(b, key)
        va, vb = fa.value, fb.value
        missing = va is not None and vb is None
        change = None if not va or vb is None else (vb - va) / abs(va) * 100
        if change is not None and not math.isfinite(change):  # A's figure is tiny next to B's: no percentage
            change = None
        worse = va is not None and vb is not None and (vb < va if higher_better else vb > va)
        ia = None if fa.low is None or fa.high is None else (fa.low, fa.high)
        ib = None if fb.low is None or fb.high is None else (fb.low, fb.high)
        noise = ia is not None and ib is not None and ia[0] <= ib[1] and ib[0] <= ia[1]
        beyond = change is None or abs(change) > (fail_on_regression_pct or 0)  # None: A is 0 or tiny next to B
        gate = fail_on_regression_pct is not None
        regression = gate and (missing or (worse and not noise and beyond))
        out.append(
            Difference(
                key=key,
                a=va,
                b=vb,
                change_pct=change,
                worse=worse or missing,
                regression=regression,
                a_interval=ia,
                b_interval=ib,
                within_noise=noise,
                missing=missing,
            )
        )
    return out
