"""Which MLflow run is a study's sweep parent: the rule `start_sweep`, `find_sweep_run` and its
SQLite fast path share."""

from __future__ import annotations

#: The parent run's tag with its study's own id (`ablate.study.STUDY_UID`): two studies of one
#: name in two Optuna storages have two parents, however the tracking store is shared.
STUDY_UID_TAG = "ablate.study_uid"


def pick_parent(
    candidates: list[tuple[str, str | None, str | None]], storage: str, uid: str | None
) -> tuple[str | None, bool]:
    """The sweep's parent among the runs tagged with its study's name, each (run id, its
    `STUDY_UID_TAG`, its `optuna.storage` tag), oldest first: the one with the study's id; else
    one from before ablate tagged the id whose storage is this study's (True: adopt it, tag
    it); with no id known (a study no sweep has run since), the oldest. (None, False): none."""
    if uid is None:
        return (candidates[0][0], False) if candidates else (None, False)
    for run_id, tagged, _ in candidates:
        if tagged == uid:
            return run_id, False
    for run_id, tagged, where in candidates:
        if tagged is None and where == storage:
            return run_id, True
    return None, False
