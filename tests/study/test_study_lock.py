"""The driver lock as `ablate status` sees it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid

import pytest

from ablate.errors import UserError
from ablate.study import driver_lock, lock_file, open_study
from ablate.study.lock import LOCK_CHECK_SECONDS, LockLost, check_driver_lock
from ablate.sweep import study_status


def test_status_names_a_driver_that_holds_the_lock_before_writing_its_record(make_job) -> None:
    """Between a driver's `flock` and the write of its host and pid, `ablate status` said
    "driver: none running"."""
    job = make_job()
    study = open_study(job)
    path = lock_file(job)
    assert path is not None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held, nothing written yet
        assert "driver: one is starting" in study_status(job)
    finally:
        os.close(fd)
    assert "driver: none running" in study_status(job)
    with driver_lock(job, study):
        assert f"pid {os.getpid()}" in study_status(job)


def _lock_backends(job) -> list[int]:
    """The pids of the PostgreSQL sessions holding the study's advisory lock."""
    import psycopg2
    from clusters_for_tests import POSTGRES

    from ablate.study.lock import advisory_key

    key = advisory_key(job.study) & 0xFFFFFFFFFFFFFFFF
    with psycopg2.connect(POSTGRES) as c, c.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = %s AND objid = %s AND objsubid = 1",
            (key >> 32, key & 0xFFFFFFFF),
        )
        return [row[0] for row in cur.fetchall()]


def _terminate(pid: int) -> None:
    import psycopg2
    from clusters_for_tests import POSTGRES

    c = psycopg2.connect(POSTGRES)
    c.autocommit = True
    with c.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    c.close()


@contextlib.contextmanager
def _pg_job(make_job):
    import optuna
    from clusters_for_tests import POSTGRES, postgres_ready

    from ablate.study import postgres_driver

    if not postgres_ready():
        pytest.skip(f"no PostgreSQL at {POSTGRES}")
    job = make_job(study=f"lock-{uuid.uuid4().hex[:10]}", storage=POSTGRES)
    try:
        yield job
    finally:
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=job.study, storage=postgres_driver(POSTGRES))


@pytest.mark.cluster
def test_a_dropped_lock_session_is_replaced_and_a_second_driver_still_refused(make_job) -> None:
    """Review p #1: the lock's session terminated (pg_terminate_backend, idle_session_timeout)
    took the lock with it, and a second driver was accepted beside the running one."""
    with _pg_job(make_job) as job:
        study = open_study(job)
        with driver_lock(job, study):
            (first,) = _lock_backends(job)
            _terminate(first)
            deadline = time.time() + 5 * LOCK_CHECK_SECONDS
            while time.time() < deadline and _lock_backends(job) in ([], [first]):
                time.sleep(0.2)
            again = _lock_backends(job)
            assert again and first not in again, "the lock was not taken again"
            assert f"pid {os.getpid()}" in study_status(job)
            second = driver_lock(job, open_study(job))
            with pytest.raises(UserError, match="another `ablate sweep` is driving"), second:
                pass
            check_driver_lock()  # still ours: nothing raised
        assert _lock_backends(job) == []


@pytest.mark.cluster
def test_a_driver_whose_lock_another_took_meanwhile_is_told_to_stop(make_job) -> None:
    import psycopg2
    from clusters_for_tests import POSTGRES

    from ablate.study.lock import advisory_key

    with _pg_job(make_job) as job:
        study = open_study(job)
        with driver_lock(job, study):
            (first,) = _lock_backends(job)
            _terminate(first)
            other = psycopg2.connect(POSTGRES)  # a second driver, in the moment between
            other.autocommit = True
            try:
                with other.cursor() as cur:
                    for _ in range(50):  # the terminated backend is gone within moments
                        cur.execute("SELECT pg_try_advisory_lock(%s)", (advisory_key(job.study),))
                        if cur.fetchone()[0]:
                            break
                        time.sleep(0.05)
                    else:
                        raise AssertionError("the terminated session kept the lock")
                deadline = time.time() + 5 * LOCK_CHECK_SECONDS
                with pytest.raises(LockLost, match="another `ablate sweep` took"):
                    while time.time() < deadline:
                        check_driver_lock()
                        time.sleep(0.2)
            finally:
                other.close()


@pytest.mark.slow
@pytest.mark.cluster
def test_a_sweep_whose_lock_another_driver_took_stops_and_leaves_its_trials(
    ray_session, make_job
) -> None:
    """The first driver crashed on `UpdateFinishedTrialError` once a second one had requeued its
    trials; now it stops with one line and leaves its trials in flight RUNNING, for the other
    driver (which requeues them) rather than failing or requeuing them a second time."""
    import threading

    import psycopg2
    from clusters_for_tests import POSTGRES
    from optuna.trial import TrialState

    from ablate.study.lock import advisory_key
    from ablate.sweep import run_sweep

    sim = {"kind": "sim", "landscape": "less_is_more", "metric": "score", "duration_s": 3.0}
    design = {"kind": "grid", "volumes": [1000, 5000], "balance": [0.5, 1.0], "seeds": [0]}
    with _pg_job(make_job) as base:
        job = make_job(study=base.study, storage=POSTGRES, objective=sim, design=design)
        other = psycopg2.connect(POSTGRES)
        other.autocommit = True

        def take_over() -> None:
            while not _lock_backends(job):
                time.sleep(0.1)
            time.sleep(1.0)  # trials in flight
            _terminate(_lock_backends(job)[0])
            with other.cursor() as cur:
                while True:
                    cur.execute("SELECT pg_try_advisory_lock(%s)", (advisory_key(job.study),))
                    if cur.fetchone()[0]:
                        return
                    time.sleep(0.02)

        thread = threading.Thread(target=take_over, daemon=True)
        thread.start()
        try:
            with pytest.raises(LockLost, match="another `ablate sweep` took"):
                run_sweep(job, ["caption", "count", "compare"], progress=None)
            thread.join(timeout=10)
            states = [t.state for t in open_study(job, create=False).get_trials()]
            assert TrialState.RUNNING in states and TrialState.FAIL not in states
        finally:
            other.close()
