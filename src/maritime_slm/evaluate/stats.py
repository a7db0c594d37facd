"""The statistics of the evaluation, as thin, tested wrappers over statsmodels and scipy.

- `wilson_ci` (from `maritime_slm.stats`, shared with curate): a 95 % Wilson score interval for an accuracy.
- `mcnemar_exact`: the exact (binomial) McNemar test of two models scored on the *same* items.
- `paired_difference`: the difference of two accuracies on the same items, with Newcombe's paired interval.
- `cohens_kappa_ci`: Cohen's kappa of two binary raters (the LLM judge vs grounded scoring) with its asymptotic CI.
- `correlations`: point-biserial and Spearman correlation of a surface score (BLEU, ROUGE-L) with 0/1 correctness.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from maritime_slm.stats import wilson_ci

ALPHA = 0.05


class _Result:
    """A statistics result that turns into a table row."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Accuracy(_Result):
    correct: int
    n: int
    accuracy: float
    ci_low: float
    ci_high: float


def accuracy(correct: Sequence[bool], alpha: float = ALPHA) -> Accuracy:
    """Accuracy of a list of 0/1 outcomes with its Wilson interval."""
    k, n = int(sum(bool(c) for c in correct)), len(correct)
    low, high = wilson_ci(k, n, alpha)
    return Accuracy(k, n, k / n if n else math.nan, low, high)


@dataclass(frozen=True)
class McNemar(_Result):
    """Paired comparison of model A and model B on the same n items.

    b: A correct, B wrong; c: A wrong, B correct; p: exact two-sided binomial p-value of b vs c."""

    n: int
    both_correct: int
    b: int
    c: int
    both_wrong: int
    p_value: float


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> McNemar:
    """Exact McNemar test; the two lists are the two models' outcomes on the same items, in the same order."""
    if len(a_correct) != len(b_correct):
        raise ValueError(f"paired outcomes differ in length: {len(a_correct)} vs {len(b_correct)}")
    a, b = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    return mcnemar_from_counts(table[0][1], table[1][0], both_correct=table[0][0], both_wrong=table[1][1])


def mcnemar_from_counts(b: int, c: int, both_correct: int = 0, both_wrong: int = 0) -> McNemar:
    """Exact McNemar from the discordant counts (b + c = 0 gives p = 1)."""
    n = b + c + both_correct + both_wrong
    if b + c == 0:
        return McNemar(n, both_correct, b, c, both_wrong, 1.0)
    from statsmodels.stats.contingency_tables import mcnemar

    result = mcnemar([[both_correct, b], [c, both_wrong]], exact=True)
    return McNemar(n, both_correct, b, c, both_wrong, float(min(1.0, result.pvalue)))


@dataclass(frozen=True)
class PairedDifference(_Result):
    """p1 - p2 of two outcomes on the same n items, with Newcombe's hybrid score interval (method 10)."""

    n: int
    p1: float
    p2: float
    difference: float
    ci_low: float
    ci_high: float


