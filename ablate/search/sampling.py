"""The sampler registry, the pruner and the default strategy's warm start.

`design.sampler` names a file of `ablate/search/samplers/`: a function `(job, seed) -> an Optuna
sampler` decorated with `@SAMPLERS.register("name")`. Optuna is imported inside those functions
(a trial on a GPU machine never needs it).

Restarts: a sampler is built once per driver run with the seed `job.seed * 1,000,003 +
(trials in the study)`, so a restarted driver with a fixed `seed` does not replay the start-up
points of its previous run; QMC keeps its own position in the study (no replay either).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ablate.config import JobSpec
from ablate.design import SEARCH, with_min_share
from ablate.errors import UserError
from ablate.mixture import Mixture
from ablate.registry import Registry
from ablate.search.space import CAP_TOL

SamplerFn = Callable[[JobSpec, int], Any]
SAMPLERS: Registry[SamplerFn] = Registry(
    "sampler", "design.sampler", package="ablate.search.samplers"
)


def make_sampler(job: JobSpec, n_existing: int) -> Any:
    """The job's sampler, seeded from the job seed and the number of trials already in the study."""
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    seed = (int(job.seed) * 1_000_003 + int(n_existing)) % (2**32)
    return SAMPLERS.get(job.design.sampler, job.source)(job, seed)


def make_pruner(job: JobSpec) -> Any:
    import optuna

    if job.design.kind == SEARCH and job.design.prune:
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def default_warm_start(job: JobSpec, task_types: Sequence[str]) -> list[Mixture]:
    """What the default strategy enqueues before searching: the uniform mixture (or the feasible
    mixture nearest to it), at the geometric middle of the volume range when it is searched."""
    d = job.design
    if d.kind != SEARCH or d.sampler != "default":
        return []
    volume = round(math.sqrt(min(d.volumes) * max(d.volumes))) if d.search_volume else d.volumes[0]
    return [
        Mixture(
            name=f"centroid-v{volume:g}",
            volume=volume,
            proportions=feasible_centre(task_types, d.max_share),
            taxonomy=job.taxonomy,
            seed=d.seeds[0],
        )
    ]


def feasible_centre(task_types: Sequence[str], max_share: dict[str, float]) -> dict[str, float]:
    """The uniform mixture, or, when `max_share` cuts it off, the feasible mixture nearest to it
    (capped types at their cap, the rest shared evenly by the others: water-filling)."""
    p = dict.fromkeys(task_types, 1.0 / len(task_types))
    free = set(task_types)
    while True:
        over = [t for t in free if t in max_share and p[t] > max_share[t] + CAP_TOL]
        if not over:
            return p
        for t in over:
            p[t] = max_share[t]
            free.discard(t)
        if not free:
            return p  # caps sum to < 1: infeasible; `ablate.plan` refuses such a job
        rest = (1.0 - sum(p[t] for t in task_types if t not in free)) / len(free)
        for t in free:
            p[t] = rest


def project_warm_start(job: JobSpec, points: Sequence[Mixture]) -> tuple[list[Mixture], int]:
    """A search's warm-start points on its constraints, and how many broke a cap: a point with
    a share below `min_share` is mapped as the search maps its own (p = m + (1 - k m) p, so a
    corner keeps every type at the floor); a point that then exceeds a `max_share` cap is
    dropped (clipped and renormalised, a corner would be the same corner again)."""
    d = job.design
    kept: list[Mixture] = []
    for m in points:
        props = {str(t): float(x) for t, x in dict(m.proportions).items()}
        if d.min_share and min(props.values()) < d.min_share - CAP_TOL:
            raised = with_min_share(np.array(list(props.values())), d.min_share)
            props = dict(zip(props, map(float, raised), strict=True))
            m = replace(m, proportions=props)
        if all(props.get(t, 0.0) <= cap + CAP_TOL for t, cap in d.max_share.items()):
            kept.append(m)
    return kept, len(points) - len(kept)


def refuse_caps(job: JobSpec, sampler: str) -> None:
    """A sampler that draws from the whole simplex (random, qmc) never learns `max_share`: every
    trial it asks over a cap would be trained, and reported as the best tried."""
    if job.design.max_share:
        raise UserError(
            f"{job.source or 'job'}: design.sampler {sampler} does not keep `design.max_share` "
            "caps (it draws from the whole simplex, and a trial over a cap would still be "
            "trained); use sampler default, which keeps them by construction, or tpe / gp, "
            "which learn them as constraints"
        )
