"""Statistics shared by stages that must not import each other (curate's error rates, evaluate's accuracies)."""

from __future__ import annotations

import math


def wilson_ci(count: int, nobs: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of count/nobs: statsmodels' `proportion_confint(method="wilson")` (its default,
    "normal", misbehaves at rates near 0 and 1, where the rules teacher and weak models sit).

    (nan, nan) for nobs == 0, since there is no rate to bound; a count outside [0, nobs] is a caller's bug and
    raises. The interval always contains count/nobs: statsmodels' rounding puts 12/12's upper end at 1 - 1e-16.
    """
    if nobs <= 0:
        return (math.nan, math.nan)
    if not 0 <= count <= nobs:
        raise ValueError(f"count {count} is not between 0 and nobs {nobs}")
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(count, nobs, alpha=alpha, method="wilson")
    p = count / nobs
    return min(float(low), p), max(float(high), p)
