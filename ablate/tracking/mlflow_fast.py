"""Every use of MLflow's private internals, in one place, each measured faster than the client
or doing what it cannot (`relocate_artifacts`: no call changes an experiment's artifact root).

Pinned: pyproject bounds mlflow below 3.18, and tests/tracking/test_tracking_writer.py compares each
function with the public client path it replaces (the same runs, tags, params and metrics).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ablate.config import JobSpec, redact, safe_name, sqlite_path
from ablate.tracking.parents import STUDY_UID_TAG, pick_parent


def sql_store(client: Any) -> Any:
    """The tracking store behind an `MlflowClient` (an `SqlAlchemyStore` for database URIs)."""
    return client._tracking_client.store


def insert_runs(client: Any, batch: list[dict[str, Any]]) -> None:
    """Create finished runs in one transaction of MLflow's SQL store.

    Each item of `batch`: `run` (the `runs` row), `tags` (a mapping), `params`, `metrics` (MLflow
    `Param` and `Metric` entities, checked with MLflow's own `log_batch` validation). The rows
    are those `create_run` + `log_batch` + `set_terminated` write: a run, its tags, params,
    metrics and latest metrics. Raises TypeError on a non-SQL store.
    """
    from mlflow.entities import RunTag
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.utils.validation import _validate_batch_log_data, _validate_batch_log_limits
    from sqlalchemy import insert

    store = sql_store(client)
    if not isinstance(store, SqlAlchemyStore):
        raise TypeError(f"not a SQL tracking store: {type(store).__name__}")
    runs, tags, params, metrics = [], [], [], []
    for item in batch:
        run_id = item["run"]["run_uuid"]
        tag_list = [RunTag(k, v) for k, v in item["tags"].items()]
        _validate_batch_log_data(item["metrics"], item["params"], tag_list)
        _validate_batch_log_limits(item["metrics"], item["params"], tag_list)
        runs.append(item["run"])
        tags += [{"key": k, "value": v, "run_uuid": run_id} for k, v in item["tags"].items()]
        params += [{"key": x.key, "value": x.value, "run_uuid": run_id} for x in item["params"]]
        metrics += [
            {
                "key": x.key,
                "value": x.value,
                "timestamp": x.timestamp,
                "step": x.step,
                "is_nan": False,
                "run_uuid": run_id,
            }
            for x in {
                (x.key, x.step): x for x in item["metrics"]
            }.values()  # a key's last value at each step, as log_batch
        ]
    # the latest value of each key: its highest step (a loss curve's last point)
    latest = list({(m["run_uuid"], m["key"]): m for m in sorted(metrics, key=_step)}.values())
    with store.ManagedSessionMaker() as session:
        session.execute(insert(SqlRun), runs)
        for model, rows in ((SqlTag, tags), (SqlParam, params), (SqlMetric, metrics)):
            if rows:
                session.execute(insert(model), rows)
        if latest:
            session.execute(insert(SqlLatestMetric), latest)


def _step(metric: dict[str, Any]) -> int:
    return int(metric["step"])


def find_sweep_run_sqlite(
    job: JobSpec, uid: str | None = None
) -> tuple[str | None, Path | None] | None:
    """`find_sweep_run` for a SQLite tracking database, read with sqlite3, without importing
    MLflow (2-3 CPU seconds): (run id or None, the run's artifact folder when it is local, else
    None). None when the question needs MLflow itself (another backend, an unexpected schema)."""
    uri = job.tracking_uri
    db = sqlite_path(uri)
    if db is None:
        return None
    if not db.is_file():
        return None, None
    try:
        relocate_artifacts(db, job.study)  # a moved project's report goes where its runs now do
        con = sqlite3.connect(db, timeout=30)
        try:
            rows = con.execute(
                "SELECT r.run_uuid, u.value, g.value, r.artifact_uri FROM runs r "
                "JOIN experiments e ON e.experiment_id = r.experiment_id "
                "JOIN tags s ON s.run_uuid = r.run_uuid AND s.key = 'ablate.study' "
                "JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = 'ablate.role' "
                "LEFT JOIN tags u ON u.run_uuid = r.run_uuid AND u.key = ? "
                "LEFT JOIN tags g ON g.run_uuid = r.run_uuid AND g.key = 'optuna.storage' "
                "WHERE e.name = ? AND s.value = ? AND k.value = 'sweep' "
                "AND r.lifecycle_stage = 'active' ORDER BY r.start_time ASC",
                (STUDY_UID_TAG, job.study, job.study),
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    found, _ = pick_parent([(str(r[0]), r[1], r[2]) for r in rows], redact(job.storage_url), uid)
    if found is None:
        return None, None
    return found, local_path(next(str(r[3] or "") for r in rows if str(r[0]) == found))


def local_path(uri: str) -> Path | None:
    """The folder of a local artifact URI (`file:///...`, or an absolute path); None for any
    other (`mlflow-artifacts:`, `s3://`, ...)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri and Path(uri).is_absolute():
        return Path(uri)
    return None


def default_artifacts(db: Path, study: str) -> Path:
    """Where a SQLite-tracked study's artifacts live: beside the database, not in the current
    folder (`mlartifacts/<study>`)."""
    return (db.parent / "mlartifacts" / safe_name(study)).resolve()


def relocate_artifacts(db: Path, study: str) -> None:
    """Point the study's experiment and its runs at `default_artifacts`, when they name the
    folder ablate made beside the database at its old place: the project was moved or copied
    since. MLflow keeps absolute artifact URIs, so a moved project's runs wrote to (and
    recreated) the old folder, or failed where it could not be made; a copy wrote into the
    original's. The same folder under another path (a mount) is left as it is. One
    transaction, plain SQL on MLflow's tables (see `find_sweep_run_sqlite`); a database this
    process cannot write is left alone."""
    new = default_artifacts(db, study)
    con = None
    try:
        con = sqlite3.connect(db, timeout=30)
        with con:  # commits both updates, or neither
            row = con.execute(
                "SELECT experiment_id, artifact_location FROM experiments WHERE name = ?", (study,)
            ).fetchone()
            old = local_path(str(row[1] or "")) if row else None
            if (
                old is None
                or old == new
                or (old.name, old.parent.name) != (new.name, new.parent.name)
            ):
                return  # none, this one, or not a folder ablate made: the user's
            if _same_folder(old.parent.parent, db.parent):
                return
            stored, now = str(row[1]), new.as_uri()
            con.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                (now, row[0]),
            )
            con.execute(
                "UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
                "WHERE experiment_id = ? AND substr(artifact_uri, 1, ?) = ?",
                (now, len(stored) + 1, row[0], len(stored) + 1, stored + "/"),
            )
    except sqlite3.Error:  # read-only, or not MLflow's schema: MLflow says what it says
        pass
    finally:
        if con is not None:
            con.close()


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # gone
        return False


def copy_run_artifacts(folder: Path, paths: list[Path], artifact_path: str | None = None) -> None:
    """What MLflow's local artifact store does for `log_artifact`: copy each file under the run's
    artifact folder (see `find_sweep_run_sqlite`)."""
    import shutil

    dest = folder / artifact_path if artifact_path else folder
    dest.mkdir(parents=True, exist_ok=True)
    for path in paths:
        shutil.copy2(path, dest / Path(path).name)
