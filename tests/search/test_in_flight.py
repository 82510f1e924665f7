"""The default sampler with trials in flight (issue 16): what it proposes while others run."""

from __future__ import annotations

from collections import deque

import numpy as np
import optuna
import pytest

from ablate.objectives import sim_score
from ablate.search import cube_params, default_warm_start, make_sampler, suggest
from ablate.search.mixture_sampler import MixtureSampler

TYPES = ["caption", "count", "compare", "ocr"]
SIM = {"kind": "sim", "landscape": "less_is_more", "noise": 0.0, "metric": "score"}


def _study(job, sampler=None):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize", sampler=sampler or make_sampler(job, 0))
    for mix in default_warm_start(job, TYPES):
        study.enqueue_trial(cube_params(job, TYPES, mix))
    return study


def _in_flight(job, n, k, sampler=None, landscape="less_is_more"):
    """The dispatcher's loop without Ray: ask until k run, then tell the oldest and ask again.
    Returns every asked (shares, noise-free score) and the study with k trials still running."""
    study, flight, asked = _study(job, sampler), deque(), []
    for _ in range(n):
        if len(flight) == k:
            trial, value = flight.popleft()
            study.tell(trial, value)
        trial = study.ask()
        mix = suggest(trial, job, TYPES)
        value, clean = sim_score(landscape, dict(mix.proportions), TYPES, mix.volume)
        flight.append((trial, value))
        asked.append((np.array([mix.proportions[t] for t in TYPES]), clean))
    return asked, study


def _hellinger(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sqrt(((np.sqrt(p) - np.sqrt(q)) ** 2).sum() / 2))


def test_no_proposal_repeats_a_running_trial(make_job) -> None:
    job = make_job(objective=SIM, task_types=TYPES, design={"kind": "search", "volumes": [5000]})
    for n in (8, 14, 24):  # 8: all asked blind; then 6 and 16 told, the GP proposing
        asked, study = _in_flight(job, n, k=8)
        running = [i for i, t in enumerate(study.trials) if t.state.name == "RUNNING"]
        assert len(running) == 8
        gaps = [_hellinger(asked[i][0], asked[j][0]) for i in running for j in running if i < j]
        assert min(gaps) > 0.005  # eight different mixtures in flight, none a copy
        # the next proposal, asked with those 8 running, is none of them either
        trial = study.ask()
        nxt = suggest(trial, job, TYPES).proportions
        p = np.array([nxt[t] for t in TYPES])
        assert min(_hellinger(p, asked[i][0]) for i in running) > 0.005


def test_blind_trials_after_the_start_up_are_the_axial_design(make_job) -> None:
    # 12 in flight, nothing told: the centroid, 2 maximin points, then for each type the mixture
    # halfway toward its vertex and the one halfway toward the opposite face
    job = make_job(objective=SIM, task_types=TYPES, design={"kind": "search", "volumes": [5000]})
    asked, _ = _in_flight(job, 11, k=12)
    k = len(TYPES)
    centre = np.full(k, 1 / k)
    ends = np.vstack([np.eye(k), (1 - np.eye(k)) / (k - 1)])
    axial = centre + 0.5 * (ends - centre)
    assert asked[0][0] == pytest.approx(centre)
    got = np.array([p for p, _ in asked[3:]])
    assert np.abs(got[:, None, :] - axial[None, :, :]).max(-1).min(1) == pytest.approx(
        np.zeros(8), abs=1e-9
    )
    assert len({tuple(np.round(p, 6)) for p in got}) == 8


def test_eight_in_flight_reach_the_optimum_within_the_budget(make_job) -> None:
    # 4 types, no noise, 8 trials at a time: within 1% of the optimum (1.0) within the budget on
    # an interior bump (`peaked`: 17 trials; the earlier believer needed 21) and where the
    # optimum leaves one type out (`harmful`: 17 trials)
    job = make_job(objective=SIM, task_types=TYPES, design={"kind": "search", "volumes": [5000]})
    for landscape, budget in (("less_is_more", 12), ("peaked", 20), ("harmful", 24)):
        asked, _ = _in_flight(job, budget, k=8, landscape=landscape)
        assert max(c for _, c in asked) >= 0.99, landscape


def test_nothing_running_proposes_as_before(make_job) -> None:
    job = make_job(objective=SIM, task_types=TYPES, design={"kind": "search", "volumes": [5000]})
    plan = _in_flight(job, 12, k=1, sampler=MixtureSampler(job, seed=5))[0]
    before = _in_flight(job, 12, k=1, sampler=MixtureSampler(job, seed=5, in_flight="believer"))[0]
    assert all((a == b).all() for (a, _), (b, _) in zip(plan, before, strict=True))
    # with trials in flight the two differ (the earlier behaviour stays reachable)
    plan = _in_flight(job, 12, k=8, sampler=MixtureSampler(job, seed=5))[0]
    before = _in_flight(job, 12, k=8, sampler=MixtureSampler(job, seed=5, in_flight="believer"))[0]
    assert any((a != b).any() for (a, _), (b, _) in zip(plan, before, strict=True))
    with pytest.raises(ValueError, match="in_flight"):
        MixtureSampler(job, in_flight="liar")


def test_bounds_hold_with_trials_in_flight(make_job) -> None:
    job = make_job(
        objective=SIM,
        task_types=TYPES,
        design={
            "kind": "search",
            "min_share": 0.05,
            "max_share": {"caption": 0.3},
            "volumes": [1000, 20000],
            "search_volume": True,
        },
    )
    study, flight = _study(job), deque()
    for _ in range(24):
        if len(flight) == 8:
            study.tell(flight.popleft(), 0.5)
        trial = study.ask()
        mix = suggest(trial, job, TYPES)
        flight.append(trial)
        p = mix.proportions
        assert min(p.values()) >= 0.05 - 1e-9 and p["caption"] <= 0.3 + 1e-9
        assert 1000 <= mix.volume <= 20000


@pytest.mark.parametrize("region", ["centroid", "heavy caption"])
def test_failed_mixtures_are_not_proposed_again_and_again(make_job, region) -> None:
    """A region whose trials fail (an OOM, a NaN loss): the sampler saw only completed and
    running trials, so a failed centroid was asked for ever and a failing region again and
    again. Failed trials now count as seen (and as the worst value), requeued ones do not."""
    job = make_job(objective=SIM, task_types=TYPES, design={"kind": "search", "volumes": [5000]})
    study = _study(job)

    def fails(p: dict[str, float]) -> bool:
        if region == "centroid":
            return max(abs(v - 0.25) for v in p.values()) < 1e-6
        return p["caption"] > 0.4

    failed = 0
    for _ in range(20):
        trial = study.ask()
        mix = suggest(trial, job, TYPES)
        if fails(dict(mix.proportions)):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            failed += 1
        else:
            study.tell(trial, sim_score("less_is_more", dict(mix.proportions), TYPES, 5000)[0])
    assert failed <= (1 if region == "centroid" else 6), failed
    # a dead driver's trial (requeued: its mixture runs again) says nothing about its mixture
    requeued = study.ask()
    suggest(requeued, job, TYPES)
    requeued.set_user_attr("requeued", True)
    study.tell(requeued, state=optuna.trial.TrialState.FAIL)
    sampler = study.sampler
    assert isinstance(sampler, MixtureSampler)
    assert sampler.sample_relative(study, study.ask(), {}) != {}
