"""The `Objective` protocol, the registry of objective kinds, and the calls the rest of ablate
makes: `check_objective` (validate a job for its kind, its `objective.metric` included),
`prepare_objective` (once per sweep, in the driver), `run_objective` (one trial, in a worker)
and `objective_trains` (whether the kind's trials train the job's model).

An objective kind is one module in `ablate/objectives/kinds/` whose class, decorated with
`@OBJECTIVES.register("<kind>")`, checks a job, prepares a sweep and runs one trial of it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ablate.config import JobSpec, model_job
from ablate.errors import UserError, did_you_mean
from ablate.mixture import Mixture
from ablate.registry import Registry
from ablate.result import TrialResult


@dataclass(frozen=True)
class KnownMetrics:
    """The metrics a kind's trials return, known before any trial runs: these `names`, and
    names that start with one of `prefixes` (data-dependent ones, such as `accuracy/<domain>`)."""

    names: tuple[str, ...]
    prefixes: tuple[str, ...] = ()

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self.names or name.startswith(self.prefixes))

    def listed(self) -> str:
        return ", ".join([*self.names, *(f"{p}..." for p in self.prefixes)])


class Objective(Protocol):
    """What one objective kind does (`objective.kind` in a job).

    Optional (a kind without them counts as one that trains and whose metrics are unknown):
    `trains: bool`, whether its trials fine-tune the job's model (its `model`, `lora`, `train`
    and `bench` are then part of the study's settings), `metrics(job) -> KnownMetrics |
    None`, the metrics its trials return, when known before they run (`objective.metric` is
    then checked against them), and `metric_range(job, metric) -> (low, high)`, the values a
    metric's mean can take (a surrogate's prediction is kept inside them).
    """

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
    """The checks of the job's objective kind (a train job needs a pool and a bench, ...), and
    `objective.metric` against the metrics the kind's trials return, where it knows them."""
    kind = objective_of(job, source)
    kind.check(job, source)
    metrics = getattr(kind, "metrics", None)
    known = metrics(job) if metrics is not None else None
    metric = job.objective.metric
    if known is None or metric in known:
        return
    hint = did_you_mean(metric, [*known.names, *known.prefixes])
    raise UserError(
        f"{source}: `objective.metric` {metric!r} is not a metric of objective kind "
        f"{job.objective.kind}{hint}; its trials report {known.listed()}"
    )


def metric_range(job: JobSpec, metric: str) -> tuple[float, float]:
    """The values `metric` (its mean over seeds) can take, as the job's objective kind knows
    them: an accuracy in [0, 1], a loss from 0; (-inf, inf) when the kind does not say."""
    ranges = getattr(objective_of(job), "metric_range", None)
    return ranges(job, metric) if ranges is not None else (-math.inf, math.inf)


def objective_trains(job: JobSpec) -> bool:
    """Whether the job's trials fine-tune its model (kind `train`; not `sim` or `python`)."""
    return bool(getattr(objective_of(job), "trains", True))


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
