"""`ablate sweep JOB.yaml` -> `run_sweep(job, task_types, address)`: Optuna decides, Ray runs,
MLflow records.

`run_sweep` reads top to bottom: check the bench's LLM judge (`ablate.plan.check_job_judge`:
key, server, model, a test rating, the sanity probe; before Ray or the study is touched), open
the study and take its driver lock, check that the job trains with the settings the study's
trials were trained with (`ablate.study.settings`: refused before any work when they differ,
unless the change is recorded as a factor), open the sweep's MLflow run, reconcile what a dead
driver left behind, enqueue the design (skipping points already done or queued), then dispatch
until nothing waits or runs (a ladder: then enqueue the next rung's promoted mixtures and
dispatch again, `ablate.sweep.ladder`), and close the books. The judge's identity (model, host, rubric
version, settings; never the key) goes onto the study (`ablate.judge`) and the sweep's MLflow
run (`ablate.judge.*` tags); each judged trial carries the one that scored it. The Optuna study
is the one record of truth: the driver alone asks and tells; workers only compute a
`TrialResult`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

from ablate.config import JobSpec, redact
from ablate.design import SEARCH
from ablate.errors import UserError, cause_line
from ablate.objectives import prepare_objective
from ablate.plan import check_job_judge, design_mixtures, search_start
from ablate.search import cube_params, feasible, make_sampler
from ablate.study import (
    SettingsLevel,
    check_settings,
    driver_lock,
    drop_outside,
    enqueue_design,
    job_settings,
    mixture_from_attrs,
    open_study,
    storage_lost,
    study_uid,
)
from ablate.study.codec import STUDY_JUDGE, trial_attrs
from ablate.study.lock import LockLost
from ablate.study.optuna_fast import waiting_ids
from ablate.sweep.dispatcher import Dispatcher
from ablate.sweep.ladder import advance_ladder, is_ladder, ladder_lines
from ablate.sweep.summary import (
    SweepProgress,
    SweepSummary,
    Tally,
    best_mixture_mean,
    print_progress,
)
from ablate.sweep.sync import backfill_runs, reconcile_runs
from ablate.sweep.workers import WorkerPool, check_cluster_address, cluster_for
from ablate.tracking import (
    RunWriter,
    check_local_store,
    check_tracking_server,
    finish_sweep,
    refused_request,
    start_sweep,
    sweep_links,
    tag_sweep_judge,
)
from ablate.trial.lora_targets import check_model_paths


def run_sweep(
    job: JobSpec,
    task_types: list[str],
    address: str | None = None,
    progress: Callable[[SweepProgress], None] | None = print_progress,
    allow_changed_settings: bool = False,
    judge_probe: bool = True,
) -> SweepSummary:
    """Run (or resume) the job's sweep until every design point has a finished trial.
    `allow_changed_settings`: settings that differ from the study's are recorded as a factor
    (new trials carry their `settings_id`), not refused; `judge_probe=False`: no judge probe."""
    start_wall = time.perf_counter()
    check_cluster_address(address)  # before the study is opened (and its lock file made)
    judge = check_job_judge(job, probe=judge_probe)  # before Ray, the study or any training
    if judge is not None and progress is not None:
        print(judge.line(), flush=True)
    check_before_work(job)
    mixtures = sweep_design(job, task_types, say=progress is not None)
    settings = job_settings(job, task_types)
    study = open_study(job)
    with driver_lock(job, study):
        level, note = check_settings(study, job, settings, allow_changed_settings)
        if note and progress is not None:
            print(note, flush=True)
        # a finished study's rerun says "0 to run" without Ray (10-20 s); else a cluster
        idle = nothing_to_run(job, study, mixtures, level)  # without room is refused here
        with contextlib.nullcontext() if idle else cluster_for(job, address):
            parent = open_sweep_run(job, study_uid(study), progress is not None)
            record_judge(job, study, parent, judge)
            links = sweep_links(job, parent) if parent is not None else None
            if links and progress is not None:
                print(links, flush=True)  # once, in the sweep's first lines (not per trial)
            requeued = reconcile_runs(job, study, parent)
            dropped = enqueue_all(job, study, mixtures, task_types, level)
            tally = tally_study(job, study)
            say_resume(job, study, len(requeued), progress is not None, dropped, level)
            n_ask = trials_to_ask(job, study, level)
            late = idle and (n_ask or waiting_ids(study, level.owns))  # (never, if idle is right)
            with cluster_for(job, address) if late else contextlib.nullcontext():
                run_trials(job, study, parent, tally, n_ask, task_types, progress, level)
        pareto = [t.number for t in study.best_trials] if len(study.directions) > 1 else []
    best_mix = mixture_from_attrs(tally.best_attrs, job.taxonomy) if tally.best_attrs else None
    return SweepSummary(
        n_complete=tally.done,
        n_failed=tally.failed,
        best_value=tally.best_value,
        best_trial=tally.best_trial,
        best_mixture=best_mix,
        wall_seconds=time.perf_counter() - start_wall,
        n_run=tally.run,
        n_pruned=tally.pruned,
        parent_run_id=parent or "",
        pareto_front=pareto,
        settings_id=level.id,
        notes=[note] if note else [],
        ladder=ladder_lines(job, study, task_types) if is_ladder(job) else [],
    )


def check_before_work(job: JobSpec) -> None:
    """What would fail every trial or the sweep's record, refused once before Ray or the study."""
    prepare_objective(job)  # e.g. a bad `module:function` target fails here, once
    check_model_paths(job)  # a local model folder that is not there: before any trial fails on it
    check_tracking_server(job)  # a server that refuses ablate (403 Invalid Host header)
    check_local_store(job)  # an unwritable or foreign `tracking:` file: before Ray


