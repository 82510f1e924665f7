"""Build or load a model and its processor.

`tiny-llava` is the built-in offline model: a Llava architecture (CLIP vision tower + Llama
language model) with random weights, built from configs, with a byte-level BPE tokenizer
trained offline on the world's text in milliseconds. It is saved to a folder and loaded back
through `AutoModelForImageTextToText` / `AutoProcessor`, the same code path as a real model.
"""

from __future__ import annotations

import json
import warnings
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


def tiny_model_dir(cache_root: Path) -> Path:
    return cache_root / f"{TINY_NAME}-v{TINY_VERSION}"


def build_tiny_model(out: Path, corpus: list[str], spec: TinyModelSpec | None = None) -> Path:
    """Train a tokenizer on `corpus`, build a random-weight tiny Llava, save model + processor."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    spec = spec or TinyModelSpec()
    stamp = out / "ablate_tiny.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == {
        "version": TINY_VERSION,
        **spec.__dict__,
    }:
        return out
    out.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token=END_TOKEN,
        extra_special_tokens={"image_token": IMAGE_TOKEN},
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    image_token_id = int(tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))  # type: ignore[arg-type]

    tokens_per_image = (spec.image_size // spec.patch_size) ** 2
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=spec.vision_hidden,
            intermediate_size=spec.vision_hidden * 2,
            num_hidden_layers=spec.vision_layers,
            num_attention_heads=2,
            image_size=spec.image_size,
            patch_size=spec.patch_size,
            projection_dim=spec.vision_hidden,
        ),
        text_config=LlamaConfig(
            hidden_size=spec.text_hidden,
            intermediate_size=spec.text_hidden * 2,
            num_hidden_layers=spec.text_layers,
            num_attention_heads=spec.text_heads,
            num_key_value_heads=spec.text_heads,
            vocab_size=len(tokenizer),
            max_position_embeddings=1024,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        image_token_index=image_token_id,
        image_seq_length=tokens_per_image,
        vision_feature_select_strategy="full",  # keep every patch: 16 + CLS = 17 tokens
        vision_feature_layer=-1,
    )
    torch.manual_seed(spec.seed)
    model = LlavaForConditionalGeneration(config)
    # A random base with the usual 0.02 init caps every logit near |h| * 0.02 * sqrt(d) ~ 2, so
    # loss cannot fall below ~5 nats and a frozen head never learns; std 0.2 gives logits ~ 20
    # while LoRA on all linear layers learns the rest.
    torch.nn.init.normal_(model.lm_head.weight, std=0.2)
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
    model.save_pretrained(out)
    processor.save_pretrained(out)
    stamp.write_text(json.dumps({"version": TINY_VERSION, **spec.__dict__}))
    return out


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
CHATML_CHAT_TEMPLATE = (
    # Qwen2.5-Instruct's shape: a default system turn, <|im_start|>role\n ... <|im_end|>\n
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CHATML_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN2VL_TOKENS = [
    *CHATML_TOKENS,
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def _train_tokenizer(corpus: list[str], vocab_size: int, special: list[str], **kwargs: Any) -> Any:
    """A byte-level BPE tokenizer trained on `corpus` in milliseconds (offline)."""
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


def _chatml_tokenizer(corpus: list[str], special: list[str], template: str, **kwargs: Any) -> Any:
    """A 512-token tokenizer of the ChatML family (Qwen2-VL, OneVision, Qwen2.5) with `template`."""
    tokenizer = _train_tokenizer(
        corpus, 512, special, pad_token="<|endoftext|>", eos_token="<|im_end|>", **kwargs
    )
    tokenizer.chat_template = template
    return tokenizer


def _tiny_text(tokenizer: Any, bos: str) -> dict[str, Any]:
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


TINY_VISION: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
}
"""The vision tower of the tiny OneVision and Idefics3: one layer of width 32."""


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
    tokenizer = _chatml_tokenizer(corpus, QWEN2VL_TOKENS, QWEN2VL_CHAT_TEMPLATE)
    ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in QWEN2VL_TOKENS}
    config = Qwen2VLConfig(
        text_config={
            **_tiny_text(tokenizer, "<|endoftext|>"),
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
    config_file = out / "preprocessor_config.json"
    data = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**data, "processor_class": "Qwen2VLProcessor"}, indent=2))
    return out


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
    tokenizer = _chatml_tokenizer(
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
        text_config=Qwen2Config(**_tiny_text(tokenizer, "<|endoftext|>")),
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
    # a hub OneVision folder's processor settings; written by hand because the processor itself
    # cannot be built without a video processor (torchvision)
    processor_config = {
        "processor_class": "LlavaOnevisionProcessor",
        "image_token": IMAGE_TOKEN,
        "video_token": "<video>",
        "num_image_tokens": (side // patch) ** 2,
        "vision_feature_select_strategy": "full",
        "vision_aspect_ratio": config.vision_aspect_ratio,
    }
    (out / "processor_config.json").write_text(json.dumps(processor_config, indent=2))
    config_file = out / "preprocessor_config.json"
    data = json.loads(config_file.read_text())
    config_file.write_text(
        json.dumps({**data, "processor_class": "LlavaOnevisionProcessor"}, indent=2)
    )
    return out


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
    tokenizer = _train_tokenizer(
        corpus,
        512,
        IDEFICS3_TOKENS,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
    )
    tokenizer.chat_template = IDEFICS3_CHAT_TEMPLATE
    ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in IDEFICS3_TOKENS}
    tile, patch, scale = 56, 14, 2
    image_seq_len = (tile // patch) ** 2 // scale**2
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(
            **TINY_VISION,
            image_size=tile,
            patch_size=patch,
        ),
        text_config=LlamaConfig(**_tiny_text(tokenizer, "<|im_start|>")),
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


def build_tiny_causal_lm(out: Path, corpus: list[str], seed: int = 0) -> Path:
    """A random-weight text-only Llama (tiny shapes) with a ChatML tokenizer (Qwen2.5-style)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if (out / "config.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _chatml_tokenizer(corpus, CHATML_TOKENS, CHATML_CHAT_TEMPLATE)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@dataclass
class LoadedModel:
    """A base model resident in memory, with its processor; reused across trials by a worker."""

    path: str
    model: Any
    processor: Any
    """The model's processor (image-text-to-text) or its tokenizer (text-only causal LM)."""
    device: str
    kind: str = "image-text-to-text"
    """`image-text-to-text` or `causal-lm`."""
    dtype: str = "float32"
    attn_implementation: str = "sdpa"

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)


