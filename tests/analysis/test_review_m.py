"""Review m: a search's `max_share` caps bind the report as they bind `ablate propose` and the
sweep's best trial. The report proposed captioning at 0.18 against a cap of 0.1, and named an
over-cap trial the best tried mixture (and recommended it), as the parent run's
`best_mixture_mean` did, while the sweep's best_value kept the cap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ablate.analysis.load import result_trial
from ablate.analysis.report import write_report

TYPES = ["caption", "count", "compare"]


def test_the_report_keeps_a_searchs_caps(make_job: Any, tmp_path: Path) -> None:
    import optuna

    job = make_job(
        design={"kind": "search", "n_trials": 30, "volumes": [1000], "seeds": [0],
                "max_share": {"caption": 0.1}},
    )  # fmt: skip
    study = optuna.create_study(study_name=job.study, storage=job.storage_url, direction="maximize")
    rng = np.random.default_rng(0)
    for i in range(24):
        caption = 0.4 if i < 4 else rng.uniform(0, 0.1)  # 4 over the cap, scoring best
        rest = rng.dirichlet([1, 1]) * (1 - caption)
        props = {"caption": caption, "count": rest[0], "compare": rest[1]}
        value = 0.5 + caption + 0.2 * rest[0] + rng.normal(0, 0.005)
        study.add_trial(
            result_trial(props, 1000, 0, f"search{i}-v1000", value, {"score": value}, 1.0)
        )
    report = write_report(job, tmp_path / "report", log_to_mlflow=False, parallel=False)
    rec = report.recommendation
    assert rec is not None
    assert rec.best_tried.proportions["caption"] <= 0.1 + 1e-9
    assert all(p.proportions["caption"] <= 0.1 + 1e-6 for p in rec.proposals)
    assert rec.proposals and rec.recommended.proportions["caption"] <= 0.1 + 1e-6


def test_the_parent_runs_best_mixture_keeps_the_caps(make_job: Any) -> None:
    import optuna

    from ablate.sweep.driver import _best_mixture

    job = make_job()
    study = optuna.create_study(study_name=job.study, storage=job.storage_url, direction="maximize")
    for name, value, over in (("over", 0.99, 0.3), ("kept", 0.9, -0.05)):
        study.add_trial(optuna.trial.create_trial(
            value=value, user_attrs={"mixture_name": f"{name}-v1000-s0"},
            system_attrs={"constraints:max_share:caption": over},
        ))  # fmt: skip
    summary: dict[str, float] = {}
    assert _best_mixture(job, study, summary) == {"ablate.best_mixture": "kept-v1000"}
    assert summary["best_mixture_mean"] == 0.9


def test_the_parent_runs_failure_counts_are_the_studys(make_job: Any) -> None:
    """`n_complete` was the study's and `n_failed` this run's: a parent run showed 10 complete
    and 2 failed where status, the report and optuna-dashboard showed 4 failed."""
    import optuna
    from optuna.trial import TrialState

    from ablate.sweep.driver import _study_counts

    job = make_job()
    study = optuna.create_study(study_name=job.study, storage=job.storage_url)
    for state, attrs in ((TrialState.FAIL, {}), (TrialState.FAIL, {}),
                         (TrialState.FAIL, {"requeued": True}), (TrialState.PRUNED, {}),
                         (TrialState.COMPLETE, {})):  # fmt: skip
        value = 1.0 if state == TrialState.COMPLETE else None
        study.add_trial(optuna.trial.create_trial(state=state, value=value, user_attrs=attrs))
    assert _study_counts(study) == {"n_failed": 2, "n_pruned": 1}
