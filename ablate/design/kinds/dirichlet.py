"""`dirichlet`: a space-filling cover of `n_trials` mixtures around a prior (the pool's natural
proportions raised to `prior_temperature`, as RegMix does): candidates from Dirichlet(a * k *
prior) with a log-spaced from 0.1 to 5, greedy max-min selection of `n_trials` of them (the
prior first; each point among blocks of candidates drawn so far, so more `n_trials` extend
the design, `points.dirichlet_cover`); every share at least `min_share` (p = m + (1 - k m) q maps
the simplex onto it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ablate.config import JobSpec
from ablate.design.points import (
    as_props,
    check_types,
    cross_volumes_and_seeds,
    design_rng,
    dirichlet_cover,
    prior_proportions,
)
from ablate.design.registry import DESIGNS
from ablate.mixture import Mixture


@DESIGNS.register("dirichlet")
def dirichlet_design(job: JobSpec, task_types: Sequence[str]) -> list[Mixture]:
    types = check_types(task_types)
    prior = np.array(list(prior_proportions(job, types).values()))
    draws = dirichlet_cover(
        prior, job.design.n_trials, design_rng(job, "dirichlet"), job.design.min_share
    )
    return cross_volumes_and_seeds(
        job, [(f"diri{i}", as_props(types, p)) for i, p in enumerate(draws)]
    )
