"""What to run next: proposals from a trust region around the best tried mixtures, and an honest
statement of whether any is expected to beat the best tried one.

A surrogate is reliable where it has data and at the top of its ranking only as far as its
held-out regret says (`CrossValidation.regret`; `fit_surrogates` picks the model by it). So:

- the best tried mixture is the one with the highest observed mean score (over its seeds);
- candidates lie within L1 distance `radius` of the best tried mixtures (the 3 best observed and
  the 3 best predicted), and, when no volume is asked for, within `z_radius` standard deviations
  of ln(volume) of theirs (inside the tried range); `radius` defaults to the median L1 distance
  from a tried mixture to its nearest tried neighbour (clipped to 0.1..0.3): where the trials are
  that dense, the surrogate has interpolated between neighbours and been checked on them; a
  candidate that is a tried mixture again (shares within L1 `SAME_SHARES` = 0.02 of its, at a
  volume within a factor 1.25 of its) is not a proposal;
- the n best predicted candidates (at least `min_distance` apart) are the proposals.

Proposal 1 is expected to beat the best tried mixture only when all of these hold (else the best
tried mixture itself is the recommendation, and the report says why):

- the surrogate has held-out skill: its held-out Spearman over the m tried mixtures is above
  z(0.95) / sqrt(m - 1), the one-sided 5% critical value of a rank correlation under no
  association (0.58 for 9 mixtures, 0.31 for 30, 0.21 for 60). A model that ranks held-out
  mixtures no better than chance cannot tell an untried mixture from a tried one (on null
  studies the chosen model's Spearman scatters around 0 and the bootstrap refits share its
  errors, so they agree with it);
- its prediction for proposal 1 is better than its prediction for the best tried mixture, by
  at least the standard error of that mixture's observed mean: the seed SD pooled over the
  mixtures run with several seeds (as the verdict pools it over cells) over the square root of
  its seeds; a smaller gain is within the noise of the very mixture it claims to beat. With no
  mixture run twice the seed noise is unknown and only the sign of the gain counts (the
  statement says so: the held-out RMSE, seed noise plus misfit, would withhold nearly every true
  win on single-seed studies, measured below). The comparison is between two
  predictions of one model, not with the observed mean: a surrogate that ranks well often
  predicts the peak's level too low (smoothing, and the best of many single-seed scores is
  lifted by their noise), and comparing its prediction with an observed maximum then withholds
  every true win (measured: 2 claims in 20 random studies against 19 right of 20);
- the model refitted on `n_boot` bootstrap resamples of the mixtures predicts proposal 1 better
  than the best tried mixture, each refit comparing its own two predictions, in at least
  `confidence` of the refits.

Calibration (benchmarks/README.md, "Proposals that beat the best tried"): on null studies, where
no mixture is better than another, the claim is rare; on studies with an untried optimum the
surrogate can learn, it is still made.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ablate.analysis.best_set import best_set
from ablate.analysis.contrasts import CellMeans, noise
from ablate.analysis.surrogates import Data, Proposal, Surrogates, single_thread_blas
from ablate.analysis.words import gain, vol
from ablate.errors import UserError

#: The trust region's L1 radius is the tried mixtures' median nearest-neighbour distance, clipped.
RADIUS_RANGE = (0.1, 0.3)
#: One-sided 5% normal quantile: the held-out Spearman must exceed it / sqrt(mixtures - 1).
SKILL_Z = 1.645
#: A candidate whose shares are within L1 SAME_SHARES of a tried mixture's, at a volume within a
#: factor 1 + SAME_VOLUME of its (4,000 to 6,250 rows for a tried 5,000), is that mixture again:
#: a volume effect that small is far below what a study resolves.
SAME_SHARES = 0.02
SAME_VOLUME = 0.25
#: Candidates range over the whole simplex only when the tried shares are of full rank and, for
#: every task type, some tried mixture has at most CORNER of it (`spans_simplex`); else they
#: stay inside the tried shares' convex hull.
CORNER = 0.05
#: A --volume beyond this factor of the tried range is an extrapolation the report warns about.
EXTRAPOLATION = 2.0

#: How far apart (L1 over the shares) any two proposals are.
MIN_DISTANCE = 0.05


def check_volume(volume: float | None) -> None:
    """A target volume must be a positive number of rows (or a share of the pool below 1)."""
    if volume is not None and not (math.isfinite(volume) and volume > 0):
        raise UserError(
            f"--volume {volume:g}: the target volume must be a positive number of rows "
            "(or a share of the pool below 1)"
        )


def skill_threshold(mixtures: int) -> float:
    """The held-out Spearman over `mixtures` a surrogate must exceed to count as skilled."""
    return SKILL_Z / math.sqrt(max(mixtures - 1, 1))


@dataclass
class Recommendation:
    proposals: list[Proposal]
    best_tried: Proposal
    """The best tried mixture (highest observed mean), its predicted score and interval."""
    observed: float
    """The best tried mixture's observed mean score, over `seeds` trials."""
    seeds: int
    chance: float
    """Share of bootstrap refits predicting proposal 1 better than the best tried mixture."""
    beats: bool
    """Proposal 1 is expected to beat the best tried mixture (else the latter is recommended)."""
    radius: float
    """L1 radius of the trust region around the best tried mixtures."""
    sign: float = 1.0
    """+1 when higher is better, -1 when lower is."""
    spearman: float = math.nan
    """The surrogate's held-out Spearman over mixtures, and the least that counts as skill."""
    skill: float = math.nan
    noise: float = math.nan
    """The standard error of `observed` the predicted gain must exceed (NaN: no mixture was run
    with two seeds, the seed noise is unknown)."""
    gain: float = math.nan
    """Proposal 1's prediction less the best tried mixture's, in "better" units (positive:
    better)."""
    mixtures: int = 0
    """Tried mixtures the surrogate was cross-validated on."""
    best_set: str = ""
    """How many tried mixtures could be the best within seed noise (`best_set`), in words."""
    confidence: float = 0.8
    notes: list[str] = field(default_factory=list)
    """Warnings: a target volume outside the tried range."""

    @property
    def recommended(self) -> Proposal:
        return self.proposals[0] if self.beats and self.proposals else self.best_tried

    def statement(self, metric: str) -> str:
        b = self.best_tried
        shares = ", ".join(f"{t} {x:.3f}" for t, x in b.proportions.items())
        tried = (
            f"the best tried mixture ({{{shares}}} at {vol(b.volume)}, observed {metric} "
            f"{self.observed:.3f} over {self.seeds} trial(s){self._picked()})"
        )
        skill = f"{b.model}, held-out Spearman {self.spearman:.2f}"
        warn = "".join(f" {n}" for n in self.notes)
        if self.beats:
            # the gain the claim rests on: two predictions of one model (see the module's
            # docstring), not the prediction against the observed mean
            diff = gain(self.gain, metric, self.sign)
            return (
                f"Proposal 1 is expected to beat {tried}: predicted {diff} than it by the same "
                f"model ({b.model} predicts it at {b.predicted:.3f}, proposal 1 at "
                f"{self.proposals[0].predicted:.3f}), {self._against_noise()}, better in "
                f"{self.chance:.0%} of bootstrap refits ({skill}; proposals stay within L1 "
                f"{self.radius:.2f} of the best tried mixtures, where the surrogate has data).{warn}"
            )
        return (
            f"No proposal is expected to beat {tried}: {self.why(metric)}. Recommended: the best tried "
            f"mixture itself ({b.model} predicts {b.predicted:.3f}, {b.interval()}); the "
            f"proposals are exploration.{warn}"
        )

    def _picked(self) -> str:
        """The winner's curse: the best of several noisy means sits above its mixture's score."""
        if self.mixtures < 2:
            return ""
        said = f"; {self.best_set}" if self.best_set else ""
        return f"; the best of {self.mixtures} means, so optimistic: picked for being best{said}"

    def _against_noise(self) -> str:
        if math.isnan(self.noise):
            return "the seed noise unknown (no mixture was run with two seeds)"
        return f"more than the noise of its mean (SE {self.noise:.3g})"

    def why(self, metric: str) -> str:
        """Why no proposal is expected to beat the best tried mixture (the first reason)."""
        cannot = "so the surrogates cannot tell whether any untried mixture is better"
        if not self.proposals:
            return f"every candidate in the trust region is a tried mixture, {cannot}"
        model = self.best_tried.model
        if math.isnan(self.spearman):  # the tried mixtures all score the same
            return f"{model}'s held-out Spearman is undefined (constant scores), {cannot}"
        if not self.spearman > self.skill:
            return (
                f"{model} has no held-out skill: its held-out Spearman over the {self.mixtures} "
                f"tried mixtures is {self.spearman:.2f}, not above {self.skill:.2f} (the one-sided "
                f"5% critical value under no rank correlation), {cannot}"
            )
        diff = f"predicted {gain(self.gain, metric, self.sign)} than it by the same model"
        if self.gain <= 0:
            return f"the best candidate is {diff} ({model}), so none is expected to be better"
        if self.gain < self.noise:
            return f"the best candidate is {diff}, within that mean's noise (SE {self.noise:.3g}), {cannot}"
        return (
            f"the best candidate is {diff}, but better in only {self.chance:.0%} of bootstrap "
            f"refits (needs {self.confidence:.0%}), {cannot}"
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
    p = c + s (q - c), q from `hull_or_simplex` (Dirichlet(1), or inside the tried shares'
    convex hull when they do not span the simplex, `spans_simplex`), s uniform up to radius / |q - c|_1 (and at
    most 1, so p stays on the simplex). `z`: a fixed volume; None: the centre's z +- z_radius,
    clipped to the tried range."""
    ps, zs = [], []
    for c in centres:
        q = hull_or_simplex(data.p, per_centre, rng)
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


def hull_or_simplex(tried: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n directions for the trust region: Dirichlet(1) over the simplex when the tried shares
    span it (`spans_simplex`), else random convex combinations
    of 3 tried share vectors (inside their hull). A grid's mixtures lie on a curve (3 task types
    at balance levels: the 2nd and 3rd shares always equal, from the least balanced to the
    uniform; 2 types: a segment of shares), so the surrogate has never seen a mixture off it or
    beyond its ends: there every model extrapolates along a direction no trial varied, its
    held-out skill says nothing, and its bootstrap refits agree with it."""
    rows = np.unique(np.round(tried, 6), axis=0)
    if spans_simplex(rows):
        return rng.dirichlet(np.ones(tried.shape[1]), n)
    pick = rng.integers(0, len(rows), (n, 3))
    w = rng.dirichlet(np.ones(3), n)
    return np.einsum("nk,nkt->nt", w, rows[pick])


def spans_simplex(tried: np.ndarray) -> bool:
    """Whether the tried shares span the simplex: of full affine rank (k - 1), and for every
    task type some tried mixture has at most CORNER of it, so the convex hull reaches every
    face. With 2 types the hull is the segment [min, max] of the first share, and this asks
    that it run from within CORNER of 0 to within CORNER of 1. A grid fails it: its shares lie
    on a curve (rank < k - 1), or, at 2 types, on a segment short of an end (balance levels
    0.5 and 1.0). A random search passes: Dirichlet(1) draws put some mixture near every face
    (60 over 4 types: each type's smallest share is about 0.005), though none near a corner.
    Asking for mixtures near the corners instead (the hull holding nearly the whole simplex)
    confines such searches to the inside of their cloud and keeps them from dropping a harmful
    type (benchmarks/proposal_benchmark.py, `harmful`: 100% to 80% wins, gap closed 63% to
    44%)."""
    rank = int((np.linalg.svd(tried - tried.mean(axis=0), compute_uv=False) > 1e-6).sum())
    return rank >= tried.shape[1] - 1 and bool((tried.min(axis=0) <= CORNER).all())


# long: the steps in order (candidates, picks, refits, predictions), then the one record of them
def recommend(
    sur: Surrogates,
    volume: float | None = None,
    n: int = 1,
    name: str | None = None,
    radius: float | None = None,
    z_radius: float = 0.25,
    confidence: float = 0.8,
    min_distance: float = MIN_DISTANCE,
    n_boot: int = 100,
    seed: int = 0,
    keep: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> Recommendation:
    """The n best predicted mixtures in the trust region around the best tried ones (of those
    `keep(shares, volumes)` allows: a search's bounds), and whether proposal 1 is expected to
    beat the best tried mixture (see the module docstring)."""
    check_volume(volume)
    d = sur.data
    name = name or sur.best
    radius = trust_radius(d) if radius is None else radius
    rng = np.random.default_rng(seed)
    with single_thread_blas():
        first, observed, predicted = _mixture_means(sur, name)
        if keep is not None and (ok := keep(d.p[first], d.volumes[first])).any():
            observed = np.where(ok, observed, -np.inf)  # the best tried keeps a search's caps
        top = np.unique(np.r_[np.argsort(-observed)[:3], np.argsort(-predicted)[:3]])
        fixed = None if volume is None else d.z_of(volume)
        p, z = _untried(d, *trust_candidates(d, first[top], radius, fixed, z_radius, rng), keep)
        chosen = (
            _spread(p, d.sign * sur.model(name).predict(p, z), n, min_distance) if len(p) else []
        )
        best = int(first[np.argmax(observed)])
        pick_p = np.vstack([p[chosen], d.p[best]])
        pick_z = np.r_[z[chosen], d.z[best]]
        boots, wild = sur.bootstrap(pick_p, pick_z, name, n_boot, rng)
        pred = d.clip(sur.model(name).predict(pick_p, pick_z))
    k = len(chosen)
    vols = _volumes(d, pick_z, volume, best)
    out = [_proposal(sur, name, pick_p[j], vols[j], pred[j], boots[:, j]) for j in range(k + 1)]
    for prop in out:
        prop.refits, prop.wild = n_boot, wild
    seeds = int(np.sum(d.groups == d.groups[best]))
    # one model's two predictions, compared within each refit (see the module docstring)
    wins = d.sign * (boots[:, 0] - boots[:, -1]) > 0 if k else np.zeros(1, bool)
    rec = Recommendation(
        proposals=out[:-1],
        best_tried=out[-1],
        observed=d.sign * float(observed.max()),
        seeds=seeds,
        chance=float(np.mean(wins)) if np.isfinite(boots).all() else 0.0,
        beats=False,
        radius=radius,
        sign=d.sign,
        spearman=sur.cv[name].spearman,
        skill=skill_threshold(len(observed)),
        noise=_seed_sd(d, math.nan) / math.sqrt(seeds),
        gain=float(d.sign * (pred[0] - pred[-1])) if k else math.nan,
        mixtures=len(observed),
        best_set=best_set(d.sign * d.y, d.groups)[2].describe(len(observed)),
        confidence=confidence,
        notes=_extrapolation(d, volume),
    )
    above_noise = rec.gain > 0 and not rec.gain < rec.noise  # NaN noise: unknown, sign only
    rec.beats = bool(k and rec.spearman > rec.skill and above_noise and rec.chance >= confidence)
    return rec


def _volumes(d: Data, pick_z: np.ndarray, volume: float | None, best: int) -> np.ndarray:
    """The picks' volumes in rows (`volume` when fixed; the best tried mixture's own, last)."""
    vols = np.exp(pick_z * d.z_sd + d.z_mean)
    if volume is None:
        vols = np.where(vols >= 1, np.round(vols), vols)
    else:
        vols = np.full(len(pick_z), volume, float)
    vols[-1] = d.volumes[best]
    return vols


def _untried(
    data: Data,
    p: np.ndarray,
    z: np.ndarray,
    allowed: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The candidates that are not a tried mixture again: shares within L1 SAME_SHARES of a
    tried mixture's at a volume within a factor 1 + SAME_VOLUME of its are that mixture
    (rerunning it, or running it 1% smaller, is no proposal), whatever the surrogate predicts;
    and that `allowed` (shares, volumes) keeps, when given."""
    from scipy.spatial.distance import cdist

    tried = np.unique(np.column_stack([np.round(data.p, 3), data.z]), axis=0)
    keep = (
        np.ones(len(p), bool)
        if allowed is None
        else allowed(p, np.exp(z * data.z_sd + data.z_mean))
    )
    near = math.log1p(SAME_VOLUME)  # in ln(volume)
    for i in range(0, len(p), 4096):
        part = slice(i, i + 4096)
        same = cdist(p[part], tried[:, :-1], "cityblock") < SAME_SHARES
        same &= np.abs(z[part, None] - tried[None, :, -1]) * data.z_sd < near
        keep[part] &= ~same.any(axis=1)
    return p[keep], z[keep]


def _spread(p: np.ndarray, score: np.ndarray, n: int, min_distance: float) -> list[int]:
    """The n best by `score` (signed: higher is better), each at least `min_distance` (L1) from
    the ones before."""
    chosen: list[int] = []
    for i in np.argsort(-score):
        if len(chosen) == n:
            break
        if all(np.abs(p[i] - p[j]).sum() >= min_distance for j in chosen):
            chosen.append(int(i))
    return chosen


def _seed_sd(data: Data, fallback: float) -> float:
    """The seed SD pooled over the mixtures run with several seeds (as the verdict pools it
    over cells); `fallback` when no mixture was (the seed noise is then unknown)."""
    _, mixture = np.unique(data.groups, return_inverse=True)
    pooled = noise(CellMeans.of(mixture, np.zeros(mixture.size), data.y), check=0.0)
    return pooled.pooled_sd if pooled.pooled_df > 0 else fallback


def _extrapolation(data: Data, volume: float | None) -> list[str]:
    """A warning when the target volume is far outside the tried ones."""
    if volume is None:
        return []
    lo, hi = float(data.volumes.min()), float(data.volumes.max())
    if volume > EXTRAPOLATION * hi:
        far = f"{volume / hi:.0f}x the largest tried volume ({vol(hi)})"
    elif volume < lo / EXTRAPOLATION:
        far = f"1/{lo / volume:.0f} of the smallest tried volume ({vol(lo)})"
    else:
        return []
    return [
        f"Warning: --volume {vol(volume)} is {far}: the surrogate extrapolates in volume there "
        "(the L1 distances count shares only)."
    ]


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


__all__ = [
    "RADIUS_RANGE",
    "SAME_SHARES",
    "SAME_VOLUME",
    "Recommendation",
    "check_volume",
    "hull_or_simplex",
    "recommend",
    "skill_threshold",
    "trust_candidates",
    "trust_radius",
]
