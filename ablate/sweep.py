"""The sweep driver: Optuna decides, Ray runs, MLflow records. The only module that imports ray.

    ablate sweep JOB.yaml      ->  run_sweep(job, task_types, address)
    ablate status JOB.yaml     ->  study_status(job)

Reading order of `run_sweep`: lock the study, open the Optuna study, reconcile what a dead
driver left behind, enqueue the design (skipping points already done or queued), start the
workers, then loop: ask -> dispatch -> ray.wait -> tell -> log, until nothing waits or runs.

The Optuna study is the one record of truth: the driver alone asks and tells; workers only
compute a `TrialResult`. Each trial carries the user attributes `proportions`, `volume`, `seed`,
`balance` (plus `design_key`, `mixture_name`, `taxonomy`); a finished one adds `metrics`,
`selection_hash`, `seconds`, `retries` and, when it failed, `error`.

Resume rules: a COMPLETE trial never reruns; a trial left RUNNING by a dead driver is told FAIL
(`error` says why) and its parameters are enqueued again; a design point whose `design_key`
is in a COMPLETE, WAITING or RUNNING trial is not enqueued again (so FAILED points are retried
by the next `ablate sweep`).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.errors import UserError
from ablate.mixture import Mixture

if TYPE_CHECKING:
    from ablate.config import JobSpec
    from ablate.trial import TrialResult

#: How often a worker may die under one trial before the trial is told FAIL.
MAX_WORKER_RETRIES = 2
#: Object store of a Ray the driver starts itself: trials return small results, not tensors.
LOCAL_OBJECT_STORE_BYTES = 200 * 1024**2
#: User attributes that define a trial's parameters (copied when a trial is enqueued again).
DESIGN_ATTRS = (
    "proportions",
    "volume",
    "seed",
    "balance",
    "design_key",
    "mixture_name",
    "taxonomy",
)
#: A dispatched trial gets its RUNNING MLflow run once it has run this long; shorter ones get one
#: finished run when they end (3 tracking writes instead of 5: see benchmarks/dispatch_benchmark.py).
RUN_AFTER_SECONDS = 1.0
#: How long the driver waits for its workers to start before it dispatches anyway.
WORKER_START_SECONDS = 60.0
#: A database lock (non-file storages) whose heartbeat is older than this is taken over.
LOCK_STALE_SECONDS = 120.0
LOCK_HEARTBEAT_SECONDS = 30.0
_LOCK_ATTR = "ablate.driver_lock"


# --------------------------------------------------------------------------- public data


@dataclass
class SweepProgress:
    """A snapshot after each event of the sweep (counts are over the whole study)."""

    done: int
    running: int
    failed: int
    waiting: int
    total: int
    best_value: float | None = None
    best_trial: int | None = None
    last: str = ""
    """What just happened, e.g. `v200-b0.50-s1 -> 0.65 in 14.2s`."""


@dataclass
class SweepSummary:
    n_complete: int
    """COMPLETE trials in the study (including those of earlier runs)."""
    n_failed: int
    """Trials that failed during this run."""
    best_value: float | None
    best_trial: int | None
    best_mixture: Mixture | None
    wall_seconds: float
    n_run: int = 0
    """Trials that completed during this run."""
    parent_run_id: str = ""
    """The MLflow parent run of the sweep."""
    pareto_front: list[int] = field(default_factory=list)
    """Multi-objective search: the trial numbers on the Pareto front (`study.best_trials`)."""


def print_progress(p: SweepProgress) -> None:
    """Default progress printer: one line per finished trial."""
    best = f"{p.best_value:.4g} (trial {p.best_trial})" if p.best_value is not None else "-"
    width = len(str(p.total))
    print(
        f"[{p.done + p.failed:>{width}}/{p.total}] done {p.done}  running {p.running}  failed {p.failed}  "
        f"best {best}  last: {p.last}",
        flush=True,
    )


# --------------------------------------------------------------------------- storage and lock


def open_storage(url: str) -> Any:
    """An Optuna storage: a plain file path (no `://`) is a journal file, anything else a DB URL.

    Local files are written without an fsync per write: an fsync costs 3-18 ms on the project's
    machines (measured), i.e. more than a whole zero-second trial, and a killed driver loses
    nothing without it (written pages outlive the process); only a power cut could lose the last
    writes. SQLite runs in WAL mode with `synchronous=NORMAL`; the journal file appends under
    Optuna's own lock and flushes, without fsync.
    """
    import optuna

    if "://" not in url:
        from optuna.storages import JournalStorage

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(_journal_backend(url))
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.get_storage(postgres_driver(url))
    if url.startswith("sqlite:///"):
        sqlite_fast_commits(getattr(storage, "_backend", storage).engine)  # type: ignore[union-attr]
    return storage


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
    """WAL + synchronous=NORMAL on every connection of a SQLite engine (see `open_storage`)."""
    from sqlalchemy import event

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener reconnect with the pragmas


def _journal_backend(path: str) -> Any:
    import json

    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal._file import get_lock_file

    class FlushedJournalFile(JournalFileBackend):
        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            with get_lock_file(self._lock), open(self._file_path, "ab") as f:
                f.write(text.encode("utf-8"))
                f.flush()

    return FlushedJournalFile(path)


def _lock_file(job: JobSpec) -> Path | None:
    """For storages on local disk, the driver lock is a file beside them; None for servers."""
    url = job.storage_url
    if url.startswith("sqlite:///"):
        base = Path(url[len("sqlite:///") :])
    elif "://" not in url:
        base = Path(url)
    else:
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in job.study)
    return base.with_name(f"{base.name}.{safe}.driver.lock")


def _holder() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": _now_iso(),
        "heartbeat": time.time(),
    }


def _now_iso() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _describe(holder: dict[str, Any]) -> str:
    return f"host {holder.get('host')}, pid {holder.get('pid')}, since {holder.get('since')}"


@contextlib.contextmanager
def driver_lock(job: JobSpec, study: Any) -> Iterator[None]:
    """Only one driver per study. A second one fails with a UserError naming the holder.

    Local storages (SQLite file, journal file) use `fcntl.flock` on a lock file beside them: the
    kernel releases it when the driver dies, however it dies. Server storages (PostgreSQL) use
    a study user attribute with a heartbeat; a heartbeat older than LOCK_STALE_SECONDS is a dead
    driver's and is taken over.
    """
    path = _lock_file(job)
    if path is not None:
        with _file_lock(path):
            yield
    else:
        with _attr_lock(study):
            yield


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(Path(path).read_text() or "{}")
            except (OSError, ValueError):
                holder = {}
            raise UserError(
                f"another `ablate sweep` is driving this study ({_describe(holder)}; lock file {path}). "
                "Wait for it to finish, or stop it first; rerunning afterwards resumes the study."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_holder()).encode())
        os.fsync(fd)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


@contextlib.contextmanager
def _attr_lock(study: Any) -> Iterator[None]:
    me = _holder()
    current = study.user_attrs.get(_LOCK_ATTR)
    alive = bool(current) and time.time() - float(current.get("heartbeat", 0)) < LOCK_STALE_SECONDS
    if alive and (current.get("host"), current.get("pid")) != (me["host"], me["pid"]):
        raise UserError(
            f"another `ablate sweep` is driving this study ({_describe(current)}; last heartbeat "
            f"{time.time() - float(current['heartbeat']):.0f}s ago). Wait for it, or if it is dead, "
            f"retry after {LOCK_STALE_SECONDS:.0f}s without a heartbeat."
        )
    study.set_user_attr(_LOCK_ATTR, me)
    time.sleep(0.2)  # two drivers starting together: the later write wins, the other backs off
    if (study.user_attrs.get(_LOCK_ATTR) or {}).get("pid") != me["pid"]:
        raise UserError(
            f"another `ablate sweep` took the lock of this study at the same moment ({_describe(study.user_attrs[_LOCK_ATTR])})"
        )
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(LOCK_HEARTBEAT_SECONDS):
            with contextlib.suppress(Exception):
                study.set_user_attr(_LOCK_ATTR, {**me, "heartbeat": time.time()})

    thread = threading.Thread(target=beat, name="ablate-lock-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            study.set_user_attr(_LOCK_ATTR, {})


def open_study(job: JobSpec, create: bool = True, sampler: Any = None) -> Any:
    """The job's Optuna study (created when missing and `create`).

    `sampler`: the driver passes the search's sampler; fixed designs only pop enqueued trials,
    which a RandomSampler does without any modelling.
    """
    import optuna

    from ablate.search import directions, make_pruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = job.storage_url
    store_file = (
        url[len("sqlite:///") :]
        if url.startswith("sqlite:///")
        else url
        if "://" not in url
        else None
    )
    if not create and store_file is not None and not Path(store_file).is_file():
        # reading must not leave an empty database behind
        raise UserError(
            f"no study `{job.study}`: {store_file} does not exist; start it with `ablate sweep`"
        )
    storage = open_storage(url)
    if sampler is None:
        sampler = optuna.samplers.RandomSampler(seed=job.seed)
    if create:
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
                f"study `{job.study}` in {job.storage_url} has {len(study.directions)} objective(s), "
                f"the job asks for {len(directions(job))} (design.multi_objective); use a new `study` name"
            )
        return study
    try:
        return optuna.load_study(study_name=job.study, storage=storage, sampler=sampler)
    except KeyError:
        raise UserError(
            f"no study `{job.study}` in {job.storage_url}; start it with `ablate sweep`"
        ) from None


# --------------------------------------------------------------------------- trials <-> mixtures


def trial_attrs(mixture: Mixture) -> dict[str, Any]:
    """The user attributes that define a trial: its mixture, `balance` and `design_key`."""
    from ablate.design import balance_of, design_key

    props = {t: float(p) for t, p in dict(mixture.proportions).items()}
    return {
        "proportions": props,
        "volume": int(mixture.volume)
        if float(mixture.volume).is_integer()
        else float(mixture.volume),
        "seed": int(mixture.seed),
        "balance": balance_of(props),
        "design_key": design_key(mixture),
        "mixture_name": mixture.name,
        "taxonomy": mixture.taxonomy,
        # filled in when the trial finishes, if not empty: set here, they cost no extra write
        "retries": 0,
        "counts": {},
        "selection_hash": "",
    }


def mixture_from_attrs(attrs: dict[str, Any], default_taxonomy: str = "task_type") -> Mixture:
    """Rebuild a trial's Mixture from its user attributes."""
    missing = [k for k in ("proportions", "volume", "seed") if k not in attrs]
    if missing:
        raise ValueError(
            f"trial has no user attribute(s) {missing}: not a trial enqueued by ablate"
        )
    return Mixture(
        name=str(attrs.get("mixture_name") or f"v{attrs['volume']}-s{attrs['seed']}"),
        volume=attrs["volume"],
        proportions={str(t): float(p) for t, p in attrs["proportions"].items()},
        taxonomy=str(attrs.get("taxonomy") or default_taxonomy),
        seed=int(attrs["seed"]),
    )


