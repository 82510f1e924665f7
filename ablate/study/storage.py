"""Optuna storages and the job's study.

`storage:` is a database URL (`sqlite:///...`, `postgresql://...`) or a plain path, which means
a journal file. Local files are written without an fsync per write (see
`optuna_fast.journal_file_backend`); SQLite runs in WAL mode with `synchronous=NORMAL`. A killed
driver loses nothing either way; only a power cut could lose the last writes.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from ablate.config import JobSpec, redact, sqlite_path
from ablate.errors import UserError, cause_line, did_you_mean, error_chain
from ablate.search import directions, make_pruner
from ablate.study.optuna_fast import journal_file_backend, storage_backend


def is_journal(url: str) -> bool:
    """A plain path (no `scheme://`) is an Optuna journal file."""
    return "://" not in url


def local_store_file(url: str) -> Path | None:
    """The file a local storage lives in (SQLite database or journal); None for a server."""
    return sqlite_path(url) or (Path(url) if is_journal(url) else None)


def open_storage(url: str) -> Any:
    """An Optuna storage: a plain file path is a journal file, anything else a DB URL."""
    import optuna
    from optuna.storages import JournalStorage

    local = local_store_file(url)
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
    if is_journal(url):
        return JournalStorage(journal_file_backend(url))
    try:
        if sqlite_path(url) is None:  # a database server
            storage = optuna.storages.get_storage(
                optuna.storages.RDBStorage(postgres_driver(url), engine_kwargs=server_engine(url))
            )
        else:
            storage = optuna.storages.get_storage(url)
    except Exception as err:  # SQLAlchemy's OperationalError, NoSuchModuleError, ArgumentError...
        raise UserError(unreachable(url, err)) from None
    if sqlite_path(url) is not None:
        sqlite_fast_commits(storage_backend(storage).engine)
    else:
        retry_while_away(storage_backend(storage), redact(url))
    return storage


#: How long a storage call is retried while the database server is away (a restart, a
#: failover: seconds), the trials in flight going on meanwhile; then the error is raised and
#: the sweep stops (`storage_lost`). Waits grow from 1 s to 10 s between tries.
RECONNECT_SECONDS = 60.0
#: Set in a thread while a retried storage call runs.
_RETRYING = threading.local()


def retry_while_away(backend: Any, shown: str) -> None:
    """Make each public method of an RDBStorage retry while `storage_lost` says the server is
    away. A write whose commit failed wrote nothing, so trying it again is safe; a pooled
    connection the server dropped is replaced by the pool's ping on the next try."""
    for name in dir(type(backend)):
        if not name.startswith("_") and callable(getattr(backend, name)):
            setattr(backend, name, _retrying(getattr(backend, name), shown))


