"""LoRA's default targets: the language model's linear layers only (the vision tower and the
projector stay frozen), `all-linear` keeps peft's meaning (every linear layer but the head),
and a study recorded under the old default is refused, not trained differently. Targets that
match no module are refused up front from the model's config alone (no weights read), and in
the trial in one line, not with peft's traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ablate.config import JobSpec, LoraSpec, ModelSpec, read_job
from ablate.errors import UserError
from ablate.models import load_model
from ablate.testing import TINY_FAMILIES, image_text_families
from ablate.trial.lora_targets import check_lora_targets, meta_model
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


#: A training job beside its model folder (`model`, relative to the job file's folder).
JOB_YAML = """\
study: lora-targets
pool: pool
bench: bench.yaml
task_types: [colors]
model: {path: model}
design: {kind: grid, volumes: [100], balance: [1.0], seeds: [0]}
"""


@pytest.fixture(scope="module")
def config_only(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A job file per tiny family (causal LM, Llava) whose model folder has lost its weights:
    what the check reads must be the config alone."""
    jobs = {}
    for name in ("causal_lm", "llava"):
        root = tmp_path_factory.mktemp(f"config-only-{name}")
        folder = TINY_FAMILIES.get(name)(root / "model", CORPUS)
        weights = list(folder.glob("*.safetensors"))
        assert weights
        for path in weights:
            path.unlink()
        (root / "my_job.yaml").write_text(JOB_YAML)
        jobs[name] = root / "my_job.yaml"
    return jobs


def refusal(job_file: Path, *overrides: str) -> str:
    """The one-line message the check gives for the job with `overrides` (as `--set` gives)."""
    with pytest.raises(UserError) as err:
        check_lora_targets(read_job(job_file, list(overrides)))
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", ["causal_lm", "llava"])
def test_the_keywords_and_a_list_of_layer_names_pass_from_the_config_alone(
    config_only: dict[str, Path], name: str
) -> None:
    """No weights file in the folder: the check builds the model on the meta device."""
    job_file = config_only[name]
    model = meta_model(ModelSpec(path="model"), job_file.parent)
    assert model is not None and all(p.is_meta for p in model.parameters())
    for targets in ("language-linear", "all-linear", "[q_proj, v_proj]"):
        check_lora_targets(read_job(job_file, [f"model.lora.target_modules={targets}"]))
    check_lora_targets(read_job(job_file))  # the default: language-linear


@pytest.mark.parametrize("name", ["causal_lm", "llava"])
def test_a_misspelt_keyword_is_refused_with_the_file_the_key_and_the_fix(
    config_only: dict[str, Path], name: str
) -> None:
    job_file = config_only[name]
    message = refusal(job_file, "model.lora.target_modules=language-linaer")
    assert message.startswith(f"{job_file}: `model.lora.target_modules` `language-linaer` ")
    assert "matches no module of the model" in message
    assert "(did you mean `language-linear`?)" in message
    assert "write `language-linear` (its language model's linear layers), `all-linear`" in message
    assert "q_proj" in message  # the model's own layer names
    message = refusal(job_file, "model.lora.target_modules=all-lnear")
    assert "(did you mean `all-linear`?)" in message


def test_a_misspelt_list_is_refused_naming_the_closest_layer_names(
    config_only: dict[str, Path],
) -> None:
    job_file = config_only["causal_lm"]
    message = refusal(job_file, "model.lora.target_modules=[q_prj, v_prj]")
    assert message.startswith(f"{job_file}: `model.lora.target_modules` [q_prj, v_prj] ")
    assert "`q_prj` (did you mean `q_proj`?), `v_prj` (did you mean `v_proj`?)" in message
    assert "(q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head)" in message
    # one name, not in a list: peft reads it as a pattern for the whole module name
    message = refusal(job_file, "model.lora.target_modules=q_proj")
    assert "write a list, `[q_proj]`" in message


def test_each_model_of_a_models_job_is_checked_under_its_own_key(
    config_only: dict[str, Path], tmp_path: Path
) -> None:
    """`models:` entries each have their path and LoRA; the message names the entry."""
    model = config_only["causal_lm"].parent / "model"
    job_file = tmp_path / "models.yaml"
    entries = [
        {"name": "small", "path": str(model)},
        {"name": "typo", "path": str(model), "lora": {"target_modules": ["q_prj"]}},
    ]
    job_file.write_text(JOB_YAML.replace("model: {path: model}", f"models: {entries}"))
    message = refusal(job_file)
    assert f"{job_file}: `models[1].lora.target_modules` [q_prj] " in message
    assert "(did you mean `q_proj`?)" in message


