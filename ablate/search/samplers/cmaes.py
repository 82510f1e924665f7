"""`cmaes`: Optuna's CmaEsSampler (single objective, no `max_share` constraints)."""

from __future__ import annotations

from typing import Any

from ablate.config import JobSpec
from ablate.errors import UserError
from ablate.search.own_params import OwnParamsOnly
from ablate.search.sampling import SAMPLERS


@SAMPLERS.register("cmaes")
def cmaes_sampler(job: JobSpec, seed: int) -> Any:
    import optuna

    d = job.design
    if d.multi_objective != "none" or d.max_share:
        raise UserError(
            "design.sampler cmaes supports neither `multi_objective` nor `max_share`; "
            "use sampler default, gp or tpe"
        )
    return OwnParamsOnly(
        optuna.samplers.CmaEsSampler(
            seed=seed,
            n_startup_trials=1 if d.n_startup is None else d.n_startup,
            warn_independent_sampling=False,
        ),
        job,
    )
