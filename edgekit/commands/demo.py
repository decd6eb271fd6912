"""`edgekit demo`: the whole pipeline on this computer, with the real Gemma 3 270M when installed.

example → convert (default recipe, fidelity check) → one continuation from the LiteRT-LM
engine beside PyTorch's → deploy over the ADB protocol to an emulated phone
(`edgekit.testing`'s device emulator, battery simulated) → battery-bench chat-25 there →
result JSON and HTML report in the work folder.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from edgekit._capture import captured_output, new_log_path, torch_threads
from edgekit.commands._common import StageProgress, print_json, render_conversion, render_summary, stderr_console
from edgekit.errors import DependencyError

if TYPE_CHECKING:
    from edgekit.bench.result import BenchResult
    from edgekit.convert import ConvertResult

DEMO_PROMPT = "The capital of France is"
DEMO_MAX_TOKENS = 24
DEMO_BASELINE_S = 15.0
"""Each idle window (before and after the workload) on the emulated phone: its battery is simulated."""


@click.command(
    "demo",
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
    type=click.Choice(["auto", "gemma3-270m", "tiny"]),
    default="auto",
    show_default=True,
    help="gemma3-270m: the trained base model (edgekit[gemma3-270m]); tiny: random weights; "
    "auto: gemma3-270m when its packages are installed, else tiny.",
)
@click.option("--prompt", default=DEMO_PROMPT, show_default=True, help="The text the model continues.")
@click.option("--threads", type=int, help="CPU threads for conversion and the engine.  [default: all]")
@click.option("--json", "as_json", is_flag=True, help="Print the artifact, the continuation and the run as JSON.")
def demo_command(workdir: Path, model_choice: str, prompt: str, threads: int | None, as_json: bool) -> None:
    """The whole pipeline on this computer, every figure once.

    Materializes the trained Gemma 3 270M (base model: it continues text, it does not
    chat) from its installed packages, converts it with the default INT4 recipe and the
    fidelity check, prints the LiteRT-LM engine's continuation of a prompt beside
    PyTorch's, deploys the artifact over the ADB protocol to an emulated phone on
    127.0.0.1, runs the chat-25 battery-bench workload there and writes the result and
    an HTML report into the work folder. If the real weights are not installed it says
    so and uses the tiny random-weights model instead.

    Real measurements of this computer: conversion time and memory, the quality figures,
    every token/s and time-to-first-token figure (the emulated phone runs the model on
    this computer's CPU). Simulated: the battery figures (the emulated phone's battery).
    Exits 6 or 7 like battery-bench when the run is void or failed. Needs edgekit[convert].
    """
    from edgekit.convert.pipeline import require_convert_extra
    from edgekit.report import html_report

    require_convert_extra()
    console = stderr_console()
    log = new_log_path("demo")
    workdir.mkdir(parents=True, exist_ok=True)
    minutes = "2" if model_choice == "tiny" else "7 (2 with the tiny fallback model)"
    console.print(f"edgekit demo: about {minutes} minutes on 2 cores the first time")
    model_dir, real = _demo_model(workdir, model_choice, console, log)
    console.print(f"model: {'the real Gemma 3 270M (base model)' if real else 'the tiny random-weights model'}")
    converted = _convert(model_dir, workdir / f"{_model_name(real)}.litertlm", threads, console)
    with console.status("continuing the prompt with the LiteRT-LM engine and with PyTorch…"), captured_output(log):
        continuations = _continuations(converted.artifact.path, model_dir, prompt, threads)
    with console.status("chat-25 on an emulated phone over the ADB protocol (battery simulated)…"):
        bench = _bench_on_emulated_phone(workdir, converted.artifact.path, threads, log)
    result_path = workdir / "battery-bench.json"
    report_path = workdir / "battery-bench.html"
    bench.write(result_path)
    report_path.write_text(html_report(bench))
    if as_json:
        print_json(_demo_json(real, converted, prompt, continuations, bench, result_path, report_path))
    else:
        render_conversion(converted, console)
        _render_demo(real, prompt, continuations, bench, result_path, report_path)
    code = bench.exit_code()
    if code:
        raise click.exceptions.Exit(code)


def _model_name(real: bool) -> str:
    return "gemma3-270m" if real else "tiny-gemma3"


def _convert(model_dir: Path, output: Path, threads: int | None, console: Console) -> ConvertResult:
    """The default INT4 recipe with the fidelity check, stages shown as they run."""
    from edgekit.convert import ConvertConfig, convert

    progress = StageProgress(console)
    try:
        config = ConvertConfig(output=output, threads=threads, given_by="flag")
        return convert(model_dir, config, progress=progress, capture_output=True, set_torch_threads=True)
    finally:
        progress.stop()


def _demo_json(
    real: bool,
    converted: ConvertResult,
    prompt: str,
    continuations: tuple[str, str],
    bench: BenchResult,
    result_path: Path,
    report_path: Path,
) -> dict[str, Any]:
    manifest = converted.artifact.manifest
    assert manifest is not None
    engine_text, torch_text = continuations
    return {
        "model": _model_name(real),
        "base_model": real,
        "random_weights": not real,
        "artifact": str(converted.artifact.path),
        "manifest": str(converted.artifact.path) + ".json",
        "size_bytes": manifest.size_bytes,
        "fidelity": None if manifest.fidelity is None else manifest.fidelity.to_dict(),
        "prompt": prompt,
        "continuation": {"litert_lm": engine_text, "pytorch": torch_text},
        "battery_bench": {
            "result": str(result_path),
            "report": str(report_path),
            "simulated": bench.simulated,
            "exit_code": bench.exit_code(),
            "summary": bench.to_data()["summary"],
        },
    }


def _render_demo(
    real: bool, prompt: str, continuations: tuple[str, str], bench: BenchResult, result_path: Path, report_path: Path
) -> None:
    out = Console(highlight=False, soft_wrap=True)
    engine_text, torch_text = continuations
    kind = "base model: it continues text" if real else "random weights, so gibberish"
    out.print(f"prompt: {prompt!r} ({kind})")
    out.print(f"  LiteRT-LM engine (INT4 artifact): {engine_text!r}")
    out.print(f"  PyTorch (fp32 reference):         {torch_text!r}")
    for line in render_summary(bench, result_path):
        out.print(line)
    out.print(
        "the emulated phone's speed figures are this computer's CPU running the model (not a phone's); "
        "its battery figures are SIMULATED"
    )
    out.print(f"report: {report_path}")


def _demo_model(workdir: Path, choice: str, console: Console, log: Path) -> tuple[Path, bool]:
    """The checkpoint folder to convert and whether it has real weights."""
    from edgekit.convert.example import TINY, write_example_model
    from edgekit.convert.gguf import materialize_gemma3_270m

    if choice != "tiny":
        real_dir = workdir / "gemma3-270m"
        if (real_dir / "edgekit-example.json").is_file():
            return real_dir, True
        try:
            with console.status("materializing the trained Gemma 3 270M from its packages…"), captured_output(log):
                materialize_gemma3_270m(real_dir)
            return real_dir, True
        except DependencyError as exc:
            if choice == "gemma3-270m":
                raise
            console.print(f"[yellow]note:[/yellow] {exc}; the demo falls back to the tiny random-weights model")
    tiny_dir = workdir / "tiny-gemma3"
    if not (tiny_dir / "edgekit-example.json").is_file():
        shutil.rmtree(tiny_dir, ignore_errors=True)
        with console.status("building the tiny Gemma 3 example model…"), captured_output(log):
            write_example_model(tiny_dir, TINY)
    return tiny_dir, False


def _continuations(artifact: Path, model_dir: Path, prompt: str, threads: int | None) -> tuple[str, str]:
    """Greedy continuations of `prompt` (no chat template) by the artifact's engine and by PyTorch."""
    import torch

    from edgekit.convert.pipeline import load_reference
    from edgekit.engine import run_prompt

    engine = run_prompt(
        artifact, prompt, max_output_tokens=DEMO_MAX_TOKENS, threads=threads, apply_prompt_template=False
    )
    model, tokenizer = load_reference(model_dir)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad(), torch_threads(threads):
        out = model.generate(ids, max_new_tokens=DEMO_MAX_TOKENS, do_sample=False)
    return engine.text, str(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))


