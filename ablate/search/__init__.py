"""Optuna search over mixtures. Only re-exports: the simplex parameterisation and objective values
(`space`), the sampler registry, pruner and warm start (`sampling`), samplers (`samplers/`), the
default strategy (`mixture_sampler`)."""

from ablate.search.sampling import (
    SAMPLERS,
    default_warm_start,
    feasible_centre,
    make_pruner,
    make_sampler,
    project_warm_start,
)
from ablate.search.space import (
    CAP_TOL,
    SHARE_PARAM,
    VOLUME_PARAM,
    cube_params,
    directions,
    feasible,
    objective_values,
    param_names,
    suggest,
    to_cube,
    to_simplex,
)

__all__ = [
    "CAP_TOL",
    "SAMPLERS",
    "SHARE_PARAM",
    "VOLUME_PARAM",
    "cube_params",
    "default_warm_start",
    "directions",
    "feasible",
    "feasible_centre",
    "make_pruner",
    "make_sampler",
    "objective_values",
    "param_names",
    "project_warm_start",
    "suggest",
    "to_cube",
    "to_simplex",
]
