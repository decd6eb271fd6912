"""`edgekit convert`: a Hugging Face checkpoint folder or a GGUF file becomes a verified LiteRT artifact."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from edgekit.commands._common import human_bytes, print_json, stderr_console
from edgekit.convert.recipes import Format, Quant
from edgekit.errors import InputError

if TYPE_CHECKING:
    from edgekit.artifact import NllRecord
    from edgekit.convert.nll import NllGap
    from edgekit.convert.pipeline import ConvertResult

_STAGE_LABELS = {
    "load": "load checkpoint",
    "export": "export (litert-torch)",
    "quantize": "quantize",
    "bundle": "bundle",
    "verify": "verify against PyTorch",
}


def _parse_lengths(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers, e.g. 128,512") from None


class StageProgress:
    """Renders stage start/done events: a spinner while a stage runs, a line when it ends."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._status: Any = None
        self._started: dict[str, float] = {}

    def __call__(self, stage: str, event: str) -> None:
        label = _STAGE_LABELS.get(stage, stage)
        if event == "start":
            self._started[stage] = time.perf_counter()
            self.stop()
            self._status = self._console.status(f"{label}…")
            self._status.start()
        else:
            self.stop()
            elapsed = time.perf_counter() - self._started.get(stage, time.perf_counter())
            self._console.print(f"[green]✓[/green] {label:<24} {elapsed:7.1f} s")

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def render(result: ConvertResult, console: Console) -> None:
    """Human summary of a ConvertResult on stdout."""
    manifest = result.artifact.manifest
    assert manifest is not None  # convert() always writes one
    s = manifest.settings
    out = Console(highlight=False, soft_wrap=True)
    verb = "up to date (cached, same input and settings)" if result.cached else "wrote"
    out.print(f"{verb} {result.artifact.path} ({human_bytes(manifest.size_bytes)}, sha256 {manifest.sha256[:12]}…)")
    recipe = s.quant_recipe.value if s.quant_recipe is not None else None
    out.print(
        f"  quant {s.quant.value} ({recipe or 'no quantization'}, {s.quant.source})"
        f" · cache {s.cache_length.value} ({s.cache_length.source})"
        f" · prefill {','.join(map(str, s.prefill_lengths.value))} ({s.prefill_lengths.source})"
    )
    quantization = manifest.quantization
    if quantization and quantization.rules:
        recovered = "; the checkpoint's Q4_0 grid recovered" if quantization.grid_recovered else ""
        out.print(f"  weights: {quantization.description}{recovered}")
    fid = manifest.fidelity
    if fid:
        engine = (
            f", engine generated {fid.engine_generated_tokens} tokens"
            if fid.engine_generated_tokens is not None
            else ""
        )
        floor_source = s.min_agreement.source if s.min_agreement is not None else None
        out.print(
            f"  fidelity vs PyTorch: top-1 agreement {fid.top1_agreement:.1%}"
            f" (floor {fid.min_top1_agreement:.0%}{' for random weights' if floor_source == 'random-weights' else ''})"
            f", logit error max {fid.max_abs_logit_error:.3g} mean {fid.mean_abs_logit_error:.3g}"
            f", greedy {round(fid.greedy_agreement * fid.greedy_steps)}/{fid.greedy_steps} steps{engine}"
        )
        if fid.nll:
            out.print("  " + nll_line(fid.nll, quant_words(s.quant.value)))
    conv = manifest.conversion
    out.print(
        f"  converted in {conv.wall_time_s:.1f} s, peak RSS {conv.peak_rss_mb:.0f} MB;"
        f" manifest {result.artifact.path}.json"
    )
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")


def quant_words(quant: str) -> str:
    """The recipe named by `quant` in plain words ("INT8 weights per channel"), or the name itself."""
    try:
        return Quant(quant).description
    except ValueError:
        return quant


def nll_line(gap: NllRecord | NllGap, recipe_words: str) -> str:
    """One line: the NLL gap of an artifact, e.g. "INT8 weights per channel: +0.061 nats/token vs fp32 …"."""
    ceiling = gap.max_nll_gap
    judged = f", floor {ceiling:.2f}" if ceiling is not None else ", not judged"
    return (
        f"{recipe_words}: {gap.gap_nats_per_token:+.3f} nats/token vs fp32 PyTorch on {gap.tokens} tokens "
        f"of {gap.text['name']} (±{gap.gap_stderr:.3f}, perplexity x{gap.perplexity_ratio:.3f}{judged})"
    )


