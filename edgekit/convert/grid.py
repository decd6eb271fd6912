"""Weights that already lie on a 4-bit grid (quantization-aware-trained checkpoints).

Google's QAT releases (e.g. `gemma-3-270m-it-qat-q4_0-unquantized`) ship fp32 weights
that sit on llama.cpp's Q4_0 grid: blocks of 32 along a row, one scale per block,
`scale = signed absmax / -8`, codes -8..7 (ggml-quants.c `quantize_row_q4_0_ref`).
Re-quantizing such weights with a min-max rule (scale = absmax / 7) moves every value
onto a different grid; `detect_q4_0` finds the grid so the conversion can keep it.

LiteRT's INT4 has positive scales and codes -8..7 (XNNPACK refuses a negative scale:
"unsupported scale value (-0.010925) ... in XNNPACK delegate", measured with
ai-edge-litert 2.3.0). A Q4_0 block whose scale is negative holds codes -7..8 in terms
of |scale|, so its largest value has no INT4 code: only an 8-bit code holds every
Q4_0 block exactly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgekit.artifact import GridRecord

Q4_0_BLOCK = 32
# |code - round(code)| allowed when checking that a weight sits on the grid: fp32
# rounding of code * scale is ~1e-7 relative; anything trained off the grid is ~0.25.
_CODE_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True, kw_only=True)
class GridReport:
    """Which 2-D weights of a checkpoint lie on the Q4_0 grid (blocks of 32)."""

    on_grid: tuple[str, ...]
    off_grid: tuple[str, ...]
    blocks: int
    negative_scale_blocks: int

    @property
    def detected(self) -> bool:
        """True when every checked weight is on the grid (a QAT checkpoint)."""
        return bool(self.on_grid) and not self.off_grid

    def record(self) -> GridRecord:
        """The manifest's record of it."""
        return GridRecord(
            grid="q4_0",
            block_size=Q4_0_BLOCK,
            detected=self.detected,
            tensors_on_grid=len(self.on_grid),
            tensors_off_grid=tuple(self.off_grid),
            blocks=self.blocks,
            negative_scale_blocks=self.negative_scale_blocks,
        )


def q4_0_codes(weight: Any) -> tuple[Any, Any]:
    """Q4_0 scales (one per block of 32 along the last dim) and the weight divided by them.

    `weight` is a 2-D torch tensor whose last dim is a multiple of 32. An all-zero block
    gets scale 1 (its codes are all 0).
    """
    import torch

    blocks = weight.detach().float().reshape(-1, Q4_0_BLOCK)
    index = blocks.abs().argmax(dim=-1, keepdim=True)
    scale = blocks.gather(-1, index) / -8.0
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    return scale, blocks / scale


def snap_to_q4_0(weight: Any) -> Any:
    """`weight` rounded onto its Q4_0 grid (what QAT leaves behind), same shape and dtype."""
    import torch

    scale, codes = q4_0_codes(weight)
    snapped = torch.clamp(torch.round(codes), -8, 7) * scale
    return snapped.reshape(weight.shape).to(weight.dtype)


def on_q4_0_grid(weight: Any) -> tuple[bool, int, int]:
    """(every block on the grid, number of blocks, blocks with a negative scale) for a 2-D tensor."""
    scale, codes = q4_0_codes(weight)
    rounded = codes.round()
    ok = bool(((codes - rounded).abs() <= _CODE_TOLERANCE).all()) and bool(((rounded >= -8) & (rounded <= 7)).all())
    return ok, int(scale.numel()), int((scale < 0).sum())


def gridded_weights(names_shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """The tensors a Q4_0 grid applies to: 2-D `*weight` matrices whose rows split into blocks of 32."""
    return sorted(
        name
        for name, shape in names_shapes.items()
        if name.endswith("weight") and len(shape) == 2 and shape[1] % Q4_0_BLOCK == 0
    )


def detect_q4_0(checkpoint_dir: Path) -> GridReport:
    """Check every 2-D weight in the checkpoint's safetensors against the Q4_0 grid.

    Stops checking at the first weight that is off the grid (a normal checkpoint is
    recognised after one tensor).
    """
    from safetensors import safe_open

    on: list[str] = []
    off: list[str] = []
    blocks = negative = 0
    for path in sorted(Path(checkpoint_dir).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118
            for name in gridded_weights(shapes):
                ok, n, neg = on_q4_0_grid(f.get_tensor(name))
                if not ok:
                    off.append(name)
                    break
                on.append(name)
                blocks += n
                negative += neg
        if off:
            break
    return GridReport(on_grid=tuple(on), off_grid=tuple(off), blocks=blocks, negative_scale_blocks=negative)
