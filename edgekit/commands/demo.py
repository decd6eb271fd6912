"""`edgekit demo`: the whole pipeline on this computer (`edgekit.demo`), then its figures."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit import runtimes
from edgekit.commands._common import render_conversion, render_summary
from edgekit.commands.output import Output
from edgekit.demo import DEMO_PROMPT, DemoConfig, DemoModel, DemoObserver, DemoResult, run_demo

_HELP = f"""The whole pipeline on this computer, every figure once.

Materializes the trained Gemma 3 270M (base model: it continues text, it does not
chat) from its installed packages, converts it with the default INT4 recipe and the
fidelity check, prints the {runtimes.DEFAULT.name} engine's continuation of a prompt beside
PyTorch's, deploys the artifact over the ADB protocol to an emulated phone on
127.0.0.1, runs the chat-25 battery-bench workload there and writes the result and
an HTML report into the work folder. If the real weights are not installed it says
so and uses the tiny random-weights model instead.

Real measurements of this computer: conversion time and memory, the quality figures,
every token/s and time-to-first-token figure (the emulated phone runs the model on
this computer's CPU). Simulated: the battery figures (the emulated phone's battery).
Exits 6 or 7 like battery-bench when the run is void or failed. Needs edgekit[convert].
"""
"""The command's help (click dedents it as it does a docstring)."""


@click.command(
    "demo",
    help=_HELP,
    short_help="The whole pipeline on this computer, every figure once.",
    epilog="""\b
Examples:
  edgekit demo                              the real Gemma 3 270M when installed (about 7 min on 2 cores)
  edgekit demo --model tiny                 the tiny random-weights model (about 2 min)
  edgekit demo --prompt "The sky is" --json
""",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path("edgekit-demo"),
    show_default=True,
    help="Folder for the example model, its artifact, the emulated phone and the results; reused next time.",
)
@click.option(
    "--model",
    "model_choice",
    type=click.Choice([m.value for m in DemoModel]),
    default="auto",
    show_default=True,
    help="gemma3-270m: the trained base model (edgekit[gemma3-270m]); tiny: random weights; "
    "auto: gemma3-270m when its packages are installed, else tiny.",
)
@click.option("--prompt", default=DEMO_PROMPT, show_default=True, help="The text the model continues.")
@click.option("--threads", type=int, help="CPU threads for conversion and the engine.  [default: all]")
@click.option("--json", "as_json", is_flag=True, help="Print the artifact, the continuation and the run as JSON.")
def demo_command(workdir: Path, model_choice: str, prompt: str, threads: int | None, as_json: bool) -> None:
    """The whole pipeline on this computer (the command's help: _HELP)."""
    from edgekit.convert.pipeline import require_convert_extra

    require_convert_extra()
    output = Output(json=as_json)
    minutes = "2" if model_choice == "tiny" else "7 (2 with the tiny fallback model)"
    output.say(f"edgekit demo: about {minutes} minutes on 2 cores the first time")
    config = DemoConfig(workdir=workdir, model=DemoModel(model_choice), prompt=prompt, threads=threads)
    stages = output.stages()
    observer = DemoObserver(
        status=output.status,
        note=output.note,
        model=lambda real: output.say(
            f"model: {'the real Gemma 3 270M (base model)' if real else 'the tiny random-weights model'}"
        ),
        stage=stages,
    )
    try:
        demo = run_demo(config, observer)
    finally:
        stages.stop()
    if output.json:
        output.data(demo.to_dict())
    else:
        render_conversion(demo.converted, output)
        _render_demo(output, demo)
    if code := demo.exit_code():
        raise click.exceptions.Exit(code)


def _render_demo(out: Output, demo: DemoResult) -> None:
    # As it is: the continuations and the summary's "[basis]" labels are text, not rich markup.
    kind = "base model: it continues text" if demo.real else "random weights, so gibberish"
    out.echo(f"prompt: {demo.prompt!r} ({kind})")
    out.echo(f"  {runtimes.DEFAULT.name} engine (INT4 artifact): {demo.engine_text!r}")
    out.echo(f"  PyTorch (fp32 reference):         {demo.torch_text!r}")
    for line in render_summary(demo.bench, demo.result_path):
        out.echo(line)
    out.echo(
        "the emulated phone's speed figures are this computer's CPU running the model (not a phone's); "
        "its battery figures are SIMULATED"
    )
    out.echo(f"report: {demo.report_path}")
