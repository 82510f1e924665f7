"""The driver's loop as events: one method per thing that can happen to a trial.

    dispatch   idle workers take the next enqueued trial, or one the sampler asks for
    poll       nothing finished this second: start MLflow runs of long trials, feed pruning
    completed  the worker returned a result with a finite objective: tell Optuna, log it
    failed     the trial raised, or returned no usable objective: tell FAIL (after
               JUDGE_FAILURES_IN_A_ROW trials failed by an unavailable judge, the sweep stops)
    worker_lost  the worker died under the trial: the next idle worker retries it first (at
               most MAX_WORKER_RETRIES times, then FAIL); idle workers that died with it are
               dropped, and a replacement that holds nothing until the cluster has room is
               requested: a sweep without spare capacity goes on at the reduced capacity
    (elastic)  every GROW_EVERY_SECONDS, workers are requested up to what the cluster has now:
               a node that joins mid-sweep takes trials
    pruned     the driver pruned the trial (even if its worker died meanwhile: never retried)
    (lanes)    a job with `models:` has a lane per model: its queue of enqueued trials and its
               workers (of its model's size); a worker takes only its lane's trials, and once
               a lane has nothing left to run its idle workers are retired, so that the next
               model's (perhaps larger) workers fit

Every ending goes through `_finish`: tell Optuna, count it, queue its MLflow run, print a line.
The dispatcher alone asks and tells; workers only compute a `TrialResult`.
"""

# long module: one method per event of the driver's loop, which read best in one place

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ablate.bench.judge import JudgeUnavailable
from ablate.config import JobSpec
from ablate.design import SEARCH
from ablate.errors import UserError
from ablate.mixture import Mixture
from ablate.result import TrialResult
from ablate.search import feasible, objective_values, suggest
from ablate.study import TRIAL_SETTINGS_ID, SettingsLevel, mixture_from_attrs, trial_attrs
from ablate.study.lock import check_driver_lock
from ablate.study.optuna_fast import pop_waiting, record_mixture_params
from ablate.sweep.lanes import lanes
from ablate.sweep.summary import (
    SweepProgress,
    Tally,
    left_out_note,
    metric_stop,
    same_for_every_trial,
    snapshot,
    unusable_metric,
)
from ablate.sweep.workers import TrialError, WorkerLost, WorkerPool
from ablate.tracking import RunWriter, start_trial

#: How often a worker may die under one trial before the trial is told FAIL.
MAX_WORKER_RETRIES = 2
#: The sweep stops after this many trials in a row failed because the judge was unavailable.
JUDGE_FAILURES_IN_A_ROW = 3
#: A dispatched trial gets its RUNNING MLflow run once it has run this long; shorter ones get one
#: finished run when they end (3 tracking writes instead of 5: see benchmarks/dispatch_benchmark.py).
RUN_AFTER_SECONDS = 1.0
#: How often the driver looks for new capacity (a node that joined) and requests workers on it.
GROW_EVERY_SECONDS = 5.0
#: While no worker can be placed, the "waiting for a worker" line comes back this often.
WAIT_LINE_SECONDS = 60.0


@dataclass
class InFlight:
    """A dispatched trial: its Optuna trial, mixture, worker and MLflow run (once started)."""

    trial: Any
    mixture: Mixture
    actor: Any
    run_id: str | None
    started: float
    retries: int = 0
    reported: int = 0  # intermediate values already reported to Optuna
    pruned: bool = False
    steps: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    """Those values, (step, value): logged to the trial's MLflow run with its result."""

    def seconds(self) -> float:
        return time.perf_counter() - self.started


