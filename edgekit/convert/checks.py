"""Pre-checks of a conversion: what would fail late, or silently, refused or noted before any work.

check_chat_template(ckpt, recipe) -> notes   a chat template without the turn markers its family needs
check_quantizable(ckpt, quant)               an all-zero block or row the quantizer would give a 0.0 scale
check_resources(ckpt, out_dir)               memory and disk that clearly cannot hold the conversion
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgekit.convert.checkpoint import Checkpoint
from edgekit.convert.recipes import Quant, Recipe
from edgekit.errors import InputError

# Estimated peak memory of litert-torch's export per parameter (270M model: ~6 GB).
_EXPORT_BYTES_PER_PARAM = 22


def check_chat_template(ckpt: Checkpoint, recipe: Recipe | None) -> list[str]:
    """Notes where the checkpoint's tokenizer lacks what the recipe expects of its chat template."""
    if recipe is None or not recipe.turn_markers:
        return []
    texts = []
    for name in ("tokenizer_config.json", "chat_template.jinja", "chat_template.json"):
        if (ckpt.path / name).is_file():
            texts.append((ckpt.path / name).read_text(errors="replace"))
    joined = "\n".join(texts)
    if "chat_template" not in joined and not (ckpt.path / "chat_template.jinja").is_file():
        return [f"{ckpt.path} has no chat template: LiteRT-LM will feed prompts without turn markers"]
    missing = [m for m in recipe.turn_markers if m not in joined]
    if missing:
        return [f"the chat template does not mention {', '.join(missing)}, which {recipe.family} models expect"]
    return []


def check_quantizable(ckpt: Checkpoint, quant: Quant) -> None:
    """Refuse weights the quantizer would turn into a 0.0 scale (an all-zero block or row).

    XNNPACK rejects such a model at run time ("unsupported scale value (0.000000)"); we
    do not change the user's weights, we name the tensor.
    """
    if quant is Quant.FP32:
        return
    from safetensors import safe_open

    for weights in sorted(ckpt.path.glob("*.safetensors")):
        with safe_open(str(weights), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is no dict)
                tensor = f.get_tensor(name)
                if tensor.dim() != 2 or not name.endswith("weight"):
                    continue
                cols = tensor.shape[1]
                block = quant.block_size or (32 if quant is Quant.INT4 and "embed" in name else cols)
                if cols % block:
                    continue
                zero = (tensor.reshape(-1, block) == 0).all(dim=-1)
                if bool(zero.any()):
                    first = int(zero.nonzero()[0, 0])
                    row, col = divmod(first * block, cols)
                    what = f"block (row {row}, columns {col}-{col + block - 1})" if block < cols else f"row {row}"
                    raise InputError(
                        f"tensor {name} has an all-zero {what}, which --quant {quant.value} turns into a "
                        f"0.0 scale that XNNPACK rejects at run time: train or fill those weights, or "
                        f"use --quant fp32",
                        path=weights,
                    )


def check_resources(ckpt: Checkpoint, out_dir: Path, *, split_table: bool = False) -> None:
    """Fail early when memory or disk clearly cannot hold the conversion.

    Disk, in `out_dir` (the work folder sits beside the output): the fp32 export and
    the quantized model, plus a fp32 copy of the checkpoint when `split_table`
    (split_table.prepare writes the split checkpoint there).
    """
    need_ram = ckpt.parameter_count * _EXPORT_BYTES_PER_PARAM
    available = _mem_available_bytes()
    if available is not None and need_ram > available:
        raise InputError(
            f"converting {ckpt.parameter_count / 1e6:.0f}M parameters needs about {need_ram / 2**30:.1f} GiB "
            f"of memory and {available / 2**30:.1f} GiB is available: close other programs or use a bigger machine"
        )
    need_disk = ckpt.parameter_count * 4 * (3 if split_table else 2)
    free = shutil.disk_usage(out_dir).free
    if need_disk > free:
        raise InputError(
            f"converting needs about {need_disk / 2**30:.1f} GiB free in {out_dir} and "
            f"{free / 2**30:.1f} GiB is free: free space or choose another output folder"
        )


def _mem_available_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
