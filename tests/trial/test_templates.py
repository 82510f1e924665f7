"""Published chat templates the growing-prefix labelling cannot take on trust, on tiny models
built offline: labels stay on each answer and its end-of-turn (Qwen3's think block on the last
answer only), a template whose turns cannot be placed is refused, LLaVA-1.5's template (no
end-of-turn token) gets the eos after every answer and no doubled newline after an image,
generation stops at the template's end-of-turn, and images are read upright."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from ablate.models import load_model
from ablate.testing import TINY_FAMILIES
from ablate.trial.encode import IGNORE, DialogueEncoder, EncodeError, load_image
from ablate.world import build_tiny_model

CORPUS = [
    "What color is the sky? blue",
    "And grass? green",
    "And snow? white",
    "What color is it? And the shape? circle",
    "user assistant system model think",
] * 20

#: Qwen3's published template, cut to what matters here: the empty think block goes only on
#: an answer after the last user turn, so a turn renders differently once later turns follow.
QWEN3_LIKE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' and loop.last %}<think>\n\n</think>\n\n{% endif %}"
    "{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
#: Mistral's shape: the system prompt in the last user turn, and no assistant header at all.
MISTRAL_LIKE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}[INST] "
    "{% if loop.revindex <= 2 %}Be brief. {% endif %}{{ m['content'] }} [/INST]"
    "{% else %}{{ m['content'] }}</s>{% endif %}{% endfor %}"
)
#: llava-hf/llava-1.5-7b-hf's chat_template.json: USER:/ASSISTANT:, no end-of-turn token, its
#: own newline after each image.
LLAVA15 = (
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
DIALOGUE = [
    {"from": "human", "value": "What color is the sky?"},
    {"from": "gpt", "value": "blue"},
    {"from": "human", "value": "And grass?"},
    {"from": "gpt", "value": "green"},
    {"from": "human", "value": "And snow?"},
    {"from": "gpt", "value": "white"},
]


@pytest.fixture(scope="module")
def causal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return TINY_FAMILIES.get("causal_lm")(tmp_path_factory.mktemp("causal") / "m", CORPUS)


def with_template(folder: Path, out: Path, template: str) -> Path:
    shutil.copytree(folder, out)
    (out / "chat_template.jinja").write_text(template)
    return out


def labelled_runs(enc: Any, tokenizer: Any) -> list[str]:
    """The decoded runs of labelled tokens, in order."""
    runs: list[list[int]] = []
    last = IGNORE
    for label in enc.labels:
        if label != IGNORE:
            if last == IGNORE:
                runs.append([])
            runs[-1].append(label)
        last = label
    return [tokenizer.decode(r) for r in runs]


def test_a_template_that_renders_the_last_answer_differently_labels_only_the_answers(
    causal: Path, tmp_path: Path
) -> None:
    loaded = load_model(with_template(causal, tmp_path / "qwen3", QWEN3_LIKE), device="cpu")
    enc = DialogueEncoder(loaded.processor).encode(DIALOGUE, [])
    # never the next user turn (the prefix lengths would run 19 characters into it)
    assert labelled_runs(enc, loaded.tokenizer) == [
        "blue<|im_end|>\n",
        "green<|im_end|>\n",
        "<think>\n\n</think>\n\nwhite<|im_end|>\n",
    ]
    assert enc.answers == ["blue", "green", "white"]


def test_a_template_whose_turns_cannot_be_placed_is_refused_in_one_line(
    causal: Path, tmp_path: Path
) -> None:
    loaded = load_model(with_template(causal, tmp_path / "mistral", MISTRAL_LIKE), device="cpu")
    with pytest.raises(EncodeError) as err:
        DialogueEncoder(loaded.processor)
    message = str(err.value)
    assert err.value.kind == "template_unstable" and "\n" not in message
    assert "renders an earlier turn differently once later turns follow" in message
    assert "give the model a chat template" in message


@pytest.fixture(scope="module")
def llava15(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny Llava with LLaVA-1.5's template in chat_template.json, as llava-hf publishes it."""
    folder = build_tiny_model(tmp_path_factory.mktemp("llava15") / "m", CORPUS)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": LLAVA15}))
    return load_model(folder, device="cpu")


