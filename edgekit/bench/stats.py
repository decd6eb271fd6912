"""Small statistics without scipy: Student's t quantiles for every degree of freedom.

The two-sided probability A(t|ν) = P(|T| ≤ t) has a closed form for integer ν
(Abramowitz & Stegun, Handbook of Mathematical Functions, 26.7.3 and 26.7.4), with
θ = arctan(t / √ν):

    ν = 1:        A = 2θ/π
    ν odd > 1:    A = 2/π · (θ + sinθ · (cosθ + 2/3 cos³θ + (2·4)/(1·3·5) cos⁵θ + … up to cos^(ν−2)θ))
    ν even:       A = sinθ · (1 + 1/2 cos²θ + (1·3)/(2·4) cos⁴θ + … up to cos^(ν−2)θ)

`t_quantile` inverts it by bisection (A grows with t), to 1e-12.
"""

from __future__ import annotations

import math


def t_two_sided(t: float, dof: int) -> float:
    """P(|T| ≤ t) for Student's t with `dof` degrees of freedom (t ≥ 0)."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {dof}")
    theta = math.atan(t / math.sqrt(dof))
    s, c = math.sin(theta), math.cos(theta)
    if dof % 2:
        if dof == 1:
            return 2 * theta / math.pi
        term = total = c
        for k in range(3, dof - 1, 2):  # term_k = term_{k-2} · (k−1)/k · cos²θ
            term *= (k - 1) / k * c * c
            total += term
        return 2 / math.pi * (theta + s * total)
    term = total = 1.0
    for k in range(2, dof - 1, 2):  # term_k = term_{k-2} · (k−1)/k · cos²θ
        term *= (k - 1) / k * c * c
        total += term
    return s * total


def t_quantile(confidence: float, dof: int) -> float:
    """The t with P(|T| ≤ t) = `confidence` (two-sided), e.g. t_quantile(0.95, 10) = 2.228."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    lo, hi = 0.0, 1.0
    while t_two_sided(hi, dof) < confidence:
        hi *= 2
    while hi - lo > 1e-12 * max(1.0, hi):
        mid = (lo + hi) / 2
        if t_two_sided(mid, dof) < confidence:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