class Dispatcher:
    """Runs the study's WAITING trials and `n_ask` sampled ones on the pool's workers."""

    def __init__(
        self,
        job: JobSpec,
        study: Any,
        pool: WorkerPool,
        writer: RunWriter,
        tally: Tally,
        waiting: collections.deque[int],
        n_ask: int,
        task_types: list[str],
        progress: Callable[[SweepProgress], None] | None,
        level: SettingsLevel | None = None,
    ) -> None:
        self.job, self.study, self.pool, self.writer, self.tally = job, study, pool, writer, tally
        self.waiting = waiting  # the WAITING trials' storage ids, read once by the driver
        self.queues = lanes(job, study, waiting)
        """Lane (model name, "" in a one-model job) -> its WAITING trials' storage ids."""
        self.n_waiting = len(waiting)
        self.n_ask = n_ask
        self.task_types = task_types
        self.progress = progress
        self.level = level  # the settings the trials are trained with (stamped when missing)
        self.search = job.design.kind == SEARCH
        self.prune = self.search and job.design.prune
        self.flight: dict[Any, InFlight] = {}
        self.idle: list[Any] = []
        self.tracking_up = writer.parent_run_id is not None  # RUNNING MLflow runs are started
        self.retry: collections.deque[InFlight] = collections.deque()
        """Trials whose worker died, waiting for the next idle worker (before anything new)."""
        self.grown = self.polled = time.perf_counter()
        self.said_wait: float | None = None  # the last "waiting for a worker" line's time
        self.said: list[str] = []  # progress lines to print after the next dispatch

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        """Until nothing waits or runs: dispatch, wait a second for a result, handle the event."""
        self.idle = self.pool.start(self.wanted())
        try:
            while self.flight or self.retry or self.n_waiting or self.n_ask:
                check_driver_lock()  # another driver took over: tell nothing it requeued
                self.idle += self.pool.started()
                self.dispatch()
                self._flush()  # after dispatch: `running` counts the trial a worker just took
                if not self.flight:
                    if not (self.retry or self.n_waiting or self.n_ask):
                        break
                    self.wait_for_workers()
                    continue
                ready = self.pool.wait(list(self.flight), timeout=RUN_AFTER_SECONDS)
                if ready:  # (first: a poll could prune a trial that has already failed)
                    self.finished(self.flight.pop(ready[0]), ready[0])
                # every second, even while trials keep finishing (short trials, many in
                # flight): polled only when none finished, pruning never saw a value
                if not ready or time.perf_counter() - self.polled >= RUN_AFTER_SECONDS:
                    self.poll()
            self._flush()
        except BaseException:
            with contextlib.suppress(Exception):
                self._flush()  # the lines of what ended before the error
            raise
        finally:
            # Interrupted (Ctrl-C, an error): stop the workers; the driver then fails and
            # re-enqueues the trials that were in flight, as a restarted driver would.
            self.pool.kill_all(self.idle)

    def wanted(self, extra: str | None = None) -> dict[str, int]:
        """Lane -> its trials not finished (in flight, to retry, enqueued, to ask), in lane order;
        `extra`: one more in that lane (a lost worker's trial, about to be retried)."""
        out = {lane: len(q) for lane, q in self.queues.items()}
        first = next(iter(out))
        out[first] += self.n_ask  # a search has one lane
        for f in [*self.flight.values(), *self.retry]:
            lane = f.mixture.model if f.mixture.model in out else first
            out[lane] += 1
        if extra is not None:
            out[extra if extra in out else first] += 1
        return out

    def wait_for_workers(self) -> None:
        """Trials wait but no worker is up (all lost, or none placed yet): wait for one, trying
        every GROW_EVERY_SECONDS and saying so once a minute. (`started` returns at once when
        no worker is requested: the loop spun, printing ~1,300 lines a second.)"""
        tried = time.perf_counter()
        self.pool.grow(self.wanted())
        up = self.pool.started(timeout=GROW_EVERY_SECONDS)
        if up:
            self.idle += up
            self.said_wait = None
            return
        if self.said_wait is None or tried - self.said_wait >= WAIT_LINE_SECONDS:
            self.said_wait = tried
            self._say("waiting for a worker: the cluster has no free slot for a trial now")
            self._flush()
        time.sleep(max(0.0, GROW_EVERY_SECONDS - (time.perf_counter() - tried)))

    def finished(self, f: InFlight, ref: Any) -> None:
        """Route a finished remote call to its event."""
        if self.prune:
            self._feed_pruner(f)
        try:
            result = self.pool.result(ref)
        except WorkerLost as err:
            if f.pruned:
                self.pruned(f, lost_worker=True)
            else:
                self.worker_lost(f, str(err))
            return
        except TrialError as err:
            if f.pruned:
                self.pruned(f)
            else:
                self.idle.append(f.actor)
                self.failed(f, str(err))
            return
        self.idle.append(f.actor)
        self.completed(f, result)

    # ------------------------------------------------------------------ events

    def dispatch(self) -> None:
        """Give every idle worker a trial of its lane: a retry first, then the next enqueued one,
        else one the sampler asks; then retire the idle workers of lanes with nothing left."""
        for actor in reversed(list(self.idle)):  # the last idle worker first
            f = next(
                (f for f in self.retry if self._lane_of(f.mixture) == self.pool.lane(actor)), None
            )
            if f is not None:
                self.retry.remove(f)
                self.idle.remove(actor)
                f.actor = actor
                self.flight[self.pool.submit(f.actor, self.job, f.mixture)] = f
        for actor in reversed(list(self.idle)):
            while (trial := self._next_trial(self.pool.lane(actor))) is not None:
                try:
                    mixture = self._mixture_of(trial)
                except ValueError as err:
                    self._finish_undispatched(trial, str(err))
                    continue
                self.idle.remove(actor)
                ref = self.pool.submit(actor, self.job, mixture)
                self.flight[ref] = InFlight(trial, mixture, actor, None, time.perf_counter())
                break
        self._retire_idle()

    def _next_trial(self, lane: str) -> Any:
        """The lane's next enqueued trial (RUNNING now), else one the sampler asks, else None."""
        queue = self.queues.get(lane)
        if queue:
            trial = pop_waiting(self.study, queue)
            self.n_waiting = sum(len(q) for q in self.queues.values())
            if trial is not None:
                return trial
        if self.n_ask and lane == next(iter(self.queues)):
            self.n_ask -= 1
            return self.study.ask()  # the sampler decides
        return None

    def _lane_of(self, mixture: Mixture) -> str:
        return mixture.model if mixture.model in self.queues else next(iter(self.queues))

    def _retire_idle(self) -> None:
        """Several lanes: the idle workers of a lane with nothing left to run (queued, to
        retry or in flight) are retired while another lane has work, so its workers fit."""
        if len(self.queues) < 2 or not self.idle:
            return
        wanted = self.wanted()
        done = [a for a in self.idle if not wanted.get(self.pool.lane(a), 0)]
        if done and any(wanted.values()):
            for actor in done:
                self.idle.remove(actor)
                self.pool.retire(actor)
            self.pool.grow(wanted)

    def poll(self) -> None:
        """Once a second: long trials get their RUNNING MLflow run; pruning
        reads the new intermediate values and stops the trials Optuna prunes; now and then,
        workers are requested on new capacity."""
        self.polled = time.perf_counter()
        if time.perf_counter() - self.grown >= GROW_EVERY_SECONDS:
            self.grown = time.perf_counter()
            self.pool.grow(self.wanted())
        for f in self.flight.values():
            if f.run_id is None and f.seconds() >= RUN_AFTER_SECONDS and self.tracking_up:
                try:
                    f.run_id = start_trial(
                        self.job,
                        str(self.writer.parent_run_id),
                        f.trial.number,
                        f.mixture,
                        settings=self.writer.settings_id,
                    )
                except Exception:  # the tracking server went down: finished runs come later
                    self.tracking_up = False
            if self.prune and not f.pruned:
                self._feed_pruner(f)
                if f.trial.should_prune():
                    f.pruned = True
                    self.pool.stop(f.actor)

    def completed(self, f: InFlight, result: TrialResult) -> None:
        metric = self.job.objective.metric
        value = result.metrics.get(metric)
        if value is None or not isinstance(value, int | float) or not math.isfinite(value):
            first = metric not in result.metrics and not self.tally.done  # the job's mistake
            self.failed(f, unusable_metric(metric, value, result.metrics), result)
            if first:  # every other trial would fail the same way: stop now
                raise UserError(metric_stop(self.job, f.mixture.name, result.metrics))
            return
        # one storage write per attribute: set only what the enqueued defaults do not say
        f.trial.set_user_attr("metrics", {k: float(v) for k, v in result.metrics.items()})
        f.trial.set_user_attr("seconds", float(result.seconds))
        if result.selection_hash:
            f.trial.set_user_attr("selection_hash", result.selection_hash)
        if result.counts:
            f.trial.set_user_attr("counts", dict(result.counts))
        if isinstance(result.info.get("judge"), dict):
            f.trial.set_user_attr("judge", result.info["judge"])  # who scored it (never the key)
        self.tally.judge_failures = 0
        values = objective_values(self.job, float(value), result, f.mixture, self.pool.gpus)
        self.study.tell(f.trial, values if len(values) > 1 else values[0])
        self.tally.done += 1
        self.tally.run += 1
        best = float(value) if not self.job.design.max_share or feasible(f.trial) else None
        self.tally.offer(self.job.objective.direction, f.trial.number, best, f.trial.user_attrs)
        # the trial's own time (not a retried one's wait for a worker, nor its lost try)
        self._log(f, result, "COMPLETE", None, f"-> {value:.4g} in {result.seconds:.1f}s")
        note = None if self.tally.warned else left_out_note(result.info)
        if note and self.progress is not None:  # its own line, once: every trial has that bench
            self.tally.warned = True
            print(note, flush=True)

    def failed(self, f: InFlight, error: str, result: TrialResult | None = None) -> None:
        from optuna.trial import TrialState

        f.trial.set_user_attr("error", error[:4000])
        f.trial.set_user_attr("retries", f.retries)
        self.study.tell(f.trial, state=TrialState.FAIL)
        self.tally.failed += 1
        note = f"FAILED after {f.seconds():.1f}s: {error.splitlines()[0][:200]}"
        self._log(f, result, "FAIL", error, note)
        if (stop := same_for_every_trial(self.job, error, self.tally.done)) is not None:
            raise UserError(stop)
        self._judge_failed(error)

    def _judge_failed(self, error: str) -> None:
        """Stop the sweep once JUDGE_FAILURES_IN_A_ROW trials in a row failed because the judge
        was unavailable (a refused key, a dead server): the rest would fail the same way."""
        if not error.startswith(f"{JudgeUnavailable.__name__}: "):
            self.tally.judge_failures = 0
            return
        self.tally.judge_failures += 1
        if self.tally.judge_failures >= JUDGE_FAILURES_IN_A_ROW:
            raise UserError(
                f"sweep stopped: {self.tally.judge_failures} trials in a row failed because the "
                f"judge was unavailable ({error.removeprefix('JudgeUnavailable: ')[:300]}); fix "
                "the judge and run `ablate sweep` again: the failed trials run again"
            )

    def worker_lost(self, f: InFlight, error: str) -> None:
        self.pool.forget(f.actor)
        self.idle = self.pool.alive(self.idle)  # idle workers on a lost node went with it
        # a replacement, placed when there is room
        self.pool.grow(self.wanted(extra=self._lane_of(f.mixture)))
        if f.retries >= MAX_WORKER_RETRIES:
            self.failed(f, f"worker died {f.retries + 1} times: {error}")
            return
        f.retries += 1
        f.trial.set_user_attr("retries", f.retries)
        self.retry.append(f)  # the next idle worker takes it, before anything new
        self._say(
            f"{f.mixture.name}: worker died ({error.split(':')[0]}), retry {f.retries}/{MAX_WORKER_RETRIES}"
        )

    def pruned(self, f: InFlight, lost_worker: bool = False) -> None:
        """Told PRUNED; a worker that died while stopping is replaced, the trial not rerun."""
        from optuna.trial import TrialState

        if lost_worker:
            self.pool.forget(f.actor)
            self.pool.grow(self.wanted())
        else:
            self.idle.append(f.actor)
        self.study.tell(f.trial, state=TrialState.PRUNED)
        self.tally.pruned += 1
        # what the pruner saw, in the run (it had no metric at all: a finished run with no score)
        at = f.steps[-1][0] if f.steps else 0
        result = TrialResult(metrics={}, seconds=f.seconds(), info={"pruned_at_step": at})
        self._log(f, result, "PRUNED", None, f"pruned at step {f.reported}")

    # ------------------------------------------------------------------ helpers

    def _mixture_of(self, trial: Any) -> Mixture:
        """An enqueued trial's mixture from its attributes; a sampled one's from the sampler
        (its attributes are set then). Enqueued search trials still `suggest`, so the sampler
        sees their parameters. A trial without a `settings_id` (asked, proposed) gets this run's."""
        attrs = trial.user_attrs
        if self.level is not None and TRIAL_SETTINGS_ID not in attrs:
            for key, value in self.level.attrs().items():
                trial.set_user_attr(key, value)
        if not self.search:
            mixture = mixture_from_attrs(attrs, self.job.taxonomy)
        elif "proportions" in attrs:
            suggest(trial, self.job, self.task_types)
            mixture = mixture_from_attrs(attrs, self.job.taxonomy)
        else:
            mixture = suggest(trial, self.job, self.task_types)
            for key, value in trial_attrs(mixture).items():
                trial.set_user_attr(key, value)
        if isinstance(mixture.proportions, dict):  # for optuna-dashboard (once per trial)
            volume = None if self.search and self.job.design.search_volume else mixture.volume
            record_mixture_params(self.study, trial, mixture.proportions, volume, self.task_types)
        return mixture

    def _finish_undispatched(self, trial: Any, error: str) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr("error", error)
        self.study.tell(trial, state=TrialState.FAIL)
        self.tally.failed += 1

    def _feed_pruner(self, f: InFlight) -> None:
        """Pass a running trial's new intermediate values from its worker to Optuna."""
        values = self.pool.progress(f.actor)
        if values is None:
            return
        for step, value in values[f.reported :]:
            f.trial.report(value, step)
            f.steps.append((int(step), float(value)))
        f.reported = len(values)

    def _log(
        self, f: InFlight, result: TrialResult | None, state: str, error: str | None, note: str
    ) -> None:
        """Queue the finished trial's MLflow run and print its line."""
        if result is not None and f.steps:  # the values Optuna's pruner compared, by step
            result = dataclasses.replace(result, info={**result.info, "intermediate": f.steps})
        before = f.trial.user_attrs.get("requeued_from")  # the stopped driver's trial it reruns
        if before is not None:  # (a failed rerun too: an empty result carries the tag)
            result = result or TrialResult(metrics={})
            result = dataclasses.replace(result, info={**result.info, "requeued_from": before})
        self.writer.submit(
            f.trial.number,
            f.mixture,
            result,
            state,
            run_id=f.run_id,
            error=error,
            seconds=f.seconds(),
        )
        self._say(f"{f.mixture.name} {note}")

    def _say(self, last: str) -> None:
        """Queue a progress line; `_flush` prints it once the idle workers have their trials."""
        if self.progress is not None:
            self.said.append(last)

    def _flush(self) -> None:
        while self.said and self.progress is not None:
            pending = self.n_waiting + self.n_ask + len(self.retry)
            self.progress(snapshot(self.tally, len(self.flight), pending, self.said.pop(0)))
