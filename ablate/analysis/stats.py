"""Seed-replicate statistics for plots and tables: cells, levels, intervals of cell means.

A cell (one volume level x one balance level) gets the 95% t interval of its mean with the seed
noise pooled over all cells, as the verdict pools it (`ablate.analysis.contrasts`):

    mean +- t(0.975, df) * s / sqrt(n),   s^2 = sum of squares about the mixture means / df,
    df = completed trials - mixtures

The noise is pooled over replicates of the same mixture, not over a cell's trials: a cell can
hold several mixtures, and their differences are no seed noise (`ablate.analysis.replicates`).

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
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ablate.analysis.contrasts import VARIANCE_CHECK, CellMeans, Noise, noise
from ablate.analysis.load import completed, proposed, to_come
from ablate.analysis.replicates import (
    LEVEL,
    balanced,
    distinct_per_cell,
    most_mixtures,
    noise_intervals,
    replicate_noise,
    replicated,
)
from ablate.analysis.tables import favoured_type, mixture_identity
from ablate.analysis.words import BALANCE, RETRY, WAIT, bal, check_metric, lost_text, next_seeds
from ablate.analysis.words import vol as _vol
from ablate.errors import UserError

#: More distinct values than this and a search study's volumes / balances are binned into levels.
MAX_VOLUME_LEVELS = 12
MAX_BALANCE_LEVELS = 8


def add_levels(done: Any) -> Any:
    """Columns `vol_level` and `bal_level`: the grid's own values, or bins for a search study.

    A grid has a few distinct volumes and balances: they are the levels. A searched study draws
    them freely: volumes go into log-spaced bins (labelled by the geometric mid-point) and
    balances into quartile bins (labelled by their mean), so curves still have a few lines. A
    grid's balances are never binned, however many (`on_balance_axis`): each is one mixture
    that differs from the others in balance alone (10 levels were binned into quartiles, their
    balance test dropped as if they were random mixtures).
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
    if bal.nunique() > MAX_BALANCE_LEVELS and not on_balance_axis(out):
        q = pd.qcut(bal, 4, labels=False, duplicates="drop")
        out["bal_level"] = bal.groupby(q).transform("mean").round(2)
    else:
        out["bal_level"] = bal
    return out


def on_balance_axis(rows: Any) -> bool:
    """Whether every mixture is a grid's balance level (`proportions_for_balance`): one type's
    share x, the others (1 - x) / (k - 1) each, and the same type on top in every unbalanced one."""
    shares = rows[[c for c in rows.columns if c.startswith("p/")]].to_numpy(float)
    if shares.shape[1] < 2 or np.isnan(shares).any():
        return False
    top = shares.argmax(1)
    rest = np.sort(shares, 1)[:, :-1]  # all but the largest share
    even = np.ptp(rest, 1) <= 1e-6  # (1 - x) / (k - 1) each
    uniform = np.ptp(shares, 1) <= 1e-6
    return bool(even.all() and len(set(top[~uniform].tolist())) <= 1)


def searched(rows: Any, levels: Any) -> bool:
    """Whether a trial table is a search study's: every mixture is named as the search names
    them (`search3-v5822`, `centroid-v4472`), or its levels are bins (`add_levels`) and no
    mixture was tried with two seeds (a random design of 20 mixtures x 3 seeds has binned
    balances too, but seed replicates: a fixed design)."""
    binned = (levels["vol_level"] != levels["volume"].astype(float)).any() or (
        levels["bal_level"] != levels["balance"].astype(float).round(3)
    ).any()
    by_name = False
    if "mixture" in rows and len(rows):
        names = rows["mixture"].astype(str)
        by_name = bool(names.str.contains(r"(?:^|-)(?:search\d+|centroid)-v", regex=True).all())
    return bool(by_name or (binned and not replicated(rows)))


def study_searched(df: Any) -> bool:
    """Whether a trial table is a search study's (`searched`, on the design's trials)."""
    return design_trials(df)[2]


