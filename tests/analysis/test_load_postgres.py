"""`load` reads an Optuna PostgreSQL study with three queries (psycopg 3) instead of Optuna's
storage; the table equals the one Optuna gives. Skipped without the local PostgreSQL."""

from __future__ import annotations

import importlib
import math
import uuid
from typing import Any

import pytest
from clusters_for_tests import POSTGRES, postgres_ready

from ablate.analysis import load

pytestmark = pytest.mark.skipif(not postgres_ready(), reason="no PostgreSQL at " + POSTGRES)


def test_postgres_read_equals_the_optuna_read(make_job: Any, monkeypatch: Any) -> None:
    import optuna
    import pandas as pd
    from optuna.trial import TrialState, create_trial

    load_module = importlib.import_module("ablate.analysis.load")
    trial_rows = importlib.import_module("ablate.study.trial_rows")
    name = f"load-pg-{uuid.uuid4().hex[:8]}"
    job = make_job(study=name, storage=POSTGRES)
    other = optuna.create_study(study_name=name + "-other", storage=POSTGRES)
    study = optuna.create_study(study_name=name, storage=POSTGRES)
    try:
        other.add_trial(create_trial(value=9.0, user_attrs={"proportions": {"a": 1.0}}))
        attrs = {"proportions": {"a": 0.25, "b": 0.75}, "volume": 10, "seed": 0, "balance": 0.8}
        for t in [
            create_trial(value=0.5, user_attrs={**attrs, "metrics": {"score": 0.5}, "gpus": 2}),
            create_trial(value=math.inf, user_attrs={**attrs, "seconds": 3.0}),
            create_trial(state=TrialState.FAIL, user_attrs={**attrs, "error": "boom"}),
            create_trial(state=TrialState.RUNNING, user_attrs={"proportions": {"c": 1.0}}),
        ]:
            study.add_trial(t)
        study.set_user_attr("ablate.settings_id", "abc")
        assert trial_rows._read_postgres(job) is not None
        fast = load(job)
        monkeypatch.setattr(load_module, "read_trial_rows", lambda job: None)
        slow = load(job)
        pd.testing.assert_frame_equal(fast, slow)
        assert fast.attrs == slow.attrs
        assert list(fast["state"]) == ["COMPLETE", "COMPLETE", "FAIL", "RUNNING"]
        assert fast["duration"].notna().sum() == 3  # datetimes came through
    finally:
        for n in (name, name + "-other"):
            optuna.delete_study(study_name=n, storage=POSTGRES)
