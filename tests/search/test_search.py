from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from ablate.errors import UserError
from ablate.mixture import normalized_entropy
from ablate.search import (
    cube_params,
    make_sampler,
    objective_values,
    suggest,
    to_cube,
    to_simplex,
)
from ablate.study import open_study
from ablate.study.optuna_fast import record_mixture_params
from ablate.sweep import run_sweep
from ablate.trial import TrialResult

TYPES = ["caption", "count", "compare"]
SIM = {"kind": "sim", "landscape": "less_is_more", "noise": 0.0, "metric": "score"}


def test_stick_breaking_is_a_uniform_preserving_bijection() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        u = rng.random(4)
        p = to_simplex(u)
        assert p.sum() == pytest.approx(1.0) and (p >= 0).all()
        assert to_cube(p) == pytest.approx(list(u), abs=1e-9)
    # uniform cube -> flat Dirichlet(1,1,1,1,1): each share has mean 1/5 and Beta(1, 4) variance
    shares = np.array([to_simplex(u) for u in rng.random((20000, 4))])
    assert shares.mean(axis=0) == pytest.approx([0.2] * 5, abs=0.01)
    assert shares.var(axis=0) == pytest.approx([4 / (25 * 6)] * 5, abs=0.004)
    assert to_simplex([1.0, 0.3]) == pytest.approx([1.0, 0.0, 0.0])  # a corner


def test_suggest_honours_min_share_constraints_and_enqueued_points(make_job) -> None:
    job = make_job(
        objective=SIM,
        design={
            "kind": "search",
            "min_share": 0.1,
            "max_share": {"count": 0.3},
            "sampler": "tpe",
            "n_trials": 5,
        },
    )
    study = optuna.create_study(direction="maximize", sampler=make_sampler(job, 0))
    target = {"caption": 0.6, "count": 0.25, "compare": 0.15}
    from ablate.mixture import Mixture

    study.enqueue_trial(cube_params(job, TYPES, Mixture(name="x", volume=1000, proportions=target)))
    first = study.ask()
    mix = suggest(first, job, TYPES)
    assert mix.proportions == pytest.approx(target)
    assert first.study._storage.get_trial(first._trial_id).constraints == {
        "max_share:count": pytest.approx(-0.05)
    }
    for _ in range(30):
        trial = study.ask()
        p = suggest(trial, job, TYPES).proportions
        assert min(p.values()) >= 0.1 - 1e-12 and sum(p.values()) == pytest.approx(1.0)
        study.tell(trial, 0.0)


def test_fixed_seed_does_not_replay_after_restart(make_job) -> None:
    job = make_job(objective=SIM, design={"kind": "search", "sampler": "random"})
    assert make_sampler(job, 0)._rng.rng.random() == make_sampler(job, 0)._rng.rng.random()
    assert make_sampler(job, 0)._rng.rng.random() != make_sampler(job, 7)._rng.rng.random()


def _in_memory_search(job, types, n, study=None, shown=False):
    """The driver's loop without Ray: enqueue the warm start, then ask -> suggest -> tell;
    `shown`: record the mixture's shares as params for optuna-dashboard, as the driver does."""
    from ablate.objectives import sim_score
    from ablate.search import default_warm_start

    if study is None:
        study = optuna.create_study(direction="maximize", sampler=make_sampler(job, 0))
        for mix in default_warm_start(job, types):
            study.enqueue_trial(cube_params(job, types, mix))
    clean = []
    for _ in range(n):
        trial = study.ask()
        mix = suggest(trial, job, types)
        if shown:
            record_mixture_params(study, trial, mix.proportions, mix.volume, types)
        value, c = sim_score("less_is_more", dict(mix.proportions), types, mix.volume)
        study.tell(trial, value)
        clean.append((mix, c))
    return study, clean