def design_mixtures(job: JobSpec, task_types: list[str]) -> list[Mixture]:
    """The mixtures enqueued up front: the fixed design, or a search's warm start."""
    from ablate.design import design_mixtures as fixed
    from ablate.search import default_warm_start

    return default_warm_start(job, task_types) + fixed(job, task_types)


def _reconcile(
    job: JobSpec,
    study: Any,
    parent_run_id: str,
    reason: str = "driver died while the trial ran (reconciled on restart)",
) -> list[int]:
    """Trials RUNNING in storage belong to a dead driver (we hold the lock): FAIL + enqueue again."""
    from optuna.trial import TrialState

    from ablate import tracking

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        study._storage.set_trial_user_attr(t._trial_id, "error", reason)
        # a requeued trial does not count against a search's n_trials: its copy runs instead
        study._storage.set_trial_user_attr(t._trial_id, "requeued", True)
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        attrs = {k: t.user_attrs[k] for k in DESIGN_ATTRS if k in t.user_attrs}
        if "proportions" in attrs:
            study.enqueue_trial(
                params=dict(t.params),
                user_attrs={
                    **attrs,
                    "retries": 0,
                    "counts": {},
                    "selection_hash": "",
                    "requeued_from": t.number,
                },
            )
    numbers = [t.number for t in stale]
    if numbers:
        tracking.mark_killed(job, parent_run_id, numbers, reason)
    return numbers


