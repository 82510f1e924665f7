"""Putting trials into the study and taking back what a dead driver left.

Resume rules: a COMPLETE trial never reruns; a trial left RUNNING by a dead driver is told FAIL
(`error` says why, `requeued` marks it) and its parameters are enqueued again; a design point
whose `design_key` is in a COMPLETE, WAITING or RUNNING trial of the same settings is not
enqueued again (so FAILED points are retried by the next `ablate sweep`, and a change of settings
recorded as a factor gets every point again: see `ablate.study.settings`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ablate.mixture import Mixture
from ablate.study.codec import DESIGN_ATTRS, RESULT_DEFAULTS, trial_attrs
from ablate.study.optuna_fast import (
    enqueue_many_rdb,
    fail_waiting,
    mixture_params,
    set_trial_attr_by_id,
)
from ablate.study.settings import SettingsLevel


def enqueue_design(
    study: Any,
    mixtures: list[Mixture],
    params: Callable[[Mixture], dict[str, Any]] | None = None,
    extra: Callable[[Mixture], dict[str, Any]] | None = None,
    level: SettingsLevel | None = None,
    retry_failed: bool = True,
) -> int:
    """Enqueue the points not yet COMPLETE, WAITING or RUNNING (by `design_key`); how many.
    `retry_failed=False` (a search's start points): a point that failed counts as there too,
    as it counted toward `n_trials` (a dead driver's requeued ones have their copies anyway).

    `params`: a search's coordinates of a mixture, so its sampler learns from enqueued trials;
    `extra`: more user attributes of a mixture's trial (`proposed_by`, ...); `level`: the
    settings the trials are trained with (their attributes; only that level's trials count as
    already there).
    """
    from optuna.trial import TrialState

    live: tuple[TrialState, ...] = (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
    live += () if retry_failed else (TrialState.FAIL,)
    have = {
        t.user_attrs.get("design_key")
        for t in study.get_trials(deepcopy=False, states=live)
        if level is None or level.owns(t.user_attrs)
    }
    todo: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for mix in mixtures:
        attrs = trial_attrs(mix)
        if attrs["design_key"] in have:
            continue
        if level is not None:
            attrs.update(level.attrs())
        if extra is not None:
            attrs.update(extra(mix))
        todo.append((params(mix) if params else {}, attrs))
        have.add(attrs["design_key"])
    recorded = None
    if params is None:  # a fixed design: its mixtures as parameters, for optuna-dashboard
        types = list(dict.fromkeys(t for m in mixtures if isinstance(m.proportions, dict)
                                   for t in m.proportions))  # fmt: skip
        recorded = [
            mixture_params(a["proportions"], a["volume"], types)
            for _, a in todo
            if isinstance(a.get("proportions"), dict)
        ]
        recorded = recorded if len(recorded) == len(todo) else None
    if todo and not enqueue_many_rdb(study, todo, recorded):
        for fixed, attrs in todo:
            study.enqueue_trial(params=fixed, user_attrs=attrs)
    return len(todo)


def reconcile(
    study: Any, reason: str = "driver died while the trial ran (reconciled on restart)"
) -> list[int]:
    """Trials RUNNING in storage belong to a dead driver (the caller holds the lock): each is told
    FAIL and enqueued again with the same parameters. Returns their numbers."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        set_trial_attr_by_id(study, t, "error", reason)
        # a requeued trial does not count against a search's n_trials: its copy runs instead
        set_trial_attr_by_id(study, t, "requeued", True)
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        attrs = {k: t.user_attrs[k] for k in DESIGN_ATTRS if k in t.user_attrs}
        if "proportions" in attrs:
            study.enqueue_trial(
                params=dict(t.params),
                user_attrs={**attrs, **RESULT_DEFAULTS, "requeued_from": t.number},
            )
    return [t.number for t in stale]


def drop_outside(study: Any, mixtures: list[Mixture], level: SettingsLevel | None = None) -> int:
    """Tell FAIL (`dropped`, never run) the WAITING trials of this settings `level` whose design
    point is not among the job's `mixtures`: a design that shrank between runs (fewer seeds, a
    volume left out) ran every trial the larger one had enqueued. Trials `ablate propose` added
    stay. Restored in the job, their points are enqueued again (FAIL is not kept). How many."""
    from optuna.trial import TrialState

    keys = {trial_attrs(m)["design_key"] for m in mixtures}
    gone = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if (level is None or level.owns(t.user_attrs))
        and not t.user_attrs.get("proposed_by")
        and t.user_attrs.get("design_key") not in keys
    ]
    for t in gone:
        set_trial_attr_by_id(study, t, "dropped", True)
        set_trial_attr_by_id(
            study, t, "error", "dropped: the job's design no longer has this point (never run)"
        )
        fail_waiting(study, t)
    return len(gone)
