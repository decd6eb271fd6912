"""`edgekit runs`: battery-bench runs started on phones and not collected yet."""

from __future__ import annotations

import click

from edgekit.commands.output import Output


@click.command(
    "runs",
    short_help="battery-bench runs started on phones and not collected yet.",
    epilog="""\b
Examples:
  edgekit runs
  edgekit runs --json | jq -r '.[].collect'
""",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per run (with both commands).")
def runs_command(as_json: bool) -> None:
    """List the battery-bench runs this computer started on phones and has not collected:
    each with its device and the command that collects it (or resumes it, if it was cut
    off). A run is listed from the moment it starts until `--collect` has its result.
    Nothing here asks the phones: `--collect` says whether a run is still going."""
    from edgekit._typed import to_data
    from edgekit.bench import runs

    output = Output(json=as_json)
    entries = runs.entries()
    if output.json:
        output.data([to_data(e.json_view()) for e in entries])
        return
    if not entries:
        output.echo("no runs to collect")
        return
    for e in entries:
        mode = "detached" if e.detached else "attached"
        output.echo(f"{e.run_id}  {e.device}  started {e.started} ({mode})\n  {e.collect_command}")
