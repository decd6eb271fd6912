"""`edgekit report` and `edgekit compare`: read battery-bench results (JSON) only."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from edgekit._files import atomic_write_text, check_writable
from edgekit.commands._common import error_line, print_json
from edgekit.errors import InputError

EXIT_REGRESSION = 1
"""`compare --fail-on-regression`: a figure of B is worse than A's beyond the threshold."""


@click.command(
    "report",
    short_help="HTML report + Markdown summary of a battery-bench result.",
    epilog="""\b
Examples:
  edgekit report edgekit-results/20261125-143000-SERIAL.json      writes ...-SERIAL.html beside it
  edgekit report result.json -o ~/reports/pixel9.html > pixel9.md
""",
)
@click.argument("result_path", metavar="RESULT.json", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="HTML report path.  [default: RESULT.html]")
def report_command(result_path: Path, output: Path | None) -> None:
    """Write a self-contained HTML report of a battery-bench result (headline figures,
    power over time with conversations marked, tokens/s per turn, latency distribution;
    no external URL, opens offline) and print a Markdown summary on stdout."""
    from edgekit.bench.result import BenchResult
    from edgekit.report import html_report, markdown

    result = BenchResult.load(result_path)
    output = output or result_path.with_suffix(".html")
    check_writable(output)
    page = html_report(result)
    try:
        atomic_write_text(output, page)
    except OSError as exc:  # the folder changed since the check: one line, not "internal error"
        raise InputError(f"cannot write the report to {output} ({exc.strerror or exc}): choose another -o") from exc
    click.echo(markdown(result), nl=False)
    click.echo(f"\nHTML report: {output}")


@click.command(
    "compare",
    short_help="Compare two battery-bench results; exit 1 on a regression you set.",
    epilog="""\b
Examples:
  edgekit compare before.json after.json
  edgekit compare main.json branch.json --fail-on-regression 5     exit 1 on a regression beyond 5%
""",
)
@click.argument("a_path", metavar="A.json", type=click.Path(path_type=Path))
@click.argument("b_path", metavar="B.json", type=click.Path(path_type=Path))
@click.option(
    "--fail-on-regression",
    type=float,
    metavar="PCT",
    help="Exit 1 if any figure of B is worse than A by more than PCT percent (gate CI on it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def compare_command(a_path: Path, b_path: Path, fail_on_regression: float | None, as_json: bool) -> None:
    """Compare battery-bench result B with A: decode and prefill tokens/s, time to first
    token, battery % per 25 conversations, energy, mJ per token."""
    import dataclasses

    from edgekit.bench.result import BenchResult
    from edgekit.report import compare

    a, b = BenchResult.load(a_path), BenchResult.load(b_path)
    diffs = compare(a, b, fail_on_regression)
    if as_json:
        print_json([dataclasses.asdict(d) for d in diffs])
    else:
        out = Console(highlight=False, soft_wrap=True)
        if a.simulated or b.simulated:
            out.print("note: at least one result is SIMULATED (emulated device)")
        for d in diffs:
            change = "—" if d.change_pct is None else f"{d.change_pct:+.1f}%"
            mark = "  REGRESSION" if d.regression else ("  worse" if d.worse else "")
            if d.within_noise and d.worse:
                mark += " (within the 95% intervals: noise)"
            out.print(f"{d.key:<34} {_num(d.a):>12} -> {_num(d.b):>12}  {change:>8}{mark}")
    regressions = [d for d in diffs if d.regression]
    if regressions:
        if not as_json:
            error_line(f"regression beyond {fail_on_regression}%: {', '.join(d.key for d in regressions)}")
        raise click.exceptions.Exit(EXIT_REGRESSION)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"
