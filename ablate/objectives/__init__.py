"""Objectives: what one trial of a job computes, by `objective.kind` (`train` fine-tunes and
benchmarks, `python` calls a user function, `sim` scores a synthetic landscape). A new kind is
one module in `ablate/objectives/kinds/`, a new sim landscape one in
`ablate/objectives/landscapes/`; each registers itself. Only re-exports."""

from ablate.objectives.base import (
    OBJECTIVES,
    KnownMetrics,
    Objective,
    check_objective,
    metric_range,
    objective_of,
    objective_trains,
    prepare_objective,
    run_objective,
)
from ablate.objectives.kinds.python import load_target, run_python_objective
from ablate.objectives.kinds.sim import run_sim_objective
from ablate.objectives.sim_landscape import (
    LANDSCAPES,
    PEAK_VOLUME,
    VOLUME_WIDTH,
    Landscape,
    LandscapeKind,
    landscape,
    landscape_optimum,
    sim_score,
    volume_factor,
)

__all__ = [
    "LANDSCAPES",
    "OBJECTIVES",
    "PEAK_VOLUME",
    "VOLUME_WIDTH",
    "KnownMetrics",
    "Landscape",
    "LandscapeKind",
    "Objective",
    "check_objective",
    "landscape",
    "landscape_optimum",
    "load_target",
    "metric_range",
    "objective_of",
    "objective_trains",
    "prepare_objective",
    "run_objective",
    "run_python_objective",
    "run_sim_objective",
    "sim_score",
    "volume_factor",
]
