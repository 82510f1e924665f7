"""A job's models: `model:` (one) or `models:` (a named list), and the one-model job a trial of
a named model runs as.

    model_names(job)        the names of `models:` ([] for a one-model job)
    named_model(job, name)  the `models:` entry called `name` (UserError naming the choices)
    model_job(job, name)    the job as that model's trials see it: `model` is the named model,
                            `train` has its overrides, `resources` its GPUs and CPUs per trial
                            (`models` stays, so kind `sim` knows every size); "" -> the job itself
"""

from __future__ import annotations

import dataclasses

from ablate.config.job import JobSpec, ModelSpec, NamedModel, TrainSpec
from ablate.config.loader import build, to_dict
from ablate.errors import UserError


def model_names(job: JobSpec) -> list[str]:
    return [m.name for m in job.models]


def named_model(job: JobSpec, name: str) -> NamedModel:
    for m in job.models:
        if m.name == name:
            return m
    known = ", ".join(model_names(job)) or "none: the job has one `model:`"
    raise UserError(f"{job.source or 'job'}: no model named {name!r} in `models` (known: {known})")


def model_job(job: JobSpec, name: str) -> JobSpec:
    """The job a trial of model `name` runs with (see the module doc)."""
    if not name:
        return job
    m = named_model(job, name)
    spec = ModelSpec(**{f.name: getattr(m, f.name) for f in dataclasses.fields(ModelSpec)})
    train = build(TrainSpec, {**to_dict(job.train), **m.train}, job.source or "job")
    res = job.resources
    resources = dataclasses.replace(
        res,
        gpus_per_trial=res.gpus_per_trial if m.gpus_per_trial is None else m.gpus_per_trial,
        cpus_per_trial=res.cpus_per_trial if m.cpus_per_trial is None else m.cpus_per_trial,
    )
    return dataclasses.replace(job, model=spec, train=train, resources=resources)
