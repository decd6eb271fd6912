"""The exact NLL gap of artifacts in twelve languages: each language's held-out text, scored by the engine.

For each `.litertlm` given (NAME=PATH or PATH) and each language text in TEXTS_DIR (one
UTF-8 file a language, as benchmarks/multilingual_text.py writes them), the LiteRT-LM
engine's NLL gap vs the fp32 PyTorch model of MODEL_DIR, scored exactly whatever
litert-lm-api is installed (edgekit.convert.nll.detect_scoring), `--max-tokens`
continuation tokens a language. Prints a Markdown table (gap ± standard error per
language, mean, max, size) and the command that reproduces it. About a minute per
artifact and language at 512 tokens on 2 cores.

    .venv/bin/python benchmarks/multilingual_text.py /tmp/ml
    .venv/bin/python benchmarks/multilingual_gap.py MODEL_DIR /tmp/ml/report int4=a.litertlm int8=b.litertlm
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from edgekit.convert import nll
from edgekit.convert.pipeline import load_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("texts_dir", type=Path)
    parser.add_argument("artifacts", nargs="+")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    model, tokenizer = load_reference(args.model_dir)
    texts = sorted(args.texts_dir.glob("*.txt"))
    langs = [t.stem for t in texts]
    print(f"| artifact | MB | {' | '.join(langs)} | mean | max |")
    print("|---|---|" + "---|" * (len(langs) + 2))
    for spec in args.artifacts:
        name, _, path = spec.rpartition("=")
        artifact = Path(path)
        gaps = []
        cells = []
        for text in texts:
            gap = nll.measure(
                artifact,
                model,
                text=nll.text_from_file(text),
                max_tokens=args.max_tokens,
                threads=args.threads,
                reference_tokenizer=tokenizer,
            )
            gaps.append(gap.gap_nats_per_token)
            cells.append(f"{gap.gap_nats_per_token:+.3f} ±{gap.gap_stderr:.3f}")
            print(
                f"  {name or artifact.name} {text.stem}: {cells[-1]} ({gap.tokens} tokens, {gap.engine_scoring})",
                file=sys.stderr,
                flush=True,
            )
        mb = artifact.stat().st_size / 1e6
        print(
            f"| {name or artifact.name} | {mb:.1f} | {' | '.join(cells)} | {np.mean(gaps):+.3f} | {max(gaps):+.3f} |",
            flush=True,
        )
    print("\nreproduce: " + shlex.join([sys.executable, "benchmarks/multilingual_gap.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
