"""Which tried mixtures could be the best, within seed noise: Hsu's multiple comparisons with
the best (MCB; Hsu 1984, "Constrained simultaneous confidence intervals for multiple comparisons
with the best").

The best observed mean is the top of several noisy means, so it is optimistic, and the mixture
behind it is the true best less often than it looks (in a statistics audit, 72% of 3 x 3 grids
with 2 seeds whose best cell was truly better by 0.03 = 1.5 seed SDs). MCB gives the set of
mixtures whose mean is not below the best of the others by more than the simultaneous margin
q x SE: with probability 1 - alpha the truly best mixture is in it. q is the one-sided Dunnett
quantile of k - 1 comparisons with a common mean (correlation 1/2), computed here by quadrature
for any k (`contrasts.quantile`'s general multivariate t takes seconds past a few dozen
dimensions); unequal seed counts use each pair's own SE with that q, as is usual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

#: Quadrature points: Gauss-Hermite for the common mean, equal-probability points of the
#: chi distribution for the SD estimate (the quantile agrees with the multivariate t's to 1e-3).
HERMITE_POINTS = 64
CHI_POINTS = 200


@dataclass(frozen=True)
class BestSet:
    """The mixtures that could be the best (a mask over the mixtures, in their given order)."""

    could_be_best: np.ndarray
    """True for each mixture MCB keeps (every one when the seed noise is unknown)."""
    known: bool
    """Whether the seed noise was known (some mixture has two seeds): else no test ran."""
    alpha: float = 0.05
    same_seeds: bool = False
    """Mixtures have two seeds, but every seed of each scored the same: no noise to test with."""

    @property
    def size(self) -> int:
        return int(self.could_be_best.sum())

    def describe(self, mixtures: int) -> str:
        """`3 of the 9 could be the best within seed noise (Hsu's MCB, 95%)`."""
        if self.same_seeds:  # a deterministic objective, or a seed that reaches nothing
            return (
                "every seed of each mixture scored the same (check that the seed changes the "
                "run), so which could be the best within seed noise is not tested"
            )
        if not self.known:
            return "no mixture has two seeds, so which could be the best is unknown"
        level = f"{1 - self.alpha:.0%}"
        return (
            f"{self.size} of the {mixtures} could be the best within seed noise (Hsu's multiple "
            f"comparisons with the best, {level})"
        )


@lru_cache(maxsize=256)
def dunnett_one_sided(comparisons: int, df: float, alpha: float) -> float:
    """q with P(max_i (Z_i - Z_0) / (sqrt(2) S) <= q) = 1 - alpha: Z iid normal, S^2 a
    chi-square with `df` degrees of freedom over df (`math.inf`: S = 1)."""
    from scipy.optimize import brentq
    from scipy.special import ndtr, ndtri
    from scipy.stats import chi, t

    if comparisons < 2:
        return float(t.ppf(1 - alpha, df)) if math.isfinite(df) else float(ndtri(1 - alpha))
    x, w = np.polynomial.hermite_e.hermegauss(HERMITE_POINTS)
    w = w / w.sum()  # (weights of the standard normal)
    if math.isfinite(df):
        s = chi.ppf((np.arange(CHI_POINTS) + 0.5) / CHI_POINTS, df) / math.sqrt(df)
    else:
        s = np.ones(1)

    def excess(q: float) -> float:
        inner = ndtr(x[None, :] + q * math.sqrt(2.0) * s[:, None]) ** comparisons
        return float((inner @ w).mean()) - (1 - alpha)

    return float(brentq(excess, 0.0, 50.0, xtol=1e-6))


@dataclass(frozen=True)
class MixtureScores:
    """Trials' scores by mixture: what MCB and the one-way ANOVA both rest on."""

    labels: np.ndarray
    """The mixtures, sorted (as `np.unique` gives them)."""
    n: np.ndarray
    mean: np.ndarray
    within: float
    """Sum of squares of the trials about their mixture's mean (the seed noise)."""
    df: int
    """Its degrees of freedom: trials less mixtures, sum(n - 1)."""


def mixture_scores(y: Any, groups: Any) -> MixtureScores:
    y = np.asarray(y, dtype=float)
    labels, inverse, n = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    mean = np.bincount(inverse, weights=y) / n
    within = float(np.sum((y - mean[inverse]) ** 2))
    return MixtureScores(labels, n, mean, within, int(np.sum(n - 1)))


def best_set(
    signed: Any, groups: Any, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray, BestSet]:
    """MCB over trials' `signed` scores (higher is better) grouped by mixture `groups`: the
    mixtures (sorted, as `np.unique` gives them), their means, and the `BestSet`. The seed SD
    is pooled over the mixtures with two trials or more (df = sum(n - 1))."""
    m = mixture_scores(signed, groups)
    if m.df < 1 or m.within <= 0.0:
        same = m.df >= 1  # seeds, all alike
        return m.labels, m.mean, BestSet(np.ones(len(m.labels), bool), False, alpha, same)
    sd = math.sqrt(m.within / m.df)
    q = dunnett_one_sided(len(m.labels) - 1, float(m.df), alpha)
    margin = q * sd * np.sqrt(1.0 / m.n[:, None] + 1.0 / m.n[None, :])
    gap = m.mean[:, None] - m.mean[None, :] + margin  # i against j: above 0 unless j clearly better
    np.fill_diagonal(gap, np.inf)
    return m.labels, m.mean, BestSet(gap.min(axis=1) > 0, True, alpha)


__all__ = ["BestSet", "MixtureScores", "best_set", "dunnett_one_sided", "mixture_scores"]
