"""The "less is more" verdict and the balance effect, by calibrated tests over the design's cells.

Cells are one volume level x one balance level; the seed noise is pooled over all of them
(`ablate.analysis.contrasts`: a 3 x 3 grid with 2 seeds gives 9 degrees of freedom).

"Less is more" at one balance level: each smaller volume v is compared with the largest volume
V (the control), d_v = score(v) - score(V) in "better" units (for a loss: lower is better). The
K comparisons form one family: simultaneous one-sided lower bounds d_v - q * se_v, q the
1 - alpha quantile of the maximum of a K-variate t (Dunnett's test with the pooled variance).

- holds: some lower bound is above 0. Under no volume effect this happens in at most alpha of
  studies (family-wise), whichever smaller volume looks best;
- does not hold: every smaller volume is below the largest beyond seed noise (each one-sided
  upper bound d_v + t * se_v below 0; an intersection-union test, no adjustment needed);
- cannot be decided: neither (the gap is within seed noise), or the study cannot answer: one
  volume, no replicated seeds, the control missing.

"Overall" is the volume main effect: the same family on scores averaged with equal weight over
the balance levels completed at every volume. Each family (overall, each balance level, the
balance effect) holds its family-wise error at `alpha` (default 5%).

The balance effect at each volume: the most balanced level tried there minus the least
balanced, with simultaneous two-sided intervals over the volumes (same pooled variance).

scipy.stats.dunnett is not called: it pools the variance over the groups it is given (the
cells of one balance level, 3 cells x 2 seeds = 3 df) and takes raw samples, while the overall
test compares averages of cells; the statistic is built here and only the quantile comes from
scipy's multivariate t (a test checks both agree where they should: one balance level, equal n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from ablate.analysis.contrasts import TOLERANCE, Family, family
from ablate.analysis.stats import Design, study_design
from ablate.analysis.words import (
    BALANCE,
    RETRY,
    bal,
    check_metric,
    gain,
    lost_text,
    next_seeds,
    plural,
    searched_reason,
    signed,
)
from ablate.analysis.words import vol as _vol

__all__ = [
    "ALPHA", "RETRY", "BalanceEffect", "Comparison", "Design", "LessIsMore", "Status",
    "balance_verdicts", "study_design", "volume_verdicts",
]  # fmt: skip

Status = Literal["holds", "does not hold", "cannot be decided"]
#: The family-wise error of each test unless the caller sets another.
ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """One smaller volume against the largest, in "better" units (positive: smaller is better)."""

    volume: float
    effect: float
    se: float
    low: float
    """Simultaneous one-sided lower bound (the family's Dunnett quantile)."""
    high: float
    """One-sided upper bound at 1 - alpha (the "does not hold" test)."""
    tol: float = 0.0
    """A bound within `tol` of 0 is 0 up to rounding (`contrasts.TOLERANCE`): it decides
    nothing."""
    high_sim: float = math.inf
    """Simultaneous one-sided upper bound (`low` mirrored): what a row is labelled by."""

    @property
    def outcome(self) -> str:
        """This comparison's own answer: `smaller better` (its simultaneous lower bound above
        0), `larger better` (its simultaneous upper bound below 0) or `within noise`. (`high`,
        unadjusted, is the intersection-union test's: every smaller volume worse together.)"""
        if self.low > self.tol:
            return "smaller better"
        return "larger better" if self.high_sim < -self.tol else "within noise"


@dataclass(frozen=True)
class LessIsMore:
    """The test at one balance level (or over all of them: `balance is None`)."""

    balance: float | None
    status: Status
    reason: str
    best_volume: float | None = None
    largest_volume: float | None = None
    effect: float | None = None
    """Best smaller volume minus the largest, signed so that positive = the smaller volume is
    better (for a loss: lower)."""
    low: float | None = None
    """Its simultaneous one-sided lower bound: "holds" when above 0."""
    high: float | None = None
    """Its one-sided upper bound: "does not hold" when this (and every other smaller volume's)
    is below 0."""
    min_seeds: int = 0
    comparisons: tuple[Comparison, ...] = ()
    alpha: float = ALPHA
    df: float | None = None
    quantile: float | None = None
    guard: bool | None = None
    """Whether the heavy-tail guard took part (False: too few seeds to shuffle, see
    `contrasts.Family.guard`; None: no guard, variances per volume or no test)."""
    levels: tuple[float, ...] = ()
    """The overall test: the balance levels its scores are averaged over (those completed at
    every volume tested); a level's own test: that level."""


@dataclass(frozen=True)
class BalanceEffect:
    """Most balanced minus least balanced mixture at one volume (objective units, raw sign)."""

    volume: float
    most: float
    least: float
    most_mean: float
    least_mean: float
    diff: float
    low: float | None
    """Simultaneous two-sided bounds over the `tests` volumes (None: no seed replicates)."""
    high: float | None
    tests: int = 1
    alpha: float = ALPHA
    guard: bool | None = None
    """As `LessIsMore.guard`, for the balance family."""
    several: bool = False
    """Its cells hold several mixtures each (`Design.mixtures_per_cell`): means over them."""
    favours: str = ""
    """The type all the least balanced mixtures give most (a grid's first; `favoured_type`)."""

    def describe(self, metric: str, sign: float = 1.0) -> str:
        level = f"{1 - self.alpha:.0%}"
        ci = (
            f"simultaneous {level} interval {signed(self.low)} to {signed(self.high)} over "
            f"{plural(self.tests, 'volume')}"
            if self.low is not None and self.high is not None
            else "one seed: no interval can be drawn"
        )
        beyond = ""
        if self.low is not None and self.high is not None and self.low == self.high:
            ci = "every seed in these cells scored the same: no interval"
        elif self.low is not None and self.high is not None:
            tol = TOLERANCE * (abs(self.diff) + self.high - self.low)  # 0 up to rounding
            clear = self.low > tol or self.high < -tol
            helps = sign * self.diff > 0
            beyond = (
                f": balance {'helps' if helps else 'hurts'} beyond seed noise"
                if clear
                else ": within seed noise"
            )
            if clear and self.favours:  # (a grid: balance and the first type's share move together)
                beyond += (
                    f", or {'less' if helps else 'more'} `{self.favours}` helps: the less "
                    f"balanced mixtures give more to `{self.favours}`, so this gap cannot tell "
                    f"balance from the share of `{self.favours}`"
                )
        return (
            f"At {_vol(self.volume)}, the most balanced "
            f"{'level (a mean over its mixtures, ' if self.several else 'mixture ('}"
            f"balance {bal(self.most)}) has "
            f"mean {metric} {self.most_mean:.3f} and the least balanced ({bal(self.least)}) "
            f"{self.least_mean:.3f}: a difference of {signed(self.diff)} ({ci}){beyond}."
        )


def volume_verdicts(d: Design, alpha: float = ALPHA) -> tuple[LessIsMore, list[LessIsMore]]:
    """The overall test and one per balance level (see the module docstring)."""
    why = _cannot(d)
    per_level = [
        LessIsMore(b, "cannot be decided", why) if why else _at_level(d, b, alpha)
        for b in d.balances
    ]
    return (LessIsMore(None, "cannot be decided", why) if why else _overall(d, alpha)), per_level


def _cannot(d: Design) -> str | None:
    """Why this study cannot compare volumes at all, with what to add; None when it can."""
    tested = sorted({v for v, _ in d.cells.keys})
    if not tested and d.unbalanced:  # scored trials, but no level's mixtures at two volumes
        return (
            "no balance level has one of its mixtures completed at two volumes "
            f"({plural(d.unbalanced, 'completed trial')} left out), so no volume can be "
            f"compared; {BALANCE}"
        )
    if not tested:
        if d.n_unrecorded and not d.missing and not d.pending:
            return (
                f"no completed trial recorded `{d.metric}` ({plural(d.n_unrecorded, 'trial')} "
                f"completed without it), so nothing can be compared; {check_metric(d.metric)}"
            )
        return f"no trial completed, so nothing can be compared; {d.advice(d.lost_cells)}"
    if len(d.volumes) < 2 and len(d.elsewhere) > 1:  # a ladder's upper rung, say
        return (
            f"only one volume was tested on this model ({_vol(d.volumes[0])}), while the study "
            f"ran {', '.join(_vol(v) for v in d.elsewhere)} on others (a ladder promotes its "
            "best mixtures whatever their volume): whether less is more is tested there"
        )
    if len(d.volumes) < 2:
        v = d.volumes[0]
        more = (
            f"[{v / 10:g}, {v / 4:g}, {v:g}]"
            if v < 1
            else f"[{v // 10:.0f}, {v // 4:.0f}, {v:.0f}]"
        )
        return (
            f"only one volume was tested ({_vol(v)}); add smaller volumes to `design.volumes` "
            f"(for example {more}) to ask whether less is more"
        )
    if len(tested) < 2:
        lost = ", ".join(_vol(v) for v in d.volumes if v not in tested)
        keys = [k for k in d.lost_cells if k[0] != tested[0]]
        return (
            f"only one volume has completed trials ({_vol(tested[0])}); none at {lost} has a "
            f"score ({lost_text(*d.lost(keys), d.metric)}): {d.advice(keys)}"
        )
    if d.searched:
        return searched_reason()
    if d.noise.pooled_df == 0:
        return (
            "every mixture has one completed seed, so seed noise cannot be measured and no "
            f"interval can be drawn; {next_seeds(1, d.searched)}"
        )
    if d.noise.pooled_sd == 0 and np.ptp(d.cells.y) == 0:
        return (
            f"every completed trial scored the same ({d.cells.y[0]:.3f}): no volume or balance "
            f"effect at all; check that `{d.metric}` varies between mixtures and seeds"
        )
    return None


def _at_level(d: Design, b: float, alpha: float) -> LessIsMore:
    idx, vmax = d.cells.index(), d.volumes[-1]
    if (vmax, b) not in idx:
        none = "no searched trial fell there" if d.searched else "none was run there"
        lost = lost_text(*d.lost([(vmax, b)]), d.metric) or none
        return LessIsMore(
            b,
            "cannot be decided",
            f"the control is missing: no trial at the largest volume ({_vol(vmax)}) completed "
            f"with a score at this balance level ({lost}); "
            f"{d.advice([(vmax, b)], 'add this balance level at that volume to the design')}",
        )
    smaller = [v for v in d.volumes[:-1] if (v, b) in idx]
    if not smaller:
        keys = [(v, b) for v in d.volumes[:-1]]
        return LessIsMore(
            b,
            "cannot be decided",
            f"no smaller volume completed with a score at this balance level, only "
            f"{_vol(vmax)}; {d.advice(keys)}",
        )
    w = np.zeros((len(smaller), len(d.cells.keys)))
    for k, v in enumerate(smaller):
        w[k, idx[(v, b)]], w[k, idx[(vmax, b)]] = d.sign, -d.sign
    means = [float(d.cells.mean[idx[(v, b)]]) for v in [*smaller, vmax]]
    seeds = min(int(d.cells.n[idx[(v, b)]]) for v in [*smaller, vmax])
    fam = family(w, d.cells, d.noise, within="balance")
    return replace(_judge(d, fam, smaller, means, b, seeds, alpha), levels=(b,))


def _overall(d: Design, alpha: float) -> LessIsMore:
    idx, vmax = d.cells.index(), d.volumes[-1]
    tested = [v for v in d.volumes if any((v, b) in idx for b in d.balances)]
    if vmax not in tested:
        keys = [(vmax, b) for b in d.balances]
        return LessIsMore(
            None,
            "cannot be decided",
            f"the control is missing: no trial at the largest volume ({_vol(vmax)}) completed "
            f"with a score ({lost_text(*d.lost(keys), d.metric)}); {d.advice(keys)}",
        )
    levels = [b for b in d.balances if all((v, b) in idx for v in tested)]
    if not levels:
        keys = [(v, b) for v in tested for b in d.balances if (v, b) not in idx]
        gaps = d.describe_missing() or (
            "the searched trials fall in different balance bins at each volume bin"
            if d.searched
            else "the design does not run every balance level at every volume"
        )
        return LessIsMore(
            None,
            "cannot be decided",
            "no balance level has completed trials at every volume, so volumes cannot be "
            f"compared overall ({gaps}); "
            f"{d.advice(keys, 'add the missing mixtures to the design')}",
        )
    smaller = tested[:-1]
    w = np.zeros((len(smaller), len(d.cells.keys)))
    for k, v in enumerate(smaller):
        for b in levels:
            w[k, idx[(v, b)]] += d.sign / len(levels)
            w[k, idx[(vmax, b)]] -= d.sign / len(levels)
    means = [float(np.mean([d.cells.mean[idx[(v, b)]] for b in levels])) for v in tested]
    seeds = min(int(d.cells.n[idx[(v, b)]]) for v in tested for b in levels)
    fam = family(w, d.cells, d.noise, within="balance")
    verdict = replace(_judge(d, fam, smaller, means, levels, seeds, alpha), levels=tuple(levels))
    if len(levels) == len(d.balances) and len(tested) == len(d.volumes):
        return verdict
    left = [f"{_vol(v)} (no completed trial)" for v in d.volumes if v not in tested]
    left += [f"balance {bal(b)}" for b in d.balances if b not in levels]
    scope = f"; left out of this test: {', '.join(left)}: not completed at every volume"
    return replace(verdict, reason=verdict.reason + scope)


def _judge(
    d: Design,
    fam: Family,
    smaller: list[float],
    means: list[float],
    balance: float | list[float],
    seeds: int,
    alpha: float,
) -> LessIsMore:
    """The verdict from the family's bounds; `means` are the smaller volumes' then the largest's,
    at one `balance` level or averaged over a list of them (the overall test)."""
    low, q = fam.lower_bounds(alpha)
    high, tol = fam.upper_bounds(alpha), fam.tolerance
    both = zip(low, high, fam.simultaneous_upper_bounds(alpha), strict=True)
    comps = tuple(
        Comparison(v, float(e), float(s), float(lo), float(hi), float(t), float(hs))
        for v, e, s, (lo, hi, hs), t in zip(smaller, fam.estimate, fam.se, both, tol, strict=True)
    )
    # a bound is compared with 0 up to rounding (`tol`): the same evidence, the same verdict
    holds = bool((low > tol).any())
    i = int(np.argmax(low - tol)) if holds else int(np.argmax(fam.estimate))
    c, vmax = comps[i], d.volumes[-1]
    status: Status = (
        "holds" if holds else "does not hold" if (high < -tol).all() else "cannot be decided"
    )
    over = ""
    if isinstance(balance, list) and len(balance) > 1:  # the overall test: say what is averaged
        over = f"mean over balance levels {'/'.join(bal(b) for b in balance)}"
    why = _reason(d, status, c, len(comps), (means[i], means[-1]), alpha, over)
    return LessIsMore(
        balance if not isinstance(balance, list) else None,
        status,
        why,
        best_volume=c.volume,
        largest_volume=vmax,
        effect=c.effect,
        low=c.low,
        high=c.high,
        min_seeds=seeds,
        comparisons=comps,
        alpha=alpha,
        df=fam.family_df,
        quantile=q,
        guard=fam.guard(alpha),
    )


def _reason(
    d: Design,
    status: Status,
    c: Comparison,
    k: int,
    scores: tuple[float, float],
    alpha: float,
    over: str = "",
) -> str:
    """The verdict in words: `c` the comparison shown (of `k`), `scores` those of its smaller
    volume and of the largest (`over`: what they are means of, for the overall test). Bounds
    are on the gain of the smaller volume (positive: better, for a loss lower)."""
    mean, ref = scores
    vmax, level = d.volumes[-1], f"{1 - alpha:.0%}"
    how = f"simultaneous {level} lower bound over {plural(k, 'smaller volume')}, {d.noise.short()}"
    point = f"{_vol(c.volume)} scores {mean:.3f} against {ref:.3f} at {_vol(vmax)}"
    if over:
        point += f" ({over})"
        ref_text = f"{ref:.3f}, {over}"
    else:
        ref_text = f"{ref:.3f}"
    more = f"{next_seeds(d.seeds, d.searched)} to decide"
    diff = gain(c.effect, d.metric, d.sign)
    if status == "holds":
        close = " (borderline)" if c.low < 0.1 * c.se else ""
        return f"{point}: {diff}, above seed noise ({how}: {signed(c.low)} > 0{close})"
    if status == "does not hold":
        return (
            f"the largest volume ({_vol(vmax)}, {ref_text}) scores better than every smaller "
            f"one beyond seed noise; the best smaller, {_vol(c.volume)}, scores {mean:.3f} "
            f"({diff}, one-sided {level} upper bound on its gain {signed(c.high)} < 0)"
        )
    if c.effect > 0:
        return (
            f"{point} ({diff}), but the gap is within seed noise ({how}: {signed(c.low)}); {more}"
        )
    return (
        f"the largest volume ({_vol(vmax)}, {ref_text}) scores at least as well as every "
        f"smaller one, but {_vol(c.volume)} ({mean:.3f}) is within seed noise of it "
        f"(upper bound on its gain {signed(c.high)} >= 0, {d.noise.short()}); {more}"
    )


def balance_verdicts(d: Design, alpha: float = ALPHA) -> list[BalanceEffect]:
    """At each volume with two or more balance levels completed: most minus least balanced."""
    if d.searched:
        return []  # bins of different mixtures, not replicates (`searched_reason`)
    if d.binned and d.mixtures_per_cell > 1:
        return []  # bins of different random mixtures: their gap is no balance effect (`BINNED`)
    idx = d.cells.index()
    pairs = []
    for v in d.volumes:
        present = [b for b in d.balances if (v, b) in idx]
        if len(present) >= 2:
            pairs.append((v, present[-1], present[0]))
    if not pairs:
        return []
    w = np.zeros((len(pairs), len(d.cells.keys)))
    for k, (v, hi_b, lo_b) in enumerate(pairs):
        w[k, idx[(v, hi_b)]], w[k, idx[(v, lo_b)]] = 1.0, -1.0
    bounds: tuple[Any, Any] = ([None] * len(pairs), [None] * len(pairs))
    guard = None
    if d.noise.pooled_df > 0:
        fam = family(w, d.cells, d.noise, within="volume")
        lo, hi = fam.intervals(alpha)
        bounds, guard = (lo.tolist(), hi.tolist()), fam.guard(alpha)
    mean = d.cells.mean
    return [
        BalanceEffect(
            v,
            hi_b,
            lo_b,
            float(mean[idx[(v, hi_b)]]),
            float(mean[idx[(v, lo_b)]]),
            float(mean[idx[(v, hi_b)]] - mean[idx[(v, lo_b)]]),
            low,
            high,
            len(pairs),
            alpha,
            guard,
            d.mixtures_per_cell > 1,
            d.favours.get(lo_b, ""),
        )
        for (v, hi_b, lo_b), low, high in zip(pairs, *bounds, strict=True)
    ]
