"""The one Wilson interval that curate's error rates and evaluate's accuracies share."""

import math
import warnings

import pytest
from statsmodels.stats.proportion import proportion_confint

from maritime_slm.stats import wilson_ci


def test_wilson_textbook_values():
    low, high = wilson_ci(8, 20)
    assert low == pytest.approx(0.2188, abs=5e-5) and high == pytest.approx(0.6134, abs=5e-5)
    # the Wald ("normal") interval would be 0.1853-0.6147: make sure that is not what we get
    assert low != pytest.approx(0.4 - 1.96 * math.sqrt(0.4 * 0.6 / 20), abs=1e-3)
    z = 1.959963984540054
    for k, n in [(0, 10), (10, 10), (3, 7), (47, 50)]:
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        assert wilson_ci(k, n) == pytest.approx((centre - half, centre + half), abs=1e-9)


def test_wilson_is_statsmodels_inside_and_exact_at_the_ends():
    for n in range(1, 101):
        for k in range(n + 1):
            low, high = wilson_ci(k, n)
            assert low <= k / n <= high, (k, n)
            if 0 < k < n:
                assert (low, high) == proportion_confint(k, n, method="wilson"), (k, n)
    # not degenerate at 0 and 1 (the normal approximation would give [0, 0] and [1, 1])
    assert wilson_ci(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_ci(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    # statsmodels puts 12/12's upper end at 1 - 1e-16, which broke figure 5's bars
    assert wilson_ci(12, 12)[1] == 1.0
    assert wilson_ci(3, 20, alpha=0.01)[1] > wilson_ci(3, 20)[1]


def test_wilson_without_observations_or_with_an_impossible_count():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division-by-zero warnings from statsmodels either
        assert all(math.isnan(x) for x in wilson_ci(0, 0))
    for k, n in [(5, 4), (-1, 4)]:
        with pytest.raises(ValueError, match="not between 0 and nobs"):
            wilson_ci(k, n)


def test_curate_and_evaluate_use_the_same_interval():
    from maritime_slm.curate.analyze import wilson_ci as curate_ci
    from maritime_slm.evaluate.stats import wilson_ci as evaluate_ci

    assert curate_ci is wilson_ci and evaluate_ci is wilson_ci
