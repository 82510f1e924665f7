"""`default`: the centroid (enqueued by the driver) + maximin points, then a GP on sqrt(shares)
(`ablate.search.mixture_sampler`); multi-objective studies use Optuna's GP after the same start."""

from __future__ import annotations

from typing import Any

from ablate.config import JobSpec
from ablate.search.mixture_sampler import DEFAULT_STARTUP, MixtureSampler
from ablate.search.own_params import OwnParamsOnly
from ablate.search.sampling import SAMPLERS


@SAMPLERS.register("default")
def default_sampler(job: JobSpec, seed: int) -> Any:
    import optuna

    if job.design.multi_objective == "none":
        return MixtureSampler(job, seed=seed)
    # multi-objective: Optuna's GP (it models every objective) after the same start-up size
    return OwnParamsOnly(
        optuna.samplers.GPSampler(
            seed=seed,
            n_startup_trials=DEFAULT_STARTUP
            if job.design.n_startup is None
            else job.design.n_startup,
            independent_sampler=optuna.samplers.QMCSampler(
                scramble=True, seed=int(job.seed), warn_independent_sampling=False
            ),
            warn_independent_sampling=False,
        ),
        job,
    )
