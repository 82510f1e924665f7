"""Every use of Optuna's private internals, in one place, each measured faster than the public API.

Pinned: pyproject bounds optuna below the next minor release, and
tests/study/test_optuna_fast.py checks each function against the public API it replaces (same
trials, states, attributes and parameters), so an Optuna upgrade that changes the internals
fails there, not in a sweep.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable
from typing import Any

from ablate.search import SHARE_PARAM, VOLUME_PARAM


def storage_backend(storage: Any) -> Any:
    """The storage under Optuna's cache wrapper (`_CachedStorage._backend`), or itself."""
    return getattr(storage, "_backend", storage)


def journal_file_backend(path: str) -> Any:
    """A journal file that appends under Optuna's own lock and flushes, without an fsync per
    write: an fsync costs 3-18 ms on the project's machines (more than a whole zero-second
    trial), and a killed driver loses nothing without it (written pages outlive the process)."""
    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal._file import get_lock_file

    class FlushedJournalFile(JournalFileBackend):
        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            with get_lock_file(self._lock), open(self._file_path, "ab") as f:
                f.write(text.encode("utf-8"))
                f.flush()

    return FlushedJournalFile(path)


def set_trial_attr_by_id(study: Any, trial: Any, key: str, value: Any) -> None:
    """Set a user attribute of a trial the driver holds no `Trial` for (a FrozenTrial of a dead
    driver's RUNNING trial): the public API has no setter for those."""
    study._storage.set_trial_user_attr(trial._trial_id, key, value)


def waiting_ids(
    study: Any, keep: Callable[[dict[str, Any]], bool] | None = None
) -> collections.deque[int]:
    """The storage ids of the study's WAITING trials, in queue order (for `pop_waiting`);
    `keep`: only those whose user attributes it accepts."""
    from optuna.trial import TrialState

    return collections.deque(
        t._trial_id
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if keep is None or keep(t.user_attrs)
    )


def fail_waiting(study: Any, trial: Any) -> None:
    """Tell a WAITING trial FAIL without running it (`study.tell` takes only RUNNING ones)."""
    from optuna.trial import TrialState

    study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)


def pop_waiting(study: Any, waiting: collections.deque[int]) -> Any:
    """`study.ask()` for the next enqueued trial, without its scan of every WAITING trial.

    `ask` reads all WAITING trials from storage on every call (O(n) per trial, O(n^2) per
    sweep: 150 waiting trials took 70 ms per ask on SQLite); the driver holds the study's lock,
    so it reads the queue once and pops by id, exactly as `ask` does (state -> RUNNING).
    None when the queue is empty.
    """
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    while waiting:
        trial_id = waiting.popleft()
        try:
            if study._storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return optuna.Trial(study, trial_id)
        except UpdateFinishedTrialError:
            continue
    return None


# long: one transaction's inserts, in order (trials, user attrs, system attrs, params)
def enqueue_many_rdb(
    study: Any,
    todo: list[tuple[dict[str, Any], dict[str, Any]]],
    params: list[dict[str, tuple[float, Any]]] | None = None,
) -> bool:
    """`study.enqueue_trial(params, user_attrs)` for many trials in one transaction of an RDB
    storage.

    Writes the rows `enqueue_trial` writes (a WAITING trial numbered in order, its user
    attributes, the `fixed_params` system attribute), without its per-trial transaction and
    per-attribute SELECT-then-upsert: 300 trials took 6-11 s on SQLite through `enqueue_trial`
    on the project's machine (ORM work, not disk), a fraction of a second here. The driver holds
    the study's lock, and the study row is locked for the transaction (as `enqueue_trial` does).
    `params`: per trial, parameters recorded with it (`mixture_params`), in the same transaction.
    False (nothing written) when the storage is not an RDBStorage: the caller enqueues one by one.
    """
    from optuna.distributions import distribution_to_json
    from optuna.storages import RDBStorage

    backend = storage_backend(study._storage)
    if not isinstance(backend, RDBStorage):
        return False
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from optuna.trial import TrialState
    from sqlalchemy import func, insert, select

    study_id = study._study_id
    with _create_scoped_session(backend.scoped_session) as session:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        first = session.scalar(
            select(func.count(models.TrialModel.trial_id)).where(
                models.TrialModel.study_id == study_id
            )
        )
        trials = [
            models.TrialModel(
                study_id=study_id, number=int(first or 0) + i, state=TrialState.WAITING
            )
            for i in range(len(todo))
        ]
        session.add_all(trials)
        session.flush()  # the trials' ids
        user_rows = [
            {"trial_id": t.trial_id, "key": k, "value_json": json.dumps(v)}
            for t, (_, attrs) in zip(trials, todo, strict=True)
            for k, v in attrs.items()
        ]
        system_rows = [
            {"trial_id": t.trial_id, "key": "fixed_params", "value_json": json.dumps(fixed)}
            for t, (fixed, _) in zip(trials, todo, strict=True)
        ]
        session.execute(insert(models.TrialUserAttributeModel), user_rows)
        session.execute(insert(models.TrialSystemAttributeModel), system_rows)
        param_rows = [
            {
                "trial_id": t.trial_id,
                "param_name": name,
                "param_value": dist.to_internal_repr(value),
                "distribution_json": distribution_to_json(dist),
            }
            for t, recorded in zip(trials, params or [], strict=False)
            for name, (value, dist) in recorded.items()
        ]
        if param_rows:
            session.execute(insert(models.TrialParamModel), param_rows)
    return True


#: Volumes span at most this range, for the `volume` parameter's (log) distribution.
VOLUME_RANGE = (1.0, 1e12)


def mixture_params(
    proportions: dict[str, float], volume: float | None, task_types: list[str]
) -> dict[str, tuple[float, Any]]:
    """A trial's mixture as Optuna parameters: `share:<type>` in [0, 1] and `volume` (log), so
    optuna-dashboard's parameter views (importance, slice, parallel coordinates) show the
    mixtures. A fixed design's sampler (random) never reads them; a search models only its own
    coordinates (`ablate.search.own_params`), and passes no `volume` when it searches it (its
    own `volume` parameter). Name -> (value, distribution)."""
    from optuna.distributions import FloatDistribution

    share = FloatDistribution(0.0, 1.0)
    out: dict[str, tuple[float, Any]] = {
        f"{SHARE_PARAM}{t}": (float(proportions.get(t, 0.0)), share) for t in task_types
    }
    if volume is not None:
        out[VOLUME_PARAM] = (float(volume), FloatDistribution(*VOLUME_RANGE, log=True))
    return out


def record_mixture_params(
    study: Any,
    trial: Any,
    proportions: dict[str, float],
    volume: float | None,
    task_types: list[str],
) -> None:
    """`mixture_params` written onto a RUNNING trial that has none yet (one storage write each:
    a search's trials, and a fixed design's where `enqueue_many_rdb` could not write them)."""
    if any(name.startswith(SHARE_PARAM) for name in trial.params):
        return
    for name, (value, dist) in mixture_params(proportions, volume, task_types).items():
        study._storage.set_trial_param(trial._trial_id, name, dist.to_internal_repr(value), dist)
