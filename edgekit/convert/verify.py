"""The verify stage: the file as it will be delivered, measured against the PyTorch reference and judged.

    verify(artifact, plan, model, tokenizer, scratch) -> FidelityReport

Two measurements, both recorded: next-token top-1 agreement (fidelity.check) and, for a
`.litertlm`, the engine-level NLL gap on held-out prose (nll.measure); floors.judge
compares them with the plan's floors.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgekit.artifact import EvalTextFile, FidelityReport
from edgekit.convert.export import bundled_tflite
from edgekit.convert.floors import judge
from edgekit.convert.plan import ConvertPlan
from edgekit.convert.recipes import Format
from edgekit.convert.windows import context_room


def verify(artifact_path: Path, plan: ConvertPlan, model: Any, tokenizer: Any, scratch: Path) -> FidelityReport:
    """Fidelity of the file at `artifact_path` (as it will be delivered) against `model`.

    FidelityError when the artifact cannot be measured (fidelity.check, nll.measure) or a
    figure is past the plan's floor, naming both figures (floors.judge).
    """
    from edgekit.convert import fidelity, nll

    if plan.format is Format.LITERTLM:
        tflite, bundle = bundled_tflite(artifact_path, scratch / "unpacked"), artifact_path
    else:
        tflite, bundle = artifact_path, None
    report = fidelity.check(
        tflite_path=tflite, bundle_path=bundle, model=model, tokenizer=tokenizer, threads=plan.threads
    )
    if bundle is not None:
        text_setting = plan.eval_text.value
        text = nll.text_from_file(text_setting.path) if isinstance(text_setting, EvalTextFile) else nll.builtin_text()
        cache_length = plan.cache_length.value
        gap = nll.measure(
            bundle,
            model,
            text=text,
            threads=plan.threads,
            max_window_tokens=min(512, cache_length),
            max_context_tokens=context_room(cache_length, plan.prefill_lengths.value),
        )
        report = dataclasses.replace(report, nll=gap)
    return judge(
        report, min_top1_agreement=plan.min_agreement.value, max_nll_gap=plan.max_nll_gap.value, what=plan.description
    )