def design_trials(df: Any) -> tuple[Any, Any, bool]:
    """The trials that make the volume x balance cells, their levels (`add_levels`), and
    whether the study is a search (`searched`): the one place they are picked.

    Trials with a volume and a balance; in a fixed design (a grid, ...) not those `ablate
    propose` enqueued (`proposed`): a proposed mixture is no level of the design, and counted
    as one it would add a balance level per proposal, tests nobody designed and trials the power
    sentence counts as missing. They stay in the mixtures, the surrogates' data and the share
    and history plots. A search keeps them: its bins hold any mixture, and whether it is one is
    judged on its own trials (a proposal's name is not a search's)."""
    rows = df[df["volume"].notna() & df["balance"].notna()]
    extra = proposed(rows)
    own = rows[~extra] if extra.any() and not extra.all() else rows
    levels = add_levels(own)
    search = searched(own, levels)
    if own is rows or not search:
        return own, levels, search
    return rows, add_levels(rows), True


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
    """Its degrees of freedom (completed trials - mixtures)."""
    searched: bool = False
    """A search study's cells: bins of different mixtures, each run once (`searched`)."""
    several: bool = False
    """A cell holds several mixtures (`Design.mixtures_per_cell`): its n counts their trials."""
    per_volume: str = ""
    """The seed noise per volume the intervals use, or "" when pooled."""

    def describe(self) -> str:
        """How the intervals were computed, for a plot's subtitle or a table's header."""
        n = self.table["n"]
        seeds = f"{int(n.min())}" if n.min() == n.max() else f"{int(n.min())} to {int(n.max())}"
        if self.searched:
            spread = f", SD {self.sd:.3g} within bins" if self.df >= 1 else ""
            return (
                f"bins of searched trials, {seeds} trials per bin, each a different mixture run "
                f"once: the interval ({LEVEL:.0%} t{spread}) is the spread of different mixtures, "
                "not seed noise"
            )
        if self.df < 1:
            return f"{seeds} seed(s) per cell: no interval (seed noise unknown)"
        per = "trials per cell over its mixtures" if self.several else "seeds per cell"
        sd = self.per_volume or f"pooled seed SD {self.sd:.3g}, {self.df} df"
        return f"{LEVEL:.0%} t interval per cell ({sd}; {seeds} {per})"


def cell_stats(
    df: Any,
    metric: str = "value",
    direction: str | None = None,
    bounds: tuple[float, float] | None = None,
) -> Cells:
    """Per cell: seeds, mean, SD and the 95% t interval of the mean (pooled seed SD), the
    interval kept inside `bounds`, the values the metric can take (default: the study's
    `range` when `metric` is the column it is of, `range_of`, by default `value`)."""
    import pandas as pd

    direction = direction or df.attrs.get("direction", "maximize")
    done = completed(df, metric)
    # levels from every trial of the design, failed ones included, as the verdict takes them
    _, levels, search = design_trials(df)
    done = levels[levels.index.isin(done.index)]
    if done.empty and proposed(df).any():  # only trials `ablate propose` added completed
        study = df.attrs.get("study", "the study")
        raise UserError(
            f"study `{study}` has no completed trial of its design, only trials `ablate "
            f"propose` added; {RETRY}"
        )
    # the seed noise from every scored trial; the cells from those the tests compare
    mixture, same = mixture_identity(done), mixture_identity(done, volume=False).to_numpy()
    vol, bal = done["vol_level"].to_numpy(), done["bal_level"].to_numpy()
    several = most_mixtures(vol, bal, same) > 1
    every = CellMeans.of(vol, bal, done[metric])
    if search:  # the spread of different mixtures in a bin (`Cells.describe` says so)
        pooled = noise(every, check=0.0)
    else:  # the noise the verdict uses: per volume when the volumes' seed noise differs
        pooled = replicate_noise(vol, mixture, done[metric], every, VARIANCE_CHECK)
    if several and not search:  # as `Design.of` keeps them (`replicates.balanced`)
        done = done[balanced(vol, bal, same, np.ones(len(done), bool))]
    grouped = done.groupby(["vol_level", "bal_level"], sort=True)[metric]
    table = grouped.agg(["count", "mean", "std"]).rename(columns={"count": "n", "std": "sd"})
    cell_vol = table.index.get_level_values(0)
    low, high = noise_intervals(table["mean"], table["n"], cell_vol, pooled)
    # kept inside the metric's range (an accuracy's bar below 0 says nothing the data can)
    if bounds is None and metric == df.attrs.get("range_of", "value"):
        bounds = df.attrs.get("range")
    bottom, top = bounds or (-math.inf, math.inf)
    table["low"], table["high"] = np.clip(low, bottom, top), np.clip(high, bottom, top)
    table = pd.DataFrame(table)
    sign = -1.0 if direction == "minimize" else 1.0
    sds = np.sqrt(pooled.var)  # (one per volume when they differ, as the verdict has them)
    per_volume = "" if pooled.pooled else (
        f"seed SD pooled {pooled.pooled_sd:.3g}, {pooled.pooled_df} df, and per volume "
        f"{sds.min():.3g} to {sds.max():.3g}, the wider interval: the volumes' noise differs"
    )  # fmt: skip
    return Cells(table, sign, pooled.pooled_sd, pooled.pooled_df, search, several, per_volume)


