"""`models:` in a job: its shape, the refusals, and the one-model job a named model runs as."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ablate.config import model_job, model_names, read_job
from ablate.errors import UserError

MODELS = [
    {
        "name": "proxy",
        "path": "Qwen/Qwen2-VL-2B-Instruct",
        "size": 2e9,
        "gpus_per_trial": 0.25,
        "lora": {"r": 8, "alpha": 16},
        "train": {"lr": 1.0e-4, "batch_size": 4},
    },
    {"name": "target", "path": "Qwen/Qwen2-VL-7B-Instruct", "size": 7e9},
]


def write(tmp_path: Path, **data: Any) -> Path:
    path = tmp_path / "job.yaml"
    base = {"study": "s", "task_types": ["a", "b"], "train": {"lr": 2.0e-4, "epochs": 2}}
    path.write_text(yaml.safe_dump({**base, **data}))
    return path


def test_a_models_list_reads_and_each_model_runs_as_its_own_one_model_job(tmp_path: Path) -> None:
    job = read_job(write(tmp_path, models=MODELS, resources={"gpus_per_trial": 1}))
    assert model_names(job) == ["proxy", "target"]
    proxy, target = model_job(job, "proxy"), model_job(job, "target")
    assert proxy.model.path == "Qwen/Qwen2-VL-2B-Instruct" and proxy.model.lora.r == 8
    assert (proxy.train.lr, proxy.train.batch_size, proxy.train.epochs) == (1.0e-4, 4, 2)
    assert proxy.resources.gpus_per_trial == 0.25 and target.resources.gpus_per_trial == 1
    assert target.train.lr == 2.0e-4 and target.model.lora.r == 16  # the job's, the default
    assert model_job(job, "") is job
    with pytest.raises(UserError, match=r"no model named 'big'.*known: proxy, target"):
        model_job(job, "big")


def test_a_job_with_both_model_and_models_is_refused_naming_which_to_keep(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        read_job(write(tmp_path, model={"path": "x"}, models=MODELS))
    assert "names both `model`" in str(err.value) and "keep one" in str(err.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "proxy"}, "`models[1].name` 'proxy' names two models"),
        ({"name": ""}, "`models[1].name` is missing"),
        ({"train": {"lrr": 1}}, "unknown key `models[1].train.lrr` (did you mean"),
        ({"gpus_per_trial": -1}, "`models[1].gpus_per_trial` must be 0 or more"),
        ({"cpus_per_trial": 0}, "`models[1].cpus_per_trial` must be positive"),
    ],
)
def test_bad_models_are_refused_with_the_key(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    models = [MODELS[0], {**MODELS[1], **change}]
    with pytest.raises(UserError) as err:
        read_job(write(tmp_path, models=models))
    assert message in str(err.value)


def test_rank_correlation_outside_0_1_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"objective\.rank_correlation` must lie in"):
        read_job(write(tmp_path, objective={"kind": "sim", "rank_correlation": 1.5}))


def test_sizes_read_as_numbers_in_every_float_spelling(tmp_path: Path) -> None:
    """`2.2e9` is a float in YAML 1.2 but a string to PyYAML (which wants `2.2e+9`)."""
    path = tmp_path / "job.yaml"
    path.write_text(
        "study: s\ntask_types: [a]\nmodels:\n"
        "  - {name: a, size: 2.2e9}\n  - {name: b, size: 5e8}\n  - {name: c, size: .5e9}\n"
    )
    assert [m.size for m in read_job(path).models] == [2.2e9, 5e8, 0.5e9]
