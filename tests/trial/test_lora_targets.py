"""LoRA's default targets: the language model's linear layers only (the vision tower and the
projector stay frozen), `all-linear` keeps peft's meaning (every linear layer but the head),
and a study recorded under the old default is refused, not trained differently."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ablate.config import JobSpec, LoraSpec
from ablate.errors import UserError
from ablate.models import load_model
from ablate.testing import TINY_FAMILIES, image_text_families
from ablate.trial.train import attach_lora

CORPUS = ["What color is it? red blue green", "user assistant system image"] * 20
#: Where each family keeps its language model.
LANGUAGE = {
    "llava": "model.language_model.",
    "qwen2vl": "model.language_model.",
    "onevision": "model.language_model.",
    "idefics3": "model.text_model.",
}


def adapted(peft_model: Any) -> list[str]:
    """The names (in the base model) of the layers carrying a LoRA adapter."""
    return [
        name.removeprefix("base_model.model.")
        for name, module in peft_model.named_modules()
        if getattr(module, "lora_A", None)
    ]


@pytest.mark.parametrize("name", image_text_families())
def test_the_default_adapts_the_language_model_and_all_linear_the_tower_too(
    tmp_path: Path, name: str
) -> None:
    loaded = load_model(TINY_FAMILIES.get(name)(tmp_path / name, CORPUS), device="cpu")
    assert LoraSpec().target_modules == "language-linear"
    peft_model = attach_lora(loaded.model, LoraSpec(r=4, alpha=8), seed=0)
    default = adapted(peft_model)
    peft_model.unload()
    # 2 layers x (q, k, v, o, gate, up, down) of the language model, nothing else
    assert len(default) == 14 and all(n.startswith(LANGUAGE[name]) for n in default)
    assert not any(n.startswith("lm_head") for n in default)
    everything = adapted(attach_lora(loaded.model, LoraSpec(target_modules="all-linear"), 0))
    assert set(default) < set(everything)
    assert any(not n.startswith(LANGUAGE[name]) for n in everything)  # tower, projector


def test_a_study_recorded_with_the_old_default_refuses_the_new_one(
    make_job: Callable[..., JobSpec],
) -> None:
    """Trials recorded under `all-linear` (the old default, which adapted the vision tower
    too) are not comparable with the new default's: the settings check names the key. A job
    that writes `all-linear` keeps its meaning and resumes such a study."""
    import optuna

    from ablate.study.settings import _model_settings, check_settings

    job = make_job()
    now = _model_settings(job)
    assert now["model.lora.target_modules"] == "language-linear"
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    check_settings(study, job, {**now, "model.lora.target_modules": "all-linear"})
    study.add_trial(optuna.trial.create_trial(value=1.0, params={}, distributions={}))
    with pytest.raises(UserError) as err:
        check_settings(study, job, now)
    assert "model.lora.target_modules" in str(err.value) and "all-linear" in str(err.value)
    explicit = make_job(model={"lora": {"target_modules": "all-linear"}})
    check_settings(study, explicit, _model_settings(explicit))  # the same settings: resumes
