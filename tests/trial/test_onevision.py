"""LLaVA-OneVision (SigLIP + Qwen2, AnyRes tiling), built offline from configs: encoding through
its own processor and chat template, padded and packed training, and generation."""

from __future__ import annotations

from typing import Any

from PIL import Image

from ablate.trial.encode import IGNORE, DialogueEncoder, Encoded, PixelCache, collate

END = "<|im_end|>"


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


def test_labels_and_anyres_image_tokens_follow_the_processor(
    dialogue: list[dict[str, Any]], onevision: Any, tile_images: dict
) -> None:
    processor, tok = onevision.processor, onevision.tokenizer
    image_id = tok.convert_tokens_to_ids("<image>")
    encoder = DialogueEncoder(processor)
    assert encoder.structured  # the real template takes [{type: image}, {type: text}] parts
    paths = [tile_images["square"], tile_images["wide"]]
    enc = encoder.encode(dialogue, paths)
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
    hist = encoder.encode(dialogue, paths, history=2)
    assert hist.input_ids == enc.input_ids
    assert [tok.decode(hist.input_ids[s:e]) for s, e in hist.turn_spans] == [
        f"\nblue{END}",
        f"\nred{END}",
    ]


def test_padded_batch_pixel_layout(
    dialogue: list[dict[str, Any]], onevision: Any, tile_images: dict
) -> None:
    encoder = DialogueEncoder(onevision.processor)
    pixels = PixelCache(onevision.processor.image_processor)
    items = [
        encoder.encode(dialogue, [tile_images["square"], tile_images["wide"]]),
        encoder.encode(dialogue[:2], [tile_images["wide"]]),
    ]
    batch = collate(items, pixels, onevision.tokenizer.pad_token_id)
    # per image: its size and patch count (base + tiles), zero-padded to the widest
    assert batch["image_sizes"].tolist() == [[28, 28], [28, 56], [28, 56]]
    assert batch["pixel_values"].shape == (3, 3, 3, 28, 28)
    assert batch["batch_num_images"].tolist() == [1, 1, 1]  # each tiled as a single image
