"""Cell means and the permutation guard's shuffles (see `ablate.analysis.contrasts`).

The guard shuffles the scores within each level of the factor not compared: under no effect they
are exchangeable there, whatever the noise's distribution. A cell may hold several mixtures
(`ablate.analysis.replicates`): the scores of different mixtures are not exchangeable, so the
shuffles then stay within each mixture (`CellMeans.unit`) and the shuffled statistic is scaled
by the spread of a mixture's seeds, as the observed one is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Shuffles of the scores for the permutation guard; the 95% quantile of a maximum to ~0.05.
N_PERMUTATIONS = 1000
PERMUTATION_SEED = 1955
#: The permutation guard needs GUARD_TAIL / alpha distinct arrangements at least (40 at 5%): with
#: fewer than 1 / alpha no arrangement is rare enough to reject on, and just above it the
#: rejection turns on whether the observed arrangement's share of the shuffles falls above or
#: below alpha (21 arrangements: about 1 study in 3 either way). And at least N_PERMUTATIONS.
GUARD_TAIL = 2


@dataclass(frozen=True)
class CellMeans:
    """The completed trials summarised per cell (only cells with at least one trial)."""

    keys: list[tuple[float, float]]
    """(volume level, balance level) of each cell, sorted."""
    n: np.ndarray
    """Completed trials (seeds) per cell."""
    mean: np.ndarray
    ss: np.ndarray
    """Sum of squares of the seeds about the cell mean."""
    cell: np.ndarray
    """Per completed trial: the index of its cell (for permutations)."""
    y: np.ndarray
    """Per completed trial: its score."""
    shuffled: dict[int, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, compare=False, repr=False
    )
    """Cache of `permuted`: the same shuffles serve every family of a study."""
    unit: np.ndarray | None = field(default=None, compare=False, repr=False)
    """Per completed trial: its mixture (a code), where a cell holds several; the shuffles stay
    within a mixture. None: a cell is one mixture."""

    @classmethod
    def of(cls, volume: Any, balance: Any, y: Any) -> CellMeans:
        """From one entry per completed trial: its volume level, balance level and score."""
        vol, bal = np.asarray(volume, dtype=float), np.asarray(balance, dtype=float)
        y = np.asarray(y, dtype=float)
        if y.size == 0:
            return cls([], np.zeros(0, int), np.zeros(0), np.zeros(0), np.zeros(0, int), y)
        keys, idx = np.unique(np.column_stack([vol, bal]), axis=0, return_inverse=True)
        idx = idx.ravel()
        n = np.bincount(idx, minlength=len(keys))
        mean = np.bincount(idx, weights=y, minlength=len(keys)) / n
        ss = np.bincount(idx, weights=(y - mean[idx]) ** 2, minlength=len(keys))
        return cls([(float(v), float(b)) for v, b in keys], n, mean, ss, idx, y)

    def index(self) -> dict[tuple[float, float], int]:
        return {k: i for i, k in enumerate(self.keys)}


def guard_needs(alpha: float) -> int:
    """The distinct arrangements the permutation guard needs at `alpha` (1,000 at 5%)."""
    return max(N_PERMUTATIONS, math.ceil(GUARD_TAIL / alpha - 1e-9))


def arrangements(cells: CellMeans, within: int, used: np.ndarray | None = None) -> int:
    """Distinct ways to deal the scores to the cells, each staying within its level of factor
    `within` (and its mixture, `CellMeans.unit`): per stratum, the multinomial (seeds there)! /
    prod over its cells of (seeds)!, and the product over the strata (2 volumes x 2 seeds at one
    level: 4! / (2! 2!) = 6). `used` (per cell): only strata holding a cell the contrasts weigh
    count, as shuffles elsewhere leave their statistics alone (a test at one balance level
    of a lattice counted every level's arrangements and ran a guard with 6 of its own)."""
    strata, _ = _strata(cells, within)
    if used is not None:
        kept = np.unique(strata[np.asarray(used, bool)[cells.cell]])
        keep = np.isin(strata, kept)
        strata, cell = strata[keep], cells.cell[keep]
    else:
        cell = cells.cell
    per_stratum: dict[tuple[int, int], int] = {}
    for s, c in zip(strata.tolist(), cell.tolist(), strict=True):
        per_stratum[(s, c)] = per_stratum.get((s, c), 0) + 1
    counts: dict[int, list[int]] = {}
    for (s, _), n in per_stratum.items():
        counts.setdefault(s, []).append(n)
    return math.prod(multinomial(ns) for ns in counts.values())


def _strata(cells: CellMeans, within: int) -> tuple[np.ndarray, np.ndarray]:
    """Per completed trial: its stratum of the shuffles (its level of factor `within`, and its
    mixture where `CellMeans.unit` is set), and its group (cell, and mixture) whose spread
    scales the shuffled statistic."""
    level = np.unique(np.array([k[within] for k in cells.keys]), return_inverse=True)[1]
    level = level.ravel()[cells.cell]
    if cells.unit is None:
        return level, cells.cell
    unit = np.asarray(cells.unit)
    strata = np.unique(np.column_stack([level, unit]), axis=0, return_inverse=True)[1]
    group = np.unique(np.column_stack([cells.cell, unit]), axis=0, return_inverse=True)[1]
    return strata.ravel(), group.ravel()


def guard_seeds(cells: CellMeans, within: int, alpha: float, most: int = 50) -> int | None:
    """The fewest seeds per cell (the same in every cell of this study) that give the guard
    its arrangements at `alpha`; None beyond `most`, or where a cell holds several mixtures."""
    if cells.unit is not None:
        return None
    per_level: dict[float, int] = {}
    for key in cells.keys:
        per_level[key[within]] = per_level.get(key[within], 0) + 1
    for n in range(2, most + 1):
        if math.prod(multinomial([n] * k) for k in per_level.values()) >= guard_needs(alpha):
            return n
    return None


def multinomial(ns: list[int]) -> int:
    """(sum ns)! / prod(n!): the distinct ways to split sum(ns) items into groups of ns."""
    out, total = 1, 0
    for n in ns:
        total += n
        out *= math.comb(total, n)
    return out


def permutation_quantile(
    cells: CellMeans, within: int, w: np.ndarray, alpha: float, two_sided: bool
) -> float:
    """The 1 - alpha quantile of max T over N_PERMUTATIONS shuffles of the scores, each score
    staying within its level of factor `within` (0: volume, 1: balance).

    With no effect of the factor compared (and equal variances), the scores within a level of
    the other are exchangeable whatever the noise's distribution: this quantile holds the
    family-wise error where heavy tails would break the multivariate t's (an outlier in a cell
    with one seed moves its mean but not the pooled variance). Seeded: one study, one answer."""
    means, sd = permuted(cells, within)
    unit = np.sqrt(np.diag((w / cells.n) @ w.T))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (means @ w.T) / unit / sd[:, None]
    t = np.nan_to_num(t, nan=0.0, posinf=np.inf, neginf=-np.inf)
    top = np.abs(t).max(axis=1) if two_sided else t.max(axis=1)
    return float(np.quantile(top, 1 - alpha, method="higher"))


def permuted(cells: CellMeans, within: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell means (shuffles x cells) and pooled SDs (shuffles) of the shuffled scores (the SD
    of a mixture's seeds where cells hold several, `CellMeans.unit`)."""
    if within in cells.shuffled:
        return cells.shuffled[within]
    rng = np.random.default_rng(PERMUTATION_SEED)
    strata, group = _strata(cells, within)
    perm = np.empty((N_PERMUTATIONS, cells.y.size), dtype=int)
    for level in np.unique(strata):
        pos = np.flatnonzero(strata == level)
        perm[:, pos] = pos[rng.random((N_PERMUTATIONS, pos.size)).argsort(axis=1)]
    onehot = np.zeros((cells.y.size, cells.n.size))
    onehot[np.arange(cells.y.size), cells.cell] = 1.0
    means = (cells.y[perm] @ onehot) / cells.n
    groups = np.zeros((cells.y.size, int(group.max()) + 1))
    groups[np.arange(cells.y.size), group] = 1.0
    size = groups.sum(axis=0)
    within_means = (cells.y[perm] @ groups) / size
    ss = float((cells.y**2).sum()) - (within_means**2 * size).sum(axis=1)
    sd = np.sqrt(np.maximum(ss, 0.0) / int(cells.y.size - size.size))
    cells.shuffled[within] = (means, sd)
    return means, sd
