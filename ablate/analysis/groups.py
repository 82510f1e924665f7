"""Trials that are not seed replicates of each other: a study across models (`models:`), or
one whose settings changed and were recorded as a factor (`settings`). Each group gets its own
verdict; models are compared by how they rank the mixtures they share (rank transfer).

Rank transfer between models A and B: the mixtures both ran (same shares and volume), each
model's mean over seeds; Spearman's rho of the two lists and the top-k overlap (k = 3, or a
tenth of the shared mixtures when there are more than 30, and at most half of them). When the shared mixtures span
several volumes, the mixtures are ranked within each volume (a stratified Spearman: the
within-volume ranks, centred per volume, correlated over all volumes) and the top k taken per
volume: more data scores higher for both models, and pooling volumes counted that shared
volume effect as agreement on the mixtures (rho 0.65 where the within-volume rankings agreed
at 0.40). A volume with a single shared mixture has nothing to rank and is left out. Seed noise scrambles both lists, so
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
from collections import Counter
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
    "unshared_pairs",
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
    volumes: int = 1
    """How many volumes the shared mixtures span (ranked, and top k taken, within each)."""
    k_each: tuple[int, int] = (0, 0)
    """The smallest and largest top k of a volume (k sums them over the volumes)."""

    def top(self) -> str:
        if self.volumes == 1:
            return f"top-{self.k}"
        lo, hi = self.k_each
        return f"top-{lo} of each volume" if lo == hi else f"top-{lo} to {hi} of each volume"

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
            within = " within each volume" if self.volumes > 1 else ""
            return (
                f"Rank transfer {self.a} -> {self.b}: undefined, {self.tied} gives all "
                f"{self.n_mixtures} shared mixtures the same mean{within} (nothing to rank)."
            )
        within = (
            f", ranked within each of {self.volumes} volumes (both models score more data "
            "higher; that is not agreement on the mixtures)"
            if self.volumes > 1
            else ""
        )
        return (
            f"Rank transfer {self.a} -> {self.b}: Spearman {self.rho:.2f} between the two "
            f"models' seed means over {self.n_mixtures} shared mixtures{within}, {self.top()} "
            f"overlap {self.overlap}/{self.k}. {self.noise_note()} Resampling seeds moves the rho "
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
        within = f" within {self.volumes} volumes" if self.volumes > 1 else ""
        top = f"top-{self.k}" if self.volumes == 1 else "top"
        return f"Spearman {self.rho:.2f}{within} ({same}), {top} {self.overlap}/{self.k}"


def rank_transfer(df: Any, metric: str = "value", seed: int = 0) -> list[Transfer]:
    """Every ordered pair of models (A before B in the study) that share 3 or more mixtures."""
    rng = np.random.default_rng(seed)
    sign = -1.0 if df.attrs.get("direction") == "minimize" else 1.0  # top k = the best k
    return [
        _transfer(a, b, [sign * y for y in ya], [sign * y for y in yb], rng, volumes)
        for a, b, ya, yb, volumes in shared_mixtures(df, metric)
    ]


def unshared_pairs(df: Any, metric: str = "value") -> list[str]:
    """A line per pair of models that rank transfer leaves out (fewer than 3 shared mixtures in
    volumes where they share 2 or more: a ladder's proxy and target share only what was
    promoted), so the page says why no line compares them."""
    if "model" not in df or df["model"].nunique() < 2:
        return []
    compared = {(a, b) for a, b, *_ in shared_mixtures(df, metric)}
    done = df[df["state"] == "COMPLETE"]
    models = list(dict.fromkeys(done.sort_values("trial")["model"]))
    return [
        f"No rank transfer {a} -> {b}: they share fewer than 3 mixtures (same shares and volume, "
        "2 or more at a volume) to rank"
        for i, a in enumerate(models)
        for b in models[i + 1 :]
        if (a, b) not in compared
    ]


def shared_mixtures(
    df: Any, metric: str = "value"
) -> list[tuple[str, str, list[Any], list[Any], Any]]:
    """Per ordered pair of models sharing 3 or more mixtures (same shares and volume) in volumes
    where they share 2 or more: the mixtures' seed scores under each, in the same mixture order,
    and each mixture's volume."""
    if "model" not in df or df["model"].nunique() < 2:
        return []
    done = df[df["state"] == "COMPLETE"].dropna(subset=[metric])
    shares = sorted(c for c in df.columns if c.startswith("p/"))
    key = done[[*shares, "volume"]].round(6).astype(str).agg("|".join, axis=1)
    done = done.assign(_mix=key)
    seeds = {m: part.groupby("_mix")[metric].apply(np.asarray) for m, part in done.groupby("model")}
    volume_of = dict(zip(done["_mix"], done["volume"].astype(float), strict=False))
    models = list(dict.fromkeys(done.sort_values("trial")["model"]))
    out = []
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            shared = sorted(set(seeds[a].index) & set(seeds[b].index))
            per_volume = Counter(volume_of[m] for m in shared)
            shared = [m for m in shared if per_volume[volume_of[m]] >= 2]
            if len(shared) >= 3:
                volumes = np.array([volume_of[m] for m in shared])
                out.append((a, b, [seeds[a][m] for m in shared], [seeds[b][m] for m in shared],
                            volumes))  # fmt: skip
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
    for ax, t, (a, b, ya, yb, volumes) in zip(axes[0], transfers, pairs, strict=True):
        for idx in strata_of(volumes, len(ya)):  # a colour per volume: ranked within each
            ax.scatter([ya[i].mean() for i in idx], [yb[i].mean() for i in idx], s=18,
                       alpha=0.8, label=f"{volumes[idx[0]]:,.0f} rows")  # fmt: skip
        if t.volumes > 1:
            ax.legend(fontsize=7)
        ax.set_xlabel(f"{a}: mean {label}")
        ax.set_ylabel(f"{b}: mean {label}")
        ax.set_title(t.title())
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def _transfer(
    a: str, b: str, ya: list[Any], yb: list[Any], rng: Any, volumes: Any = None
) -> Transfer:
    strata = strata_of(volumes, len(ya))
    mean_a = np.array([y.mean() for y in ya])
    mean_b = np.array([y.mean() for y in yb])
    rho = float(row_spearman(mean_a[None], mean_b[None], strata)[0])
    boots = row_spearman(resampled_means(ya, rng), resampled_means(yb, rng), strata)
    ks = [top_k(idx.size) for idx in strata]
    overlap = 0
    for idx, k_v in zip(strata, ks, strict=True):  # the top k of each volume
        top_a = set(idx[np.argsort(-mean_a[idx])[:k_v]])
        top_b = set(idx[np.argsort(-mean_b[idx])[:k_v]])
        overlap += len(top_a & top_b)
    low, high = np.percentile(boots, [2.5, 97.5])
    tied = a if _all_tied(mean_a, strata) else b if _all_tied(mean_b, strata) else ""
    null_a, null_b = identical_null(ya, rng, strata), identical_null(yb, rng, strata)
    unknown = a if null_a is None else b if null_b is None else ""
    ceiling = floor = p = math.nan
    if null_a is not None and null_b is not None:
        null = row_spearman(null_a, null_b, strata)
        ceiling, floor = (float(q) for q in np.quantile(null, [0.5, ALPHA]))
        p = float(np.mean(null <= rho + RHO_TOL))
    return Transfer(a, b, len(ya), rho, float(low), float(high), sum(ks), overlap, tied,
                    ceiling, floor, p, unknown, len(strata), (min(ks), max(ks)))  # fmt: skip


