"""Trials that are not seed replicates of each other: a study across models (`models:`), or
one whose settings changed and were recorded as a factor (`settings`). Each group gets its own
verdict; models are compared by how they rank the mixtures they share (rank transfer).

Rank transfer between models A and B: the mixtures both ran (same shares and volume), each
model's mean over seeds; Spearman's rho of the two lists and the top-k overlap (k = 3, or a
tenth of the shared mixtures when there are more than 30). Seed noise scrambles both lists, so
rho is below 1 even when the two models rank the mixtures identically (attenuation). Whether
seed noise alone explains the observed rho is checked by simulating the study with identical
true rankings: each model's true means drawn from their posterior under a prior estimated from
its own means (`npmle_prior`), sorted, paired in order, plus seed noise at the model's pooled
seed SD (mixtures with 2 or more seeds give it; each simulated study draws it from its
chi-square uncertainty). "The rankings differ beyond seed noise" only when the observed rho is
below 95% of the simulated ones. Checked by simulation (2-3 seeds, 9-100 mixtures, equal,
unequal, clustered and tied true means): identical rankings are called different in 0-5% of
studies (6-8% when neither model separates the mixtures at all); a reversed or permuted ranking
(true rho -0.25) in 87-100% of 9-mixture studies, a true rho of 0.47 over 30 mixtures in 96-100%,
0.83 over 30 in 14-53%. Resampling the seeds within each mixture gives the spread of the noisy
rho (a percentile bootstrap: narrow with 2-3 seeds and centred below the true agreement, so it
is no interval for it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from ablate.analysis.plots import load_pyplot

__all__ = [
    "Transfer",
    "main_group",
    "plot_transfer",
    "rank_transfer",
    "shared_mixtures",
    "split_groups",
]

#: Bootstrap replicates of the seed-resampling spread of rho.
N_BOOT = 1000
#: Simulated studies with identical true rankings (the attenuation check).
N_NULL = 2000
#: Grid points and EM steps of the prior of the true means (`npmle_prior`).
NPMLE_GRID = 120
NPMLE_STEPS = 300
#: One-sided level of "the rankings differ beyond seed noise".
ALPHA = 0.05
#: A simulated rho this close to the observed one counts as at or below it (float noise).
RHO_TOL = 1e-9


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
    (the largest model of a ladder, the settings a rerun recorded last) among those with a
    completed trial (a model that failed every trial made the whole report refuse the study;
    its own line says what failed)."""
    done = [g for g in groups if "state" not in g[1] or (g[1]["state"] == "COMPLETE").any()]
    return max(done or groups, key=lambda g: g[1]["trial"].max() if "trial" in g[1] else 0)


@dataclass(frozen=True)
class Transfer:
    """How two models rank the mixtures they share."""

    a: str
    b: str
    n_mixtures: int
    rho: float
    low: float
    high: float
    """The 2.5% and 97.5% percentiles of rho when the seeds are resampled (the noisy rho's
    spread, not an interval for how well the true rankings agree)."""
    k: int
    overlap: int
    """How many of A's top k mixtures are in B's top k."""

    tied: str = ""
    """The model whose mixture means are all equal (no ranking to transfer: rho undefined)."""

    ceiling: float = math.nan
    """The median rho of simulated studies where both models rank the mixtures identically (nan:
    a model has no mixture with 2 seeds, so its seed noise is unknown)."""
    floor: float = math.nan
    """The 5th percentile of those simulated rhos."""
    p: float = math.nan
    """The share of those simulated rhos at or below the observed one."""
    unknown: str = ""
    """The model whose seed noise is unknown (no shared mixture with 2 or more seeds)."""

    @property
    def differ(self) -> bool:
        """The rankings differ beyond seed noise (one-sided 5%)."""
        return self.p < ALPHA

    def noise_note(self) -> str:
        if self.unknown:
            return (
                f"Whether seed noise explains a rho below 1 cannot be told: {self.unknown} has "
                "no shared mixture with 2 seeds."
            )
        verdict = (
            f"so the rankings differ beyond seed noise (p = {self.p:.3f})"
            if self.differ
            else "so the rankings do not differ beyond seed noise"
        )
        return (
            "Seed noise lowers this rho even when two models rank the mixtures the same: with "
            "identical true rankings and this study's seed noise, simulated studies give about "
            f"{self.ceiling:.2f} (95% above {self.floor:.2f}), {verdict}."
        )

    def describe(self) -> str:
        if self.tied:
            return (
                f"Rank transfer {self.a} -> {self.b}: undefined, {self.tied} gives all "
                f"{self.n_mixtures} shared mixtures the same mean (nothing to rank)."
            )
        return (
            f"Rank transfer {self.a} -> {self.b}: Spearman {self.rho:.2f} between the two "
            f"models' seed means over {self.n_mixtures} shared mixtures, top-{self.k} overlap "
            f"{self.overlap}/{self.k}. {self.noise_note()} Resampling seeds moves the rho "
            f"{self.low:.2f} to {self.high:.2f} (the spread of the noisy rho, not an interval "
            "for the true agreement)."
        )

    def title(self) -> str:
        if self.tied:
            return f"undefined: {self.tied}'s means are all equal"
        if self.unknown:
            same = "seed noise unknown"
        else:
            same = f"identical rankings ~{self.ceiling:.2f}" + (", differ" if self.differ else "")
        return f"Spearman {self.rho:.2f} ({same}), top-{self.k} {self.overlap}/{self.k}"


