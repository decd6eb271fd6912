"""Build a QAT-like checkpoint: a real checkpoint's 2-D weights snapped onto the Q4_0 grid.

What Google's `*-qat-q4_0-unquantized` releases look like (fp32 weights that already lie on
llama.cpp's Q4_0 grid), made from any Hugging Face checkpoint folder, for tests and benchmarks.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def write_qat_like(source_dir: Path | str, out_dir: Path | str) -> Path:
    """Copy checkpoint `source_dir` to `out_dir` with every gridded 2-D weight snapped to Q4_0.

    Gridded: a `*weight` matrix whose rows split into blocks of 32 (edgekit.convert.grid).
    Other files (config, tokenizer) are copied unchanged. Returns `out_dir`.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    from edgekit.convert.grid import gridded_weights, snap_to_q4_0

    src, out = Path(source_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        if not path.is_file():
            continue
        if path.suffix != ".safetensors":
            shutil.copy2(path, out / path.name)
            continue
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata()
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
        shapes = {name: tuple(t.shape) for name, t in tensors.items()}
        for name in gridded_weights(shapes):
            tensors[name] = snap_to_q4_0(tensors[name]).contiguous()
        save_file(tensors, str(out / path.name), metadata=metadata)
    return out
