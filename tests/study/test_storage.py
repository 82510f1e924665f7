"""One contract, every Optuna storage the driver supports: SQLite, a journal file, PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
from clusters_for_tests import POSTGRES, postgres_ready
from optuna.trial import TrialState

from ablate import tracking
from ablate.errors import UserError
from ablate.plan import design_mixtures
from ablate.study import driver_lock, enqueue_design, open_study, postgres_driver
from ablate.sweep import run_sweep, study_status
from ablate.tracking.client import mlflow_client

TYPES = ["caption", "count", "compare"]


@pytest.fixture(params=["sqlite", "journal", pytest.param("postgresql", marks=pytest.mark.cluster)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(storage URL, study name); a PostgreSQL study is deleted afterwards."""
    study = f"contract-{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/optuna.db", study
    elif request.param == "journal":
        yield str(tmp_path / "optuna.journal"), study
    else:
        if not postgres_ready():
            pytest.skip(f"no PostgreSQL at {POSTGRES}")
        yield POSTGRES, study
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=study, storage=postgres_driver(POSTGRES))


def _states(job: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in open_study(job, create=False).get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


@pytest.mark.slow
def test_sweep_resume_reconcile_and_lock(ray_session, make_job, storage) -> None:
    url, study_name = storage
    job = make_job(
        study=study_name,
        storage=url,
        objective={"kind": "sim", "landscape": "less_is_more", "metric": "score", "noise": 0.01},
        design={"kind": "grid", "volumes": [1000, 5000], "balance": [0.5, 1.0], "seeds": [0]},
    )
    design = design_mixtures(job, TYPES)
    # a driver that died with two trials in flight, the rest of the design never enqueued
    study = open_study(job)
    enqueue_design(study, design[:3])
    dead = [study.ask().number, study.ask().number]
    parent = tracking.start_sweep(job)
    stale = tracking.start_trial(job, parent, dead[0], design[0])

    summary = run_sweep(job, TYPES, progress=None)
    assert summary.n_complete == 4 and summary.n_run == 4
    assert _states(job) == {"COMPLETE": 4, "FAIL": 2}
    trials = open_study(job, create=False).get_trials()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.user_attrs["design_key"] for t in done) == sorted(
        {t.user_attrs["design_key"] for t in trials}
    )
    for t in trials:
        if t.number in dead:
            assert t.state == TrialState.FAIL and t.user_attrs["requeued"] is True
    assert mlflow_client(job.tracking_uri).get_run(stale).info.status == "KILLED"
    assert not tracking.child_runs(job, parent, status="RUNNING")

    # resume: nothing reruns
    assert run_sweep(job, TYPES, progress=None).n_run == 0
    assert "complete 4" in study_status(job) and "driver: none running" in study_status(job)

    # one driver per study: the second refuses, naming the holder
    study = open_study(job)
    with driver_lock(job, study):
        with pytest.raises(UserError, match=rf"pid {os.getpid()}"):
            run_sweep(job, TYPES, progress=None)
        assert f"pid {os.getpid()}" in study_status(job)
    assert "driver: none running" in study_status(job)
    assert _states(job) == {"COMPLETE": 4, "FAIL": 2}


HOLDER = """
import sys, time
from ablate.config import JobSpec, build
from ablate.study import driver_lock, open_study
job = build(JobSpec, {"study": sys.argv[2], "storage": sys.argv[1]}, "holder")
with driver_lock(job, open_study(job)):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_killed_drivers_lock_is_free_at_once(make_job, storage) -> None:
    """kill -9 of the driver frees the study: at once on every storage (no heartbeat to age),
    while a live holder is refused naming its pid."""
    import signal
    import subprocess
    import sys

    url, study_name = storage
    job = make_job(study=study_name, storage=url)
    open_study(job)
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, study_name], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=rf"pid {child.pid}"), driver_lock(job, open_study(job)):
            pass
        assert f"pid {child.pid}" in study_status(job)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # the kernel closed the dead driver's socket / lock file: the lock is free now (the
    # benchmark measures how soon; a few tries cover the server noticing the closed socket)
    free = False
    for _ in range(50):
        try:
            with driver_lock(job, open_study(job)):
                free = True
            break
        except UserError:
            time.sleep(0.2)
    assert free
    assert "driver: none running" in study_status(job)


class TcpProxy:
    """A loopback TCP proxy to a server, which a test can cut (every connection closed and no
    new one accepted): a database that goes away mid-sweep, without touching the real one."""

    def __init__(self, target: tuple[str, int]) -> None:
        import socket
        import threading

        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conns: list[Any] = []
        self.cut_off = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self.cut_off:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.cut_off:  # an accept blocked when the server closed still returns one
                self._hang_up(client)
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: Any, dst: Any) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        TcpProxy._hang_up(dst)

    @staticmethod
    def _hang_up(conn: Any) -> None:
        """shutdown, then close: a bare close() neither wakes a thread blocked in recv() on the
        socket nor sends the FIN until that recv returns."""
        import socket

        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            conn.close()

    def cut(self) -> None:
        self.cut_off = True
        self.server.close()
        for conn in self.conns:
            self._hang_up(conn)

    def resume(self) -> None:
        """Accept connections again on the same port (the database is back after a restart)."""
        import socket
        import threading

        self.server = socket.create_server(("127.0.0.1", self.port))
        self.cut_off = False
        threading.Thread(target=self._accept, daemon=True).start()


@pytest.mark.slow
@pytest.mark.cluster
def _sweep_through_a_proxy(make_job: Any, prefix: str) -> tuple[str, TcpProxy, Any]:
    """A 12-trial sim sweep's study on the real PostgreSQL through a proxy the test can cut."""
    study_name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    proxy = TcpProxy(("127.0.0.1", 5432))
    via_proxy = POSTGRES.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    sim = {"kind": "sim", "landscape": "less_is_more", "metric": "score", "duration_s": 0.5}
    design = {"kind": "grid", "volumes": [1000, 5000], "balance": [0.5, 1.0], "seeds": [0, 1, 2]}
    return (
        study_name,
        proxy,
        make_job(study=study_name, storage=via_proxy, objective=sim, design=design),
    )


