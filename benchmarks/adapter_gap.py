"""A LoRA fine-tune through `edgekit convert --adapter`: the artifact scores as the merged model, not as the base.

Trains a LoRA adapter with PEFT on MODEL_DIR (rank `--rank` on every projection of every
layer, `--steps` Adam steps on TRAIN_TEXT), saves it as PEFT saves it, converts
`MODEL_DIR --adapter` with edgekit's defaults (the CLI, in a subprocess), and scores the
artifact on HELD_OUT (a text the adapter did not see) with the engine, exactly: against
the merged model (what `edgekit eval` does with the manifest's adapter) and against the
base. With `--default A.litertlm` (the base's default artifact) it also prints that
artifact's gap against the base on the same text: the recipe's usual gap. Prints a
Markdown table and the command that reproduces it. About 15 minutes for Gemma 3 270M on
2 cores (the conversion is most of it).

    .venv/bin/python benchmarks/adapter_gap.py ./gemma3-270m ml/selection/de.txt ml/report/de.txt /tmp/lora \\
        --default int4.litertlm
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def train(model_dir: Path, text: Path, out: Path, *, rank: int, steps: int, tokens: int) -> dict[str, float]:
    """Train and save the adapter at `out`; the training loss before and after."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from edgekit.convert.adapter import PEFT_DEPRECATIONS

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PEFT_DEPRECATIONS, category=FutureWarning)
        peft_model = get_peft_model(
            model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=TARGETS, lora_dropout=0.0)
        )
    ids = tok(text.read_text(encoding="utf-8"), return_tensors="pt").input_ids[:, :tokens]
    opt = torch.optim.Adam([p for p in peft_model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for step in range(steps):
        loss = peft_model(input_ids=ids, labels=ids).loss
        losses.append(float(loss))
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"  step {step + 1}/{steps}: loss {losses[-1]:.3f}", file=sys.stderr)
    peft_model.save_pretrained(str(out))
    return {"loss_first": losses[0], "loss_last": losses[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("train_text", type=Path)
    parser.add_argument("held_out", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--train-tokens", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--default", type=Path, help="the base's default artifact, for the recipe's usual gap")
    args = parser.parse_args()
    import torch

    from edgekit.convert import nll
    from edgekit.convert.evaluate import evaluate
    from edgekit.convert.pipeline import load_reference

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    adapter = args.work / "adapter"
    losses = train(args.model_dir, args.train_text, adapter, rank=args.rank, steps=args.steps, tokens=args.train_tokens)
    artifact = args.work / "app.litertlm"
    edgekit = [sys.executable, "-m", "edgekit"]
    subprocess.run(
        [
            *edgekit,
            "convert",
            str(args.model_dir),
            "--adapter",
            str(adapter),
            "-o",
            str(artifact),
            "--force",
            "--threads",
            str(args.threads),
        ],
        check=True,
    )
    text = nll.text_from_file(args.held_out)
    merged = evaluate(artifact, args.model_dir, text=text, max_tokens=args.max_tokens, threads=args.threads)
    base, tokenizer = load_reference(args.model_dir)
    rows = [("app (--adapter) vs the merged model", artifact, merged.gap)]
    rows.append(
        (
            "app (--adapter) vs the base",
            artifact,
            nll.measure(
                artifact,
                base,
                text=text,
                max_tokens=args.max_tokens,
                threads=args.threads,
                reference_tokenizer=tokenizer,
            ),
        )
    )
    if args.default is not None:
        rows.append(
            (
                "default artifact of the base vs the base",
                args.default,
                nll.measure(
                    args.default,
                    base,
                    text=text,
                    max_tokens=args.max_tokens,
                    threads=args.threads,
                    reference_tokenizer=tokenizer,
                ),
            )
        )
    print(
        f"LoRA rank {args.rank} on {', '.join(TARGETS)}; {args.steps} steps on {args.train_text} "
        f"(loss {losses['loss_first']:.3f} -> {losses['loss_last']:.3f}); held out: {args.held_out}"
    )
    print("| artifact vs reference | MB | tokens | engine NLL | reference NLL | gap |")
    print("|---|---|---|---|---|---|")
    for name, path, gap in rows:
        print(
            f"| {name} | {path.stat().st_size / 1e6:.1f} | {gap.tokens} | {gap.artifact_nll:.4f} | "
            f"{gap.reference_nll:.4f} | {gap.gap_nats_per_token:+.3f} ±{gap.gap_stderr:.3f} |"
        )
    print(f"\nreproduce: {shlex.join([sys.executable, *sys.argv])}")


if __name__ == "__main__":
    main()
