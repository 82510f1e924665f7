"""Padding-free training: dialogues packed into rows, attention kept inside each dialogue.

Length grouping still pads every batch to its longest row and lets memory swing with that row;
packing concatenates whole dialogues into one row of at most `capacity` tokens, so every
position is a real token and each micro-batch costs the same memory. Each dialogue restarts its
position ids at 0, and attention runs per dialogue through a variable-length kernel
(`torch.nn.attention.varlen`, FlashAttention's varlen kernel on CUDA) fed with the cumulative
sequence lengths the collator computes once per batch. transformers' own packed path (sdpa
with a block-diagonal mask) computes every cross-dialogue block and throws it away: DESIGN.md
measured no gain from it on an H100.

The language-model head also runs only where a label is (the assistant tokens, about 40% of a
dialogue), instead of materialising logits over the whole vocabulary for every position; with
Liger, its RMSNorm, SwiGLU and RoPE kernels run and this head replaces its fused loss.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ablate.errors import UserError
from ablate.trial.encode import IGNORE, Encoded, PixelCache

ATTENTION = "ablate_varlen"
"""The name the varlen attention is registered under in transformers' AttentionInterface."""
IMAGE_BLOCKS = (
    "the tokens of one image attend to each other both ways (`token_type_ids`, Gemma3's and "
    "PaliGemma's convention), and the packed kernel runs plain causal attention per dialogue"
)
"""Why a model whose image tokens attend bidirectionally cannot train on packed rows."""


def pack_bins(
    lengths: Sequence[int], capacity: int, seed: int, window: int = 256
) -> list[list[int]]:
    """Indices grouped into rows of at most `capacity` tokens, every index exactly once.

    A seeded shuffle, then first-fit-decreasing inside consecutive windows of `window`
    dialogues: tight rows (FFD leaves little room unused) without the curriculum a global
    length sort would impose; the rows are shuffled again so long and short ones interleave.
    """
    longest = max(lengths, default=0)
    if longest > capacity:
        raise ValueError(f"a dialogue of {longest} tokens does not fit a packed row of {capacity}")
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    rows: list[list[int]] = []
    for lo in range(0, len(order), window):
        chunk = sorted(order[lo : lo + window], key=lambda i: -lengths[i])
        room: list[int] = []
        chunk_rows: list[list[int]] = []
        for i in chunk:
            for r, free in enumerate(room):
                if lengths[i] <= free:
                    chunk_rows[r].append(i)
                    room[r] -= lengths[i]
                    break
            else:
                chunk_rows.append([i])
                room.append(capacity - lengths[i])
        rows += chunk_rows
    rng.shuffle(rows)
    return rows


def pack_capacity(lengths: Sequence[int], batch_size: int, pack_tokens: int) -> int:
    """Tokens per packed row: `pack_tokens` when set, else about `batch_size` dialogues' worth
    (so a step sees as many dialogues as an unpacked step would), never less than the longest."""
    longest = max(lengths, default=1)
    if pack_tokens:
        return pack_tokens
    mean = sum(lengths) / max(1, len(lengths))
    return max(longest, round(batch_size * mean))


