"""One driver per study. A second one fails with a UserError naming the holder.

Every lock dies with its holder, so a rerun after `kill -9` is accepted at once:
- local storages (SQLite file, journal file): `fcntl.flock` on a lock file beside them; the
  kernel releases it when the driver dies, however it dies;
- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) held by a connection the
  driver keeps open; the server releases it when that connection closes (a killed process's
  socket is closed by the kernel at once; a vanished host is found by TCP keepalives within
  about KEEPALIVE_SECONDS). The driver pings that session every LOCK_CHECK_SECONDS (so that
  the server never sees it idle) and takes the lock again at once on a new one if it was
  dropped; if another driver took it meanwhile, this one stops (`LockLost`);
- other database servers: a study user attribute with a heartbeat; a heartbeat older than
  LOCK_STALE_SECONDS is a dead driver's and is taken over.
The holder's host, pid and start time are written to the study attribute LOCK_ATTR in every
case (in the lock file too for local storages), for the refusal's message and `ablate status`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ablate.config import JobSpec, safe_name
from ablate.errors import UserError
from ablate.study.storage import local_store_file, postgres_driver

#: PostgreSQL finds a vanished driver host after keepalive idle + count x interval seconds.
KEEPALIVE = {"tcp_keepalives_idle": 10, "tcp_keepalives_interval": 5, "tcp_keepalives_count": 3}
KEEPALIVE_SECONDS = KEEPALIVE["tcp_keepalives_idle"] + (
    KEEPALIVE["tcp_keepalives_count"] * KEEPALIVE["tcp_keepalives_interval"]
)
#: A heartbeat lock (servers other than PostgreSQL) older than this is taken over.
LOCK_STALE_SECONDS = 120.0
LOCK_HEARTBEAT_SECONDS = 30.0
LOCK_ATTR = "ablate.driver_lock"
#: What `driver_holder` returns for a lock that is held but whose holder is not written yet.
STARTING: dict[str, Any] = {"starting": True}


def lock_file(job: JobSpec) -> Path | None:
    """For storages on local disk, the driver lock is a file beside them; None for servers."""
    base = local_store_file(job.storage_url)
    if base is None:
        return None
    return base.with_name(f"{base.name}.{safe_name(job.study)}.driver.lock")


def describe_holder(holder: dict[str, Any]) -> str:
    if holder.get("starting"):
        return "one is starting (its host and pid are not recorded yet)"
    return f"host {holder.get('host')}, pid {holder.get('pid')}, since {holder.get('since')}"


def _me() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "heartbeat": time.time(),
    }


@contextlib.contextmanager
def driver_lock(job: JobSpec, study: Any) -> Iterator[None]:
    """Hold the study's driver lock for the duration of the block (see the module doc)."""
    path = lock_file(job)
    if path is not None:
        with _file_lock(path):
            yield
    elif is_postgres(job.storage_url):
        with _pg_lock(job, study):
            yield
    else:
        with _attr_lock(study):
            yield


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql:", "postgresql+", "postgres:"))


def advisory_key(study_name: str) -> int:
    """The study's advisory lock key: a signed 64-bit hash of its name (the database is the
    storage's own, so the name alone tells studies apart)."""
    digest = hashlib.sha256(f"ablate-driver:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class LockLost(UserError):
    """Another driver took the study's lock while this one's PostgreSQL session was down."""


#: How often the driver pings its lock's PostgreSQL session (and re-takes the lock if the
#: session was dropped: `pg_terminate_backend`, `idle_session_timeout`, a proxy or failover).
LOCK_CHECK_SECONDS = 2.0
#: The PostgreSQL lock guards of this process's drivers (`check_driver_lock` reads them).
_GUARDS: list[_PgGuard] = []


def check_driver_lock() -> None:
    """Raise `LockLost` once this process's driver lock was taken by another driver (the
    dispatcher calls it every loop: it must stop before it tells a trial the other requeued)."""
    for guard in list(_GUARDS):
        if guard.lost:
            raise LockLost(guard.lost)


class _PgGuard:
    """The lock's own session, pinged every LOCK_CHECK_SECONDS by a daemon thread: the ping
    keeps it from looking idle to the server, and a dropped session (whose advisory lock the
    server released) is replaced and the lock taken again at once. If another driver took it
    meanwhile, `lost` says so and `check_driver_lock` stops this driver."""

    def __init__(self, job: JobSpec, study: Any) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self.job, self.study, self.key = job, study, advisory_key(job.study)
        self.engine = create_engine(
            postgres_driver(job.storage_url),
            poolclass=NullPool,
            connect_args={"connect_timeout": 10},  # a reconnect to a vanished server gives up
        )
        self.conn: Any = None
        self.lost = ""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="ablate-pg-lock", daemon=True)

    def take(self) -> bool:
        """A new session (server-side keepalives, autocommit: never idle in a transaction) and
        `pg_try_advisory_lock` on it: whether it got the lock."""
        from sqlalchemy import text

        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        for name, value in KEEPALIVE.items():  # server side: it is the server that must notice
            self.conn.execute(text(f"SET {name} = {int(value)}"))
        query = text("SELECT pg_try_advisory_lock(:key)")
        return bool(self.conn.execute(query, {"key": self.key}).scalar())

    def _watch(self) -> None:
        from sqlalchemy import text

        while not self.stop.wait(LOCK_CHECK_SECONDS):
            try:
                self.conn.execute(text("SELECT 1"))
                continue
            except Exception:  # the session is gone, and its lock with it
                pass
            try:
                got = self.take()
            except Exception:  # the server is down: try again next time
                continue
            if not got:
                holder = self.study.user_attrs.get(LOCK_ATTR) or {}
                self.lost = (
                    f"another `ablate sweep` took this study's driver lock ("
                    f"{describe_holder(holder if holder.get('pid') else STARTING)}) while this "
                    "driver's PostgreSQL session was down: this driver stops, and leaves its "
                    "trials in flight to the other one (it requeues them). Nothing to do, or "
                    "stop both and rerun `ablate sweep` once."
                )
                return

    def release(self) -> None:
        from sqlalchemy import text

        self.stop.set()
        if self.thread.is_alive():  # (a ping stuck on a vanished server: not waited for)
            self.thread.join(timeout=LOCK_CHECK_SECONDS + 1)
        with contextlib.suppress(Exception):
            if (
                not (self.lost or self.thread.is_alive())
                and self.conn.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": self.key}
                ).scalar()
            ):
                self.study.set_user_attr(LOCK_ATTR, {})
        with contextlib.suppress(Exception):
            self.conn.close()  # closing the session releases its advisory lock
        self.engine.dispose()


