"""Read a study back as a table, compare mixtures with seed noise, plot score against volume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.config import JobSpec, load_job
from ablate.errors import UserError


def load(job: JobSpec | str | Path) -> Any:
    """One row per trial: state, value, volume, balance, seed, `p/<type>` shares, every metric."""
    import optuna
    import pandas as pd

    from ablate.sweep import open_study

    if not isinstance(job, JobSpec):
        job = load_job(job)
    try:
        study = open_study(job, create=False)
    except KeyError:
        raise UserError(
            f"{job.source}: the storage {job.storage} holds no study `{job.study}`; run `ablate sweep` first"
        ) from None
    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        row: dict[str, Any] = {
            "trial": t.number,
            "state": t.state.name,
            "value": t.value,
            "mixture": attrs.get("mixture_name"),
            "volume": attrs.get("volume"),
            "balance": attrs.get("balance"),
            "seed": attrs.get("seed"),
            "seconds": attrs.get("seconds"),
        }
        for task_type, share in (attrs.get("proportions") or {}).items():
            row[f"p/{task_type}"] = share
        row.update(attrs.get("metrics") or {})
        if t.state != optuna.trial.TrialState.COMPLETE:
            row["error"] = attrs.get("error")
        rows.append(row)
    return pd.DataFrame(rows)


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
    done = df[df["state"] == "COMPLETE"]
    if done.empty:
        raise UserError("the study has no completed trials yet")
    key = done["mixture"].str.replace(r"-s\d+$", "", regex=True)
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


def plot_volume_balance(df: Any, out: Path, metric: str = "value", label: str = "score") -> Path:
    """Score against volume (log axis), one line per balance level; bars span the seeds' range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = mixture_table(df, metric)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for balance, part in table.groupby("balance"):
        part = part.sort_values("volume")
        yerr = [part["mean"] - part["low"], part["high"] - part["mean"]]
        ax.errorbar(
            part["volume"],
            part["mean"],
            yerr=yerr,
            marker="o",
            capsize=3,
            label=f"balance {balance:.2f}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("training volume (dialogues, log scale)")
    ax.set_ylabel(f"{label} (mean over seeds; bars: min-max)")
    ax.set_title("Score against data volume, one line per balance level")
    ax.grid(True, alpha=0.3)
    ax.legend(title="normalised entropy")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
