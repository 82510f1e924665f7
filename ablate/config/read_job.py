"""Reading a job file (`read_job`) and the checks of its shape: keys' ranges and their
consistency (`check_job_shape`), each message naming the file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ablate.config.job import DesignSpec, JobSpec, ModelSpec, TrainSpec
from ablate.config.loader import blame_overrides, build, read_yaml, to_dict
from ablate.config.paths import check_store_urls, sqlite_path
from ablate.config.seeds import check_seeds
from ablate.errors import UserError


def read_job(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> JobSpec:
    """Read a job file and check its shape (keys, types, ranges).

    The kinds it names (design, sampler, objective, landscape) are checked against their
    registries by `ablate.plan.load_job`, which is what commands call.
    """
    data = read_yaml(path, overrides)
    try:
        return _job_of(data, path, overrides)
    except UserError as err:
        raise blame_overrides(err, path, overrides) from None


def _job_of(data: dict, path: str | Path, overrides: list[str] | tuple[str, ...]) -> JobSpec:
    if data.get("models") and data.get("model") not in (None, {}, to_dict(ModelSpec())):
        # (a job written back by `to_dict` carries the default `model:` beside `models:`)
        raise UserError(
            f"{path}: the job names both `model` (one model) and `models` (a list); keep one: "
            "`models` for a study across models (move `model`'s keys into a named entry), or "
            "`model` alone for a one-model study"
        )
    job = build(JobSpec, data, path)
    job = dataclasses.replace(job, source=str(Path(path).resolve()), overrides=tuple(overrides))
    check_job_shape(job, str(path))
    return job


def check_job_shape(job: JobSpec, src: str) -> None:
    """Ranges and consistency of the job's keys; `src` names the file in every message."""
    if not job.study.strip():
        raise UserError(f"{src}: `study` must be a non-empty name")
    check_store_urls(job.storage, job.tracking, src)
    _check_stores_apart(job, src)
    seeds = {"seed": [job.seed], "design.seeds": job.design.seeds}
    check_seeds({**seeds, "objective.landscape_seed": [job.objective.landscape_seed]}, src)
    _check_design_points(job.design, src)
    _check_design_shares(job, src)
    _check_run(job, src)
    _check_models(job, src)


def _check_stores_apart(job: JobSpec, src: str) -> None:
    """`storage` and `tracking` naming one SQLite file (a copy-paste slip) are refused here:
    MLflow then failed on Optuna's tables with a traceback ("Can't locate revision")."""
    tracking = sqlite_path(job.tracking_uri)
    storage = sqlite_path(job.storage_url) or (
        None if "://" in job.storage_url else Path(job.storage_url)
    )
    if tracking is not None and storage is not None and tracking.resolve() == storage.resolve():
        raise UserError(
            f"{src}: `storage` and `tracking` name the same file {tracking}; give each its own "
            "(e.g. storage: sqlite:///optuna.db, tracking: sqlite:///mlflow.db)"
        )


def _check_design_points(d: DesignSpec, src: str) -> None:
    for i, v in enumerate(d.volumes):
        if v <= 0:
            raise UserError(
                f"{src}: `design.volumes[{i}]` must be a positive number of rows, got {v}"
            )
    for i, b in enumerate(d.balance):
        if not 0.0 <= b <= 1.0:
            raise UserError(
                f"{src}: `design.balance[{i}]` must lie in 0..1 (normalised entropy), got {b}"
            )
    if not d.volumes or not d.balance or not d.seeds:
        raise UserError(
            f"{src}: `design.volumes`, `design.balance` and `design.seeds` need at least one value"
        )
    for key, values in (("volumes", d.volumes), ("balance", d.balance), ("seeds", d.seeds)):
        twice = sorted({v for v in values if list(values).count(v) > 1})
        if twice:  # the design would run it once, while `ablate plan` counted it twice
            raise UserError(
                f"{src}: `design.{key}` lists {', '.join(map(str, twice))} more than once; "
                f"each value is one level of the design: list it once"
            )
    for key, value in (
        ("design.n_trials", d.n_trials),
        ("design.divisions", d.divisions),
        ("design.prior_temperature", d.prior_temperature),
    ):
        if not value > 0:
            raise UserError(f"{src}: `{key}` must be positive, got {value}")
    for i, c in enumerate(d.concentration):
        if not c > 0:
            raise UserError(f"{src}: `design.concentration[{i}]` must be positive, got {c}")


