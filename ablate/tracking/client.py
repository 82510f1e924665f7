"""The MLflow client per tracking URI, the study's experiment, and the value rules (param
limits, metric names). ablate's only importer of mlflow is this package (inside its functions)."""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Any

from ablate.config import JobSpec, redact, sqlite_path
from ablate.errors import UserError
from ablate.study import sqlite_fast_commits
from ablate.tracking.mlflow_fast import default_artifacts, local_path, relocate_artifacts, sql_store

_CLIENTS: dict[str, Any] = {}


MAX_PARAMS_PER_BATCH = 100


MAX_PARAM_CHARS = 6000


MAX_TAG_CHARS = 5000


_EXPERIMENTS: dict[tuple[str, str], str] = {}


#: Tells MLflow's UI (3.x) that the experiment holds training runs: without it, an experiment
#: with no runs yet opens in the GenAI view (traces, evaluations) instead of the runs table.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def mlflow_client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    # with an HTTP tracking server MLflow prints "View run / View experiment" links each time a
    # run ends: one pair per trial drowns a job log's progress lines (the driver prints the
    # sweep's links once instead, see `ablate.tracking.runs.sweep_links`)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # a tracking server that is down costs seconds, not MLflow's default of 7 retries with
    # exponential backoff (minutes per call): the sweep goes on without it (see the driver)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    if uri not in _CLIENTS:
        db = sqlite_path(uri)
        if db is not None and db.name != ":memory:":
            client = _open_sqlite_store(uri, db)
        else:
            client = MlflowClient(tracking_uri=uri)
        if sqlite_path(uri) is not None:
            # WAL + synchronous=NORMAL: an fsync per commit costs 3-18 ms here (see
            # ablate.study.storage); a killed driver loses nothing without it
            store = sql_store(client)
            if getattr(store, "engine", None) is not None:
                sqlite_fast_commits(store.engine)
        # MLflow's errors quote the request URL, password included (`API request to
        # http://u:secret@host/api/...`): a URI with one gets a client whose errors do not
        _CLIENTS[uri] = client if redact(uri) == uri else _Redacting(client)
    return _CLIENTS[uri]


