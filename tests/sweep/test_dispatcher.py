"""The dispatcher's events, driven by a worker pool that stands in for Ray: what happens to a
trial when its worker dies after the driver pruned it, or dies while the driver polls it.

The pool here is a test double for the Ray workers (a worker dying at a chosen moment cannot be
arranged with real Ray deterministically); the study and the MLflow writer are real.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import pytest
from optuna.trial import TrialState

from ablate.errors import UserError
from ablate.result import TrialResult
from ablate.study import enqueue_design, open_study
from ablate.study.optuna_fast import waiting_ids
from ablate.sweep.dispatcher import Dispatcher
from ablate.sweep.summary import SweepProgress, SweepSummary, Tally, print_progress
from ablate.sweep.workers import WorkerLost
from ablate.tracking import RunWriter, start_sweep

TYPES = ["caption", "count", "compare"]


class ScriptedPool:
    """`workers` workers; `outcome(call)` decides what each submitted run returns or raises.
    A lost worker's replacement is placed (`started` hands it over) only when `room`."""

    gpus = 0.0

    def __init__(
        self,
        outcome: Any,
        values: list[tuple[int, float]] | None = None,
        workers: int = 1,
        room: bool = True,
    ) -> None:
        self.outcome = outcome
        self.values = values or []
        self.workers = workers
        self.room = room
        self.calls: list[tuple[str, Any]] = []
        self.forgotten: list[Any] = []
        self.placed: list[Any] = []
        self.stopped = 0

    def start(self, wanted: Any) -> list[Any]:
        return [f"worker-{i}" for i in range(self.workers)]

    def lane(self, actor: Any) -> str:
        return ""  # one model: one lane

    def started(self, timeout: float = 0.0, wait_all: bool = False) -> list[Any]:
        up, self.placed = self.placed, []
        return up

    def alive(self, actors: list[Any], timeout: float = 5.0) -> list[Any]:
        return list(actors)

    def grow(self, wanted: Any) -> int:
        missing = len(self.forgotten) - sum(1 for _ in self.placed)
        if self.room and missing > 0 and not self.placed:
            self.placed.append(f"worker-{self.workers + len(self.forgotten) - 1}")
            return 1
        return 0

    def forget(self, actor: Any) -> None:
        self.forgotten.append(actor)

    def submit(self, actor: Any, job: Any, mixture: Any) -> Any:
        self.calls.append((mixture.name, actor))
        return len(self.calls)

    def wait(self, refs: list[Any], timeout: float) -> list[Any]:
        return refs[:1]

    def result(self, ref: Any) -> TrialResult:
        return self.outcome(ref)  # type: ignore[no-any-return]

    def progress(self, actor: Any) -> list[tuple[int, float]] | None:
        return list(self.values)

    def stop(self, actor: Any) -> None:
        self.stopped += 1

    def kill_all(self, idle: list[Any] | None = None) -> None:
        pass

    def retire(self, actor: Any) -> None:
        self.forget(actor)


def _dispatcher(job: Any, pool: Any) -> tuple[Dispatcher, Any]:
    from ablate.plan import design_mixtures

    study = open_study(job)
    enqueue_design(study, design_mixtures(job, TYPES))
    writer = RunWriter(job, start_sweep(job))
    d = Dispatcher(job, study, pool, writer, Tally(), waiting_ids(study), 0, TYPES, None)
    d.idle = pool.start(pool.workers)
    return d, study


def test_a_pruned_trial_whose_worker_dies_ends_pruned_and_is_not_rerun(make_job) -> None:
    job = make_job(design={"kind": "grid", "volumes": [100], "balance": [1.0], "seeds": [0]})

    def dies(ref: Any) -> TrialResult:
        raise WorkerLost("RayActorError: the actor died")

    pool = ScriptedPool(dies)
    d, study = _dispatcher(job, pool)
    seen: list[SweepProgress] = []
    d.progress = seen.append
    d.dispatch()
    ((ref, f),) = d.flight.items()
    f.pruned = True  # the driver pruned it; its worker then died while stopping
    d.finished(d.flight.pop(ref), ref)
    d._flush()  # (the loop prints its lines after the next dispatch)
    d.writer.close()
    (trial,) = study.get_trials()
    assert trial.state == TrialState.PRUNED
    # counted as pruned: the progress total keeps it (before: it fell out of the total)
    assert (d.tally.pruned, seen[-1].pruned, seen[-1].total) == (1, 1, 1)
    assert (seen[-1].done, seen[-1].failed) == (0, 0)
    assert [name for name, _ in pool.calls] == [f.mixture.name]  # no retry of a pruned trial
    assert pool.forgotten == ["worker-0"] and pool.started() == ["worker-1"]  # replaced
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


