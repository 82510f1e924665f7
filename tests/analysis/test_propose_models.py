"""`ablate propose` on a study across models (review j): fitted on one model's trials, the
report's (the latest trained) or `--for-model`, and its trials train on that model. Before,
every model's trials were pooled and the proposals trained on `models[0]`."""

from __future__ import annotations

from typing import Any

import pytest
from optuna.trial import TrialState

from ablate.analysis.propose import propose_and_enqueue
from ablate.errors import UserError
from ablate.study import open_study
from ablate.sweep import run_sweep

TYPES = ["caption", "count", "compare"]
MODELS = [{"name": "proxy", "path": "tiny-a", "size": 0.5e9}, {"name": "target", "path": "tiny-b", "size": 7e9}]  # fmt: skip


@pytest.mark.slow
def test_propose_fits_and_trains_one_model_of_a_study_across_models(
    ray_session: Any, make_job: Any
) -> None:
    job = make_job(
        models=MODELS,
        objective={"kind": "sim", "metric": "score", "rank_correlation": 0.8, "noise": 0.01},
        design={"kind": "grid", "volumes": [1000, 5000], "balance": [0.5, 1.0], "seeds": [0, 1]},
    )
    assert run_sweep(job, TYPES, progress=None).n_complete == 16
    done = propose_and_enqueue(job, 1, seeds=(0,))
    assert done.for_model == "target" and done.trials == 1  # the report's: the latest trained
    assert "the best of 4 means" in done.statement  # its own 4 mixtures, not all 8 pooled
    other = propose_and_enqueue(job, 1, seeds=(0,), for_model="proxy")
    assert other.for_model == "proxy" and other.trials == 1
    with pytest.raises(UserError, match=r"--for-model targt: .*did you mean `target`"):
        propose_and_enqueue(job, 1, for_model="targt", dry_run=True)

    run_sweep(job, TYPES, progress=None)
    study = open_study(job, create=False)
    proposed = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get("proposed_by")
    ]  # fmt: skip
    assert sorted(t.user_attrs["model"] for t in proposed) == ["proxy", "target"]
    assert all(t.user_attrs["mixture_name"].startswith(t.user_attrs["model"]) for t in proposed)
