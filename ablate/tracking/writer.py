"""Finished trials' child runs written off the driver's critical path, in batches."""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ablate.config import JobSpec
from ablate.mixture import Mixture
from ablate.result import TrialResult
from ablate.tracking.client import MAX_PARAMS_PER_BATCH, experiment_id, mlflow_client
from ablate.tracking.mlflow_fast import insert_runs
from ablate.tracking.runs import child_tags, log_selection, log_trial, run_name, trial_batch


@dataclass
class _Finished:
    """A finished trial waiting for its child run (see `RunWriter`)."""

    trial_number: int
    mixture: Mixture
    result: TrialResult | None
    state: str
    run_id: str | None = None
    error: str | None = None
    start_ms: int = 0
    settings: str = ""


class RunWriter:
    """Writes finished trials' child runs off the driver's critical path, in batches.

    The driver `submit`s a trial once Optuna has its result and goes on dispatching; a thread
    writes what has queued up since its last flush. On a SQLite (or other SQL) tracking store a
    batch of never-started runs is one transaction: a handful of multi-row INSERTs through
    MLflow's own tables, about 1 ms per run where `create_run` + `log_batch` + `set_terminated`
    cost 25-35 ms (3 transactions of ORM work each; see benchmarks/dispatch_benchmark.py). Runs
    that already exist (long trials, see `start_trial`) and other stores (a tracking server) go
    through `log_trial`, one by one, still off the driver's path.

    A thread, not a process: the batched write costs ~1 ms of Python per trial, so it takes
    little of the driver's GIL, while a spawned process would first spend seconds importing
    mlflow. `close` drains the queue and joins the thread (the driver calls it however it
    exits: normally, Ctrl-C, an exception); after a SIGKILL what was queued is lost and the
    next driver's backfill (`ablate.sweep.sync.backfill_runs`) writes it from the Optuna study.
    """

    #: runs per transaction (at most): a flush holds the SQLite write lock this long
    MAX_BATCH = 256

    def __init__(self, job: JobSpec, parent_run_id: str | None, settings_id: str = "") -> None:
        import queue
        import threading

        self.job = job
        self.parent_run_id = parent_run_id
        self.settings_id = settings_id
        """The `settings` param of the runs (the id of the settings the trials trained with)."""
        self.failed: list[tuple[_Finished, str]] = []
        self.written = 0
        self.offline = 0
        """Trials submitted while the tracking server was unreachable (no sweep run): the next
        `ablate sweep` writes their runs from the Optuna study (`backfill_runs`)."""
        self._queue: queue.SimpleQueue[_Finished | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="ablate-mlflow-writer", daemon=True)
        self._closed = False
        self._thread.start()

    def submit(
        self,
        trial_number: int,
        mixture: Mixture,
        result: TrialResult | None,
        state: str,
        *,
        run_id: str | None = None,
        error: str | None = None,
        seconds: float = 0.0,
        settings_id: str | None = None,
    ) -> None:
        """Queue a finished trial (`state` COMPLETE, PRUNED or FAIL) that ran `seconds`, trained
        with the settings `settings_id` (default: the writer's)."""
        if self.parent_run_id is None:
            self.offline += 1
            return
        start_ms = int((time.time() - max(0.0, seconds)) * 1000)
        settings = self.settings_id if settings_id is None else settings_id
        self._queue.put(
            _Finished(trial_number, mixture, result, state, run_id, error, start_ms, settings)
        )

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued, then stop the thread. Raises when runs could not be written."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)
        if self.failed:
            first = self.failed[0][1]
            raise RuntimeError(
                f"{len(self.failed)} trial(s) have no MLflow run ({first}); the Optuna study has "
                "them, and rerunning `ablate sweep` writes their runs"
            )

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:  # already failing: do not mask the error with a tracking one
            with contextlib.suppress(Exception):
                self.close()

    def _loop(self) -> None:
        import queue

        stop = False
        while not stop:
            item = self._queue.get()
            batch: list[_Finished] = []
            while item is not None:
                batch.append(item)
                if len(batch) >= self.MAX_BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            stop = item is None
            if batch:
                self._flush(batch)

    def _flush(self, batch: list[_Finished]) -> None:
        new = [f for f in batch if f.run_id is None]
        rest = [f for f in batch if f.run_id is not None]
        if new:
            try:
                insert_finished_runs(self.job, str(self.parent_run_id), new)
                self.written += len(new)
            except Exception:  # not a SQL store, or MLflow changed: the client path
                rest = new + rest
        for f in rest:
            try:
                log_trial(
                    self.job,
                    str(self.parent_run_id),
                    f.trial_number,
                    f.mixture,
                    f.result,
                    f.state,
                    run_id=f.run_id,
                    error=f.error,
                    settings=f.settings,
                )
                self.written += 1
            except Exception as err:
                self.failed.append((f, f"{type(err).__name__}: {err}"))


#: Each experiment's artifact root, per (tracking URI, experiment id): asked once per process.
_ARTIFACT_ROOTS: dict[tuple[str, str], str] = {}


def insert_finished_runs(job: JobSpec, parent_run_id: str, batch: list[_Finished]) -> None:
    """Create finished child runs in one transaction of MLflow's SQL store (`mlflow_fast`).

    The rows are those `log_trial` makes through the client (`create_run`, `log_batch`,
    `set_terminated`): a run, its tags (with `mlflow.runName`), params, metrics and latest
    metrics; tests/tracking/test_tracking_writer.py compares the two. Raises on a non-SQL store.
    """
    from mlflow.utils.uri import append_to_uri_path

    client = mlflow_client(job.tracking_uri)
    exp_id = experiment_id(job)
    key = (job.tracking_uri, exp_id)  # experiment ids repeat across tracking stores
    location = _ARTIFACT_ROOTS.get(key)
    if location is None:
        location = _ARTIFACT_ROOTS[key] = client.get_experiment(exp_id).artifact_location
    items: list[dict[str, Any]] = []
    for f in batch:
        m, p, t = trial_batch(
            job,
            parent_run_id,
            f.trial_number,
            f.mixture,
            f.result,
            f.state,
            f.error,
            True,
            settings=f.settings,
        )
        if len(p) > MAX_PARAMS_PER_BATCH or len(m) > 1000:
            raise ValueError("more params or metrics than one log_batch takes")
        run_id = uuid.uuid4().hex
        name = run_name(f.trial_number, f.mixture)
        end = int(time.time() * 1000)
        run = {
            "name": name,
            "artifact_uri": append_to_uri_path(location, run_id, "artifacts"),
            "run_uuid": run_id,
            "experiment_id": int(exp_id),
            "source_type": "UNKNOWN",
            "source_name": "",
            "entry_point_name": "",
            "user_id": "unknown",
            "status": "FINISHED" if f.state in ("COMPLETE", "PRUNED") else "FAILED",
            "start_time": min(f.start_ms, end),
            "end_time": end,
            "deleted_time": None,
            "source_version": "",
            "lifecycle_stage": "active",
        }
        tags = {**child_tags(job, parent_run_id, f.trial_number), "mlflow.runName": name}
        tags.update({tag.key: tag.value for tag in t})
        items.append({"run": run, "tags": tags, "params": p, "metrics": m, "result": f.result})
    insert_runs(client, items)
    for item in items:
        log_selection(client, item["run"]["run_uuid"], item["result"])