def paired_difference(
    a_correct: Sequence[bool], b_correct: Sequence[bool], alpha: float = ALPHA
) -> PairedDifference:
    """Difference of two paired proportions and its interval (Newcombe 1998, Stat Med 17:2635, method 10): each
    proportion's Wilson interval, combined through the correlation of the pairs, so it stays inside [-1, 1] and
    behaves at small n and near 0 or 1, where the Wald interval does not."""
    if len(a_correct) != len(b_correct):
        raise ValueError(f"paired outcomes differ in length: {len(a_correct)} vs {len(b_correct)}")
    n = len(a_correct)
    if n == 0:
        return PairedDifference(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    t = mcnemar_exact(a_correct, b_correct)
    both, b, c, neither = t.both_correct, t.b, t.c, t.both_wrong
    p1, p2 = (both + b) / n, (both + c) / n
    (l1, u1), (l2, u2) = wilson_ci(both + b, n, alpha), wilson_ci(both + c, n, alpha)
    margins = (both + b) * (c + neither) * (both + c) * (b + neither)
    excess = both * neither - b * c
    excess = max(excess - n / 2, 0.0) if excess >= 0 else excess  # Newcombe's continuity adjustment of phi
    phi = excess / math.sqrt(margins) if margins else 0.0
    low = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    high = math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return PairedDifference(n, p1, p2, p1 - p2, p1 - p2 - low, p1 - p2 + high)


@dataclass(frozen=True)
class Kappa(_Result):
    """Agreement of two binary raters over n items. `table[i][j]`: rater 1 said i, rater 2 said j (1 = correct)."""

    n: int
    table: tuple[tuple[int, int], tuple[int, int]]
    observed_agreement: float
    kappa: float
    ci_low: float
    ci_high: float
    std: float

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("table")
        (n00, n01), (n10, n11) = self.table
        return d | {
            "both_correct": n11,
            "r1_correct_r2_wrong": n10,
            "r1_wrong_r2_correct": n01,
            "both_wrong": n00,
        }


def cohens_kappa_ci(rater1: Sequence[bool], rater2: Sequence[bool], alpha: float = ALPHA) -> Kappa:
    """Cohen's kappa with its asymptotic (1 - alpha) CI (statsmodels `cohens_kappa` on the 2x2 table).

    Undefined (nan) when both raters give one and the same label to every item: chance agreement is then 1. When
    only one rater does, kappa is 0 by construction and the CI is nan (the asymptotic SE degenerates to 0)."""
    if len(rater1) != len(rater2):
        raise ValueError(f"rater lists differ in length: {len(rater1)} vs {len(rater2)}")
    r1, r2 = np.asarray(rater1, bool), np.asarray(rater2, bool)
    table = np.array([[np.sum(~r1 & ~r2), np.sum(~r1 & r2)], [np.sum(r1 & ~r2), np.sum(r1 & r2)]], dtype=int)
    return kappa_from_table(table, alpha)


def kappa_from_table(table, alpha: float = ALPHA) -> Kappa:
    """Cohen's kappa of a 2x2 contingency table (rows: rater 1, columns: rater 2; index 0 = wrong, 1 = correct)."""
    table = np.asarray(table, dtype=float)
    n = int(table.sum())
    t = ((int(table[0, 0]), int(table[0, 1])), (int(table[1, 0]), int(table[1, 1])))
    if n == 0:
        return Kappa(0, t, math.nan, math.nan, math.nan, math.nan, math.nan)
    observed = float(np.trace(table) / n)
    expected = float((table.sum(0) * table.sum(1)).sum() / n**2)
    if expected >= 1.0 - 1e-12:
        return Kappa(n, t, observed, math.nan, math.nan, math.nan, math.nan)
    from scipy.stats import norm
    from statsmodels.stats.inter_rater import cohens_kappa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = cohens_kappa(table)  # its kappa_low/kappa_upp are fixed at 95 %: the CI is rebuilt for `alpha`
    z = float(norm.ppf(1 - alpha / 2))
    kappa, std = float(res.kappa), float(res.std_kappa)
    if (table.sum(0) == 0).any() or (table.sum(1) == 0).any():
        # one rater gave the same label to every item: kappa is 0 by construction and the asymptotic standard
        # error collapses to 0, which would print a CI of [0, 0]; there is no interval to give
        return Kappa(n, t, observed, kappa, math.nan, math.nan, math.nan)
    return Kappa(n, t, observed, kappa, kappa - z * std, kappa + z * std, std)


@dataclass(frozen=True)
class Correlation(_Result):
    n: int
    point_biserial: float
    point_biserial_p: float
    spearman: float
    spearman_p: float


def correlations(scores: Sequence[float], correct: Sequence[bool]) -> Correlation:
    """How far a surface score tracks correctness: point-biserial r and Spearman rho (nan when either is constant)."""
    x = np.asarray(scores, dtype=float)
    y = np.asarray(correct, dtype=float)
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(n, math.nan, math.nan, math.nan, math.nan)
    from scipy import stats

    pb = stats.pointbiserialr(y, x)
    sp = stats.spearmanr(x, y)
    return Correlation(n, float(pb.statistic), float(pb.pvalue), float(sp.statistic), float(sp.pvalue))
