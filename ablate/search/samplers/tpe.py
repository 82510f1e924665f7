"""`tpe`: Optuna's TPESampler (independent), 10 start-up trials unless `n_startup` says, with
`constant_liar` (Optuna's recipe for parallel workers: trials in flight count as bad results, so
concurrent trials spread out; no effect with one trial in flight)."""

from __future__ import annotations

from typing import Any

from ablate.config import JobSpec
from ablate.search.sampling import SAMPLERS


@SAMPLERS.register("tpe")
def tpe_sampler(job: JobSpec, seed: int) -> Any:
    import optuna

    startup = job.design.n_startup
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=10 if startup is None else startup,
        multivariate=False,
        constant_liar=True,
    )
