"""What `model.lora.target_modules` adapts, and a check of it that loads no weights.

`language-linear` names the language model's linear layers; anything else (`all-linear`, a list
of names) goes to peft as written (`resolve_targets`). `wrap_lora` is the trial's one call of
peft: a target that matches no module becomes one line naming the key and the fix, not peft's
traceback; so does each entry of a list that matches none (peft refuses only a list none of whose
entries match, and would adapt the others). `check_lora_targets(job)` runs that same call
before anything is enqueued, on the model built from its `config.json` on the meta device (no
weights read, no memory).

    check_lora_targets(job)   every model of the job (`model:` or each of `models:`)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ablate.config import JobSpec, LoraSpec, ModelSpec
from ablate.errors import UserError, did_you_mean

#: `lora.target_modules`: the language model's linear layers only (`language_linear`).
LANGUAGE_LINEAR = "language-linear"
#: peft's keyword: every linear layer but the output head, the vision tower included.
ALL_LINEAR = "all-linear"
#: The key a trial's message names (a trial of a `models:` entry sees it as `model:`).
TARGETS_KEY = "model.lora.target_modules"


def linear_names(module: Any) -> list[str]:
    """The names (inside `module`) of its linear layers, as peft counts them (nn.Linear and
    GPT-2's Conv1D)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    return [
        name
        for name, layer in module.named_modules()
        if isinstance(layer, (torch.nn.Linear, Conv1D))
    ]


def language_linear(model: Any) -> list[str]:
    """The names of the linear layers inside the model's language model (`get_decoder()`):
    peft's `all-linear` without the vision tower and projector, and without the output head,
    which lies outside the decoder. For a text-only causal LM the two are the same layers."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    if decoder is None or decoder is model:
        raise UserError(
            f"model.lora.target_modules: {LANGUAGE_LINEAR} cannot tell the language model of "
            f"{type(model).__name__} apart (it has no `get_decoder()`): name the modules "
            "(`target_modules: [q_proj, k_proj, v_proj, o_proj]`) or use `all-linear`"
        )
    prefix = next(name for name, module in model.named_modules() if module is decoder)
    return [f"{prefix}.{name}" for name in linear_names(decoder)]


def resolve_targets(model: Any, lora: LoraSpec) -> str | list[str]:
    """`lora.target_modules` as peft is given it: `language-linear` expanded to the model's
    layer names; a keyword or pattern string, or a list of names, as written."""
    if isinstance(lora.target_modules, str):
        return (
            language_linear(model)
            if lora.target_modules == LANGUAGE_LINEAR
            else lora.target_modules
        )
    return list(lora.target_modules)


def wrap_lora(model: Any, lora: LoraSpec, where: str = f"`{TARGETS_KEY}`") -> Any:
    """peft's model with a fresh LoRA adapter on `model` (`get_peft_model`, peft's own init).
    A `target_modules` that matches no module, or a list with an entry that matches none: a
    UserError naming `where` (`FILE: KEY`)."""
    from peft import LoraConfig, NoMatchingPeftModuleError, get_peft_model

    if not isinstance(lora.target_modules, str):
        unmatched = unmatched_entries(model, lora.target_modules)
        if unmatched:
            raise UserError(no_match(where, lora, model, unmatched))
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=resolve_targets(model, lora),
        modules_to_save=list(lora.modules_to_save) or None,
    )
    try:
        return get_peft_model(model, config)
    except NoMatchingPeftModuleError:
        raise UserError(no_match(where, lora, model)) from None


def unmatched_entries(model: Any, targets: Sequence[str]) -> list[str]:
    """The entries of a `target_modules` list that match no module of `model`, by peft's rule
    for a list (`check_target_module_exists`): an entry matches a module whose full name is
    the entry, or ends in `.` and the entry (`q_proj`, `self_attn.q_proj`)."""
    ends = {
        ".".join(parts[i:])
        for name, _ in model.named_modules()
        if name  # peft skips the model itself
        for parts in [name.split(".")]
        for i in range(len(parts))
    }
    return [entry for entry in targets if entry not in ends]


def _entry_hint(entry: str, linear: list[str]) -> str:
    """`entry` and the closest end of a linear layer's name with as many `.` parts as it."""
    n = entry.count(".") + 1
    ends = list(dict.fromkeys(".".join(name.split(".")[-n:]) for name in linear))
    return f"`{entry}`{did_you_mean(entry, ends, ignore_case=True)}"


def no_match(where: str, lora: LoraSpec, model: Any, unmatched: Sequence[str] | None = None) -> str:
    """The one line for targets that match no module of `model` (for a list, its `unmatched`
    entries; None: all of them): what was given, the closest keyword or linear-layer name for
    each, and what to write instead."""
    given = lora.target_modules
    linear = linear_names(model)
    suffixes = list(dict.fromkeys(name.rsplit(".", 1)[-1] for name in linear))
    folder = getattr(getattr(model, "config", None), "name_or_path", "") or "?"
    about = f"({type(model).__name__} at {folder})"
    listed = ", ".join(suffixes[:12]) + (", ..." if len(suffixes) > 12 else "")
    keywords = (
        f"`{LANGUAGE_LINEAR}` (its language model's linear layers), `{ALL_LINEAR}` (every "
        "linear layer)"
    )
    if isinstance(given, str):
        hint = did_you_mean(given, [LANGUAGE_LINEAR, ALL_LINEAR, *suffixes], ignore_case=True)
        if given in suffixes:  # peft matches a string as a pattern for the whole name
            hint = f" (one name is a pattern for the full module name: write a list, `[{given}]`)"
        return (
            f"{where} `{given}` matches no module of the model {about}{hint}; write {keywords}, "
            f"or a list of its layer names ({listed})"
        )
    shown = f"[{', '.join(given)}]"
    bad = list(given) if unmatched is None else list(unmatched)
    hints = [_entry_hint(entry, linear) for entry in bad]
    if len(bad) == len(given):
        found = ": " + ", ".join(hints) if any("did you mean" in h for h in hints) else ""
        return (
            f"{where} {shown} matches no module of the model {about}{found}; write {keywords}, "
            f"or a list of its layer names ({listed})"
        )
    verb, them = ("matches", "it") if len(bad) == 1 else ("match", "them")
    return (
        f"{where} {shown}: {', '.join(hints)} {verb} no module of the model {about}, and peft "
        f"would adapt the other entries only; correct or drop {them} (an entry names a layer, "
        f"or the end of its name after a `.`; its layer names: {listed}), or write {keywords}"
    )


