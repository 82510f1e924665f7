"""`gp`: Optuna's GPSampler on the stick-breaking coordinates."""

from __future__ import annotations

from typing import Any

from ablate.config import JobSpec
from ablate.search.sampling import SAMPLERS


@SAMPLERS.register("gp")
def gp_sampler(job: JobSpec, seed: int) -> Any:
    import optuna

    startup = job.design.n_startup
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=10 if startup is None else startup)