def test_the_pruner_is_fed_while_trials_keep_finishing(make_job) -> None:
    """Review k: the poll that feeds the pruner ran only in a second with no finished trial,
    so with trials finishing less than a second apart (short trials, many in flight) pruning
    never saw a value: 0 of 30 sim trials of 1 s pruned. Now it runs every second regardless."""
    job = make_job(
        design={"kind": "search", "n_trials": 8, "sampler": "random", "prune": True,
                "volumes": [100]},
        resources={"cpus_per_trial": 1, "max_in_flight": 2, "gpus_per_trial": 0},
    )  # fmt: skip

    class Busy(ScriptedPool):
        polled = 0

        def wait(self, refs: list[Any], timeout: float) -> list[Any]:
            time.sleep(0.4)  # a trial finishes every 0.4 s: never a quiet second
            return refs[:1]

        def progress(self, actor: Any) -> list[tuple[int, float]] | None:
            self.polled += 1
            return [(1, 0.5)]

    pool = Busy(lambda ref: TrialResult(metrics={"score": 1.0}), workers=2)
    study = open_study(job)
    writer = RunWriter(job, start_sweep(job))
    d = Dispatcher(job, study, pool, writer, Tally(), collections.deque(), 8, TYPES, None)
    d.run()
    writer.close()
    # 8 finished trials: one progress read each at its end, and about one poll per
    # in-flight trial per second of the ~3.2 s run on top (8 before: no poll at all)
    assert pool.polled >= 8 + 2
    assert all(t.intermediate_values == {1: 0.5} for t in study.get_trials())


@pytest.mark.slow
def test_worker_pool_progress_of_a_dead_worker_is_none_not_an_error(ray_session, make_job) -> None:
    """Before, the pruning poll's `ray.get` raised when a worker died in that window, and the
    exception ended the whole sweep."""
    from ablate.sweep.workers import WorkerPool

    job = make_job(resources={"cpus_per_trial": 1, "max_in_flight": 1, "gpus_per_trial": 0})
    pool = WorkerPool(job, prune=True)
    (actor,) = pool.start(1)
    assert pool.progress(actor) == []
    pool.kill(actor)  # asynchronous: a ping may still be answered before the kill lands
    dead = False
    for _ in range(300):
        try:
            ray_session.get(actor.ping.remote(), timeout=60)
        except ray_session.exceptions.RayActorError:
            dead = True
            break
        time.sleep(0.1)
    assert dead
    assert pool.progress(actor) is None


def test_a_lost_workers_trial_is_retried_by_a_surviving_worker_when_no_replacement_fits(
    make_job,
) -> None:
    """No spare capacity: the replacement worker is never placed; the retry runs on the other
    worker as soon as it is idle, and every trial completes."""
    job = make_job(
        design={"kind": "grid", "volumes": [100, 200], "balance": [1.0], "seeds": [0, 1]}
    )

    def first_dies(ref: Any) -> TrialResult:
        if ref == 1:
            raise WorkerLost("NodeDiedError: the node died")
        return TrialResult(metrics={"score": 0.5}, seconds=0.1)

    pool = ScriptedPool(first_dies, workers=2, room=False)
    d, study = _dispatcher(job, pool)
    d.run()
    d.writer.close()
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert sorted(t.user_attrs.get("retries", 0) for t in trials) == [0, 0, 0, 1]
    assert pool.forgotten == ["worker-1"] and len(pool.calls) == 5
    assert {actor for _, actor in pool.calls[2:]} == {"worker-0"}  # the survivor did the rest


