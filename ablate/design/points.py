"""Building blocks of fixed designs: balance levels, design keys, volume x seed crossing, priors.

A balance level b is the normalised entropy H(p) / log(k) of the proportions over the k task
types (0 = one task type only, 1 = uniform). Many proportion vectors share one entropy; the
grid uses the family "one dominant type, the rest equal":

    p_dom = x,  p_other = (1 - x) / (k - 1),  x in [1/k, 1]

whose entropy falls monotonically from log(k) at x = 1/k to 0 at x = 1, so bisection finds
the unique x for each level (`dominant_share`). Example, k = 2: b = 1.0 -> (0.5, 0.5);
b = 0.5 -> (0.89, 0.11); b = 0.0 -> (1.0, 0.0).

Everything random is drawn from the job's `seed` (`design_rng`): the same job gives the same
design anywhere. The design kinds themselves live in `ablate/design/kinds/`, one file each.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from ablate.config import JobSpec
from ablate.errors import UserError
from ablate.mixture import Mixture, normalized_entropy
from ablate.pool import open_pool

#: Proportions are rounded to this many digits in a design key (1e-9 apart = the same point).
KEY_DIGITS = 9


def dominant_share(balance: float, k: int, tol: float = 1e-13) -> float:
    """The share x of the dominant type such that the family above has normalised entropy `balance`."""
    if not 0.0 <= balance <= 1.0:
        raise UserError(f"balance must lie in 0..1 (normalised entropy), got {balance}")
    if k <= 1:
        return 1.0
    if balance >= 1.0:
        return 1.0 / k
    if balance <= 0.0:
        return 1.0

    def entropy(x: float) -> float:
        rest = (1.0 - x) / (k - 1)
        return normalized_entropy({str(i): p for i, p in enumerate([x] + [rest] * (k - 1))})

    lo, hi = 1.0 / k, 1.0  # entropy(lo) = 1 > balance > 0 = entropy(hi)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if entropy(mid) > balance:
            lo = mid
        else:
            hi = mid
        if hi - lo < tol:
            break
    return 0.5 * (lo + hi)


def proportions_for_balance(task_types: Sequence[str], balance: float) -> dict[str, float]:
    """Proportions with the first task type dominant and normalised entropy `balance`."""
    if not task_types:
        raise UserError("a design needs at least one task type (set `task_types` in the job)")
    k = len(task_types)
    x = dominant_share(balance, k)
    rest = (1.0 - x) / (k - 1) if k > 1 else 0.0
    return {t: (x if i == 0 else rest) for i, t in enumerate(task_types)}


def design_key(mixture: Mixture) -> str:
    """A stable identity of a design point: proportions (rounded), volume, seed (and model).

    Two trials with the same key train on the same data; the sweep uses it to avoid enqueuing a
    point twice when a study is resumed.
    """
    props = mixture.proportions
    if isinstance(props, Mapping):
        body = ",".join(
            f"{t}={round(float(p), KEY_DIGITS):.{KEY_DIGITS}f}" for t, p in sorted(props.items())
        )
    else:
        body = str(props)
    model = f"|m={mixture.model}" if mixture.model else ""  # one-model keys stay as they were
    return f"v={mixture.volume:g}|s={mixture.seed}|{body}{model}"


def cross_volumes_and_seeds(
    job: JobSpec, labelled: Sequence[tuple[str, dict[str, float]]]
) -> list[Mixture]:
    """Each (label, proportions) point at every `design.volumes` x `design.seeds`, seeds
    innermost; points that coincide (same proportions, volume and seed) appear once."""
    points: list[Mixture] = []
    seen: set[str] = set()
    for volume in job.design.volumes:
        for label, props in labelled:
            for seed in job.design.seeds:
                mix = Mixture(
                    name=f"v{volume:g}-{label}-s{seed}",
                    volume=volume,
                    proportions=props,
                    taxonomy=job.taxonomy,
                    seed=seed,
                )
                key = design_key(mix)
                if key not in seen:
                    seen.add(key)
                    points.append(mix)
    return points


def check_types(task_types: Sequence[str]) -> list[str]:
    types = list(task_types)
    if not types:
        raise UserError("a design needs at least one task type (set `task_types` in the job)")
    if len(set(types)) != len(types):
        raise UserError(f"task_types has duplicates: {types}")
    return types


def design_rng(job: JobSpec, what: str) -> np.random.Generator:
    """The design's random stream: the job's seed and the design kind, nothing global."""
    return np.random.default_rng([int(job.seed) & 0xFFFFFFFF, zlib.crc32(what.encode())])


def as_props(types: Sequence[str], p: Sequence[float] | np.ndarray) -> dict[str, float]:
    arr = np.clip(np.asarray(p, dtype=float), 0.0, None)
    arr = arr / arr.sum()
    return {t: float(x) for t, x in zip(types, arr, strict=True)}


def with_min_share(p: np.ndarray, min_share: float) -> np.ndarray:
    """Map the simplex onto {p : p_i >= m}: p = m + (1 - k m) q (an affine bijection)."""
    k = p.shape[-1]
    return min_share + (1.0 - k * min_share) * p


def lattice_points(k: int, divisions: int) -> list[tuple[float, ...]]:
    """Every (i_1, ..., i_k) / m with non-negative integers summing to m, in lexicographic order."""

    def compositions(n: int, parts: int) -> list[tuple[int, ...]]:
        if parts == 1:
            return [(n,)]
        return [(i, *rest) for i in range(n, -1, -1) for rest in compositions(n - i, parts - 1)]

    return [tuple(i / divisions for i in c) for c in compositions(divisions, k)]


def prior_proportions(job: JobSpec, task_types: Sequence[str]) -> dict[str, float]:
    """`design.prior` resolved: natural (pool counts ^ prior_temperature), uniform, or given."""
    types = check_types(task_types)
    prior = job.design.prior
    if isinstance(prior, Mapping):
        missing = [t for t in types if t not in prior]
        if missing or any(not float(v) >= 0 for v in prior.values()) or sum(prior.values()) <= 0:
            raise UserError(
                f"{job.source or 'job'}: `design.prior` must give a non-negative share to every "
                f"task type ({', '.join(types)}); missing: {', '.join(missing) or 'none'}"
            )
        return as_props(types, [float(prior[t]) for t in types])
    if prior == "natural" and job.pool_dir is not None:
        counts = open_pool(job.pool_dir).manifest.labels.get(job.taxonomy, {})
        weights = [float(counts.get(t, 0)) ** job.design.prior_temperature for t in types]
        if sum(weights) > 0:
            return as_props(types, weights)
    return {t: 1.0 / len(types) for t in types}


#: Dirichlet candidates drawn for each point of a cover (point i chooses among i blocks).
COVER_BLOCK = 400


def dirichlet_cover(
    prior: Sequence[float] | np.ndarray, n: int, rng: np.random.Generator, min_share: float = 0.0
) -> np.ndarray:
    """n space-filling mixtures around `prior`: greedy max-min over Dirichlet candidates.

    Candidates: Dirichlet(a * k * prior) with a log-spaced in [0.1, 5] (RegMix's range), drawn
    in blocks of `COVER_BLOCK`; the prior itself is the first point, and point i the candidate
    of blocks 1..i farthest (L2) from every point chosen so far. Point i never sees a later
    block, so the cover of n points is the start of the cover of n + m: raising
    `design.n_trials` extends a study's design instead of replacing it.
    """
    base = np.asarray(prior, dtype=float)
    k = base.size
    chosen = [base]
    cand = np.empty((0, k))
    dist = np.empty(0)
    while len(chosen) < n:
        alphas = np.exp(rng.uniform(np.log(0.1), np.log(5.0), size=COVER_BLOCK))
        conc = np.maximum(alphas[:, None] * k * base[None, :], 1e-3)
        block = np.vstack([rng.dirichlet(c) for c in conc])
        near = np.min([np.linalg.norm(block - c, axis=1) for c in chosen], axis=0)
        cand, dist = np.vstack([cand, block]), np.r_[dist, near]
        i = int(dist.argmax())
        chosen.append(cand[i])
        dist = np.minimum(dist, np.linalg.norm(cand - cand[i], axis=1))
    return with_min_share(np.vstack(chosen), min_share)


def with_centroid(
    job: JobSpec, points: list[tuple[str, dict[str, float]]], task_types: Sequence[str]
) -> list[tuple[str, dict[str, float]]]:
    """`points` plus the uniform mixture when `design.centroid` is set and it is not among them."""
    uniform = {t: 1.0 / len(task_types) for t in task_types}
    keys = {tuple(round(v, KEY_DIGITS) for v in p.values()) for _, p in points}
    if job.design.centroid and tuple(round(v, KEY_DIGITS) for v in uniform.values()) not in keys:
        return [*points, ("centroid", uniform)]
    return points
