"""One row per mixture (mean and range over seeds; means and cost for the plots), and the mixture
effect against seed noise."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ablate.analysis.best_set import best_set, mixture_scores
from ablate.analysis.load import completed, proposed, task_types

#: Columns that set a trial's group apart: trials of different models or settings are never
#: seed replicates of each other, so never one mixture (see `ablate.analysis.groups`).
GROUP_COLUMNS = ("model", "settings")


def _identity(done: Any) -> Any:
    """Per trial, what makes a mixture itself: volume, shares (3 decimals) and, where the table
    has them, model and settings; one column each, as text."""
    import pandas as pd

    # (a table cut from `load`'s keeps its attrs' task types, maybe not their columns)
    cols = [f"p/{t}" for t in task_types(done) if f"p/{t}" in done]
    parts = pd.DataFrame(index=done.index)
    parts["volume"] = "v" + done["volume"].astype(float).map(lambda v: f"{v:.12g}")
    # (+ 0.0: -0.0 prints as 0)
    shares = pd.DataFrame(
        {c: (done[c].astype(float).round(3) + 0.0).map("{:g}".format) for c in cols}
    )
    # column-wise concatenation: a row-wise `agg("/".join, axis=1)` costs ~1 ms a trial
    parts["shares"] = _joined(shares, "/") if cols else ""
    for col in GROUP_COLUMNS:
        if col in done:
            parts[col] = done[col].fillna("").astype(str)
    return parts


def mixture_keys(done: Any) -> Any:
    """A label per mixture, the same for its seed replicates and unique to it.

    A mixture is its volume and shares (rounded to 3 decimals), and its model and settings
    where the table has those columns: trials group by that (not by `mixture_name`), so that
    trials proposed later, or searched ones, group with the grid trials of the same mixture.
    The label is the trial's name without its seed (`v750-b0.70`), the first one met, else
    `v<volume>-<shares>`. Design names are positional (`lat1`, `diri3`), so a study extended
    after a design change can hold two mixtures named alike: each then gets what sets it apart
    in brackets (`v1000-lat1 (0.5/0.5/0)`, `v1000-lat1 (0.667/0.333/0)`; `(model big)` for one
    mixture run on two models), never one group.
    """
    names = done["mixture"].astype("string").str.replace(r"-s\d+$", "", regex=True)
    return _labels(_identity(done), names)


def mixture_identity(done: Any, volume: bool = True) -> Any:
    """Per trial, one text per mixture (volume, shares, model and settings), the same for its
    seed replicates: `mixture_keys` without the names, so also for a table with no `mixture`
    column. A table without shares (built by hand) goes by its balance. `volume=False`: the
    same text for a mixture's shares at every volume."""
    parts = _identity(done)
    if not volume:
        parts = parts.drop(columns="volume")
    if not any(str(c).startswith("p/") for c in done.columns) and "balance" in done:
        parts["shares"] = done["balance"].astype(float).map("{:.12g}".format)
    return _joined(parts, "|")


def design_points(df: Any) -> Any:
    """A label per design point (mixture x seed), unique to it: the trial's name
    (`v750-b0.70-s1`), with what sets it apart in brackets when two points share a name, as in
    `mixture_keys`: the point to count a failed trial at (the `mixture` column names two
    different points alike after a design change). A table without volumes or seeds (one
    built by hand) has only its names to go by."""
    if "volume" not in df or "seed" not in df:
        return df["mixture"].astype(str)
    parts = _identity(df)
    parts["seed"] = df["seed"].astype(float).map(lambda s: f"seed {s:.12g}")
    return _labels(parts, df["mixture"].astype("string"))


def _joined(parts: Any, sep: str) -> Any:
    """Each row's text columns joined by `sep` (as `sep.join(row)`), column by column."""
    first, *rest = (parts[c] for c in parts.columns)
    return first.str.cat(rest, sep=sep) if rest else first.copy()