def resolve_model_path(path: str, base_dir: Path, world_root: Path | None) -> Path | str:
    """`tiny-llava` -> its built folder next to the world; a relative local folder -> absolute."""
    if path == TINY_NAME:
        if world_root is None:
            raise ValueError("tiny-llava needs the world it was built for")
        return tiny_model_dir(world_root / "models")
    local = Path(path) if Path(path).is_absolute() else base_dir / path
    return local if local.exists() else path


def chat_template_of(processor: Any) -> str | None:
    """The chat template a processor or tokenizer renders with, if it has one."""
    template = getattr(processor, "chat_template", None)
    if not template:
        template = getattr(getattr(processor, "tokenizer", None), "chat_template", None)
    return template or None


def _pick_attention(requested: str, device: str) -> str:
    """`auto`: flash_attention_2 on CUDA when installed (varlen kernel, no padding cost), else sdpa."""
    if requested != "auto":
        return requested
    if device == "cuda":
        import importlib.util

        if importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
    return "sdpa"


def _processor_without_video(where: str, trust: bool) -> Any:
    """The model's processor built from its image processor and tokenizer, with no video
    processor: transformers' video processors need torchvision, and a trial never feeds video.
    """
    import inspect

    import transformers
    from transformers import AutoImageProcessor, AutoTokenizer

    config = json.loads((Path(where) / "preprocessor_config.json").read_text())
    base = getattr(transformers, config.get("processor_class", ""), None)
    if base is None:
        raise ImportError(
            f"model {where}: its processor needs torchvision (pip install torchvision)"
        )

    class ImageOnlyProcessor(base):  # type: ignore[misc, valid-type]
        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            if argument is None and argument_name == "video_processor":
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    ImageOnlyProcessor.__name__ = base.__name__
    tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=trust)
    template_file = Path(where) / "chat_template.jinja"
    template = template_file.read_text() if template_file.is_file() else tokenizer.chat_template
    # the processor's own settings (LLaVA-OneVision's `num_image_tokens`, its feature strategy):
    # without them it cannot count the tokens an image expands to
    settings_file = Path(where) / "processor_config.json"
    settings = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
    takes = set(inspect.signature(base.__init__).parameters) - {
        "self",
        "image_processor",
        "tokenizer",
        "video_processor",
        "chat_template",
    }
    return ImageOnlyProcessor(
        image_processor=AutoImageProcessor.from_pretrained(where, trust_remote_code=trust),
        tokenizer=tokenizer,
        video_processor=None,
        chat_template=template,
        **{k: v for k, v in settings.items() if k in takes},
    )