@click.command(
    "convert",
    epilog="""\b
Examples:
  edgekit convert ./gemma-3-270m-it -o gemma3-270m-int4.litertlm
  edgekit convert ./gemma-3-270m-q4_k_m.gguf -o gemma3-270m.litertlm
  edgekit convert ./my-finetune --quant int8 --cache-length 2048 -o ft.litertlm
  edgekit convert ./my-finetune --format tflite -o ft.tflite --json
""",
)
@click.argument("model_dir", metavar="MODEL", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Output file (.litertlm or .tflite). [default: MODEL_DIR's name + format extension, in this folder]",
)
@click.option(
    "--quant",
    type=click.Choice([q.value for q in Quant]),
    help="Weight quantization. int4: the 4-bit-class default, chosen on the real Gemma 3 270M: "
    "embedding/output table INT4 in blocks of 32, other linear layers INT8 per channel; "
    "int4-b32: INT4 blocks of 32 everywhere (smaller, loses quality on trained models); int4-b64: blocks of 64; "
    "int4-channel: per channel (collapses small LLMs upstream; allowed, with a warning); "
    "int8: per channel; fp32: none. The manifest records the exact ai-edge-quantizer recipe.  "
    "[default: int4, or the model family's recipe]",
)
@click.option(
    "--prefill-lengths",
    callback=_parse_lengths,
    metavar="N[,N...]",
    help="Prefill signature lengths. 128 is fastest for short chat prompts; add 512 for long prompts "
    "(halves prefill of a 256-token prompt).  [default: 128]",
)
@click.option(
    "--cache-length",
    type=int,
    help="KV cache length allocated at export = the longest conversation the model can hold. "
    "Decode speed falls with it (the whole cache is attended every step: 109/79/53 tok/s at "
    "1024/2048/4096 for a 270M model on 2 cores), so keep it no larger than your use needs.  "
    "[default: 1024 for gemma3, 2048 otherwise; upstream uses 4096]",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in Format]),
    help="litertlm: LiteRT-LM bundle (model + tokenizer + chat template); tflite: the bare quantized model.  "
    "[default: from -o's extension]",
)
@click.option("--threads", type=int, help="CPU threads for conversion and the fidelity check.  [default: all]")
@click.option(
    "--lightweight/--no-lightweight",
    default=None,
    help="litert-torch's lightweight conversion: less memory and time, same artifact.  [default: on]",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Run the fidelity check: the artifact with the LiteRT-LM engine vs the PyTorch model.",
)
@click.option(
    "--min-agreement",
    type=float,
    help="Minimum top-1 next-token agreement with PyTorch (0..1) for the check to pass.  "
    "[default: from the recipe; meant for trained models]",
)
@click.option(
    "--max-nll-gap",
    type=float,
    help="Largest NLL gap (nats/token) of the artifact vs the fp32 PyTorch model on held-out prose, "
    "scored by the LiteRT-LM engine, for the check to pass; exp(gap) is the perplexity ratio.  "
    "[default: from the recipe; none for random weights]",
)
@click.option(
    "--eval-text",
    type=click.Path(path_type=Path),
    help="UTF-8 prose for the NLL gap (paragraphs separated by blank lines).  "
    "[default: built-in news and Russian prose from the pinned gensim wheel, 'report' section]",
)
@click.option(
    "--force", is_flag=True, help="Convert even when the output is up to date with the same input and settings."
)
@click.option("-v", "--verbose", is_flag=True, help="Show litert-torch's own output.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest and result as JSON on stdout.")
def convert_command(
    model_dir: Path,
    output: Path | None,
    quant: str | None,
    prefill_lengths: tuple[int, ...] | None,
    cache_length: int | None,
    fmt: str | None,
    threads: int | None,
    lightweight: bool | None,
    verify: bool,
    min_agreement: float | None,
    max_nll_gap: float | None,
    eval_text: Path | None,
    force: bool,
    verbose: bool,
    as_json: bool,
) -> None:
    """Convert MODEL, a Hugging Face checkpoint folder (config.json, *.safetensors, tokenizer)
    or a GGUF file (gemma3, qwen2, qwen3, lfm2), to a LiteRT artifact, INT4 by default, and
    check it against the PyTorch model: next-token top-1 agreement, and the NLL gap of the
    LiteRT-LM engine vs fp32 PyTorch on held-out prose (see `edgekit eval`).

    Settings come from the flag, else the model family's recipe (converters/*.toml), else
    edgekit's defaults; the manifest written beside the output (OUTPUT.json) records each
    value and its source, the sha256 of every input file, tool versions and the fidelity
    figures. Re-running with unchanged input and settings returns at once.
    """
    from edgekit.convert import ConvertConfig, convert

    if output is None:
        suffix = "." + (fmt or Format.LITERTLM.value)
        name = (model_dir.stem if model_dir.is_file() else model_dir.resolve().name) or "model"
        output = Path(name + suffix)
    config = ConvertConfig(
        output=output,
        quant=Quant(quant) if quant else None,
        prefill_lengths=prefill_lengths,
        cache_length=cache_length,
        format=Format(fmt) if fmt else None,
        threads=threads,
        lightweight=lightweight,
        verify=verify,
        min_agreement=min_agreement,
        max_nll_gap=max_nll_gap,
        eval_text=eval_text,
        force=force,
        verbose=verbose,
    )
    if not model_dir.exists():
        raise InputError(f"model {model_dir} does not exist: give a checkpoint folder or a .gguf file", path=model_dir)
    console = stderr_console()
    progress = StageProgress(console)
    try:
        result = convert(model_dir, config, progress=progress, capture_output=True, set_torch_threads=True)
    finally:
        progress.stop()
    if as_json:
        data = {"artifact": str(result.artifact.path), "cached": result.cached, "notes": list(result.notes)}
        data["manifest"] = result.artifact.manifest.to_data() if result.artifact.manifest else None
        print_json(data)
    else:
        render(result, console)
