"""`ablate sweep` and `ablate trial` as a user runs them: the sweep's last line says what ran
in this run and the study's totals apart, its exit status is 1 when trials failed in the run (0
for a finished study), and a trial without the objective's metric is an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ablate.cli import main


def write_job(tmp_path: Path, target: str) -> Path:
    data = {
        "study": "cli-sweep",
        "storage": f"sqlite:///{tmp_path}/optuna.db",
        "tracking": f"sqlite:///{tmp_path}/mlflow.db",
        "task_types": ["caption", "count", "compare"],
        "objective": {"kind": "python", "target": target, "metric": "score"},
        "design": {"kind": "grid", "volumes": [100], "balance": [1.0], "seeds": [0, 1]},
        "resources": {"cpus_per_trial": 1, "max_in_flight": 1, "gpus_per_trial": 0},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def last_line(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_the_summary_separates_this_run_from_the_study_and_a_failed_run_exits_1(
    ray_session: Any, make_job: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_job()  # the MLflow store in tmp_path
    job = write_job(tmp_path, "objectives_for_tests:landscape")
    assert main(["sweep", str(job)]) == 0
    assert last_line(capsys).startswith(
        "sweep `cli-sweep`: this run 2 complete, 0 failed; the study 2 complete, best "
    )
    assert main(["sweep", str(job)]) == 0  # a finished study: nothing ran, nothing failed
    assert last_line(capsys).startswith(
        "sweep `cli-sweep`: nothing left to run; the study 2 complete, best "
    )
    failing = write_job(tmp_path, "objectives_for_tests:fails_for_seed_1")
    assert main(["sweep", str(failing), "--set", "study=failing"]) == 1
    out = capsys.readouterr()
    assert "sweep `failing`: this run 1 complete, 1 failed; the study 1 complete" in out.out
    # the hint names the study this run used: with its --set overrides
    assert f"failed in this run; `ablate status {failing} --set study=failing` shows" in out.err
    assert "`ablate sweep` again retries them" in out.err  # a grid's failed points rerun
    # a search's failed trial counted toward n_trials: no rerun is promised
    design = "design={kind: search, n_trials: 2, seeds: [1], volumes: [100]}"
    assert main(["sweep", str(failing), "--set", "study=failing-search", "--set", design]) == 1
    err = capsys.readouterr().err
    assert "a search does not rerun them" in err and "raise `design.n_trials`" in err


def test_a_trial_without_the_objective_metric_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ablate.objectives
    from ablate.result import TrialResult

    def no_score(job: Any, mixture: Any, cache: Any = None) -> TrialResult:
        return TrialResult(metrics={"accuracy/colours": 0.5})  # e.g. a misspelt domain

    monkeypatch.setattr(ablate.objectives, "run_objective", no_score)
    assert main(["trial", str(write_job(tmp_path, "objectives_for_tests:landscape"))]) == 2
    out = capsys.readouterr()
    assert "accuracy/colours" in out.out  # the metrics are still shown
    assert out.err.strip() == (
        "ablate: error: objective metric `score` is missing or not finite in the trial's result "
        "(got None; metrics: ['accuracy/colours'])"
    )