def test_a_database_lost_mid_sweep_stops_it_cleanly_and_the_rerun_requeues(
    ray_session, make_job, monkeypatch
) -> None:
    import threading

    from ablate.study import storage

    monkeypatch.setattr(storage, "RECONNECT_SECONDS", 3.0)  # how long it waits for the server
    if not postgres_ready():
        pytest.skip(f"no PostgreSQL at {POSTGRES}")
    study_name, proxy, job = _sweep_through_a_proxy(make_job, "lost")
    try:
        timer = threading.Timer(3.0, proxy.cut)
        timer.start()
        with pytest.raises(UserError) as err:
            run_sweep(job, TYPES, progress=None)
        timer.join()
        msg = str(err.value)
        assert "lost the study storage" in msg and "requeues the trials left RUNNING" in msg
        # the root cause (psycopg's), not Optuna's wrapper ("invalid data in the commit")
        assert "invalid data" not in msg and "exception is raised during" not in msg
        assert "Connection refused" in msg or "closed the connection" in msg
        direct = replace(job, storage=POSTGRES)
        summary = None
        for _ in range(50):  # the server ends the cut session's backend (and its lock) soon
            try:
                summary = run_sweep(direct, TYPES, progress=None)
                break
            except UserError as busy:
                assert "another `ablate sweep`" in str(busy)
                time.sleep(0.2)
        if summary is None:
            import psycopg2

            with psycopg2.connect(POSTGRES) as c, c.cursor() as cur:
                cur.execute(
                    "SELECT a.pid, a.client_port, a.state, a.query, a.backend_start "
                    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory'"
                )
                rows = cur.fetchall()
            raise AssertionError(f"lock still held: {rows}; proxy {proxy.port}")
        assert summary.n_complete == 12
        trials = open_study(direct, create=False).get_trials()
        assert all(t.user_attrs.get("requeued") for t in trials if t.state == TrialState.FAIL)
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    finally:
        proxy.cut()
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=study_name, storage=postgres_driver(POSTGRES))


@pytest.mark.slow
@pytest.mark.cluster
def test_a_database_back_within_the_wait_loses_no_trial(
    ray_session, make_job, capsys: pytest.CaptureFixture[str]
) -> None:
    # a PostgreSQL restart or failover of a few seconds: the driver's writes wait for it (the
    # trials in flight go on) instead of stopping the sweep and every trial in flight
    import threading

    if not postgres_ready():
        pytest.skip(f"no PostgreSQL at {POSTGRES}")
    study_name, proxy, job = _sweep_through_a_proxy(make_job, "back")
    via_proxy = job.storage
    try:
        threading.Timer(3.0, proxy.cut).start()
        threading.Timer(8.0, proxy.resume).start()
        summary = run_sweep(job, TYPES, progress=None)
        assert summary.n_complete == 12 and summary.n_failed == 0
        err = capsys.readouterr().err
        assert f"the study storage {via_proxy} does not answer (" in err
        assert "trying again in 1 s" in err
        trials = open_study(job, create=False).get_trials()
        assert sorted(t.state.name for t in trials) == ["COMPLETE"] * 12
    finally:
        proxy.cut()
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=study_name, storage=postgres_driver(POSTGRES))