def check_lora_targets(job: JobSpec) -> None:
    """Refuse, before any trial is enqueued, LoRA targets that match no module of the job's
    model (each model of `models:`): the trial's own `wrap_lora` on the model built on the meta
    device from its config, so no weights are read. A model this cannot build without its
    weights (a hub id not in the local cache, an architecture transformers does not know) is
    left to the trial, whose `wrap_lora` gives the same message.

    Cost, measured on 2 shared CPU cores (torch and transformers imported: 1.7 s), config read,
    meta build and match together: 8-20 ms for each tiny test family (Llama, Llava, Qwen2-VL,
    OneVision, Idefics3) with `language-linear` or a list, and 25-60 ms for a 7B Llama shape
    (config.json alone); `all-linear` 40-320 ms (peft's own search of the linear layers). A
    value other than `language-linear` imports peft once per process (about 2 s more), which
    `ablate trial` pays anyway. Nothing grows with the weights: no weights file is opened.
    """
    if job.objective.kind != "train":
        return
    for key, spec in job_models(job):
        model = meta_model(spec, job.base_dir)
        if model is None:
            continue
        source = job.source or "job"
        try:
            _check_on_meta(model, spec.lora, f"{source}: `{key}.lora.target_modules`")
        except UserError as err:  # `language_linear`'s message names no file
            message = str(err)
            raise UserError(
                message if message.startswith(source) else f"{source}: {message}"
            ) from None


def _check_on_meta(model: Any, lora: LoraSpec, where: str) -> None:
    import torch

    if lora.target_modules == LANGUAGE_LINEAR and resolve_targets(model, lora):
        return  # its names are the model's own: each matches
    # the adapter's layers on the meta device too: nothing allocated, nothing drawn
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peft's and transformers' deprecation notes
        wrap_lora(model, lora, where)


def meta_model(spec: ModelSpec, base_dir: Path) -> Any | None:
    """The model `spec` names with its layers on the meta device (shapes, no storage), from its
    `config.json` alone, as the trial's `load_model` would build it (same auto class); None
    when that cannot be done without loading it (then the trial checks its targets)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText
    from transformers.utils import logging as hf_logging

    found = model_config(spec, base_dir)
    if found is None:
        return None
    config = found[0]
    auto = (
        AutoModelForImageTextToText
        if model_kind(config, spec.kind) == "image-text-to-text"
        else AutoModelForCausalLM
    )
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with torch.device("meta"):
            return auto.from_config(config, trust_remote_code=spec.trust_remote_code)
    except Exception:  # unknown here: the trial says why
        return None
    finally:
        hf_logging.set_verbosity(verbosity)


def model_config(spec: ModelSpec, base_dir: Path) -> tuple[Any, str] | None:
    """The model's config (its `config.json`, no weights) and where it was read from (the
    folder, as the trial looks for it, or the hub id in the local cache); None when it cannot
    be read here (a hub id not cached, an architecture transformers does not know)."""
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    local = base_dir / spec.path  # as the trial looks for it (`resident_model`)
    where = str(local) if local.exists() else spec.path
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        config = AutoConfig.from_pretrained(
            where, trust_remote_code=spec.trust_remote_code, local_files_only=True
        )
    except Exception:  # unreadable or unknown here: the trial says why
        return None
    finally:
        hf_logging.set_verbosity(verbosity)
    return config, where


def model_kind(config: Any, kind: str) -> str:
    """`load_model`'s kind for `model.kind`: `auto` (which `load_model` decides by the
    processor, not read here) is image-text-to-text for an architecture transformers has an
    image-text-to-text class of, else causal-lm."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    if kind != "auto":
        return kind
    remote = "AutoModelForImageTextToText" in (getattr(config, "auto_map", None) or {})
    known = getattr(config, "model_type", "") in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    return "image-text-to-text" if remote or known else "causal-lm"


def check_model_paths(job: JobSpec) -> None:
    """Refuse, before any trial is enqueued, a model path that can only be a local folder (it
    starts with `/`, `.` or `~`, or has two slashes: no hub id does) when no such folder exists:
    before, every trial of that model failed on it, its message naming `model.path` for any
    model of `models:`. A name like `org/model` is left to the trial (a hub id)."""
    if job.objective.kind != "train":
        return
    for key, spec in job_models(job):
        path = spec.path
        local = path.startswith(("/", ".", "~")) or path.count("/") >= 2
        folder = job.base_dir / Path(path).expanduser()
        if local and not folder.is_dir():
            raise UserError(
                f"{job.source or 'job'}: `{key}.path` {path}: no such model folder (resolved "
                f"to {folder.resolve()}); a folder is relative to the job file's folder"
            )


def job_models(job: JobSpec) -> list[tuple[str, ModelSpec]]:
    """The job's models with the key a message names each by: `model`, or `models[i]`."""
    if job.models:
        return [(f"models[{i}]", m) for i, m in enumerate(job.models)]
    return [("model", job.model)]
