"""One row per mixture (mean and range over seeds; means and cost for the plots), and the mixture
effect against seed noise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ablate.analysis.load import completed, task_types


def mixture_keys(done: Any) -> Any:
    """A name per mixture, the same for its seed replicates.

    Trials group by volume and proportions (not by `mixture_name`), so that trials proposed
    later, or searched ones, group with the grid trials of the same mixture; the label is the
    grid's name without its seed (`v750-b0.70`) when there is one, else `v<volume>-<shares>`.
    """
    cols = [f"p/{t}" for t in task_types(done)]
    shares = done[cols].round(3).astype(str).agg("/".join, axis=1) if cols else ""
    key = "v" + done["volume"].map(lambda v: f"{v:g}") + "-" + shares
    names = done["mixture"].astype("string").str.replace(r"-s\d+$", "", regex=True)
    label = names.groupby(key).transform("first")
    return label.fillna(key).astype(str)


@dataclass(frozen=True)
class MixtureEffect:
    """Is the spread between mixtures larger than the spread between seeds of one mixture?"""

    best: str
    best_mean: float
    worst: str
    worst_mean: float
    max_seed_range: float
    """Largest (max - min) over the seed replicates of any one mixture."""
    n_replicated: int
    """Mixtures with at least two seeds."""

    @property
    def gap(self) -> float:
        return self.best_mean - self.worst_mean

    @property
    def ratio(self) -> float:
        return self.gap / self.max_seed_range if self.max_seed_range > 0 else float("inf")

    def describe(self, metric: str) -> str:
        if self.n_replicated == 0:
            return (
                f"best mixture {self.best} ({self.best_mean:.3f}) vs worst {self.worst} "
                f"({self.worst_mean:.3f}); no mixture has two seeds, so seed noise is unknown"
            )
        verdict = "a real mixture effect" if self.ratio > 3 else "not clearly above seed noise"
        return (
            f"mean {metric}: best mixture {self.best} {self.best_mean:.3f}, worst {self.worst} "
            f"{self.worst_mean:.3f}, gap {self.gap:.3f} = {self.ratio:.1f} x the largest seed range "
            f"({self.max_seed_range:.3f} over {self.n_replicated} replicated mixtures): {verdict}"
        )


def failed_trials(df: Any) -> Any:
    """The FAIL trials that count as failures: a requeued one (a dead driver's, run again as a
    new trial) is not one."""
    failed = df["state"] == "FAIL"
    if "requeued" in df:
        failed &= ~df["requeued"].fillna(False).astype(bool)
    return df[failed]


def mixture_table(df: Any, metric: str = "value") -> Any:
    """Mean, range and count over seeds for each mixture (volume x proportions), and its failed
    trials (`failed`; a mixture whose every trial failed has a row with 0 seeds)."""
    import pandas as pd

    done = completed(df, metric)
    failed = failed_trials(df)
    failed = failed[failed["volume"].notna()]
    key = mixture_keys(pd.concat([done, failed]))
    grouped = done.assign(mix=key[done.index]).groupby("mix")
    table = grouped.agg(
        volume=("volume", "first"),
        balance=("balance", "first"),
        seeds=("seed", "count"),
        mean=(metric, "mean"),
        low=(metric, "min"),
        high=(metric, "max"),
    )
    fails = failed.assign(mix=key[failed.index]).groupby("mix")
    lost = fails.agg(volume=("volume", "first"), balance=("balance", "first"))
    table = pd.concat([table, lost[~lost.index.isin(table.index)]])
    table["seeds"] = table["seeds"].fillna(0).astype("int64")
    table["failed"] = fails.size().reindex(table.index).fillna(0).astype("int64")
    table["range"] = table["high"] - table["low"]
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
    table = mixture_table(df, metric)
    replicated = table[table["seeds"] >= 2]
    return MixtureEffect(
        best=str(table["mean"].idxmax()),
        best_mean=float(table["mean"].max()),
        worst=str(table["mean"].idxmin()),
        worst_mean=float(table["mean"].min()),
        max_seed_range=float(replicated["range"].max()) if len(replicated) else 0.0,
        n_replicated=len(replicated),
    )
