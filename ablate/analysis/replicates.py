"""Cells that hold several mixtures: the seed noise of one mixture, and like-with-like cells.

A grid's cell (one volume x one balance level) is one mixture. Other fixed designs put several
in a cell: a random or Dirichlet design's balances are binned into quartiles past 8 levels, a
lattice's corners all have balance 0. Two things then change (`ablate.analysis.stats.Design`):

- the seed noise is pooled over the replicates of each mixture (`replicate_noise`): pooled over
  a cell's trials it would count its mixtures' differences as noise (20 random mixtures x 3
  seeds at seed SD 0.01: 0.03);
- a balance level's cells compare like with like (`balanced`): a volume contrast within a level
  cancels its mixtures' effects only when each of them enters every volume's cell as often. A
  failed trial breaks that (mixture A with 3 seeds at one volume and 2 at the other), and with
  mixtures 5x further apart than seeds "holds" came out in 31% of null studies
  (benchmarks/multi_mixture_calibration.py). So per level and mixture, every volume's cell
  keeps as many completed trials as the mixture's fewest at any of the level's volumes (the
  first ones in table order; a mixture missing at one volume leaves the level), and the rest
  are left out of the cells (not of the noise), and counted.

The verdict also shuffles scores within a mixture for its heavy-tail guard
(`ablate.analysis.permutation`), and gives bins of random mixtures no balance test
(`ablate.analysis.verdict.balance_verdicts`): their gap is the mixtures', not balance's (86% of
null studies said "balance helps or hurts" on seed noise alone).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from ablate.analysis.contrasts import VARIANCE_CHECK, CellMeans, Noise, noise
from ablate.analysis.tables import mixture_identity


def replicated(rows: Any) -> bool:
    """Whether some mixture (`mixture_identity`) of `rows` was tried with two seeds or more, in
    any state: a search runs each of its mixtures at `design.seeds[0]` only."""
    if rows.empty or "seed" not in rows:
        return False
    return bool(rows["seed"].groupby(mixture_identity(rows).to_numpy()).nunique().max() > 1)


def replicate_noise(
    vol: Any, mixture: Any, y: Any, cells: CellMeans, check: float = VARIANCE_CHECK
) -> Noise:
    """The seed noise (`noise`) pooled over replicates of the same mixture at the same volume,
    one entry per completed trial (its volume level, mixture label and score), for the cells
    `cells`: a cell uses its volume's variance when they are kept per volume."""
    _, code = np.unique(np.asarray(mixture, dtype=str), return_inverse=True)
    per_mixture = CellMeans.of(vol, code.ravel(), y)
    found = noise(per_mixture, check)
    if found.pooled:
        return replace(found, group=np.zeros(len(cells.keys), int))
    vols = sorted({v for v, _ in per_mixture.keys})
    return replace(found, group=np.array([vols.index(v) for v, _ in cells.keys]))


def distinct_per_cell(vol: np.ndarray, bal: np.ndarray, of: Any) -> dict[tuple[float, float], int]:
    """Per cell (volume, balance), how many distinct values of `of` (seeds, mixture labels) its
    trials have."""
    found = set(zip(vol.tolist(), bal.tolist(), np.asarray(of).tolist(), strict=True))
    per_cell: dict[tuple[float, float], int] = {}
    for v, b, _ in found:
        per_cell[(v, b)] = per_cell.get((v, b), 0) + 1
    return per_cell


def most_mixtures(vol: np.ndarray, bal: np.ndarray, mixture: Any) -> int:
    """The most distinct mixtures (labels) in one cell; 1 with no trial."""
    return max(distinct_per_cell(vol, bal, mixture).values(), default=1)


def balanced(vol: np.ndarray, bal: np.ndarray, mixture: Any, scored: np.ndarray) -> np.ndarray:
    """Of the `scored` trials, those the cells keep: per balance level and mixture, as many at
    every volume as the mixture's fewest at any volume the level has scored trials at (see the
    module's docstring). All of them when every cell is already like the others."""
    import pandas as pd

    t = pd.DataFrame({"v": vol, "b": bal, "m": np.asarray(mixture, dtype=str)})[scored]
    count = t.groupby(["b", "m", "v"]).size().unstack("v", fill_value=0)
    # only the level's own volumes count (those where it has any scored trial): elsewhere NaN
    level_has = t.groupby(["b", "v"]).size().unstack("v", fill_value=0) > 0
    mask = level_has.reindex(count.index.get_level_values("b")).to_numpy()
    fewest = pd.Series(np.where(mask, count.to_numpy(), np.inf).min(axis=1), index=count.index)
    rank = t.groupby(["b", "m", "v"]).cumcount()
    keep = rank.to_numpy() < fewest.reindex(pd.MultiIndex.from_frame(t[["b", "m"]])).to_numpy()
    out = np.zeros(vol.size, bool)
    out[np.flatnonzero(scored)[keep]] = True
    return out


#: The level of the cells' intervals.
LEVEL = 0.95


def t_interval(
    mean: Any, n: Any, sd: float, df: int, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """mean -+ t(level, df) * sd / sqrt(n) for means of n seeds each, sd a pooled seed SD with
    `df` degrees of freedom (NaN when df is 0: the noise is unknown)."""
    from scipy.stats import t

    mean, n = np.asarray(mean, dtype=float), np.asarray(n, dtype=float)
    if df < 1 or not math.isfinite(sd):
        return np.full_like(mean, math.nan), np.full_like(mean, math.nan)
    half = float(t.ppf(0.5 + level / 2, df)) * sd / np.sqrt(n)
    return mean - half, mean + half


def noise_intervals(mean: Any, n: Any, vol: Any, noise: Noise, level: float = LEVEL) -> Any:
    """`t_interval` of each cell (its mean over n trials, at volume level `vol`) under the noise
    the verdict judges it by: when the volumes' seed noise differs, the wider of the pooled
    interval and its volume's own, as the verdict takes the more cautious bound (pooled bars
    over a volume 3x noisier covered its cells' means 79% of the time; its own alone, picked
    after Bartlett's check, undercovered equal noise: 92.6%)."""
    pooled = t_interval(mean, n, noise.pooled_sd, noise.pooled_df, level)
    if noise.pooled:
        return pooled
    mean, n, vol = (np.asarray(x, dtype=float) for x in (mean, n, vol))
    vols = np.unique(vol)  # the volume levels of every scored trial: `replicate_noise`'s groups
    low, high = pooled
    for k, v in enumerate(vols):
        at = vol == v
        sd = math.sqrt(float(noise.var[k]))
        own = t_interval(mean[at], n[at], sd, int(noise.df[k]), level)
        low[at], high[at] = np.fmin(low[at], own[0]), np.fmax(high[at], own[1])
    return low, high
