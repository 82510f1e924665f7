"""Packed (padding-free) training gives the numbers padded training gives, at no padding."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
from paths_for_tests import REPO

from ablate.testing import image_text_families
from ablate.trial.encode import IGNORE

sys.path.insert(0, str(REPO / "benchmarks"))


def test_rows_hold_every_dialogue_once_and_fill_tightly() -> None:
    from trainer_throughput import synthetic_dialogues

    from ablate.trial.packing import pack_bins, pack_capacity

    lengths = [len(e.input_ids) for e in synthetic_dialogues(2000, 2048, 32000, seed=1)]
    capacity = pack_capacity(lengths, batch_size=8, pack_tokens=0)
    mean = sum(lengths) / len(lengths)
    assert capacity == round(8 * mean) and capacity >= max(lengths)
    rows = pack_bins(lengths, capacity, seed=0)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in r) <= capacity for r in rows)
    # first-fit-decreasing in windows: rows are nearly full (no padding is spent at all)
    assert sum(lengths) / (len(rows) * capacity) > 0.95
    assert pack_bins(lengths, capacity, seed=0) == rows  # deterministic per seed
    assert pack_bins(lengths, capacity, seed=1) != rows
    with pytest.raises(ValueError, match="does not fit"):
        pack_bins([10, 300], 200, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("kv_heads", [4, 2])  # plain and grouped-query attention
def test_packed_attention_equals_each_dialogue_alone(kv_heads: int) -> None:
    """Per-position logits of a packed row equal those of each dialogue run on its own."""
    import torch
    from trainer_throughput import SHAPES, build_model, synthetic_dialogues

    from ablate.trial.packing import collate_packed, packed_attention

    model = build_model({**SHAPES["tiny"], "num_key_value_heads": kv_heads}, "cpu", "sdpa")
    data = synthetic_dialogues(5, 256, 512, seed=0)
    batch = collate_packed(data, None)
    with torch.no_grad(), packed_attention(model):
        assert model.config._attn_implementation == "ablate_varlen"
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]
    assert model.config._attn_implementation == "sdpa"  # the resident model's, restored
    with torch.no_grad():
        alone = torch.cat([model(input_ids=torch.tensor([e.input_ids])).logits[0] for e in data])
    assert packed.shape == alone.shape
    torch.testing.assert_close(packed, alone, atol=1e-4, rtol=1e-4)
    # the first token of each dialogue is never a target of the one before it
    starts = batch["cu_seq_lens_q"][:-1].long()
    assert (batch["labels"][0, starts] == IGNORE).all()


@pytest.mark.parametrize("name", image_text_families())
def test_packed_rows_equal_the_padded_batch_and_each_dialogue_alone(
    name: str, tiny_models: Callable[[str], Any], world_examples: Any
) -> None:
    """Images in order across the row, each dialogue attending only to itself: the packed
    logits equal each dialogue run alone, and the model's loss and the labelled-only head's
    equal the padded batch's (Llava, Qwen2-VL's M-RoPE, OneVision's AnyRes tiles, Idefics3's
    tagged tiles)."""
    import torch

    from ablate.trial.encode import PixelCache, collate
    from ablate.trial.packing import (
        collate_packed,
        labelled_loss,
        multimodal_rope,
        packed_attention,
    )

    loaded = tiny_models(name)
    examples = world_examples(loaded, 6)
    assert sum(len(e.images) for e in examples) >= 4
    pixels = PixelCache(loaded.processor.image_processor)
    model, pad_id = loaded.model, loaded.tokenizer.pad_token_id
    row = collate_packed(examples, pixels, multimodal_rope(model))
    alone = []
    with torch.no_grad():
        for e in examples:
            one = collate([e], pixels, pad_id)
            one.pop("labels")
            alone.append(model(**one).logits[0])
        padded_loss = model(**collate(examples, pixels, pad_id)).loss
        with packed_attention(model):
            packed = model(**row)  # the model's loss over the full-vocabulary logits
            head_on_labels = labelled_loss(model, dict(row))
    assert model.config.text_config._attn_implementation == "sdpa"  # restored
    torch.testing.assert_close(packed.logits[0], torch.cat(alone), atol=1e-4, rtol=1e-4)
    assert float(packed.loss) == pytest.approx(float(padded_loss), rel=1e-5)
    assert float(head_on_labels) == pytest.approx(float(padded_loss), rel=1e-5)


def test_packed_qwen2vl_rows_keep_each_dialogues_own_3d_positions(
    qwen: Any, world_examples: Any
) -> None:
    """M-RoPE: each dialogue keeps the (time, height, width) positions the model gives it
    alone; the text positions restart per dialogue."""
    import torch

    from ablate.trial.encode import PixelCache, collate
    from ablate.trial.packing import collate_packed, multimodal_rope

    examples = world_examples(qwen, 5)
    assert sum(len(e.images) for e in examples) >= 3
    pixels = PixelCache(qwen.processor.image_processor)
    row = collate_packed(examples, pixels, multimodal_rope(qwen.model))
    assert row["position_ids"].shape == (4, 1, sum(len(e.input_ids) for e in examples))
    for e, lo in zip(examples, row["cu_seq_lens_q"][:-1].tolist(), strict=True):
        one = collate([e], pixels, qwen.tokenizer.pad_token_id)
        types = one.get("mm_token_type_ids", torch.zeros_like(one["input_ids"]))  # text only
        own, _ = qwen.model.model.get_rope_index(
            one["input_ids"], types, image_grid_thw=one.get("image_grid_thw")
        )
        hi = lo + len(e.input_ids)
        assert torch.equal(row["position_ids"][1:, :, lo:hi], own)
        assert row["position_ids"][0, 0, lo:hi].tolist() == list(range(len(e.input_ids)))


# where each family keeps its vision tower and its language model (a new family adds its own)
TOWER_AND_LANGUAGE = {
    "llava": ("vision_tower", "language_model"),
    "qwen2vl": ("visual", "language_model"),
    "onevision": ("vision_tower", "language_model"),
    "idefics3": ("vision_model", "text_model"),
}


@pytest.mark.parametrize("name", image_text_families())
def test_the_vision_tower_never_sees_the_text_rows_boundaries(
    name: str, tiny_models: Callable[[str], Any], world_examples: Any
) -> None:
    """A FlashAttention vision tower would cut its patches at the text boundaries (Llava's
    CLIP) or get them twice (Qwen2-VL): only the language model receives them, whatever the
    family names it."""
    import torch

    from ablate.trial.encode import PixelCache
    from ablate.trial.packing import (
        PACKED_KWARGS,
        collate_packed,
        multimodal_rope,
        packed_attention,
    )

    tower_name, language_name = TOWER_AND_LANGUAGE[name]
    loaded = tiny_models(name)
    model = loaded.model
    inner = model.model
    examples = world_examples(loaded, 4)
    row = collate_packed(
        examples, PixelCache(loaded.processor.image_processor), multimodal_rope(model)
    )
    seen: dict[str, set[str]] = {}

    def record(part: str) -> Any:
        def hook(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
            seen.setdefault(part, set()).update(kwargs)

        return hook

    tower = getattr(inner, tower_name)
    before = len(tower._forward_pre_hooks)
    with packed_attention(model), torch.no_grad():
        assert len(tower._forward_pre_hooks) == before + 1  # the tower was found
        handles = [getattr(inner, part).register_forward_pre_hook(record(part), with_kwargs=True)
                   for part in (tower_name, language_name)]  # fmt: skip
        model(**row)
        for handle in handles:
            handle.remove()
    assert seen[language_name] >= PACKED_KWARGS
    assert not PACKED_KWARGS & seen[tower_name]
    assert len(tower._forward_pre_hooks) == before  # nothing left behind after training


@pytest.mark.parametrize("name", image_text_families())
def test_packed_training_matches_padded_training(
    name: str, tiny_models: Callable[[str], Any], world_examples: Any
) -> None:
    """Every dialogue in one step either way: the same losses, and a packed run has no padding
    (Llava, Qwen2-VL's M-RoPE, LLaVA-OneVision's AnyRes tiles)."""
    from ablate.config import LoraSpec, TrainSpec
    from ablate.trial.encode import PixelCache
    from ablate.trial.train import attach_lora, train_lora

    loaded = tiny_models(name)
    examples = world_examples(loaded, 8)
    pixels = PixelCache(loaded.processor.image_processor)
    stats = {}
    for packing in (False, True):
        spec = TrainSpec(lr=5e-3, batch_size=8, max_steps=3, packing=packing)
        model = attach_lora(loaded.model, LoraSpec(r=8, alpha=16), seed=0)
        try:
            stats[packing] = train_lora(
                model, examples, pixels, loaded.tokenizer.pad_token_id, spec, 0, "cpu"
            )
        finally:
            model.unload()
    padded, packed = stats[False], stats[True]
    assert padded.pad_fraction > 0.05 and packed.pad_fraction == 0.0
    assert packed.collated_tokens == padded.collated_tokens  # the same real tokens, 3 steps
    assert packed.train_loss == pytest.approx(padded.train_loss, rel=1e-4)
    assert packed.final_loss == pytest.approx(padded.final_loss, rel=1e-4)
    assert loaded.model.config.text_config._attn_implementation == "sdpa"


def test_packing_an_mrope_model_without_token_types_is_refused_with_the_reason() -> None:
    """Remote-code M-RoPE models of the transformers 4 convention number positions from
    input ids alone; their rows cannot be numbered per dialogue: the trial says so."""
    from trainer_throughput import SHAPES, build_model, synthetic_dialogues

    from ablate.config import LoraSpec, TrainSpec
    from ablate.errors import UserError
    from ablate.trial.train import attach_lora, train_lora

    model = build_model(SHAPES["tiny"], "cpu", "sdpa")

    def get_rope_index(input_ids: Any, image_grid_thw: Any = None) -> Any:
        raise AssertionError("never called: refused before training")

    model.model.get_rope_index = get_rope_index  # such a model's method, on the inner model
    peft_model = attach_lora(model, LoraSpec(r=4, alpha=8), seed=0)
    spec = TrainSpec(packing=True, max_steps=1)
    data = synthetic_dialogues(4, 128, 512, seed=0)
    try:
        with pytest.raises(UserError, match=r"M-RoPE.*mm_token_type_ids.*group_by_length"):
            train_lora(peft_model, data, None, 0, spec, 0, "cpu")
    finally:
        peft_model.unload()


def _torch_2_10_varlen(query: Any, key: Any, value: Any, cu_seq_q: Any, cu_seq_k: Any,
                       max_q: int, max_k: int, *, is_causal: bool = False) -> Any:  # fmt: skip
    """torch 2.10's varlen_attn signature: `is_causal`, no `scale`, no grouped-query heads."""
    from ablate.trial.packing import segment_attention

    assert query.shape[1] == key.shape[1], "2.10 takes as many key/value heads as query heads"
    window = (-1, 0) if is_causal else (-1, -1)
    return segment_attention(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k,
                             window_size=window)  # fmt: skip


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_older_varlen_signatures_get_the_same_attention(kv_heads: int) -> None:
    """The CUDA kernel's call adapts to torch 2.10's signature (repeated key/value heads, the
    scale folded into the queries) and gives what the current one gives."""
    import inspect

    import torch

    from ablate.trial.packing import _segment_kernel, kernel_attention

    torch.manual_seed(0)
    q = torch.randn(30, 4, 16)
    k, v = torch.randn(30, kv_heads, 16), torch.randn(30, kv_heads, 16)
    cu = torch.tensor([0, 7, 19, 30], dtype=torch.int32)
    old = (_torch_2_10_varlen, {"is_causal": True},
           frozenset(inspect.signature(_torch_2_10_varlen).parameters))  # fmt: skip
    for scaling in (None, 0.1):
        current = kernel_attention(_segment_kernel(), q, k, v, cu, 12, scaling)
        older = kernel_attention(old, q, k, v, cu, 12, scaling)
        torch.testing.assert_close(older, current, atol=1e-5, rtol=1e-5)
    # causal within each dialogue: the first token of a dialogue sees only itself
    first = kernel_attention(_segment_kernel(), q, k, v, cu, 12, None)[7]
    torch.testing.assert_close(first, v[7].repeat_interleave(4 // kv_heads, dim=0))


def test_a_packed_trial_runs_through_the_product_path(train_job: Any) -> None:
    """`train.packing` from the job file: no padding, about `batch_size` dialogues a step."""
    from ablate.mixture import Mixture
    from ablate.trial import run_trial

    mix = Mixture(name="m", volume=48, proportions={"colors": 0.5, "lists": 0.5},
                  taxonomy="skill", seed=3)  # fmt: skip
    packed = run_trial(train_job(train={"epochs": 1, "lr": 5.0e-3, "batch_size": 8,
                                        "packing": True}), mix)  # fmt: skip
    assert packed.info["pad_fraction"] == 0.0
    # 48 dialogues in rows of about 8 dialogues' tokens: 6 or 7 rows (first-fit leaves slack)
    assert 6 <= packed.info["steps"] <= 7
    assert 0.0 <= packed.metrics["overall_accuracy"] <= 1.0 and packed.metrics["train_loss"] > 0


@pytest.mark.parametrize("window", [32, 4096])
def test_attention_packing_cannot_reproduce_is_refused_by_name(window: int) -> None:
    """A sliding window shorter than a packed dialogue would change its attention: refused with
    the fix; a window longer than every dialogue changes nothing, so packing trains."""
    import torch
    from trainer_throughput import SHAPES, synthetic_dialogues
    from transformers import MistralConfig, MistralForCausalLM

    from ablate.config import LoraSpec, TrainSpec
    from ablate.errors import UserError
    from ablate.trial.packing import collate_packed, packed_attention
    from ablate.trial.train import attach_lora, train_lora

    torch.manual_seed(0)
    model = MistralForCausalLM(MistralConfig(**SHAPES["tiny"], sliding_window=window,
                                             attn_implementation="sdpa"))  # fmt: skip
    data = synthetic_dialogues(8, 256, 512, seed=0)
    assert max(len(e.input_ids) for e in data) > 32
    peft_model = attach_lora(model, LoraSpec(r=4, alpha=8), seed=0)
    spec = TrainSpec(batch_size=4, max_steps=1, packing=True)
    try:
        if window == 32:
            with pytest.raises(
                UserError, match=r"sliding window of 32 tokens.*train.packing: false"
            ):
                train_lora(peft_model, data, None, 0, spec, 0, "cpu")
        else:
            assert train_lora(peft_model, data, None, 0, spec, 0, "cpu").pad_fraction == 0.0
    finally:
        peft_model.unload()
    assert model.config._attn_implementation == "sdpa"  # restored after the refusal too
    row = collate_packed(data[:2], None)
    del row["cu_seq_lens_q"], row["cu_seq_lens_k"]  # a forward that lost the row's boundaries
    with packed_attention(model), pytest.raises(RuntimeError, match="without its dialogue bound"):
        model(**row)
