"""Idefics3 (SmolVLM family: SigLIP-style tower, pixel-shuffle connector, Llama), built offline
from configs: encoding through its own processor (image splitting into tagged tiles) and chat
template, padded and packed training, and generation."""

from __future__ import annotations

from typing import Any

from PIL import Image

from ablate.trial.encode import IGNORE, DialogueEncoder, PixelCache, collate

END = "<end_of_utterance>\n"


def test_model_is_tiny_and_loads_as_idefics3(idefics3: Any) -> None:
    assert type(idefics3.model).__name__ == "Idefics3ForConditionalGeneration"
    assert type(idefics3.processor).__name__ == "Idefics3Processor"
    # the PIL backend: the default one needs torchvision
    assert type(idefics3.processor.image_processor).__name__ == "Idefics3ImageProcessorPil"
    assert idefics3.kind == "image-text-to-text"
    assert sum(p.numel() for p in idefics3.model.parameters()) < 1_000_000
    # 4 x 4 patches per 56-pixel tile, pixel-shuffled 2 x 2: the processor's count is the model's
    assert idefics3.processor.image_seq_len == 4 == idefics3.model.model.image_seq_len
    assert idefics3.tokenizer.eos_token == "<end_of_utterance>"


def test_labels_and_tiled_image_tokens_follow_the_processor(
    dialogue: list[dict[str, Any]], idefics3: Any, tile_images: dict
) -> None:
    processor, tok = idefics3.processor, idefics3.tokenizer
    image_id = tok.convert_tokens_to_ids("<image>")
    encoder = DialogueEncoder(processor)
    assert encoder.structured  # the real template takes [{type: image}, {type: text}] parts
    paths = [tile_images["square"], tile_images["wide"]]
    enc = encoder.encode(dialogue, paths)
    # "Assistant:" is the generation prompt; the answer follows a space, and the turn ends with
    # <end_of_utterance> and the template's newline
    for (start, stop), answer in zip(enc.turn_spans, ["red", "blue", "red"], strict=True):
        assert tok.decode(enc.input_ids[start:stop]) == f" {answer}{END}"
        assert tok.decode(enc.input_ids[:start]).endswith("<end_of_utterance>\nAssistant:")
        assert enc.labels[start:stop] == enc.input_ids[start:stop]
    inside = {i for s, e in enc.turn_spans for i in range(s, e)}
    assert all(lab == IGNORE for i, lab in enumerate(enc.labels) if i not in inside)
    assert enc.turn_flags == [False, True, True]

    # each image expands exactly as the processor expands it alone: its tile grid, each tile
    # tagged <row_i_col_j>, then the global view
    alone = []
    for path in paths:
        out = processor(text=["<image>"], images=[Image.open(path).convert("RGB")])
        alone.append([int(x) for x in out["input_ids"][0]])
    assert [ids.count(image_id) for ids in alone] == [(2 * 2 + 1) * 4, (1 * 2 + 1) * 4]
    tags = [[t for t in tok.convert_ids_to_tokens(ids) if t.startswith("<row_")] for ids in alone]
    assert tags == [
        ["<row_1_col_1>", "<row_1_col_2>", "<row_2_col_1>", "<row_2_col_2>"],
        ["<row_1_col_1>", "<row_1_col_2>"],
    ]
    for start, ids in zip(enc.image_starts, alone, strict=True):
        assert enc.input_ids[start : start + len(ids)] == ids
        assert tok.convert_ids_to_tokens(ids[0]) == "<fake_token_around_image>"
    assert enc.input_ids.count(image_id) == 20 + 12
    # history turns are context only
    hist = encoder.encode(dialogue, paths, history=2)
    assert hist.input_ids == enc.input_ids
    assert [tok.decode(hist.input_ids[s:e]) for s, e in hist.turn_spans] == [
        f" blue{END}",
        f" red{END}",
    ]


def test_padded_batch_pixel_layout(
    dialogue: list[dict[str, Any]], idefics3: Any, tile_images: dict
) -> None:
    encoder = DialogueEncoder(idefics3.processor)
    pixels = PixelCache(idefics3.processor.image_processor)
    items = [
        encoder.encode(dialogue, [tile_images["square"], tile_images["wide"]]),
        encoder.encode(dialogue[:2], [tile_images["wide"]]),
    ]
    batch = collate(items, pixels, idefics3.tokenizer.pad_token_id)
    # per image: its tiles (grid + global view), zero-padded to the most tiles; the model drops
    # all-zero tiles, so each image keeps exactly its own
    assert batch["pixel_values"].shape == (3, 5, 3, 56, 56)
    assert batch["pixel_attention_mask"].shape == (3, 5, 56, 56)
    assert [int(m.flatten(1).any(-1).sum()) for m in batch["pixel_attention_mask"]] == [5, 3, 3]
    assert not batch["pixel_values"][1:, 3:].any()
