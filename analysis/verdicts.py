"""Verdicts of the claims ledger: the fixed vocabulary, the rule from a statistic's CI to a verdict, and the estimate
of what it would take to decide an undecided one.

A claim is tested as *statistic ≷ threshold* with a 95 % bootstrap CI of the statistic. The rule
(:func:`verdict`): the whole CI on the claim's side of the threshold → **supported**; the whole CI on the other side →
**contradicted**; a CI that spans (or touches) the threshold → **undecided**; no data → **not tested**. A statistic
computed under both readings of the released MBDPO curves' step unit (FIDELITY.md D1) whose verdicts differ is
**depends on the step unit** (:func:`across_readings`). A claim with several parts ("above *every* baseline, per
domain") takes the weakest part (:func:`conjunction`).

What it would take (:func:`runs_to_decide`) is an estimate, and says so: a bootstrap CI's half-width shrinks as
1/√n in the number n of independent units it resamples (seeds within tasks, or tasks), so at the observed effect δ
(statistic − threshold) and half-width h the CI clears the threshold with 80 % power once the half-width falls to
δ · z₀.₉₇₅ / (z₀.₉₇₅ + z₀.₈) — the usual normal-approximation power rule, written with the observed CI in place of
σ/√n (for large n: n' ≈ n · ((z₀.₉₇₅ + z₀.₈) / z₀.₉₇₅)² · (h / δ)²), with the plug-in bootstrap's small-sample
narrowing (:func:`bootstrap_width`) taken into account. It assumes the effect and the spread stay what they were
observed to be.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
UNDECIDED = "undecided"
DEPENDS_ON_UNIT = "depends on the step unit"
NOT_TESTED = "not tested"
VERDICTS = (SUPPORTED, CONTRADICTED, UNDECIDED, DEPENDS_ON_UNIT, NOT_TESTED)
"""The ledger's only words for a verdict, strongest evidence first."""

ABOVE, BELOW = ">", "<"
DIRECTIONS = (ABOVE, BELOW)

CONFIDENCE = 0.95
POWER = 0.8
_Z_CI = 1.959963984540054      # z of a two-sided 95 % interval
_Z_POWER = 0.8416212335729143  # z of 80 % power
POWER_FACTOR = ((_Z_CI + _Z_POWER) / _Z_CI) ** 2
"""n'/n at which an effect whose CI half-width equals the effect is detected with 80 % power (≈ 2.04)."""


def verdict(value: float, low: float, high: float, threshold: float, direction: str) -> str:
    """The verdict of ``statistic direction threshold`` from a point estimate and its CI.

    ``direction`` is ``">"`` (the claim says the statistic exceeds the threshold) or ``"<"``. A NaN anywhere is
    *not tested* (there was no statistic to compute); a CI that touches the threshold is *undecided*.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r}: expected one of {DIRECTIONS}")
    if any(not math.isfinite(float(x)) for x in (value, low, high, threshold)):
        return NOT_TESTED
    if direction == ABOVE:
        return SUPPORTED if low > threshold else CONTRADICTED if high < threshold else UNDECIDED
    return SUPPORTED if high < threshold else CONTRADICTED if low > threshold else UNDECIDED


def across_readings(verdicts: Mapping[str, str]) -> str:
    """One verdict from the verdicts of one statistic under each step-unit reading: the common one when they agree
    (ignoring readings without data), *depends on the step unit* when they differ."""
    tested = {v for v in verdicts.values() if v != NOT_TESTED}
    if not tested:
        return NOT_TESTED
    return tested.pop() if len(tested) == 1 else DEPENDS_ON_UNIT


def conjunction(verdicts: Iterable[str]) -> str:
    """The verdict of a claim that needs all of its parts: contradicted if any part is; else *depends on the step
    unit* if any part does; else undecided if any part is; else *not tested* if any part lacks data; else
    supported. No parts at all is *not tested*."""
    found = set(verdicts)
    for v in (CONTRADICTED, DEPENDS_ON_UNIT, UNDECIDED, NOT_TESTED):
        if v in found:
            return v
    return SUPPORTED if found == {SUPPORTED} else NOT_TESTED


def half_width_towards(value: float, low: float, high: float, threshold: float) -> float:
    """The CI's half-width on the side facing the threshold (percentile CIs need not be symmetric)."""
    return value - low if value >= threshold else high - value


def bootstrap_width(width: float, n: int, n_new: int) -> float:
    """The half-width a percentile bootstrap CI of ``n`` resampled units would have with ``n_new`` at the same
    spread: the bootstrap's variance of a mean of n units is σ²(n − 1)/n², so the width scales as √(n − 1)/n (not
    1/√n: with 3 seeds the plug-in bootstrap is a fifth too narrow)."""
    return width * math.sqrt((n_new - 1) / (n - 1)) * n / n_new


def runs_to_decide(n: int, value: float, low: float, high: float, threshold: float) -> float:
    """How many independent units (the ``n`` the CI resampled: seeds per task, or tasks) would put the CI on one
    side of ``threshold`` with 80 % power at the observed effect and spread (module docstring; the width scales by
    :func:`bootstrap_width`). ``inf`` when the observed effect is exactly the threshold (no sample size decides a
    zero effect), NaN without a CI or with a single unit (no spread to extrapolate)."""
    if n <= 1 or any(not math.isfinite(float(x)) for x in (value, low, high, threshold)):
        return float("nan")
    effect = abs(value - threshold)
    width = half_width_towards(value, low, high, threshold)
    if effect == 0.0:
        return float("inf")
    target = effect * _Z_CI / (_Z_CI + _Z_POWER)
    if width <= target:
        return float(n)
    high_n = 2 * n
    while bootstrap_width(width, n, high_n) > target:
        high_n *= 2
    low_n = n  # width(low_n) > target >= width(high_n); the width falls with n for n >= 2
    while high_n - low_n > 1:
        mid = (low_n + high_n) // 2
        low_n, high_n = (mid, high_n) if bootstrap_width(width, n, mid) > target else (low_n, mid)
    return float(high_n)


def standardised_effect(value: float, low: float, high: float, threshold: float,
                        direction: str) -> tuple[float, float, float]:
    """(effect, low, high) in units of the CI's half-width, oriented so that positive favours the claim:
    ±(statistic − threshold) / half-width (− for a ``"<"`` claim). Claims on different scales share one axis; a CI
    clear of 0 on that axis is a decided statistic (right of 0: supported, left: contradicted)."""
    if any(not math.isfinite(float(x)) for x in (value, low, high, threshold)):
        return (float("nan"),) * 3
    scale = max((high - low) / 2.0, 1e-12)
    sign = 1.0 if direction == ABOVE else -1.0
    ends = sorted(sign * (x - threshold) / scale for x in (low, high))
    return (sign * (value - threshold) / scale, ends[0], ends[1])
