"""MLflow tracking: one parent run per sweep, one child run per Optuna trial.

The only module that imports mlflow (inside the functions). Everything goes through one cached
`MlflowClient` per tracking URI and `log_batch`, so logging a trial costs a handful of database
writes (well under a second on SQLite).

Tags: the parent carries `ablate.study=<study>` and `ablate.role=sweep` (found again on resume);
a child carries `mlflow.parentRunId`, `ablate.study`, `ablate.role=trial`, `optuna.trial_number`
and, once finished, `ablate.selection_hash` (and `ablate.error` when it failed).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ablate.config import JobSpec
    from ablate.mixture import Mixture
    from ablate.trial import TrialResult

_CLIENTS: dict[str, Any] = {}

# MLflow's limits: params per log_batch call and characters per param value.
_MAX_PARAMS_PER_BATCH = 100
_MAX_PARAM_CHARS = 6000
_MAX_TAG_CHARS = 5000


_EXPERIMENTS: dict[tuple[str, str], str] = {}


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    if uri not in _CLIENTS:
        client = MlflowClient(tracking_uri=uri)
        if uri.startswith("sqlite:///"):
            # WAL + synchronous=NORMAL: an fsync per commit costs 3-18 ms here (see
            # sweep.open_storage); a killed driver loses nothing without it
            from ablate.sweep import sqlite_fast_commits

            store = client._tracking_client.store
            if getattr(store, "engine", None) is not None:
                sqlite_fast_commits(store.engine)
        _CLIENTS[uri] = client
    return _CLIENTS[uri]


def _artifact_location(uri: str, study: str) -> str | None:
    """Artifacts of a SQLite-tracked study live beside the database (not in the current folder)."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in study)
        return (db.parent / "mlartifacts" / safe).resolve().as_uri()
    return None


def _experiment_id(job: JobSpec) -> str:
    """The study's experiment (created once; cached per process: asked for once per trial)."""
    key = (job.tracking_uri, job.study)
    if key in _EXPERIMENTS:
        return _EXPERIMENTS[key]
    client = _client(job.tracking_uri)
    exp = client.get_experiment_by_name(job.study)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        exp_id = str(exp.experiment_id)
    else:
        exp_id = str(
            client.create_experiment(
                job.study, artifact_location=_artifact_location(job.tracking_uri, job.study)
            )
        )
    _EXPERIMENTS[key] = exp_id
    return exp_id


def _flatten(data: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
    else:
        out[prefix.rstrip(".")] = str(data)[:_MAX_PARAM_CHARS]
    return out


def _log_params(client: Any, run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), _MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=items[i : i + _MAX_PARAMS_PER_BATCH])


