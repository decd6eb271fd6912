"""`edgekit report` and `edgekit compare`: read battery-bench results (JSON) only."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit._files import atomic_write_text, check_writable
from edgekit._typed import to_data
from edgekit.commands.output import Output
from edgekit.errors import EXIT_REGRESSION, InputError


@click.command(
    "report",
    short_help="HTML report + Markdown summary of a battery-bench result.",
    epilog="""\b
Examples:
  edgekit report edgekit-results/20261125-143000-SERIAL.json      writes ...-SERIAL.html beside it
  edgekit report result.json -o ~/reports/pixel9.html > pixel9.md
  edgekit report campaign/                  a battery-bench -o campaign/ folder: writes campaign/report.html
  edgekit report campaign/ --format markdown > matrix.md
""",
)
@click.argument("result_path", metavar="RESULT.json|DIR", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="HTML report path.  [default: RESULT.html; for a campaign DIR, DIR/report.html]",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "markdown"]),
    default="html",
    show_default=True,
    help="html: write the HTML page(s) and print the Markdown on stdout; markdown: only print the Markdown.",
)
def report_command(result_path: Path, output: Path | None, fmt: str) -> None:
    """Write a self-contained HTML report of a battery-bench result (headline figures,
    power over time with conversations marked, tokens/s per turn, latency distribution;
    no external URL, opens offline) and print a Markdown summary on stdout.

    Given a folder that `battery-bench -o DIR` wrote (its campaign.json): one page with a
    devices × artifacts matrix of decode and prefill tok/s, TTFT and % battery per 25
    conversations with their 95% intervals, each artifact's ratio to the first on the same
    device, and a link to each run's own page (written beside its result)."""
    from edgekit.bench.result import BenchResult
    from edgekit.report import html_report, markdown

    out = Output()
    if result_path.is_dir():
        _report_campaign(out, result_path, output, fmt)
        return
    result = BenchResult.load(result_path)
    if fmt == "markdown":
        out.echo(markdown(result), nl=False)
        return
    output = output or result_path.with_suffix(".html")
    check_writable(output)
    page = html_report(result)
    try:
        atomic_write_text(output, page)
    except OSError as exc:  # the folder changed since the check: one line, not "internal error"
        raise InputError(f"cannot write the report to {output} ({exc.strerror or exc}): choose another -o") from exc
    out.echo(markdown(result), nl=False)
    out.echo(f"\nHTML report: {output}")


def _report_campaign(out: Output, folder: Path, output: Path | None, fmt: str) -> None:
    from edgekit import report_campaign
    from edgekit.bench.result import BenchResult
    from edgekit.report import html_report

    matrix = report_campaign.load_campaign(folder)
    if fmt == "markdown":
        out.echo(report_campaign.markdown(matrix), nl=False)
        return
    output = output or folder / "report.html"
    check_writable(output)
    pages = {}
    for cell in matrix.cells.values():
        if cell.result is None or cell.page is None:
            continue
        pages[folder / cell.page] = cell.result
        for page in cell.run_pages:
            if folder / page not in pages:
                pages[folder / page] = BenchResult.load((folder / page).with_suffix(".json"))
    try:
        for path, result in pages.items():
            atomic_write_text(path, html_report(result))
        atomic_write_text(output, report_campaign.html_page(matrix, output))
    except OSError as exc:
        raise InputError(f"cannot write the report to {output} ({exc.strerror or exc}): choose another -o") from exc
    out.echo(report_campaign.markdown(matrix), nl=False)
    out.echo(f"\nHTML report: {output}")


