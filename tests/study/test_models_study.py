"""A study across models (`models:`): the design crossed with the models, each trial's `model`,
the settings fingerprint (adding a model extends the study, changing one is a change of
settings), `ablate status` and the trial table per model. No Ray: trials are told here."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from optuna.trial import TrialState

from ablate.analysis import load
from ablate.config import JobSpec
from ablate.design import design_key
from ablate.errors import UserError
from ablate.plan import check_job_kinds, design_mixtures
from ablate.study import (
    check_settings,
    enqueue_design,
    job_settings,
    mixture_from_attrs,
    open_study,
)
from ablate.study.optuna_fast import pop_waiting, waiting_ids
from ablate.sweep import study_status
from ablate.tracking import trial_params

TYPES = ["caption", "count", "compare"]
GRID = {"kind": "grid", "volumes": [100, 400], "balance": [0.5, 1.0], "seeds": [0]}
PROXY = {"name": "proxy", "path": "tiny-a", "size": 0.5e9, "gpus_per_trial": 0.25}
TARGET = {"name": "target", "path": "tiny-b", "size": 7e9, "lora": {"r": 32, "alpha": 64}}


def models_job(
    make_job: Callable[..., JobSpec], *models: dict[str, Any], kind: str = "sim", **kw: Any
) -> JobSpec:
    objective = {"kind": kind, "metric": "score", "landscape": "less_is_more"}
    return make_job(models=list(models), objective=objective, design=GRID, **kw)


def finish(study: Any, model: str, state: TrialState, n: int = 99) -> None:
    """Ask and finish up to `n` of `model`'s WAITING trials in `state` (complete: 0.5)."""
    waiting = waiting_ids(study, lambda attrs: attrs.get("model") == model)
    for _ in range(min(n, len(waiting))):
        trial = pop_waiting(study, waiting)
        study.tell(trial, 0.5 if state == TrialState.COMPLETE else None, state=state)


def test_the_design_runs_once_per_model_and_one_model_jobs_are_unchanged(make_job) -> None:
    one = design_mixtures(make_job(design=GRID), TYPES)
    two = design_mixtures(models_job(make_job, PROXY, TARGET), TYPES)
    assert len(two) == 2 * len(one) == 8
    assert [m.model for m in two] == ["proxy"] * 4 + ["target"] * 4  # model-major
    assert [m.name for m in two[:4]] == [f"proxy-{m.name}" for m in one]
    assert len({design_key(m) for m in two}) == 8
    # a one-model job's keys are what they were (old studies resume without a rerun)
    assert all(m.model == "" and "|m=" not in design_key(m) for m in one)


def test_each_trial_carries_its_model_and_mlflow_params_its_models_settings(make_job) -> None:
    job = models_job(make_job, PROXY, TARGET)
    study = open_study(job)
    enqueue_design(study, design_mixtures(job, TYPES))
    models = [t.user_attrs["model"] for t in study.get_trials()]
    assert models == ["proxy"] * 4 + ["target"] * 4
    mixture = mixture_from_attrs(study.get_trials()[5].user_attrs)
    assert mixture.model == "target"
    assert "lora.r" not in trial_params(job, mixture)  # a python objective trains no model
    trains = dataclasses.replace(job, objective=dataclasses.replace(job.objective, kind="train"))
    params = trial_params(trains, mixture)
    assert params["model"] == "target" and params["model.path"] == "tiny-b"
    assert params["lora.r"] == "32"
    one = make_job()
    plain = design_mixtures(one, TYPES)[0]
    assert "model" not in trial_params(one, plain)


