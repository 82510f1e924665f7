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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

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
    types = list(task_types)
    if len(set(types)) != len(types):
        raise UserError(f"task_types has duplicates: {types}")
    points: list[Mixture] = []
    seen: set[str] = set()
    for volume in job.design.volumes:
        for level in job.design.balance:
            props = proportions_for_balance(types, level)
            for seed in job.design.seeds:
                mix = Mixture(
                    name=f"v{volume:g}-b{level:.2f}-s{seed}",
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
