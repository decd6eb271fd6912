"""The `edgekit` command. Thin: each command parses, calls the API and prints.

Errors edgekit raises become one red line on stderr and a non-zero exit code; a
traceback only with EDGEKIT_DEBUG=1.
"""

from __future__ import annotations

import os
import sys

import click

from edgekit import runtimes
from edgekit._versions import versions
from edgekit.commands.bench import bench_command
from edgekit.commands.clean import clean_command
from edgekit.commands.convert import convert_command
from edgekit.commands.demo import demo_command
from edgekit.commands.deploy import deploy_command
from edgekit.commands.devices import devices_command
from edgekit.commands.eval import eval_command
from edgekit.commands.example import example_command
from edgekit.commands.output import Output
from edgekit.commands.report import compare_command, report_command
from edgekit.commands.runs import runs_command
from edgekit.engine import quiet_engine_logs
from edgekit.errors import EXIT_INTERRUPTED, EdgekitError

EXIT_INTERNAL = 70


def _print_versions(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    for name, version in versions().items():
        click.echo(f"{name} {version or 'not installed'}")
    ctx.exit()


class _InOrder(click.Group):
    """Lists commands in the order they were added (pipeline order), not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


_FORMAT = runtimes.DEFAULT.model_format
"""What edgekit convert's bundles are ("a … bundle"), as the epilog names them."""


@click.group(
    cls=_InOrder,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=f"""\b
Start here:
  edgekit demo                                        the whole pipeline on this computer (~7 min)
In pipeline order:
  edgekit example gemma3-270m ./gemma3-270m           the real Gemma 3 270M (base model), no download
  edgekit convert ./gemma3-270m -o model.litertlm     PyTorch/Hugging Face (or .gguf) -> {_FORMAT} INT4 bundle
  edgekit eval model.litertlm --reference ./gemma3-270m   NLL gap vs the fp32 PyTorch model
  edgekit deploy --device SERIAL model.litertlm       verified, idempotent push to a phone + smoke run
  edgekit battery-bench --device SERIAL model.litertlm   25 conversations: tokens/s, TTFT, battery %
  edgekit runs                                        runs started on phones and not collected yet
  edgekit report edgekit-results/RESULT.json          HTML report + Markdown summary
Run 'edgekit COMMAND --help' for a command's options and examples.
""",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_versions,
    help="Show edgekit's version and its key dependencies' versions, then exit.",
)
def cli() -> None:
    """edgekit: take a small language model from PyTorch to a phone, and measure how
    fast it runs and what it costs in battery."""


# Pipeline order: a model, its artifact, the phone, the measurement, its report; then upkeep.
for _command in (
    example_command,
    convert_command,
    eval_command,
    devices_command,
    deploy_command,
    bench_command,
    runs_command,
    report_command,
    compare_command,
    clean_command,
    demo_command,
):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with `argv`; returns the exit code instead of exiting."""
    debug = os.environ.get("EDGEKIT_DEBUG") == "1"
    try:
        # Once for the whole run: the library leaves the engine's process-wide log level alone.
        quiet_engine_logs()
        # Without standalone mode click returns a command's `Exit(code)` instead of raising it.
        code = cli.main(args=argv, prog_name="edgekit", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.NoArgsIsHelpError as exc:  # `edgekit` alone: the help, as click shows it
        exc.show()
        return exc.exit_code
    except click.UsageError as exc:
        if exc.ctx is not None:
            command = exc.ctx.command_path
            click.echo(f"{exc.ctx.get_usage()}\nTry '{command} --help' for help.", err=True)
        Output().error(exc.format_message())
        return exc.exit_code
    except click.ClickException as exc:
        Output().error(exc.format_message())
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        # Click turns Ctrl-C into Abort. Every command cleans up in `finally` blocks.
        # No claim about what was left behind: that depends on where the command was cut.
        Output().error("interrupted")
        return EXIT_INTERRUPTED
    except EdgekitError as exc:
        if debug:
            raise
        Output().error(str(exc))
        return exc.exit_code
    except Exception as exc:
        if debug:
            raise
        Output().error(f"internal error: {type(exc).__name__}: {exc} (run with EDGEKIT_DEBUG=1 for the traceback)")
        return EXIT_INTERNAL


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