@pytest.mark.parametrize("kind", ["train", "sim"])
def test_adding_a_model_extends_the_study_and_changing_one_is_a_change_of_settings(
    make_job, kind: str
) -> None:
    """With `sim` (no training) a model's LoRA and training are not settings; its size is."""
    job = models_job(make_job, PROXY, kind=kind)
    study = open_study(job)
    base, _ = check_settings(study, job, job_settings(job, TYPES))
    enqueue_design(study, design_mixtures(job, TYPES), level=base)
    finish(study, "proxy", TrialState.COMPLETE, n=1)
    grown = models_job(make_job, PROXY, TARGET, kind=kind)
    level, note = check_settings(study, grown, job_settings(grown, TYPES))
    assert level.id == base.id and note is None  # the new model's trials join the study
    enqueue_design(study, design_mixtures(grown, TYPES), level=level)
    finish(study, "target", TrialState.COMPLETE, n=1)
    changed = models_job(make_job, PROXY, {**TARGET, "lora": {"r": 8, "alpha": 16}}, kind=kind)
    trained = models_job(make_job, {**PROXY, "train": {"lr": 1.0e-3}}, TARGET, kind=kind)
    if kind == "train":
        with pytest.raises(UserError) as err:
            check_settings(study, changed, job_settings(changed, TYPES))
        assert "models.target.model.lora.r: study has 32, this job has 8" in str(err.value)
        with pytest.raises(UserError, match=r"models\.proxy\.train\.lr"):
            check_settings(study, trained, job_settings(trained, TYPES))
    else:
        for same in (changed, trained):
            assert check_settings(study, same, job_settings(same, TYPES))[0].id == base.id
        bigger = models_job(make_job, {**PROXY, "size": 1e9}, TARGET, kind=kind)
        with pytest.raises(UserError, match=r"models\.proxy\.size: study has 500000000\.0"):
            check_settings(study, bigger, job_settings(bigger, TYPES))
    # resources are not settings: a proxy on a whole GPU trains the same
    moved = models_job(make_job, {**PROXY, "gpus_per_trial": 1}, TARGET, kind=kind)
    assert check_settings(study, moved, job_settings(moved, TYPES))[0].id == base.id


def test_search_with_models_and_sim_without_sizes_are_refused(make_job) -> None:
    search = make_job(
        models=[PROXY, TARGET],
        objective={"kind": "sim", "metric": "score"},
        design={"kind": "search", "n_trials": 4},
    )
    with pytest.raises(UserError, match=r"`design\.kind: search` does not take `models:`"):
        check_job_kinds(search, "job.yaml")
    sizeless = models_job(make_job, PROXY, {"name": "target", "path": "tiny-b"})
    with pytest.raises(UserError, match=r"`models\[1\]\.size` is needed by objective kind sim"):
        check_job_kinds(sizeless, "job.yaml")


def test_status_and_the_trial_table_go_by_model(make_job) -> None:
    job = models_job(make_job, PROXY, TARGET)
    study = open_study(job)
    check_settings(study, job, job_settings(job, TYPES))
    enqueue_design(study, design_mixtures(job, TYPES))
    waiting = waiting_ids(study)
    for value in (0.5, 0.7, 0.6):  # three proxy trials finish
        trial = pop_waiting(study, waiting)
        trial.set_user_attr("seconds", 10.0)
        study.tell(trial, value)
    text = study_status(job)
    assert "  model proxy: complete 3  running 0  waiting 1  fail 0; best score 0.7" in text
    assert "  model target: complete 0  running 0  waiting 4  fail 0" in text
    assert "best single trial score = 0.7 (trial 1): model proxy, volume" in text
    df = load(job)
    assert list(df["model"]) == ["proxy"] * 4 + ["target"] * 4
    done = df[df["state"] == "COMPLETE"]
    assert list(done["gpu_seconds"]) == [2.5, 2.5, 2.5]  # 10 s x the proxy's 0.25 GPU
    one = make_job(study="one-model", design=GRID)
    enqueue_design(open_study(one), design_mixtures(one, TYPES))
    assert set(load(one)["model"]) == {""}


def test_a_model_with_no_finished_trial_takes_its_fixed_settings(make_job, tmp_path) -> None:
    """A wrong `models[i].path` (a hub id that fails every trial) fixed after the other model's
    trials finished: no result is of the old path, so the study takes the new one for that
    model, keeps its settings id (the other model's trials stay its own) and retries the
    failed trials; a change to a model with a finished trial is still refused."""
    (tmp_path / "tiny-b-fixed").mkdir()
    job = models_job(make_job, PROXY, {**TARGET, "path": "org/tiny-b-typo"}, kind="train")
    study = open_study(job)
    base, _ = check_settings(study, job, job_settings(job, TYPES))
    enqueue_design(study, design_mixtures(job, TYPES), level=base)
    finish(study, "proxy", TrialState.COMPLETE)
    finish(study, "target", TrialState.FAIL)
    fixed = models_job(make_job, PROXY, {**TARGET, "path": str(tmp_path / "tiny-b-fixed")},
                       kind="train")  # fmt: skip
    level, note = check_settings(study, fixed, job_settings(fixed, TYPES))
    assert level.id == base.id and level.base == base.id and not level.changes
    assert note is not None and "the settings of model(s) target changed" in note
    assert "models.target.model.path: study has org/tiny-b-typo, this job has" in note
    assert "retries their failed trials with them" in note
    again, second = check_settings(study, fixed, job_settings(fixed, TYPES))
    assert again.id == base.id and second is None  # recorded: the fix is the study's now
    proxy_changed = models_job(make_job, {**PROXY, "train": {"lr": 1.0e-3}},
                               {**TARGET, "path": str(tmp_path / "tiny-b-fixed")}, kind="train")  # fmt: skip
    with pytest.raises(UserError, match=r"models\.proxy\.train\.lr"):
        check_settings(study, proxy_changed, job_settings(proxy_changed, TYPES))


