"""Seed-replicate statistics for plots and tables: cells, levels, intervals of cell means.

A cell (one volume level x one balance level) gets the 95% t interval of its mean with the seed
noise pooled over all cells, as the verdict pools it (`ablate.analysis.contrasts`):

    mean +- t(0.975, df) * s / sqrt(n),   s^2 = sum of squares about the cell means / df,
    df = completed trials - cells

With normal seed noise of the same SD in every cell this covers the true mean in 95% of studies
whatever n (a 3 x 3 grid with 2 seeds: 9 df), where a bootstrap of each cell's own 2 seeds
covers about 62% (it is mean +- one seed SD). A cell with one seed gets an interval too, from
the pooled SD; a study where no mixture has two seeds gets none (the text says so and the plots
draw no bar, rather than a made-up one).

These intervals are the plots' error bars, one cell at a time. The verdicts ("less is more", the
balance effect) come from calibrated tests with simultaneous bounds (`ablate.analysis.verdict`),
not from these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ablate.analysis.contrasts import CellMeans, noise
from ablate.analysis.load import completed

#: More distinct values than this and a search study's volumes / balances are binned into levels.
MAX_VOLUME_LEVELS = 12
MAX_BALANCE_LEVELS = 8
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


def add_levels(done: Any) -> Any:
    """Columns `vol_level` and `bal_level`: the grid's own values, or bins for a search study.

    A grid has a few distinct volumes and balances: they are the levels. A searched study draws
    them freely: volumes go into log-spaced bins (labelled by the geometric mid-point) and
    balances into quartile bins (labelled by their mean), so curves still have a few lines.
    """
    import pandas as pd

    out = done.copy()
    vol = out["volume"].astype(float)
    if vol.nunique() > MAX_VOLUME_LEVELS:
        edges = np.geomspace(vol.min(), vol.max() * (1 + 1e-9), 7)
        bins = np.clip(np.searchsorted(edges, vol, side="right") - 1, 0, len(edges) - 2)
        mids = np.sqrt(edges[:-1] * edges[1:])
        out["vol_level"] = np.round(mids[bins])
    else:
        out["vol_level"] = vol
    bal = out["balance"].astype(float).round(3)
    if bal.nunique() > MAX_BALANCE_LEVELS:
        q = pd.qcut(bal, 4, labels=False, duplicates="drop")
        out["bal_level"] = bal.groupby(q).transform("mean").round(2)
    else:
        out["bal_level"] = bal
    return out


@dataclass
class Cells:
    """Mean and 95% t interval (pooled seed SD) per (volume level, balance level)."""

    table: Any
    """DataFrame indexed by (vol_level, bal_level): n, mean, sd (the cell's own, NaN with one
    seed), low, high (NaN when no mixture has two seeds)."""
    sign: float
    """+1 when higher is better, -1 when lower is."""
    sd: float = math.nan
    """The seed SD pooled over the cells (NaN: no cell has two seeds)."""
    df: int = 0
    """Its degrees of freedom (completed trials - cells)."""

    def describe(self) -> str:
        """How the intervals were computed, for a plot's subtitle or a table's header."""
        n = self.table["n"]
        seeds = f"{int(n.min())}" if n.min() == n.max() else f"{int(n.min())} to {int(n.max())}"
        if self.df < 1:
            return f"{seeds} seed(s) per cell: no interval (seed noise unknown)"
        return (
            f"{LEVEL:.0%} t interval per cell (pooled seed SD {self.sd:.3g}, {self.df} df; "
            f"{seeds} seeds per cell)"
        )


def cell_stats(df: Any, metric: str = "value", direction: str | None = None) -> Cells:
    """Per cell: seeds, mean, SD and the 95% t interval of the mean (pooled seed SD)."""
    import pandas as pd

    direction = direction or df.attrs.get("direction", "maximize")
    done = completed(df, metric)
    # levels from every trial, failed ones included, as the verdict takes them
    levels = add_levels(df[df["volume"].notna() & df["balance"].notna()])
    done = levels[levels.index.isin(done.index)]
    grouped = done.groupby(["vol_level", "bal_level"], sort=True)[metric]
    table = grouped.agg(["count", "mean", "std"]).rename(columns={"count": "n", "std": "sd"})
    cells = CellMeans.of(done["vol_level"], done["bal_level"], done[metric])
    pooled = noise(cells, check=0.0)  # one SD for all: the bars do not decide anything
    table["low"], table["high"] = t_interval(
        table["mean"], table["n"], pooled.pooled_sd, pooled.pooled_df
    )
    table = pd.DataFrame(table)
    return Cells(
        table, -1.0 if direction == "minimize" else 1.0, pooled.pooled_sd, pooled.pooled_df
    )
