"""Review o: a researcher's workflow. `ablate plan` from a pilot of few degrees of freedom says
how uncertain its seed SD is (planned from the point estimate, a 1-df pilot promised 80% power
where 51% was measured); a mistyped pilot file and a plan before any sweep say what to give."""

from __future__ import annotations

from typing import Any

import pytest
from scipy.stats import chi2

from ablate.analysis.plan_seeds import pilot_noise, uncertain_sd
from ablate.errors import UserError


def test_a_pilot_of_few_df_gives_its_upper_bound() -> None:
    text = uncertain_sd(0.0054, 1)
    upper = 0.0054 * (1 / chi2.ppf(0.2, 1)) ** 0.5
    assert f"its 80% upper bound is {upper:.4g}" in text and f"`--noise {upper:.3g}`" in text
    assert upper > 3 * 0.0054  # one df: the SD may be several times the estimate
    assert uncertain_sd(0.03, 12) == ""


def test_plan_without_a_study_or_with_a_mistyped_pilot_says_what_to_give(make_job: Any) -> None:
    job = make_job()
    with pytest.raises(UserError, match=r"--pilot pilto\.yaml: no such file"):
        pilot_noise(job, "pilto.yaml")
    with pytest.raises(UserError) as err:
        pilot_noise(job, None)
    assert "To plan before any sweep, give --noise SD" in str(err.value)


def test_propose_best_replicates_the_best_tried_mixture_of_a_search(make_job: Any) -> None:
    """Review o: a search runs each mixture once and `propose --seeds` never reruns a tried
    mixture, so its best had no replicate; `--best` enqueues it at the seeds given."""
    import numpy as np
    import optuna

    from ablate.analysis.load import result_trial
    from ablate.analysis.propose import propose_and_enqueue

    job = make_job(design={"kind": "search", "n_trials": 30, "volumes": [1000], "seeds": [0]})
    study = optuna.create_study(study_name=job.study, storage=job.storage_url, direction="maximize")
    rng = np.random.default_rng(0)
    for i in range(20):
        p = rng.dirichlet(np.ones(3))
        props = dict(zip(["caption", "count", "compare"], p.tolist(), strict=True))
        value = float(1 - abs(p[0] - 0.5)) + rng.normal(0, 0.01)
        study.add_trial(
            result_trial(props, 1000, 0, f"search{i}-v1000", value, {"score": value}, 1.0)
        )
    with pytest.raises(UserError, match="--best replicates the best tried mixture at --seeds"):
        propose_and_enqueue(job, 3, best=True)
    done = propose_and_enqueue(job, 3, seeds=(1, 2), best=True)
    best = max(study.get_trials()[:20], key=lambda t: t.value)
    assert done.trials == 2 and done.statement.startswith(
        "The best tried mixture again, at seeds 1, 2"
    )
    added = study.get_trials()[20:]
    assert [t.user_attrs["seed"] for t in added] == [1, 2]
    for t in added:
        assert t.user_attrs["volume"] == 1000
        for k, v in best.user_attrs["proportions"].items():
            assert t.user_attrs["proportions"][k] == pytest.approx(v, abs=1e-6)