def one_done_one_failed(make_job, models: list[Any], done: str, failed: str) -> Any:
    """A train study of `models` whose `done` model completed every trial, `failed` none."""
    job = models_job(make_job, *models, kind="train")
    study = open_study(job)
    base, _ = check_settings(study, job, job_settings(job, TYPES))
    enqueue_design(study, design_mixtures(job, TYPES), level=base)
    finish(study, done, TrialState.COMPLETE)
    finish(study, failed, TrialState.FAIL)
    return study, base


def test_model_names_that_prefix_each_other_keep_their_own_settings(make_job) -> None:
    """Review n: with models `qwen2` and `qwen2.5`, a change to `qwen2.5` (finished trials)
    was matched to `qwen2` (none finished) by the prefix `models.qwen2.` and taken silently:
    qwen2.5's old and new trials would have been seed replicates of each other."""
    a = {"name": "qwen2", "path": "Qwen/Qwen2-VL-2B", "size": 2e9}
    b = {"name": "qwen2.5", "path": "Qwen/Qwen2.5-VL-3B", "size": 3e9}
    study, base = one_done_one_failed(make_job, [a, b], done="qwen2.5", failed="qwen2")
    changed = models_job(make_job, a, {**b, "path": "Qwen/Qwen2.5-VL-7B"}, kind="train")
    with pytest.raises(UserError, match=r"models\.qwen2\.5\.model\.path: study has Qwen/Qwen2\.5"):
        check_settings(study, changed, job_settings(changed, TYPES))
    fixed = models_job(make_job, {**a, "path": "Qwen/Qwen2-VL-2B-Instruct"}, b, kind="train")
    level, note = check_settings(study, fixed, job_settings(fixed, TYPES))
    assert level.id == base.id and note is not None and "model(s) qwen2 changed" in note


def test_a_model_added_with_another_models_fix_is_recorded(make_job) -> None:
    """Review n: a model added in the run that took another model's path fix was not recorded,
    so a later change of its settings read as "a new model" and was taken under the same id."""
    bad = {**TARGET, "path": "org/typo"}
    study, base = one_done_one_failed(make_job, [PROXY, bad], done="proxy", failed="target")
    mid = {"name": "mid", "path": "org/mid", "size": 2e9}
    grown = models_job(make_job, PROXY, {**TARGET, "path": "org/fixed"}, mid, kind="train")
    level, note = check_settings(study, grown, job_settings(grown, TYPES))
    assert level.id == base.id and note is not None
    enqueue_design(study, design_mixtures(grown, TYPES), level=level)
    finish(study, "mid", TrialState.COMPLETE)
    moved = models_job(make_job, PROXY, {**TARGET, "path": "org/fixed"},
                       {**mid, "path": "org/mid-v2"}, kind="train")  # fmt: skip
    with pytest.raises(UserError, match=r"models\.mid\.model\.path: study has org/mid,"):
        check_settings(study, moved, job_settings(moved, TYPES))


def test_status_ranks_the_best_mixture_within_the_latest_model(make_job) -> None:
    """Review o: status ranked the best mixture over every model's mixtures ("the best of 40"
    where the report said 20 for the same mixture)."""
    objective = {"kind": "sim", "metric": "score", "landscape": "less_is_more"}
    job = make_job(models=[PROXY, TARGET], objective=objective, design={**GRID, "seeds": [0, 1]})
    study = open_study(job)
    check_settings(study, job, job_settings(job, TYPES))
    enqueue_design(study, design_mixtures(job, TYPES))
    waiting = waiting_ids(study)
    while (trial := pop_waiting(study, waiting)) is not None:
        big = trial.user_attrs["model"] == "target"
        study.tell(trial, (0.9 if big else 0.95) - 0.01 * trial.user_attrs["volume"] / 100)
    text = study_status(job)
    line = next(x for x in text.splitlines() if "best mixture by its mean" in x)
    assert ", model target," in line and "(the best of 4 mixtures' means" in line
