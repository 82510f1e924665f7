"""What to run next: proposals from a trust region around the best tried mixtures, and a plain
statement when none is expected to beat the best tried one.

A surrogate is reliable where it has data and at the top of its ranking only as far as its
held-out regret says (`CrossValidation.regret`; `fit_surrogates` picks the model by it). So:

- the best tried mixture is the one with the highest observed mean score (over its seeds);
- candidates lie within L1 distance `radius` of the best tried mixtures (the 3 best observed and
  the 3 best predicted), and, when no volume is asked for, within `z_radius` standard deviations
  of ln(volume) of theirs (inside the tried range); `radius` defaults to the median L1 distance
  from a tried mixture to its nearest tried neighbour (clipped to 0.1..0.3): where the trials are
  that dense, the surrogate has interpolated between neighbours and been checked on them;
- the n best predicted candidates (at least `min_distance` apart) are the proposals;
- the model is refitted on bootstrap resamples of the mixtures: proposal 1 is expected to beat
  the best tried mixture when it is predicted higher and is higher in at least `confidence` of
  the refits; otherwise the best tried mixture itself is the recommendation, with the bootstrap
  interval of its predicted score, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ablate.analysis.surrogates import Data, Proposal, Surrogates, single_thread_blas

#: The trust region's L1 radius is the tried mixtures' median nearest-neighbour distance, clipped.
RADIUS_RANGE = (0.1, 0.3)


@dataclass
class Recommendation:
    proposals: list[Proposal]
    best_tried: Proposal
    """The best tried mixture (highest observed mean), its predicted score and interval."""
    observed: float
    """The best tried mixture's observed mean score, over `seeds` trials."""
    seeds: int
    chance: float
    """Share of bootstrap refits in which proposal 1 scores above the best tried mixture."""
    beats: bool
    """Proposal 1 is expected to beat the best tried mixture (else the latter is recommended)."""
    radius: float
    """L1 radius of the trust region around the best tried mixtures."""

    @property
    def recommended(self) -> Proposal:
        return self.proposals[0] if self.beats and self.proposals else self.best_tried

    def statement(self, metric: str) -> str:
        b = self.best_tried
        shares = ", ".join(f"{t} {x:.3f}" for t, x in b.proportions.items())
        tried = (
            f"the best tried mixture ({{{shares}}} at {b.volume:,.0f} rows, observed {metric} "
            f"{self.observed:.3f} over {self.seeds} trial(s))"
        )
        gain = self.proposals[0].predicted - b.predicted if self.proposals else float("nan")
        region = f"within L1 {self.radius:.2f} of the best tried mixtures"
        if self.beats:
            return (
                f"Proposal 1 is expected to beat {tried}: predicted {gain:+.3f} {metric} above "
                f"it, higher in {self.chance:.0%} of bootstrap refits ({b.model}; proposals stay "
                f"{region}, where the surrogate has data)."
            )
        return (
            f"No proposal is expected to beat {tried}: the best candidate {region} is predicted "
            f"{gain:+.3f} {metric} from it and is higher in only {self.chance:.0%} of bootstrap "
            f"refits ({b.model}). Recommended: the best tried mixture itself, predicted "
            f"{b.predicted:.3f} (95% bootstrap interval {b.low:.3f} to {b.high:.3f})."
        )


def trust_radius(data: Data) -> float:
    """Median L1 distance from a tried mixture to its nearest other tried mixture, clipped to
    RADIUS_RANGE (0.3 when fewer than 2 distinct mixtures)."""
    from scipy.spatial.distance import cdist

    tried = np.unique(np.round(data.p, 3), axis=0)
    if len(tried) < 2:
        return RADIUS_RANGE[1]
    dist = cdist(tried, tried, "cityblock")
    np.fill_diagonal(dist, np.inf)
    return float(np.clip(np.median(dist.min(axis=1)), *RADIUS_RANGE))