def collate_packed(
    batch: Sequence[Encoded], pixels: PixelCache | None, rope_index: Any = None
) -> dict[str, Any]:
    """One row of concatenated dialogues: position ids restart per dialogue, no attention mask,
    and `cu_seq_lens_*` / `max_length_*` (transformers' FlashAttentionKwargs) for the kernel.

    `rope_index`: the model's own M-RoPE numbering (`multimodal_rope`), for Qwen2-VL-style
    models; the row then carries their 3-D positions too (`multimodal_positions`).
    """
    import torch

    if any(e.token_type_ids is not None for e in batch):
        raise ValueError(f"packed rows cannot carry `token_type_ids`: {IMAGE_BLOCKS}")
    lengths = [len(e.input_ids) for e in batch]
    input_ids = torch.tensor([t for e in batch for t in e.input_ids], dtype=torch.long)
    labels = torch.tensor([t for e in batch for t in e.labels], dtype=torch.long)
    position_ids = torch.cat([torch.arange(n, dtype=torch.long) for n in lengths])
    cu = torch.zeros(len(batch) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.int32), 0)
    labels[cu[:-1].long()] = IGNORE  # never learn a dialogue's first token from the one before
    out: dict[str, Any] = {
        "input_ids": input_ids[None],
        "labels": labels[None],
        "position_ids": position_ids[None],
        "cu_seq_lens_q": cu,
        "cu_seq_lens_k": cu,
        "max_length_q": max(lengths),
        "max_length_k": max(lengths),
    }
    if any(e.token_types is not None for e in batch):
        out["mm_token_type_ids"] = torch.tensor(
            [t for e in batch for t in (e.token_types or [0] * len(e.input_ids))],
            dtype=torch.long,
        )[None]
    paths = [p for e in batch for p in e.images]
    if paths and pixels is not None:
        out.update(pixels.batch(paths))
    if rope_index is not None and "mm_token_type_ids" in out and (not paths or pixels is not None):
        out["position_ids"] = multimodal_positions(rope_index, out, lengths)
    return out


def multimodal_positions(rope_index: Any, row: dict[str, Any], lengths: Sequence[int]) -> Any:
    """(4, 1, tokens) position ids of a packed row for an M-RoPE model: the text positions
    (restarting per dialogue), then the model's (time, height, width) positions of each dialogue
    as if it ran alone.

    The model numbers the row as one sequence, so dialogue k starts at some offset c on all three
    axes (its first token is text or an image's first patch: either way (c, c, c)); subtracting
    c gives each dialogue its own numbering exactly. RoPE only sees differences, but the small
    angles keep the float rounding of a lone dialogue.
    """
    import torch

    positions, _ = rope_index(
        row["input_ids"],
        mm_token_type_ids=row["mm_token_type_ids"],
        image_grid_thw=row.get("image_grid_thw"),
    )
    starts = row["cu_seq_lens_q"][:-1].long()
    offsets = positions[:, :, starts].repeat_interleave(torch.tensor(lengths), dim=-1)
    return torch.cat([row["position_ids"][None], positions - offsets])


def multimodal_rope(model: Any) -> Any:
    """The model's own M-RoPE numbering (`get_rope_index`, Qwen2-VL style), None for 1-D RoPE."""
    for owner in (model, getattr(model, "model", None)):
        if (rope_index := getattr(owner, "get_rope_index", None)) is not None:
            return rope_index
    return None


def supports_packing(model: Any) -> str | None:
    """None when `model` can train on packed rows, else why not (for the user's message)."""
    if (
        hasattr(model, "get_image_features")
        and "token_type_ids" in inspect.signature(model.forward).parameters
    ):
        return IMAGE_BLOCKS
    rope_index = multimodal_rope(model)
    if (
        rope_index is not None
        and "mm_token_type_ids" not in inspect.signature(rope_index).parameters
    ):
        return (
            "its rotary positions are multimodal (M-RoPE) and its `get_rope_index` does not take "
            "`mm_token_type_ids` (transformers 5's Qwen2-VL convention), so packed rows cannot get "
            "3-D position ids per dialogue"
        )
    return None


