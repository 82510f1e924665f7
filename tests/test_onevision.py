"""LLaVA-OneVision (SigLIP + Qwen2, AnyRes tiling), built offline from configs: encoding through
its own processor and chat template, padded and packed training, and generation."""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image

from ablate.trial.encode import IGNORE, DialogueEncoder, Encoded, PixelCache, collate, prefix

DIALOGUE = [
    {"from": "human", "value": "<image>\nWhat color is the background?"},
    {"from": "gpt", "value": "red"},
    {"from": "human", "value": "And this one? <image>"},
    {"from": "gpt", "value": "blue", "contextual": True},
    {"from": "human", "value": "Which did you name first?"},
    {"from": "gpt", "value": "red", "contextual": True},
]
END = "<|im_end|>"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("onevision-images")
    out = {}
    # PIL sizes are (width, height): one base tile, or a 1 x 2 grid of 28-pixel tiles
    for name, size, color in [("square", (28, 28), "red"), ("wide", (56, 28), "blue")]:
        Image.new("RGB", size, color).save(root / f"{name}.png")
        out[name] = str(root / f"{name}.png")
    return out


def _image_runs(enc: Encoded, image_id: int) -> list[int]:
    """The length of each image's run of image tokens, from where it starts."""
    runs = []
    for start in enc.image_starts:
        end = start
        while end < len(enc.input_ids) and enc.input_ids[end] == image_id:
            end += 1
        runs.append(end - start)
    return runs


def test_model_is_tiny_and_loads_as_onevision(onevision: Any) -> None:
    assert type(onevision.model).__name__ == "LlavaOnevisionForConditionalGeneration"
    assert onevision.kind == "image-text-to-text"
    assert sum(p.numel() for p in onevision.model.parameters()) < 1_000_000
    # the processor's own settings survive the load without a video processor
    assert onevision.processor.num_image_tokens == 4
    assert onevision.processor.vision_feature_select_strategy == "full"


def test_labels_and_anyres_image_tokens_follow_the_processor(onevision: Any, images: dict) -> None:
    processor, tok = onevision.processor, onevision.tokenizer
    image_id = tok.convert_tokens_to_ids("<image>")
    encoder = DialogueEncoder(processor)
    assert encoder.structured  # the real template takes [{type: image}, {type: text}] parts
    paths = [images["square"], images["wide"]]
    enc = encoder.encode(DIALOGUE, paths)
    # the template puts "\n" before each text part, and the turn ends with <|im_end|>
    for (start, stop), answer in zip(enc.turn_spans, ["red", "blue", "red"], strict=True):
        assert tok.decode(enc.input_ids[start:stop]) == f"\n{answer}{END}"
        assert enc.labels[start:stop] == enc.input_ids[start:stop]
    inside = {i for s, e in enc.turn_spans for i in range(s, e)}
    assert all(lab == IGNORE for i, lab in enumerate(enc.labels) if i not in inside)
    assert enc.turn_flags == [False, True, True]

    # each image takes what the processor gives it alone: base view + unpadded tiles + newlines
    alone = []
    for path in paths:
        out = processor(text=["<image>"], images=[Image.open(path).convert("RGB")])
        alone.append(list(out["input_ids"][0]).count(image_id))
    assert alone == [4 + 4 + 2, 4 + 8 + 2]
    assert _image_runs(enc, image_id) == alone
    assert enc.input_ids.count(image_id) == sum(alone)
    # history turns are context only
    hist = encoder.encode(DIALOGUE, paths, history=2)
    assert hist.input_ids == enc.input_ids
    assert [tok.decode(hist.input_ids[s:e]) for s, e in hist.turn_spans] == [
        f"\nblue{END}",
        f"\nred{END}",
    ]


def test_padded_batch_trains_and_generates(onevision: Any, images: dict) -> None:
    import torch

    from ablate.trial.evaluate import generate_answers

    encoder = DialogueEncoder(onevision.processor)
    pixels = PixelCache(onevision.processor.image_processor)
    items = [
        encoder.encode(DIALOGUE, [images["square"], images["wide"]]),
        encoder.encode(DIALOGUE[:2], [images["wide"]]),
    ]
    batch = collate(items, pixels, onevision.tokenizer.pad_token_id)
    # per image: its size and patch count (base + tiles), zero-padded to the widest
    assert batch["image_sizes"].tolist() == [[28, 28], [28, 56], [28, 56]]
    assert batch["pixel_values"].shape == (3, 3, 3, 28, 28)
    assert batch["batch_num_images"].tolist() == [1, 1, 1]  # each tiled as a single image
    with torch.no_grad():
        out = onevision.model(**batch)
    assert torch.isfinite(out.loss) and out.loss > 0
    answers = generate_answers(
        onevision.model,
        items,
        pixels,
        onevision.tokenizer,
        "cpu",
        batch_size=4,
        max_new_tokens=1,
    )
    assert [len(a) for a in answers] == [3, 1]
    # the left-padded prompts generation starts from get their own images: the logits at the
    # end of each prompt equal the full padded forward's at that position
    prompts = [prefix(e, start) for e in items for start, _ in e.turn_spans]
    where = [(row, start) for row, e in enumerate(items) for start, _ in e.turn_spans]
    left = collate(prompts, pixels, onevision.tokenizer.pad_token_id, left=True)
    left.pop("labels")
    positions = (left["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # as generate numbers them
    with torch.no_grad():
        last = onevision.model(**left, position_ids=positions).logits[:, -1]
    expected = torch.stack([out.logits[row, start - 1] for row, start in where])
    torch.testing.assert_close(last, expected, atol=1e-4, rtol=1e-4)
    tok = onevision.tokenizer
    # several steps: the images feed the first step only, the cache carries them after
    longer = generate_answers(
        onevision.model, items, pixels, tok, "cpu", batch_size=4, max_new_tokens=3
    )
    assert [len(a) for a in longer] == [3, 1]
    flat = [(a, b) for x, y in zip(answers, longer, strict=True) for a, b in zip(x, y, strict=True)]
    assert all(b.startswith(a) for a, b in flat)


def test_packed_rows_equal_the_padded_batch_and_each_dialogue_alone(
    onevision: Any, world_examples: Any
) -> None:
    """1-D RoPE: no multimodal numbering; images in order across the row, and each dialogue
    attends only to itself."""
    import torch

    from ablate.trial.packing import (
        collate_packed,
        labelled_loss,
        multimodal_rope,
        packed_attention,
    )

    examples = world_examples(onevision, 6)
    assert sum(len(e.images) for e in examples) >= 4
    model, pad_id = onevision.model, onevision.tokenizer.pad_token_id
    pixels = PixelCache(onevision.processor.image_processor)
    assert multimodal_rope(model) is None
    row = collate_packed(examples, pixels, multimodal_rope(model))
    assert row["position_ids"].shape == (1, sum(len(e.input_ids) for e in examples))
    with torch.no_grad():
        padded_loss = model(**collate(examples, pixels, pad_id)).loss
        alone = []
        for e in examples:
            one = collate([e], pixels, pad_id)
            one.pop("labels")
            alone.append(model(**one).logits[0])
        with packed_attention(model):
            packed = model(**row)
            head_on_labels = labelled_loss(model, dict(row))
    assert model.config.text_config._attn_implementation == "sdpa"
    torch.testing.assert_close(packed.logits[0], torch.cat(alone), atol=1e-4, rtol=1e-4)
    assert float(packed.loss) == pytest.approx(float(padded_loss), rel=1e-5)
    assert float(head_on_labels) == pytest.approx(float(padded_loss), rel=1e-5)
