"""One driver per study. A second one fails with a UserError naming the holder.

Local storages (SQLite file, journal file) use `fcntl.flock` on a lock file beside them: the
kernel releases it when the driver dies, however it dies. Server storages (PostgreSQL) use a
study user attribute with a heartbeat; a heartbeat older than LOCK_STALE_SECONDS is a dead
driver's and is taken over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
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
from ablate.study.storage import local_store_file

#: A database lock (non-file storages) whose heartbeat is older than this is taken over.
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
    else:
        with _attr_lock(study):
            yield


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
