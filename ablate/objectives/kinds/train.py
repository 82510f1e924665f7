"""Objective kind `train`: materialise the mixture, LoRA fine-tune the job's model, score the
bench (`ablate.trial.run_trial`)."""

from __future__ import annotations

import math
from typing import Any

from ablate.bench import RATINGS, load_bench
from ablate.config import BenchRef, JobSpec
from ablate.errors import UserError, did_you_mean
from ablate.mixture import Mixture
from ablate.objectives.base import OBJECTIVES, KnownMetrics
from ablate.result import TrialResult
from ablate.trial import run_trial

#: Every training trial's losses (`ablate.trial.run`).
TRAIN_METRICS = ("train_loss", "final_train_loss")
#: A bench file's scores (`ablate.trial.evaluate.accuracy_metrics`, `ablate.trial.scoring`):
#: `accuracy/<domain>` and `accuracy/<field>=<value>` depend on its records.
BENCH_METRICS = ("overall_accuracy", "contextual_accuracy", "bench_loss")
#: The judge scorer's (`ablate.bench.judge`: `judge_score`, `judge/<dimension>`, its counts
#: and costs `judge_unscored`, `judge_requests`, ...).
JUDGE_PREFIXES = ("judge_", "judge/")
#: Metrics that are shares of the bench's turns (or the judge's 0..1 scaled mean rating).
UNIT_METRICS = ("overall_accuracy", "contextual_accuracy", "judge_score")


@OBJECTIVES.register("train")
class TrainObjective:
    """Fine-tune and benchmark: needs a `pool` and a `bench` (a file, held-out rows, or both)."""

    trains = True

    def metrics(self, job: JobSpec) -> KnownMetrics | None:
        """The trial's losses, the bench file's scores (its scorer's: read from the bench
        file, which costs a YAML read) and the held-out rows' losses; None while the bench file
        cannot be read (`ablate.plan.check_bench` says why before any training)."""
        names, prefixes = list(TRAIN_METRICS), []
        if job.bench_file is not None:
            try:
                spec = load_bench(job.bench_file)
            except (UserError, OSError):
                return None
            names += BENCH_METRICS
            prefixes += ["accuracy/", *(JUDGE_PREFIXES if spec.scorer == "judge" else ())]
        if job.heldout_fraction:
            names.append("heldout_loss")
            prefixes.append("heldout_loss/")
        return KnownMetrics(tuple(names), tuple(prefixes))

    def metric_range(self, job: JobSpec, metric: str) -> tuple[float, float]:
        """Accuracies and `judge_score` are shares, in [0, 1]; a judge's `judge/<dimension>`
        a mean rating, 1 to 5; a loss is at least 0."""
        if metric in UNIT_METRICS or metric.startswith("accuracy/"):
            return 0.0, 1.0
        if metric.startswith("judge/"):
            return float(RATINGS[0]), float(RATINGS[-1])
        return (0.0, math.inf) if "loss" in metric else (-math.inf, math.inf)

    def check(self, job: JobSpec, source: str) -> None:
        for key in ("pool", "bench"):
            if getattr(job, key) is None:
                raise UserError(  # (review q#14: a job without `objective:` is a train job)
                    f"{source}: `{key}` is required when objective.kind is train (the kind when "
                    "`objective:` is left out; a simulated job says `objective: {kind: sim}`)"
                )
        if isinstance(job.bench, BenchRef):
            if not 0 <= job.bench.heldout_of_pool < 1:
                raise UserError(
                    f"{source}: `bench.heldout_of_pool` must lie in [0, 1), for example 0.02; "
                    f"got {job.bench.heldout_of_pool}"
                )
            if job.bench.file is None and not job.bench.heldout_of_pool > 0:
                raise UserError(
                    f"{source}: `bench` needs a `file`, a `heldout_of_pool` share, or both"
                )

    def prepare(self, job: JobSpec) -> None:
        # the model and the pool load in the workers, where they stay resident
        check_scheduler(job)

    def run(self, job: JobSpec, mixture: Mixture, cache: dict[Any, Any]) -> TrialResult:
        check_scheduler(job)  # `ablate trial`: before the pool and the model load
        return run_trial(job, mixture, cache)


def check_scheduler(job: JobSpec) -> None:
    """`train.scheduler` (each model's, with `models:`) is one of transformers' schedules.

    Checked here, once per sweep in the driver (`prepare`) and at the start of each training
    trial, rather than with the job's other checks in `check`: its list of names is
    `transformers.trainer_utils.SchedulerType`, whose import takes 1-4 s (it imports torch),
    which every `ablate status` or `report` of the job would pay.
    """
    from transformers.trainer_utils import SchedulerType

    known = [s.value for s in SchedulerType]
    names = [("train.scheduler", job.train.scheduler)]
    names += [
        (f"models[{i}].train.scheduler", m.train["scheduler"])
        for i, m in enumerate(job.models)
        if "scheduler" in m.train
    ]
    for key, name in names:
        if name not in known:
            hint = did_you_mean(name, known)
            raise UserError(
                f"{job.source or 'job'}: `{key}` {name!r} is not a learning-rate schedule "
                f"transformers knows{hint}; choose one of {', '.join(known)}"
            )
