"""`qmc`: Optuna's scrambled Sobol QMCSampler."""

from __future__ import annotations

from typing import Any

from ablate.config import JobSpec
from ablate.search.own_params import OwnParamsOnly
from ablate.search.sampling import SAMPLERS, refuse_caps


@SAMPLERS.register("qmc")
def qmc_sampler(job: JobSpec, seed: int) -> Any:
    import optuna

    refuse_caps(job, "qmc")
    # QMC keeps its index in the study, so the fixed scramble seed never replays points
    return OwnParamsOnly(optuna.samplers.QMCSampler(scramble=True, seed=int(job.seed)), job)
