"""`edgekit demo`: the pipeline end to end on a tiny built-in model, on this computer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
from rich.console import Console

from edgekit._capture import captured_output, new_log_path
from edgekit.commands._common import human_bytes, print_json, stderr_console
from edgekit.commands.bench import render_summary
from edgekit.commands.convert import StageProgress

DEMO_PROMPT = "Write a short friendly note about battery life."


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path("edgekit-demo"),
    show_default=True,
    help="Folder for the example model and its artifact; reused on the next run.",
)
@click.option("--prompt", default=DEMO_PROMPT, show_default=True, help="The prompt to run.")
@click.option("--threads", type=int, help="CPU threads for conversion and the engine.  [default: all]")
@click.option("--json", "as_json", is_flag=True, help="Print the artifact and the run's figures as JSON.")
def demo_command(workdir: Path, prompt: str, threads: int | None, as_json: bool) -> None:
    """The whole pipeline on this computer: build the tiny Gemma 3 example model (random
    weights), convert it to INT4 .litertlm with the fidelity check, run one prompt through
    the LiteRT-LM engine, deploy it to the `local` device, run the chat-25 battery-bench
    workload there, and write its result and HTML report into the work folder.

    The model's weights are random, so its answer is gibberish; the figures are real
    measurements of this machine (battery "not measured" where it has no readable battery
    counter). The fidelity floor is lowered to 25% top-1 agreement
    for these random weights (a trained model keeps its recipe's, e.g. 80% for gemma3). Needs edgekit[convert].
    """
    from edgekit.bench.session import BenchConfig, run_local
    from edgekit.convert import ConvertConfig, convert
    from edgekit.convert.example import RANDOM_WEIGHTS_MIN_AGREEMENT, TINY, write_example_model
    from edgekit.convert.pipeline import require_convert_extra
    from edgekit.deploy import DeployConfig, deploy
    from edgekit.device.local import LocalDevice
    from edgekit.engine import run_prompt
    from edgekit.report import html_report

    require_convert_extra()
    console = stderr_console()
    log = new_log_path("demo")
    model_dir = workdir / "tiny-gemma3"
    if not (model_dir / "edgekit-example.json").is_file():
        with console.status("building the tiny Gemma 3 example model…"), captured_output(log):
            write_example_model(model_dir, TINY)
        console.print(f"[green]✓[/green] example model (random weights) in {model_dir}")
    artifact_path = workdir / "tiny-gemma3-int4.litertlm"
    progress = StageProgress(console)
    try:
        # Random weights: the recipe's floor is for trained models (see RANDOM_WEIGHTS_MIN_AGREEMENT).
        config = ConvertConfig(output=artifact_path, threads=threads, min_agreement=RANDOM_WEIGHTS_MIN_AGREEMENT)
        result = convert(model_dir, config, progress=progress)
    finally:
        progress.stop()
    with console.status("running one prompt with the LiteRT-LM engine…"), captured_output(log):
        run = run_prompt(result.artifact.path, prompt, max_output_tokens=32, threads=threads)
    device = LocalDevice()
    with console.status("deploying to the local device…"), captured_output(log):
        deployed = deploy(device, result.artifact.path, DeployConfig(smoke=False))
    console.print(f"[green]✓[/green] deployed to the local device ({deployed.model.remote})")
    with console.status("battery-bench: chat-25 on this computer…"), captured_output(log):
        bench = run_local(device, result.artifact.path, BenchConfig(threads=threads))
    result_path = workdir / "battery-bench.json"
    report_path = workdir / "battery-bench.html"
    bench.write(result_path)
    report_path.write_text(html_report(bench))
    manifest = result.artifact.manifest
    assert manifest is not None
    if as_json:
        print_json(
            {
                "artifact": str(result.artifact.path),
                "sha256": manifest.sha256,
                "size_bytes": manifest.size_bytes,
                "fidelity": manifest.fidelity,
                "run": dataclasses.asdict(run),
                "battery_bench": {"result": str(result_path), "report": str(report_path), "summary": bench.summary},
            }
        )
        return
    out = Console(highlight=False, soft_wrap=True)
    fid = manifest.fidelity or {}
    out.print(
        f"artifact {result.artifact.path} ({human_bytes(manifest.size_bytes)}, INT4)"
        f"{' (cached)' if result.cached else ''}; top-1 agreement with PyTorch {fid.get('top1_agreement', 0):.1%}"
    )
    out.print(f"prompt: {prompt}")
    out.print(f"answer (random weights, so gibberish): {run.text[:120]!r}")
    out.print(
        f"prefill {run.prefill_tokens} tokens at {run.prefill_tokens_per_s:.1f} tok/s · "
        f"decode {run.decode_tokens} tokens at {run.decode_tokens_per_s:.1f} tok/s · "
        f"time to first token {run.ttft_s * 1000:.0f} ms · engine load {run.init_s:.2f} s (this computer's CPU)"
    )
    for line in render_summary(bench, result_path)[:3]:
        out.print(line)
    out.print(f"report: {report_path}")
