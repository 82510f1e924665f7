"""Seed-replicate statistics: bootstrap intervals, the "less is more" test, the balance effect.

Bootstrap: within each cell (one volume level x one balance level), the seed replicates are
resampled with replacement. Residuals about the cell mean are inflated by sqrt(n / (n - 1)), so
the bootstrap variance of a cell mean equals the textbook s^2 / n (an uncorrected bootstrap of
two seeds would report half of it). A cell with one seed has no interval: the text says so and
the plots draw no bar, rather than a made-up one.

"Less is more" at one balance level: with V_max the largest tested volume, the effect is

    effect = max over v < V_max of score(v) - score(V_max)      (in "better" units)

recomputed in every bootstrap replicate (so picking the best smaller volume is part of the
interval). Verdict: holds when the 95% interval lies above 0; does not hold when the estimate is
<= 0 (the largest volume scores at least as well); cannot be decided when the estimate favours a
smaller volume but the interval reaches 0, or when no interval can be drawn (one seed).
"Overall" runs the same test on the mean over balance levels present at every volume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ablate.analysis.load import completed

#: Bootstrap replicates; 2000 puts the 2.5% / 97.5% percentiles within ~0.1 SD of their limit.
N_BOOT = 2000
#: More distinct values than this and a search study's volumes / balances are binned into levels.
MAX_VOLUME_LEVELS = 12
MAX_BALANCE_LEVELS = 8

Status = Literal["holds", "does not hold", "cannot be decided"]


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
    done = add_levels(completed(df, metric))
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


@dataclass(frozen=True)
class LessIsMore:
    """The test at one balance level (or over all of them: `balance is None`)."""

    balance: float | None
    status: Status
    reason: str
    best_volume: float | None = None
    largest_volume: float | None = None
    effect: float | None = None
    """Best smaller volume minus the largest, in objective units signed so that positive =
    the smaller volume is better (for a loss: lower)."""
    low: float | None = None
    high: float | None = None
    min_seeds: int = 0


def _less_is_more(
    means: np.ndarray,
    boots: np.ndarray,
    volumes: list[float],
    seeds: list[int],
    sign: float,
    balance: float | None,
    metric: str,
) -> LessIsMore:
    if len(volumes) < 2:
        return LessIsMore(
            balance, "cannot be decided", "only one volume was tested", min_seeds=min(seeds)
        )
    better = sign * means
    i = int(np.argmax(better[:-1]))
    effect = float(better[i] - better[-1])
    vbest, vmax = volumes[i], volumes[-1]
    common = dict(
        balance=balance, best_volume=vbest, largest_volume=vmax, effect=effect, min_seeds=min(seeds)
    )
    point = f"{_vol(vbest)} scores {means[i]:.3f} against {means[-1]:.3f} at {_vol(vmax)}"
    if min(seeds) < 2:
        status: Status = "does not hold" if effect <= 0 else "cannot be decided"
        why = (
            f"the largest volume ({_vol(vmax)}) scores best ({means[-1]:.3f}), "
            "but with one seed per mixture no interval can be drawn"
            if effect <= 0
            else f"{point} ({effect:+.3f} {metric}), but with one seed per mixture "
            "no interval can be drawn, so seed noise may explain it"
        )
        return LessIsMore(status=status, reason=why, **common)  # type: ignore[arg-type]
    boot_better = sign * boots
    boot_effect = boot_better[:-1].max(axis=0) - boot_better[-1]
    low, high = _percentiles(boot_effect)
    ci = f"difference {effect:+.3f} {metric}, 95% CI {low:+.3f} to {high:+.3f} over seeds"
    if effect <= 0:
        status, why = (
            "does not hold",
            f"the largest volume ({_vol(vmax)}, {means[-1]:.3f}) scores at least as well as every "
            f"smaller one; the best smaller, {_vol(vbest)}, scores {means[i]:.3f} ({ci})",
        )
    elif low > 0:
        status, why = "holds", f"{point}: {ci}, above seed noise"
    else:
        status, why = (
            "cannot be decided",
            f"{point} ({ci}): the interval includes 0, so the gap is within seed noise",
        )
    return LessIsMore(status=status, reason=why, low=low, high=high, **common)  # type: ignore[arg-type]


def _vol(v: float) -> str:
    return f"{v:,.0f} rows" if v >= 1 else f"{v:g} of the pool"


def less_is_more(
    df: Any, metric: str = "value", direction: str | None = None, cells: Cells | None = None
) -> tuple[LessIsMore, list[LessIsMore]]:
    """The overall test and one per balance level (see the module docstring for the rule)."""
    cells = cells or cell_stats(df, metric, direction)
    t = cells.table
    label = df.attrs.get("metric", metric) if metric == "value" else metric
    per_level = []
    for b in sorted(t.index.get_level_values("bal_level").unique()):
        part = t.xs(b, level="bal_level")
        rows = [t.index.get_loc((v, b)) for v in part.index]
        per_level.append(
            _less_is_more(
                part["mean"].to_numpy(),
                cells.boot[rows],
                [float(v) for v in part.index],
                [int(n) for n in part["n"]],
                cells.sign,
                float(b),
                label,
            )
        )
    # overall: balance levels present at every volume, averaged with equal weight
    volumes = sorted(t.index.get_level_values("vol_level").unique())
    levels = [
        b
        for b in t.index.get_level_values("bal_level").unique()
        if all((v, b) in t.index for v in volumes)
    ]
    if levels:
        means = np.array([np.mean([t.loc[(v, b), "mean"] for b in levels]) for v in volumes])
        boots = np.stack(
            [
                np.mean([cells.boot[t.index.get_loc((v, b))] for b in levels], axis=0)
                for v in volumes
            ]
        )
        seeds = [min(int(t.loc[(v, b), "n"]) for b in levels) for v in volumes]
        overall = _less_is_more(
            means, boots, [float(v) for v in volumes], seeds, cells.sign, None, label
        )
    else:
        overall = LessIsMore(
            None,
            "cannot be decided",
            "no balance level was tested at every volume, so volumes cannot be compared overall",
        )
    return overall, per_level


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
    high: float | None

    def describe(self, metric: str, sign: float = 1.0) -> str:
        ci = (
            f"95% CI {self.low:+.3f} to {self.high:+.3f}"
            if self.low is not None and self.high is not None
            else "one seed: no interval can be drawn"
        )
        beyond = ""
        if self.low is not None and self.high is not None:
            clear = self.low > 0 or self.high < 0
            helps = sign * self.diff > 0
            beyond = (
                f": balance {'helps' if helps else 'hurts'} beyond seed noise"
                if clear
                else ": within seed noise"
            )
        return (
            f"At {_vol(self.volume)}, the most balanced mixture (balance {self.most:.2f}) scores "
            f"{self.most_mean:.3f} {metric} and the least balanced ({self.least:.2f}) "
            f"{self.least_mean:.3f}: a difference of {self.diff:+.3f} ({ci}){beyond}."
        )


def balance_effects(
    df: Any, metric: str = "value", direction: str | None = None, cells: Cells | None = None
) -> list[BalanceEffect]:
    """At each volume level with two or more balance levels: most minus least balanced."""
    cells = cells or cell_stats(df, metric, direction)
    t = cells.table
    out = []
    for v in sorted(t.index.get_level_values("vol_level").unique()):
        part = t.xs(v, level="vol_level")
        if len(part) < 2:
            continue
        lo_b, hi_b = float(part.index.min()), float(part.index.max())
        i_hi, i_lo = t.index.get_loc((v, hi_b)), t.index.get_loc((v, lo_b))
        diff = float(part.loc[hi_b, "mean"] - part.loc[lo_b, "mean"])
        ci: tuple[float | None, float | None] = (None, None)
        if min(part.loc[hi_b, "n"], part.loc[lo_b, "n"]) >= 2:
            ci = _percentiles(cells.boot[i_hi] - cells.boot[i_lo])
        out.append(
            BalanceEffect(
                float(v),
                hi_b,
                lo_b,
                float(part.loc[hi_b, "mean"]),
                float(part.loc[lo_b, "mean"]),
                diff,
                *ci,
            )
        )
    return out


@dataclass
class Findings:
    """Everything the report states in words, computed once."""

    metric: str
    direction: str
    n_complete: int
    n_failed: int
    cells: Cells
    overall: LessIsMore
    per_level: list[LessIsMore]
    balance: list[BalanceEffect]
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> Status:
        return self.overall.status

    def headline(self) -> str:
        n_hold = sum(r.status == "holds" for r in self.per_level)
        scope = "over all balance levels" if self.per_level else ""
        return (
            f'"Less is more" {self.verdict.upper()} {scope}: {self.overall.reason}. '
            f"Per balance level it holds at {n_hold} of {len(self.per_level)}."
        )

    def statements(self) -> list[str]:
        """Plain-words findings, most important first."""
        out = [self.headline()]
        out += [f"Balance {r.balance:.2f}: {r.status}: {r.reason}." for r in self.per_level]
        out += [b.describe(self.metric, self.cells.sign) for b in self.balance]
        if self.cells.table["n"].max() < 2:
            out.append(
                "Every mixture ran with one seed only: no interval can be drawn and no error bars "
                "are shown; add seeds to the design (`design.seeds: [0, 1, 2]`) to measure seed noise."
            )
        out += self.notes
        return out


def analyse(
    df: Any, metric: str | None = None, direction: str | None = None, n_boot: int = N_BOOT
) -> Findings:
    """Cells, the "less is more" tests and the balance effects of a study table."""
    metric = metric or "value"
    direction = direction or df.attrs.get("direction", "maximize")
    label = df.attrs.get("metric", "value") if metric == "value" else metric
    cells = cell_stats(df, metric, direction, n_boot=n_boot)
    overall, per_level = less_is_more(df, metric, direction, cells)
    notes = []
    n_failed = int((df["state"] == "FAIL").sum())
    if n_failed:
        notes.append(
            f"{n_failed} trial(s) failed and are left out; `ablate sweep` again retries them."
        )
    return Findings(
        metric=label,
        direction=direction,
        n_complete=int((df["state"] == "COMPLETE").sum()),
        n_failed=n_failed,
        cells=cells,
        overall=overall,
        per_level=per_level,
        balance=balance_effects(df, metric, direction, cells),
        notes=notes,
    )