def load_model(path: Path | str, device: str | None = None, spec: Any = None) -> LoadedModel:
    """Load an image-text-to-text model with its processor, or a text-only causal LM with its
    tokenizer, in a sensible dtype and attention implementation for the device.

    `spec` is the job's `ModelSpec` (kind, dtype, attention, trust_remote_code); None takes
    the defaults. A model without a chat template is refused: labels come from the template.
    """
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForImageTextToText,
        AutoProcessor,
        AutoTokenizer,
    )
    from transformers.utils import logging as hf_logging

    from ablate.errors import UserError

    hf_logging.disable_progress_bar()  # one bar per worker and trial is noise in a sweep's log
    hf_logging.set_verbosity_error()
    # peft and the Trainer read a property transformers 5 deprecated: not the user's concern
    warnings.filterwarnings(
        "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
    )

    kind = getattr(spec, "kind", "auto")
    trust = bool(getattr(spec, "trust_remote_code", False))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype_name = getattr(spec, "dtype", "auto")
    if dtype_name == "auto":
        dtype_name = "bfloat16" if device == "cuda" else "float32"
    dtype = getattr(torch, dtype_name)
    attn = _pick_attention(getattr(spec, "attn_implementation", "auto"), device)
    where = str(path)
    try:
        if kind == "causal-lm":
            processor = AutoTokenizer.from_pretrained(where, trust_remote_code=trust)
        else:
            try:
                processor = AutoProcessor.from_pretrained(where, trust_remote_code=trust)
            except ImportError as err:
                if "torchvision" not in str(err).lower():
                    raise
                processor = _processor_without_video(where, trust)
    except (OSError, ValueError) as err:
        hint = (
            " (its code lives in the model repository: set `model.trust_remote_code: true` "
            "if you trust it)"
            if "trust_remote_code" in str(err)
            else ""
        )
        raise UserError(
            f"model {where}: cannot load its processor or tokenizer{hint}: {err}"
        ) from None
    if kind == "auto":
        kind = "image-text-to-text" if hasattr(processor, "image_processor") else "causal-lm"
    if kind == "image-text-to-text" and not hasattr(processor, "image_processor"):
        raise UserError(
            f"model {where}: `model.kind` is image-text-to-text but its processor has no image "
            "processor; use `model.kind: causal-lm` for a text-only model"
        )
    if chat_template_of(processor) is None:
        raise UserError(
            f"model {where} has no chat template, and labels on assistant turns come from it: "
            "use an instruction-tuned (chat) checkpoint, or add a `chat_template.jinja` to the "
            "model folder"
        )
    auto = AutoModelForImageTextToText if kind == "image-text-to-text" else AutoModelForCausalLM
    try:
        model = auto.from_pretrained(
            where, dtype=dtype, attn_implementation=attn, trust_remote_code=trust
        )
    except ValueError as err:
        if "attn_implementation" not in str(err) and "attention" not in str(err).lower():
            raise UserError(f"model {where}: cannot load as {kind}: {err}") from None
        attn = "eager"  # an architecture without sdpa support: the always-available kernel
        model = auto.from_pretrained(
            where, dtype=dtype, attn_implementation=attn, trust_remote_code=trust
        )
    except OSError as err:
        raise UserError(f"model {where}: cannot load its weights: {err}") from None
    model = model.to(device)  # type: ignore[arg-type]  # transformers' stubs mistype .to
    return LoadedModel(
        path=where,
        model=model,
        processor=processor,
        device=device,
        kind=kind,
        dtype=dtype_name,
        attn_implementation=attn,
    )
