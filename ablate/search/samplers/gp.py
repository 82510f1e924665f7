"""`gp`: Optuna's GPSampler on the stick-breaking coordinates (`OwnParamsOnly`: not on
the shares written for optuna-dashboard)."""

from __future__ import annotations

from typing import Any

from ablate.config import JobSpec
from ablate.search.own_params import OwnParamsOnly
from ablate.search.sampling import SAMPLERS


@SAMPLERS.register("gp")
def gp_sampler(job: JobSpec, seed: int) -> Any:
    import optuna

    startup = job.design.n_startup
    return OwnParamsOnly(
        optuna.samplers.GPSampler(seed=seed, n_startup_trials=10 if startup is None else startup),
        job,
    )
