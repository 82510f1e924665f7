"""Objective kind `sim`: score a built-in synthetic landscape (`ablate.objectives.sim_landscape`)
instead of training; it sleeps `duration_s` like the fine-tune it stands for. A trial of a
model of `models:` scores that model's size's landscape (`ablate.objectives.sim_sizes`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from ablate.config import JobSpec, named_model
from ablate.errors import UserError
from ablate.mixture import Mixture
from ablate.objectives.base import OBJECTIVES, KnownMetrics
from ablate.objectives.sim_landscape import LANDSCAPES, sim_score
from ablate.objectives.sim_sizes import sized_sim_score
from ablate.result import TrialResult

#: What a sim trial reports: the landscape's score with its seed noise, and without.
SIM_METRICS = KnownMetrics(("score", "noise_free"))


@OBJECTIVES.register("sim")
class SimObjective:
    """A landscape's score; the design needs `task_types` (or a `pool`) to know what to mix."""

    trains = False

    def metrics(self, job: JobSpec) -> KnownMetrics:
        return SIM_METRICS

    def metric_range(self, job: JobSpec, metric: str) -> tuple[float, float]:
        """A landscape's score is in [0, 1] before its noise: so is its mean over seeds."""
        return (0.0, 1.0) if metric in SIM_METRICS else (-math.inf, math.inf)

    def check(self, job: JobSpec, source: str) -> None:
        if not job.task_types and job.pool is None:
            raise UserError(
                f"{source}: list `task_types` (or give a `pool`) so the design knows what to mix"
            )
        LANDSCAPES.get(job.objective.landscape, source)
        for i, m in enumerate(job.models):
            if m.size is None or not m.size > 0:
                raise UserError(
                    f"{source}: `models[{i}].size` is needed by objective kind sim (the model's "
                    f"parameters, e.g. size: 0.5e9 for a 0.5B model); {m.name!r} has none"
                )

    def prepare(self, job: JobSpec) -> None:
        pass  # nothing to load: the landscape is drawn (and cached) by the first trial

    def run(self, job: JobSpec, mixture: Mixture, cache: dict[Any, Any]) -> TrialResult:
        return run_sim_objective(job, mixture, cache.get("report"))


def run_sim_objective(
    job: JobSpec,
    mixture: Mixture,
    report: Callable[[int, float], None] | None = None,
) -> TrialResult:
    """Sleep `duration_s`, then return the landscape's score as `score` (and without its seed
    noise as `noise_free`).

    With `report_steps` n > 0 the sleep is cut into n steps and `report(step, value)` gets a
    learning curve value(t) = score * (1 - exp(-4 t / n)) / (1 - exp(-4)) after each (for pruning).
    """
    obj = job.objective
    start = time.perf_counter()
    props = {t: float(p) for t, p in dict(mixture.proportions).items()}
    types = list(job.task_types) or sorted(props)
    if mixture.model:  # a model of `models:`: its size picks its landscape (sim_sizes)
        size = named_model(job, mixture.model).size
        value, clean = sized_sim_score(
            obj.landscape,
            props,
            types,
            mixture.volume,
            mixture.seed,
            obj.landscape_seed,
            obj.noise,
            sizes=[float(m.size or 0.0) for m in job.models],
            size=float(size or 0.0),
            rank_correlation=obj.rank_correlation,
        )
    else:
        value, clean = sim_score(
            obj.landscape, props, types, mixture.volume, mixture.seed, obj.landscape_seed, obj.noise
        )
    steps = max(0, obj.report_steps)
    if steps:
        norm = 1.0 - math.exp(-4.0)
        for step in range(1, steps + 1):
            time.sleep(obj.duration_s / steps)
            if report is not None:
                report(step, value * (1.0 - math.exp(-4.0 * step / steps)) / norm)
    elif obj.duration_s > 0:
        time.sleep(obj.duration_s)
    return TrialResult(
        metrics={"score": value, "noise_free": clean},
        seconds=time.perf_counter() - start,
        info={"landscape": obj.landscape, "landscape_seed": obj.landscape_seed},
    )
