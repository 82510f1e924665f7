"""`random`: Optuna's RandomSampler (uniform on the cube = uniform on the simplex)."""

from __future__ import annotations

from typing import Any

from ablate.config import JobSpec
from ablate.search.sampling import SAMPLERS, refuse_caps


@SAMPLERS.register("random")
def random_sampler(job: JobSpec, seed: int) -> Any:
    import optuna

    refuse_caps(job, "random")
    return optuna.samplers.RandomSampler(seed=seed)
