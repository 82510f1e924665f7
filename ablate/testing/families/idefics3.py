"""Idefics3 (SmolVLM family): image splitting into tiles tagged <row_i_col_j>."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.testing.parts import TINY_VISION, tiny_text
from ablate.testing.registry import family
from ablate.world import IMAGE_TOKEN, train_tokenizer

IDEFICS3_CHAT_TEMPLATE = (
    # HuggingFaceTB/SmolVLM-Instruct's own template: "User:" / "Assistant:" turns, each ending
    # with <end_of_utterance> and a newline; no space after the colon when an image comes first
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
IDEFICS3_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    IMAGE_TOKEN,
    "<global-img>",
    # the tile tags Idefics3Processor looks up (a grid of at most 6 x 6 tiles)
    *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)),
]


def _idefics3_tokenizer(corpus: list[str]) -> Any:
    """SmolVLM's special tokens and chat template on a 512-token tokenizer trained on `corpus`."""
    tokenizer = train_tokenizer(
        corpus,
        512,
        IDEFICS3_TOKENS,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
    )
    tokenizer.chat_template = IDEFICS3_CHAT_TEMPLATE
    return tokenizer


@family("idefics3")
def build_tiny_idefics3(out: Path, corpus: list[str], seed: int = 0) -> Path:
    """A random-weight Idefics3 (SmolVLM family: SigLIP-style tower, pixel-shuffle connector,
    Llama) with its processor and chat template.

    Image splitting: an image is resized to a longest edge of 112, then cut into 56 x 56 tiles
    plus a 56 x 56 global view; each tile is 4 x 4 patches of 14 pixels, pixel-shuffled 2 x 2
    into 4 image tokens. A square image takes a 2 x 2 grid (5 tiles, 20 image tokens), a 2:1
    wide one a 1 x 2 grid (3 tiles, 12 image tokens), each tile tagged <row_i_col_j>.
    """
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
        Idefics3VisionConfig,
        LlamaConfig,
    )

    if (out / "config.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _idefics3_tokenizer(corpus)
    ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in IDEFICS3_TOKENS}
    tile, patch, scale = 56, 14, 2
    image_seq_len = (tile // patch) ** 2 // scale**2
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(
            **TINY_VISION,
            image_size=tile,
            patch_size=patch,
        ),
        text_config=LlamaConfig(**tiny_text(tokenizer, "<|im_start|>")),
        scale_factor=scale,
        image_token_id=ids[IMAGE_TOKEN],
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    # the PIL backend: the default one needs torchvision
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 2 * tile}, max_image_size={"longest_edge": tile}
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=IDEFICS3_CHAT_TEMPLATE,
    )
    model.save_pretrained(out)
    # tokenizer, preprocessor_config.json, chat_template.jinja and processor_config.json
    # (with `image_seq_len`): the layout of a hub SmolVLM folder
    processor.save_pretrained(out)
    return out
