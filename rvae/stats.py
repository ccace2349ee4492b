"""Statistics for an experiment's report: confidence intervals over seeds and folds, and paired
comparisons of two settings over the same seeds and folds.

- ``mean_ci``: the mean and its 95 % confidence interval, Student's t with n - 1 degrees of
  freedom (the runs of one setting are few: 3 seeds x 3 folds = 9).
- ``paired``: for two settings run on the same (seed, fold) pairs, the mean of the
  differences b - a with a percentile bootstrap 95 % CI (Efron & Tibshirani 1993, ch. 13;
  10,000 resamples of the pairs, seeded: the same rows give the same interval), and the
  Wilcoxon signed-rank test's two-sided p (Wilcoxon 1945; scipy's, exact for small n) where
  there are at least 6 pairs: with 5 or fewer, even differences all of one sign cannot reach
  p < 0.05, so no p is given. Pairing removes what a seed and a fold share (the same held-out
  files, the same initialisation), which unpaired intervals would count as noise.

Folds share training files, so runs are not independent: read the intervals as a guide to
the spread over seeds and folds, as is usual for k-fold results (Bouckaert & Frank 2004),
not as exact coverage.

scipy (``pip install 'rvae[research]'``) gives the t quantile and the Wilcoxon test; it is
imported only when these functions run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rvae.errors import UserError

__all__ = ["BOOTSTRAP", "MIN_WILCOXON", "mean_ci", "paired", "require_scipy"]

BOOTSTRAP = 10_000  # resamples for the bootstrap CI
MIN_WILCOXON = 6  # pairs below which no Wilcoxon p is given (the smallest exact p at n = 5 is 0.0625)
INSTALL = "statistics need scipy, an optional extra: pip install 'rvae[research]'"


def require_scipy():
    """scipy.stats, or a UserError saying how to install it."""
    try:
        import scipy.stats
    except ImportError:
        raise UserError(INSTALL) from None
    return scipy.stats


def _finite(values: Sequence[float | None]) -> np.ndarray:
    a = np.array([v if v is not None else np.nan for v in values], np.float64)
    return a[np.isfinite(a)]


def mean_ci(values: Sequence[float | None], level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, low, high, n) over the finite values: mean ± t(level, n-1) * s / sqrt(n), s the
    sample std (ddof 1). One value: its CI is the value itself; none: all ``nan``, n 0."""
    a = _finite(values)
    n = len(a)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    m = float(a.mean())
    if n == 1:
        return m, m, m, 1
    half = float(require_scipy().t.ppf(0.5 + level / 2, n - 1) * a.std(ddof=1) / math.sqrt(n))
    return m, m - half, m + half, n


def paired(a: Sequence[float | None], b: Sequence[float | None], seed: int = 0) -> dict[str, float]:
    """Paired comparison of ``b`` against ``a`` (equal lengths, element i of both from the same
    seed and fold): ``n`` pairs where both are finite, ``diff`` = mean of b - a, ``low`` and
    ``high`` its percentile bootstrap 95 % CI, ``p`` the two-sided Wilcoxon signed-rank p
    (``nan`` below MIN_WILCOXON pairs, or when every difference is 0)."""
    x = np.array([v if v is not None else np.nan for v in a], np.float64)
    y = np.array([v if v is not None else np.nan for v in b], np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired needs equal lengths, got {len(x)} and {len(y)}")
    d = (y - x)[np.isfinite(x) & np.isfinite(y)]
    n = len(d)
    out = {"n": n, "diff": math.nan, "low": math.nan, "high": math.nan, "p": math.nan}
    if n == 0:
        return out
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, n, (BOOTSTRAP, n))].mean(axis=1)
    out |= {"diff": float(d.mean()), "low": float(np.quantile(means, 0.025)), "high": float(np.quantile(means, 0.975))}
    if n >= MIN_WILCOXON and np.any(d != 0):
        out["p"] = float(require_scipy().wilcoxon(d).pvalue)
    return out