def test_a_model_it_cannot_build_from_a_config_is_left_to_the_trial(tmp_path: Path) -> None:
    """A hub id outside the local cache: no network, no refusal (the trial loads and says)."""
    (tmp_path / "my_job.yaml").write_text(JOB_YAML.replace("path: model", "path: org/no-model"))
    assert meta_model(ModelSpec(path="org/no-model"), tmp_path) is None
    check_lora_targets(read_job(tmp_path / "my_job.yaml", ["model.lora.target_modules=[q_prj]"]))


def test_the_trial_turns_peft_s_no_match_into_the_same_line(tmp_path: Path) -> None:
    """The second line of defence (a job whose check was skipped): `attach_lora` refuses the
    targets with the same message as the check, not with peft's NoMatchingPeftModuleError."""
    loaded = load_model(TINY_FAMILIES.get("causal_lm")(tmp_path / "model", CORPUS), device="cpu")
    lora = LoraSpec(r=4, alpha=8, target_modules=("q_prj",))
    with pytest.raises(UserError) as err:
        attach_lora(loaded.model, lora, seed=0, source="my_job.yaml")
    assert str(err.value).startswith(
        "my_job.yaml: `model.lora.target_modules` [q_prj] matches no module of the model "
        f"(LlamaForCausalLM at {tmp_path / 'model'}): `q_prj` (did you mean `q_proj`?); write"
    )
    fixed = adapted(attach_lora(loaded.model, LoraSpec(target_modules=("q_proj",)), seed=0))
    assert fixed == [f"model.layers.{i}.self_attn.q_proj" for i in range(2)]  # unchanged by it


@pytest.mark.parametrize("name", ["causal_lm", "llava"])
def test_a_list_with_some_misspelt_entries_is_refused_entry_by_entry(
    config_only: dict[str, Path], name: str
) -> None:
    """peft refuses a list only when none of its entries match; one with a good entry trains
    that one alone. Each entry that matches no module is refused, with its did-you-mean."""
    job_file = config_only[name]
    message = refusal(job_file, "model.lora.target_modules=[q_proj, k_prj, vv_proj]")
    assert message.startswith(
        f"{job_file}: `model.lora.target_modules` [q_proj, k_prj, vv_proj]: "
        "`k_prj` (did you mean `k_proj`?), `vv_proj` (did you mean `v_proj`?) match no module "
        "of the model ("
    )
    assert "correct or drop them" in message and "`q_proj`:" not in message
    assert "its layer names: " in message and "o_proj" in message.split("layer names: ")[1]
    message = refusal(job_file, "model.lora.target_modules=[q_proj, v_prj]")
    assert "`v_prj` (did you mean `v_proj`?) matches no module" in message
    assert "correct or drop it " in message


def test_the_did_you_mean_ignores_case(config_only: dict[str, Path]) -> None:
    job_file = config_only["causal_lm"]
    message = refusal(job_file, "model.lora.target_modules=[Q_PROJ]")
    assert "[Q_PROJ] matches no module of the model" in message
    assert "`Q_PROJ` (did you mean `q_proj`?)" in message
    message = refusal(job_file, "model.lora.target_modules=[q_proj, V_Proj]")
    assert "`V_Proj` (did you mean `v_proj`?) matches no module" in message
    assert "(did you mean `language-linear`?)" in refusal(
        job_file, "model.lora.target_modules=Language-Linear"
    )


