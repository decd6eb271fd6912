"""Write converters/gemma3-table-ranking.npz: which ids of Gemma 3's table the default int4 gives 8 bits.

The probability the real Gemma 3 270M gives each token id, and each id's count, over the
"selection" half of benchmarks/multilingual_text.py's twelve languages (Debian's manuals:
ja, zh-cn, zh-tw, ko, de, fr, es, pt, it, id, ru, vi; the "report" half is what the
recipe is measured on), read as edgekit.convert.split_table.calibration_mass reads an
app's calibration text: up to CALIBRATION_MAX_TOKENS tokens in all, an equal share per
language. The file holds that mass and the sha256 of the vocabulary it is for
(split_table.vocab_sha256), so a model with another tokenizer falls back to the model's
own samples.

    .venv/bin/python benchmarks/multilingual_text.py /tmp/ml
    .venv/bin/python benchmarks/table_ranking.py ./gemma3-270m /tmp/ml/selection converters/gemma3-table-ranking.npz
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from edgekit.convert import split_table


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir, texts_dir, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    torch.set_num_threads(2)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    vocab = int(model.config.vocab_size)
    files = sorted(texts_dir.glob("*.txt"))
    texts = [f.read_text(encoding="utf-8") for f in files]
    for f in files:
        print(f"{f.name}: sha256 {hashlib.sha256(f.read_bytes()).hexdigest()}")
    mass = split_table.calibration_mass(model, tokenizer, vocab, texts)
    pieces = tokenizer.convert_ids_to_tokens(list(range(vocab)))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, mass=mass.numpy().astype(np.float32), vocab_sha256=split_table.vocab_sha256(pieces))
    print(f"{out}: {out.stat().st_size} bytes, mass of {vocab} ids; languages {[f.stem for f in files]}")
    print("reproduce: " + shlex.join([sys.executable, "benchmarks/table_ranking.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
