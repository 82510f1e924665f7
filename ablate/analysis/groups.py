"""Trials that are not seed replicates of each other: a study across models (`models:`), or
one whose settings changed and were recorded as a factor (`settings`). Each group gets its own
verdict; models are compared by how they rank the mixtures they share (rank transfer).

Rank transfer between models A and B: the mixtures both ran (same shares and volume), each
model's mean over seeds; Spearman's rho of the two lists, with a 95% percentile bootstrap
interval that resamples the seeds within each mixture and model (the mixtures stay fixed:
the question is how noisy this study's ranking is), and the top-k overlap (k = 3, or a tenth
of the shared mixtures when there are more than 30).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.analysis.plots import load_pyplot

__all__ = [
    "Transfer",
    "main_group",
    "plot_transfer",
    "rank_transfer",
    "shared_mixtures",
    "split_groups",
]

#: Bootstrap replicates of a Spearman interval.
N_BOOT = 1000


def split_groups(df: Any) -> list[tuple[str, Any]]:
    """(label, trials) per model and settings group, in the order the study ran them; one
    group labelled "" when the study has a single model and settings."""
    keys = [k for k in ("model", "settings") if k in df and df[k].nunique(dropna=False) > 1]
    if not keys:
        return [("", df)]
    out = []
    order = df.sort_values("trial") if "trial" in df else df
    for values, part in order.groupby(keys, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        label = ", ".join(f"{k} {v}" for k, v in zip(keys, values, strict=True) if v != "")
        part = part.copy()
        part.attrs = dict(df.attrs)
        out.append((label or "default", part))
    return out


def main_group(groups: list[tuple[str, Any]]) -> tuple[str, Any]:
    """The group the report's plots and main verdict show: the one of the study's latest trial
    (the largest model of a ladder, the settings a rerun recorded last)."""
    return max(groups, key=lambda g: g[1]["trial"].max() if "trial" in g[1] else 0)


@dataclass(frozen=True)
class Transfer:
    """How two models rank the mixtures they share."""

    a: str
    b: str
    n_mixtures: int
    rho: float
    low: float
    high: float
    k: int
    overlap: int
    """How many of A's top k mixtures are in B's top k."""

    tied: str = ""
    """The model whose mixture means are all equal (no ranking to transfer: rho undefined)."""

    def describe(self) -> str:
        if self.tied:
            return (
                f"Rank transfer {self.a} -> {self.b}: undefined, {self.tied} gives all "
                f"{self.n_mixtures} shared mixtures the same mean (nothing to rank)."
            )
        return (
            f"Rank transfer {self.a} -> {self.b}: Spearman {self.rho:.2f} (95% interval "
            f"{self.low:.2f} to {self.high:.2f}) over {self.n_mixtures} shared mixtures; "
            f"top-{self.k} overlap {self.overlap}/{self.k}."
        )

    def title(self) -> str:
        if self.tied:
            return f"undefined: {self.tied}'s means are all equal"
        return f"Spearman {self.rho:.2f} [{self.low:.2f}, {self.high:.2f}], top-{self.k} {self.overlap}/{self.k}"


def rank_transfer(df: Any, metric: str = "value", seed: int = 0) -> list[Transfer]:
    """Every ordered pair of models (A before B in the study) that share 3 or more mixtures."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sign = -1.0 if df.attrs.get("direction") == "minimize" else 1.0  # top k = the best k
    return [
        _transfer(a, b, [sign * y for y in ya], [sign * y for y in yb], rng)
        for a, b, ya, yb in shared_mixtures(df, metric)
    ]


def shared_mixtures(df: Any, metric: str = "value") -> list[tuple[str, str, list[Any], list[Any]]]:
    """Per ordered pair of models sharing 3 or more mixtures (same shares and volume): the
    mixtures' seed scores under each, in the same mixture order."""
    import numpy as np

    if "model" not in df or df["model"].nunique() < 2:
        return []
    done = df[df["state"] == "COMPLETE"].dropna(subset=[metric])
    shares = sorted(c for c in df.columns if c.startswith("p/"))
    key = done[[*shares, "volume"]].round(6).astype(str).agg("|".join, axis=1)
    done = done.assign(_mix=key)
    seeds = {m: part.groupby("_mix")[metric].apply(np.asarray) for m, part in done.groupby("model")}
    models = list(dict.fromkeys(done.sort_values("trial")["model"]))
    out = []
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            shared = sorted(set(seeds[a].index) & set(seeds[b].index))
            if len(shared) >= 3:
                out.append((a, b, [seeds[a][m] for m in shared], [seeds[b][m] for m in shared]))
    return out


def plot_transfer(df: Any, out: Path, metric: str = "value", label: str = "score") -> Path | None:
    """One model's mixture means against another's, a panel per pair (at most 3); None when the
    study has no two models sharing mixtures."""
    pairs = shared_mixtures(df, metric)[:3]
    if not pairs:
        return None
    plt = load_pyplot()
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 4), squeeze=False)
    transfers = rank_transfer(df, metric)[:3]  # the same pairs, in the same order
    for ax, t, (a, b, ya, yb) in zip(axes[0], transfers, pairs, strict=True):
        ax.scatter([y.mean() for y in ya], [y.mean() for y in yb], s=18, alpha=0.8)
        ax.set_xlabel(f"{a}: mean {label}")
        ax.set_ylabel(f"{b}: mean {label}")
        ax.set_title(t.title())
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def _transfer(a: str, b: str, ya: list[Any], yb: list[Any], rng: Any) -> Transfer:
    import numpy as np
    from scipy.stats import spearmanr

    def rho(xa: Any, xb: Any) -> float:
        if np.ptp(xa) == 0 or np.ptp(xb) == 0:  # all tied: no ranking (spearmanr warns, nan)
            return 0.0
        value = spearmanr(xa, xb).statistic
        return float(value) if np.isfinite(value) else 0.0

    mean_a = np.array([y.mean() for y in ya])
    mean_b = np.array([y.mean() for y in yb])
    boots = [
        rho([rng.choice(y, y.size).mean() for y in ya], [rng.choice(y, y.size).mean() for y in yb])
        for _ in range(N_BOOT)
    ]
    k = max(3, len(ya) // 10) if len(ya) > 30 else min(3, len(ya))
    top_a = set(np.argsort(-mean_a)[:k])
    top_b = set(np.argsort(-mean_b)[:k])
    low, high = np.percentile(boots, [2.5, 97.5])
    tied = a if np.ptp(mean_a) == 0 else b if np.ptp(mean_b) == 0 else ""
    return Transfer(a, b, len(ya), rho(mean_a, mean_b), float(low), float(high), k,
                    len(top_a & top_b), tied)  # fmt: skip
