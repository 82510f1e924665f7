"""Shared fixtures: one local Ray session for the whole test run, jobs with stores in tmp_path."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ablate.config import JobSpec, build


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    """A small local Ray (2 CPUs, 100 MB object store, no dashboard), shared by all tests.

    Token auth is off for the test cluster; never `ray stop` (it kills every Ray on the machine).
    """
    os.environ["RAY_AUTH_MODE"] = "disabled"
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2,
            object_store_memory=100 * 1024**2,
            include_dashboard=False,
            log_to_driver=False,
        )
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture
def make_job(tmp_path: Path) -> Callable[..., JobSpec]:
    """Build a python-objective job whose Optuna and MLflow stores live in tmp_path."""

    def make(target: str = "objectives_for_tests:landscape", **overrides: Any) -> JobSpec:
        data: dict[str, Any] = {
            "study": "test-study",
            "storage": f"sqlite:///{tmp_path}/optuna.db",
            "tracking": f"sqlite:///{tmp_path}/mlflow.db",
            "task_types": ["caption", "count", "compare"],
            "objective": {
                "kind": "python",
                "target": target,
                "metric": "score",
                "direction": "maximize",
            },
            "design": {"kind": "grid", "volumes": [100], "balance": [1.0], "seeds": [0]},
            "resources": {"cpus_per_trial": 1, "max_in_flight": 1, "gpus_per_trial": 0},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return build(JobSpec, data, "test")

    return make
