"""A campaign folder (`battery-bench -o DIR`) -> one page: devices × artifacts, and each
artifact's ratio to the first, on the same device.

    load_campaign(folder)   Matrix: campaign.json and every cell's result
    markdown(matrix)        the matrix as Markdown tables, for a pull request
    html_page(matrix, ...)  the same as one self-contained HTML page, linking each run's page
    compare_campaigns(a, b) each device × artifact of both, figure by figure, beyond the noise or not

Figures are report.figure's: with --repeat the mean of the valid runs and a Student-t 95%
interval, one run's battery % with its idle-noise interval. A ratio's interval comes from
the two intervals on the log scale (each half-width taken as 1.96 standard errors, the two
independent): r·exp(±1.96·√((se_a/a)² + (se_b/b)²)); none where either figure has none.

Labels: tokens/s and TTFT from an emulated phone are this computer's CPU running the model
(the emulator's runner runs it on the host), not a phone's; battery figures from one are
simulated.
"""

from __future__ import annotations

import dataclasses
import html
import math
import os
from pathlib import Path

from edgekit.bench.result import CAMPAIGN_FILE, BenchResult, CampaignRecord, Figure, figure
from edgekit.errors import InputError
from edgekit.report import Difference, compare

METRICS = {
    "decode_tokens_per_s": ("Decode", "tok/s", ".1f"),
    "prefill_tokens_per_s": ("Prefill", "tok/s", ".1f"),
    "ttft_s_median": ("Time to first token (median)", "s", ".3f"),
    "battery_pct_per_25_conversations": ("Battery per 25 conversations", "%", ".3f"),
}
_BATTERY = "battery_pct_per_25_conversations"
_Z95 = 1.959963984540054


@dataclasses.dataclass(frozen=True, kw_only=True)
class Cell:
    """One device × artifact: its result (None when it has none), its run files, its error."""

    result: BenchResult | None
    page: str | None
    """The result's own page, relative to the folder."""
    run_pages: tuple[str, ...]
    exit_code: int
    error: str | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Matrix:
    """A campaign as the page draws it: artifacts (labels, in order), devices, and the cells."""

    folder: Path
    record: CampaignRecord
    artifacts: tuple[str, ...]
    devices: tuple[str, ...]
    cells: dict[tuple[str, str], Cell]


def load_campaign(folder: Path) -> Matrix:
    """Read `folder`/campaign.json and every result it names; InputError if it is no campaign folder."""
    path = folder / CAMPAIGN_FILE
    if not path.is_file():
        raise InputError(f"{folder} has no {CAMPAIGN_FILE}: give a folder that battery-bench -o DIR wrote", path=path)
    record = CampaignRecord.load(path)
    artifacts = tuple(a.label for a in record.artifacts)
    devices: list[str] = []
    cells: dict[tuple[str, str], Cell] = {}
    for c in record.cells:
        if c.device not in devices:
            devices.append(c.device)
        result = BenchResult.load(folder / c.result) if c.result else None
        page = None if c.result is None else str(Path(c.result).with_suffix(".html"))
        run_pages = tuple(str(Path(r).with_suffix(".html")) for r in c.runs)
        for label in [c.artifact] if c.artifact is not None else artifacts:
            cells[(c.device, label)] = Cell(
                result=result, page=page, run_pages=run_pages, exit_code=c.exit_code, error=c.error
            )
    return Matrix(folder=folder, record=record, artifacts=artifacts, devices=tuple(devices), cells=cells)


def ratio(a: Figure, b: Figure) -> Figure | None:
    """b ÷ a with a 95% interval from theirs (module docstring); None without both values."""
    if a.value is None or b.value is None or a.value <= 0 or b.value <= 0:
        return None
    r = b.value / a.value
    if None in (a.low, a.high, b.low, b.high):
        return Figure(value=r, low=None, high=None, basis="no interval: a figure has none")
    assert a.low is not None and a.high is not None and b.low is not None and b.high is not None
    se = math.hypot((a.high - a.low) / (2 * _Z95) / a.value, (b.high - b.low) / (2 * _Z95) / b.value)
    return Figure(value=r, low=r * math.exp(-_Z95 * se), high=r * math.exp(_Z95 * se), basis="log-ratio, 95% interval")


def _label(key: str, result: BenchResult) -> str:
    """What a figure from `result` is: an emulated phone's speed is this computer's CPU; its battery is simulated."""
    if not result.device.emulated and not result.simulated:
        return ""
    return " (simulated)" if key == _BATTERY else " (this computer's CPU)"


def _fmt(f: Figure | None, spec: str, unit: str = "") -> str:
    if f is None or f.value is None:
        return "—"
    text = f"{f.value:{spec}}{(' ' + unit) if unit else ''}"
    if f.low is not None and f.high is not None:
        text += f" [{f.low:{spec}}, {f.high:{spec}}]"
    return text


def _cell_text(matrix: Matrix, key: str, device: str, label: str) -> str:
    cell = matrix.cells.get((device, label))
    if cell is None:
        return "not run"
    if cell.result is None:
        return f"failed: {cell.error or f'exit {cell.exit_code}'}"
    _name, unit, spec = METRICS[key]
    text = _fmt(figure(cell.result, key), spec, unit) + _label(key, cell.result)
    return text + ("" if cell.exit_code == 0 else f" (exit {cell.exit_code})")


def _ratio_text(matrix: Matrix, key: str, device: str, label: str) -> str:
    first, this = matrix.cells.get((device, matrix.artifacts[0])), matrix.cells.get((device, label))
    if first is None or this is None or first.result is None or this.result is None:
        return "—"
    r = ratio(figure(first.result, key), figure(this.result, key))
    return _fmt(r, ".3f") + ("×" if r is not None else "")


