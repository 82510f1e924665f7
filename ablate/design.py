"""Fixed designs: which mixtures a sweep runs. Pure functions, no Ray, MLflow or Optuna.

Grid design (`design.kind: grid`): every combination of `volumes` x `balance` x `seeds`.

A balance level b is the normalised entropy H(p) / log(k) of the proportions over the k task
types (0 = one task type only, 1 = uniform). Many proportion vectors share one entropy; the
grid uses the family "one dominant type, the rest equal":

    p_dom = x,  p_other = (1 - x) / (k - 1),  x in [1/k, 1]

whose entropy falls monotonically from log(k) at x = 1/k to 0 at x = 1, so bisection finds
the unique x for each level. The dominant type is always the FIRST of `task_types`: every
unbalanced point of the grid is skewed towards the same type, so "score versus balance" is one
clean axis (rotating the dominant type would mix the balance effect with which type is
favoured). List the type you want to skew towards first.

Example, k = 2: b = 1.0 -> (0.5, 0.5); b = 0.5 -> (0.89, 0.11); b = 0.0 -> (1.0, 0.0).
With `design.concentration: [a1, a2, ...]` instead, each level is one draw from the symmetric
Dirichlet(a) (small a = skewed, large a = near uniform), shared by every volume and seed.

The other fixed designs cross a set of proportions with `volumes` x `seeds` (seed replicates of
any design):

- `lattice`: the simplex lattice {0, 1/m, ..., 1}^k summing to 1 (m = `divisions`; k = 3,
  m = 2 gives the 3 corners and 3 edge midpoints), plus the centroid (uniform mixture);
- `corners`: one task type alone, each (plus the centroid);
- `leave_one_out`: uniform over every type but one, each (plus the centroid);
- `dirichlet`: a space-filling cover around a prior (the pool's natural proportions raised to
  `prior_temperature`, as RegMix does): 200 x `n_trials` candidates from Dirichlet(a * k * prior)
  with a log-spaced from 0.1 to 5, then greedy max-min selection of `n_trials` of them (the
  prior first); every share at least `min_share` (p = m + (1 - k m) q maps the simplex onto it);
- `random`: `n_trials` draws from Dirichlet(a * k * prior), a = `concentration[0]` (default 1:
  flat when the prior is uniform), with the same `min_share` map.

Everything random is drawn from the job's `seed`: the same job gives the same design anywhere.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ablate.errors import UserError
from ablate.mixture import Mixture, normalized_entropy

if TYPE_CHECKING:
    from ablate.config import JobSpec

#: Proportions are rounded to this many digits in a design key (1e-9 apart = the same point).
KEY_DIGITS = 9


def _normalized_entropy(proportions: Sequence[float]) -> float:
    """H(p) / log(k) in [0, 1] of a share vector (1.0 for k = 1), as `mixture.normalized_entropy`."""
    return normalized_entropy({str(i): float(p) for i, p in enumerate(proportions)})


def balance_of(proportions: Mapping[str, float]) -> float:
    """Normalised entropy of a proportions mapping (the `balance` user attribute of a trial)."""
    return normalized_entropy(proportions)


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
        return _normalized_entropy([x] + [rest] * (k - 1))

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
    """A stable identity of a design point: proportions (rounded), volume and seed.

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
    return f"v={mixture.volume:g}|s={mixture.seed}|{body}"


def grid_design(job: JobSpec, task_types: Sequence[str]) -> list[Mixture]:
    """The volume x balance x seed grid of `job.design`, in that nesting order.

    Points that coincide (e.g. every balance level when there is one task type) appear once.
    """
    if job.design.kind != "grid":
        raise UserError(f"design.kind {job.design.kind!r} is not a fixed grid design")
    types = _check_types(task_types)
    d = job.design
    if d.concentration:
        rng = _rng(job, "grid")
        levels = [
            (f"a{a:g}", _as_props(types, rng.dirichlet(np.full(len(types), float(a)))))
            for a in d.concentration
        ]
    else:
        levels = [(f"b{b:.2f}", proportions_for_balance(types, b)) for b in d.balance]
    return cross_volumes_and_seeds(job, levels)


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


def _check_types(task_types: Sequence[str]) -> list[str]:
    types = list(task_types)
    if not types:
        raise UserError("a design needs at least one task type (set `task_types` in the job)")
    if len(set(types)) != len(types):
        raise UserError(f"task_types has duplicates: {types}")
    return types


def _rng(job: JobSpec, what: str) -> np.random.Generator:
    """The design's random stream: the job's seed and the design kind, nothing global."""
    return np.random.default_rng([int(job.seed) & 0xFFFFFFFF, zlib.crc32(what.encode())])