def test_default_sampler_finds_the_optimum_and_honours_bounds(make_job) -> None:
    from ablate.search.mixture_sampler import MixtureSampler

    job = make_job(objective=SIM, design={"kind": "search", "volumes": [5000]})
    assert isinstance(make_sampler(job, 0), MixtureSampler)
    _, runs = _in_memory_search(job, TYPES, 12)
    assert runs[0][0].proportions == pytest.approx(dict.fromkeys(TYPES, 1 / 3))  # centroid first
    assert max(c for _, c in runs) >= 0.99  # 3 types, no noise: within 1% in 12 trials
    # hard bounds: min_share through the map, max_share never proposed; the searched volume
    job = make_job(
        objective=SIM,
        task_types=[],  # types from the pool: `suggest` binds them
        design={
            "kind": "search",
            "min_share": 0.05,
            "max_share": {"caption": 0.3},
            "volumes": [1000, 20000],
            "search_volume": True,
        },
    )
    _, runs = _in_memory_search(job, TYPES, 8)
    for mix, _ in runs:
        p = mix.proportions
        assert min(p.values()) >= 0.05 - 1e-9 and p["caption"] <= 0.3 + 1e-9
        assert 1000 <= mix.volume <= 20000
    # random and qmc draw from the whole simplex: caps they would train past are refused
    for name in ("random", "qmc"):
        capped = make_job(objective=SIM, design={"kind": "search", "sampler": name,
                                                 "max_share": {"caption": 0.3}})  # fmt: skip
        with pytest.raises(UserError, match=f"design.sampler {name} does not keep"):
            make_sampler(capped, 0)
    # multi-objective: Optuna's GPSampler, which models both objectives
    job = make_job(objective=SIM, design={"kind": "search", "multi_objective": "volume"})
    assert isinstance(make_sampler(job, 0).inner, optuna.samplers.GPSampler)


@pytest.mark.parametrize("sampler", ["default", "gp", "qmc", "cmaes", "tpe"])
def test_the_shares_shown_to_optuna_dashboard_do_not_change_what_a_search_proposes(
    make_job, sampler
) -> None:
    """Every search trial also carries `share:<type>` and `volume` params (optuna-dashboard's
    views); Optuna's relative samplers would model them too, unless left out of their space."""
    job = make_job(objective=SIM, design={"kind": "search", "sampler": sampler, "n_startup": 2})
    plain, _ = _in_memory_search(job, TYPES, 6)
    shown, _ = _in_memory_search(job, TYPES, 6, shown=True)
    own = ["u0", "u1"]
    assert [t.params[n] for t in shown.trials for n in own] == pytest.approx(
        [t.params[n] for t in plain.trials for n in own]
    )
    last = shown.trials[-1]
    assert set(last.params) == {*own, "volume", *(f"share:{t}" for t in TYPES)}
    assert sum(last.params[f"share:{t}"] for t in TYPES) == pytest.approx(1.0)


def test_default_sampler_does_not_replay_after_restart(make_job) -> None:
    job = make_job(objective=SIM, seed=3, design={"kind": "search", "volumes": [5000]})
    study, _ = _in_memory_search(job, TYPES, 5)
    seen = [t.params for t in study.trials]
    # a restarted driver builds a new sampler with the same job seed: no earlier point again
    study.sampler = make_sampler(job, len(study.trials))
    _in_memory_search(job, TYPES, 2, study)
    assert all(t.params not in seen for t in study.trials[5:])


def test_cmaes_refuses_multi_objective(make_job) -> None:
    job = make_job(
        objective=SIM, design={"kind": "search", "sampler": "cmaes", "multi_objective": "volume"}
    )
    with pytest.raises(UserError, match="cmaes"):
        make_sampler(job, 0)
    job = make_job(objective=SIM, design={"kind": "search", "multi_objective": "gpu_hours"})
    mix = type("M", (), {"volume": 300})()
    assert objective_values(job, 0.5, TrialResult(metrics={}, seconds=7200), mix, 1.0) == [0.5, 2.0]


