"""Encoding through each model's own processor and chat template, checked token by token:
a Qwen2-VL-style model (image-token count depends on the image size) and a ChatML text-only
causal LM, both built offline from configs (the Llava case is in test_trial.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from ablate.testing import image_text_families
from ablate.trial.align import align
from ablate.trial.encode import IGNORE, DialogueEncoder, EncodeError, PixelCache, collate


@pytest.fixture(scope="module")
def chatml(tiny_models: Callable[[str], Any]) -> Any:
    return tiny_models("causal_lm")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("images")
    out = {}
    # 56x56 -> 2x2 merged tokens = 4; 112x56 -> 4x2 = 8 (14-pixel patches merged 2x2)
    for name, size, color in [("small", (56, 56), "red"), ("wide", (112, 56), "blue")]:
        Image.new("RGB", size, color).save(root / f"{name}.png")
        out[name] = str(root / f"{name}.png")
    (root / "broken.png").write_bytes(b"not a png")
    out["broken"] = str(root / "broken.png")
    return out


def _check_labels(enc: Any, tok: Any, answers: list[str], end: str) -> None:
    assert len(enc.turn_spans) == len(answers)
    for (start, stop), answer in zip(enc.turn_spans, answers, strict=True):
        assert tok.decode(enc.input_ids[start:stop]) == f"{answer}{end}"
        assert enc.labels[start:stop] == enc.input_ids[start:stop]
    inside = {i for s, e in enc.turn_spans for i in range(s, e)}
    assert all(lab == IGNORE for i, lab in enumerate(enc.labels) if i not in inside)


def test_qwen2vl_labels_and_image_tokens_follow_the_processor(
    dialogue: list[dict[str, Any]], qwen: Any, images: dict
) -> None:
    tok = qwen.tokenizer
    encoder = DialogueEncoder(qwen.processor)
    assert encoder.structured  # the real template takes [{type: image}, {type: text}] parts
    enc = encoder.encode(dialogue, [images["small"], images["wide"]])
    _check_labels(enc, tok, ["red", "blue", "red"], "<|im_end|>\n")
    pad = tok.convert_tokens_to_ids("<|image_pad|>")
    assert enc.input_ids.count(pad) == 4 + 8  # per image: its own count, set by its size
    # the images' token runs start where the processor put them
    assert [enc.input_ids[s] for s in enc.image_starts] == [pad, pad]
    assert enc.input_ids[enc.image_starts[1] : enc.image_starts[1] + 8] == [pad] * 8
    text = tok.decode(enc.input_ids)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert enc.turn_flags == [False, True, True]
    assert enc.token_types is not None and sum(enc.token_types) == 12
    # history turns are context only: no labels on them
    hist = encoder.encode(dialogue, [images["small"], images["wide"]], history=2)
    _check_labels(hist, tok, ["blue", "red"], "<|im_end|>\n")
    assert hist.input_ids == enc.input_ids


def test_qwen2vl_batch_carries_each_images_grid(
    dialogue: list[dict[str, Any]], qwen: Any, images: dict
) -> None:
    encoder = DialogueEncoder(qwen.processor)
    items = [
        encoder.encode(dialogue, [images["small"], images["wide"]]),
        encoder.encode(dialogue[:2], [images["wide"]]),
    ]
    batch = collate(items, PixelCache(qwen.processor.image_processor), qwen.tokenizer.pad_token_id)
    assert batch["image_grid_thw"].tolist() == [[1, 4, 4], [1, 4, 8], [1, 4, 8]]


@pytest.mark.parametrize("name", image_text_families())
def test_padded_batches_train_and_generate(
    name: str, tiny_models: Callable[[str], Any], world_examples: Any
) -> None:
    """A padded batch gives a finite loss; greedy generation answers every assistant turn, and
    longer answers extend shorter ones (the images feed the first step, the cache the rest)."""
    import torch

    from ablate.trial.evaluate import generate_answers

    loaded = tiny_models(name)
    items = world_examples(loaded, 4)
    pixels = PixelCache(loaded.processor.image_processor)
    with torch.no_grad():
        loss = loaded.model(**collate(items, pixels, loaded.tokenizer.pad_token_id)).loss
    assert torch.isfinite(loss) and loss > 0
    turns = [len(e.turn_spans) for e in items]
    short, longer = (
        generate_answers(loaded.model, items, pixels, loaded.tokenizer, "cpu", batch_size=4,
                         max_new_tokens=n)
        for n in (1, 3)
    )  # fmt: skip
    assert [len(a) for a in short] == [len(a) for a in longer] == turns
    pairs = [(a, b) for x, y in zip(short, longer, strict=True) for a, b in zip(x, y, strict=True)]
    assert all(isinstance(b, str) and b.startswith(a) for a, b in pairs)


@pytest.mark.parametrize("name", image_text_families())
def test_generation_prompts_see_their_own_images(
    name: str, tiny_models: Callable[[str], Any], world_examples: Any
) -> None:
    """Generation starts from left-padded prompts, each holding the images before its turn:
    the logits at the end of each prompt equal the full padded forward's at that position."""
    import torch

    from ablate.trial.encode import prefix

    loaded = tiny_models(name)
    items = world_examples(loaded, 4)
    pixels = PixelCache(loaded.processor.image_processor)
    pad_id = loaded.tokenizer.pad_token_id
    prompts = [prefix(e, start) for e in items for start, _ in e.turn_spans]
    assert any(0 < len(p.images) < len(e.images) for e in items for p in prompts)
    where = [(row, start) for row, e in enumerate(items) for start, _ in e.turn_spans]
    full = collate(items, pixels, pad_id)
    left = collate(prompts, pixels, pad_id, left=True)
    left.pop("labels")
    positions = (left["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # as generate numbers them
    if name == "qwen2vl":  # M-RoPE: generate numbers the prompts with the model's own 3-D index
        positions = None
    with torch.no_grad():
        logits = loaded.model(**full).logits
        last = loaded.model(**left, position_ids=positions).logits[:, -1]
    expected = torch.stack([logits[row, start - 1] for row, start in where])
    torch.testing.assert_close(last, expected, atol=1e-4, rtol=1e-4)


def test_chatml_text_only_model(dialogue: list[dict[str, Any]], chatml: Any) -> None:
    assert chatml.kind == "causal-lm"
    encoder = DialogueEncoder(chatml.processor)
    text_only = [
        {"from": "human", "value": "List: red, blue. How many?"},
        {"from": "gpt", "value": "two"},
        {"from": "human", "value": "Which came first?"},
        {"from": "gpt", "value": "red"},
    ]
    enc = encoder.encode(text_only, [])
    _check_labels(enc, chatml.tokenizer, ["two", "red"], "<|im_end|>\n")
    with pytest.raises(EncodeError) as err:
        encoder.encode(dialogue, ["a.png", "b.png"])
    assert err.value.kind == "images_for_text_model"


def test_a_system_turn_is_context_never_a_target(chatml: Any) -> None:
    """A pool's leading system turn reaches the template as the system message and no label
    falls on it (the real ChatML template renders it in place of its default)."""
    encoder = DialogueEncoder(chatml.processor)
    dialogue = [
        {"from": "system", "value": "Answer in one word."},
        {"from": "human", "value": "List: red, blue. How many?"},
        {"from": "gpt", "value": "two"},
    ]
    enc = encoder.encode(dialogue, [])
    _check_labels(enc, chatml.tokenizer, ["two"], "<|im_end|>\n")
    text = chatml.tokenizer.decode(enc.input_ids)
    assert text.startswith("<|im_start|>system\nAnswer in one word.<|im_end|>\n")


def test_bad_dialogues_raise_a_counted_kind(
    dialogue: list[dict[str, Any]], qwen: Any, images: dict
) -> None:
    encoder = DialogueEncoder(qwen.processor)
    with pytest.raises(EncodeError) as err:
        encoder.encode(dialogue, [images["small"]])  # two placeholders, one image
    assert err.value.kind == "image_count" and "2 <image> placeholder(s) but 1 image(s)" in str(
        err.value
    )
    with pytest.raises(EncodeError) as err:
        encoder.encode(dialogue, [images["small"], images["broken"]])
    assert err.value.kind == "unreadable_image" and "broken.png" in str(err.value)


def test_truncation_keeps_whole_turns_and_their_images(
    dialogue: list[dict[str, Any]], qwen: Any, images: dict
) -> None:
    full = DialogueEncoder(qwen.processor).encode(dialogue, [images["small"], images["wide"]])
    limit = full.turn_spans[0][1] + 3  # the first turn fits, the second does not
    cut = DialogueEncoder(qwen.processor, max_length=limit).encode(
        dialogue, [images["small"], images["wide"]]
    )
    assert cut.truncated_turns == 2 and len(cut.turn_spans) == 1
    assert cut.input_ids == full.input_ids[: full.turn_spans[0][1]]
    assert cut.images == [images["small"]]  # the second image sits in a dropped turn


def test_a_model_without_chat_template_is_refused(
    tiny_world: dict[str, Path], world_texts: list[str]
) -> None:
    from ablate.errors import UserError
    from ablate.models import load_model
    from ablate.testing import build_tiny_causal_lm

    out = build_tiny_causal_lm(tiny_world["root"] / "no-template", world_texts[:50])
    (out / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="has no chat template"):
        load_model(out)


def test_align_maps_text_chunks_around_expansions() -> None:
    # placeholder 9 expands to 3 tokens (or 1); text tokens keep their order
    assert align([1, 9, 2, 3, 9, 4], [1, 7, 7, 7, 2, 3, 7, 4], 9) == [0, -1, 4, 5, -1, 7]
    assert align([1, 9, 9, 4], [1, 7, 8, 7, 8, 4], 9) == [0, -1, -1, 5]
    assert align([1, 9, 2], [1, 7, 3], 9) is None  # text changed: refuse, do not guess


def test_a_16_bit_grey_image_keeps_its_shades(tmp_path: Path) -> None:
    """Pillow's RGB conversion clips 16-bit grey at 255: a plain convert would give white."""
    import numpy as np

    from ablate.trial.encode import load_image

    ramp = np.linspace(0, 65535, 256, dtype=np.uint16).reshape(16, 16)
    path = tmp_path / "grey16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = np.asarray(load_image(str(path)))
    assert rgb.shape == (16, 16, 3) and rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255
    assert len(np.unique(rgb[..., 0])) > 200  # the ramp's shades, not one white


def test_a_template_that_writes_text_after_every_answer_is_refused(chatml: Any) -> None:
    """llava-hf's LLaVA-NeXT-Mistral template ends each answer with the literal `<\\s>` (a typo
    for `</s>`): trained with the answers, a model learns to answer `Red.<\\s>`, which the
    `normalized` scorer reads as `reds`. Whitespace and the tokenizer's own tokens pass."""
    import copy

    tok = copy.deepcopy(chatml.tokenizer)
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
        "{% else %} {{ m['content'] }}<\\s> {% endif %}{% endfor %}"
    )
    with pytest.raises(EncodeError) as err:
        DialogueEncoder(tok)
    assert err.value.kind == "template_tail"
    assert "renders '<\\\\s> ' after every answer, and '<\\\\s>' in it is neither" in str(err.value)
    assert "a `chat_template.jinja` in its folder" in str(err.value)
    tok.chat_template = tok.chat_template.replace("<\\s> ", f"{tok.eos_token}\n")
    assert DialogueEncoder(tok).stop_ids == [tok.eos_token_id]
    # a marker that is one token of the base vocabulary, never listed as added, passes
    word = next(w for w in ("question", "answer", "image", "the")
                if len(tok(w, add_special_tokens=False)["input_ids"]) == 1)  # fmt: skip
    tok.chat_template = tok.chat_template.replace(f"{tok.eos_token}\n", f"{word}\n")
    DialogueEncoder(tok)
