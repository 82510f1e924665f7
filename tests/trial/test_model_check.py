"""A text-only model with a bench of images is refused before anything is enqueued, from the
model's config alone (no weights read); a bench with some images gets a warning saying how many
dialogues every trial leaves unscored; a model that takes images, or one the check cannot read,
passes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from ablate.config import ModelSpec, read_job
from ablate.errors import UserError
from ablate.testing import TINY_FAMILIES
from ablate.trial.model_check import check_model_images, text_only

CORPUS = ["What color is it? red blue green", "user assistant system image"] * 20
FIX = "use an image-text-to-text model, or a bench without images"

JOB_YAML = """\
study: model-check
pool: pool
bench: bench.yaml
task_types: [colors]
model: {path: causal_lm}
design: {kind: grid, volumes: [100], balance: [1.0], seeds: [0]}
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the tiny causal LM and tiny Llava, their weights deleted: the check must
    read the config alone."""
    root = tmp_path_factory.mktemp("model-check")
    for name in ("causal_lm", "llava"):
        folder = TINY_FAMILIES.get(name)(root / name, CORPUS)
        for path in folder.glob("*.safetensors"):
            path.unlink()
    return root


def make_job(
    tmp_path: Path,
    models: Path,
    with_images: int,
    n: int = 4,
    entries: list[dict[str, str]] | None = None,
) -> Path:
    """A job file beside a bench of `n` dialogues, the first `with_images` with an image; its
    model the causal LM, or `entries` as its `models:`."""
    (tmp_path / "red.png").write_bytes(b"not read by the check")
    with (tmp_path / "bench.jsonl").open("w") as f:
        for i in range(n):
            question = "<image>\nWhat color is it?" if i < with_images else "Say red."
            record = {
                "id": f"b{i}",
                "domain": "colors",
                "conversations": [
                    {"from": "human", "value": question},
                    {"from": "gpt", "value": "red"},
                ],
                **({"image": "red.png"} if i < with_images else {}),
            }
            f.write(json.dumps(record) + "\n")
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump({"name": "b", "data": "bench.jsonl"}))
    data = yaml.safe_load(JOB_YAML)
    data["model"] = {"path": str(models / "causal_lm")}
    if entries:
        data["models"] = entries
        del data["model"]
    (tmp_path / "my_job.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "my_job.yaml"


def refusal(job_file: Path, *overrides: str) -> str:
    with pytest.raises(UserError) as err:
        check_model_images(read_job(job_file, list(overrides)))
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_text_only_model_with_a_bench_of_images_is_refused(tmp_path: Path, models: Path) -> None:
    job_file = make_job(tmp_path, models, with_images=4)
    message = refusal(job_file)
    assert message == (
        f"{job_file}: `model.path` {models / 'causal_lm'} is a text-only model "
        "(LlamaForCausalLM, by its config.json), and 4 of the 4 dialogues of the bench "
        f"{tmp_path / 'bench.yaml'} have images, so none can be scored; {FIX}"
    )


def test_a_bench_with_some_images_gives_a_warning_with_the_count(
    tmp_path: Path, models: Path
) -> None:
    job_file = make_job(tmp_path, models, with_images=3)
    (line,) = check_model_images(read_job(job_file))
    assert line.startswith(f"warning: {job_file}: `model.path` {models / 'causal_lm'} is a ")
    assert "3 of the 4 dialogues of the bench" in line and "left unscored" in line
    assert line.endswith(FIX) and "\n" not in line


def test_a_bench_without_images_or_a_model_that_takes_them_passes(
    tmp_path: Path, models: Path
) -> None:
    job_file = make_job(tmp_path, models, with_images=0)
    assert check_model_images(read_job(job_file)) == []
    job_file = make_job(tmp_path, models, with_images=4)
    llava = f"model.path={models / 'llava'}"
    assert check_model_images(read_job(job_file, [llava])) == []
    assert text_only(ModelSpec(path="llava"), models) is None


def test_a_model_loaded_text_only_by_its_kind_is_refused(tmp_path: Path, models: Path) -> None:
    """`model.kind: causal-lm` loads even Llava with its tokenizer alone: no images."""
    job_file = make_job(tmp_path, models, with_images=4)
    message = refusal(job_file, f"model.path={models / 'llava'}", "model.kind=causal-lm")
    assert "is loaded text-only (`kind: causal-lm`), and 4 of the 4 dialogues" in message


def test_each_model_of_a_models_job_is_named_by_its_key(tmp_path: Path, models: Path) -> None:
    entries = [
        {"name": "llava", "path": str(models / "llava")},
        {"name": "lm", "path": str(models / "causal_lm")},
    ]
    job_file = make_job(tmp_path, models, with_images=4, entries=entries)
    message = refusal(job_file)
    assert message.startswith(f"{job_file}: `models[1].path` {models / 'causal_lm'} is a text-")
    job_file = make_job(tmp_path, models, with_images=2, entries=entries)
    (line,) = check_model_images(read_job(job_file))
    assert "`models[1].path`" in line and "2 of the 4 dialogues" in line


def test_what_it_cannot_tell_from_the_config_is_left_to_the_trial(
    tmp_path: Path, models: Path
) -> None:
    """A hub id outside the local cache, or a causal LM whose folder has a processor file (the
    processor `kind: auto` loads may take images): no refusal, the trial decides."""
    job_file = make_job(tmp_path, models, with_images=4)
    assert check_model_images(read_job(job_file, ["model.path=org/no-model"])) == []
    beside = tmp_path / "lm_with_processor"
    shutil.copytree(models / "causal_lm", beside)
    (beside / "preprocessor_config.json").write_text("{}")
    assert text_only(ModelSpec(path=str(beside)), tmp_path) is None
    assert check_model_images(read_job(job_file, [f"model.path={beside}"])) == []
    assert check_model_images(read_job(job_file, ["bench=missing.yaml"])) == []


def test_the_encoder_s_advice_fits_a_bench_as_well_as_a_pool(models: Path) -> None:
    from transformers import AutoTokenizer

    from ablate.trial.encode import DialogueEncoder
    from ablate.trial.errors import EncodeError

    encoder = DialogueEncoder(AutoTokenizer.from_pretrained(models / "causal_lm"))
    turns = [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "red"}]
    with pytest.raises(EncodeError) as err:
        encoder.encode(turns, ["red.png"])
    assert str(err.value).endswith("use an image-text-to-text model, or data without images")