def _as_props(types: Sequence[str], p: Sequence[float] | np.ndarray) -> dict[str, float]:
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
    types = _check_types(task_types)
    prior = job.design.prior
    if isinstance(prior, Mapping):
        missing = [t for t in types if t not in prior]
        if missing or any(not float(v) >= 0 for v in prior.values()) or sum(prior.values()) <= 0:
            raise UserError(
                f"{job.source or 'job'}: `design.prior` must give a non-negative share to every "
                f"task type ({', '.join(types)}); missing: {', '.join(missing) or 'none'}"
            )
        return _as_props(types, [float(prior[t]) for t in types])
    if prior == "natural" and job.pool_dir is not None:
        from ablate.pool import open_pool

        counts = open_pool(job.pool_dir).manifest.labels.get(job.taxonomy, {})
        weights = [float(counts.get(t, 0)) ** job.design.prior_temperature for t in types]
        if sum(weights) > 0:
            return _as_props(types, weights)
    return {t: 1.0 / len(types) for t in types}


def dirichlet_cover(
    prior: Sequence[float] | np.ndarray, n: int, rng: np.random.Generator, min_share: float = 0.0
) -> np.ndarray:
    """n space-filling mixtures around `prior`: greedy max-min over Dirichlet candidates.

    Candidates: Dirichlet(a * k * prior) with a log-spaced in [0.1, 5] (RegMix's range), 200 per
    point wanted; the prior itself is the first point, each next one the candidate farthest (L2)
    from every point chosen so far.
    """
    base = np.asarray(prior, dtype=float)
    k = base.size
    alphas = np.exp(rng.uniform(np.log(0.1), np.log(5.0), size=200 * n))
    conc = np.maximum(alphas[:, None] * k * base[None, :], 1e-3)
    cand = np.vstack([rng.dirichlet(c) for c in conc])
    chosen = [base]
    dist = np.linalg.norm(cand - base, axis=1)
    while len(chosen) < n:
        i = int(dist.argmax())
        chosen.append(cand[i])
        dist = np.minimum(dist, np.linalg.norm(cand - cand[i], axis=1))
    return with_min_share(np.vstack(chosen), min_share)


def proportion_points(
    job: JobSpec, task_types: Sequence[str], kind: str | None = None
) -> list[tuple[str, dict[str, float]]]:
    """The (label, proportions) of a fixed design kind other than grid, before volumes x seeds."""
    types = _check_types(task_types)
    d = job.design
    kind = kind or d.kind
    k = len(types)
    uniform = {t: 1.0 / k for t in types}
    if kind == "lattice":
        pts = [
            (f"lat{i}", _as_props(types, p)) for i, p in enumerate(lattice_points(k, d.divisions))
        ]
    elif kind == "corners":
        pts = [(f"only-{t}", {u: float(u == t) for u in types}) for t in types]
    elif kind == "leave_one_out":
        if k < 2:
            raise UserError("design.kind leave_one_out needs at least two task types")
        pts = [
            (f"without-{t}", {u: (0.0 if u == t else 1.0 / (k - 1)) for u in types}) for t in types
        ]
    elif kind in ("dirichlet", "random"):
        prior = np.array(list(prior_proportions(job, types).values()))
        rng = _rng(job, kind)
        if kind == "dirichlet":
            draws = dirichlet_cover(prior, d.n_trials, rng, d.min_share)
        else:
            a = float(d.concentration[0]) if d.concentration else 1.0
            draws = with_min_share(
                rng.dirichlet(np.maximum(a * k * prior, 1e-3), size=d.n_trials), d.min_share
            )
        return [(f"{kind[:4]}{i}", _as_props(types, p)) for i, p in enumerate(draws)]
    elif kind == "centroid":
        return [("centroid", uniform)]
    else:
        raise UserError(f"design.kind {kind!r} is not a fixed design")
    if d.centroid and kind in ("lattice", "corners", "leave_one_out"):
        keys = {tuple(round(v, KEY_DIGITS) for v in p.values()) for _, p in pts}
        if tuple(round(v, KEY_DIGITS) for v in uniform.values()) not in keys:
            pts.append(("centroid", uniform))
    return pts


def fixed_design(job: JobSpec, task_types: Sequence[str], kind: str | None = None) -> list[Mixture]:
    """Any fixed design kind crossed with `volumes` x `seeds` (seed replicates innermost)."""
    kind = kind or job.design.kind
    if kind == "grid":
        return (
            grid_design(job, task_types)
            if job.design.kind == "grid"
            else grid_design(_as_grid(job), task_types)
        )
    return cross_volumes_and_seeds(job, proportion_points(job, task_types, kind))


def _as_grid(job: JobSpec) -> JobSpec:
    import dataclasses

    return dataclasses.replace(job, design=dataclasses.replace(job.design, kind="grid"))


def design_mixtures(job: JobSpec, task_types: Sequence[str]) -> list[Mixture]:
    """The mixtures a job enqueues up front: its fixed design, or a search's warm start."""
    d = job.design
    if d.kind == "search":
        if d.warm_start == "none":
            return []
        warm = fixed_design(job, task_types, d.warm_start)
        # a search runs one seed per trial: warm-start points use the first seed only
        return [m for m in warm if m.seed == d.seeds[0]]
    return fixed_design(job, task_types)
