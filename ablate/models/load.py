"""Load a model and its processor: the product's one path from a folder or hub id to a model in
memory, for the built-in `tiny-llava` (see `ablate.world.tiny_model`) and real checkpoints alike.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.config import ModelSpec
from ablate.errors import UserError
from ablate.world import TINY_NAME, tiny_model_dir


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


#: The package each flash attention of transformers needs.
FLASH_PACKAGES = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}


def _pick_attention(requested: str, device: str) -> str:
    """`auto`: flash_attention_2 on CUDA when installed (varlen kernel, no padding cost), else
    sdpa. A flash attention asked for by name needs CUDA and its package: else refused here,
    before transformers' ImportError."""
    package = FLASH_PACKAGES.get(requested)
    if package is not None and (device != "cuda" or importlib.util.find_spec(package) is None):
        lacks = "no CUDA device" if device != "cuda" else f"no {package} package"
        raise UserError(
            f"model.attn_implementation: {requested} needs a CUDA device and the "
            f"{package} package, and this machine has {lacks}: set `attn_implementation: "
            "auto` (flash attention where installed, else PyTorch's sdpa) or install it"
        )
    if requested != "auto":
        return requested
    if device == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _processor_without_video(where: str, trust: bool) -> Any:
    """The model's processor built from its image processor and tokenizer, with no video
    processor: transformers' video processors need torchvision, and a trial never feeds video.
    """
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
    template = _processor_template(Path(where)) or tokenizer.chat_template
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


def _processor_template(folder: Path) -> str | None:
    """The processor's chat template as transformers finds it: `chat_template.jinja`, then
    `chat_template.json`'s `chat_template`; None when the folder has neither (the tokenizer's
    own template is then the fallback). A processor's template beats a text-only template the
    base LM's `tokenizer_config.json` still carries (llava-hf's OneVision folders)."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    listed = folder / "chat_template.json"
    if listed.is_file():
        try:
            template = json.loads(listed.read_text()).get("chat_template")
        except (ValueError, AttributeError) as err:
            raise UserError(f"model {folder}: chat_template.json is not readable: {err}") from None
        return str(template) if template else None
    return None


def _check_tokenizer(where: str, processor: Any) -> None:
    """Refuse a tokenizer that cannot tokenize text: transformers builds an empty one (a single
    token) when the folder lacks its tokenizer files, and every dialogue would encode to nothing
    or to the wrong image-token counts."""
    tokenizer = getattr(processor, "tokenizer", processor)
    probe = tokenizer("What color is the sky?", add_special_tokens=False)["input_ids"]
    if len(tokenizer) < 32 or not probe:
        raise UserError(
            f"model {where}: its tokenizer is empty ({len(tokenizer)} token(s)): the folder "
            "lacks `tokenizer.json` (or `tokenizer_config.json` and the vocabulary files); copy "
            "them from the model's release into the folder"
        )


def _check_template(where: str, processor: Any) -> None:
    """Refuse a model without a chat template: labels on assistant turns come from it. A
    text-only model's tokenizer does not read `chat_template.json`: taken from there."""
    if chat_template_of(processor) is None and Path(where).is_dir():
        processor.chat_template = _processor_template(Path(where))
    if chat_template_of(processor) is None:
        raise UserError(
            f"model {where} has no chat template (looked for chat_template.jinja, "
            "chat_template.json and `chat_template` in tokenizer_config.json), and labels on "
            "assistant turns come from it: use an instruction-tuned (chat) checkpoint, or add a "
            "`chat_template.jinja` to the model folder"
        )


def load_model(
    path: Path | str,
    device: str | None = None,
    spec: ModelSpec | None = None,
    looked_at: Path | None = None,
) -> LoadedModel:
    """Load an image-text-to-text model with its processor, or a text-only causal LM with its
    tokenizer, in a sensible dtype and attention implementation for the device.

    `spec` is the job's `ModelSpec` (kind, dtype, attention, trust_remote_code); None takes
    the defaults. A model without a chat template is refused: labels come from the template.
    `looked_at`: the local folder `path` was looked for as (a relative `model.path` joined to
    the job's folder), named when it is neither a folder nor a model the hub gives.
    """
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per worker and trial is noise in a sweep's log
    hf_logging.set_verbosity_error()
    # peft and the Trainer read a property transformers 5 deprecated: not the user's concern
    warnings.filterwarnings(
        "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
    )

    spec = spec or ModelSpec()
    kind: str = spec.kind
    trust = spec.trust_remote_code
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype_name: str = spec.dtype
    if dtype_name == "auto":
        dtype_name = "bfloat16" if device == "cuda" else "float32"
    attn = _pick_attention(spec.attn_implementation, device)
    where = str(path)
    processor = _load_processor(where, kind, trust, looked_at or Path(where))
    if kind == "auto":
        kind = "image-text-to-text" if hasattr(processor, "image_processor") else "causal-lm"
    if kind == "image-text-to-text" and not hasattr(processor, "image_processor"):
        raise UserError(
            f"model {where}: `model.kind` is image-text-to-text but its processor has no image "
            "processor; use `model.kind: causal-lm` for a text-only model"
        )
    _check_tokenizer(where, processor)
    _check_template(where, processor)
    model, attn = _load_weights(where, kind, getattr(torch, dtype_name), attn, trust)
    model = model.to(device)
    return LoadedModel(
        path=where,
        model=model,
        processor=processor,
        device=device,
        kind=kind,
        dtype=dtype_name,
        attn_implementation=attn,
    )


