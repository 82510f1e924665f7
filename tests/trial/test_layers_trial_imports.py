"""The trial path imports on a GPU box: without ray, optuna, mlflow and datasets, and without
the layers above it (objectives, design, search, sweep, tracking, analysis, cli)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from paths_for_tests import REPO

ROOT = REPO

#: Not installed on the GPU box: the trial path must import without them.
BLOCKED = ("ray", "optuna", "mlflow", "datasets")

#: The trial path, and the objectives that run it.
TRIAL_PATH = (
    "ablate.trial",
    "ablate.trial.run",
    "ablate.trial.train",
    "ablate.trial.encode",
    "ablate.trial.packing",
    "ablate.trial.evaluate",
    "ablate.trial.scoring",
    "ablate.trial.heldout",
    "ablate.models",
    "ablate.config",
    "ablate.pool",
    "ablate.mixture",
    "ablate.bench",
    "ablate.objectives",
)

#: Layers above `trial`: importing ablate.trial must not load any of them.
ABOVE_TRIAL = (
    "ablate.objectives",
    "ablate.design",
    "ablate.search",
    "ablate.plan",
    "ablate.study",
    "ablate.tracking",
    "ablate.sweep",
    "ablate.analysis",
    "ablate.demo",
    "ablate.cli",
    "ablate.testing",
)

#: Heavy libraries imported inside functions only (start-up time).
HEAVY = ("torch", "transformers", "peft")


def _run(code: str) -> dict[str, object]:
    """Run `code` in a fresh interpreter where BLOCKED cannot be imported; its JSON output."""
    prelude = textwrap.dedent(
        f"""
        import importlib.abc, json, sys

        BLOCKED = {BLOCKED!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is blocked (not on the GPU box)")
                return None

        for name in list(sys.modules):
            if name.split(".")[0] in BLOCKED:
                del sys.modules[name]
        sys.meta_path.insert(0, Block())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_the_blocker_blocks() -> None:
    seen = _run(
        """
        try:
            import optuna  # noqa: F401
            print(json.dumps({"blocked": False}))
        except ImportError:
            print(json.dumps({"blocked": True}))
        """
    )
    assert seen == {"blocked": True}


@pytest.mark.parametrize("module", TRIAL_PATH)
def test_the_trial_path_imports_without_ray_optuna_mlflow_datasets(module: str) -> None:
    seen = _run(
        f"""
        import importlib
        importlib.import_module({module!r})
        print(json.dumps({{"ok": True}}))
        """
    )
    assert seen == {"ok": True}


def test_every_objective_kind_and_landscape_registers_without_them() -> None:
    seen = _run(
        """
        from ablate.objectives import LANDSCAPES, OBJECTIVES
        print(json.dumps({"kinds": sorted(OBJECTIVES.names()), "landscapes": LANDSCAPES.names()}))
        """
    )
    assert seen == {
        "kinds": ["python", "sim", "train"],
        "landscapes": ["less_is_more", "peaked", "harmful", "synergy"],
    }


def test_the_trial_package_loads_no_layer_above_it_and_no_heavy_library() -> None:
    seen = _run(
        f"""
        import ablate.trial, ablate.trial.train, ablate.trial.encode, ablate.trial.packing
        loaded = sorted(
            name
            for name in sys.modules
            if name.startswith({ABOVE_TRIAL!r}) or name.split(".")[0] in {HEAVY!r}
        )
        print(json.dumps({{"loaded": loaded}}))
        """
    )
    assert seen == {"loaded": []}


def test_a_sim_trial_runs_without_them() -> None:
    seen = _run(
        """
        from ablate.config import JobSpec, build
        from ablate.mixture import Mixture
        from ablate.objectives import check_objective, run_objective

        job = build(
            JobSpec,
            {
                "study": "s",
                "task_types": ["a", "b"],
                "objective": {"kind": "sim", "landscape": "peaked", "metric": "score"},
            },
            "job.yaml",
        )
        check_objective(job, "job.yaml")
        result = run_objective(job, Mixture(name="m", volume=5000, proportions={"a": 0.5, "b": 0.5}))
        print(json.dumps({"metrics": sorted(result.metrics)}))
        """
    )
    assert seen == {"metrics": ["noise_free", "score"]}