def _labels(parts: Any, names: Any) -> Any:
    """Per row, the first name of its identity (a row of `parts`), made unique per identity."""
    import numpy as np
    import pandas as pd

    if parts.empty:
        return names.astype(str)
    key = _joined(parts, "|")
    fallback = parts["volume"] + "-" + parts["shares"]
    base = names.groupby(key).transform("first").fillna(fallback).astype(str)
    ids = parts.assign(key=key, base=base).drop_duplicates("key")
    # A name held by one identity is its label; a name several identities share (after a
    # design change, or balance levels closer than a name's 2 decimals) gets, per identity,
    # the columns that differ within its name: `v1000-lat1 (0.5/0.5/0)`, `(model big)`.
    shared = ids["base"].duplicated(keep=False)
    label = pd.Series(ids["base"].to_numpy(), index=ids["key"].to_numpy())
    same = ids[shared]
    if len(same):
        differ = same.groupby("base")[list(parts.columns)].nunique().gt(1)
        differ = differ.reindex(same["base"]).to_numpy()  # one row per identity
        what = pd.Series("", index=same.index)
        for k, c in enumerate(parts.columns):
            text = same[c] if c in ("volume", "shares", "seed") else f"{c} " + same[c]
            sep = np.where((what != "") & differ[:, k], ", ", "")
            what = what + sep + text.where(differ[:, k], "")
        label.loc[same["key"].to_numpy()] = (same["base"] + " (" + what + ")").to_numpy()
    return key.map(label)


@dataclass(frozen=True)
class MixtureEffect:
    """Do the mixtures' means differ by more than seed noise? A one-way ANOVA of the completed
    trials by mixture (the seed replicates of one mixture give the noise).

    Before: the best and worst were the highest and lowest means whatever the direction (a loss
    study named its worst mixture best), and "a real mixture effect" meant a gap over 3x the
    largest seed range: with one mixture truly better by 5 seed SDs (9 mixtures, 2 seeds) it said
    so in 24% of studies. The F test says so in 93% there (3 SDs: 45%, against 6%) and in 5.0%
    of studies with no effect (400 simulated studies each; 3 seeds: 4.5%).
    """

    best: str
    best_mean: float
    worst: str
    worst_mean: float
    max_seed_range: float
    """Largest (max - min) over the seed replicates of any one mixture."""
    n_replicated: int
    """Mixtures with at least two seeds."""
    mixtures: int = 0
    """Mixtures with a completed trial."""
    f: float = math.nan
    """The ANOVA's F (NaN: no mixture has two seeds, or every seed of a mixture scored alike)."""
    p_value: float = math.nan
    df_within: int = 0
    """Degrees of freedom of the seed noise: completed trials minus mixtures."""
    best_set: str = ""
    """How many mixtures could be the best within seed noise (`best_set`), in words."""

    @property
    def gap(self) -> float:
        """Best minus worst mean, in the metric's own units (negative for a loss)."""
        return self.best_mean - self.worst_mean

    def describe(self, metric: str) -> str:
        head = (
            f"mean {metric}: best mixture {self.best} {self.best_mean:.3f}, worst {self.worst} "
            f"{self.worst_mean:.3f} (of {self.mixtures} mixtures)"
        )
        if self.n_replicated == 0:
            return f"{head}; no mixture has two seeds, so seed noise is unknown"
        if not math.isfinite(self.p_value):
            return f"{head}; every seed of each mixture scored the same: no test"
        verdict = (
            "the mixtures differ by more than seed noise"
            if self.p_value < 0.05
            else "no difference between mixtures beyond seed noise"
        )
        return (
            f"{head}: {verdict} (one-way ANOVA over mixtures, F = {self.f:.2f}, p = "
            f"{self.p_value:.2g}, seed noise from {self.n_replicated} replicated mixtures, "
            f"{self.df_within} df; the best of {self.mixtures} means is optimistic: it was "
            f"picked as the best); {self.best_set}"
        )


def failed_trials(df: Any) -> Any:
    """The FAIL trials that count as failures: a requeued one (a dead driver's, run again as a
    new trial) is not one, nor one dropped from a design that shrank (never run)."""
    failed = df["state"] == "FAIL"
    for column in ("requeued", "dropped"):
        if column in df:
            failed &= ~df[column].fillna(False).astype(bool)
    return df[failed]