def test_entries_match_as_peft_matches_them(config_only: dict[str, Path]) -> None:
    """A full module name, or its end after a `.`, matches; an end inside a name part does
    not (`_proj`). The rule is peft's own (`check_target_module_exists`), entry by entry."""
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    from ablate.trial.lora_targets import unmatched_entries

    job_file = config_only["causal_lm"]
    model = meta_model(ModelSpec(path="model"), job_file.parent)
    keys = [key for key, _ in model.named_modules() if key]
    entries = [
        "q_proj",
        "self_attn.q_proj",
        "model.layers.0.self_attn.q_proj",
        "layers.1.mlp",
        "_proj",
        "elf_attn.q_proj",
        "proj",
        "0.self_attn.q_proj",
        "model",
        "lm_head",
        "q_proj.weight",
    ]
    for entry in entries:
        config = LoraConfig(target_modules=[entry])
        by_peft = any(check_target_module_exists(config, key) for key in keys)
        assert (entry not in unmatched_entries(model, [entry])) == by_peft, entry
    check_lora_targets(
        read_job(job_file, ["model.lora.target_modules=[self_attn.q_proj, mlp.down_proj]"])
    )
    message = refusal(job_file, "model.lora.target_modules=[self_attn.q_proj, elf_attn.v_proj]")
    assert "`elf_attn.v_proj` (did you mean `self_attn.v_proj`?) matches no module" in message
    assert "`_proj`" in refusal(job_file, "model.lora.target_modules=[q_proj, _proj]")


def test_each_model_of_a_models_job_is_checked_entry_by_entry(
    config_only: dict[str, Path], tmp_path: Path
) -> None:
    """The review's `models[1]` (tiny Llava) with `[q_proj, v_prj]`: refused, not trained."""
    causal = config_only["causal_lm"].parent / "model"
    llava = config_only["llava"].parent / "model"
    job_file = tmp_path / "models.yaml"
    entries = [
        {"name": "small", "path": str(causal), "lora": {"target_modules": ["q_proj", "v_proj"]}},
        {"name": "llava", "path": str(llava), "lora": {"target_modules": ["q_proj", "v_prj"]}},
    ]
    job_file.write_text(JOB_YAML.replace("model: {path: model}", f"models: {entries}"))
    message = refusal(job_file)
    assert message.startswith(
        f"{job_file}: `models[1].lora.target_modules` [q_proj, v_prj]: `v_prj` (did you mean "
        "`v_proj`?) matches no module of the model (LlavaForConditionalGeneration at "
    )


def test_the_trial_refuses_a_partly_misspelt_list_too(tmp_path: Path) -> None:
    """The second line of defence (`attach_lora`, where the trial applies peft) refuses the
    same entries with the same line, on the loaded model."""
    loaded = load_model(TINY_FAMILIES.get("causal_lm")(tmp_path / "model", CORPUS), device="cpu")
    lora = LoraSpec(r=4, alpha=8, target_modules=("q_proj", "k_prj", "vv_proj"))
    with pytest.raises(UserError) as err:
        attach_lora(loaded.model, lora, seed=0, source="my_job.yaml")
    assert str(err.value).startswith(
        "my_job.yaml: `model.lora.target_modules` [q_proj, k_prj, vv_proj]: `k_prj` (did you "
        "mean `k_proj`?), `vv_proj` (did you mean `v_proj`?) match no module of the model "
        f"(LlamaForCausalLM at {tmp_path / 'model'}), and peft would adapt the other entries only"
    )
    assert not any(hasattr(m, "lora_A") for m in loaded.model.modules())  # nothing attached


def test_a_local_model_folder_that_is_not_there_is_refused_under_its_own_key(
    config_only: dict[str, Path], tmp_path: Path
) -> None:
    """Review j: a `models:` entry whose folder was missing failed every one of its trials, the
    message naming `model.path`. A path no hub id can be (`../x`, `/x`, `a/b/c`) is checked
    before anything is enqueued; `org/name` is left to the trial (a hub id)."""
    from ablate.trial.lora_targets import check_model_paths

    model = config_only["causal_lm"].parent / "model"
    job_file = tmp_path / "models.yaml"
    for ghost in ("../models/does-not-exist", str(tmp_path / "gone"), "a/b/c"):
        entries = [{"name": "small", "path": str(model)}, {"name": "ghost", "path": ghost}]
        job_file.write_text(JOB_YAML.replace("model: {path: model}", f"models: {entries}"))
        with pytest.raises(UserError) as err:
            check_model_paths(read_job(job_file))
        assert f"`models[1].path` {ghost}: no such model folder" in str(err.value)
    entries = [{"name": "small", "path": str(model)}, {"name": "hub", "path": "org/no-model"}]
    job_file.write_text(JOB_YAML.replace("model: {path: model}", f"models: {entries}"))
    check_model_paths(read_job(job_file))  # a hub id: the trial loads it and says
