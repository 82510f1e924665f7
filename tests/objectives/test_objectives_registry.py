"""Objective kinds and sim landscapes are registries: a new one is a class that registers itself,
and a misspelt name fails with a did-you-mean error naming the file and the key."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from ablate.config import JobSpec
from ablate.errors import UserError
from ablate.mixture import Mixture
from ablate.objectives import (
    LANDSCAPES,
    OBJECTIVES,
    check_objective,
    prepare_objective,
    run_objective,
    sim_score,
)
from ablate.result import TrialResult

MIX = Mixture(name="m", volume=5000, proportions={"caption": 0.5, "count": 0.3, "compare": 0.2})


class ShareOf:
    """A test objective kind: the share of `objective.target` (a task type), no training."""

    def check(self, job: JobSpec, source: str) -> None:
        if job.objective.target not in job.task_types:
            raise UserError(f"{source}: `objective.target` must name one of the task types")

    def prepare(self, job: JobSpec) -> None:
        pass

    def run(self, job: JobSpec, mixture: Mixture, cache: dict[Any, Any]) -> TrialResult:
        cache["runs"] = cache.get("runs", 0) + 1
        share = float(dict(mixture.proportions)[str(job.objective.target)])
        return TrialResult(metrics={job.objective.metric: share})


class Flat:
    """A test landscape: the same quality everywhere."""

    def draw(self, k: int, rng: np.random.Generator) -> dict[str, Any]:
        return {"level": 2.0}

    def raw(self, params: dict[str, Any], p: np.ndarray) -> float:
        return float(params["level"])


@pytest.fixture
def share_of() -> Iterator[str]:
    OBJECTIVES.register("share_of")(ShareOf)
    yield "share_of"
    OBJECTIVES.unregister("share_of")


@pytest.fixture
def flat() -> Iterator[str]:
    LANDSCAPES.register("test_flat")(Flat)
    yield "test_flat"
    LANDSCAPES.unregister("test_flat")


def with_objective(job: JobSpec, **changes: Any) -> JobSpec:
    return dataclasses.replace(job, objective=dataclasses.replace(job.objective, **changes))


def test_the_built_in_kinds_and_landscapes_are_registered() -> None:
    # built-ins first; a job's `plugins` (another test module) may have added kinds after them
    assert OBJECTIVES.names()[:3] == ["python", "sim", "train"]
    assert list(LANDSCAPES) == ["less_is_more", "peaked", "harmful", "synergy"]


def test_a_registered_kind_is_checked_and_run_through_run_objective(
    make_job: Callable[..., JobSpec], share_of: str
) -> None:
    job = with_objective(make_job(), kind=share_of, target="count")
    check_objective(job, "job.yaml")
    cache: dict[Any, Any] = {}
    result = run_objective(job, MIX, cache)
    assert result.metrics == {"score": pytest.approx(0.3)}
    assert result.seconds > 0  # filled in by run_objective: the kind left it 0
    assert cache == {"runs": 1}  # the worker's cache reaches the kind
    with pytest.raises(UserError, match=r"^job.yaml: `objective.target` must name one"):
        check_objective(with_objective(job, target="colors"), "job.yaml")


def test_an_unregistered_kind_is_gone(make_job: Callable[..., JobSpec]) -> None:
    OBJECTIVES.register("share_of")(ShareOf)
    OBJECTIVES.unregister("share_of")
    with pytest.raises(UserError, match="not a known objective kind"):
        check_objective(with_objective(make_job(), kind="share_of"), "job.yaml")


def test_a_registered_landscape_scores_through_sim_score(flat: str) -> None:
    noisy, clean = sim_score(flat, {"a": 0.7, "b": 0.3}, ["a", "b"], 5000)
    assert noisy == clean == pytest.approx(1.0)  # normalised by its maximum, at the peak volume


def test_a_misspelt_kind_says_which_was_meant(make_job: Callable[..., JobSpec]) -> None:
    job = with_objective(make_job(), kind="pyhton")
    with pytest.raises(UserError) as err:
        check_objective(job, "job.yaml")
    assert str(err.value).startswith("job.yaml: `objective.kind` 'pyhton' is not a known")
    assert "(did you mean `python`?)" in str(err.value)
    with pytest.raises(UserError, match="did you mean `python`"):
        run_objective(job, MIX)


def test_a_misspelt_landscape_says_which_was_meant(make_job: Callable[..., JobSpec]) -> None:
    job = with_objective(make_job(), kind="sim", landscape="peeked")
    with pytest.raises(UserError) as err:
        check_objective(job, "job.yaml")
    assert str(err.value).startswith("job.yaml: `objective.landscape` 'peeked' is not a known")
    assert "(did you mean `peaked`?)" in str(err.value)


@pytest.mark.parametrize(
    ("kind", "changes", "expected"),
    [
        ("train", {}, "`pool` is required when objective.kind is train"),
        ("train", {"pool": "pool"}, "`bench` is required when objective.kind is train"),
        (
            "train",
            {"pool": "pool", "bench": {"heldout_of_pool": 1.5}},
            "`bench.heldout_of_pool` must lie in [0, 1)",
        ),
        (
            "train",
            {"pool": "pool", "bench": {"heldout_of_pool": 0.0}},
            "`bench` needs a `file`, a `heldout_of_pool` share, or both",
        ),
        ("python", {"target": "no_colon"}, "`objective.target` must be `module:function`"),
        ("python", {"task_types": ()}, "list `task_types` (or give a `pool`)"),
        ("sim", {"task_types": ()}, "list `task_types` (or give a `pool`)"),
    ],
)
def test_each_kind_checks_what_it_needs(
    make_job: Callable[..., JobSpec], kind: str, changes: dict[str, Any], expected: str
) -> None:
    job = make_job(**{k: v for k, v in changes.items() if k != "target"})
    job = with_objective(job, kind=kind, target=changes.get("target", job.objective.target))
    with pytest.raises(UserError) as err:
        check_objective(job, "job.yaml")
    assert str(err.value).startswith("job.yaml: ") and expected in str(err.value)


@pytest.mark.parametrize("kind", ["train", "python", "sim"])
def test_a_complete_job_passes_its_kind_s_checks(
    make_job: Callable[..., JobSpec], kind: str
) -> None:
    job = make_job(pool="pool", bench="bench.yaml")
    check_objective(with_objective(job, kind=kind), "job.yaml")


def test_prepare_loads_a_python_target_once_in_the_driver(make_job: Callable[..., JobSpec]) -> None:
    prepare_objective(make_job())  # objectives_for_tests:landscape imports
    with pytest.raises(UserError, match="cannot import module `no_such_module`"):
        prepare_objective(make_job(target="no_such_module:f"))
    for kind in ("sim", "train"):
        prepare_objective(with_objective(make_job(target="no_such_module:f"), kind=kind))


def write_bench(tmp_path: Any, scorer: str = "exact") -> str:
    judge = "judge: {url: 'http://127.0.0.1:1/v1', model: m}\n" if scorer == "judge" else ""
    (tmp_path / "bench.jsonl").write_text("")
    (tmp_path / "bench.yaml").write_text(f"name: b\ndata: bench.jsonl\nscorer: {scorer}\n{judge}")
    return str(tmp_path / "bench.yaml")


def test_a_misspelt_sim_metric_is_refused_before_any_trial(
    make_job: Callable[..., JobSpec],
) -> None:
    job = with_objective(make_job(), kind="sim", metric="scor")
    with pytest.raises(UserError) as err:
        check_objective(job, "job.yaml")
    assert str(err.value) == (
        "job.yaml: `objective.metric` 'scor' is not a metric of objective kind sim (did you "
        "mean `score`?); its trials report score, noise_free"
    )
    for metric in ("score", "noise_free"):
        check_objective(with_objective(job, metric=metric), "job.yaml")
    noise_free = run_objective(with_objective(job, metric="noise_free", noise=0.5), MIX)
    assert set(noise_free.metrics) == {"score", "noise_free"}  # the names do not follow the key


def test_a_train_metric_is_checked_against_its_bench_s_scorer(
    make_job: Callable[..., JobSpec], tmp_path: Any
) -> None:
    job = make_job(pool="pool", bench=write_bench(tmp_path))
    job = with_objective(job, kind="train", metric="overall_acc")
    with pytest.raises(UserError) as err:
        check_objective(job, "job.yaml")
    message = str(err.value)
    assert "`objective.metric` 'overall_acc' is not a metric of objective kind train" in message
    assert "(did you mean `overall_accuracy`?)" in message
    assert "overall_accuracy, contextual_accuracy, bench_loss, accuracy/..." in message
    for metric in ("overall_accuracy", "bench_loss", "train_loss", "accuracy/colors"):
        check_objective(with_objective(job, metric=metric), "job.yaml")  # accuracy/<domain>
    with pytest.raises(UserError, match="'judge_score' is not a metric"):
        check_objective(with_objective(job, metric="judge_score"), "job.yaml")
    judged = make_job(pool="pool", bench=write_bench(tmp_path, "judge"))
    check_objective(with_objective(judged, kind="train", metric="judge_score"), "job.yaml")
    heldout = make_job(pool="pool", bench={"heldout_of_pool": 0.1})
    check_objective(with_objective(heldout, kind="train", metric="heldout_loss"), "job.yaml")
    with pytest.raises(UserError, match="its trials report train_loss, final_train_loss, he"):
        check_objective(with_objective(heldout, kind="train", metric="bench_loss"), "job.yaml")


def test_a_misspelt_scheduler_is_refused_before_the_model_loads(
    make_job: Callable[..., JobSpec],
) -> None:
    job = make_job(pool="pool", bench={"heldout_of_pool": 0.1}, train={"scheduler": "cosinee"})
    job = with_objective(job, kind="train", metric="heldout_loss")
    check_objective(job, "job.yaml")  # not here: the names cost transformers' import
    with pytest.raises(UserError) as err:
        prepare_objective(job)  # the sweep's driver, before anything is enqueued
    assert str(err.value).startswith(
        "job: `train.scheduler` 'cosinee' is not a learning-rate schedule transformers knows "
        "(did you mean `cosine`?); choose one of linear, cosine, "
    )
    with pytest.raises(UserError, match=r"`train\.scheduler` 'cosinee'"):
        run_objective(job, MIX)  # `ablate trial`: before the pool (there is none) is read
    prepare_objective(
        with_objective(make_job(pool="pool", bench={"heldout_of_pool": 0.1}), kind="train")
    )