@dataclass(frozen=True)
class Design:
    """The study as the tests see it: every level tried (completed or not), the completed
    trials per cell, and the seed noise."""

    volumes: list[float]
    balances: list[float]
    cells: CellMeans
    missing: dict[tuple[float, float], int]
    """Cells with trials but no score: how many trials there did not complete."""
    noise: Noise
    sign: float
    metric: str
    seeds: int = 0
    """Seeds per cell as designed: the most distinct seeds tried (in any state) in one cell."""
    trials: int = 0
    """Design points tried (cell x seed, in any state); a rerun counts once."""
    unrecorded: dict[tuple[float, float], int] = field(default_factory=dict)
    """Cells with trials but no score: how many trials there completed without recording
    the metric (NaN or missing: not a failure, a rerun would not change it)."""
    n_unrecorded: int = 0
    """Completed trials without the metric, in every cell."""
    searched: bool = False
    """A search study: its levels are bins of searched trials, each mixture run once
    (`design.seeds[0]`); more seeds or `ablate plan` do not apply to it."""
    pending: dict[tuple[float, float], int] = field(default_factory=dict)
    """Cells with trials but no score: how many trials there are still waiting or running
    (not lost: the sweep has yet to finish them)."""
    mixtures_per_cell: int = 1
    """The most mixtures tried in one cell: above 1 a cell's mean is over several mixtures
    (binned balances of a random design, a lattice's corners), each with its seeds."""
    unbalanced: int = 0
    """Scored trials left out of the cells (not of the noise) so that a balance level holds
    the same mixtures, each as often, at every volume (`replicates.balanced`)."""
    left: dict[tuple[float, float], int] = field(default_factory=dict)
    """Cells with scored trials but none kept (`unbalanced`): how many were left out there."""
    binned: bool = False
    """The balance levels are bins of the design's balances (`add_levels`, past 8 levels)."""
    favours: dict[float, str] = field(default_factory=dict)
    """Balance level -> the task type all its mixtures give the largest share (`favoured_type`)."""
    elsewhere: tuple[float, ...] = ()
    """Volumes other models of the study ran (`df.attrs["study_volumes"]`: a ladder's rungs)."""

    @classmethod
    def of(
        cls,
        volume: Any,
        balance: Any,
        y: Any,
        done: Any,
        sign: float = 1.0,
        metric: str = "value",
        variance_check: float = VARIANCE_CHECK,
        seed: Any = None,
        searched: bool = False,
        mixture: Any = None,
        waiting: Any = None,
        replicate: Any = None,
    ) -> Design:
        """From one entry per trial (any state): its levels, score, whether it completed and
        (optionally) its seed (default: each trial its own seed of its cell) and mixture label
        (`mixture_identity(volume=False)`: the seed noise is pooled over replicates of a
        mixture, and a balance level keeps the same mixtures at every volume; default: one
        mixture per cell, as in a grid). `replicate`: per trial, its group of seed replicates
        (default: its volume level and mixture; with binned volumes, its own volume's).
        `waiting`: per trial, whether it is still waiting or running (default: none is).
        `variance_check`: Bartlett's p below which volumes keep their own variance (0: never)."""
        vol, bal = np.asarray(volume, dtype=float), np.asarray(balance, dtype=float)
        seed = np.arange(vol.size) if seed is None else np.asarray(seed)
        seeds = distinct_per_cell(vol, bal, seed)
        complete = np.asarray(done, dtype=bool)
        y = np.asarray(y, dtype=float)
        done = complete & np.isfinite(y)
        several = 1 if mixture is None else most_mixtures(vol, bal, mixture)
        # (a search's bins hold each mixture at one volume: no test, nothing to balance)
        cells, use = _tested(vol, bal, y, done, mixture if several > 1 and not searched else None)
        waits = np.zeros(vol.size, bool) if waiting is None else np.asarray(waiting, dtype=bool)
        lost = _lost(vol, bal, complete, done, use, waits)
        group = mixture if replicate is None else replicate
        return cls(
            sorted(set(vol.tolist())),
            sorted(set(bal.tolist())),
            cells,
            lost[0],
            noise(cells, variance_check)
            if group is None
            else replicate_noise(
                vol[done], np.asarray(group)[done], y[done], cells, variance_check
            ),
            sign,
            metric,
            max(seeds.values(), default=0),
            sum(seeds.values()),
            lost[1],
            int((complete & ~done).sum()),
            searched,
            lost[2],
            several,
            int(done.sum() - use.sum()),
            lost[3],
        )

    def lost(self, keys: list[tuple[float, float]]) -> tuple[int, int, int, int]:
        """(trials that did not complete, completed trials without the metric, trials still
        waiting or running, scored trials left out to balance the level) in `keys`."""
        return (
            sum(self.missing.get(k, 0) for k in keys),
            sum(self.unrecorded.get(k, 0) for k in keys),
            sum(self.pending.get(k, 0) for k in keys),
            sum(self.left.get(k, 0) for k in keys),
        )

    @property
    def lost_cells(self) -> list[tuple[float, float]]:
        """The cells with trials but no score (failed, without the metric, to come, or left
        out to balance their level)."""
        return sorted({*self.missing, *self.unrecorded, *self.pending, *self.left})

    def describe_missing(self) -> str:
        """The cells with trials but no score, each with why (`lost_text`)."""
        keys = self.lost_cells
        return ", ".join(
            f"{_vol(v)} at balance {bal(b)} ({lost_text(*self.lost([(v, b)]), self.metric)})"
            for v, b in keys
        )

    def advice(self, keys: list[tuple[float, float]], add: str = "add it to the design") -> str:
        """What to do about the cells `keys` having no score: rerun failed trials, check a
        metric that completed trials did not record, or (nothing lost) change the design."""
        failed, unrecorded, pending, left = self.lost(keys)
        out = [RETRY] if failed else []
        if pending:
            out.append(WAIT)
        if left:
            out.append(BALANCE)
        if unrecorded:
            out.append(check_metric(self.metric))
        return "; ".join(out) or (add if not self.searched else next_seeds(1, searched=True))


