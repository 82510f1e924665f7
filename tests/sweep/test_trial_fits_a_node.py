"""A trial runs on one node: one asking for more GPUs than any node has is refused before
anything is enqueued (review p #5: with 2 nodes of 2 GPUs, `gpus_per_trial: 3` fit the
cluster's 4 and the sweep waited forever for a node Ray could not find)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from clusters_for_tests import NODE_STORE, empty_head_cluster
from paths_for_tests import REPO, TESTS

from ablate.plan import load_job
from ablate.study import open_study


@pytest.mark.slow
@pytest.mark.cluster
def test_a_trial_larger_than_every_node_is_refused_naming_the_job_file(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(
        yaml.safe_dump(
            {
                "study": "big",
                "storage": "sqlite:///optuna.db",
                "tracking": "sqlite:///mlflow.db",
                "task_types": ["caption", "count", "compare"],
                "objective": {"kind": "sim", "metric": "score", "duration_s": 0.1},
                "design": {"kind": "grid", "volumes": [1000], "balance": [1.0], "seeds": [0]},
            }
        )
    )
    cluster = empty_head_cluster()
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=2, num_gpus=2, object_store_memory=NODE_STORE)
        cluster.wait_for_nodes()
        env = {
            **os.environ,
            "RAY_AUTH_MODE": "disabled",
            "PYTHONPATH": f"{REPO}{os.pathsep}{TESTS}",
        }
        out = {
            gpus: subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "ablate.cli",
                    "sweep",
                    str(job),
                    "--address",
                    cluster.address,
                    "--set",
                    f"resources.gpus_per_trial={gpus}",
                ],
                cwd=tmp_path,  # as under `ray job submit --working-dir .`: the file lies below
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            for gpus in (3, 5)
        }
    finally:
        cluster.shutdown()
    for gpus, run in out.items():
        assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
        assert (
            f"ablate: error: job.yaml: a trial asks for resources.gpus_per_trial={gpus} but the "
            "largest node of the Ray cluster has 2 GPUs (4 CPUs, 4 GPUs in all"
        ) in run.stderr, run.stderr
        assert "set resources.gpus_per_trial to at most 2" in run.stderr
        assert "gpus_per_trial: 0" not in run.stderr and "Traceback" not in run.stderr
    assert open_study(load_job(job), create=False).get_trials() == []