def _threshold(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """--fail-on-regression: a finite percentage >= 0, refused at parse time otherwise."""
    from edgekit.report import check_threshold

    if value is None:
        return None
    try:
        return check_threshold(value)
    except InputError:
        raise click.BadParameter(
            f"{value:g} is not a finite percentage >= 0 (e.g. 5, or 0 for any change)", ctx, param
        ) from None


@click.command(
    "compare",
    short_help=f"Compare two battery-bench results; exit {EXIT_REGRESSION} on a regression you set.",
    epilog=f"""\b
Examples:
  edgekit compare before.json after.json
  edgekit compare main.json branch.json --fail-on-regression 5     exit {EXIT_REGRESSION} on a regression beyond 5%
  edgekit compare gemma3.json qwen3.json --allow-different         another model (or workload): compare anyway
  edgekit compare campaign-main/ campaign-branch/                  two battery-bench -o DIR campaigns
\b
Exit codes: 0 no regression; {EXIT_REGRESSION} a regression (a figure of B worse beyond PCT, or missing
from B: a failed run); 2 bad input (a NaN or inf in a result, a bad PCT, results of another
workload or model without --allow-different).
""",
)
@click.argument("a_path", metavar="A.json", type=click.Path(path_type=Path))
@click.argument("b_path", metavar="B.json", type=click.Path(path_type=Path))
@click.option(
    "--fail-on-regression",
    type=float,
    callback=_threshold,
    metavar="PCT",
    help=f"Exit {EXIT_REGRESSION} if any figure of B is worse than A by more than PCT percent (outside the "
    "95% intervals where both have one), or missing from B while A has it (gate CI on it). "
    "A finite number >= 0.",
)
@click.option(
    "--allow-different",
    is_flag=True,
    help="Compare results of different workloads (sha256) or of different models (the manifests' model "
    "type and size; an artifact without a manifest is the same model only by its sha256).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def compare_command(
    a_path: Path, b_path: Path, fail_on_regression: float | None, allow_different: bool, as_json: bool
) -> None:
    """Compare battery-bench result B with A: decode and prefill tokens/s, time to first
    token, battery % per 25 conversations, energy, mJ per token. Results of another
    workload or model, or holding NaN or inf, are refused.

    A and B may be campaign folders (battery-bench -o DIR): then each device × artifact
    they share is compared, and each line says whether the difference is beyond the noise
    (both figures have a 95% interval and the two do not overlap), within it, or cannot be
    told (a figure without an interval: a single run's speed)."""
    from edgekit.bench.result import BenchResult
    from edgekit.report import compare

    output = Output(json=as_json)
    if a_path.is_dir() and b_path.is_dir():
        _compare_campaigns(output, a_path, b_path, fail_on_regression)
        return

    a, b = BenchResult.load(a_path), BenchResult.load(b_path)
    diffs = compare(a, b, fail_on_regression, allow_different=allow_different, names=(str(a_path), str(b_path)))
    if output.json:
        output.data([to_data(d) for d in diffs])
    else:
        if a.simulated or b.simulated:
            output.print("note: at least one result is SIMULATED (emulated device)")
        for d in diffs:
            change = "—" if d.change_pct is None else f"{d.change_pct:+.1f}%"
            mark = "  REGRESSION" if d.regression else ("  worse" if d.worse else "")
            if d.missing:
                mark += " (missing from B)"
            elif d.within_noise and d.worse:
                mark += " (within the 95% intervals: noise)"
            output.print(f"{d.key:<34} {_num(d.a):>12} -> {_num(d.b):>12}  {change:>8}{mark}")
    regressions = [d for d in diffs if d.regression]
    if regressions:
        if not output.json:
            named = ", ".join(d.key + (" (missing from B)" if d.missing else "") for d in regressions)
            output.error(f"regression beyond {fail_on_regression}%: {named}")
        raise click.exceptions.Exit(EXIT_REGRESSION)


def _compare_campaigns(output: Output, a_path: Path, b_path: Path, fail_on_regression: float | None) -> None:
    from edgekit.report_campaign import compare_campaigns, load_campaign

    diffs = compare_campaigns(load_campaign(a_path), load_campaign(b_path), fail_on_regression)
    if output.json:
        rows = [
            {
                "device": c.device,
                "artifact": c.artifact,
                "beyond_noise": c.beyond_noise,
                **to_data(c.difference),
            }
            for c in diffs
        ]
        output.data(rows)
    else:
        for c in diffs:
            d = c.difference
            change = "—" if d.change_pct is None else f"{d.change_pct:+.1f}%"
            if d.missing:
                verdict = "missing from B"
            elif c.beyond_noise:
                verdict = "BEYOND the noise" + (" (worse)" if d.worse else " (better)")
            elif d.within_noise:
                verdict = "within the noise"
            else:
                verdict = "no interval: noise unknown"
            mark = "  REGRESSION" if d.regression else ""
            output.print(
                f"{c.device} {c.artifact} {d.key:<34} {_num(d.a):>12} -> {_num(d.b):>12}  {change:>8}  {verdict}{mark}"
            )
    regressions = [c for c in diffs if c.difference.regression]
    if regressions:
        if not output.json:
            named = ", ".join(f"{c.device} {c.artifact} {c.difference.key}" for c in regressions)
            output.error(f"regression beyond {fail_on_regression}%: {named}")
        raise click.exceptions.Exit(EXIT_REGRESSION)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"