def _load_processor(where: str, kind: str, trust: bool, looked_at: Path) -> Any:
    """The processor of an image-text-to-text model (`kind` auto or image-text-to-text), or the
    tokenizer of a causal LM; a UserError that says why when it cannot be loaded."""
    from transformers import AutoProcessor, AutoTokenizer

    try:
        if kind == "causal-lm":
            return AutoTokenizer.from_pretrained(where, trust_remote_code=trust)
        try:
            return AutoProcessor.from_pretrained(where, trust_remote_code=trust)
        except ImportError as err:
            if "torchvision" not in str(err).lower():
                raise
            return _processor_without_video(where, trust)
    except (OSError, ValueError) as err:
        # not a folder: transformers took it for a hub id, and the hub refused or was offline
        if not Path(where).is_dir() and (
            isinstance(err, OSError) or type(err).__name__ == "HFValidationError"
        ):
            raise UserError(no_such_model(where, looked_at, err)) from None
        if "Unrecognized processing class" in str(err):
            raise UserError(
                f"model {where}: the folder has no tokenizer or processor files "
                "(`tokenizer.json`, `tokenizer_config.json`, `preprocessor_config.json`): copy "
                "them from the model's release into the folder"
            ) from None
        hint = (
            " (its code lives in the model repository: set `model.trust_remote_code: true` "
            "if you trust it)"
            if "trust_remote_code" in str(err)
            else ""
        )
        raise UserError(
            f"model {where}: cannot load its processor or tokenizer{hint}: {err}"
        ) from None


def no_such_model(where: str, looked_at: Path, err: BaseException) -> str:
    """The message for a `model.path` that is neither a local folder nor a model on the hub (a
    misspelled folder is looked up on the hub, whose own error speaks only of connecting)."""
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return (
        f"model.path: no model folder `{where}` (resolved to {looked_at.resolve()}) and the "
        f"hub has no such model or cannot be reached ({reason}); check `model.path`: a folder "
        "is relative to the job file's folder"
    )


def _load_weights(where: str, kind: str, dtype: Any, attn: str, trust: bool) -> tuple[Any, str]:
    """The model's weights in `dtype` with the attention `attn`, or with eager attention for an
    architecture without it; returns the model and the attention it was loaded with. A folder
    transformers cannot load is one line naming it and what to do."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    auto = AutoModelForImageTextToText if kind == "image-text-to-text" else AutoModelForCausalLM
    try:
        try:
            model = auto.from_pretrained(
                where, dtype=dtype, attn_implementation=attn, trust_remote_code=trust
            )
        except ValueError as err:
            if "Unrecognized configuration class" in str(err):
                raise UserError(_wrong_kind(where, kind)) from None
            if "attn_implementation" not in str(err) and "attention" not in str(err).lower():
                raise UserError(f"model {where}: cannot load as {kind}: {err}") from None
            attn = "eager"  # an architecture without sdpa support: the always-available kernel
            model = auto.from_pretrained(
                where, dtype=dtype, attn_implementation=attn, trust_remote_code=trust
            )
    except OSError as err:
        raise UserError(f"model {where}: cannot load its weights: {err}") from None
    except Exception as err:
        if type(err).__name__ != "SafetensorError":
            raise
        raise UserError(
            f"model {where}: {_damaged_weights(where)} is damaged ({_first_line(err)}); "
            "download it again"
        ) from None
    return model, attn


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def _damaged_weights(where: str) -> str:
    """The first safetensors file of the folder whose header cannot be read (its name)."""
    from safetensors import safe_open

    for path in sorted(Path(where).glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception:
            return path.name
    return "a weights file"


def _wrong_kind(where: str, kind: str) -> str:
    """The message for a `model.kind` transformers has no model class of for this folder."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    )

    config = AutoConfig.from_pretrained(where)
    model_type = getattr(config, "model_type", "")
    other, names = (
        ("causal-lm", MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
        if kind == "image-text-to-text"
        else ("image-text-to-text", MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)
    )
    fix = (
        f"set `model.kind: auto` (or {other})"
        if model_type in names
        else "use a model transformers can load as one of the two kinds"
    )
    return (
        f"model {where}: `model.kind: {kind}`, but the folder holds a {type(config).__name__} "
        f"({other if model_type in names else model_type} model), which transformers cannot "
        f"load as {kind}: {fix}"
    )