def _sync_tracking(job: JobSpec, study: Any, parent_run_id: str, writer: Any | None = None) -> int:
    """Give every finished trial its finished MLflow run (a driver killed between `tell` and
    logging leaves none, or a RUNNING one): Optuna is the record of truth, MLflow follows it.
    Returns how many runs were written (queued, with a `tracking.RunWriter`)."""
    from optuna.trial import TrialState

    from ablate import tracking
    from ablate.trial import TrialResult

    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
    if not finished:
        return 0
    runs: dict[str, Any] = {}
    for run in tracking.child_runs(job, parent_run_id):
        number = run.data.tags.get("optuna.trial_number")
        if number is not None and (number not in runs or run.info.status != "RUNNING"):
            runs[number] = run
    n = 0
    for t in finished:
        run = runs.get(str(t.number))
        if run is not None and run.info.status != "RUNNING":
            continue
        if t.state == TrialState.FAIL and run is None:
            continue  # failed before dispatch, or by a dead driver before its run was created
        try:
            mixture = mixture_from_attrs(t.user_attrs, job.taxonomy)
        except ValueError:
            continue
        a = t.user_attrs
        result = TrialResult(
            metrics=dict(a.get("metrics") or {}),
            counts=dict(a.get("counts") or {}),
            selection_hash=str(a.get("selection_hash") or ""),
            seconds=float(a.get("seconds") or 0.0),
        )
        args = (t.number, mixture, result if t.state == TrialState.COMPLETE else None, t.state.name)
        run_id = run.info.run_id if run is not None else None
        if writer is not None:
            writer.submit(*args, run_id=run_id, error=a.get("error"), seconds=result.seconds)
        else:
            tracking.log_trial(job, parent_run_id, *args, run_id=run_id, error=a.get("error"))
        n += 1
    return n