@pytest.mark.slow
def test_search_sweep_resumes_to_n_trials_and_keeps_the_attributes(ray_session, make_job) -> None:
    job = make_job(
        objective=SIM,
        design={
            "kind": "search",
            "n_trials": 8,
            "sampler": "default",
            "volumes": [5000],
            "warm_start": "corners",
        },
    )
    summary = run_sweep(job, TYPES, progress=None)
    trials = open_study(job, create=False).get_trials()
    assert summary.n_complete == 8 and len(trials) == 8
    assert all(t.state == TrialState.COMPLETE for t in trials)
    # the default strategy's centroid first, then the warm-start corners, then searched points
    assert trials[0].user_attrs["proportions"] == pytest.approx(dict.fromkeys(TYPES, 1 / 3))
    assert sorted(max(t.user_attrs["proportions"].values()) for t in trials[1:4]) == [1.0, 1.0, 1.0]
    for t in trials:
        a = t.user_attrs
        assert set(a) >= {"proportions", "volume", "seed", "balance", "metrics", "mixture_name"}
        assert a["balance"] == pytest.approx(normalized_entropy(a["proportions"]))
        assert t.params and t.value == pytest.approx(a["metrics"]["score"])
        # optuna-dashboard's parameter views see the mixture trained, the searched one included
        shares = {
            n.removeprefix("share:"): v for n, v in t.params.items() if n.startswith("share:")
        }
        assert shares == pytest.approx(a["proportions"]) and t.params["volume"] == a["volume"]
    assert len({t.user_attrs["design_key"] for t in trials}) == 8
    # more budget: only the missing trials are asked; the sampler seed moved on (no replay)
    more = run_sweep(
        job.__class__(
            **{
                **job.__dict__,
                "design": job.design.__class__(**{**job.design.__dict__, "n_trials": 10}),
            }
        ),
        TYPES,
        progress=None,
    )
    assert more.n_run == 2 and more.n_complete == 10


@pytest.mark.slow
def test_multi_objective_search_has_a_pareto_front(ray_session, make_job) -> None:
    job = make_job(
        objective=SIM,
        design={
            "kind": "search",
            "n_trials": 6,
            "sampler": "tpe",
            "volumes": [500, 20000],
            "search_volume": True,
            "multi_objective": "volume",
        },
    )
    summary = run_sweep(job, TYPES, progress=None)
    study = open_study(job, create=False)
    assert len(study.directions) == 2 and summary.pareto_front
    front = {t.number for t in study.best_trials}
    assert set(summary.pareto_front) == front
    for t in study.get_trials():
        assert t.values[1] == t.user_attrs["volume"] and 500 <= t.user_attrs["volume"] <= 20000


@pytest.mark.slow
def test_pruning_from_intermediate_values(ray_session, make_job) -> None:
    job = make_job(
        objective={**SIM, "duration_s": 2.0, "report_steps": 4},
        design={
            "kind": "search",
            "n_trials": 7,
            "sampler": "random",
            "volumes": [5000],
            "prune": True,
        },
    )
    summary = run_sweep(job, TYPES, progress=None)
    trials = open_study(job, create=False).get_trials()
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(trials) == 7 and summary.n_failed == 0 and len(pruned) + len(complete) == 7
    assert all(t.intermediate_values for t in trials)  # every trial's curve reached Optuna
    assert all(len(t.intermediate_values) == 4 for t in complete)
    assert pruned, [t.intermediate_values for t in trials]
    assert all(len(t.intermediate_values) < 4 for t in pruned)  # stopped early


def test_a_mixture_at_its_cap_is_feasible_and_on_the_pareto_front(make_job) -> None:
    """The centroid under `max_share: {count: 0.1}` has count at the cap exactly; the round
    trip through the stick coordinates leaves it 4e-17 above, which is no breach."""
    from ablate.search import default_warm_start, feasible

    job = make_job(
        objective=SIM,
        design={"kind": "search", "max_share": {"count": 0.1}, "multi_objective": "volume"},
    )
    study = optuna.create_study(directions=["maximize", "minimize"])
    (centre,) = default_warm_start(job, TYPES)
    study.enqueue_trial(cube_params(job, TYPES, centre))
    at_cap = study.ask()
    assert suggest(at_cap, job, TYPES).proportions["count"] > 0.1  # by 4e-17
    assert feasible(at_cap)
    study.tell(at_cap, [0.9, 1000])
    study.enqueue_trial({"u0": 0.5, "u1": 0.5})  # count 0.35: over its cap
    over = study.ask()
    suggest(over, job, TYPES)
    assert not feasible(over)
    study.tell(over, [1.0, 100])  # better in both, but infeasible
    assert [t.number for t in study.best_trials] == [0]


