"""`ablate demo` end to end on a small world: Ray, Optuna, MLflow, plot; then resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SMALL = (
    "design.volumes=[32]",
    "design.balance=[0.5,1.0]",
    "design.seeds=[0,1]",
    "model.lora.r=4",
)


@pytest.mark.slow
def test_demo_runs_a_tracked_sweep_and_resumes(tmp_path: Path, ray_session: Any) -> None:
    import mlflow
    import optuna

    from ablate.demo import DemoSpec, run_demo
    from ablate.plan import load_job

    out = tmp_path / "demo"
    lines: list[str] = []
    result = run_demo(DemoSpec(out=out, overrides=SMALL, n_train=400), say=lines.append)

    job = load_job(out / "job.yaml", SMALL)
    assert (out / "job.yaml").read_text().startswith("# ablate demo --out")
    study = optuna.load_study(study_name=job.study, storage=job.storage_url)
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    for t in trials:
        attrs = t.user_attrs
        assert set(attrs["proportions"]) == {"colors", "layout", "compare", "lists"}
        assert sum(attrs["proportions"].values()) == pytest.approx(1.0)
        assert attrs["volume"] == 32 and attrs["seed"] in (0, 1)
        assert attrs["balance"] == pytest.approx(0.5) or attrs["balance"] == pytest.approx(1.0)
        assert t.value == attrs["metrics"]["overall_accuracy"]
    assert {t.user_attrs["seed"] for t in trials} == {0, 1}

    client = mlflow.MlflowClient(job.tracking_uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == job.study]
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("ablate.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 4
    assert all(
        "overall_accuracy" in r.data.metrics and "p/colors" in r.data.params for r in children
    )

    assert result.plot.is_file() and result.plot.stat().st_size > 10_000
    assert "v32-b1.00" in result.table and "one-way ANOVA over mixtures" in result.effect
    # the verdict line comes from the calibrated test: one volume, so it names what to add
    assert '"Less is more" CANNOT BE DECIDED' in result.effect
    assert "only one volume was tested" in result.effect and "`design.volumes`" in result.effect
    assert any("mlflow ui --backend-store-uri" in line for line in lines)

    # the same command again resumes: nothing is rerun
    run_demo(DemoSpec(out=out, overrides=SMALL, n_train=400), say=lines.append)
    assert len(optuna.load_study(study_name=job.study, storage=job.storage_url).get_trials()) == 4
