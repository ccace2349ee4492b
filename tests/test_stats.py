"""rvae.stats on values whose answers are known by hand."""

from __future__ import annotations

import math

import pytest

from rvae.stats import mean_ci, paired


def test_mean_ci_is_students_t_interval():
    m, lo, hi, n = mean_ci([1.0, 2.0, 3.0, None, float("nan")])
    # s = 1, t(0.975, 2) = 4.3027: half width 4.3027 / sqrt(3) = 2.4841
    assert (m, n) == (2.0, 3)
    assert lo == pytest.approx(2 - 2.48414, abs=1e-4) and hi == pytest.approx(2 + 2.48414, abs=1e-4)
    assert mean_ci([5.0]) == (5.0, 5.0, 5.0, 1)
    assert math.isnan(mean_ci([])[0]) and mean_ci([])[3] == 0


def test_paired_difference_ci_and_wilcoxon():
    a = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    r = paired(a, [x + 1 for x in a])
    assert r["n"] == 6 and r["diff"] == pytest.approx(1.0)
    assert r["low"] == pytest.approx(1.0) and r["high"] == pytest.approx(1.0)  # every pair differs by 1
    # 6 differences of one sign: exact two-sided p = 2 / 2^6
    assert r["p"] == pytest.approx(2 / 64)
    five = paired(a[:5], [x + 1 for x in a[:5]])
    assert five["n"] == 5 and math.isnan(five["p"])  # too few pairs for a p
    mixed = paired([0, 0, 0, 0], [1, -1, 2, -2])
    assert mixed["diff"] == 0 and mixed["low"] < 0 < mixed["high"]
    assert paired([1.0, None], [2.0, 3.0])["n"] == 1  # a missing figure drops its pair
    assert paired([1.0], [1.0], seed=1) == paired([1.0], [1.0], seed=1)
    with pytest.raises(ValueError, match="equal lengths"):
        paired([1.0], [1.0, 2.0])