def _mixture_means(sur: Surrogates, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per tried mixture (first row of each): row index, signed observed mean, signed predicted."""
    d = sur.data
    _, first, inverse, counts = np.unique(
        d.groups, return_index=True, return_inverse=True, return_counts=True
    )
    observed = d.sign * np.bincount(inverse, weights=d.y) / counts
    predicted = d.sign * sur.model(name).predict(d.p[first], d.z[first])
    return first, observed, predicted


def trust_candidates(
    data: Data,
    centres: np.ndarray,
    radius: float,
    z: float | None,
    z_radius: float,
    rng: np.random.Generator,
    per_centre: int = 3000,
) -> tuple[np.ndarray, np.ndarray]:
    """Shares and standardised ln(volume)s within L1 `radius` of the centre rows of `data`:
    p = c + s (q - c), q ~ Dirichlet(1), s uniform up to radius / |q - c|_1 (and at most 1, so
    p stays on the simplex). `z`: a fixed volume; None: the centre's z +- z_radius, clipped to
    the tried range."""
    ps, zs = [], []
    for c in centres:
        q = rng.dirichlet(np.ones(data.p.shape[1]), per_centre)
        far = np.abs(q - data.p[c]).sum(axis=1)
        s = rng.uniform(0, 1, per_centre) * np.minimum(1.0, radius / np.maximum(far, 1e-12))
        ps += [data.p[c][None, :], data.p[c] + s[:, None] * (q - data.p[c])]
        if z is None:
            step = rng.uniform(-z_radius, z_radius, per_centre)
            zc = np.clip(data.z[c] + np.r_[0.0, step], data.z.min(), data.z.max())
        else:
            zc = np.full(per_centre + 1, z)
        zs.append(zc)
    p = np.round(np.vstack(ps), 3)
    return p / p.sum(axis=1, keepdims=True), np.concatenate(zs)


def recommend(
    sur: Surrogates,
    volume: float | None = None,
    n: int = 1,
    name: str | None = None,
    radius: float | None = None,
    z_radius: float = 0.25,
    confidence: float = 0.8,
    min_distance: float = 0.05,
    n_boot: int = 100,
    seed: int = 0,
) -> Recommendation:
    """The n best predicted mixtures in the trust region around the best tried ones, and whether
    proposal 1 is expected to beat the best tried mixture (see the module docstring)."""
    d = sur.data
    name = name or sur.best
    radius = trust_radius(d) if radius is None else radius
    rng = np.random.default_rng(seed)
    with single_thread_blas():
        first, observed, predicted = _mixture_means(sur, name)
        top = np.unique(np.r_[np.argsort(-observed)[:3], np.argsort(-predicted)[:3]])
        fixed = None if volume is None else d.z_of(volume)
        p, z = trust_candidates(d, first[top], radius, fixed, z_radius, rng)
        score = d.sign * sur.model(name).predict(p, z)
        chosen: list[int] = []
        for i in np.argsort(-score):
            if all(np.abs(p[i] - p[j]).sum() >= min_distance for j in chosen):
                chosen.append(int(i))
            if len(chosen) == n:
                break
        best = int(first[np.argmax(observed)])
        pick_p = np.vstack([p[chosen], d.p[best]])
        pick_z = np.r_[z[chosen], d.z[best]]
        boots = sur.bootstrap(pick_p, pick_z, name, n_boot, rng)
        pred = sur.model(name).predict(pick_p, pick_z)
    vols = np.round(np.exp(pick_z * d.z_sd + d.z_mean)) if volume is None else [volume] * n
    vols = [*list(vols[:n]), d.volumes[best]]
    out = [_proposal(sur, name, pick_p[j], vols[j], pred[j], boots[:, j]) for j in range(n + 1)]
    wins = d.sign * (boots[:, 0] - boots[:, -1]) > 0
    chance = float(np.mean(wins)) if np.isfinite(boots).all() else 0.0
    gain = d.sign * (pred[0] - pred[-1])
    seeds = int(np.sum(d.groups == d.groups[best]))
    return Recommendation(
        proposals=out[:-1],
        best_tried=out[-1],
        observed=float(d.sign * observed.max()),
        seeds=seeds,
        chance=chance,
        beats=bool(gain > 0 and chance >= confidence),
        radius=radius,
    )


def _proposal(
    sur: Surrogates, name: str, p: np.ndarray, volume: float, pred: float, boots: np.ndarray
) -> Proposal:
    d = sur.data
    lo, hi = np.nanpercentile(boots, [2.5, 97.5])
    return Proposal(
        proportions={t: float(x) for t, x in zip(d.types, p, strict=True)},
        volume=float(volume),
        predicted=float(pred),
        low=float(lo),
        high=float(hi),
        model=name,
        distance=float(np.abs(d.p - p).sum(axis=1).min()),
    )


__all__ = ["RADIUS_RANGE", "Recommendation", "recommend", "trust_candidates", "trust_radius"]
