"""MLflow follows Optuna: what a dead driver left in the tracking store is put right on restart.

`reconcile_runs`: the study's RUNNING trials (a dead driver's) are failed and enqueued again,
and their RUNNING MLflow runs marked KILLED. `backfill_runs`: every finished trial gets its
finished MLflow run (a driver killed between `tell` and logging leaves none, or a RUNNING one).
"""

from __future__ import annotations

from typing import Any

from ablate.config import JobSpec
from ablate.study import (
    STUDY_SETTINGS_ID,
    TRIAL_SETTINGS_ID,
    mixture_from_attrs,
    reconcile,
    result_from_attrs,
)
from ablate.tracking import RunWriter, child_runs, mark_killed


def reconcile_runs(
    job: JobSpec,
    study: Any,
    parent_run_id: str | None,
    reason: str = "driver died while the trial ran (reconciled on restart)",
) -> list[int]:
    """`study.reconcile`, then mark those trials' RUNNING MLflow runs KILLED (when the
    tracking store answers: `parent_run_id` None means it does not)."""
    numbers = reconcile(study, reason)
    if numbers and parent_run_id is not None:
        mark_killed(job, parent_run_id, numbers, reason)
    return numbers


def backfill_runs(job: JobSpec, study: Any, writer: RunWriter) -> int:
    """Queue a finished MLflow run for every finished trial that lacks one; how many."""
    from optuna.trial import TrialState

    if writer.parent_run_id is None:
        return 0  # the tracking server is down: the next sweep that reaches it writes them
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
    if not finished:
        return 0
    runs: dict[str, Any] = {}
    for run in child_runs(job, writer.parent_run_id):
        number = run.data.tags.get("optuna.trial_number")
        if number is not None and (number not in runs or run.info.status != "RUNNING"):
            runs[number] = run
    base = str(study.user_attrs.get(STUDY_SETTINGS_ID) or "")
    n = 0
    for t in finished:
        run = runs.get(str(t.number))
        if run is not None and run.info.status != "RUNNING":
            continue
        if t.state == TrialState.FAIL and run is None:
            continue  # failed before dispatch, or by a dead driver before its run was created
        try:
            mixture = mixture_from_attrs(t.user_attrs, job.taxonomy)
        except ValueError:
            continue
        result = result_from_attrs(t.user_attrs)
        writer.submit(
            t.number,
            mixture,
            result if t.state == TrialState.COMPLETE else None,
            t.state.name,
            run_id=run.info.run_id if run is not None else None,
            error=t.user_attrs.get("error"),
            seconds=result.seconds,
            settings_id=str(t.user_attrs.get(TRIAL_SETTINGS_ID, base)),
        )
        n += 1
    return n
