"""`tiny-llava`: the built-in offline model the demo and `ablate data synth` build.

A Llava architecture (CLIP vision tower + Llama language model) with random weights, built from
configs, with a byte-level BPE tokenizer trained offline on the world's text in milliseconds.
It is saved to a folder and loaded back through `AutoModelForImageTextToText` /
`AutoProcessor`, the same code path as a real model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TINY_NAME = "tiny-llava"
TINY_VERSION = 1
IMAGE_TOKEN = "<image>"
END_TOKEN = "<|end|>"
SPECIAL_TOKENS = ["<pad>", "<s>", END_TOKEN, "<|user|>", "<|assistant|>", "<|system|>", IMAGE_TOKEN]

# ChatML-like; the assistant's turn ends with <|end|>, which is what generation stops on.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@dataclass(frozen=True)
class TinyModelSpec:
    """Shapes of the built-in model: ~0.3M parameters, a training step in milliseconds on a CPU."""

    image_size: int = 32
    patch_size: int = 8
    """(32 / 8)^2 = 16 image tokens per image."""
    vision_hidden: int = 48
    vision_layers: int = 1
    text_hidden: int = 96
    text_layers: int = 2
    text_heads: int = 4
    vocab_size: int = 512
    seed: int = 0
    vision_heads: int = 2
    vision_intermediate: int = 0
    """0: twice `vision_hidden`."""
    text_intermediate: int = 0
    """0: twice `text_hidden`."""
    text_kv_heads: int = 0
    """0: `text_heads` (no grouped-query attention)."""
    max_positions: int = 1024
    dtype: str = "float32"
    """What the weights are saved in (`bfloat16` halves a large shape's folder)."""


#: A Llava of 1.28B parameters built the same way (the GPU trial of benchmarks/gpu_trial.py):
#: a CLIP ViT-L/14-336 tower (0.30B: 24 layers of 1024, 576 patches per image) and a TinyLlama-
#: 1.1B-shaped language model (22 layers of 2048, 5632 MLP, 32 heads, 4 KV heads; 0.97B with the
#: world's 512-token vocabulary).
LLAVA_1B = TinyModelSpec(
    image_size=336, patch_size=14, vision_hidden=1024, vision_layers=24, vision_heads=16,
    vision_intermediate=4096, text_hidden=2048, text_layers=22, text_heads=32, text_kv_heads=4,
    text_intermediate=5632, max_positions=4096, dtype="bfloat16",
)  # fmt: skip


def tiny_model_dir(cache_root: Path) -> Path:
    return cache_root / f"{TINY_NAME}-v{TINY_VERSION}"


def train_tokenizer(corpus: list[str], vocab_size: int, special: list[str], **kwargs: Any) -> Any:
    """A byte-level BPE tokenizer trained on `corpus` in milliseconds (offline); `kwargs` go to
    `PreTrainedTokenizerFast` (pad/bos/eos tokens, extra special tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, **kwargs)


def build_tiny_model(out: Path, corpus: list[str], spec: TinyModelSpec | None = None) -> Path:
    """Train a tokenizer on `corpus`, build a random-weight tiny Llava, save model + processor."""
    import torch
    from transformers import CLIPImageProcessorPil, LlavaForConditionalGeneration, LlavaProcessor

    spec = spec or TinyModelSpec()
    stamp = out / "ablate_tiny.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == {
        "version": TINY_VERSION,
        **spec.__dict__,
    }:
        return out
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = train_tokenizer(
        corpus,
        spec.vocab_size,
        SPECIAL_TOKENS,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token=END_TOKEN,
        extra_special_tokens={"image_token": IMAGE_TOKEN},
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    image_token_id = int(tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))

    config = _llava_config(spec, tokenizer, image_token_id)
    torch.manual_seed(spec.seed)
    model = LlavaForConditionalGeneration(config)
    # A random base with the usual 0.02 init caps every logit near |h| * 0.02 * sqrt(d) ~ 2, so
    # loss cannot fall below ~5 nats and a frozen head never learns; std 0.2 gives logits ~ 20
    # while LoRA on all linear layers learns the rest.
    # (std 0.2 x sqrt(96 / width): the same logit scale at a larger width)
    torch.nn.init.normal_(model.lm_head.weight, std=0.2 * (96 / spec.text_hidden) ** 0.5)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": spec.image_size},
        crop_size={"height": spec.image_size, "width": spec.image_size},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=spec.patch_size,
        vision_feature_select_strategy="full",
        chat_template=TINY_CHAT_TEMPLATE,
        num_additional_image_tokens=1,  # CLIP's CLS token
    )
    model.to(getattr(torch, spec.dtype)).save_pretrained(out)
    processor.save_pretrained(out)
    stamp.write_text(json.dumps({"version": TINY_VERSION, **spec.__dict__}))
    return out


def _llava_config(spec: TinyModelSpec, tokenizer: Any, image_token_id: int) -> Any:
    """The tiny Llava's shapes: a CLIP tower and a Llama of `spec`'s sizes, `tokenizer`'s ids."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    tokens_per_image = (spec.image_size // spec.patch_size) ** 2
    return LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=spec.vision_hidden,
            intermediate_size=spec.vision_intermediate or spec.vision_hidden * 2,
            num_hidden_layers=spec.vision_layers,
            num_attention_heads=spec.vision_heads,
            image_size=spec.image_size,
            patch_size=spec.patch_size,
            projection_dim=spec.vision_hidden,
        ),
        text_config=LlamaConfig(
            hidden_size=spec.text_hidden,
            intermediate_size=spec.text_intermediate or spec.text_hidden * 2,
            num_hidden_layers=spec.text_layers,
            num_attention_heads=spec.text_heads,
            num_key_value_heads=spec.text_kv_heads or spec.text_heads,
            vocab_size=len(tokenizer),
            max_position_embeddings=spec.max_positions,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        image_token_index=image_token_id,
        image_seq_length=tokens_per_image,
        vision_feature_select_strategy="full",  # keep every patch: 16 + CLS = 17 tokens
        vision_feature_layer=-1,
    )