def _enqueue_design(
    study: Any, mixtures: list[Mixture], params: Callable[[Mixture], dict[str, Any]] | None = None
) -> int:
    """Enqueue the points not yet COMPLETE, WAITING or RUNNING (by `design_key`).

    `params`: a search's coordinates of a mixture, so its sampler learns from warm-start trials.
    """
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
    have = {t.user_attrs.get("design_key") for t in study.get_trials(deepcopy=False, states=live)}
    todo: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for mix in mixtures:
        attrs = trial_attrs(mix)
        if attrs["design_key"] in have:
            continue
        todo.append((params(mix) if params else {}, attrs))
        have.add(attrs["design_key"])
    if todo and not _enqueue_rdb(study, todo):
        for fixed, attrs in todo:
            study.enqueue_trial(params=fixed, user_attrs=attrs)
    return len(todo)


def _enqueue_rdb(study: Any, todo: list[tuple[dict[str, Any], dict[str, Any]]]) -> bool:
    """`study.enqueue_trial` for many trials in one transaction of an RDB storage.

    Writes the rows `enqueue_trial` writes (a WAITING trial numbered in order, its user
    attributes, the `fixed_params` system attribute), without its per-trial transaction and
    per-attribute SELECT-then-upsert: 300 trials took 6-11 s on SQLite through `enqueue_trial`
    on the project's machine (ORM work, not disk), a fraction of a second here. The driver holds
    the study's lock, and the study row is locked for the transaction (as `enqueue_trial` does).
    False (nothing written) when the storage is not an RDBStorage: the caller enqueues one by one.
    """
    import json

    from optuna.storages import RDBStorage

    backend = getattr(study._storage, "_backend", study._storage)
    if not isinstance(backend, RDBStorage):
        return False
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from optuna.trial import TrialState
    from sqlalchemy import func, insert, select

    study_id = study._study_id
    with _create_scoped_session(backend.scoped_session) as session:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        first = session.scalar(
            select(func.count(models.TrialModel.trial_id)).where(
                models.TrialModel.study_id == study_id
            )
        )
        trials = [
            models.TrialModel(
                study_id=study_id, number=int(first or 0) + i, state=TrialState.WAITING
            )
            for i in range(len(todo))
        ]
        session.add_all(trials)
        session.flush()  # the trials' ids
        user_rows = [
            {"trial_id": t.trial_id, "key": k, "value_json": json.dumps(v)}
            for t, (_, attrs) in zip(trials, todo, strict=True)
            for k, v in attrs.items()
        ]
        system_rows = [
            {"trial_id": t.trial_id, "key": "fixed_params", "value_json": json.dumps(fixed)}
            for t, (fixed, _) in zip(trials, todo, strict=True)
        ]
        session.execute(insert(models.TrialUserAttributeModel), user_rows)
        session.execute(insert(models.TrialSystemAttributeModel), system_rows)
    return True


# --------------------------------------------------------------------------- workers


