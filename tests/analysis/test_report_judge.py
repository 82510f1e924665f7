"""`ablate report` and `ablate status` name the LLM judge next to every judged metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ablate.analysis import load
from ablate.analysis.report import summary_text, write_report

JUDGE = {
    "model": "judge-7b",
    "host": "127.0.0.1:8000",
    "url": "http://127.0.0.1:8000/v1",
    "rubric_version": 1,
    "output": "json_schema",
    "max_tokens": 256,
    "temperature": 0,
    "retries": 2,
    "timeout_s": 60.0,
}


def judged_study(job: Any) -> None:
    import optuna

    from ablate.analysis.load import result_trial
    from ablate.study.codec import STUDY_JUDGE

    study = optuna.create_study(study_name=job.study, storage=job.storage_url, direction="maximize")
    study.set_user_attr(STUDY_JUDGE, JUDGE)
    for i, (volume, seed) in enumerate([(v, s) for v in (100, 400) for s in (0, 1, 2)]):
        props = {"caption": 0.5, "count": 0.3, "compare": 0.2}
        value = 0.5 + 0.01 * seed - 0.0001 * volume
        metrics = {"overall_accuracy": value, "bench_loss": 1.0}
        trial = result_trial(props, volume, seed, f"m{i}", value, metrics, 1.0)
        trial.user_attrs["judge"] = JUDGE
        study.add_trial(trial)


@pytest.mark.slow
def test_the_report_names_the_judge_of_a_judged_metric(make_job: Any, tmp_path: Path) -> None:
    job = make_job(objective={"metric": "overall_accuracy"})
    judged_study(job)
    assert set(load(job)["judge"]) == {"judge-7b at 127.0.0.1:8000 (rubric v1)"}
    report = write_report(job, tmp_path / "r", log_to_mlflow=False, parallel=False, n_propose=0)
    note = "`overall_accuracy` is scored by the LLM judge judge-7b at 127.0.0.1:8000 (rubric v1)."
    assert note in report.notes and note in summary_text(report)
    page = report.html.read_text()
    assert "<code>overall_accuracy (judge judge-7b at 127.0.0.1:8000 (rubric v1))</code>" in page
    assert "judge" in report.csv.read_text().splitlines()[0].split(",")
    # a metric the judge does not give is not labelled with it
    other = write_report(
        job, tmp_path / "l", metric="bench_loss", log_to_mlflow=False, parallel=False, n_propose=0
    )
    assert not any("judge" in n for n in other.notes)


def test_status_names_the_judge(make_job: Any) -> None:
    from ablate.sweep import study_status

    job = make_job(objective={"metric": "overall_accuracy"})
    judged_study(job)
    assert "  judge judge-7b at 127.0.0.1:8000 (rubric v1), output json_schema" in study_status(job)
