"""A job with `models:` runs in lanes, one per model: each lane has its queue of enqueued trials
and its workers (of its model's GPUs and CPUs per trial); see `ablate.sweep.dispatcher`."""

from __future__ import annotations

import collections
from typing import Any

from ablate.config import JobSpec


def lanes(job: JobSpec, study: Any, waiting: collections.deque[int]) -> dict[str, Any]:
    """Lane -> its WAITING trials' storage ids (queue order kept): one lane ("" -> `waiting`
    itself) for a one-model job, else one per model of `models:` (by each trial's `model`)."""
    if not job.models:
        return {"": waiting}
    from optuna.trial import TrialState

    queues: dict[str, Any] = {m.name: collections.deque() for m in job.models}
    model_of = {
        t._trial_id: str(t.user_attrs.get("model") or "")
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    }
    first = next(iter(queues))
    for trial_id in waiting:
        model = model_of.get(trial_id, "")
        queues[model if model in queues else first].append(trial_id)
    return queues
