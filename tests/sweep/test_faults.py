"""Fault tests with real processes: SIGKILL the driver, remove a Ray node, two drivers.

Each driver is `python -m ablate.cli sweep JOB` in its own process group with the local Ray it
starts itself; a kill takes down that group only (never `ray stop`, never other tests' Rays).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from clusters_for_tests import NODE_STORE, empty_head_cluster
from optuna.trial import TrialState
from paths_for_tests import TESTS

from ablate import tracking
from ablate.plan import design_mixtures, load_job
from ablate.study import lock_file, open_study
from ablate.study.lock import _file_holder

TESTS = TESTS
TYPES = ["caption", "count", "compare"]


def write_job(tmp_path: Path, **overrides: Any) -> Path:
    data: dict[str, Any] = {
        "study": "faults",
        "storage": "sqlite:///optuna.db",
        "tracking": "sqlite:///mlflow.db",
        "task_types": TYPES,
        "objective": {
            "kind": "sim",
            "landscape": "less_is_more",
            "metric": "score",
            "duration_s": 0.8,
        },
        # 2 volumes x 4 balance levels x 2 seeds = 16 trials, 2 in flight: about 7 s of trials
        "design": {
            "kind": "grid",
            "volumes": [1000, 5000],
            "balance": [0.2, 0.5, 0.8, 1.0],
            "seeds": [0, 1],
        },
        "resources": {"gpus_per_trial": 0, "cpus_per_trial": 1, "max_in_flight": 2},
    }
    data.update(overrides)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def start_driver(
    job: Path, log: Path, *extra: str, env_extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path]),
        **(env_extra or {}),
    }
    env.pop("RAY_ADDRESS", None)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ablate.cli", "sweep", str(job), *extra],
            cwd=job.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill below takes it all
        )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def wait_for_lock(job: Any, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    path = lock_file(job)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path is not None and path.exists() and _file_holder(path):
            return
        time.sleep(0.1)
    raise AssertionError("the driver never took the study's lock")


def wait_for_text(
    log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 120
) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if text in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"the driver never printed {text!r}: {log.read_text()[-2000:]}")


@pytest.mark.slow
def test_sigkilled_driver_resumes_exactly(tmp_path: Path) -> None:
    path = write_job(tmp_path)
    job = load_job(path)
    planned = {m.name for m in design_mixtures(job, TYPES)}
    log = tmp_path / "driver.log"
    rng = random.Random(20261127)
    kills = 0
    for attempt in range(2):  # after progress; at a random moment, beside a refused second one
        proc = start_driver(path, log)
        if attempt == 1:
            # a second driver on the same study refuses and names the holder
            wait_for_lock(job, proc)
            second = subprocess.run(
                [sys.executable, "-m", "ablate.cli", "sweep", str(path)],
                cwd=tmp_path,
                env={**os.environ, "RAY_AUTH_MODE": "disabled"},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert second.returncode == 2, second.stderr
            assert "another `ablate sweep` is driving this study" in second.stderr
            assert f"pid {proc.pid}" in second.stderr
        wait_for_lock(job, proc)  # imports done; from here Ray starts and trials run
        if attempt == 0:
            wait_for_text(log, "] done ", proc)  # the first kill comes after some progress
        time.sleep(rng.uniform(0.2, 5.0))
        if proc.poll() is None:
            kill_group(proc)
            kills += 1
    assert kills >= 2, log.read_text()[-3000:]
    study = open_study(job, create=False)
    assert any(t.state == TrialState.COMPLETE for t in study.get_trials()), (
        "no progress across kills"
    )

    # SIGTERM (`kill PID`, `ray job stop`) stops the driver as Ctrl-C does: exit 143 and the
    # resume hint, not Ray's C++ stack and an abort (-6); its trials in flight are requeued
    termed = tmp_path / "sigterm.log"
    proc = start_driver(path, termed)
    wait_for_text(termed, "] done ", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143, termed.read_text()[-3000:]
    text = termed.read_text()
    assert "ablate: stopped by SIGTERM; rerun the same command to resume" in text
    assert "SIGTERM received" not in text and "Traceback" not in text, text[-3000:]

    # The last run also meets a stale `ray start` address: a cluster killed without `ray stop`
    # leaves it in Ray's temp dir, and a local sweep (no --address) must start its own Ray
    # instead of joining it.
    raytmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths
    try:
        (raytmp / "ray").mkdir()
        (raytmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")  # nothing listens
        final = start_driver(path, log, env_extra={"RAY_TMPDIR": str(raytmp)})
        assert final.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        shutil.rmtree(raytmp, ignore_errors=True)

    trials = open_study(job, create=False).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    names = [t.user_attrs["mixture_name"] for t in complete]
    assert len(complete) == len(planned) == 16
    assert sorted(names) == sorted(planned)  # every point once, none twice
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for t in trials:
        if t.state == TrialState.FAIL:
            assert t.user_attrs.get("requeued") is True, t.user_attrs
    parent = tracking.start_sweep(job)
    assert not tracking.child_runs(job, parent, status="RUNNING")
    finished = tracking.child_runs(job, parent, status="FINISHED")
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in finished) == sorted(
        t.number for t in complete
    )  # MLflow follows Optuna: one finished run per complete trial, none for another


@pytest.mark.slow
@pytest.mark.cluster
def test_node_loss_without_spare_capacity_goes_on_and_a_joining_node_takes_trials(
    tmp_path: Path,
) -> None:
    """Every GPU busy (2 nodes x 2 fake GPUs, 4 trials in flight), then a node is removed: its
    2 trials are retried by the surviving node's workers as they free up (no replacement
    worker can be placed); then a new node joins and takes trials (elastic), and the sweep
    finishes with every trial COMPLETE, each lost one retried once."""
    marker = tmp_path / "nodes.txt"
    path = write_job(
        tmp_path,
        objective=SLOW_ON_NODE,
        # 3 x 2 x 2 = 12 trials of 4 s
        design={"kind": "grid", "volumes": [100, 200, 300], "balance": [0.5, 1.0], "seeds": [0, 1]},
        resources={"gpus_per_trial": 1, "cpus_per_trial": 1, "max_in_flight": 4},
    )
    with node_marked_cluster(marker) as cluster:
        nodes = [
            cluster.add_node(num_cpus=2, num_gpus=2, object_store_memory=NODE_STORE)
            for _ in range(2)
        ]
        log = tmp_path / "driver.log"
        proc = start_driver(path, log, "--address", cluster.address)
        try:
            _wait_for_starts(marker, 4, proc, log)  # every GPU busy
            victim = next(n for n in nodes if n.node_id == _lines(marker)[0])
            cluster.remove_node(victim)
            _wait_for_starts(marker, 6, proc, log)  # the survivor took 2 trials after the loss
            newcomer = cluster.add_node(num_cpus=2, num_gpus=2, object_store_memory=NODE_STORE)
            assert proc.wait(timeout=150) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                kill_group(proc)
    trials = open_study(load_job(path), create=False).get_trials()
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 12 and len(trials) == 12
    assert sorted(t.user_attrs.get("retries", 0) for t in trials) == [0] * 10 + [1, 1]
    survivor = next(n.node_id for n in nodes if n is not victim)
    assert set(_lines(marker)[4:6]) == {survivor}  # no spare capacity: the survivor's workers
    assert newcomer.node_id in _lines(marker)[6:]  # the node that joined took trials
    assert set(_lines(marker)[6:]) <= {survivor, newcomer.node_id}
    assert "worker died" in log.read_text()


@pytest.mark.slow
@pytest.mark.cluster
def test_a_sweep_with_no_node_left_waits_quietly_until_one_joins(tmp_path: Path) -> None:
    """Review p #4: with every worker node lost, the driver spun, printing "waiting for a
    worker" ~1,300 times a second (gigabytes of job log overnight). Now it says so once and
    tries again every few seconds; the node that joins 12 s later runs the rest."""
    marker = tmp_path / "nodes.txt"
    path = write_job(
        tmp_path,
        objective=SLOW_ON_NODE,
        design={"kind": "grid", "volumes": [100, 200], "balance": [1.0], "seeds": [0]},
        resources={"gpus_per_trial": 0, "cpus_per_trial": 1, "max_in_flight": 1},
    )
    with node_marked_cluster(marker) as cluster:
        node = cluster.add_node(num_cpus=1, object_store_memory=NODE_STORE)
        log = tmp_path / "driver.log"
        proc = start_driver(path, log, "--address", cluster.address)
        try:
            _wait_for_starts(marker, 1, proc, log)
            cluster.remove_node(node)  # the only node: no worker can be placed
            time.sleep(12)
            cluster.add_node(num_cpus=1, object_store_memory=NODE_STORE)
            assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                kill_group(proc)
    text = log.read_text()
    assert 1 <= text.count("waiting for a worker") <= 2, text[-3000:]
    trials = open_study(load_job(path), create=False).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2


#: A trial that writes the node it ran on to $ABLATE_TEST_NODE_MARKER, then takes 4 s.
SLOW_ON_NODE = {"kind": "python", "target": "objectives_for_tests:slow_on_node", "metric": "score"}


@contextlib.contextmanager
def node_marked_cluster(marker: Path) -> Iterator[Any]:
    """A Ray cluster of a head with no resources; trials write their node to `marker`."""
    os.environ["ABLATE_TEST_NODE_MARKER"] = str(marker)
    cluster = empty_head_cluster()
    try:
        yield cluster
    finally:
        os.environ.pop("ABLATE_TEST_NODE_MARKER", None)
        cluster.shutdown()


def _wait_for_starts(marker: Path, n: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and len(_lines(marker)) < n and proc.poll() is None:
        time.sleep(0.1)
    assert len(_lines(marker)) >= n, log.read_text()[-3000:]


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []
