"""A sweep across two models of different sizes on a local Ray cluster with one fake GPU: the
0.25-GPU proxy runs four trials at once, then its workers make way for the 1-GPU target; every
trial records its model; a model asking for more GPUs than the cluster has is refused before
anything is enqueued."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from optuna.trial import TrialState
from paths_for_tests import REPO, TESTS

from ablate.analysis import load
from ablate.plan import load_job
from ablate.study import open_study

TYPES = ["caption", "count", "compare"]


def write_job(tmp_path: Path, models: list[dict[str, Any]]) -> Path:
    data = {
        "study": "sizes",
        "storage": "sqlite:///optuna.db",
        "tracking": "sqlite:///mlflow.db",
        "task_types": TYPES,
        "models": models,
        "objective": {"kind": "sim", "metric": "score", "duration_s": 1.0, "rank_correlation": 0.8},
        # 2 volumes x 2 balance levels x 2 seeds = 8 points per model
        "design": {"kind": "grid", "volumes": [1000, 5000], "balance": [0.5, 1.0], "seeds": [0, 1]},
        "resources": {"cpus_per_trial": 0.25, "max_in_flight": 8},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def sweep(path: Path, address: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": f"{REPO}{os.pathsep}{TESTS}",
    }  # this checkout's ablate
    return subprocess.run(
        [sys.executable, "-m", "ablate.cli", "sweep", str(path), "--address", address],
        cwd=path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    """The largest number of the [start, end) intervals that overlap at one moment."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    now = best = 0
    for _, step in events:  # an end sorts before a start at the same instant
        now += step
        best = max(best, now)
    return best


@pytest.mark.slow
@pytest.mark.cluster
def test_two_models_share_one_fake_gpu_by_their_sizes(tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    os.environ["RAY_AUTH_MODE"] = "disabled"
    proxy = {"name": "proxy", "path": "tiny-a", "size": 0.5e9, "gpus_per_trial": 0.25}
    target = {"name": "target", "path": "tiny-b", "size": 7e9, "gpus_per_trial": 1}
    path = write_job(tmp_path, [proxy, target])
    cluster = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={
            "num_cpus": 4,
            "num_gpus": 1,
            "object_store_memory": 80 * 1024**2,
            "include_dashboard": False,
        },
    )
    try:
        too_big = tmp_path / "big"
        too_big.mkdir()
        refused = sweep(
            write_job(too_big, [proxy, {**target, "gpus_per_trial": 2}]), cluster.address
        )
        done = sweep(path, cluster.address)
    finally:
        cluster.shutdown()
    assert refused.returncode != 0
    assert (
        "models[1].gpus_per_trial=2 but the largest node of the Ray cluster has 1 GPUs "
        "(4 CPUs, 1 GPUs in all" in refused.stderr
    )
    assert "Nothing was enqueued" in refused.stderr and "Traceback" not in refused.stderr
    assert open_study(load_job(too_big / "job.yaml"), create=False).get_trials() == []
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    job = load_job(path)
    trials = open_study(job, create=False).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 16
    spans = {
        name: [
            (t.datetime_start, t.datetime_complete) for t in trials if t.user_attrs["model"] == name
        ]
        for name in ("proxy", "target")
    }
    assert len(spans["proxy"]) == len(spans["target"]) == 8
    assert most_at_once(spans["proxy"]) == 4  # four quarter-GPU trials on the one GPU
    assert most_at_once(spans["target"]) == 1
    assert max(e for _, e in spans["proxy"]) <= min(s for s, _ in spans["target"])
    df = load(job)
    assert sorted(set(df["model"])) == ["proxy", "target"]
    assert set(df[df["model"] == "proxy"]["gpus"]) == {0.25}

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=job.tracking_uri)
    (exp,) = [e for e in client.search_experiments() if e.name == job.study]
    runs = client.search_runs([exp.experiment_id], "tags.`ablate.role` = 'trial'")
    assert sorted(r.data.params.get("model") for r in runs) == ["proxy"] * 8 + ["target"] * 8
    assert {r.data.params["model.path"] for r in runs} == {"tiny-a", "tiny-b"}
