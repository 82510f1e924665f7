"""What the tiny families share: the ChatML tokenizer and the shapes of their two halves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ablate.world import train_tokenizer

CHATML_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def chatml_tokenizer(corpus: list[str], special: list[str], template: str, **kwargs: Any) -> Any:
    """A 512-token tokenizer of the ChatML family (Qwen2-VL, OneVision, Qwen2.5) with `template`."""
    tokenizer = train_tokenizer(
        corpus, 512, special, pad_token="<|endoftext|>", eos_token="<|im_end|>", **kwargs
    )
    tokenizer.chat_template = template
    return tokenizer


def tiny_text(tokenizer: Any, bos: str) -> dict[str, Any]:
    """The language half of the tiny multimodal models: 2 layers of width 64, 4 query heads
    sharing 2 key/value heads (grouped-query, as in the real ones)."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "bos_token_id": int(tokenizer.convert_tokens_to_ids(bos)),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def name_processor_class(out: Path, processor_class: str) -> None:
    """Name the processor class in `out`'s preprocessor_config.json, as a hub folder does (the
    image processor alone does not write it)."""
    config_file = out / "preprocessor_config.json"
    data = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**data, "processor_class": processor_class}, indent=2))


TINY_VISION: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
}
"""The vision tower of the tiny OneVision and Idefics3: one layer of width 32."""