@functools.cache
def _varlen_kernel() -> tuple[Any, dict[str, Any], frozenset[str]]:
    """torch's varlen attention, its causal switch and its keyword names in this torch version
    (2.10 takes `is_causal`, later ones `window_size`; `scale` and `enable_gqa` came later)."""
    from torch.nn.attention.varlen import varlen_attn

    params = frozenset(inspect.signature(varlen_attn).parameters)
    causal = {"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True}
    return varlen_attn, causal, params


def varlen_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers attention function (query/key/value: batch, heads, tokens, head_dim).

    Packed causal self-attention runs per dialogue; non-causal attention and generation with a
    cache go to sdpa unchanged. A causal call without the row's boundaries is refused: sdpa
    would let its dialogues attend to each other.
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu: Any = kwargs.get("cu_seq_lens_q")
    # a module without the flag is causal, as in transformers' sdpa
    if not getattr(module, "is_causal", True) or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if cu is None or query.shape[0] != 1:
        raise RuntimeError(
            "a packed row reached the language model's attention without its dialogue "
            f"boundaries (`cu_seq_lens_q`, batch of {query.shape[0]}): either a forward between "
            "the Trainer and the attention dropped them, or padded batches or generation ran "
            "inside `packed_attention` without `unpacked_attention`"
        )
    # the collator's python int: reading the longest length off the GPU would sync per layer
    longest = kwargs.get("max_length_q") or int((cu[1:] - cu[:-1]).max())
    window = kwargs.get("sliding_window")
    unsupported = {
        "attention dropout": dropout or None,
        "logit soft-capping": kwargs.get("softcap"),
        "attention sinks": kwargs.get("s_aux"),
        f"a sliding window of {window} tokens (shorter than a packed dialogue of {longest})": (
            window if window and window < longest else None
        ),
    }
    if found := [name for name, value in unsupported.items() if value is not None]:
        raise UserError(
            f"`train.packing` computes plain causal attention per dialogue; this model's "
            f"attention uses {', '.join(found)}: set `train.packing: false` (and "
            "`train.group_by_length: true`)"
        )
    q, k, v = (t[0].transpose(0, 1).contiguous() for t in (query, key, value))  # tokens, heads, dim
    if query.is_cuda and v.dtype in (torch.float16, torch.bfloat16):
        kernel = _varlen_kernel()
        q, k = q.to(v.dtype), k.to(v.dtype)  # float32 rotary math may have promoted them
    else:  # no varlen kernel on the CPU, nor for float32 on CUDA: sdpa per dialogue
        kernel = _segment_kernel()
    cu = cu.to(device=query.device, dtype=torch.int32)
    out = kernel_attention(kernel, q, k, v, cu, longest, scaling)
    return out[None], None  # batch, tokens, heads, head_dim


def segment_attention(
    query: Any,
    key: Any,
    value: Any,
    cu_seq_q: Any,
    cu_seq_k: Any,
    max_q: int,
    max_k: int,
    *,
    scale: float | None = None,
    window_size: tuple[int, int] = (-1, -1),
    enable_gqa: bool = False,
) -> Any:
    """`torch.nn.attention.varlen.varlen_attn`'s contract computed one segment at a time with
    sdpa: the CPU's kernel (varlen_attn needs CUDA), and the reference the tests check against."""
    import torch

    bounds = cu_seq_q.tolist()
    if bounds != cu_seq_k.tolist() or bounds[-1] != query.shape[0]:
        raise ValueError(f"cu_seq_lens {bounds} do not cover the row's {query.shape[0]} tokens")
    parts = [
        torch.nn.functional.scaled_dot_product_attention(
            query[lo:hi].transpose(0, 1),
            key[lo:hi].transpose(0, 1),
            value[lo:hi].transpose(0, 1),
            is_causal=tuple(window_size) == (-1, 0),
            scale=scale,
            enable_gqa=enable_gqa,
        ).transpose(0, 1)
        for lo, hi in itertools.pairwise(bounds)
    ]
    return torch.cat(parts)


def _segment_kernel() -> tuple[Any, dict[str, Any], frozenset[str]]:
    params = frozenset(inspect.signature(segment_attention).parameters)
    return segment_attention, {"window_size": (-1, 0)}, params


def kernel_attention(
    kernel: tuple[Any, dict[str, Any], frozenset[str]],
    q: Any,
    k: Any,
    v: Any,
    cu: Any,
    longest: int,
    scaling: float | None,
) -> Any:
    """Call a varlen kernel (`_varlen_kernel()`'s triple) on tokens x heads x head_dim tensors,
    adapting grouped-query heads and the scale to what its signature takes."""
    function, causal, params = kernel
    extra: dict[str, Any] = dict(causal)
    groups = q.shape[1] // k.shape[1]
    if groups > 1 and "enable_gqa" in params:
        extra["enable_gqa"] = True
    elif groups > 1:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    if "scale" in params:
        extra["scale"] = scaling
    elif scaling is not None:  # the kernel's own scale is 1/sqrt(head_dim)
        q = q * (scaling * q.shape[-1] ** 0.5)
    return function(q, k, v, cu, cu, longest, longest, **extra)


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    AttentionInterface.register(ATTENTION, varlen_attention)
    # like FlashAttention: no 4-D mask is built; a packed row never carries a padding mask
    AttentionMaskInterface.register(ATTENTION, flash_attention_mask)


PACKED_KWARGS = frozenset({"cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k"})
"""The text row's sequence boundaries, which only the language model may see."""


def _without_packed_kwargs(module: Any, args: Any, kwargs: dict[str, Any]) -> Any:
    return args, {k: v for k, v in kwargs.items() if k not in PACKED_KWARGS}


@contextmanager
def packed_attention(model: Any) -> Iterator[None]:
    """Within the block the model's language model attends through `varlen_attention`; its
    previous implementation (the resident model's, used for evaluation) comes back after, and
    for a while inside the block through `unpacked_attention`.

    A multimodal model passes its forward's keyword arguments on to the vision tower too; the
    text row's boundaries are kept from it: a FlashAttention vision tower would cut its patches
    at them (Llava) or get them twice (Qwen2-VL, which passes its own per image).
    """
    _register()
    # the language model's siblings (vision tower, projector) in a multimodal model; a text-only
    # model's decoder is its inner model itself, with nothing beside it
    inner: Any = getattr(model, "model", None)
    language = model.get_decoder() if hasattr(model, "get_decoder") else None
    children = list(inner.children()) if inner is not None else []
    towers = [c for c in children if c is not language] if language in children else []
    config = model.config
    sub = "text_config" if "text_config" in getattr(config, "sub_configs", {}) else None
    before = (getattr(config, sub) if sub else config)._attn_implementation
    # FlashAttention already reads the packed kwargs
    switch = before not in ("flash_attention_2", "flash_attention_3")
    hooks = []
    try:
        for tower in towers:
            hooks.append(tower.register_forward_pre_hook(_without_packed_kwargs, with_kwargs=True))
        if switch:
            model.set_attn_implementation({sub: ATTENTION} if sub else ATTENTION)
            model._ablate_unpacked = {sub: before} if sub else before
        yield
    finally:
        for hook in hooks:
            hook.remove()
        if switch:
            model.__dict__.pop("_ablate_unpacked", None)
            model.set_attn_implementation({sub: before} if sub else before)


@contextmanager
def unpacked_attention(model: Any) -> Iterator[None]:
    """Inside `packed_attention`, the model's own attention back for the block: scoring the
    bench mid-training runs padded batches and generation, which `varlen_attention` refuses.
    Outside it, nothing changes."""
    before = model.__dict__.get("_ablate_unpacked")
    if before is None:
        yield
        return
    model.set_attn_implementation(before)
    try:
        yield
    finally:
        packed = {k: ATTENTION for k in before} if isinstance(before, dict) else ATTENTION
        model.set_attn_implementation(packed)


def labelled_loss(model: Any, inputs: dict[str, Any], num_items: Any = None) -> Any:
    """Next-token cross-entropy over the labelled positions, with the head run only there.

    `num_items`: the divisor, labelled tokens of the whole optimizer step (the Trainer's
    `num_items_in_batch`, so gradient accumulation averages like one big batch); None: the
    mean over this row.
    """
    import torch

    labels = inputs.pop("labels")
    targets = labels[:, 1:]
    keep = (targets[0] != IGNORE).nonzero().squeeze(-1)  # position p predicts label p + 1
    outputs = model(**inputs, logits_to_keep=keep)
    logits = outputs.logits[0].float()
    loss = torch.nn.functional.cross_entropy(logits, targets[0, keep], reduction="sum")
    if num_items is None:
        return loss / max(1, keep.numel())
    return loss / num_items