def start_sweep(job: JobSpec) -> str:
    """The parent run of the job's study: found again by tag (resume) or created. Returns its id.

    Call it in the driver before any worker starts: it creates the SQLite tracking database (and
    runs its migrations) exactly once.
    """
    import yaml

    from ablate.config import to_dict

    client = _client(job.tracking_uri)
    exp_id = _experiment_id(job)
    found = client.search_runs(
        [exp_id],
        filter_string=f"tags.`ablate.study` = '{_quote(job.study)}' and tags.`ablate.role` = 'sweep'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    if found:
        run_id = str(found[0].info.run_id)
        if found[0].info.status != "RUNNING":
            client.update_run(run_id, status="RUNNING")
        return run_id
    run = client.create_run(
        exp_id,
        run_name=f"sweep-{job.study}",
        tags={
            "ablate.study": job.study,
            "ablate.role": "sweep",
            "optuna.storage": _redact(job.storage_url),
        },
    )
    run_id = str(run.info.run_id)
    job_dict = to_dict(job)
    _log_params(client, run_id, _flatten(job_dict))
    client.log_text(run_id, yaml.safe_dump(job_dict, sort_keys=False), "job.yaml")
    return run_id


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def _redact(url: str) -> str:
    """A storage URL without its password (postgresql://user:secret@host -> user:***@host)."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def trial_params(job: JobSpec, mixture: Mixture, balance: float | None = None) -> dict[str, str]:
    """The parameters a child run records (strings, as MLflow stores them)."""
    from ablate.design import balance_of

    props = mixture.proportions if isinstance(mixture.proportions, dict) else {}
    params = {f"p/{t}": f"{float(p):.6g}" for t, p in props.items()}
    params.update(
        {
            "volume": f"{mixture.volume:g}",
            "balance": f"{(balance if balance is not None else balance_of(props)):.6g}",
            "seed": str(mixture.seed),
            "mixture": mixture.name,
            "taxonomy": mixture.taxonomy,
            "model.path": job.model.path,
            "lora.r": str(job.model.lora.r),
            "lora.alpha": str(job.model.lora.alpha),
            "train.lr": f"{job.train.lr:g}",
            "train.batch_size": str(job.train.batch_size),
            "train.epochs": f"{job.train.epochs:g}",
            "objective": job.objective.kind,
        }
    )
    return params


def start_trial(
    job: JobSpec, parent_run_id: str, trial_number: int, mixture: Mixture, params: bool = True
) -> str:
    """A RUNNING child run for a dispatched trial (so the MLflow UI shows what is in flight).

    `params=False`: the caller logs the params itself, in the same batch as the metrics.
    """
    client = _client(job.tracking_uri)
    run = client.create_run(
        _experiment_id(job),
        run_name=_run_name(trial_number, mixture),
        tags=_child_tags(job, parent_run_id, trial_number),
    )
    run_id = str(run.info.run_id)
    if params:
        _log_params(client, run_id, trial_params(job, mixture))
    return run_id


def _trial_batch(
    job: JobSpec,
    parent_run_id: str,
    trial_number: int,
    mixture: Mixture,
    result: TrialResult | None,
    state: str,
    error: str | None,
    with_params: bool,
) -> tuple[list[Any], list[Any], list[Any]]:
    """(metrics, params, tags) of a finished trial's child run, as `log_batch` takes them."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    metrics: list[Any] = []
    tags: list[Any] = []
    params = [Param(k, v) for k, v in trial_params(job, mixture).items()] if with_params else []
    if result is not None:
        for key, value in result.metrics.items():
            if _is_number(value):
                metrics.append(Metric(_metric_key(key), float(value), now, 0))
        for key, value in result.info.items():
            if _is_number(value):
                metrics.append(Metric(_metric_key(f"info/{key}"), float(value), now, 0))
        if result.seconds:
            metrics.append(Metric("seconds", float(result.seconds), now, 0))
        for task, n in result.counts.items():
            metrics.append(Metric(_metric_key(f"rows/{task}"), float(n), now, 0))
        if result.selection_hash:
            tags.append(RunTag("ablate.selection_hash", result.selection_hash))
    if error:
        tags.append(RunTag("ablate.error", error[:_MAX_TAG_CHARS]))
    tags.append(RunTag("ablate.state", state))
    return metrics, params, tags


def _child_tags(job: JobSpec, parent_run_id: str, trial_number: int) -> dict[str, str]:
    return {
        "mlflow.parentRunId": parent_run_id,
        "ablate.study": job.study,
        "ablate.role": "trial",
        "optuna.trial_number": str(trial_number),
    }


def _run_name(trial_number: int, mixture: Mixture) -> str:
    return f"{trial_number:04d}-{mixture.name}"


def _log_selection(client: Any, run_id: str, result: TrialResult | None) -> None:
    """Artifact `selection.json`: the selected row ids and the rows per task type."""
    if result is not None and (result.row_ids or result.counts):
        selection = {
            "selection_hash": result.selection_hash,
            "counts": result.counts,
            "row_ids": list(result.row_ids),
        }
        client.log_text(run_id, json.dumps(selection), "selection.json")


def log_trial(
    job: JobSpec,
    parent_run_id: str,
    trial_number: int,
    mixture: Mixture,
    result: TrialResult | None,
    state: str,
    *,
    run_id: str | None = None,
    error: str | None = None,
) -> str:
    """Finish (or create and finish) the child run of a trial; `state` is COMPLETE, PRUNED or FAIL.

    Metrics: every `result.metrics` value and every numeric `result.info` value (as `info/<key>`).
    Artifact `selection.json`: the selected row ids and the rows per task type.
    """
    # a trial that was never started as a run (short trials: see sweep.RUN_AFTER_SECONDS) is
    # created here and gets its params in the same log_batch as its metrics: 3 writes, not 5
    new = run_id is None
    if run_id is None:
        run_id = start_trial(job, parent_run_id, trial_number, mixture, params=False)
    client = _client(job.tracking_uri)
    metrics, params, tags = _trial_batch(
        job, parent_run_id, trial_number, mixture, result, state, error, new
    )
    # MLflow's log_batch limits: 1000 metrics, 100 params per call
    for i in range(0, max(len(metrics), len(params) * 10, 1), 1000):
        client.log_batch(
            run_id,
            metrics=metrics[i : i + 1000],
            params=params[i // 10 : i // 10 + 100],
            tags=tags if i == 0 else [],
        )
    _log_selection(client, run_id, result)
    client.set_terminated(
        run_id, status="FINISHED" if state in ("COMPLETE", "PRUNED") else "FAILED"
    )
    return run_id


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
    next driver's backfill (`sweep._sync_tracking`) writes it from the Optuna study.
    """

    #: runs per transaction (at most): a flush holds the SQLite write lock this long
    MAX_BATCH = 256

    def __init__(self, job: JobSpec, parent_run_id: str) -> None:
        import queue
        import threading

        self.job = job
        self.parent_run_id = parent_run_id
        self.failed: list[tuple[_Finished, str]] = []
        self.written = 0
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
    ) -> None:
        """Queue a finished trial (`state` COMPLETE, PRUNED or FAIL) that ran `seconds`."""
        start_ms = int((time.time() - max(0.0, seconds)) * 1000)
        self._queue.put(_Finished(trial_number, mixture, result, state, run_id, error, start_ms))

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
                _insert_finished_runs(self.job, self.parent_run_id, new)
                self.written += len(new)
            except Exception:  # not a SQL store, or MLflow changed: the client path
                rest = new + rest
        for f in rest:
            try:
                log_trial(
                    self.job,
                    self.parent_run_id,
                    f.trial_number,
                    f.mixture,
                    f.result,
                    f.state,
                    run_id=f.run_id,
                    error=f.error,
                )
                self.written += 1
            except Exception as err:
                self.failed.append((f, f"{type(err).__name__}: {err}"))


def _insert_finished_runs(job: JobSpec, parent_run_id: str, batch: list[_Finished]) -> None:
    """Create finished child runs in one transaction of MLflow's SQL store.

    The rows are those `log_trial` makes through the client (`create_run`, `log_batch`,
    `set_terminated`): a run, its tags (with `mlflow.runName`), params, metrics and latest
    metrics; tests/test_tracking.py compares the two. Raises TypeError on a non-SQL store.
    """
    import uuid

    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.utils.uri import append_to_uri_path
    from mlflow.utils.validation import _validate_batch_log_data, _validate_batch_log_limits
    from sqlalchemy import insert

    client = _client(job.tracking_uri)
    store = client._tracking_client.store
    if not isinstance(store, SqlAlchemyStore):
        raise TypeError(f"not a SQL tracking store: {type(store).__name__}")
    exp_id = _experiment_id(job)
    key = (job.tracking_uri, exp_id)  # experiment ids repeat across tracking stores
    location = _ARTIFACT_ROOTS.get(key)
    if location is None:
        location = _ARTIFACT_ROOTS[key] = client.get_experiment(exp_id).artifact_location
    runs, tags, params, metrics, latest = [], [], [], [], []
    selections = []
    for f in batch:
        m, p, t = _trial_batch(
            job, parent_run_id, f.trial_number, f.mixture, f.result, f.state, f.error, True
        )
        if len(p) > _MAX_PARAMS_PER_BATCH or len(m) > 1000:
            raise ValueError("more params or metrics than one log_batch takes")
        _validate_batch_log_data(m, p, t)
        _validate_batch_log_limits(m, p, t)
        run_id = uuid.uuid4().hex
        name = _run_name(f.trial_number, f.mixture)
        end = int(time.time() * 1000)
        runs.append(
            {
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
        )
        all_tags = {**_child_tags(job, parent_run_id, f.trial_number), "mlflow.runName": name}
        all_tags.update({tag.key: tag.value for tag in t})
        tags += [{"key": k, "value": v, "run_uuid": run_id} for k, v in all_tags.items()]
        params += [{"key": x.key, "value": x.value, "run_uuid": run_id} for x in p]
        rows = [
            {
                "key": x.key,
                "value": x.value,
                "timestamp": x.timestamp,
                "step": x.step,
                "is_nan": False,
                "run_uuid": run_id,
            }
            for x in {x.key: x for x in m}.values()  # the last value of a key, as log_batch
        ]
        metrics += rows
        latest += rows
        selections.append((run_id, f.result))
    with store.ManagedSessionMaker() as session:
        session.execute(insert(SqlRun), runs)
        for model, rows in ((SqlTag, tags), (SqlParam, params), (SqlMetric, metrics)):
            if rows:
                session.execute(insert(model), rows)
        if latest:
            session.execute(insert(SqlLatestMetric), latest)
    for run_id, result in selections:
        _log_selection(client, run_id, result)


_ARTIFACT_ROOTS: dict[tuple[str, str], str] = {}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _metric_key(key: str) -> str:
    """MLflow metric names allow alphanumerics, `_ - . / space`; anything else becomes `_`."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in key)


def child_runs(job: JobSpec, parent_run_id: str, status: str | None = None) -> list[Any]:
    """All child runs of a sweep (optionally only those with an MLflow `status`)."""
    client = _client(job.tracking_uri)
    query = f"tags.`mlflow.parentRunId` = '{parent_run_id}'"
    if status:
        query += f" and attributes.status = '{status}'"
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [_experiment_id(job)], filter_string=query, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def mark_killed(
    job: JobSpec,
    parent_run_id: str,
    trial_numbers: list[int] | set[int],
    reason: str = "driver died while the trial ran",
) -> int:
    """Mark the still-RUNNING child runs of these trials (from a dead driver) KILLED; returns how many."""
    from mlflow.entities import RunTag

    wanted = {str(n) for n in trial_numbers}
    if not wanted:
        return 0
    client = _client(job.tracking_uri)
    n = 0
    for run in child_runs(job, parent_run_id, status="RUNNING"):
        if run.data.tags.get("optuna.trial_number") in wanted:
            client.log_batch(run.info.run_id, tags=[RunTag("ablate.error", reason)])
            client.set_terminated(run.info.run_id, status="KILLED")
            n += 1
    return n


def log_parent_artifact(
    job: JobSpec, parent_run_id: str, path: str | Path, artifact_path: str | None = None
) -> None:
    """Attach a file (a report, a plot) to the sweep's parent run."""
    _client(job.tracking_uri).log_artifact(parent_run_id, str(path), artifact_path)


def finish_sweep(
    job: JobSpec, parent_run_id: str, summary: dict[str, float], status: str = "FINISHED"
) -> None:
    """Log the sweep's summary numbers on the parent run and end it (`FINISHED`, `FAILED`, `KILLED`)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(_metric_key(k), float(v), now, 0) for k, v in summary.items() if _is_number(v)
    ]
    client = _client(job.tracking_uri)
    if metrics:
        client.log_batch(parent_run_id, metrics=metrics)
    client.set_terminated(parent_run_id, status=status)


def find_sweep_run(job: JobSpec) -> str | None:
    """The id of the sweep's parent run, found by its tags; None when there is none.

    Read-only: unlike `start_sweep` it creates no database, experiment or run and leaves the
    run's status alone (a report on a finished sweep must not mark it RUNNING again).
    """
    uri = job.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        return None
    client = _client(uri)
    exp = client.get_experiment_by_name(job.study)
    if exp is None:
        return None
    found = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`ablate.study` = '{_quote(job.study)}' and tags.`ablate.role` = 'sweep'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    return str(found[0].info.run_id) if found else None


def log_parent_artifacts(
    job: JobSpec, parent_run_id: str, paths: list[Path], artifact_path: str | None = None
) -> None:
    """Attach files (a report: page, table, plots) to the sweep's parent run: one `log_artifacts`
    call when they are all the files of their folder, else one `log_artifact` per file."""
    client = _client(job.tracking_uri)
    folders = {Path(p).resolve().parent for p in paths}
    if len(folders) == 1:
        (folder,) = folders
        if {f.resolve() for f in folder.iterdir()} == {Path(p).resolve() for p in paths}:
            client.log_artifacts(parent_run_id, str(folder), artifact_path)
            return
    for path in paths:
        client.log_artifact(parent_run_id, str(path), artifact_path)


def find_sweep_run_sqlite(job: JobSpec) -> tuple[str | None, Path | None] | None:
    """`find_sweep_run` for a SQLite tracking database, read with sqlite3, without importing
    MLflow (2-3 CPU seconds): (run id or None, the run's artifact folder when it is local, else
    None). None when the question needs MLflow itself (another backend, an unexpected schema)."""
    import sqlite3
    from urllib.parse import unquote, urlparse

    uri = job.tracking_uri
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///") :])
    if not db.is_file():
        return None, None
    try:
        con = sqlite3.connect(db, timeout=30)
        try:
            row = con.execute(
                "SELECT r.run_uuid, r.artifact_uri FROM runs r "
                "JOIN experiments e ON e.experiment_id = r.experiment_id "
                "JOIN tags s ON s.run_uuid = r.run_uuid AND s.key = 'ablate.study' "
                "JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = 'ablate.role' "
                "WHERE e.name = ? AND s.value = ? AND k.value = 'sweep' "
                "AND r.lifecycle_stage = 'active' ORDER BY r.start_time ASC LIMIT 1",
                (job.study, job.study),
            ).fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    if row is None:
        return None, None
    run_id, artifact_uri = str(row[0]), str(row[1] or "")
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return run_id, Path(unquote(parsed.path))
    if parsed.scheme == "" and Path(artifact_uri).is_absolute():
        return run_id, Path(artifact_uri)
    return run_id, None


def copy_run_artifacts(folder: Path, paths: list[Path], artifact_path: str | None = None) -> None:
    """What MLflow's local artifact store does for `log_artifact`: copy each file under the run's
    artifact folder (see `find_sweep_run_sqlite`)."""
    import shutil

    dest = folder / artifact_path if artifact_path else folder
    dest.mkdir(parents=True, exist_ok=True)
    for path in paths:
        shutil.copy2(path, dest / Path(path).name)