Lost = dict[tuple[float, float], int]


def _tested(
    vol: np.ndarray, bal: np.ndarray, y: np.ndarray, scored: np.ndarray, mixture: Any
) -> tuple[CellMeans, np.ndarray]:
    """The cells the tests compare and which trials they keep: every scored trial, or with
    `mixture` (cells of several mixtures) those `balanced` keeps, each with its mixture as the
    permutation guard's unit (`CellMeans.unit`)."""
    if mixture is None:
        return CellMeans.of(vol[scored], bal[scored], y[scored]), scored
    use = balanced(vol, bal, mixture, scored)
    unit = np.unique(np.asarray(mixture, dtype=str)[use], return_inverse=True)[1].ravel()
    return replace(CellMeans.of(vol[use], bal[use], y[use]), unit=unit), use


def _lost(
    vol: np.ndarray,
    bal: np.ndarray,
    complete: np.ndarray,
    scored: np.ndarray,
    kept: np.ndarray,
    waiting: np.ndarray,
) -> tuple[Lost, Lost, Lost, Lost]:
    """Per cell with no kept trial: its trials that failed, that completed without the metric,
    that are still waiting or running, and that scored but were left out (`balanced`)."""
    have = set(zip(vol[kept].tolist(), bal[kept].tolist(), strict=True))
    out: tuple[Lost, Lost, Lost, Lost] = ({}, {}, {}, {})
    rows = zip(
        vol[~kept].tolist(),
        bal[~kept].tolist(),
        complete[~kept],
        scored[~kept],
        waiting[~kept],
        strict=True,
    )
    for v, b, c, s, w in rows:
        if (v, b) not in have:
            into = out[3] if s else out[1] if c else out[2] if w else out[0]
            into[(v, b)] = into.get((v, b), 0) + 1
    return out


def study_design(df: Any, metric: str = "value", direction: str | None = None) -> Design:
    """The Design of a trial table (`ablate.analysis.load`): levels from every trial of the
    design (`design_trials`), failed ones included."""
    direction = direction or df.attrs.get("direction", "maximize")
    label = df.attrs.get("metric", metric) if metric == "value" else metric
    rows, levels, search = design_trials(df)
    # a stopped driver's trial (its copy is the one that counts), one dropped from the design
    gone = rows.reindex(columns=["requeued", "dropped"]).fillna(False).astype(bool).any(axis=1)
    copy = gone & (rows["state"] == "FAIL")
    rows, levels = rows[~copy], levels[~copy]
    y = rows[metric].astype(float) if metric in rows else np.full(len(rows), np.nan)
    binned = bool((levels["bal_level"] != rows["balance"].astype(float).round(3)).any())
    design = Design.of(
        levels["vol_level"],
        levels["bal_level"],
        y,
        rows["state"] == "COMPLETE",
        -1.0 if direction == "minimize" else 1.0,
        label,
        seed=rows.get("seed"),
        searched=search,
        mixture=mixture_identity(rows, volume=False).to_numpy() if len(rows) else None,
        waiting=to_come(rows),
        replicate=mixture_identity(rows).to_numpy() if len(rows) else None,
    )
    favours = {b: favoured_type(rows[levels["bal_level"] == b]) for b in design.balances}
    elsewhere = tuple(df.attrs.get("study_volumes", ()))
    return replace(design, binned=binned, favours=favours, elsewhere=elsewhere)
