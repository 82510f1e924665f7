"""Objective kind `train`: materialise the mixture, LoRA fine-tune the job's model, score the
bench (`ablate.trial.run_trial`)."""

from __future__ import annotations

from typing import Any

from ablate.config import BenchRef, JobSpec
from ablate.errors import UserError
from ablate.mixture import Mixture
from ablate.objectives.base import OBJECTIVES
from ablate.result import TrialResult
from ablate.trial import run_trial


@OBJECTIVES.register("train")
class TrainObjective:
    """Fine-tune and benchmark: needs a `pool` and a `bench` (a file, held-out rows, or both)."""

    def check(self, job: JobSpec, source: str) -> None:
        for key in ("pool", "bench"):
            if getattr(job, key) is None:
                raise UserError(f"{source}: `{key}` is required when objective.kind is train")
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
        pass  # the model and the pool load in the workers, where they stay resident

    def run(self, job: JobSpec, mixture: Mixture, cache: dict[Any, Any]) -> TrialResult:
        return run_trial(job, mixture, cache)
