"""Model folders as published or as damaged: the chat template is found where transformers
finds it (a processor's template before a text-only tokenizer template), and a folder that
cannot give a working model is one line naming it and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ablate.config import ModelSpec
from ablate.errors import UserError
from ablate.models import chat_template_of, load_model
from ablate.testing import TINY_FAMILIES
from ablate.trial.encode import DialogueEncoder

CORPUS = ["What color is it? red blue green", "user assistant system image"] * 20
#: The base LM's text-only ChatML template, which llava-hf's folders keep in
#: tokenizer_config.json next to the processor's own in chat_template.json.
TEXT_ONLY = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {
        name: TINY_FAMILIES.get(name)(root / name, CORPUS)
        for name in ("onevision", "qwen2vl", "causal_lm")
    }


def published(folder: Path, out: Path, tokenizer_template: str | None = None) -> Path:
    """`folder` laid out as the hub publishes it: the processor's template in
    chat_template.json, optionally a text-only template in tokenizer_config.json."""
    shutil.copytree(folder, out)
    template = (out / "chat_template.jinja").read_text()
    (out / "chat_template.jinja").unlink()
    (out / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    config = json.loads((out / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    if tokenizer_template:
        config["chat_template"] = tokenizer_template
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    return out


@pytest.mark.parametrize("name", ["onevision", "qwen2vl"])
def test_the_processors_chat_template_json_is_found_and_beats_the_tokenizers(
    built: dict[str, Path], tmp_path: Path, name: str
) -> None:
    template = (built[name] / "chat_template.jinja").read_text()
    folder = published(built[name], tmp_path / name, tokenizer_template=TEXT_ONLY)
    loaded = load_model(folder, device="cpu")
    assert chat_template_of(loaded.processor) == template
    if name == "onevision":
        messages = [
            {"role": "user", "content": "<image>\nWhat color?"},
            {"role": "assistant", "content": "red"},
        ]
        assert DialogueEncoder(loaded.processor).render(messages) == (
            "<|im_start|>user <image>\nWhat color?<|im_end|><|im_start|>assistant \nred<|im_end|>"
        )


def test_a_folder_without_any_chat_template_names_the_three_places(
    built: dict[str, Path], tmp_path: Path
) -> None:
    folder = published(built["qwen2vl"], tmp_path / "none")
    (folder / "chat_template.json").unlink()
    with pytest.raises(UserError) as err:
        load_model(folder, device="cpu")
    assert str(err.value).startswith(
        f"model {folder} has no chat template (looked for chat_template.jinja, "
        "chat_template.json and `chat_template` in tokenizer_config.json)"
    )


def test_damaged_weights_are_named_in_one_line(built: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "damaged"
    shutil.copytree(built["qwen2vl"], folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(UserError) as err:
        load_model(folder, device="cpu")
    assert str(err.value) == (
        f"model {folder}: model.safetensors is damaged (Error while deserializing header: "
        "invalid header length); download it again"
    )


def test_an_image_model_loaded_as_causal_lm_says_which_kind_to_set(
    built: dict[str, Path],
) -> None:
    folder = built["qwen2vl"]
    with pytest.raises(UserError) as err:
        load_model(folder, device="cpu", spec=ModelSpec(kind="causal-lm"))
    assert str(err.value) == (
        f"model {folder}: `model.kind: causal-lm`, but the folder holds a Qwen2VLConfig "
        "(image-text-to-text model), which transformers cannot load as causal-lm: set "
        "`model.kind: auto` (or image-text-to-text)"
    )


@pytest.mark.parametrize("name", ["qwen2vl", "causal_lm"])
def test_a_folder_without_tokenizer_files_is_refused_not_loaded_empty(
    built: dict[str, Path], tmp_path: Path, name: str
) -> None:
    folder = tmp_path / name
    shutil.copytree(built[name], folder)
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer_config.json").unlink()
    with pytest.raises(UserError) as err:
        load_model(folder, device="cpu")
    message = str(err.value)
    assert message.startswith(f"model {folder}: ") and "\n" not in message
    assert "tokenizer.json" in message