class TrialWorker:
    """A long-lived Ray actor: one per GPU slot. `cache` outlives trials (the resident base model)."""

    def __init__(self, threads: int | None = None, env: dict[str, str] | None = None) -> None:
        self.cache: dict[str, Any] = {}
        self.threads = threads
        self.reports: list[tuple[int, float]] = []
        self.stopping = False
        # the driver's `_worker_env`, applied here rather than as a Ray runtime_env: an actor
        # with its own runtime_env needs a fresh worker process (seconds), one without takes a
        # worker Ray has already started; `module:function` targets import through sys.path
        for key, value in (env or {}).items():
            os.environ[key] = value
        path = [p for p in (env or {}).get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:0] = [p for p in path if p not in sys.path]
        if threads:
            os.environ["OMP_NUM_THREADS"] = str(threads)

    def ping(self) -> int:
        return os.getpid()

    def run(self, job: JobSpec, mixture: Mixture) -> TrialResult:
        from ablate.trial import run_objective

        self.reports, self.stopping = [], False

        def report(step: int, value: float) -> None:
            # intermediate values wait here for the driver (workers never touch Optuna)
            self.reports.append((int(step), float(value)))
            if self.stopping:
                raise TrialStopped(f"pruned at step {step}")

        self.cache["report"] = report
        result = run_objective(job, mixture, self.cache)
        result.info.setdefault("worker_pid", os.getpid())
        return result

    def progress(self) -> list[tuple[int, float]]:
        """The intermediate values of the running trial so far (the driver polls them)."""
        return list(self.reports)

    def stop(self) -> None:
        """The driver pruned the trial: its next report raises TrialStopped."""
        self.stopping = True


class TrialStopped(Exception):
    """Raised inside a worker's trial that the driver pruned."""


