"""The README's "Run on a cluster", done for real on this machine: a head and a worker node
started with the Ray CLI (own ports, own `--temp-dir`, fake GPUs), Optuna on PostgreSQL, an
`mlflow server`, the driver submitted with `ray job submit --working-dir`. The driver is stopped
(`ray job stop`), then SIGKILLed and resubmitted at once, then the worker node is killed while
every GPU is busy; the sweep still ends with exactly one COMPLETE trial per design point in
Optuna and one FINISHED run per COMPLETE trial in MLflow.

Only the processes this test started are stopped (never `ray stop`: it kills every Ray here).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from clusters_for_tests import POSTGRES, postgres_ready
from conftest import free_port
from optuna.trial import TrialState

from ablate import tracking
from ablate.plan import load_job
from ablate.study import postgres_driver

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

#: 3 volumes x 2 balance levels x 2 seeds, 3 s each, 4 trials in flight on 4 fake GPUs
DESIGN = {"kind": "grid", "volumes": [1000, 3000, 5000], "balance": [0.5, 1.0], "seeds": [0, 1]}
N_TRIALS = 12


def _env() -> dict[str, str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    return env


def _run(*cmd: str, timeout: float = 120) -> str:
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return out.stdout + out.stderr


def _matching(*texts: str) -> list[Any]:
    """The processes whose command line holds every one of `texts`."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            line = " ".join(proc.info["cmdline"] or [])
            if all(text in line for text in texts):
                found.append(proc)
    return found