def mixture_table(df: Any, metric: str = "value") -> Any:
    """Mean, range and count over seeds for each mixture (volume x proportions), its failed
    trials (`failed`; a mixture whose every trial failed has a row with 0 seeds) and, in a study
    `ablate propose` added trials to, whether it is one of theirs (`proposed`)."""
    import pandas as pd

    done = completed(df, metric)
    failed = failed_trials(df)
    failed = failed[failed["volume"].notna()]
    both = pd.concat([done, failed])
    key = mixture_keys(both)
    grouped = done.assign(mix=key[done.index]).groupby("mix")
    table = grouped.agg(
        volume=("volume", "first"),
        balance=("balance", "first"),
        seeds=("seed", "count"),
        mean=(metric, "mean"),
        min=(metric, "min"),  # over seeds: not an interval (the cells table has those)
        max=(metric, "max"),
    )
    fails = failed.assign(mix=key[failed.index]).groupby("mix")
    lost = fails.agg(volume=("volume", "first"), balance=("balance", "first"))
    table = pd.concat([table, lost[~lost.index.isin(table.index)]])
    table["seeds"] = table["seeds"].fillna(0).astype("int64")
    table["failed"] = fails.size().reindex(table.index).fillna(0).astype("int64")
    table["range"] = table["max"] - table["min"]
    if "proposed_by" in df:
        mine = proposed(both).groupby(key).any()
        table["proposed"] = mine.reindex(table.index, fill_value=False).astype(bool)
    if (table["volume"] % 1 == 0).all():  # rows are whole numbers: print 250, not 250.0
        table["volume"] = table["volume"].astype("int64")
    return table.sort_values(["volume", "balance"])


def mixture_means(df: Any, metric: str = "value") -> Any:
    """One row per mixture: volume, balance, shares, mean score, GPU-hours and trial-hours."""
    done = completed(df, metric)
    cols = [f"p/{t}" for t in task_types(done)]
    done = done.assign(mix=mixture_keys(done))
    agg: dict[str, Any] = {"volume": ("volume", "first"), "balance": ("balance", "first")}
    agg.update({c: (c, "first") for c in cols})
    agg["score"] = (metric, "mean")
    agg["seeds"] = (metric, "count")
    groups = done.groupby("mix")
    out = groups.agg(**agg)
    # hours: NaN (unknown) when no trial of the mixture recorded its seconds
    out["hours"] = groups["seconds"].sum(min_count=1) / 3600
    out["gpu_hours"] = groups["gpu_seconds"].sum(min_count=1) / 3600
    return out


def mixture_effect(df: Any, metric: str = "value") -> MixtureEffect:
    """Best and worst mixture by mean (best: highest, or lowest when `df.attrs["direction"]`
    is minimize) and the one-way ANOVA of their trials (`MixtureEffect`)."""
    from scipy.stats import f as f_dist

    table = mixture_table(df, metric)
    table = table[table["seeds"] > 0]
    replicated = table[table["seeds"] >= 2]
    means = table["mean"]
    sign = -1.0 if df.attrs.get("direction") == "minimize" else 1.0
    high, low = means.idxmax(), means.idxmin()
    best, worst = (high, low) if sign > 0 else (low, high)
    done = completed(df, metric)
    y, keys = sign * done[metric].to_numpy(float), mixture_keys(done).to_numpy(str)
    m = mixture_scores(y, keys)
    between = float((m.n * (m.mean - y.mean()) ** 2).sum())
    df_between, df_within = len(m.n) - 1, m.df
    f = p = math.nan
    if df_between > 0 and df_within > 0 and m.within > 0:
        f = (between / df_between) / (m.within / df_within)
        p = float(f_dist.sf(f, df_between, df_within))
    _, _, could = best_set(y, keys)
    return MixtureEffect(
        best=str(best),
        best_mean=float(means[best]),
        worst=str(worst),
        worst_mean=float(means[worst]),
        max_seed_range=float(replicated["range"].max()) if len(replicated) else 0.0,
        n_replicated=len(replicated),
        mixtures=len(table),
        f=f,
        p_value=p,
        df_within=df_within,
        best_set=could.describe(len(table)),
    )


def favoured_type(rows: Any) -> str:
    """The task type every mixture of `rows` gives strictly the largest share, or "" (none
    does, or they favour different types)."""
    cols = [c for c in rows.columns if c.startswith("p/")]
    shares = rows[cols].to_numpy(float)
    if not len(shares) or len(cols) < 2:
        return ""
    top = np.sort(shares, 1)
    if (top[:, -1] - top[:, -2] <= 1e-6).any():  # a tie on top: no one type is favoured
        return ""
    first = set(shares.argmax(1).tolist())
    return cols[first.pop()][2:] if len(first) == 1 else ""