def nothing_to_run(job: JobSpec, study: Any, mixtures: list[Any], level: SettingsLevel) -> bool:
    """Whether this run has nothing to train: no trial runs or waits at these settings, a
    search has nothing left to ask, and every point of the design has a complete trial (a
    search's start points: a finished one, as `enqueue` does not retry them). A ladder is
    never idle here: its rungs are decided as the run goes."""
    from optuna.trial import TrialState

    if is_ladder(job) or trials_to_ask(job, study, level):
        return False
    trials = study.get_trials(deepcopy=False)
    done = (TrialState.COMPLETE, TrialState.FAIL) if job.design.kind == SEARCH else ()
    have = set()
    for t in trials:
        if t.state == TrialState.RUNNING or (
            t.state == TrialState.WAITING and level.owns(t.user_attrs)
        ):
            return False
        if (t.state == TrialState.COMPLETE or t.state in done) and level.owns(t.user_attrs):
            have.add(t.user_attrs.get("design_key"))
    return all(trial_attrs(m)["design_key"] in have for m in mixtures)


def record_judge(job: JobSpec, study: Any, parent: str | None, judge: Any) -> None:
    """The judge's identity on the study and the sweep's parent run (what `status` shows)."""
    if judge is not None:
        study.set_user_attr(STUDY_JUDGE, judge.identity)
        if parent is not None:
            tag_sweep_judge(job, parent, judge.identity)


def sweep_design(job: JobSpec, task_types: list[str], say: bool = True) -> list[Any]:
    """The mixtures to enqueue up front (`ablate.plan.design_mixtures`); a search says which
    warm-start points it left out (they break a `max_share` cap)."""
    if job.design.kind != SEARCH:
        return design_mixtures(job, task_types)
    mixtures, note = search_start(job, task_types)
    if note and say:
        print(note, flush=True)
    return mixtures


def open_sweep_run(job: JobSpec, uid: str, say: bool = True) -> str | None:
    """The sweep's MLflow run (created the first time: this makes a local tracking database
    before any worker exists). A tracking server that does not answer is not a reason to stop:
    the sweep goes on with Optuna as its record (None), and the next `ablate sweep` that
    reaches the server writes the missing runs (`backfill_runs`). A local store that fails is."""
    try:
        return start_sweep(job, uid)
    except Exception as err:  # MlflowException, requests' ConnectionError, ...
        if not job.tracking_uri.startswith(("http://", "https://")):
            raise
        refused = refused_request(job, err)  # it answers, with 401/403: a rerun cannot help
        if refused:
            raise UserError(refused) from None
        if say:
            reason = redact(cause_line(err))  # `[Errno 111] Connection refused`
            print(
                f"MLflow at {job.tracking_shown} does not answer ({reason}); the sweep goes on "
                "with the Optuna study as its record, and the next `ablate sweep` writes the "
                "missing MLflow runs once the server answers",
                flush=True,
            )
        return None


def enqueue_all(
    job: JobSpec, study: Any, mixtures: list[Any], task_types: list[str], level: SettingsLevel
) -> int:
    """What this run is to run: the design's points not yet there (a ladder: rung 0, and what
    a dead driver decided or left undecided); a fixed design that shrank since the last run
    drops its waiting trials outside it (`drop_outside`): how many."""
    if is_ladder(job):
        advance_ladder(job, study, task_types, level, restart=True)
        return 0
    enqueue(job, study, mixtures, task_types, level)
    return drop_outside(study, mixtures, level) if job.design.kind != SEARCH else 0


