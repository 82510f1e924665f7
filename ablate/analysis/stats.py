"""Seed-replicate statistics for plots and tables: cells, levels, bootstrap intervals.

Bootstrap: within each cell (one volume level x one balance level), the seed replicates are
resampled with replacement. Residuals about the cell mean are inflated by sqrt(n / (n - 1)), so
the bootstrap variance of a cell mean equals the textbook s^2 / n (an uncorrected bootstrap of
two seeds would report half of it). A cell with one seed has no interval: the text says so and
the plots draw no bar, rather than a made-up one.

These intervals are the plots' error bars, one cell at a time. The verdicts ("less is more", the
balance effect) come from calibrated tests with the seed noise pooled over all cells
(`ablate.analysis.verdict`), not from these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ablate.analysis.load import completed

#: Bootstrap replicates; 2000 puts the 2.5% / 97.5% percentiles within ~0.1 SD of their limit.
N_BOOT = 2000
#: More distinct values than this and a search study's volumes / balances are binned into levels.
MAX_VOLUME_LEVELS = 12
MAX_BALANCE_LEVELS = 8


def bootstrap_mean_ci(
    values: Any, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of the mean of seed replicates; None with one value."""
    y = np.asarray(values, dtype=float)
    if y.size < 2:
        return None
    boot = _boot_means(y, n_boot, np.random.default_rng(seed))
    return _percentiles(boot, level)


def _boot_means(y: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    n = y.size
    if n < 2:
        return np.full(n_boot, y.mean() if n else np.nan)
    resid = (y - y.mean()) * math.sqrt(n / (n - 1))
    idx = rng.integers(0, n, size=(n_boot, n))
    return np.asarray(y.mean() + resid[idx].mean(axis=1))


def _percentiles(boot: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    tail = 50 * (1 - level)
    lo, hi = np.percentile(boot, [tail, 100 - tail])
    return float(lo), float(hi)


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
    """Mean and bootstrap replicates of the mean per (volume level, balance level)."""

    table: Any
    """DataFrame indexed by (vol_level, bal_level): n, mean, sd, low, high (NaN with one seed)."""
    boot: np.ndarray
    """Shape (cells, n_boot): bootstrap means, rows in the order of `table`."""
    sign: float
    """+1 when higher is better, -1 when lower is."""


def cell_stats(
    df: Any,
    metric: str = "value",
    direction: str | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Cells:
    """Per cell: seeds, mean, SD and the 95% bootstrap interval of the mean over seeds."""
    import pandas as pd

    direction = direction or df.attrs.get("direction", "maximize")
    done = completed(df, metric)
    # levels from every trial, failed ones included, as the verdict takes them
    levels = add_levels(df[df["volume"].notna() & df["balance"].notna()])
    done = levels[levels.index.isin(done.index)]
    rng = np.random.default_rng(seed)
    rows, boots = [], []
    for (v, b), part in done.groupby(["vol_level", "bal_level"], sort=True):
        y = part[metric].to_numpy(dtype=float)
        boot = _boot_means(y, n_boot, rng)
        lo, hi = _percentiles(boot) if y.size >= 2 else (math.nan, math.nan)
        rows.append(
            {
                "vol_level": v,
                "bal_level": b,
                "n": y.size,
                "mean": y.mean(),
                "sd": y.std(ddof=1) if y.size >= 2 else math.nan,
                "low": lo,
                "high": hi,
            }
        )
        boots.append(boot)
    table = pd.DataFrame(rows).set_index(["vol_level", "bal_level"])
    return Cells(table, np.vstack(boots), -1.0 if direction == "minimize" else 1.0)
