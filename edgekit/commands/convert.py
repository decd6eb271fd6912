"""`edgekit convert`: a Hugging Face checkpoint folder or a GGUF file becomes a verified artifact."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit import runtimes
from edgekit.commands._common import render_conversion
from edgekit.commands.output import Output
from edgekit.convert.recipes import Format, Quant
from edgekit.errors import InputError


def _parse_lengths(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers, e.g. 128,512") from None


_HELP = f"""Convert MODEL, a Hugging Face checkpoint folder (config.json, *.safetensors, tokenizer)
or a GGUF file (gemma3, qwen2, qwen3, lfm2), to a {runtimes.DEFAULT.model_format} artifact, INT4 by default, and
check it against the PyTorch model: next-token top-1 agreement, and the NLL gap of the
{runtimes.DEFAULT.name} engine vs fp32 PyTorch on held-out prose (see `edgekit eval`).

Settings come from the flag, else the model family's recipe (converters/*.toml), else
edgekit's defaults; the manifest written beside the output (OUTPUT.json) records each
value and its source, the sha256 of every input file, tool versions and the fidelity
figures. Re-running with unchanged input and settings returns at once.
"""
"""The command's help (click dedents it as it does a docstring)."""


@click.command(
    "convert",
    help=_HELP,
    short_help=f"PyTorch/Hugging Face or GGUF -> a verified {runtimes.DEFAULT.model_format} (INT4) artifact.",
    epilog="""\b
Examples:
  edgekit convert ./gemma-3-270m-it -o gemma3-270m-int4.litertlm
  edgekit convert ./gemma-3-270m-q4_k_m.gguf -o gemma3-270m.litertlm
  edgekit convert ./my-finetune --quant int8 --cache-length 2048 -o ft.litertlm
  edgekit convert ./my-finetune --format tflite -o ft.tflite --json
  edgekit convert ./my-ja-app --calibration-text prompts-ja.txt -o ja-app.litertlm
  edgekit convert ./gemma-3-270m --adapter ./my-lora -o my-app.litertlm
  edgekit convert ./gemma-3-270m --vocab-from de-corpus.txt --vocab-size 32000 -o de-app.litertlm
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
    "a tied Gemma 3 embedding/output table split in two, the half of the ids the model uses most "
    "INT8 and the rest INT4 in blocks of 32, other linear layers INT8 per channel (other models: "
    "as int4-table); int4-table: the whole table INT4 in blocks of 32, linear layers INT8; "
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
    help=f"litertlm: {runtimes.DEFAULT.name} bundle (model + tokenizer + chat template); "
    "tflite: the bare quantized model.  "
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
    help=f"Run the fidelity check: the artifact with the {runtimes.DEFAULT.name} engine vs the PyTorch model.",
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
    f"scored by the {runtimes.DEFAULT.name} engine, for the check to pass; exp(gap) is the perplexity ratio.  "
    "[default: from the recipe; none for random weights]",
)
@click.option(
    "--eval-text",
    type=click.Path(path_type=Path),
    help="UTF-8 prose for the NLL gap (paragraphs separated by blank lines).  "
    "[default: built-in news and Russian prose from the pinned gensim wheel, 'report' section]",
)
@click.option(
    "--calibration-text",
    "calibration_texts",
    multiple=True,
    type=click.Path(path_type=Path),
    help="The app's own UTF-8 text (prompts, fine-tuning data, prose of its language); repeatable. "
    "It decides what the recipe calibrates: with int4 on Gemma 3, the ids the model predicts or reads "
    "there get the 8-bit half of the table first. The manifest records each file's sha256.  "
    "[default: the model's own samples in its 16 most common writing systems]",
)
@click.option(
    "--adapter",
    type=click.Path(path_type=Path),
    help="A LoRA fine-tune as training leaves it: the PEFT/Unsloth adapter folder (adapter_config.json + "
    "adapter_model.safetensors) for MODEL. It is merged into MODEL (a checkpoint folder) with PEFT before "
    "export; the fidelity check compares against the merged model; the manifest records the adapter's files.",
)
@click.option(
    "--vocab-from",
    "vocab_from",
    multiple=True,
    type=click.Path(path_type=Path),
    help="The app's own UTF-8 text (prompts, fine-tuning data, a corpus of its language); repeatable. "
    "The table keeps only the ids this text tokenizes to, plus every special, added and chat-template "
    "token, every byte piece and the pieces BPE builds the kept ones from; the model's embedding, output "
    "projection and the bundled tokenizer are remapped together. Other text still encodes, in smaller "
    "pieces or bytes. Gemma 3 only. The manifest records the kept ids and each file's sha256.",
)
@click.option(
    "--vocab-min-count",
    type=click.IntRange(min=1),
    help="With --vocab-from: keep a text's id only if it occurs at least N times.  [default: 1]",
)
@click.option(
    "--vocab-size",
    type=click.IntRange(min=1),
    help="With --vocab-from: keep N ids in all, the text's most frequent first, the room it leaves filled "
    "(--vocab-fill).  [default: the ids the tokenizer needs and a quarter of the vocabulary more, 65,934 for "
    "Gemma 3; with --no-vocab-fill, every id the text needs]",
)
@click.option(
    "--vocab-fill/--no-vocab-fill",
    default=True,
    show_default=True,
    help="With --vocab-from: fill the room the text leaves with pieces of its own writing systems it did "
    "not use: single letters, then words (capitalized word starts; in a second writing system, such as a "
    "Japanese text's English, every word start), then the rest, most frequent first. "
    "--no-vocab-fill keeps only the text's ids (all of them without --vocab-size).",
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
    calibration_texts: tuple[Path, ...],
    adapter: Path | None,
    vocab_from: tuple[Path, ...],
    vocab_min_count: int | None,
    vocab_size: int | None,
    vocab_fill: bool,
    force: bool,
    verbose: bool,
    as_json: bool,
) -> None:
    """Convert MODEL to a verified artifact and check it (the command's help: _HELP)."""
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
        calibration_texts=calibration_texts,
        adapter=adapter,
        vocab_from=vocab_from,
        vocab_min_count=vocab_min_count,
        vocab_size=vocab_size,
        vocab_fill=vocab_fill,
        force=force,
        verbose=verbose,
        given_by="flag",
    )
    if not model_dir.exists():
        raise InputError(f"model {model_dir} does not exist: give a checkpoint folder or a .gguf file", path=model_dir)
    out = Output(json=as_json)
    stages = out.stages()
    try:
        result = convert(model_dir, config, progress=stages, capture_output=True, set_torch_threads=True)
    finally:
        stages.stop()
    if out.json:
        data = {"artifact": str(result.artifact.path), "cached": result.cached, "notes": list(result.notes)}
        data["manifest"] = result.artifact.manifest.to_data() if result.artifact.manifest else None
        out.data(data)
    else:
        render_conversion(result, out)