def enqueue(
    job: JobSpec,
    study: Any,
    mixtures: list[Any],
    task_types: list[str],
    level: SettingsLevel | None = None,
) -> int:
    """Enqueue the design's points not yet in the study (at these settings); a search also gets
    its sampler, seeded from the trial count so that a restarted driver does not replay its
    start-up points."""
    if job.design.kind != SEARCH:
        return enqueue_design(study, mixtures, level=level)
    study.sampler = make_sampler(job, len(study.get_trials(deepcopy=False)))
    params = lambda m: cube_params(job, task_types, m)  # noqa: E731
    # a failed start point counted toward n_trials: retried, it would run past them each rerun
    return enqueue_design(study, mixtures, params, level=level, retry_failed=False)


def tally_study(job: JobSpec, study: Any) -> Tally:
    """The study's COMPLETE trials so far and the best of them (of those that keep the
    `max_share` caps: what the Pareto front counts too)."""
    from optuna.trial import TrialState

    tally = Tally()
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        value = t.values[0] if t.values and feasible(t) else None
        tally.offer(job.objective.direction, t.number, value, t.user_attrs)
        tally.done += 1
    return tally


def say_resume(
    job: JobSpec, study: Any, requeued: int, say: bool, dropped: int, level: SettingsLevel
) -> None:
    if say and (
        line := resume_line(job, study, requeued, dropped, search_counted(job, study, level))
    ):
        print(line, flush=True)


def resume_line(
    job: JobSpec, study: Any, requeued: int, dropped: int = 0, counted: int = 0
) -> str | None:
    """What a rerun found, before it runs anything: `resuming study `S`: 3 complete (kept),
    2 left running by a driver that stopped (requeued), 5 to run`; None for a new study.
    `dropped`: waiting trials this run left out (`drop_outside`); `counted`: the trials that
    count toward a search's `n_trials` (`search_counted`)."""
    from optuna.trial import TrialState

    counts = {s: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        counts[t.state] += 1
    done = counts[TrialState.COMPLETE]
    if not (done or requeued or counts[TrialState.FAIL] or counts[TrialState.PRUNED]):
        return None  # a new study: its trials were enqueued just now
    parts = [f"{done} complete (kept, not rerun)"]
    if requeued:
        parts.append(f"{requeued} left running by a driver that stopped (failed, requeued)")
    parts.append(f"{counts[TrialState.WAITING]} to run")
    if job.design.kind == SEARCH:
        # every trial of the study counts, a fixed design's too (a grid study given a search
        # with n_trials 4 ran 1 trial, then "nothing left to run", and never said why)
        n_ask = max(0, job.design.n_trials - counted)
        parts.append(
            f"{n_ask} more to ask (`design.n_trials` {job.design.n_trials} counts the study's "
            f"{counted} trial(s) so far, whatever design made them: raise it to search further)"
        )
    if dropped:
        parts.append(
            f"{dropped} waiting trial(s) dropped, never run: this job's design no longer has "
            "their points (put them back in the job and `ablate sweep` runs them)"
        )
    return f"resuming study `{job.study}`: " + ", ".join(parts)


def trials_to_ask(job: JobSpec, study: Any, level: SettingsLevel | None = None) -> int:
    """A search's trials still to ask: `n_trials` minus those in the study at these settings."""
    counted = search_counted(job, study, level)
    return max(0, job.design.n_trials - counted) if job.design.kind == SEARCH else 0


def search_counted(job: JobSpec, study: Any, level: SettingsLevel | None = None) -> int:
    """The study's trials at these settings, which count toward a search's `n_trials` (requeued
    copies of a dead driver's trials do not: their copies run instead); 0 for other designs."""
    if job.design.kind != SEARCH:
        return 0
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if not t.user_attrs.get("requeued") and (level is None or level.owns(t.user_attrs))
    )


def run_trials(
    job: JobSpec,
    study: Any,
    parent: str | None,
    tally: Tally,
    n_ask: int,
    task_types: list[str],
    progress: Callable[[SweepProgress], None] | None,
    level: SettingsLevel | None = None,
) -> None:
    """Backfill MLflow, run what waits (and what a search asks) on Ray, close the sweep's run.

    Finished trials' runs are written by a thread, in batches (MLflow follows Optuna). However
    the loop ends (Ctrl-C included), what was in flight is failed and enqueued again, what
    finished gets its run, and the sweep's run ends with the counts. Only trials of this run's
    settings `level` run; others wait for a run with their settings.
    """
    waiting = waiting_ids(study, level.owns if level is not None else None)
    status = "FINISHED"
    writer = RunWriter(job, parent, level.id if level is not None else "")
    try:
        backfill_runs(job, study, writer)
        dispatch(job, study, writer, tally, waiting, n_ask, task_types, progress, level)
        close_writer(writer, progress is not None)
    except BaseException as err:
        status = "KILLED"
        stopped: list[int] = []
        if isinstance(err, LockLost):  # the study is the other driver's: its trials, its run
            parent = None
            raise
        with contextlib.suppress(Exception):
            stopped = reconcile_runs(
                job, study, parent, f"driver stopped ({type(err).__name__}) while the trial ran"
            )
        if isinstance(err, KeyboardInterrupt) and progress is not None:  # Ctrl-C, SIGTERM
            print(
                f"stopped: {len(stopped)} trial(s) in flight requeued (they run again on the "
                f"next `ablate sweep`); {tally.run} finished in this run are kept",
                file=sys.stderr,
                flush=True,
            )
        if isinstance(err, Exception) and storage_lost(err):
            # the driver's own error, not Optuna's guess ("invalid data in the commit")
            first = redact(cause_line(err))
            raise UserError(
                f"lost the study storage {job.storage_shown} mid-sweep ({first}); the trials in "
                "flight were stopped and those that finished are recorded. Run `ablate sweep` "
                "again once the database answers: it requeues the trials left RUNNING."
            ) from None
        raise
    finally:
        with contextlib.suppress(Exception):
            writer.close()  # interrupted: still write what finished
        summary = _sweep_metrics(study, tally)
        if parent is not None:
            with contextlib.suppress(Exception):  # the server went down mid-sweep
                tags = _best_mixture(job, study, summary)
                finish_sweep(job, parent, summary, status=status, tags=tags)