def rank_transfer(df: Any, metric: str = "value", seed: int = 0) -> list[Transfer]:
    """Every ordered pair of models (A before B in the study) that share 3 or more mixtures."""
    rng = np.random.default_rng(seed)
    sign = -1.0 if df.attrs.get("direction") == "minimize" else 1.0  # top k = the best k
    return [
        _transfer(a, b, [sign * y for y in ya], [sign * y for y in yb], rng)
        for a, b, ya, yb in shared_mixtures(df, metric)
    ]


def shared_mixtures(df: Any, metric: str = "value") -> list[tuple[str, str, list[Any], list[Any]]]:
    """Per ordered pair of models sharing 3 or more mixtures (same shares and volume): the
    mixtures' seed scores under each, in the same mixture order."""
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
    mean_a = np.array([y.mean() for y in ya])
    mean_b = np.array([y.mean() for y in yb])
    rho = float(row_spearman(mean_a[None], mean_b[None])[0])
    boots = row_spearman(resampled_means(ya, rng), resampled_means(yb, rng))
    k = max(3, len(ya) // 10) if len(ya) > 30 else min(3, len(ya))
    top_a = set(np.argsort(-mean_a)[:k])
    top_b = set(np.argsort(-mean_b)[:k])
    low, high = np.percentile(boots, [2.5, 97.5])
    tied = a if np.ptp(mean_a) == 0 else b if np.ptp(mean_b) == 0 else ""
    null_a, null_b = identical_null(ya, rng), identical_null(yb, rng)
    unknown = a if null_a is None else b if null_b is None else ""
    ceiling = floor = p = math.nan
    if null_a is not None and null_b is not None:
        null = row_spearman(null_a, null_b)
        ceiling, floor = (float(q) for q in np.quantile(null, [0.5, ALPHA]))
        p = float(np.mean(null <= rho + RHO_TOL))
    return Transfer(a, b, len(ya), rho, float(low), float(high), k, len(top_a & top_b), tied,
                    ceiling, floor, p, unknown)  # fmt: skip


def row_spearman(xa: Any, xb: Any) -> Any:
    """Spearman's rho of each row of `xa` with the same row of `xb` (average ranks for ties;
    0 where a row is all tied: no ranking, where scipy would warn and give nan)."""
    ra, rb = rankdata(xa, axis=1), rankdata(xb, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    return np.where(den > 0, (ra * rb).sum(axis=1) / np.where(den > 0, den, 1.0), 0.0)


def resampled_means(ys: list[Any], rng: Any, n: int = N_BOOT) -> Any:
    """`n` x mixtures: each mixture's mean over its seeds drawn with replacement."""
    return np.stack([y[rng.integers(0, y.size, (n, y.size))].mean(axis=1) for y in ys], axis=1)


def seed_noise(ys: list[Any]) -> tuple[float, int]:
    """The seed SD pooled over the mixtures with 2 or more seeds, and its degrees of freedom
    (sum of n - 1; 0: no mixture has two seeds, the SD is unknown)."""
    df = sum(y.size - 1 for y in ys)
    ss = sum(float(((y - y.mean()) ** 2).sum()) for y in ys)
    return (math.sqrt(ss / df) if df else math.nan), df


def identical_null(ys: list[Any], rng: Any, n: int = N_NULL) -> Any | None:
    """`n` x mixtures: one model's seed means simulated under identical true rankings (each
    draw's true means sorted, so both models share the order); None when its seed noise is
    unknown. The true means are drawn from their posterior under a prior estimated from the
    data (`npmle_prior`): the sorted observed means would overstate the gaps that the seed noise
    widened (near-ties look ranked). The seed SD of each draw comes from its chi-square
    uncertainty, so a noise estimate from few seeds widens the simulated rhos."""
    sd, df = seed_noise(ys)
    if not df:
        return None
    means = np.array([y.mean() for y in ys])
    counts = np.array([y.size for y in ys], dtype=float)
    if sd == 0 or np.ptp(means) == 0:
        truth = np.broadcast_to(means, (n, len(ys)))
    else:
        grid, post = npmle_prior(means, sd / np.sqrt(counts))
        cdf = np.cumsum(post, axis=1)
        pick = [np.searchsorted(c, rng.random(n) * c[-1]) for c in cdf]
        truth = grid[np.minimum(np.stack(pick, axis=1), grid.size - 1)]
    order = np.argsort(truth, axis=1, kind="stable")
    truth = np.take_along_axis(truth, order, axis=1)
    sds = sd * np.sqrt(df / rng.chisquare(df, n))
    noise = rng.standard_normal(truth.shape) * sds[:, None] / np.sqrt(counts[order])
    return truth + noise


def npmle_prior(x: Any, se: Any) -> tuple[Any, Any]:
    """The grid and each mixture's posterior over it, under the nonparametric maximum-likelihood
    prior of the true means (Kiefer-Wolfowitz, by EM on a grid spanning the observed means):
    it keeps the clusters and near-ties that a normal prior would spread out."""
    grid = np.union1d(np.linspace(x.min(), x.max(), NPMLE_GRID), x)  # each mean on the grid
    log = -0.5 * ((x[:, None] - grid[None]) / se[:, None]) ** 2
    lik = np.exp(log - log.max(axis=1, keepdims=True))  # a row's scale cancels in its posterior
    w = np.full(grid.size, 1.0 / grid.size)
    for _ in range(NPMLE_STEPS):
        post = lik * w
        post /= post.sum(axis=1, keepdims=True)
        w = post.mean(axis=0)
    post = lik * w
    return grid, post / post.sum(axis=1, keepdims=True)