def _kill_matching(*texts: str) -> int:
    """SIGKILL every process whose command line holds every one of `texts`, and their children."""
    import psutil

    victims = []
    for proc in _matching(*texts):
        with contextlib.suppress(psutil.Error):
            victims += [proc, *proc.children(recursive=True)]
    for proc in victims:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    # gone, not only signalled: a check right after the kill saw one still running (CI)
    psutil.wait_procs(victims, timeout=15)
    return len(victims)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A head (2 CPUs, 2 fake GPUs, the dashboard's job server) and a worker node (the same),
    started with `ray start`, each with its own temp dir and agent port."""
    base = Path(f"/tmp/ablate-rc-{uuid.uuid4().hex[:8]}")  # short: Ray's socket paths are limited
    head, worker = base / "head", base / "worker"
    port, dash, client = free_port(), free_port(), free_port()
    common = ["--num-cpus", "2", "--num-gpus", "2", "--disable-usage-stats"]
    _run("ray", "start", "--head", "--port", str(port), "--temp-dir", str(head),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--include-dashboard",
         "true", "--dashboard-agent-listen-port", str(free_port()), "--ray-client-server-port",
         str(client), *common)  # fmt: skip
    try:
        _run("ray", "start", "--address", f"127.0.0.1:{port}", "--temp-dir", str(worker),
             "--dashboard-agent-listen-port", str(free_port()), *common)  # fmt: skip
        yield {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dash}",
               "worker_dir": str(worker), "head_dir": str(head)}  # fmt: skip
    finally:
        _kill_matching(str(worker))
        _kill_matching(str(head))
        # the head's Ray client server names no temp dir: it outlived the head, holding its port
        client_server = ("ray.util.client.server", f"--port={client}")
        _kill_matching(*client_server)
        assert not _matching(*client_server) and not _matching(str(head))
        with contextlib.suppress(OSError):
            subprocess.run(["rm", "-rf", str(base)], check=False)


@functools.cache
def _storage(url: str) -> Any:
    """One storage for every poll, its connections closed after each use: a new one per poll
    (`optuna.load_study(storage=URL)`, 3 a second) kept an engine and its open connection until
    the garbage collector ran, and CI's PostgreSQL ran out of them ("too many clients already")."""
    from sqlalchemy.pool import NullPool

    return optuna.storages.RDBStorage(url, engine_kwargs={"poolclass": NullPool})


def _states(storage: str, study: str) -> dict[str, int]:
    try:
        polled = optuna.load_study(study_name=study, storage=_storage(storage))
        trials = polled.get_trials(deepcopy=False)
    except KeyError:  # the first driver has not made the study yet
        return {}
    out: dict[str, int] = {}
    for t in trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def _wait(what: str, check: Any, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _submit(c: dict[str, Any], workdir: Path, job: str, sid: str) -> None:
    """`ray job submit`; again while the head's job agent is not up yet (Ray answers "No
    available agent to submit job, please try again later" for a few seconds after `ray start`)."""
    cmd = ["ray", "job", "submit", "--address", c["dashboard"], "--working-dir", str(workdir),
           "--submission-id", sid, "--no-wait", "--", "ablate", "sweep", job]  # fmt: skip
    deadline = time.time() + 60
    while True:
        out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
        if out.returncode == 0:
            return
        if "No available agent" not in out.stderr or time.time() > deadline:
            raise AssertionError(f"{' '.join(cmd)}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        time.sleep(1.0)


def _job_status(c: dict[str, Any], sid: str) -> str:
    """`ray job status`'s text, lower case ("... succeeded", "... failed", "... running")."""
    return _run("ray", "job", "status", "--address", c["dashboard"], sid).lower()


def test_a_sweep_on_a_two_node_cli_cluster_survives_stop_kill_and_node_loss(
    cluster: dict[str, Any], mlflow_server: str, tmp_path: Path
) -> None:
    if not postgres_ready():
        pytest.skip(f"no PostgreSQL at {POSTGRES}")
    gc.collect()  # engines of earlier tests hold PostgreSQL connections until they are collected
    study = f"cluster-{uuid.uuid4().hex[:8]}"
    storage = postgres_driver(POSTGRES)
    workdir = tmp_path / "work"
    workdir.mkdir()
    job_name = f"job-{study}.yaml"
    (workdir / job_name).write_text(
        yaml.safe_dump(
            {
                "study": study,
                "storage": POSTGRES,
                "tracking": mlflow_server,
                "task_types": ["caption", "count", "compare"],
                "objective": {
                    "kind": "sim",
                    "landscape": "less_is_more",
                    "metric": "score",
                    "duration_s": 2.0,
                },
                "design": DESIGN,
                "resources": {"gpus_per_trial": 1, "cpus_per_trial": 0.5, "max_in_flight": 4},
            }
        )
    )
    done = lambda n: lambda: _states(storage, study).get("COMPLETE", 0) >= n  # noqa: E731
    try:
        # 1. a driver stopped with `ray job stop`
        _submit(cluster, workdir, job_name, f"{study}-a")
        _wait("2 complete trials", done(2))
        _run("ray", "job", "stop", "--address", cluster["dashboard"], f"{study}-a")
        # 2. a driver SIGKILLed, then resubmitted at once: accepted (its lock died with it)
        _submit(cluster, workdir, job_name, f"{study}-b")
        _wait("4 complete trials", done(4))
        ps = subprocess.run(["ps", "axo", "pid,args"], capture_output=True, text=True).stdout
        status = _job_status(cluster, f"{study}-a") + _job_status(cluster, f"{study}-b")
        assert _kill_matching(f"sweep {job_name}") >= 1, status + "\n".join(
            x for x in ps.splitlines() if "ablate" in x
        )
        _submit(cluster, workdir, job_name, f"{study}-c")
        # 3. the worker node killed while every GPU is busy (no spare capacity)
        _wait("4 trials running", lambda: _states(storage, study).get("RUNNING", 0) >= 4)
        assert _kill_matching(cluster["worker_dir"]) >= 2
        try:
            _wait("the sweep to end", lambda: "succeeded" in _job_status(cluster, f"{study}-c"),
                  timeout=150)  # fmt: skip
        except AssertionError:
            tail = _run("ray", "job", "logs", "--address", cluster["dashboard"], f"{study}-c")
            raise AssertionError(
                _job_status(cluster, f"{study}-c") + tail[-4000:] + str(_states(storage, study))
            ) from None
        logs = _run("ray", "job", "logs", "--address", cluster["dashboard"], f"{study}-c")
        assert "another `ablate sweep`" not in logs and "View run" not in logs
        assert logs.count("MLflow: http://127.0.0.1:") == 1  # the sweep's link, once
        trials = optuna.load_study(study_name=study, storage=POSTGRES).get_trials()
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(complete) == N_TRIALS
        assert len({t.user_attrs["design_key"] for t in complete}) == N_TRIALS
        assert all(t.user_attrs.get("requeued") for t in trials if t.state == TrialState.FAIL)
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        job = load_job(workdir / job_name)
        parent = tracking.find_sweep_run(job)
        assert parent is not None
        assert not tracking.child_runs(job, parent, status="RUNNING")
        finished = tracking.child_runs(job, parent, status="FINISHED")
        assert sorted(int(r.data.tags["optuna.trial_number"]) for r in finished) == sorted(
            t.number for t in complete
        )
    finally:
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=study, storage=storage)
