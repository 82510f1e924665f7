"""The dispatcher's events, driven by a worker pool that stands in for Ray: what happens to a
trial when its worker dies after the driver pruned it, or dies while the driver polls it.

The pool here is a test double for the Ray workers (a worker dying at a chosen moment cannot be
arranged with real Ray deterministically); the study and the MLflow writer are real.
"""

from __future__ import annotations

import collections
from typing import Any

import pytest
from optuna.trial import TrialState

from ablate.result import TrialResult
from ablate.study import enqueue_design, open_study
from ablate.study.optuna_fast import waiting_ids
from ablate.sweep.dispatcher import Dispatcher, Tally
from ablate.sweep.workers import WorkerLost
from ablate.tracking import RunWriter, start_sweep

TYPES = ["caption", "count", "compare"]


class ScriptedPool:
    """One worker; `outcome(call)` decides what each submitted run returns or raises."""

    gpus = 0.0

    def __init__(self, outcome: Any, values: list[tuple[int, float]] | None = None) -> None:
        self.outcome = outcome
        self.values = values or []
        self.calls: list[str] = []
        self.replaced = 0
        self.stopped = 0

    def start(self, n: int) -> list[Any]:
        return ["worker-0"]

    def submit(self, actor: Any, job: Any, mixture: Any) -> Any:
        self.calls.append(mixture.name)
        return len(self.calls)

    def wait(self, refs: list[Any], timeout: float) -> list[Any]:
        return refs[:1]

    def result(self, ref: Any) -> TrialResult:
        return self.outcome(ref)  # type: ignore[no-any-return]

    def progress(self, actor: Any) -> list[tuple[int, float]] | None:
        return list(self.values)

    def stop(self, actor: Any) -> None:
        self.stopped += 1

    def replace(self, actor: Any) -> Any:
        self.replaced += 1
        return f"worker-{self.replaced}"

    def kill_all(self) -> None:
        pass


def _dispatcher(job: Any, pool: Any) -> tuple[Dispatcher, Any]:
    from ablate.plan import design_mixtures

    study = open_study(job)
    enqueue_design(study, design_mixtures(job, TYPES))
    writer = RunWriter(job, start_sweep(job))
    d = Dispatcher(job, study, pool, writer, Tally(), waiting_ids(study), 0, TYPES, None)
    d.idle = pool.start(1)
    return d, study


def test_a_pruned_trial_whose_worker_dies_ends_pruned_and_is_not_rerun(make_job) -> None:
    job = make_job(design={"kind": "grid", "volumes": [100], "balance": [1.0], "seeds": [0]})

    def dies(ref: Any) -> TrialResult:
        raise WorkerLost("RayActorError: the actor died")

    pool = ScriptedPool(dies)
    d, study = _dispatcher(job, pool)
    d.dispatch()
    ((ref, f),) = d.flight.items()
    f.pruned = True  # the driver pruned it; its worker then died while stopping
    d.finished(d.flight.pop(ref), ref)
    d.writer.close()
    (trial,) = study.get_trials()
    assert trial.state == TrialState.PRUNED
    assert pool.calls == [f.mixture.name]  # submitted once: no retry of a pruned trial
    assert pool.replaced == 1 and d.idle == ["worker-1"]  # the dead worker is replaced
    assert not d.flight


def test_an_unpruned_trial_whose_worker_dies_is_retried_then_completes(make_job) -> None:
    job = make_job()

    def once_dead(ref: Any) -> TrialResult:
        if ref == 1:
            raise WorkerLost("RayActorError: the actor died")
        return TrialResult(metrics={"score": 0.5}, seconds=0.1)

    pool = ScriptedPool(once_dead)
    d, study = _dispatcher(job, pool)
    d.run()
    d.writer.close()
    (trial,) = study.get_trials()
    assert trial.state == TrialState.COMPLETE and trial.value == 0.5
    assert trial.user_attrs["retries"] == 1 and len(pool.calls) == 2


def test_a_poll_that_cannot_reach_a_worker_leaves_the_trial_running(make_job) -> None:
    job = make_job(
        design={
            "kind": "search",
            "n_trials": 2,
            "sampler": "random",
            "prune": True,
            "volumes": [100],
        }
    )

    class Unreachable(ScriptedPool):
        def progress(self, actor: Any) -> list[tuple[int, float]] | None:
            return None  # what WorkerPool.progress gives for a dead or busy worker

    pool = Unreachable(lambda ref: TrialResult(metrics={"score": 1.0}))
    study = open_study(job)
    writer = RunWriter(job, start_sweep(job))
    d = Dispatcher(job, study, pool, writer, Tally(), collections.deque(), 1, TYPES, None)
    d.idle = pool.start(1)
    d.dispatch()
    d.poll()  # no values, no exception: the trial stays in flight, unpruned
    (f,) = d.flight.values()
    assert not f.pruned and f.reported == 0 and pool.stopped == 0
    writer.close()


@pytest.mark.slow
def test_worker_pool_progress_of_a_dead_worker_is_none_not_an_error(ray_session, make_job) -> None:
    """Before, the pruning poll's `ray.get` raised when a worker died in that window, and the
    exception ended the whole sweep."""
    from ablate.sweep.workers import WorkerPool

    job = make_job(resources={"cpus_per_trial": 1, "max_in_flight": 1, "gpus_per_trial": 0})
    pool = WorkerPool(job, prune=True)
    (actor,) = pool.start(1)
    assert pool.progress(actor) == []
    pool.kill(actor)  # asynchronous: wait until Ray reports the actor dead
    with pytest.raises(ray_session.exceptions.RayActorError):
        ray_session.get(actor.ping.remote(), timeout=60)
    assert pool.progress(actor) is None