def _check_design_shares(job: JobSpec, src: str) -> None:
    d = job.design  # against the k task types: `ablate.plan.check_share_bounds`
    if not 0 <= d.min_share < 1:
        raise UserError(f"{src}: `design.min_share` is a share in [0, 1/k), got {d.min_share}")
    for t, m in d.max_share.items():
        if not 0 < m <= 1:
            raise UserError(f"{src}: `design.max_share.{t}` must lie in (0, 1], got {m}")
    if isinstance(d.prior, str) and d.prior not in ("natural", "uniform"):
        raise UserError(
            f"{src}: `design.prior` must be natural, uniform or a mapping of task type -> share, got {d.prior!r}"
        )
    if d.search_volume and (len(d.volumes) < 2 or min(d.volumes) == max(d.volumes)):
        raise UserError(
            f"{src}: `design.search_volume` needs `design.volumes` with a smaller and a larger "
            f"value (the range searched), got {list(d.volumes)}"
        )
    if d.kind == "search" and len(d.seeds) > 1:  # (it ran seeds[0] and said nothing)
        raise UserError(
            f"{src}: a search runs each mixture once, at one seed; `design.seeds` lists "
            f"{list(d.seeds)}: list one, and replicate the best mixtures afterwards "
            "(`ablate propose JOB.yaml --seeds 0,1,2`, or a grid around them)"
        )
    if d.kind == "search" and len(d.volumes) > 1 and not d.search_volume:
        raise UserError(
            f"{src}: `design.volumes` lists {list(d.volumes)}, but a search without "
            "`design.search_volume: true` runs only the first; set `search_volume: true` to "
            "search between the smallest and the largest, or list one volume"
        )
    if d.prune and d.multi_objective != "none":  # Optuna's trials cannot report then
        raise UserError(
            f"{src}: `design.prune` cannot go with `design.multi_objective: "
            f"{d.multi_objective}` (Optuna prunes on one objective's intermediate values); "
            "set `design.prune: false`, or search one objective"
        )


def _check_run(job: JobSpec, src: str) -> None:
    if not job.objective.noise >= 0 or not job.objective.duration_s >= 0:
        raise UserError(f"{src}: `objective.noise` and `objective.duration_s` must be 0 or more")
    if len(set(job.task_types)) != len(job.task_types):
        raise UserError(f"{src}: `task_types` lists a type twice: {list(job.task_types)}")
    # `not x > 0` also catches NaN, which `x <= 0` lets through
    positive = {
        "train.lr": job.train.lr,
        "train.epochs": job.train.epochs,
        "train.batch_size": job.train.batch_size,
        "train.max_steps": 1 if job.train.max_steps is None else job.train.max_steps,
        "train.max_length": job.train.max_length,
        "resources.max_in_flight": job.resources.max_in_flight,
        "resources.cpus_per_trial": job.resources.cpus_per_trial,
        "model.lora.r": job.model.lora.r,
        "model.lora.alpha": job.model.lora.alpha,
        "train.grad_accum": job.train.grad_accum,
    }
    for key, value in positive.items():
        if not value > 0:
            raise UserError(f"{src}: `{key}` must be positive, got {value}")
    gpus = job.resources.gpus_per_trial
    if gpus is not None and not gpus >= 0:
        raise UserError(f"{src}: `resources.gpus_per_trial` must be 0 or more, got {gpus}")
    if job.train.pack_tokens and not job.train.pack_tokens >= job.train.max_length:
        raise UserError(
            f"{src}: `train.pack_tokens` ({job.train.pack_tokens}) must be 0 (automatic) or at "
            f"least `train.max_length` ({job.train.max_length}), so every dialogue fits a row"
        )
    if not 0 <= job.train.warmup_ratio < 1 or not 0 <= job.model.lora.dropout < 1:
        raise UserError(f"{src}: `train.warmup_ratio` and `model.lora.dropout` must lie in [0, 1)")
    if not 0 <= job.train.max_skipped <= 1:
        raise UserError(
            f"{src}: `train.max_skipped` is a share of a task type's dialogues, in [0, 1]; got "
            f"{job.train.max_skipped}"
        )


def _check_models(job: JobSpec, src: str) -> None:
    """Names unique and non-empty, training overrides that `train:` knows, resources >= 0."""
    if not 0.0 <= job.objective.rank_correlation <= 1.0:
        raise UserError(
            f"{src}: `objective.rank_correlation` must lie in [0, 1], got "
            f"{job.objective.rank_correlation}"
        )
    for i, m in enumerate(job.models):
        key = f"models[{i}]"
        if not m.name.strip():
            raise UserError(f"{src}: `{key}.name` is missing: give every model a short name")
        if m.name in [earlier.name for earlier in job.models[:i]]:
            raise UserError(
                f"{src}: `{key}.name` {m.name!r} names two models; give each model its own name"
            )
        build(TrainSpec, {**to_dict(job.train), **m.train}, src, f"{key}.train.")
        for what, value in (("gpus_per_trial", m.gpus_per_trial), ("size", m.size)):
            if value is not None and not value >= 0:
                raise UserError(f"{src}: `{key}.{what}` must be 0 or more, got {value}")
        if m.cpus_per_trial is not None and not m.cpus_per_trial > 0:
            raise UserError(
                f"{src}: `{key}.cpus_per_trial` must be positive, got {m.cpus_per_trial}"
            )
        if not m.lora.r > 0 or not m.lora.alpha > 0:
            raise UserError(f"{src}: `{key}.lora.r` and `{key}.lora.alpha` must be positive")