@contextlib.contextmanager
def _pg_lock(job: JobSpec, study: Any) -> Iterator[None]:
    guard = _PgGuard(job, study)
    try:
        if not guard.take():
            holder = study.user_attrs.get(LOCK_ATTR) or {}
            raise UserError(
                f"another `ablate sweep` is driving this study "
                f"({describe_holder(holder if holder.get('pid') else STARTING)}; it holds the "
                "study's PostgreSQL advisory lock). Wait for it to finish, or stop it first: the "
                "lock goes with its process, and rerunning afterwards resumes the study."
            )
        study.set_user_attr(LOCK_ATTR, _me())
        guard.thread.start()
        _GUARDS.append(guard)
        yield
    finally:
        with contextlib.suppress(ValueError):
            _GUARDS.remove(guard)
        guard.release()


def _pg_held(job: JobSpec) -> bool:
    """Whether some session holds the study's advisory lock (read from `pg_locks`, which never
    takes it: a status query must not make a starting driver fail)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    key = advisory_key(job.study) & 0xFFFFFFFFFFFFFFFF  # pg_locks splits the key in two oids
    engine = create_engine(postgres_driver(job.storage_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            query = (
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = :hi AND objid = :lo AND objsubid = 1"
            )
            return bool(
                conn.execute(text(query), {"hi": key >> 32, "lo": key & 0xFFFFFFFF}).scalar()
            )
    finally:
        engine.dispose()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _file_holder(path) or STARTING
            raise UserError(
                f"another `ablate sweep` is driving this study ({describe_holder(holder)}; lock file {path}). "
                "Wait for it to finish, or stop it first; rerunning afterwards resumes the study."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_me()).encode())
        os.fsync(fd)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


@contextlib.contextmanager
def _attr_lock(study: Any) -> Iterator[None]:
    me = _me()
    current = study.user_attrs.get(LOCK_ATTR)
    alive = bool(current) and time.time() - float(current.get("heartbeat", 0)) < LOCK_STALE_SECONDS
    if alive and (current.get("host"), current.get("pid")) != (me["host"], me["pid"]):
        raise UserError(
            f"another `ablate sweep` is driving this study ({describe_holder(current)}; last heartbeat "
            f"{time.time() - float(current['heartbeat']):.0f}s ago). Wait for it, or if it is dead, "
            f"retry after {LOCK_STALE_SECONDS:.0f}s without a heartbeat."
        )
    study.set_user_attr(LOCK_ATTR, me)
    time.sleep(0.2)  # two drivers starting together: the later write wins, the other backs off
    if (study.user_attrs.get(LOCK_ATTR) or {}).get("pid") != me["pid"]:
        raise UserError(
            f"another `ablate sweep` took the lock of this study at the same moment ({describe_holder(study.user_attrs[LOCK_ATTR])})"
        )
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(LOCK_HEARTBEAT_SECONDS):
            with contextlib.suppress(Exception):
                study.set_user_attr(LOCK_ATTR, {**me, "heartbeat": time.time()})

    thread = threading.Thread(target=beat, name="ablate-lock-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            study.set_user_attr(LOCK_ATTR, {})


def driver_holder(job: JobSpec, study: Any) -> dict[str, Any] | None:
    """Who drives the study now: the holder's record, `STARTING` when the lock is held but the
    record not written yet (the moment between `flock` and the write), None when nobody does."""
    path = lock_file(job)
    if path is None and is_postgres(job.storage_url):
        if not _pg_held(job):
            return None
        attr = study.user_attrs.get(LOCK_ATTR) or {}
        return dict(attr) if attr.get("pid") else STARTING
    if path is None:
        attr = study.user_attrs.get(LOCK_ATTR) or {}
        fresh = time.time() - float(attr.get("heartbeat", 0)) < LOCK_STALE_SECONDS
        return attr if attr.get("pid") and fresh else None
    return _file_holder(path) if path.exists() else None


def _file_holder(path: Path) -> dict[str, Any] | None:
    """The holder recorded in a lock file if the lock is held (`STARTING` if none is recorded)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(path.read_text() or "{}")
            except ValueError:
                holder = {}
            return dict(holder) if isinstance(holder, dict) and holder.get("pid") else STARTING
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
