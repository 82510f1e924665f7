"""Contrasts of cell means, the seed noise pooled over the design's cells, simultaneous bounds.

The model: every completed trial is  y = mu[cell] + e,  a cell being one volume level x one
balance level, and e the seed noise, independent, mean 0, variance sigma^2 in every cell. The
cell means are the least-squares fit (the saturated linear model over the cells) and sigma^2 is
estimated from the spread of the seeds about their cell mean, pooled over all cells:

    s^2 = sum over cells, seeds of (y - cell mean)^2 / df,   df = trials - cells

so a 3 x 3 grid with 2 seeds has 18 - 9 = 9 degrees of freedom, not the 1 of a single cell.

A contrast is a weighted sum of cell means (a difference of two cells, or of two volumes
averaged over balance levels); a family of them, scaled by their standard errors, follows a
multivariate t distribution with `df` degrees of freedom and the contrasts' correlations. Its
quantile gives simultaneous bounds (Dunnett 1955 for comparisons with a control), taken from
`scipy.stats.multivariate_t` (randomised quasi-Monte Carlo, seeded here so that the same study
always gets the same answer).

Heavy tails: the multivariate t is exact for normal seed noise. A permutation guard keeps the
error in check otherwise: the scores are shuffled within each level of the factor not compared
(under no effect they are exchangeable there, whatever the noise's distribution) and the bound
takes the larger of the two quantiles (`permutation_quantile`). With few seeds there are few
distinct arrangements to shuffle, and the guard then misleads: 2 volumes x 2 seeds at one
balance level give C(4, 2) = 6, the smallest p-value a permutation test can reach is 1/6, its
95% quantile is the observed statistic itself and the bound sits at 0 up to rounding (the
verdict flipped on the sign of 1e-13); 3 volumes x 2 seeds give 90, and the few arrangements
that pair near-equal scores (a tiny shuffled SD on 3 df, a huge statistic) set the quantile:
80% power planned, 28% measured. So the guard takes part only with at least `guard_needs`
distinct arrangements (`arrangements`): as many as the shuffles drawn (N_PERMUTATIONS), and at
least GUARD_TAIL / alpha, so that the alpha tail holds several arrangements. Below that the
bound is the multivariate t's alone, exact for normal noise, and the report says so
(`Family.guard`); without the guard, full grids with 2-5 seeds kept the false-positive rate at
or below 5% under t(3) noise too (800 studies each: 3.1% to 5.1%). The guard matters most where
failures leave cells with one seed, and those studies have many arrangements.

Unequal variances: the seed noise may differ between volumes (a small training set can be
noisier). Bartlett's test compares the variances pooled within each volume level; when it
rejects at VARIANCE_CHECK, the contrasts are also computed with a variance per volume and
Welch-Satterthwaite degrees of freedom (the family takes the smallest, rounded down), and each
bound is the more cautious of the two: never narrower than the pooled one, so the check cannot
cost calibration when the variances are in fact equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

import numpy as np

from ablate.analysis.permutation import (
    CellMeans,
    arrangements,
    guard_needs,
    guard_seeds,
    multinomial,
    permutation_quantile,
    permuted,
)

__all__ = [  # (the guard's names live in `permutation` and are used from here)
    "MVT_POINTS",
    "TOLERANCE",
    "VARIANCE_CHECK",
    "CellMeans",
    "Family",
    "Noise",
    "arrangements",
    "bartlett",
    "family",
    "guard_needs",
    "guard_seeds",
    "multinomial",
    "noise",
    "permutation_quantile",
    "permuted",
    "quantile",
]

#: Bartlett's test across volume levels below this p-value: variances are kept per volume. A
#: lenient level on purpose: with a few df per volume the test misses real differences often,
#: and pooling a control 3x noisier than the rest gave 13% false positives in the studies the
#: check missed (benchmarks/verdict_calibration.py); Welch where pooling was fine costs little.
VARIANCE_CHECK = 0.2
#: Quasi-Monte Carlo points per multivariate-t probability: quantiles to about 1e-3 (20,000
#: points move the two-comparison, 9-df quantile by 6e-4 only, at 4x the time).
MVT_POINTS = 5_000
#: Bounds within TOLERANCE x (|estimate| + se) of 0 count as 0: a bound that is 0 up to rounding
#: (an estimate equal to q x se) must not decide a verdict by the sign of 1e-13.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Noise:
    """The seed variance each cell mean is judged against: pooled, or per volume level."""

    group: np.ndarray
    """Per cell: which variance it uses (0 for all when pooled; else its volume's index)."""
    var: np.ndarray
    """Per group: the variance of one trial."""
    df: np.ndarray
    """Per group: degrees of freedom of that variance."""
    pooled_sd: float
    pooled_df: int
    check_p: float | None
    """Bartlett's test across volume levels (None: not possible, fewer than 2 volumes with
    replicated cells, or a volume with no spread at all)."""
    unreplicated: tuple[float, ...] = ()
    """Volume levels with no replicated cell (no variance of their own): when Bartlett's p is
    below the check but some volume is here, the pooled variance is used all the same."""

    @property
    def pooled(self) -> bool:
        return self.var.size == 1

    def as_pooled(self) -> Noise:
        """The same noise with one variance pooled over all cells."""
        one = np.array([self.pooled_sd**2])
        group = np.zeros(self.group.size, int)
        return Noise(
            group,
            one,
            np.array([self.pooled_df]),
            self.pooled_sd,
            self.pooled_df,
            self.check_p,
            self.unreplicated,
        )

    def short(self) -> str:
        if self.pooled:
            return f"seed SD {self.pooled_sd:.3g} pooled over cells, {self.pooled_df} df"
        sds = np.sqrt(self.var)
        return (
            f"seed SD {self.pooled_sd:.3g} pooled, per volume {sds.min():.3g} to {sds.max():.3g}"
            ": the more cautious bound"
        )

    def describe(self) -> str:
        if self.pooled:
            p = (
                ""
                if self.check_p is None
                else f"; equal variances across volumes: p = {self.check_p:.2f}"
            )
            if self.check_p is not None and self.unreplicated and self.check_p < VARIANCE_CHECK:
                lone = ", ".join(f"{v:,.0f}" if v >= 1 else f"{v:g}" for v in self.unreplicated)
                p = (
                    f"; the variances differ across volumes (Bartlett p = {self.check_p:.2f} < "
                    f"{VARIANCE_CHECK}), but volume {lone} has no replicated cell, so no variance "
                    "of its own: the pooled one is used for every volume and the bounds may be "
                    "too narrow where a volume is noisier"
                )
            return f"seed SD {self.pooled_sd:.3g} pooled over all cells ({self.pooled_df} df{p})"
        sds = np.sqrt(self.var)
        return (
            f"seed SD {self.pooled_sd:.3g} pooled over all cells ({self.pooled_df} df), but per "
            f"volume from {sds.min():.3g} to {sds.max():.3g} (Bartlett p = {self.check_p:.3f} < "
            f"{VARIANCE_CHECK}), so each bound is the more cautious of the pooled one and one "
            "with a variance per volume (Welch-Satterthwaite df)"
        )


def noise(cells: CellMeans, check: float = VARIANCE_CHECK) -> Noise:
    """Pool the seed variance over all cells, unless the volumes' variances clearly differ."""
    df = int((cells.n - 1).sum()) if cells.n.size else 0
    s2 = float(cells.ss.sum() / df) if df else math.nan
    pooled = Noise(
        np.zeros(len(cells.keys), int),
        np.array([s2]),
        np.array([df]),
        math.sqrt(s2) if df else math.nan,
        df,
        None,
    )
    if df == 0:
        return pooled
    vols = sorted({v for v, _ in cells.keys})
    group = np.array([vols.index(v) for v, _ in cells.keys])
    g_df = np.bincount(group, weights=cells.n - 1, minlength=len(vols))
    g_ss = np.bincount(group, weights=cells.ss, minlength=len(vols))
    has = g_df > 0
    if has.sum() < 2 or (g_ss[has] <= 0).any():
        return pooled
    p = bartlett(g_ss[has] / g_df[has], g_df[has])
    if p >= check or not has.all():
        lone = tuple(v for v, h in zip(vols, has, strict=True) if not h)
        return Noise(pooled.group, pooled.var, pooled.df, pooled.pooled_sd, df, p, lone)
    return Noise(group, g_ss / g_df, g_df, pooled.pooled_sd, df, p)


def bartlett(var: np.ndarray, df: np.ndarray) -> float:
    """Bartlett's test of equal variances from each group's variance and degrees of freedom
    (scipy.stats.bartlett takes raw samples; here a group's variance is pooled over its cells)."""
    from scipy.stats import chi2

    total = df.sum()
    sp2 = float((df * var).sum() / total)
    m = total * math.log(sp2) - float((df * np.log(var)).sum())
    c = 1 + ((1 / df).sum() - 1 / total) / (3 * (len(var) - 1))
    return float(chi2.sf(m / c, len(var) - 1))


@dataclass(frozen=True)
class Family:
    """Contrasts (rows of `weights` over the cells) with standard errors and correlations."""

    estimate: np.ndarray
    se: np.ndarray
    corr: np.ndarray
    df: np.ndarray
    """Per contrast (pooled: all equal to the pooled df; else Welch-Satterthwaite)."""
    weights: np.ndarray
    cells: CellMeans
    within: int | None
    """The factor the scores are permuted within for the guard (0: volume, 1: balance);
    None: no guard (variances kept per volume: the scores are not exchangeable)."""

    @property
    def family_df(self) -> float:
        return float(self.df.min())

    @property
    def tolerance(self) -> np.ndarray:
        """Per contrast: how close to 0 a bound counts as 0 (rounding, not evidence)."""
        return TOLERANCE * (np.abs(self.estimate) + self.se)

    def guard(self, alpha: float) -> bool | None:
        """Whether the permutation guard applies at `alpha`: None when the family has none
        (variances per volume, or no seed spread), False when the scores have fewer than
        `guard_needs(alpha)` distinct arrangements within the levels of `within`."""
        if self.within is None:
            return None
        used = (np.abs(np.atleast_2d(self.weights)) > 0).any(axis=0)  # cells the contrasts weigh
        return arrangements(self.cells, self.within, used) >= guard_needs(alpha)

    def quantile(self, alpha: float, two_sided: bool) -> float:
        """The multivariate-t quantile, or the permutation one where that is larger (when the
        guard applies, see `guard`)."""
        q = quantile(self.corr, self.family_df, alpha, two_sided)
        if self.within is not None and self.guard(alpha):
            perm = permutation_quantile(self.cells, self.within, self.weights, alpha, two_sided)
            q = max(q, perm)
        return q

    welch: Family | None = None
    """Where the variance check found unequal variances: the same contrasts with a variance per
    volume. Every bound is then the more cautious of the two: choosing the variance after
    looking at it must not make a bound narrower than the pooled one (when the check flags
    equal variances by chance, a volume whose spread came out small would otherwise get too
    narrow bounds)."""

    def lower_bounds(self, alpha: float) -> tuple[np.ndarray, float]:
        """Simultaneous one-sided lower bounds (all hold together with probability 1 - alpha),
        and the quantile used (of the pooled variance)."""
        q = self.quantile(alpha, two_sided=False)
        low = self.estimate - q * self.se
        if self.welch is not None:
            low = np.minimum(low, self.welch.lower_bounds(alpha)[0])
        return low, q

    def simultaneous_upper_bounds(self, alpha: float) -> np.ndarray:
        """Simultaneous one-sided upper bounds, `lower_bounds` mirrored: what labels a single
        comparison "larger better" (unadjusted bounds labelled one in 12-43% of null studies)."""
        high = self.estimate + self.quantile(alpha, two_sided=False) * self.se
        if self.welch is not None:
            high = np.maximum(high, self.welch.simultaneous_upper_bounds(alpha))
        return high

    def upper_bounds(self, alpha: float) -> np.ndarray:
        """One-sided upper bounds, each at level 1 - alpha on its own: an intersection-union
        test ("every contrast is below 0") needs no multiplicity adjustment."""
        from scipy.stats import t

        high = self.estimate + t.ppf(1 - alpha, np.floor(self.df)) * self.se
        if self.welch is not None:
            high = np.maximum(high, self.welch.upper_bounds(alpha))
        return high

    def intervals(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """Simultaneous two-sided intervals."""
        q = self.quantile(alpha, two_sided=True)
        low, high = self.estimate - q * self.se, self.estimate + q * self.se
        if self.welch is not None:
            w_low, w_high = self.welch.intervals(alpha)
            low, high = np.minimum(low, w_low), np.maximum(high, w_high)
        return low, high


def family(
    weights: np.ndarray,
    cells: CellMeans,
    noise: Noise,
    within: Literal["volume", "balance"] | None = None,
) -> Family:
    """The contrasts `weights @ cell means` under `noise` (requires noise.pooled_df > 0).

    `within`: the factor that stays fixed when scores are permuted for the guard (balance for
    comparisons of volumes, volume for comparisons of balance levels); None: no guard. With
    variances per volume (`noise` not pooled), the pooled family carries the Welch one."""
    w = np.atleast_2d(weights)
    if noise.pooled:
        return _family(w, cells, noise, within)
    return replace(_family(w, cells, noise.as_pooled(), within), welch=_family(w, cells, noise))


def _family(w: np.ndarray, cells: CellMeans, noise: Noise, within: str | None = None) -> Family:
    part = noise.var[noise.group] / cells.n  # variance of each cell mean
    cov = (w * part) @ w.T
    # correlations from the design alone when the variance is pooled (exact, and defined even
    # when every seed scored the same)
    unit = (w / cells.n) @ w.T if noise.pooled else cov
    d = np.sqrt(np.diag(unit))
    corr = unit / np.outer(d, d)
    # Welch-Satterthwaite: df = var^2 / sum over variance groups of (group's share)^2 / df_g;
    # with one pooled group this is the pooled df exactly
    share = np.stack(
        [((w**2) * part * (noise.group == g)).sum(axis=1) for g in range(noise.var.size)]
    )
    total = share.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        dfs = total**2 / (share**2 / noise.df[:, None]).sum(axis=0)
    dfs = np.where(np.isfinite(dfs) & (total > 0), dfs, noise.df.min())
    axis = None
    if within is not None and noise.pooled_sd > 0:
        axis = 0 if within == "volume" else 1
    return Family(w @ cells.mean, np.sqrt(np.diag(cov)), corr, dfs, w, cells, axis)


def quantile(corr: np.ndarray, df: float, alpha: float, two_sided: bool) -> float:
    """q with P(max T <= q) = 1 - alpha (two-sided: max |T|), T multivariate t(corr, df).

    Rounded for the cache: correlations to 0.01, a fractional (Welch) df down to a whole number,
    which makes the bound slightly wider, never narrower."""
    df = float(df) if float(df).is_integer() else math.floor(df)
    # off the diagonal at most 0.99: a correlation of 1 (a control far noisier than the rest,
    # Welch mode) would make the matrix singular; 0.99 gives a slightly larger quantile
    r = np.clip(np.round(corr, 2), -0.99, 0.99)
    np.fill_diagonal(r, 1.0)
    key = tuple(r.ravel().tolist())
    return _quantile(key, len(corr), max(df, 1.0), alpha, two_sided)


@lru_cache(maxsize=4096)
def _quantile(corr: tuple[float, ...], k: int, df: float, alpha: float, two_sided: bool) -> float:
    from scipy.optimize import brentq
    from scipy.stats import multivariate_t, t

    tail = alpha / 2 if two_sided else alpha
    if k == 1:
        return float(t.ppf(1 - tail, df))
    dist = multivariate_t(shape=np.array(corr).reshape(k, k), df=df, allow_singular=True)

    def excess(q: float) -> float:
        low = np.full(k, -q) if two_sided else None
        p = dist.cdf(np.full(k, q), lower_limit=low, maxpts=MVT_POINTS, random_state=1955)
        return float(p) - (1 - alpha)

    # between the single-test quantile and Bonferroni's (widened a little for the QMC noise)
    lo, hi = float(t.ppf(1 - tail, df)), float(t.ppf(1 - tail / k, df))
    return float(brentq(excess, lo - 0.05, hi + 0.05, xtol=1e-4))