def test_a_template_without_end_of_turn_gets_the_eos_after_every_answer(
    llava15: Any, tmp_path: Path
) -> None:
    Image.new("RGB", (30, 30), "blue").save(tmp_path / "blue.png")
    tok = llava15.tokenizer
    encoder = DialogueEncoder(llava15.processor)
    conversation = [
        {"from": "human", "value": "<image>\nWhat color is it?"},
        {"from": "gpt", "value": "blue"},
        {"from": "human", "value": "And the shape?"},
        {"from": "gpt", "value": "circle"},
    ]
    enc = encoder.encode(conversation, [str(tmp_path / "blue.png")])
    eos = tok.eos_token
    assert labelled_runs(enc, tok) == [f" blue {eos}", f" circle {eos}"]
    assert encoder.stop_ids == [tok.eos_token_id]  # generation stops where training taught it
    text = tok.decode(enc.input_ids)
    assert text.endswith(f"<image>\nWhat color is it? ASSISTANT: blue {eos}USER: And the shape? "
                         f"ASSISTANT: circle {eos}")  # fmt: skip
    assert "\n\nWhat" not in text  # the template's own newline, not the layout's as well


def test_generation_stops_at_the_templates_end_of_turn(causal: Path, tmp_path: Path) -> None:
    """A model whose tokenizer eos and generation_config name only `<|endoftext|>` (the
    template ends turns with `<|im_end|>`), scripted to answer the reference and then go on
    into a next turn, as a chat model does when nothing stops it."""
    import torch

    from ablate.trial.evaluate import generate_answers

    folder = tmp_path / "base-eos"
    shutil.copytree(causal, folder)
    for name, key in [("tokenizer_config.json", "eos_token"), ("generation_config.json", None)]:
        data = json.loads((folder / name).read_text())
        if key:
            data[key] = "<|endoftext|>"
        else:
            data["eos_token_id"] = data["pad_token_id"]
        (folder / name).write_text(json.dumps(data))
    loaded = load_model(folder, device="cpu")
    tok = loaded.tokenizer
    assert tok.eos_token == "<|endoftext|>"
    encoder = DialogueEncoder(loaded.processor)
    assert encoder.stop_ids == [tok.convert_tokens_to_ids("<|im_end|>")]
    enc = encoder.encode(DIALOGUE[:2], [])
    more = "<|im_start|>user\nAnd grass?<|im_end|>\n"
    script = enc.input_ids + tok(more, add_special_tokens=False)["input_ids"]
    model = loaded.model
    model.generation_config.use_cache = False  # each step sees the whole sequence
    seen: dict[str, Any] = {}
    model.model.register_forward_pre_hook(
        lambda _m, _a, kw: seen.__setitem__("ids", kw["input_ids"]), with_kwargs=True
    )

    def head(_module: Any, _args: Any, output: Any) -> Any:
        ids = seen["ids"]
        logits = torch.full((*ids.shape, output.shape[-1]), -1e4)
        for t in range(ids.shape[1]):
            logits[:, t, script[t + 1] if t + 1 < len(script) else tok.eos_token_id] = 1e4
        return logits

    model.lm_head.register_forward_hook(head)
    args = (model, [enc], None, tok, "cpu")
    assert generate_answers(*args, max_new_tokens=12) == [["blue\nuser\nAnd grass?"]]
    assert generate_answers(*args, max_new_tokens=12, stop_ids=encoder.stop_ids) == [["blue"]]


def test_images_are_read_upright_as_their_exif_orientation_says(tmp_path: Path) -> None:
    image = Image.new("RGB", (80, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display: a phone held upright
    image.save(tmp_path / "phone.jpg", exif=exif.tobytes())
    assert load_image(str(tmp_path / "phone.jpg")).size == (20, 80)
    Image.new("I;16", (8, 4)).save(tmp_path / "grey16.png")
    assert load_image(str(tmp_path / "grey16.png")).size == (8, 4)


def test_a_template_that_moves_images_to_the_front_is_flagged(llava15: Any, tmp_path: Path) -> None:
    """llava-hf's LLaVA-1.5 template renders a turn's images first, whatever their place in its
    text: a dialogue with text before an image (`Image1: <image>`) is flagged (the sweep warns
    once, `info/images_moved_by_template` counts them); one with its images first is not."""
    from ablate.sweep.summary import left_out_note

    Image.new("RGB", (30, 30), "blue").save(tmp_path / "a.png")
    encoder = DialogueEncoder(llava15.processor)
    assert encoder.moves_images
    image = [str(tmp_path / "a.png")]
    labelled = [
        {"from": "human", "value": "Image1: <image>\nWhat is it?"},
        {"from": "gpt", "value": "x"},
    ]
    first = [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "x"}]
    assert encoder.encode(labelled, image).images_moved
    assert not encoder.encode(first, image).images_moved
    note = left_out_note({"images_moved_by_template": 3})
    assert note is not None and "in 3 training dialogue(s)" in note