def _columns(matrix: Matrix) -> list[str]:
    first = matrix.artifacts[0]
    return [*matrix.artifacts, *(f"{a} ÷ {first}" for a in matrix.artifacts[1:])]


def _rows(matrix: Matrix, key: str) -> list[list[str]]:
    rows = []
    for device in matrix.devices:
        row = [device, *(_cell_text(matrix, key, device, a) for a in matrix.artifacts)]
        row += [_ratio_text(matrix, key, device, a) for a in matrix.artifacts[1:]]
        rows.append(row)
    return rows


def _note(matrix: Matrix) -> str:
    emulated = any(
        c.result is not None and (c.result.device.emulated or c.result.simulated) for c in matrix.cells.values()
    )
    note = (
        "Each cell: the figure with its 95% interval where there is one (--repeat: Student t over the valid runs; "
        "one run's battery %: the idle baselines' noise). Ratios are to the first artifact on the same device."
    )
    if emulated:
        note += (
            " Tokens/s and TTFT from an emulated phone are this computer's CPU running the model, not a phone's; "
            "its battery figures are simulated."
        )
    return note


def markdown(matrix: Matrix) -> str:
    """The matrix, one Markdown table per figure (devices × artifacts, then the ratios)."""
    artifacts = ", ".join(f"`{a.label}` ({a.name})" for a in matrix.record.artifacts)
    lines = [
        f"## battery-bench campaign: {len(matrix.devices)} devices × {len(matrix.artifacts)} artifacts",
        "",
        f"Artifacts: {artifacts}; {matrix.record.repeat} run(s) of each per device, interleaved.",
        "",
        _note(matrix),
    ]
    for key, (name, unit, _spec) in METRICS.items():
        head = ["device", *_columns(matrix)]
        lines += ["", f"### {name} ({unit})", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in _rows(matrix, key)]
    return "\n".join(lines) + "\n"


_CSS = (
    "body{font:14px system-ui,sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}.muted{color:#666}.sim{background:#fff3cd;"
    "padding:.5em}"
)


def html_page(matrix: Matrix, at: Path | None = None) -> str:
    """The matrix as one self-contained HTML page; each cell links its result's page, and its
    runs' pages (relative to where the page goes, `at`; default: in the campaign folder)."""
    e = html.escape
    here = (at or matrix.folder / "report.html").resolve().parent

    def href(page: str) -> str:
        return e(os.path.relpath((matrix.folder / page).resolve(), here))

    sections = []
    for key, (name, unit, _spec) in METRICS.items():
        head = "".join(f"<th>{e(c)}</th>" for c in ["device", *_columns(matrix)])
        body = []
        for device, row in zip(matrix.devices, _rows(matrix, key), strict=True):
            tds = [f"<th>{e(row[0])}</th>"]
            for i, text in enumerate(row[1:]):
                cell = matrix.cells.get((device, matrix.artifacts[i])) if i < len(matrix.artifacts) else None
                links = ""
                if cell is not None and cell.page is not None:
                    runs = [p for p in cell.run_pages if p != cell.page]
                    links = f' <a href="{href(cell.page)}">result</a>' + "".join(
                        f' <a href="{href(p)}">run {n}</a>' for n, p in enumerate(runs, 1)
                    )
                tds.append(f"<td>{e(text)}{links}</td>")
            body.append("<tr>" + "".join(tds) + "</tr>")
        sections.append(f"<h2>{e(name)} ({e(unit)})</h2><table><tr>{head}</tr>{''.join(body)}</table>")
    artifacts = ", ".join(f"<code>{e(a.label)}</code> ({e(a.name)})" for a in matrix.record.artifacts)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>edgekit battery-bench campaign</title>
<style>{_CSS}</style></head><body>
<h1>battery-bench campaign: {len(matrix.devices)} devices × {len(matrix.artifacts)} artifacts</h1>
<p>Artifacts: {artifacts}; {matrix.record.repeat} run(s) of each per device, interleaved.</p>
<p class="muted">{e(_note(matrix))}</p>
{"".join(sections)}
<p class="muted">edgekit · campaign created {e(matrix.record.created)}</p>
</body></html>
"""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CellDifference:
    """One figure of one device × artifact, campaign B against campaign A (report.Difference),
    and whether it is beyond the noise: both have a 95% interval and the two do not overlap."""

    device: str
    artifact: str
    difference: Difference

    @property
    def beyond_noise(self) -> bool:
        """True when both figures have an interval and the intervals do not overlap."""
        d = self.difference
        return d.a_interval is not None and d.b_interval is not None and not d.within_noise


def compare_campaigns(a: Matrix, b: Matrix, fail_on_regression_pct: float | None = None) -> list[CellDifference]:
    """Every device × artifact in both campaigns (same device name, same artifact label),
    compared figure by figure as `edgekit compare` compares two results; InputError when
    they share none."""
    shared = [k for k in a.cells if k in b.cells]
    out = []
    for device, label in shared:
        ra, rb = a.cells[(device, label)].result, b.cells[(device, label)].result
        if ra is None or rb is None:
            continue
        names = (f"{a.folder} {device} {label}", f"{b.folder} {device} {label}")
        for d in compare(ra, rb, fail_on_regression_pct, names=names):
            out.append(CellDifference(device=device, artifact=label, difference=d))
    if not shared:
        raise InputError(
            f"{a.folder} and {b.folder} share no device × artifact: compare campaigns of the same "
            "devices (names as battery-bench records them) and artifacts (file stems)"
        )
    return out