def _init_ray(address: str | None) -> bool:
    """Connect to (or start) Ray; True when this call started it (so the driver shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=True, runtime_env={"env_vars": _worker_env(None)})
    else:
        ray.init(
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            log_to_driver=True,
            runtime_env={"env_vars": _worker_env(None)},
        )
    return True


def _worker_env(threads: int | None) -> dict[str, str]:
    """PYTHONPATH = the driver's sys.path, so `module:function` targets import on workers."""
    env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def _gpus_per_trial(job: JobSpec) -> float:
    import ray

    if job.resources.gpus_per_trial is not None:
        return float(job.resources.gpus_per_trial)
    return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def _n_workers(job: JobSpec, cpus: float, gpus: float) -> int:
    import ray

    total = ray.cluster_resources()
    slots = int(total.get("CPU", 0) // cpus) if cpus > 0 else job.resources.max_in_flight
    if gpus > 0:
        if total.get("GPU", 0) < gpus:
            raise UserError(
                f"resources.gpus_per_trial is {gpus:g} but the Ray cluster has {total.get('GPU', 0):g} GPUs"
            )
        slots = min(slots, int(total["GPU"] // gpus))
    if slots < 1:
        raise UserError(
            f"the Ray cluster ({total.get('CPU', 0):g} CPUs) cannot host one trial of "
            f"resources.cpus_per_trial={cpus:g}"
        )
    return max(1, min(job.resources.max_in_flight, slots))


@dataclass
class _InFlight:
    trial: Any
    mixture: Mixture
    actor: Any
    run_id: str | None
    started: float
    retries: int = 0
    reported: int = 0
    """Intermediate values already reported to Optuna."""
    pruned: bool = False


@dataclass
class _Tally:
    done: int = 0
    failed: int = 0
    run: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    best_attrs: dict[str, Any] = field(default_factory=dict)


def _is_worker_death(err: BaseException) -> bool:
    from ray import exceptions as rex

    kinds: tuple[type[BaseException], ...] = (
        rex.RayActorError,
        rex.WorkerCrashedError,
        rex.NodeDiedError,
        rex.ObjectLostError,
    )
    oom = getattr(rex, "OutOfMemoryError", None)
    if oom is not None:
        kinds = (*kinds, oom)
    return isinstance(err, kinds) and not isinstance(err, rex.RayTaskError)


def _error_text(err: BaseException) -> str:
    from ray.exceptions import RayTaskError

    if isinstance(err, RayTaskError):
        cause = getattr(err, "cause", None)
        if cause is not None:
            return f"{type(cause).__name__}: {cause}"
    return f"{type(err).__name__}: {err}"


# --------------------------------------------------------------------------- the driver


def run_sweep(
    job: JobSpec,
    task_types: list[str],
    address: str | None = None,
    progress: Callable[[SweepProgress], None] | None = print_progress,
) -> SweepSummary:
    """Run (or resume) the job's sweep until every design point has a finished trial."""
    import optuna

    from ablate import tracking

    start_wall = time.perf_counter()
    if job.objective.kind == "python":
        from ablate.objectives import load_target

        load_target(job.objective.target)  # a bad target fails here, once, not in every trial
    mixtures = design_mixtures(job, task_types)
    search = job.design.kind == "search"
    study = open_study(job)
    with driver_lock(job, study):
        parent = tracking.start_sweep(job)  # creates the tracking DB before any worker exists
        _reconcile(job, study, parent)
        if search:
            from ablate.search import cube_params, make_sampler

            # seeded from the trial count: a restarted driver does not replay its start-up points
            study.sampler = make_sampler(job, len(study.get_trials(deepcopy=False)))
            _enqueue_design(study, mixtures, lambda m: cube_params(job, task_types, m))
        else:
            _enqueue_design(study, mixtures)
        tally = _Tally()
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            _update_best(job, tally, t.number, t.values[0] if t.values else None, t.user_attrs)
            tally.done += 1
        waiting = collections.deque(
            t._trial_id
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        )
        n_waiting = len(waiting)
        n_ask = 0
        if search:
            counted = [
                t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("requeued")
            ]
            n_ask = max(0, job.design.n_trials - len(counted))
        status = "FINISHED"
        started_ray = False
        # finished trials' runs are written by a thread, in batches (MLflow follows Optuna)
        writer = tracking.RunWriter(job, parent)
        try:
            _sync_tracking(job, study, parent, writer)
            if n_waiting or n_ask:
                started_ray = _init_ray(address)
                _drive(job, study, writer, tally, waiting, n_ask, task_types, progress)
            writer.close()  # every finished trial has its run before the sweep's run ends
        except BaseException as err:
            status = "KILLED"
            with contextlib.suppress(Exception):
                _reconcile(
                    job, study, parent, f"driver stopped ({type(err).__name__}) while the trial ran"
                )
            raise
        finally:
            with contextlib.suppress(Exception):
                writer.close()  # interrupted: still write what finished
            tracking.finish_sweep(
                job,
                parent,
                {
                    "n_complete": tally.done,
                    "n_failed": tally.failed,
                    **({"best_value": tally.best_value} if tally.best_value is not None else {}),
                },
                status=status,
            )
            if started_ray:
                import ray

                ray.shutdown()
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
        parent_run_id=parent,
        pareto_front=pareto,
    )


def _update_best(
    job: JobSpec, tally: _Tally, number: int, value: float | None, attrs: dict[str, Any]
) -> None:
    if value is None:
        return
    better = (
        tally.best_value is None
        or (job.objective.direction == "maximize" and value > tally.best_value)
        or (job.objective.direction == "minimize" and value < tally.best_value)
    )
    if better:
        tally.best_value, tally.best_trial, tally.best_attrs = float(value), number, dict(attrs)


def _drive(
    job: JobSpec,
    study: Any,
    writer: Any,
    tally: _Tally,
    waiting: collections.deque[int],
    n_ask: int,
    task_types: list[str],
    progress: Callable[[SweepProgress], None] | None,
) -> None:
    import ray
    from optuna.trial import TrialState

    from ablate import tracking
    from ablate.search import objective_values

    cpus = float(job.resources.cpus_per_trial)
    gpus = _gpus_per_trial(job)
    threads = job.train.threads or max(1, int(cpus))
    prune = job.design.kind == "search" and job.design.prune
    actor_cls = ray.remote(TrialWorker).options(
        num_cpus=cpus,
        num_gpus=gpus,
        max_restarts=0,
        # pruning: `progress` and `stop` run beside `run`, in a second thread of the actor
        max_concurrency=2 if prune else 1,
    )

    def new_actor() -> Any:
        return actor_cls.remote(threads, _worker_env(threads))

    search = job.design.kind == "search"
    n_waiting = len(waiting)  # the WAITING trials' ids, read once by run_sweep
    idle = [new_actor() for _ in range(min(_n_workers(job, cpus, gpus), n_waiting + n_ask))]
    # trials start when their workers are up (at most a minute's wait: a busy cluster may not
    # place them all now), so a trial's recorded start and duration are its own
    ray.wait([a.ping.remote() for a in idle], num_returns=len(idle), timeout=WORKER_START_SECONDS)
    flight: dict[Any, _InFlight] = {}

    def report(last: str) -> None:
        if progress is not None:
            progress(
                SweepProgress(
                    done=tally.done,
                    running=len(flight),
                    failed=tally.failed,
                    waiting=n_waiting + n_ask,
                    total=tally.done + tally.failed + len(flight) + n_waiting + n_ask,
                    best_value=tally.best_value,
                    best_trial=tally.best_trial,
                    last=last,
                )
            )

    def finish_fail(f: _InFlight, error: str, result: TrialResult | None = None) -> None:
        f.trial.set_user_attr("error", error[:4000])
        f.trial.set_user_attr("retries", f.retries)
        study.tell(f.trial, state=TrialState.FAIL)
        tally.failed += 1
        writer.submit(
            f.trial.number,
            f.mixture,
            result,
            "FAIL",
            run_id=f.run_id,
            error=error,
            seconds=time.perf_counter() - f.started,
        )
        report(
            f"{f.mixture.name} FAILED after {time.perf_counter() - f.started:.1f}s: {error.splitlines()[0][:200]}"
        )

    try:
        while flight or n_waiting or n_ask:
            while idle and (n_waiting or n_ask):
                trial = _pop_waiting(study, waiting) if waiting else None
                if trial is not None:
                    n_waiting -= 1
                elif n_ask:
                    trial = study.ask()  # the sampler decides
                    n_ask -= 1
                else:
                    n_waiting = 0  # someone else took what was left (never with the lock held)
                    break
                try:
                    if search:
                        mixture = _searched_mixture(trial, job, task_types)
                    else:
                        mixture = mixture_from_attrs(trial.user_attrs, job.taxonomy)
                except ValueError as err:
                    trial.set_user_attr("error", str(err))
                    study.tell(trial, state=TrialState.FAIL)
                    tally.failed += 1
                    continue
                actor = idle.pop()
                ref = actor.run.remote(job, mixture)
                flight[ref] = _InFlight(trial, mixture, actor, None, time.perf_counter())
            if not flight:
                break
            ready, _ = ray.wait(list(flight), num_returns=1, timeout=RUN_AFTER_SECONDS)
            if not ready:
                now = time.perf_counter()
                for f in flight.values():
                    if f.run_id is None and now - f.started >= RUN_AFTER_SECONDS:
                        f.run_id = tracking.start_trial(
                            job, writer.parent_run_id, f.trial.number, f.mixture
                        )
                    if prune and not f.pruned:
                        _report_progress(f)
                        if f.trial.should_prune():
                            f.pruned = True
                            f.actor.stop.remote()
                continue
            ref = ready[0]
            f = flight.pop(ref)
            if prune:
                with contextlib.suppress(Exception):
                    _report_progress(f)
            try:
                result: TrialResult = ray.get(ref)
            except Exception as err:
                if f.pruned and not _is_worker_death(err):
                    idle.append(f.actor)
                    study.tell(f.trial, state=TrialState.PRUNED)
                    writer.submit(
                        f.trial.number,
                        f.mixture,
                        None,
                        "PRUNED",
                        run_id=f.run_id,
                        seconds=time.perf_counter() - f.started,
                    )
                    report(f"{f.mixture.name} pruned at step {f.reported}")
                    continue
                if _is_worker_death(err):
                    with contextlib.suppress(Exception):
                        ray.kill(f.actor)
                    fresh = new_actor()
                    if f.retries < MAX_WORKER_RETRIES:
                        f.retries += 1
                        f.trial.set_user_attr("retries", f.retries)
                        f.actor = fresh
                        flight[fresh.run.remote(job, f.mixture)] = f
                        report(
                            f"{f.mixture.name}: worker died ({type(err).__name__}), retry {f.retries}/{MAX_WORKER_RETRIES}"
                        )
                    else:
                        idle.append(fresh)
                        finish_fail(f, f"worker died {f.retries + 1} times: {_error_text(err)}")
                    continue
                idle.append(f.actor)
                finish_fail(f, _error_text(err))
                continue
            idle.append(f.actor)
            value = result.metrics.get(job.objective.metric)
            if value is None or not isinstance(value, int | float) or not math.isfinite(value):
                finish_fail(
                    f,
                    f"objective metric `{job.objective.metric}` is missing or not finite in the trial's "
                    f"result (got {value!r}; metrics: {sorted(result.metrics)})",
                    result,
                )
                continue
            # one storage write per attribute: set only what the enqueued defaults do not say
            f.trial.set_user_attr("metrics", {k: float(v) for k, v in result.metrics.items()})
            f.trial.set_user_attr("seconds", float(result.seconds))
            if result.selection_hash:
                f.trial.set_user_attr("selection_hash", result.selection_hash)
            if result.counts:
                f.trial.set_user_attr("counts", dict(result.counts))
            values = objective_values(job, float(value), result, f.mixture, gpus)
            study.tell(f.trial, values if len(values) > 1 else values[0])
            tally.done += 1
            tally.run += 1
            _update_best(job, tally, f.trial.number, float(value), f.trial.user_attrs)
            writer.submit(
                f.trial.number,
                f.mixture,
                result,
                "COMPLETE",
                run_id=f.run_id,
                seconds=time.perf_counter() - f.started,
            )
            report(f"{f.mixture.name} -> {value:.4g} in {time.perf_counter() - f.started:.1f}s")
    finally:
        # Interrupted (Ctrl-C, an error): stop the workers; run_sweep then fails and re-enqueues
        # the trials that were in flight, as a restarted driver would.
        for actor in idle + [f.actor for f in flight.values()]:
            with contextlib.suppress(Exception):
                ray.kill(actor)


def _report_progress(f: _InFlight) -> None:
    """Pass a running trial's new intermediate values from its worker to Optuna."""
    import ray

    values = ray.get(f.actor.progress.remote(), timeout=30)
    for step, value in values[f.reported :]:
        f.trial.report(value, step)
    f.reported = len(values)


def _pop_waiting(study: Any, waiting: collections.deque[int]) -> Any:
    """`study.ask()` for the next enqueued trial, without its scan of every WAITING trial.

    `ask` reads all WAITING trials from storage on every call (O(n) per trial, O(n^2) per
    sweep: 150 waiting trials took 70 ms per ask on SQLite); the driver holds the study's lock,
    so it reads the queue once and pops by id, exactly as `ask` does (state -> RUNNING).
    """
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    while waiting:
        trial_id = waiting.popleft()
        try:
            if study._storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return optuna.Trial(study, trial_id)
        except UpdateFinishedTrialError:
            continue
    return None


def _searched_mixture(trial: Any, job: JobSpec, task_types: list[str]) -> Mixture:
    """A search trial's mixture: enqueued ones (warm start, requeued) keep their attributes."""
    from ablate.search import suggest

    mixture = suggest(trial, job, task_types)
    attrs = trial.user_attrs
    if "proportions" in attrs:
        return mixture_from_attrs(attrs, job.taxonomy)
    for key, value in trial_attrs(mixture).items():
        trial.set_user_attr(key, value)
    return mixture


# --------------------------------------------------------------------------- status


def study_status(job: JobSpec) -> str:
    """`ablate status JOB.yaml`: counts by state, best so far and a time-left estimate."""
    from optuna.trial import TrialState

    study = open_study(job, create=False)
    trials = study.get_trials(deepcopy=False)
    counts = {
        s.name: 0
        for s in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING, TrialState.FAIL)
    }
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    lines = [f"study {job.study} ({job.storage_url}): {len(trials)} trials"]
    lines.append("  " + "  ".join(f"{k.lower()} {v}" for k, v in counts.items()))
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    if complete:
        pick = max if job.objective.direction == "maximize" else min
        best = pick(complete, key=lambda t: t.values[0])
        props = best.user_attrs.get("proportions", {})
        share = ", ".join(f"{k} {v:.3f}" for k, v in props.items())
        lines.append(
            f"  best {job.objective.metric} = {best.values[0]:.4g} (trial {best.number}): "
            f"volume {best.user_attrs.get('volume')}, seed {best.user_attrs.get('seed')}, proportions {{{share}}}"
        )
        if len(study.directions) > 1:
            front = sorted(t.number for t in study.best_trials)
            lines.append(
                f"  Pareto front ({job.objective.metric} vs {job.design.multi_objective}): "
                f"trials {', '.join(map(str, front))}"
            )
        durations = [
            (t.datetime_complete - t.datetime_start).total_seconds()
            for t in complete
            if t.datetime_complete and t.datetime_start
        ]
        remaining = counts["WAITING"] + counts["RUNNING"]
        if durations and remaining:
            mean = sum(durations) / len(durations)
            parallel = counts["RUNNING"] or job.resources.max_in_flight
            left = mean * remaining / max(1, parallel)
            lines.append(
                f"  mean trial {mean:.1f}s; {remaining} to go on {parallel} in flight: about {_human(left)} left"
            )
    path = _lock_file(job)
    holder = None
    if path is not None and path.exists():
        holder = _file_holder(path)
    elif path is None:
        attr = study.user_attrs.get(_LOCK_ATTR) or {}
        if attr.get("pid") and time.time() - float(attr.get("heartbeat", 0)) < LOCK_STALE_SECONDS:
            holder = attr
    lines.append(f"  driver: {_describe(holder)}" if holder else "  driver: none running")
    return "\n".join(lines)


def _file_holder(path: Path) -> dict[str, Any] | None:
    """The holder recorded in a lock file, if the lock is currently held."""
    import fcntl
    import json

    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return dict(json.loads(path.read_text() or "{}"))
            except ValueError:
                return {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _human(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
