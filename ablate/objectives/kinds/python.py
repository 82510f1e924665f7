"""Objective kind `python`: score a mixture with a user function instead of training.

`objective.target: "module:function"` names a function
`(proportions: dict[str, float], volume: int, seed: int) -> float`; it rehearses a sweep (the
scheduling, resume and tracking) in seconds.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable
from typing import Any

from ablate.config import JobSpec
from ablate.errors import UserError
from ablate.mixture import Mixture
from ablate.objectives.base import OBJECTIVES
from ablate.registry import import_failure
from ablate.result import TrialResult


@OBJECTIVES.register("python")
class PythonObjective:
    """Call `objective.target`; the design needs `task_types` (or a `pool`) to know what to mix.
    Its one value is named `objective.metric`, whatever the name (no `metrics` to check)."""

    trains = False

    def check(self, job: JobSpec, source: str) -> None:
        if not job.objective.target or ":" not in job.objective.target:
            raise UserError(
                f"{source}: `objective.target` must be `module:function` for objective.kind python"
            )
        if not job.task_types and job.pool is None:
            raise UserError(
                f"{source}: list `task_types` (or give a `pool`) so the design knows what to mix"
            )

    def prepare(self, job: JobSpec) -> None:
        load_target(job.objective.target)  # a bad target fails here, once, not in every trial

    def run(self, job: JobSpec, mixture: Mixture, cache: dict[Any, Any]) -> TrialResult:
        return run_python_objective(job, mixture)


def load_target(target: str | None) -> Callable[..., Any]:
    """Import `module:function`; a UserError names the target and the import path on failure."""
    if not target or ":" not in target:
        raise UserError(f"objective.target must be `module:function`, got {target!r}")
    module_name, _, func_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:
        raise UserError(
            f"objective.target {target!r}: cannot import module `{module_name}` "
            f"({import_failure(module_name, err)})"
        ) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise UserError(
            f"objective.target {target!r}: module `{module_name}` ({getattr(module, '__file__', '?')}) "
            f"has no function `{func_name}`"
        )
    return func


def run_python_objective(job: JobSpec, mixture: Mixture) -> TrialResult:
    """Call the job's target function on the mixture; the value becomes `objective.metric`."""
    func = load_target(job.objective.target)
    start = time.perf_counter()
    value = func(dict(mixture.proportions), int(mixture.volume), int(mixture.seed))
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{job.objective.target} returned {value!r}, expected a number") from None
    if math.isnan(value):
        raise ValueError(f"{job.objective.target} returned NaN")
    return TrialResult(
        metrics={job.objective.metric: value},
        seconds=time.perf_counter() - start,
        info={"objective": job.objective.target},
    )
