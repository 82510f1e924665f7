"""LLaVA-OneVision: SigLIP + Qwen2, AnyRes tiling (a base view plus the tiles of a grid)."""

from __future__ import annotations

import json
from pathlib import Path

from ablate.testing.parts import (
    CHATML_TOKENS,
    TINY_VISION,
    chatml_tokenizer,
    name_processor_class,
    tiny_text,
)
from ablate.testing.registry import family
from ablate.world import IMAGE_TOKEN

ONEVISION_CHAT_TEMPLATE = (
    # llava-hf/llava-onevision-qwen2-*-ov-hf's own template without its {% generation %} markers:
    # a message's images first, then each text part after a newline; the role is followed by a
    # space, while the generation prompt ends in a newline
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ '\\n' + content['text'] }}{% endfor %}{{ '<|im_end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
ONEVISION_TOKENS = [*CHATML_TOKENS, IMAGE_TOKEN, "<video>"]


@family("onevision")
def build_tiny_llava_onevision(out: Path, corpus: list[str], seed: int = 0) -> Path:
    """A random-weight LLaVA-OneVision (SigLIP + Qwen2, tiny shapes) with its processor and
    chat template.

    AnyRes: a single image is the 28 x 28 base view plus the tiles of the best-fitting grid
    pinpoint, 2 x 2 patches each (14-pixel patches), unpadded to the image's aspect ratio with a
    newline token per row: 28 x 28 takes 4 + 4 + 2 = 10 tokens, 56 wide x 28 high 4 + 8 + 2 = 14.
    """
    import torch
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessorPil,
        Qwen2Config,
        SiglipVisionConfig,
    )

    if (out / "config.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = chatml_tokenizer(
        corpus,
        ONEVISION_TOKENS,
        ONEVISION_CHAT_TEMPLATE,
        extra_special_tokens={"image_token": IMAGE_TOKEN, "video_token": "<video>"},
    )
    ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in ONEVISION_TOKENS}
    side, patch = 28, 14
    pinpoints = [[side, side], [side, 2 * side], [2 * side, side], [2 * side, 2 * side]]
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(
            **TINY_VISION,
            image_size=side,
            patch_size=patch,
            vision_use_head=False,
        ),
        text_config=Qwen2Config(**tiny_text(tokenizer, "<|endoftext|>")),
        image_token_index=ids[IMAGE_TOKEN],
        video_token_index=ids["<video>"],
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="full",  # SigLIP has no CLS token to drop
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": side, "width": side}, image_grid_pinpoints=pinpoints
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    image_processor.save_pretrained(out)
    _write_processor_settings(out, (side // patch) ** 2, config.vision_aspect_ratio)
    return out


def _write_processor_settings(out: Path, num_image_tokens: int, vision_aspect_ratio: str) -> None:
    """A hub OneVision folder's processor settings; written by hand because the processor itself
    cannot be built without a video processor (torchvision)."""
    processor_config = {
        "processor_class": "LlavaOnevisionProcessor",
        "image_token": IMAGE_TOKEN,
        "video_token": "<video>",
        "num_image_tokens": num_image_tokens,
        "vision_feature_select_strategy": "full",
        "vision_aspect_ratio": vision_aspect_ratio,
    }
    (out / "processor_config.json").write_text(json.dumps(processor_config, indent=2))
    name_processor_class(out, "LlavaOnevisionProcessor")