def _retrying(call: Any, shown: str) -> Any:
    @functools.wraps(call)
    def retried(*args: Any, **kwargs: Any) -> Any:
        if getattr(_RETRYING, "on", False):  # a method calling another: the outer one retries
            return call(*args, **kwargs)
        deadline, wait = time.monotonic() + RECONNECT_SECONDS, 1.0
        while True:
            _RETRYING.on = True
            try:
                return call(*args, **kwargs)
            except Exception as err:
                if not storage_lost(err) or time.monotonic() + wait > deadline:
                    raise
                reason = redact(cause_line(err))
            finally:
                _RETRYING.on = False
            print(
                f"the study storage {shown} does not answer ({reason}); trying again in "
                f"{wait:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(wait)
            wait = min(wait * 2, 10.0)

    return retried


#: What to install for a database's dialect when its driver is missing (`mysql://`: MySQLdb).
DRIVERS = {
    "postgresql": 'psycopg (pip install -e ".[postgres]")',
    "mysql": "mysqlclient, or PyMySQL and mysql+pymysql://",
    "mariadb": "mariadb, or PyMySQL and mariadb+pymysql://",
    "mssql": "pyodbc",
    "oracle": "oracledb and oracle+oracledb://",
}


def unreachable(url: str, err: BaseException) -> str:
    """One line for a storage that cannot be opened: the URL without its password, the root
    cause (the driver's first line, the password scrubbed from it too), and what to check: a
    missing driver, a SQLite file or folder, else the database server and the URL."""
    shown = redact(url)
    reason = redact(cause_line(err, 300))
    return f"cannot open the study storage {shown} ({type(err).__name__}: {reason}); " + _check(
        url, err
    )


def _check(url: str, err: BaseException) -> str:
    """What to do about `err` opening the storage `url` (see `unreachable`)."""
    chain = error_chain(err)
    said = " ".join(str(e) for e in chain).lower()
    dialect = url.split("://", 1)[0].split("+")[0].lower()
    if any(isinstance(e, ImportError) for e in chain):
        return (
            f"no driver for {dialect}:// is installed here: pip install "
            f"{DRIVERS.get(dialect, 'its Python DB-API driver')}"
        )
    db = sqlite_path(url)
    if db is not None and "not a database" in said:
        return (
            f"{db} is not a SQLite database (another file, or a damaged one): point `storage:` "
            "at the study's .db file, or move this file away to start a new study"
        )
    if db is not None:
        return (
            f"SQLite could not open or write {db}: the file and its folder must be writable "
            "(SQLite writes its -wal and -shm files beside it; a read-only folder cannot hold "
            "a study), or copy the database to a writable folder"
        )
    return (
        "check that the database server runs and that the URL's host, port, user, password and "
        "database are right (`storage:` in the job, or --set storage=URL)"
    )


def server_engine(url: str) -> dict[str, Any]:
    """SQLAlchemy engine options for a database server: a pooled connection the server dropped
    (a restart, a network blip) is found by a ping and replaced before it is used, instead of
    failing the sweep's next write; connecting gives up after 10 s instead of hanging."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith(("postgresql", "postgres:")):
        kwargs["connect_args"] = {"connect_timeout": 10}
    return kwargs


def storage_lost(err: BaseException) -> bool:
    """Whether an error means the study's database server went away (not a bug, not bad input);
    Optuna wraps SQLAlchemy's error (StorageInternalError), so its causes are read too."""
    from sqlalchemy import exc

    seen: BaseException | None = err
    for _ in range(5):  # the error, its cause, the cause's cause, ...
        if seen is None:
            return False
        if isinstance(seen, exc.OperationalError | exc.InterfaceError) or (
            isinstance(seen, exc.DBAPIError) and bool(seen.connection_invalidated)
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def postgres_driver(url: str) -> str:
    """`postgresql://` with the driver that is installed: SQLAlchemy 2.1 defaults to psycopg 3,
    the dev extra installs psycopg2 (`postgresql+psycopg2://` names it explicitly)."""
    import importlib.util

    if (
        url.startswith("postgresql://")
        and importlib.util.find_spec("psycopg") is None
        and importlib.util.find_spec("psycopg2") is not None
    ):
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def sqlite_fast_commits(engine: Any) -> None:
    """WAL + synchronous=NORMAL on every connection of a SQLite engine (see the module doc)."""
    from sqlalchemy import event

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener reconnect with the pragmas


def open_study(job: JobSpec, create: bool = True, sampler: Any = None) -> Any:
    """The job's Optuna study (created when missing and `create`).

    `sampler`: the driver passes the search's sampler; fixed designs only pop enqueued trials,
    which a RandomSampler does without any modelling.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = job.storage_url
    store_file = local_store_file(url)
    if not create and store_file is not None and not store_file.is_file():
        # reading must not leave an empty database behind
        raise UserError(
            f"no study `{job.study}`: {store_file} does not exist; start it with `ablate sweep`"
        )
    storage = open_storage(url)
    if sampler is None:
        sampler = optuna.samplers.RandomSampler(seed=job.seed)
    if not create:
        try:
            return optuna.load_study(study_name=job.study, storage=storage, sampler=sampler)
        except KeyError:
            names = optuna.get_all_study_names(storage)
            held = f"; it holds {', '.join(f'`{n}`' for n in names[:10])}" if names else ""
            raise UserError(
                f"no study `{job.study}` in {job.storage_shown}"
                f"{did_you_mean(job.study, names)}{held}; start it with `ablate sweep`"
            ) from None
    study = optuna.create_study(
        study_name=job.study,
        storage=storage,
        directions=directions(job),  # type: ignore[arg-type]
        sampler=sampler,
        pruner=make_pruner(job),
        load_if_exists=True,
    )
    if len(study.directions) != len(directions(job)):
        raise UserError(
            f"study `{job.study}` in {job.storage_shown} has {len(study.directions)} objective(s), "
            f"the job asks for {len(directions(job))} (design.multi_objective); use a new `study` name"
        )
    names = [
        job.objective.metric,
        *([job.design.multi_objective] if len(study.directions) > 1 else []),
    ]
    if study.metric_names != names:  # optuna-dashboard's axes, instead of "Objective 0"
        with warnings.catch_warnings():  # (experimental in Optuna: a warning per study)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    return study


#: The study user attribute that tells it apart from a study of the same name in another
#: storage (the MLflow parent run carries it as a tag: `ablate.tracking.start_sweep`).
STUDY_UID = "ablate.study_uid"


def study_uid(study: Any) -> str:
    """The study's own id, made on first use (the driver calls this under its lock)."""
    import uuid

    uid = study.user_attrs.get(STUDY_UID)
    if not isinstance(uid, str) or not uid:
        uid = uuid.uuid4().hex[:16]
        study.set_user_attr(STUDY_UID, uid)
    return uid