class _Redacting:
    """An MlflowClient whose exceptions (same types) say its URI without the password."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._client, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return value(*args, **kwargs)
            except Exception as err:
                err.args = tuple(redact(a) if isinstance(a, str) else a for a in err.args)
                if isinstance(getattr(err, "message", None), str):
                    err.message = redact(err.message)  # type: ignore[attr-defined]
                raise

        return call


def check_local_store(job: JobSpec) -> None:
    """A SQLite tracking store opened (made when missing) before Ray or the study: a folder
    that cannot be written or a file that is no MLflow database is refused in the sweep's
    first second (it was, after Ray had started). A server is not asked: one that is down
    leaves the sweep running without it."""
    if sqlite_path(job.tracking_uri) is not None:
        mlflow_client(job.tracking_uri)


def _open_sqlite_store(uri: str, db: Path) -> Any:
    """The client of a SQLite tracking store, made first when missing; a folder that cannot be
    written or a file that is no MLflow database (damaged, or the job's Optuna storage) is one
    line naming `tracking:` (MLflow's traceback was ~90 lines, after Ray had started)."""
    from mlflow.tracking import MlflowClient

    where = f"tracking {redact(uri)}"
    if not db.exists():
        try:
            create_sqlite_store(db)
        except OSError as err:
            raise UserError(
                f"{where}: cannot create the MLflow database there ({err.strerror or err}); "
                "point `tracking:` at a file in a writable folder"
            ) from None
    try:
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # opens it (and runs pending migrations)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UserError(
            f"{where}: cannot open it as an MLflow database ({type(err).__name__}: "
            f"{redact(first)[:200]}); if the file is damaged or another tool's (an Optuna "
            "storage?), move it away or point `tracking:` at a new file, e.g. "
            "sqlite:///mlflow.db"
        ) from None
    return client


def create_sqlite_store(db: Path) -> None:
    """Make a new SQLite tracking store whole or not at all. MLflow's first open runs its ~50
    schema migrations, not in one transaction: a driver killed among them (its first seconds)
    left a database that every later open refused ("duplicate column name: step", "out-of-date
    database schema"), so the store is migrated in a file beside it and linked into place
    only when done (`os.link` fails if another process made it first: theirs is kept)."""
    from mlflow.tracking import MlflowClient

    db.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{db.name}.creating-"
    for stale in db.parent.glob(f"{prefix}*"):  # a killed creator's file (and its -journal)
        pid = stale.name[len(prefix) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)
    tmp = db.with_name(f"{prefix}{os.getpid()}")
    try:
        client = MlflowClient(tracking_uri=f"sqlite:///{tmp.resolve()}")
        client.search_experiments()  # the migrations
        engine = getattr(sql_store(client), "engine", None)
        if engine is not None:
            engine.dispose()  # closed before the file is linked (no journal left open)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def artifact_location(uri: str, study: str) -> str | None:
    """Artifacts of a SQLite-tracked study live beside the database (not in the current folder)."""
    db = sqlite_path(uri)
    return default_artifacts(db, study).as_uri() if db else None


def experiment_id(job: JobSpec) -> str:
    """The study's experiment (created once; cached per process: asked for once per trial).
    A moved or copied project's experiment is pointed at the artifact folder beside its
    database now (`relocate_artifacts`); one whose folder cannot be written is refused."""
    key = (job.tracking_uri, job.study)
    if key in _EXPERIMENTS:
        return _EXPERIMENTS[key]
    client = mlflow_client(job.tracking_uri)
    db = sqlite_path(job.tracking_uri)
    if db is not None and db.name != ":memory:":
        relocate_artifacts(db, job.study)
    exp = client.get_experiment_by_name(job.study)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        exp_id = str(exp.experiment_id)
        if EXPERIMENT_KIND[0] not in exp.tags:  # made before ablate set it
            client.set_experiment_tag(exp_id, *EXPERIMENT_KIND)
        location = str(exp.artifact_location)
    else:
        location = artifact_location(job.tracking_uri, job.study) or ""
        exp_id = str(
            client.create_experiment(
                job.study, artifact_location=location or None, tags=dict([EXPERIMENT_KIND])
            )
        )
    check_artifacts(job, location)
    _EXPERIMENTS[key] = exp_id
    return exp_id


def check_artifacts(job: JobSpec, location: str) -> None:
    """Refuse, in one line, a local artifact folder this machine cannot write, before a run
    writes there (MLflow fails mid-sweep with a traceback: NotADirectoryError, PermissionError).
    Nothing is made: the first artifact makes the folder."""
    path = local_path(location)
    if path is None:  # a server's or a bucket's: MLflow's to report
        return
    probe = path
    while probe != probe.parent and not _stat_ok(probe):  # the first folder that is there
        probe = probe.parent
    if probe.is_dir() and os.access(probe, os.W_OK | os.X_OK):
        return
    why = f"{probe} is not writable" if probe.is_dir() else f"{probe} is not a folder"
    raise UserError(
        f"tracking {job.tracking_shown}: the MLflow experiment `{job.study}` keeps its artifacts "
        f"in {path}, which cannot be used here ({why}); make that a writable folder, or set "
        "`tracking` to another store (a new sqlite:/// file, or a server)"
    )


def _stat_ok(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # under a folder this user may not read
        return False


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
    else:
        out[prefix.rstrip(".")] = str(data)[:MAX_PARAM_CHARS]
    return out


def log_params(client: Any, run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=items[i : i + MAX_PARAMS_PER_BATCH])


def quote(value: str) -> str:
    return value.replace("'", "\\'")


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def metric_key(key: str) -> str:
    """MLflow metric names allow alphanumerics, `_ - . / space`; anything else becomes `_`."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in key)
