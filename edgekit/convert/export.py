"""The export stage: litert-torch's export_hf (export, quantize, bundle) on a checked, planned checkpoint.

export(ckpt, plan, work_dir) -> Exported    the TFLite model and the `.litertlm` bundle, in `work_dir`
bundled_tflite(bundle, into) -> Path        the prefill/decode TFLite model back out of a bundle
StageTracker                                upstream's progress lines -> our stage events and timings
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

from edgekit.artifact import TableSplitRecord
from edgekit.convert.checkpoint import Checkpoint
from edgekit.convert.plan import ConvertPlan
from edgekit.convert.recipes import Format
from edgekit.errors import ConversionError, FidelityError

StageFn = Callable[[str, str], None]
"""`progress(stage, event)`: a stage ("vocab" with --vocab-from, "load", "export", "quantize", "bundle",
"verify") and "start" or "done". (Not a `ProgressFn`: stages have no count.)"""

# Upstream progress lines that mark our stages, in the order they appear.
_UPSTREAM_MARKERS = (
    ("Load source model", "load"),
    ("Export text prefill-decode model", "export"),
    ("Quantize model", "quantize"),
    ("Export tokenizer", "bundle"),
)


class StageTracker:
    """Turns upstream's progress lines into our stage events and stage timings."""

    def __init__(self, progress: StageFn | None) -> None:
        self._progress = progress
        self._text = ""
        self._seen: set[str] = set()
        self.current: str | None = None
        self._started = 0.0
        self.times_s: dict[str, float] = {}

    def enter(self, stage: str) -> None:
        """Start `stage` (ending the current one), unless it is current or already done."""
        if stage == self.current or stage in self.times_s:
            return
        self.leave()
        self.current, self._started = stage, time.perf_counter()
        if self._progress:
            self._progress(stage, "start")

    def leave(self) -> None:
        """End the current stage, if any, and record its time."""
        if self.current is not None:
            self.times_s[self.current] = round(time.perf_counter() - self._started, 3)
            if self._progress:
                self._progress(self.current, "done")
            self.current = None

    def feed(self, text: str) -> None:
        """Read upstream's output as it comes; a stage marker in it starts that stage."""
        # Upstream's rich console wraps long lines anywhere: match on whitespace-folded text.
        self._text = " ".join((self._text[-400:] + text).split())
        for marker, stage in _UPSTREAM_MARKERS:
            if stage not in self._seen and f"> {marker}" in self._text:
                self._seen.add(stage)
                self.enter(stage)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Exported:
    """What litert-torch wrote: the bundle (None for --format tflite) and the TFLite model in it."""

    tflite_path: Path
    bundle_path: Path | None
    table_split: TableSplitRecord | None = None
    """How the tied table was split for the export (split_table); None: it was not."""


def export(ckpt: Checkpoint, plan: ConvertPlan, work_dir: Path) -> Exported:
    """Run litert-torch's export_hf on `ckpt` into `work_dir` (export, quantize, bundle)."""
    from litert_torch.generative.export_hf import export as export_hf

    bundle = plan.format is Format.LITERTLM
    rules = plan.rules()
    recipe_arg = "none"
    if rules is not None:
        # export_hf passes a path ending in .json to ai-edge-quantizer's load_quantization_recipe
        # (litert_torch/generative/export_hf/core/export_lib.py quantize_model, 0.10).
        work_dir.mkdir(parents=True, exist_ok=True)
        recipe_file = work_dir / "quant_recipe.json"
        recipe_file.write_text(json.dumps(rules, indent=1))
        recipe_arg = str(recipe_file)
    model_dir, model_class, table_split = ckpt.path, None, None
    if plan.split_rows is not None:
        from edgekit.convert import split_table

        model_dir, model_class, table_split = split_table.prepare(
            ckpt.path,
            work_dir.with_name("split-checkpoint"),
            plan.split_rows,
            calibration=[Path(t.path) for t in plan.calibration_texts.value],
        )
    export_hf.export(
        model=str(model_dir),
        auto_model_override=model_class,
        output_dir=str(work_dir),
        prefill_lengths=list(plan.prefill_lengths.value),
        cache_length=plan.cache_length.value,
        quantization_recipe=recipe_arg,
        keep_temporary_files=True,
        bundle_litert_lm=bundle,
        experimental_lightweight_conversion=plan.lightweight.value,
    )
    tflite = work_dir / ("model_quantized.tflite" if rules is not None else "model.tflite")
    litertlm = work_dir / "model.litertlm"
    if not tflite.is_file() or (bundle and not litertlm.is_file()):
        raise ConversionError("litert-torch finished without writing the model", stage="export")
    return Exported(tflite_path=tflite, bundle_path=litertlm if bundle else None, table_split=table_split)


def bundled_tflite(bundle: Path, into: Path) -> Path:
    """Unpack the prefill/decode TFLite model out of a `.litertlm` bundle into folder `into`."""
    from litert_lm_builder import litertlm_builder

    litertlm_builder.unpack(str(bundle), str(into))
    found = sorted(into.glob("*prefill_decode*.tflite"))
    if not found:
        raise FidelityError("the bundle holds no prefill/decode TFLite model")
    return found[0]
