"""`ablate status` reads a study's trials in a few SQL queries (`read_trial_rows`), not through
Optuna's ORM (2.8 of its 3.6 CPU seconds at 3,000 trials): it must say exactly what it said
through Optuna, infeasible trials (a broken `max_share` cap) kept out of "best" included."""

from __future__ import annotations

from typing import Any

import pytest
from optuna.trial import TrialState, create_trial

from ablate.study import open_study
from ablate.study.trial_rows import read_trial_rows
from ablate.sweep import status as status_module
from ablate.sweep import study_status


def _attrs(volume: int, seed: int) -> dict[str, Any]:
    return {"proportions": {"caption": 0.5, "count": 0.3, "compare": 0.2}, "volume": volume,
            "seed": seed, "balance": 0.94, "model": ""}  # fmt: skip


def test_status_from_the_queries_says_what_it_says_through_optuna(
    make_job: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = make_job()
    study = open_study(job)
    study.add_trials(
        [
            create_trial(value=0.5, user_attrs=_attrs(100, 0), constraints={"cap": -0.1}),
            # the best value, but over its cap: not the best trial
            create_trial(value=0.9, user_attrs=_attrs(100, 1), constraints={"cap": 0.2}),
            create_trial(value=0.7, user_attrs=_attrs(200, 0), constraints={"cap": 0.0}),
            create_trial(state=TrialState.FAIL, user_attrs={**_attrs(200, 1), "error": "boom"}),
            create_trial(state=TrialState.RUNNING, user_attrs=_attrs(300, 0)),
            create_trial(state=TrialState.WAITING, user_attrs=_attrs(300, 1)),
        ]
    )
    rows, _ = read_trial_rows(job) or ([], None)
    assert [r.state for r in rows] == ["COMPLETE"] * 3 + ["FAIL", "RUNNING", "WAITING"]
    assert rows[1].system_attrs == {"constraints:cap": 0.2}
    fast = study_status(job)
    monkeypatch.setattr(status_module, "read_trial_rows", lambda job: None)
    assert fast == study_status(job)
    assert "= 0.7 (trial 2)" in fast and "complete 3  running 1  waiting 1  fail 1" in fast