def test_a_fixed_designs_trials_carry_their_shares_and_volume_as_optuna_params(make_job) -> None:
    """What optuna-dashboard's parameter views (importance, slice, parallel coordinates) read."""
    import optuna

    job = make_job(design={"kind": "grid", "volumes": [100, 400], "balance": [0.0, 1.0],
                           "seeds": [0, 1]})  # fmt: skip
    pool = ScriptedPool(lambda ref: TrialResult(metrics={"score": 0.1 * ref}, seconds=0.1))
    d, study = _dispatcher(job, pool)
    d.run()
    d.writer.close()
    trials = study.get_trials()
    assert len(trials) == 8
    for t in trials:
        shares = {k.removeprefix("share:"): v for k, v in t.params.items() if k != "volume"}
        assert shares == pytest.approx(t.user_attrs["proportions"])
        assert set(shares) == set(TYPES) and t.params["volume"] == t.user_attrs["volume"]
    importance = optuna.importance.get_param_importances(study)
    assert set(importance) <= {"volume", *(f"share:{t}" for t in TYPES)} and importance


def test_a_first_trial_without_the_metric_stops_the_sweep_naming_what_it_reported(
    make_job,
) -> None:
    """The job's metric is misspelt (a kind that cannot list its metrics up front): the first
    finished trial lacks it, so the sweep stops there instead of failing every trial."""
    job = make_job(design={"seeds": [0, 1, 2]})
    pool = ScriptedPool(lambda ref: TrialResult(metrics={"scor": 0.5, "loss": 1.0}))
    d, study = _dispatcher(job, pool)
    with pytest.raises(UserError) as err:
        d.run()
    d.writer.close()
    assert str(err.value).startswith(
        "sweep stopped: the first finished trial (v100-b1.00-s0) has no metric `score` "
        "(`objective.metric` of the job), so every trial would fail the same way; it reported "
        "loss, scor."
    )
    assert len(pool.calls) == 1
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING, TrialState.WAITING]


def test_a_max_length_that_cuts_every_bench_answer_stops_the_sweep_at_its_first_trial(
    make_job,
) -> None:
    """Review q#5: every one of 18 trials failed the same way (the bench and train.max_length
    are the job's), one by one; now the first failure stops the sweep, the rest left waiting."""
    from ablate.sweep.workers import TrialError

    job = make_job(design={"seeds": [0, 1, 2]})
    cut = "UserError: train.max_length 4 cuts every answer of bench b.yaml: raise it to 9"

    def fails(ref: Any) -> TrialResult:
        raise TrialError(cut)

    pool = ScriptedPool(fails)
    d, study = _dispatcher(job, pool)
    with pytest.raises(UserError) as err:
        d.run()
    d.writer.close()
    assert str(err.value) == (
        "sweep stopped at its first trial: train.max_length 4 cuts every answer of bench "
        "b.yaml: raise it to 9; every trial would fail the same way"
    )
    assert len(pool.calls) == 1
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING, TrialState.WAITING]


def test_a_trial_without_the_metric_after_one_completed_fails_alone(make_job) -> None:
    job = make_job(design={"seeds": [0, 1, 2]})
    results = {1: {"score": 0.5}, 2: {"other": 1.0}, 3: {"score": float("nan")}}
    pool = ScriptedPool(lambda ref: TrialResult(metrics=results[ref]))
    d, study = _dispatcher(job, pool)
    d.run()
    d.writer.close()
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]
    assert d.tally.failed == 2


def test_the_best_trial_keeps_the_caps_as_the_pareto_front_does(make_job) -> None:
    from ablate.sweep.driver import tally_study

    job = make_job(design={"kind": "search", "max_share": {"count": 0.3}, "volumes": [100]})
    study = open_study(job)
    for value, constraint in [(0.5, -0.1), (0.9, 0.2)]:  # the better one breaks its cap
        trial = study.ask()
        trial.set_constraint("max_share:count", constraint)
        study.tell(trial, value)
    tally = tally_study(job, study)
    assert tally.done == 2 and (tally.best_trial, tally.best_value) == (0, 0.5)


