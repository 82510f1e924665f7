"""Gemma3 (SigLIP tower, Gemma 3 language model, Google's chat template), built offline from
configs: the tokens of one image attend to each other both ways through the processor's
`token_type_ids`, so every batch (training, scoring, generation prompts) carries them, marking
exactly the image tokens; generation gets only what the model takes (not the image
processor's `num_crops`), so the generation scorers run; packing is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from ablate.models import load_model
from ablate.trial.encode import DialogueEncoder, PixelCache, collate

CORPUS = [
    "What color is the picture? red",
    "And this one? blue",
    "Which did you name first? red",
    "How many images are there? two",
    "user model system",
] * 20

#: google/gemma-3-4b-it's chat template (its system turn merged into the first user turn).
GEMMA3_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}"
    "{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    '{%- set first_user_prefix = "" -%}'
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    '{{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}'
    "{%- endif -%}"
    "{%- if (message['role'] == 'assistant') -%}"
    '{%- set role = "model" -%}'
    "{%- else -%}"
    "{%- set role = message['role'] -%}"
    "{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] | trim }}"
    "{%- elif message['content'] is iterable -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}"
    "{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}"
    "{{ item['text'] | trim }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- else -%}"
    '{{ raise_exception("Invalid content type") }}'
    "{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{'<start_of_turn>model\n'}}"
    "{%- endif -%}"
)
SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
IMAGE_TOKENS = {
    "boi_token": "<start_of_image>",
    "eoi_token": "<end_of_image>",
    "image_token": "<image_soft_token>",
}
DIALOGUE = [
    {"from": "human", "value": "<image>\nWhat color is the picture?"},
    {"from": "gpt", "value": "red"},
    {"from": "human", "value": "And this one? <image>"},
    {"from": "gpt", "value": "blue", "contextual": True},
]


def build_tiny_gemma3(out: Path) -> Path:
    """A random-weight Gemma3 (tiny shapes, 4 tokens per 56-pixel image) with its processor."""
    import torch
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessorPil,
        Gemma3Processor,
    )

    from ablate.testing.parts import TINY_VISION, tiny_text
    from ablate.world import train_tokenizer

    tokenizer = train_tokenizer(
        CORPUS,
        512,
        [*SPECIAL, *IMAGE_TOKENS.values()],
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
        extra_special_tokens=IMAGE_TOKENS,
    )
    ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in [*SPECIAL, *IMAGE_TOKENS.values()]}
    text = tiny_text(tokenizer, "<bos>")
    config = Gemma3Config(
        text_config={
            **text,
            "head_dim": 16,
            "sliding_window": 512,
            "eos_token_id": [ids["<eos>"], ids["<end_of_turn>"]],
        },
        vision_config={**TINY_VISION, "image_size": 56, "patch_size": 14},
        mm_tokens_per_image=4,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
    )
    torch.manual_seed(0)
    model = Gemma3ForConditionalGeneration(config)
    model.generation_config.eos_token_id = [ids["<eos>"], ids["<end_of_turn>"]]
    model.generation_config.pad_token_id = ids["<pad>"]
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(size={"height": 56, "width": 56}),
        tokenizer=tokenizer,
        chat_template=GEMMA3_TEMPLATE,
        image_seq_length=4,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def gemma3(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_model(build_tiny_gemma3(tmp_path_factory.mktemp("gemma3") / "m"), device="cpu")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("pictures")
    for name in ("red", "blue"):
        Image.new("RGB", (56, 56), name).save(root / f"{name}.png")
    return [str(root / "red.png"), str(root / "blue.png")]


def test_training_batches_mark_exactly_the_image_tokens(gemma3: Any, pictures: list[str]) -> None:
    import torch

    assert type(gemma3.model).__name__ == "Gemma3ForConditionalGeneration"
    image_id = gemma3.tokenizer.convert_tokens_to_ids("<image_soft_token>")
    encoder = DialogueEncoder(gemma3.processor)
    items = [
        encoder.encode(DIALOGUE, pictures),
        encoder.encode(DIALOGUE[:2], pictures[:1]),
        encoder.encode([{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "red"}], []),
    ]
    assert items[0].token_type_ids == [int(t == image_id) for t in items[0].input_ids]
    assert sum(items[0].token_type_ids) == 2 * 4 and items[2].token_type_ids is None
    pixels = PixelCache(gemma3.processor.image_processor)
    for left in (False, True):
        batch = collate(items, pixels, gemma3.tokenizer.pad_token_id, left=left)
        # padding and the text-only dialogue are text (0): exactly the image tokens are 1
        assert batch["token_type_ids"].tolist() == (batch["input_ids"] == image_id).long().tolist()
        assert "mm_token_type_ids" not in batch
    batch = collate(items, pixels, gemma3.tokenizer.pad_token_id)
    with torch.no_grad():
        out = gemma3.model(**batch)
        batch.pop("token_type_ids")
        causal = gemma3.model(**batch)
    assert torch.isfinite(out.loss)
    # with them an image token sees the image tokens after it: its outputs change
    images = batch["input_ids"] == image_id
    assert (out.logits[images] - causal.logits[images]).abs().max() > 1e-6


def test_generation_gets_the_image_blocks_and_not_num_crops(
    gemma3: Any, pictures: list[str]
) -> None:
    from ablate.trial.evaluate import generate_answers

    encoder = DialogueEncoder(gemma3.processor)
    pixels = PixelCache(gemma3.processor.image_processor)
    assert "num_crops" in pixels.batch(pictures)  # what generate() used to refuse
    items = [encoder.encode(DIALOGUE, pictures), encoder.encode(DIALOGUE[:2], pictures[1:])]
    seen: list[dict[str, Any]] = []
    hook = gemma3.model.model.register_forward_pre_hook(
        lambda _m, _a, kw: seen.append(kw), with_kwargs=True
    )
    try:
        answers = generate_answers(
            gemma3.model, items, pixels, gemma3.tokenizer, "cpu", max_new_tokens=3,
            stop_ids=encoder.stop_ids,
        )  # fmt: skip
    finally:
        hook.remove()
    assert [len(a) for a in answers] == [2, 1]
    assert all(isinstance(a, str) for row in answers for a in row)
    image_id = gemma3.tokenizer.convert_tokens_to_ids("<image_soft_token>")
    prefill = [kw for kw in seen if kw.get("token_type_ids") is not None]
    assert prefill and all("num_crops" not in kw for kw in seen)
    for kw in prefill:  # the prompt's image tokens, exactly
        assert kw["token_type_ids"].tolist() == (kw["input_ids"] == image_id).long().tolist()


def test_a_generation_scorer_runs_end_to_end(
    gemma3: Any, pictures: list[str], tmp_path: Path
) -> None:
    from ablate.config import LoraSpec
    from ablate.trial.scoring import score_bench
    from ablate.trial.train import attach_lora

    records = [
        {"id": "g0", "domain": "colours", "image": pictures[:1], "conversations": DIALOGUE[:2]},
        {"id": "g1", "domain": "colours", "image": pictures, "conversations": DIALOGUE},
    ]
    (tmp_path / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    spec = {"name": "g", "data": "bench.jsonl", "domain_field": "domain", "scorer": "normalized"}
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump({**spec, "max_new_tokens": 4}))
    encoder = DialogueEncoder(gemma3.processor)
    pixels = PixelCache(gemma3.processor.image_processor)
    model = attach_lora(gemma3.model, LoraSpec(r=4, alpha=8), seed=0)
    try:
        metrics, info = score_bench(
            model, tmp_path / "bench.yaml", encoder, pixels, gemma3,
            gemma3.tokenizer.pad_token_id, {}, "gemma3",
        )  # fmt: skip
    finally:
        model.unload()
    assert info["bench_turns"] == 3 and info["bench_skipped"] == 0
    assert 0 <= metrics["overall_accuracy"] <= 1 and "accuracy/colours" in metrics


def test_packing_is_refused_with_the_reason(gemma3: Any, pictures: list[str]) -> None:
    from ablate.trial.packing import collate_packed, supports_packing

    why = supports_packing(gemma3.model)
    assert why is not None and "token_type_ids" in why and "both ways" in why
    item = DialogueEncoder(gemma3.processor).encode(DIALOGUE[:2], pictures[:1])
    with pytest.raises(ValueError, match="token_type_ids"):
        collate_packed([item], PixelCache(gemma3.processor.image_processor))