@contextlib.contextmanager
def _keep_remembered_runner() -> Iterator[None]:
    """Deploy remembers the last runner it was given; the demo's stand-in must not replace the user's."""
    from edgekit.runners import runner_cache_dir

    last = runner_cache_dir() / "last"
    before = last.read_text() if last.is_file() else None
    try:
        yield
    finally:
        if before is None:
            last.unlink(missing_ok=True)
        else:
            last.write_text(before)


def _bench_on_emulated_phone(workdir: Path, artifact: Path, threads: int | None, log: Path) -> BenchResult:
    """chat-25 on `edgekit.testing`'s ADB device emulator (fresh each time), over the direct transport."""
    from edgekit.bench.session import BenchConfig, battery_bench
    from edgekit.device.direct import DirectAdbDevice, ensure_adb_key
    from edgekit.testing.emulator import AdbDeviceEmulator
    from edgekit.testing.runner_standin import write_runner_standin

    phone = workdir / "emulated-phone"
    shutil.rmtree(phone, ignore_errors=True)
    phone.mkdir(parents=True)
    key = ensure_adb_key(phone / "adbkey")
    runner = write_runner_standin(phone / "litert_lm_main", "advanced")
    emulator = AdbDeviceEmulator(phone / "sandbox", trusted_keys=[key.with_name("adbkey.pub").read_bytes()])
    # The device opens once the emulator listens (its port) and closes before the emulator stops.
    with (
        emulator,
        _keep_remembered_runner(),
        captured_output(log),
        DirectAdbDevice("127.0.0.1", emulator.port, key_path=key) as device,
    ):
        config = BenchConfig(runner=runner, baseline_s=DEMO_BASELINE_S, threads=threads)
        return battery_bench(device, artifact, config)