def test_progress_and_summary_lines_count_pruned_trials(capsys: pytest.CaptureFixture[str]) -> None:
    print_progress(SweepProgress(done=3, running=1, failed=0, waiting=0, total=6, pruned=2))
    assert capsys.readouterr().out.startswith("[5/6] done 3  running 1  failed 0  pruned 2  best -")
    summary = SweepSummary(3, 0, None, None, None, 1.0, n_run=3, n_pruned=2)
    assert "this run 3 complete, 0 failed, 2 pruned;" in summary.line("s")
    only_pruned = SweepSummary(0, 0, None, None, None, 1.0, n_pruned=1)
    assert "this run 0 complete, 0 failed, 1 pruned;" in only_pruned.line("s")


def test_bench_dialogues_a_model_cannot_score_are_said_once(
    make_job, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first completed trial whose bench left dialogues unscored prints one warning line;
    the next ones do not repeat it."""
    job = make_job(design={"kind": "grid", "volumes": [100], "balance": [1.0], "seeds": [0, 1]})
    info = {"bench_skipped": 2, "bench_skip_reasons": ["b1: too long", "b2: too long"]}

    def scored(ref: Any) -> TrialResult:
        return TrialResult(metrics={"score": 0.5}, seconds=0.1, info=info)

    pool = ScriptedPool(scored)
    d, study = _dispatcher(job, pool)
    seen: list[SweepProgress] = []
    d.progress = seen.append
    d.run()
    d.writer.close()
    assert not [p.last for p in seen if p.last.startswith("warning:")]  # not a progress line
    warnings = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    assert warnings == [
        "warning: 2 bench dialogue(s) cannot be scored with this model and are left out of every "
        "trial's score (b1: too long; b2: too long); MLflow: info/bench_skipped"
    ]
    assert len([t for t in study.get_trials() if t.state == TrialState.COMPLETE]) == 2


def test_ties_go_to_the_earlier_trial_and_a_whole_score_reads_as_a_score(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The sweep's best on a tie is the earlier trial, as `ablate status` (Optuna's best_trial)
    names it, whatever order trials finish in; a score of 1 prints as `1.0`, not a count."""
    tally = Tally()
    for number, value in ((3, 0.5), (1, 0.5), (2, 0.4)):
        tally.offer("maximize", number, value, {})
    assert (tally.best_trial, tally.best_value) == (1, 0.5)
    print_progress(SweepProgress(1, 0, 0, 0, 1, best_value=1.0, best_trial=14))
    print_progress(SweepProgress(1, 0, 0, 0, 1, best_value=0.65123, best_trial=2))
    out = capsys.readouterr().out
    assert "best 1.0 (trial 14)" in out and "best 0.6512 (trial 2)" in out


def test_a_pruned_trials_run_keeps_what_the_pruner_saw(make_job) -> None:
    """Review m: a pruned trial's MLflow run was FINISHED with no metric at all; the values
    Optuna's pruner compared never reached MLflow. Now they are its `intermediate/<metric>`
    by step, with `seconds` and the step it was pruned at."""
    from ablate.tracking.client import mlflow_client

    job = make_job(
        design={"kind": "search", "n_trials": 1, "sampler": "random", "prune": True,
                "volumes": [100]},
    )  # fmt: skip

    def dies(ref: Any) -> TrialResult:
        raise WorkerLost("RayActorError: the actor died while stopping")

    pool = ScriptedPool(dies, values=[(1, 0.4), (2, 0.45)])
    study = open_study(job)
    writer = RunWriter(job, start_sweep(job))
    d = Dispatcher(job, study, pool, writer, Tally(), collections.deque(), 1, TYPES, None)
    d.idle = pool.start(1)
    d.dispatch()
    d.poll()  # the pruner reads the two values
    ((ref, f),) = d.flight.items()
    f.pruned = True
    d.finished(d.flight.pop(ref), ref)
    writer.close()
    client = mlflow_client(job.tracking_uri)
    (run,) = [r for r in client.search_runs([client.get_experiment_by_name(job.study).experiment_id])
              if r.data.tags.get("ablate.role") == "trial"]  # fmt: skip
    assert run.data.tags["ablate.state"] == "PRUNED"
    history = client.get_metric_history(run.info.run_id, "intermediate/score")
    assert [(m.step, m.value) for m in history] == [(1, 0.4), (2, 0.45)]
    assert run.data.metrics["info/pruned_at_step"] == 2 and "seconds" in run.data.metrics


def test_a_requeued_trials_run_names_the_trial_it_reruns(make_job) -> None:
    """Review m: the rerun of a stopped driver's trial had no link to the KILLED run it
    replaces (Optuna had `requeued_from`); its run now has the tag `info/requeued_from`."""
    from ablate.tracking.client import mlflow_client

    job = make_job()
    from ablate.sweep.workers import TrialError

    def fails_once(ref: Any) -> TrialResult:
        if ref == 1:  # a failed rerun keeps the tag too (it had no result to carry it)
            raise TrialError("RuntimeError: out of memory")
        return TrialResult(metrics={"score": 0.5}, seconds=0.1)

    pool = ScriptedPool(fails_once)
    d, study = _dispatcher(job, pool)
    (waiting,) = study.get_trials()
    study._storage.set_trial_user_attr(waiting._trial_id, "requeued_from", 4)
    d.run()
    d.writer.close()
    client = mlflow_client(job.tracking_uri)
    exp = client.get_experiment_by_name(job.study).experiment_id
    runs = [r for r in client.search_runs([exp]) if r.data.tags.get("ablate.role") == "trial"]
    assert [r.data.tags.get("info/requeued_from") for r in runs] == ["4"]
    assert runs[0].info.status == "FAILED"


def test_a_trial_that_failed_is_not_pruned_by_the_next_poll(make_job) -> None:
    """Review n: polling before handling the trial that had just finished pruned a trial that
    had failed (its last values were low): recorded PRUNED, its error lost, never retried."""
    from optuna.trial import TrialState

    from ablate.sweep.workers import TrialError

    job = make_job(design={"kind": "search", "n_trials": 4, "sampler": "random", "prune": True,
                           "volumes": [100]})  # fmt: skip

    class Slow(ScriptedPool):
        def wait(self, refs: list[Any], timeout: float) -> list[Any]:
            time.sleep(1.05)  # each trial takes just over a second: a poll is due each time
            return refs[:1]

        def progress(self, actor: Any) -> list[tuple[int, float]] | None:
            low = len(self.calls) > 3  # the 4th trial reports low values, then crashes
            return [(1, 0.1), (2, 0.1), (3, 0.1)] if low else [(1, 0.9), (2, 0.9), (3, 0.9)]

    def outcome(ref: Any) -> TrialResult:
        if ref <= 3:
            return TrialResult(metrics={"score": 0.9}, seconds=1.0)
        raise TrialError("RuntimeError: evaluation crashed")

    pool = Slow(outcome)
    study = open_study(job)
    writer = RunWriter(job, start_sweep(job))
    d = Dispatcher(job, study, pool, writer, Tally(), collections.deque(), 4, TYPES, None)
    d.run()
    writer.close()
    last = study.get_trials()[-1]
    assert last.state == TrialState.FAIL and "evaluation crashed" in last.user_attrs["error"]
    assert pool.stopped == 0


def test_progress_lines_count_the_trial_a_freed_worker_took_and_show_the_trials_own_time(
    make_job,
) -> None:
    """Review p #8a-b: every line said `running 1` with 2 workers busy (printed before the freed
    worker took the next trial), and the time shown ran from the first dispatch (a retried
    trial's included its wait for a worker), not the trial's recorded `seconds`."""
    job = make_job(
        design={"kind": "grid", "volumes": [100, 200], "balance": [0.5, 1.0], "seeds": [0]}
    )
    pool = ScriptedPool(lambda ref: TrialResult(metrics={"score": 0.5}, seconds=7.0), workers=2)
    d, _ = _dispatcher(job, pool)
    lines: list[SweepProgress] = []
    d.progress = lines.append
    d.run()
    d.writer.close()
    assert [p.running for p in lines] == [2, 2, 1, 0]
    assert all(p.last.endswith("-> 0.5 in 7.0s") for p in lines), [p.last for p in lines]
