"""The statistics wrappers against textbook values and hand-worked examples."""

import math

import numpy as np
import pytest

from maritime_slm.evaluate.stats import (
    accuracy,
    cohens_kappa_ci,
    correlations,
    kappa_from_table,
    mcnemar_exact,
    mcnemar_from_counts,
)


def test_accuracy_counts_and_interval():
    acc = accuracy([True] * 8 + [False] * 12)
    assert (acc.correct, acc.n, acc.accuracy) == (8, 20, 0.4)
    assert (acc.ci_low, acc.ci_high) == pytest.approx((0.2188, 0.6134), abs=5e-5)


def test_mcnemar_exact_textbook():
    # b = 1, c = 9: two-sided exact p = 2 * P(X <= 1 | Bin(10, 0.5)) = 2 * 11 / 1024
    t = mcnemar_from_counts(1, 9, both_correct=5, both_wrong=5)
    assert t.p_value == pytest.approx(22 / 1024, abs=1e-12)
    assert t.p_value == pytest.approx(0.0215, abs=1e-4)
    # from paired outcomes: a right & b wrong once, a wrong & b right nine times, 3 both right, 2 both wrong
    a = [True] * 1 + [False] * 9 + [True] * 3 + [False] * 2
    b = [False] * 1 + [True] * 9 + [True] * 3 + [False] * 2
    t2 = mcnemar_exact(a, b)
    assert (t2.n, t2.b, t2.c, t2.both_correct, t2.both_wrong) == (15, 1, 9, 3, 2)
    assert t2.p_value == pytest.approx(22 / 1024)
    assert mcnemar_exact(b, a).p_value == pytest.approx(t2.p_value)  # symmetric
    assert mcnemar_from_counts(0, 0, 4, 4).p_value == 1.0
    assert mcnemar_from_counts(5, 5).p_value == 1.0  # capped (the doubled tail is > 1)
    # b = 0, c = 6: p = 2 / 64
    assert mcnemar_from_counts(0, 6).p_value == pytest.approx(2 / 64)
    with pytest.raises(ValueError):
        mcnemar_exact([True], [True, False])


def _kappa_by_hand(table):
    """Cohen (1960) kappa and the Fleiss, Cohen & Everitt (1969) large-sample standard error."""
    p = np.asarray(table, float) / np.sum(table)
    rows, cols = p.sum(1), p.sum(0)
    po, pe = np.trace(p), float(rows @ cols)
    k = (po - pe) / (1 - pe)
    a = sum(p[i, i] * (1 - (rows[i] + cols[i]) * (1 - k)) ** 2 for i in range(2))
    b = (1 - k) ** 2 * sum(p[i, j] * (cols[i] + rows[j]) ** 2 for i in range(2) for j in range(2) if i != j)
    c = (k - pe * (1 - k)) ** 2
    se = math.sqrt((a + b - c) / (np.sum(table) * (1 - pe) ** 2))
    return k, se


def test_kappa_worked_by_hand():
    # 50 items; rater 1 says correct on 25, rater 2 on 20 (rows: rater 1 wrong/correct, columns: rater 2)
    table = [[15, 10], [5, 20]]
    # p_o = (15 + 20) / 50 = 0.70; p_e = 0.5 * 0.4 + 0.5 * 0.6 = 0.50; kappa = (0.70 - 0.50) / 0.50 = 0.40
    k = kappa_from_table(table)
    assert k.observed_agreement == pytest.approx(0.70)
    assert k.kappa == pytest.approx(0.40)
    kappa, se = _kappa_by_hand(table)
    assert kappa == pytest.approx(0.40)
    assert k.std == pytest.approx(se, rel=1e-9)
    assert (k.ci_low, k.ci_high) == pytest.approx((0.40 - 1.959964 * se, 0.40 + 1.959964 * se), abs=1e-6)
    # the same table from two raters' labels
    r1 = [False] * 15 + [False] * 10 + [True] * 5 + [True] * 20
    r2 = [False] * 15 + [True] * 10 + [False] * 5 + [True] * 20
    k2 = cohens_kappa_ci(r1, r2)
    assert k2.kappa == pytest.approx(0.40) and k2.table == ((15, 10), (5, 20))
    assert k2.as_dict()["r1_correct_r2_wrong"] == 5 and k2.as_dict()["both_correct"] == 20


def test_kappa_edges():
    assert cohens_kappa_ci([True, False, True], [True, False, True]).kappa == pytest.approx(1.0)
    # systematic disagreement: kappa -1
    assert cohens_kappa_ci([True, False] * 5, [False, True] * 5).kappa == pytest.approx(-1.0)
    # one label for every item from both raters: chance agreement 1, kappa undefined (not a crash, not 0)
    k = cohens_kappa_ci([True] * 6, [True] * 6)
    assert math.isnan(k.kappa) and k.observed_agreement == 1.0
    assert math.isnan(cohens_kappa_ci([], []).kappa)
    # a judge that calls everything correct: kappa 0, and no [0, 0] interval pretending to be certain
    lazy = cohens_kappa_ci([True] * 8, [True, False] * 4)
    assert lazy.kappa == pytest.approx(0.0) and math.isnan(lazy.ci_low) and math.isnan(lazy.ci_high)


def test_correlations_hand_example():
    # x = 1..4, y = 0,0,1,1: cov = 0.5, sd_x = sqrt(1.25), sd_y = 0.5 -> r = 0.5 / (sqrt(1.25) * 0.5) = 0.894
    c = correlations([1, 2, 3, 4], [False, False, True, True])
    assert c.point_biserial == pytest.approx(1 / math.sqrt(1.25))
    assert c.spearman == pytest.approx(1 / math.sqrt(1.25))  # ranks are the values here (ties averaged)
    c_neg = correlations([4, 3, 2, 1], [False, False, True, True])
    assert c_neg.point_biserial == pytest.approx(-1 / math.sqrt(1.25))
    assert math.isnan(correlations([1, 1, 1, 1], [True, False, True, False]).point_biserial)
    assert math.isnan(correlations([1, 2, 3], [True, True, True]).spearman)