def test_a_failed_start_point_of_a_search_is_not_enqueued_again(make_job) -> None:
    """It counted toward `n_trials`; re-enqueued on every rerun, the study grew past them
    (a grid retries its failed points, as it should)."""
    from ablate.plan import design_mixtures
    from ablate.sweep.driver import enqueue

    for kind, again in (("search", 0), ("grid", 1)):
        job = make_job(study=f"s-{kind}", objective=SIM, design={"kind": kind, "volumes": [5000]})
        study = open_study(job)
        start = design_mixtures(job, TYPES)[:1]
        assert enqueue(job, study, start, TYPES) == 1
        trial = study.ask()
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        assert enqueue(job, study, start, TYPES) == again


@pytest.mark.parametrize("huge", [1e6, 1e200])
def test_default_sampler_is_not_thrown_by_a_diverged_result(make_job, huge: float) -> None:
    """Minimising a loss where one region diverges (a loss of 1e6, or 1e200 whose square
    overflows): the search still proposes distinct mixtures and finds the optimum elsewhere."""
    from ablate.objectives import sim_score
    from ablate.search import default_warm_start

    objective = {**SIM, "direction": "minimize"}
    job = make_job(objective=objective, design={"kind": "search", "volumes": [5000]})
    study = optuna.create_study(direction="minimize", sampler=make_sampler(job, 0))
    for mix in default_warm_start(job, TYPES):
        study.enqueue_trial(cube_params(job, TYPES, mix))
    closeness, proposed = [], set()
    for _ in range(16):
        trial = study.ask()
        mix = suggest(trial, job, TYPES)
        value, c = sim_score("less_is_more", dict(mix.proportions), TYPES, mix.volume)
        diverged = mix.proportions["caption"] > 0.5
        study.tell(trial, huge if diverged else 1.0 - value)
        closeness.append(0.0 if diverged else c)
        proposed.add(tuple(round(v, 6) for v in mix.proportions.values()))
    assert len(proposed) == 16  # before: NaN predictions, the same candidate over and over
    assert max(closeness) >= 0.99


@pytest.mark.parametrize("design", [{"min_share": 0.0}, {"min_share": 0.05}])
def test_a_search_at_a_small_volume_never_trains_on_a_selection_twice(make_job, design) -> None:
    """30 trials at 40 rows over 3 types (861 possible selections): without the check, 17 of
    them repeated an earlier trial's rows per type, so trained on the same data again."""
    from ablate.mixture import rows_per_type

    job = make_job(objective=SIM, design={"kind": "search", "volumes": [40], **design})
    _, runs = _in_memory_search(job, TYPES, 30)
    selections = [tuple(rows_per_type(mix.proportions, mix.volume).values()) for mix, _ in runs]
    assert len(set(selections)) == 30
    assert all(sum(rows) == 40 for rows in selections)


def test_a_lattice_with_no_new_selection_left_repeats_the_best_one(make_job) -> None:
    """3 types at 2 rows hold 6 selections; the 7th trial on has nothing new to train on."""
    from ablate.mixture import rows_per_type

    job = make_job(objective=SIM, design={"kind": "search", "volumes": [2]})
    _, runs = _in_memory_search(job, TYPES, 9)
    selections = [tuple(rows_per_type(mix.proportions, mix.volume).values()) for mix, _ in runs]
    assert len(set(selections[:6])) == 6 and len(set(selections)) == 6
