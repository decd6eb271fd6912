"""The pass/fail floors of an artifact's fidelity, judged in one place.

fidelity.check (top-1 agreement with PyTorch) and nll.measure (the engine NLL gap) only
measure. `judge` compares their figures with the floors: those a conversion's plan resolved
(caller > recipe > default: `min_agreement`, `max_nll_gap`; verify.py) or `edgekit eval
--max-nll-gap` (evaluate.py). It records floors and verdict in what it returns and raises
FidelityError naming every figure past its floor.
"""

from __future__ import annotations

import dataclasses
import math
from typing import overload

from edgekit.artifact import FidelityReport, NllGap
from edgekit.errors import FidelityError


@overload
def judge(
    measured: FidelityReport, *, min_top1_agreement: float, max_nll_gap: float | None, what: str
) -> FidelityReport: ...


@overload
def judge(measured: NllGap, *, max_nll_gap: float | None) -> NllGap: ...


def judge(
    measured: FidelityReport | NllGap,
    *,
    min_top1_agreement: float | None = None,
    max_nll_gap: float | None,
    what: str | None = None,
) -> FidelityReport | NllGap:
    """`measured` with its floors and verdict recorded; FidelityError if a figure is past its floor.

    A FidelityReport (a conversion's verify) is judged on top-1 agreement (`min_top1_agreement`,
    a fraction; a non-finite logit error fails too) and on its `nll` gap, if it has one; `what`,
    the recipe in plain words, opens the message. A bare NllGap (`edgekit eval`) is judged on
    the gap alone. `max_nll_gap` None: the gap is recorded, not judged.
    """
    if isinstance(measured, NllGap):
        if not _gap_ok(measured, max_nll_gap):
            raise FidelityError(
                f"the converted model is {measured.gap_nats_per_token:+.3f} nats/token worse than PyTorch on "
                f"{measured.tokens} tokens of {measured.text.name} (perplexity x{measured.perplexity_ratio:.2f}), "
                f"above the {max_nll_gap:.2f} floor: choose a higher-precision --quant, or pass --max-nll-gap "
                f"if you accept the loss"
            )
        return dataclasses.replace(measured, max_nll_gap=max_nll_gap, passed=True)
    if min_top1_agreement is None or what is None:
        raise ValueError("a fidelity report is judged against a top-1 agreement floor, for a recipe")
    report, gap = measured, measured.nll
    failed = []
    if not (report.top1_agreement >= min_top1_agreement and math.isfinite(report.max_abs_logit_error)):
        failed.append(f"top-1 agreement {report.top1_agreement:.1%} < {min_top1_agreement:.0%}")
    if gap is not None and not _gap_ok(gap, max_nll_gap):
        failed.append(f"NLL gap {gap.gap_nats_per_token:+.3f} nats/token > {max_nll_gap:.2f}")
    if failed:
        raise FidelityError(
            f"{what}: {' and '.join(failed)} vs PyTorch (max logit error {report.max_abs_logit_error:.3g}): "
            f"the conversion loses too much; try a higher-precision --quant, or pass --min-agreement/--max-nll-gap "
            f"if this model is untrained or you accept the loss"
        )
    judged_gap = None if gap is None else dataclasses.replace(gap, max_nll_gap=max_nll_gap, passed=True)
    return dataclasses.replace(report, min_top1_agreement=min_top1_agreement, nll=judged_gap, passed=True)


def _gap_ok(gap: NllGap, max_nll_gap: float | None) -> bool:
    return max_nll_gap is None or gap.gap_nats_per_token <= max_nll_gap
