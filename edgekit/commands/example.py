"""`edgekit example NAME DIR`: write a built-in example checkpoint (random weights)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from edgekit._capture import captured_output, new_log_path
from edgekit.commands._common import print_json, stderr_console

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


@click.command("example")
@click.argument("name", type=click.Choice(["tiny-gemma3", "gemma3-270m-shape"]))
@click.argument("directory", type=click.Path(path_type=Path))
@_shape_options
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def example_command(name: str, directory: Path, as_json: bool, **overrides: int | None) -> None:
    """Write example model NAME as a Hugging Face checkpoint folder DIRECTORY.

    tiny-gemma3 is a 2-layer Gemma 3 text model (about 50k parameters) with a byte-level
    BPE tokenizer trained here and a Gemma chat template; gemma3-270m-shape has the
    published Gemma 3 270M shape. Both have RANDOM weights: they exercise the pipeline,
    their answers mean nothing. Needs edgekit[convert].
    """
    from edgekit.convert.example import EXAMPLES, write_example_model
    from edgekit.convert.pipeline import require_convert_extra

    require_convert_extra()
    spec = dataclasses.replace(EXAMPLES[name], **{k: v for k, v in overrides.items() if v is not None})
    with stderr_console().status(f"building {name}…"), captured_output(new_log_path("example")):
        path = write_example_model(directory, spec)
    if as_json:
        print_json({"example": name, "path": str(path), "spec": dataclasses.asdict(spec)})
    else:
        click.echo(f"wrote example model {name} (random weights) to {path}")
