"""What `model.lora.target_modules` adapts: `language-linear` names the language model's linear
layers; anything else (`all-linear`, a list of names) goes to peft as written."""

from __future__ import annotations

from typing import Any

from ablate.errors import UserError

#: `lora.target_modules`: the language model's linear layers only (`language_linear`).
LANGUAGE_LINEAR = "language-linear"


def language_linear(model: Any) -> list[str]:
    """The names of the linear layers inside the model's language model (`get_decoder()`):
    peft's `all-linear` without the vision tower and projector, and without the output head,
    which lies outside the decoder. For a text-only causal LM the two are the same layers."""
    import torch
    from transformers.pytorch_utils import Conv1D

    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    if decoder is None or decoder is model:
        raise UserError(
            f"model.lora.target_modules: {LANGUAGE_LINEAR} cannot tell the language model of "
            f"{type(model).__name__} apart (it has no `get_decoder()`): name the modules "
            "(`target_modules: [q_proj, k_proj, v_proj, o_proj]`) or use `all-linear`"
        )
    prefix = next(name for name, module in model.named_modules() if module is decoder)
    return [
        f"{prefix}.{name}"
        for name, module in decoder.named_modules()
        if isinstance(module, (torch.nn.Linear, Conv1D))
    ]
