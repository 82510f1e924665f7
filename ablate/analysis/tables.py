"""One row per mixture (mean and range over seeds), and the mixture effect against seed noise."""

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


def mixture_table(df: Any, metric: str = "value") -> Any:
    """Mean, range and count over seeds for each mixture (volume x proportions)."""
    done = completed(df, metric)
    key = mixture_keys(done)
    grouped = done.assign(mix=key).groupby("mix")
    table = grouped.agg(
        volume=("volume", "first"),
        balance=("balance", "first"),
        seeds=("seed", "count"),
        mean=(metric, "mean"),
        low=(metric, "min"),
        high=(metric, "max"),
    )
    table["range"] = table["high"] - table["low"]
    if (table["volume"] % 1 == 0).all():  # rows are whole numbers: print 250, not 250.0
        table["volume"] = table["volume"].astype("int64")
    return table.sort_values(["volume", "balance"])


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
