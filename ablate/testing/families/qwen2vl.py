"""Qwen2-VL: M-RoPE (time, height, width positions) and image-size-dependent token counts."""

from __future__ import annotations

from pathlib import Path

from ablate.testing.parts import CHATML_TOKENS, chatml_tokenizer, name_processor_class, tiny_text
from ablate.testing.registry import family

QWEN2VL_CHAT_TEMPLATE = (
    # Qwen2-VL-Instruct's own template (a default system turn; an image renders as
    # <|vision_start|><|image_pad|><|vision_end|>, expanded by the processor per image size)
    "{% set image_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN2VL_TOKENS = [
    *CHATML_TOKENS,
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


@family("qwen2vl")
def build_tiny_qwen2vl(out: Path, corpus: list[str], seed: int = 0) -> Path:
    """A random-weight Qwen2-VL (tiny shapes) with its own processor and chat template.

    Its image-token count depends on the image size: 14-pixel patches merged 2 x 2, so an
    image resized to H x W (multiples of 28) takes (H / 28) * (W / 28) tokens.
    """
    import torch
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
    )

    if (out / "config.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = chatml_tokenizer(corpus, QWEN2VL_TOKENS, QWEN2VL_CHAT_TEMPLATE)
    ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in QWEN2VL_TOKENS}
    config = Qwen2VLConfig(
        text_config={
            **tiny_text(tokenizer, "<|endoftext|>"),
            # head_dim 16 -> 8 rotary frequencies split over (time, height, width)
            "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3]},
        },
        vision_config={
            "depth": 1,
            "embed_dim": 32,
            "hidden_size": 64,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    # 28 x 28 = one merged token at least; at most 8 x 8 tokens per image
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": 28 * 28, "longest_edge": 28 * 28 * 64}
    )
    # the layout of a hub Qwen2-VL folder: preprocessor_config.json names the processor class
    # (Qwen2VLProcessor also wants a video processor, which needs torchvision: see load_model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    image_processor.save_pretrained(out)
    name_processor_class(out, "Qwen2VLProcessor")
    return out