def _sweep_metrics(study: Any, tally: Tally) -> dict[str, float]:
    """The parent run's metrics: the study's counts (`n_complete`, `n_failed`, `n_pruned`),
    this run's (`run/...`) and the best value."""
    best = {"best_value": tally.best_value} if tally.best_value is not None else {}
    this_run = {"run/n_run": tally.run, "run/n_failed": tally.failed, "run/n_pruned": tally.pruned}
    return {"n_complete": tally.done, **_study_counts(study), **this_run, **best}


def _study_counts(study: Any) -> dict[str, float]:
    """The study's failed trials (not a stopped driver's requeued ones, nor dropped ones: as the
    report and `ablate status` count them) and pruned ones: beside `n_complete`, which is the
    study's too (this run's are `run/...`)."""
    failed = pruned = 0
    with contextlib.suppress(Exception):  # the storage went down: the counts are left out
        for t in study.get_trials(deepcopy=False):
            own = not (t.user_attrs.get("requeued") or t.user_attrs.get("dropped"))
            failed += t.state.name == "FAIL" and own
            pruned += t.state.name == "PRUNED"
        return {"n_failed": failed, "n_pruned": pruned}
    return {}


def _best_mixture(job: JobSpec, study: Any, summary: dict[str, float]) -> dict[str, str]:
    """The best mixture by its mean over seeds, into `summary` (`best_mixture_mean`, with
    `best_mixture_seeds`) and as the parent run's tag `ablate.best_mixture`."""
    if study is None or len(study.directions) != 1:
        return {}
    minimize = job.objective.direction == "minimize"
    trials = study.get_trials(deepcopy=False)
    kept = [t for t in trials if feasible(t)]  # keeps a search's caps, as best_value does
    found = best_mixture_mean(kept, minimize) or best_mixture_mean(trials, minimize)
    if found is None:
        return {}
    name, mean, seeds = found
    summary.update(best_mixture_mean=mean, best_mixture_seeds=seeds)
    return {"ablate.best_mixture": name}


def dispatch(
    job: JobSpec,
    study: Any,
    writer: RunWriter,
    tally: Tally,
    waiting: Any,
    n_ask: int,
    task_types: list[str],
    progress: Callable[[SweepProgress], None] | None,
    level: SettingsLevel | None,
) -> None:
    """Run what waits and what a search asks; a ladder: then each drained rung promotes its
    best mixtures to the next model (`advance_ladder`) and those run, until none is promoted."""
    if waiting or n_ask:
        prune = job.design.kind == SEARCH and job.design.prune
        pool = WorkerPool(job, prune)
        Dispatcher(
            job, study, pool, writer, tally, waiting, n_ask, task_types, progress, level
        ).run()
    while is_ladder(job) and advance_ladder(job, study, task_types, level):
        waiting = waiting_ids(study, level.owns if level is not None else None)
        pool = WorkerPool(job, False)
        Dispatcher(job, study, pool, writer, tally, waiting, 0, task_types, progress, level).run()


def close_writer(writer: RunWriter, say: bool) -> None:
    """Every finished trial has its run before the sweep's run ends; runs the tracking server
    did not take (it went down) are said, not raised: Optuna has the trials, and the next
    `ablate sweep` writes their runs."""
    try:
        writer.close()
    except RuntimeError as err:
        if say:
            print(f"MLflow: {err}", flush=True)
    if writer.offline and say:
        print(
            f"MLflow: {writer.offline} trial(s) have no run yet (the server did not answer); "
            "rerun `ablate sweep` once it answers to write them",
            flush=True,
        )
