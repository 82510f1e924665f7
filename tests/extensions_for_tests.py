"""A job's own extensions, as a user would write them: one design kind, one objective kind and
one scorer, registered on import (a job lists this module under `plugins:`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ablate.config import JobSpec
from ablate.design import DESIGNS, cross_volumes_and_seeds
from ablate.errors import UserError
from ablate.mixture import Mixture
from ablate.objectives import OBJECTIVES
from ablate.result import TrialResult
from ablate.trial.evaluate import TurnScore
from ablate.trial.scorer import SCORERS, Scored


@DESIGNS.register("pairs")
def pairs_design(job: JobSpec, task_types: Sequence[str]) -> list[Mixture]:
    """Every pair of task types half and half."""
    types = list(task_types)
    points = [
        (f"{a}+{b}", {t: (0.5 if t in (a, b) else 0.0) for t in types})
        for i, a in enumerate(types)
        for b in types[i + 1 :]
    ]
    return cross_volumes_and_seeds(job, points)


@OBJECTIVES.register("share_of_first")
class ShareOfFirst:
    """Score = the share of the first task type + volume / 1e6 (no training)."""

    def check(self, job: JobSpec, source: str) -> None:
        if not job.task_types:
            raise UserError(f"{source}: objective share_of_first needs `task_types`")

    def prepare(self, job: JobSpec) -> None:
        pass

    def run(self, job: JobSpec, mixture: Mixture, cache: dict[Any, Any]) -> TrialResult:
        value = float(dict(mixture.proportions)[job.task_types[0]]) + mixture.volume / 1e6
        return TrialResult(metrics={job.objective.metric: value})


@SCORERS.register("first_turn_only")
class FirstTurnOnly:
    """Only each dialogue's first scored turn counts (exact match); the others are unscored."""

    def prepare(self, bench: Any, encoder: Any) -> Any:
        return None

    def score(self, bench: Any, exact: list[TurnScore], run: Any) -> Scored:
        firsts = {0}
        n = 0
        for example in bench.examples:
            n += len(example.turn_spans)
            firsts.add(n)
        turns = [
            TurnScore(s.correct if i in firsts else None, s.contextual, s.labels)
            for i, s in enumerate(exact)
        ]
        return Scored(turns, {}, {})
