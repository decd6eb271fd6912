"""`edgekit eval`: the NLL gap of a `.litertlm` against the fp32 PyTorch model of a checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit import runtimes
from edgekit._capture import captured_output, new_log_path, torch_threads
from edgekit._typed import to_data
from edgekit.commands._common import bpb_line, nll_line
from edgekit.commands.output import Output
from edgekit.errors import InputError

_HELP = f"""How much worse ARTIFACT (.litertlm) predicts real text than the fp32 PyTorch model of
--reference: the {runtimes.DEFAULT.name} engine prefills a context and scores its continuation
(no chat template); PyTorch scores the same tokens; the gap is the difference of the
mean negative log-likelihood per token, in nats (0 = as good; exp(gap) is the
perplexity ratio). Works for edgekit's artifacts and third-party .litertlm files whose
tokenizer matches the reference's.

Also bits per byte of each side (total NLL over the scored text / its UTF-8 bytes / ln 2),
tokens per byte, and the share of the bytes written as byte pieces. An artifact converted
with --vocab-from (its manifest says so) tokenizes differently from the full model: each
side scores its own tokenization of the same text, and bits per byte is the figure to
compare (the per-token gap is then the difference of total NLL per artifact token).
"""
"""The command's help (click dedents it as it does a docstring)."""


@click.command(
    "eval",
    help=_HELP,
    short_help="NLL gap and bits per byte of a .litertlm vs the fp32 PyTorch model.",
    epilog="""\b
Examples:
  edgekit eval gemma3-270m.litertlm --reference ./gemma3-270m
  edgekit eval google-gemma3-270m-q8.litertlm --reference ./gemma-3-270m-it --json
  edgekit eval my.litertlm --reference ./my-finetune --text held-out.txt --max-tokens 4096
  edgekit eval my-app.litertlm --reference ./gemma-3-270m --adapter ./my-lora
  edgekit eval de-app.litertlm --reference ./gemma-3-270m --text held-out-de.txt   (a --vocab-from artifact)
""",
)
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option(
    "--reference",
    required=True,
    type=click.Path(path_type=Path),
    help="The Hugging Face checkpoint folder the artifact should match (run in PyTorch, fp32).",
)
@click.option(
    "--adapter",
    type=click.Path(path_type=Path),
    help="A LoRA adapter folder (PEFT) merged into --reference before scoring.  "
    "[default: the adapter the artifact's manifest records, if any]",
)
@click.option(
    "--text",
    "text_path",
    type=click.Path(path_type=Path),
    help="UTF-8 prose to score (paragraphs separated by blank lines).  "
    "[default: built-in news and Russian prose from the pinned gensim wheel]",
)
@click.option(
    "--section",
    type=click.Choice(["report", "selection"]),
    default="report",
    show_default=True,
    help="Part of the built-in text: 'selection' for choosing between recipes, 'report' (disjoint) "
    "for the figure you publish.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=2048,
    show_default=True,
    help="Tokens to score; more gives a steadier figure (the ± shown) and takes longer.",
)
@click.option("--max-nll-gap", type=float, help="Exit 4 if the gap (nats/token) is larger than this.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the engine and PyTorch.  [default: all]")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def eval_command(
    artifact: Path,
    reference: Path,
    adapter: Path | None,
    text_path: Path | None,
    section: str,
    max_tokens: int,
    max_nll_gap: float | None,
    threads: int | None,
    as_json: bool,
) -> None:
    """The NLL gap and bits per byte of ARTIFACT vs the PyTorch model (the command's help: _HELP)."""
    from edgekit.convert import nll
    from edgekit.convert.evaluate import evaluate

    output = Output(json=as_json)
    if text_path is not None and section != "report":
        raise InputError("--section picks part of the built-in text: drop it when you give --text")
    if max_nll_gap is not None and not max_nll_gap >= 0:
        raise InputError(f"--max-nll-gap must be >= 0 nats/token, got {max_nll_gap}")
    text = nll.text_from_file(text_path) if text_path is not None else nll.builtin_text(section)
    threads_word = f"{threads} threads" if threads else "all cores"
    status = output.status(f"scoring up to {max_tokens} tokens with the engine and PyTorch ({threads_word})…")
    with status, captured_output(new_log_path("eval")), torch_threads(threads):
        result = evaluate(
            artifact,
            reference,
            text=text,
            max_tokens=max_tokens,
            threads=threads,
            max_nll_gap=max_nll_gap,
            adapter_dir=adapter,
        )
    if output.json:
        output.data(to_data(result.json_view()))
        return
    gap = result.gap
    output.echo(nll_line(gap, result.recipe or artifact.name))
    output.echo(
        f"  mean NLL: artifact {gap.artifact_nll:.4f}, PyTorch fp32 {gap.reference_nll:.4f} nats/token "
        f"over {gap.windows} windows; reference {result.reference}"
        + (f" with adapter {result.adapter} merged" if result.adapter else "")
    )
    output.echo(bpb_line(gap))
