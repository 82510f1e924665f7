"""`random`: `n_trials` draws from Dirichlet(a * k * prior), a = `concentration[0]` (default 1:
flat when the prior is uniform), every share at least `min_share`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ablate.config import JobSpec
from ablate.design.points import (
    as_props,
    check_types,
    cross_volumes_and_seeds,
    design_rng,
    prior_proportions,
    with_min_share,
)
from ablate.design.registry import DESIGNS
from ablate.mixture import Mixture


@DESIGNS.register("random")
def random_design(job: JobSpec, task_types: Sequence[str]) -> list[Mixture]:
    types = check_types(task_types)
    d = job.design
    prior = np.array(list(prior_proportions(job, types).values()))
    a = float(d.concentration[0]) if d.concentration else 1.0
    rng = design_rng(job, "random")
    draws = with_min_share(
        rng.dirichlet(np.maximum(a * len(types) * prior, 1e-3), size=d.n_trials), d.min_share
    )
    return cross_volumes_and_seeds(
        job, [(f"rand{i}", as_props(types, p)) for i, p in enumerate(draws)]
    )
