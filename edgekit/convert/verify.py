"""The verify stage: the file as it will be delivered, measured against the PyTorch reference and judged.

verify(artifact, plan, model, tokenizer, scratch) -> FidelityReport
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgekit._typed import from_data
from edgekit.artifact import EvalTextFile, FidelityReport, NllRecord
from edgekit.convert.export import bundled_tflite
from edgekit.convert.plan import ConvertPlan
from edgekit.convert.recipes import Format
from edgekit.errors import FidelityError


def verify(artifact_path: Path, plan: ConvertPlan, model: Any, tokenizer: Any, scratch: Path) -> FidelityReport:
    """Fidelity of the file at `artifact_path` (as it will be delivered) against `model`.

    Two measurements, both recorded: next-token top-1 agreement (fidelity.check) and, for a
    `.litertlm`, the engine-level NLL gap on held-out prose (nll.measure). Either below
    its floor raises FidelityError naming both figures.
    """
    from edgekit.convert import fidelity, nll

    if plan.format is Format.LITERTLM:
        tflite, bundle = bundled_tflite(artifact_path, scratch / "unpacked"), artifact_path
    else:
        tflite, bundle = artifact_path, None
    floor = plan.min_agreement.value
    report = fidelity.check(
        tflite_path=tflite,
        bundle_path=bundle,
        model=model,
        tokenizer=tokenizer,
        min_top1_agreement=0.0,
        threads=plan.threads,
    )
    ceiling = plan.max_nll_gap.value
    gap = None
    if bundle is not None:
        text_setting = plan.eval_text.value
        text = nll.text_from_file(text_setting.path) if isinstance(text_setting, EvalTextFile) else nll.builtin_text()
        gap = nll.measure(
            bundle,
            model,
            text=text,
            threads=plan.threads,
            max_window_tokens=min(512, plan.cache_length.value),
            max_context_tokens=nll.context_room(plan.cache_length.value, plan.prefill_lengths.value),
        )
    top1_ok = report.top1_agreement >= floor
    gap_ok = gap is None or ceiling is None or gap.gap_nats_per_token <= ceiling
    nll_record = None
    if gap is not None:
        nll_record = from_data(gap.to_dict() | {"max_nll_gap": ceiling, "passed": gap_ok}, NllRecord, "NLL gap")
    result = dataclasses.replace(report, min_top1_agreement=floor, nll=nll_record, passed=top1_ok and gap_ok)
    if not result.passed:
        failed = []
        if not top1_ok:
            failed.append(f"top-1 agreement {report.top1_agreement:.1%} < {floor:.0%}")
        if not gap_ok and gap is not None:
            failed.append(f"NLL gap {gap.gap_nats_per_token:+.3f} nats/token > {ceiling:.2f}")
        raise FidelityError(
            f"{plan.description}: {' and '.join(failed)} vs PyTorch (max logit error "
            f"{report.max_abs_logit_error:.3g}): the conversion loses too much; try a higher-precision "
            f"--quant, or pass --min-agreement/--max-nll-gap if this model is untrained or you accept the loss"
        )
    return result
