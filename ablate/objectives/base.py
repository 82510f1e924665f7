"""The `Objective` protocol, the registry of objective kinds, and the three calls the rest of
ablate makes: `check_objective` (validate a job for its kind), `prepare_objective` (once per
sweep, in the driver) and `run_objective` (one trial, in a worker).

An objective kind is one module in `ablate/objectives/kinds/` whose class, decorated with
`@OBJECTIVES.register("<kind>")`, checks a job, prepares a sweep and runs one trial of it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, Protocol

from ablate.config import JobSpec, model_job
from ablate.mixture import Mixture
from ablate.registry import Registry
from ablate.result import TrialResult


class Objective(Protocol):
    """What one objective kind does (`objective.kind` in a job)."""

    def check(self, job: JobSpec, source: str) -> None:
        """Kind-specific checks of the job: a UserError naming `source` and the key."""

    def prepare(self, job: JobSpec) -> None:
        """Once per sweep, in the driver, before any trial: fail fast on what every trial would
        fail on (a `python` target that does not import)."""

    def run(self, job: JobSpec, mixture: Mixture, cache: dict[Any, Any]) -> TrialResult:
        """One trial of `mixture`; `cache` lives as long as the worker (`cache["report"]`, if
        set, takes intermediate values `report(step, value)` for pruning)."""


OBJECTIVES: Registry[Callable[[], Objective]] = Registry(
    "objective kind", "objective.kind", package="ablate.objectives.kinds"
)
"""Objective kind -> class; the built-ins are `train`, `python` and `sim`."""


def objective_of(job: JobSpec, source: str = "") -> Objective:
    """The job's objective kind; a did-you-mean UserError for an unknown one."""
    return OBJECTIVES.get(job.objective.kind, source or job.source or "job")()


def check_objective(job: JobSpec, source: str) -> None:
    """The checks of the job's objective kind (a train job needs a pool and a bench, ...)."""
    objective_of(job, source).check(job, source)


def prepare_objective(job: JobSpec) -> None:
    """What the job's kind does once per sweep before any trial (the driver calls it)."""
    objective_of(job).prepare(job)


def run_objective(
    job: JobSpec, mixture: Mixture, cache: dict[Any, Any] | None = None
) -> TrialResult:
    """Run one trial of the job's objective kind: `train` fine-tunes, `python` calls the target,
    `sim` scores a built-in landscape (`cache["report"]`, if set, gets its intermediate values).
    `seconds` is the wall time of the call when the kind leaves it 0. A job with `models:` runs
    the mixture's model (the first when the mixture names none, e.g. `ablate trial --mixture`)
    as that model's one-model job (its model, train and resources: `model_job`)."""
    if job.models and not mixture.model:
        mixture = dataclasses.replace(mixture, model=job.models[0].name)
    job = model_job(job, mixture.model)
    start = time.perf_counter()
    result = objective_of(job).run(job, mixture, {} if cache is None else cache)
    result.seconds = result.seconds or (time.perf_counter() - start)
    return result
