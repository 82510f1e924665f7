"""`OwnParamsOnly`: an Optuna sampler that models only the search's own coordinates.

Every search trial also carries the mixture it trained as parameters (`share:<type>`, and
`volume` when the volume is not searched), written by the driver so that optuna-dashboard's
importance, slice and parallel-coordinate views show shares rather than stick coordinates.
Optuna's relative samplers (GP, CMA-ES, QMC) infer their search space from the trials' params
and would then model those extra dimensions too (and shift QMC's sequence); this wrapper gives
them the search's own space (`searched_only`), so their proposals stay those of a study without
the dashboard's parameters (tested). Independent samplers (TPE as configured, random) and the
default `MixtureSampler` only ever read the parameters they suggest, and need no wrapper.
"""

from __future__ import annotations

from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from ablate.config import JobSpec
from ablate.search.space import searched_only


class OwnParamsOnly(BaseSampler):
    """`inner`, with the dashboard's parameters left out of its relative search space."""

    def __init__(self, inner: BaseSampler, job: JobSpec) -> None:
        self.inner = inner
        self._job = job

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return searched_only(self._job, self.inner.infer_relative_search_space(study, trial))

    # the rest passes through (the arguments are Optuna's, whatever its version names them)
    def sample_relative(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.inner.sample_relative(*args, **kwargs)

    def sample_independent(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.sample_independent(*args, **kwargs)

    def before_trial(self, *args: Any, **kwargs: Any) -> None:
        self.inner.before_trial(*args, **kwargs)

    def after_trial(self, *args: Any, **kwargs: Any) -> None:
        self.inner.after_trial(*args, **kwargs)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