def top_k(n: int) -> int:
    """The top k compared among n mixtures: 3, a tenth past 30, and at most half of them (a
    top 3 of 3 overlapped 3/3 even for reversed rankings: k <= n / 2 lets them share none)."""
    return max(3, n // 10) if n > 30 else max(1, min(3, n // 2))


def strata_of(volumes: Any, n: int) -> list[Any]:
    """The column indices of each volume, in volume order (one stratum when volumes is None)."""
    if volumes is None:
        return [np.arange(n)]
    volumes = np.asarray(volumes)
    return [np.flatnonzero(volumes == v) for v in np.unique(volumes)]


def _all_tied(means: Any, strata: list[Any]) -> bool:
    return all(np.ptp(means[idx]) == 0 for idx in strata)


def row_spearman(xa: Any, xb: Any, strata: list[Any] | None = None) -> Any:
    """Spearman's rho of each row of `xa` with the same row of `xb` (average ranks for ties;
    0 where a row is all tied: no ranking, where scipy would warn and give nan). With strata
    (column indices per volume), ranks are taken and centred within each stratum and then
    correlated over all columns: the stratified rho, blind to differences between strata."""
    ra, rb = _centred_ranks(xa, strata), _centred_ranks(xb, strata)
    den = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    return np.where(den > 0, (ra * rb).sum(axis=1) / np.where(den > 0, den, 1.0), 0.0)


def _centred_ranks(x: Any, strata: list[Any] | None) -> Any:
    out = np.empty(np.shape(x), dtype=float)
    for idx in strata if strata is not None else [np.arange(np.shape(x)[1])]:
        r = rankdata(x[:, idx], axis=1)
        out[:, idx] = r - r.mean(axis=1, keepdims=True)
    return out


def resampled_means(ys: list[Any], rng: Any, n: int = N_BOOT) -> Any:
    """`n` x mixtures: each mixture's mean over its seeds drawn with replacement."""
    return np.stack([y[rng.integers(0, y.size, (n, y.size))].mean(axis=1) for y in ys], axis=1)


def seed_noise(ys: list[Any]) -> tuple[float, int]:
    """The seed SD pooled over the mixtures with 2 or more seeds, and its degrees of freedom
    (sum of n - 1; 0: no mixture has two seeds, the SD is unknown)."""
    df = sum(y.size - 1 for y in ys)
    ss = sum(float(((y - y.mean()) ** 2).sum()) for y in ys)
    return (math.sqrt(ss / df) if df else math.nan), df


def identical_null(ys: list[Any], rng: Any, strata: list[Any] | None = None,
                   n: int = N_NULL) -> Any | None:  # fmt: skip
    """`n` x mixtures: one model's seed means simulated under identical true rankings (each
    draw's true means sorted within each stratum, so both models share the order); None when
    its seed noise is unknown. The true means are drawn from their posterior under a prior
    estimated from the data, per stratum (`npmle_prior`): the sorted observed means would
    overstate the gaps that the seed noise widened (near-ties look ranked). The seed SD (pooled
    over all mixtures) of each draw comes from its chi-square uncertainty, so a noise estimate
    from few seeds widens the simulated rhos."""
    sd, df = seed_noise(ys)
    if not df:
        return None
    means = np.array([y.mean() for y in ys])
    counts = np.array([y.size for y in ys], dtype=float)
    sds = sd * np.sqrt(df / rng.chisquare(df, n))
    out = np.empty((n, len(ys)))
    for idx in strata if strata is not None else [np.arange(len(ys))]:
        truth = _true_means(means[idx], sd / np.sqrt(counts[idx]), rng, n)
        order = np.argsort(truth, axis=1, kind="stable")
        truth = np.take_along_axis(truth, order, axis=1)
        noise = rng.standard_normal(truth.shape) * sds[:, None] / np.sqrt(counts[idx][order])
        out[:, idx] = truth + noise
    return out


def _true_means(means: Any, se: Any, rng: Any, n: int) -> Any:
    """`n` draws of the mixtures' true means from their posterior (`npmle_prior`)."""
    if not se.all() or np.ptp(means) == 0:
        return np.broadcast_to(means, (n, means.size))
    grid, post = npmle_prior(means, se)
    cdf = np.cumsum(post, axis=1)
    pick = [np.searchsorted(c, rng.random(n) * c[-1]) for c in cdf]
    return grid[np.minimum(np.stack(pick, axis=1), grid.size - 1)]


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
