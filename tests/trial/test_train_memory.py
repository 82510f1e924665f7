"""Gradient checkpointing only when memory needs it: an out-of-memory run is redone with it."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from paths_for_tests import REPO

sys.path.insert(0, str(REPO / "benchmarks"))


class OutOfMemoryWithoutCheckpointing:
    """A TrainerCallback standing in for a GPU that cannot hold a step's activations: the
    first step without gradient checkpointing raises what CUDA raises (no GPU here)."""

    def __init__(self) -> None:
        self.raised = 0

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        import torch

        if not args.activation_checkpointing and state.global_step == 1:
            self.raised += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.slow
@pytest.mark.parametrize("packing", [False, True])
def test_out_of_memory_is_redone_with_checkpointing_to_the_same_result(packing: bool) -> None:
    from trainer_throughput import SHAPES, build_model, synthetic_dialogues

    from ablate.config import LoraSpec, TrainSpec
    from ablate.trial.train import attach_lora, train_lora

    model = build_model(SHAPES["tiny"], "cpu", "sdpa")
    data = synthetic_dialogues(16, 128, 512, seed=0)
    stats = {}
    for name, checkpointing in (("fallback", False), ("from the start", True)):
        spec = TrainSpec(lr=1e-3, batch_size=4, max_steps=4, packing=packing,
                         gradient_checkpointing=checkpointing)  # fmt: skip
        oom = OutOfMemoryWithoutCheckpointing()
        peft_model = attach_lora(model, LoraSpec(r=8, alpha=16), seed=7)
        try:
            stats[name] = train_lora(peft_model, data, None, 0, spec, 7, "cpu", callbacks=[oom])
        finally:
            peft_model.unload()
        assert oom.raised == (0 if checkpointing else 1)
    assert stats["fallback"].checkpointing_fallback
    assert not stats["from the start"].checkpointing_fallback
    assert stats["fallback"].train_loss == pytest.approx(
        stats["from the start"].train_loss, rel=1e-5
    )
    assert stats["fallback"].steps == stats["from the start"].steps == 4


class OutOfMemoryAlways(OutOfMemoryWithoutCheckpointing):
    """A GPU that cannot hold a step even with gradient checkpointing."""

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        import torch

        if state.global_step == 1:
            self.raised += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")


@pytest.mark.parametrize("checkpointing", [False, True])
def test_out_of_memory_even_with_checkpointing_names_the_settings_to_lower(
    checkpointing: bool,
) -> None:
    from trainer_throughput import SHAPES, build_model, synthetic_dialogues

    from ablate.config import LoraSpec, TrainSpec
    from ablate.errors import UserError
    from ablate.trial.train import attach_lora, train_lora

    model = build_model(SHAPES["tiny"], "cpu", "sdpa")
    data = synthetic_dialogues(8, 64, 256, seed=0)
    spec = TrainSpec(lr=1e-3, batch_size=4, max_steps=2, gradient_checkpointing=checkpointing)
    oom = OutOfMemoryAlways()
    peft_model = attach_lora(model, LoraSpec(r=4, alpha=8), seed=7)
    try:
        with pytest.raises(UserError) as err:
            train_lora(peft_model, data, None, 0, spec, 7, "cpu", callbacks=[oom])
    finally:
        peft_model.unload()
    assert oom.raised == (1 if checkpointing else 2)  # without it: the fallback was tried first
    text = str(err.value)
    assert text.startswith("out of GPU memory even with gradient checkpointing (CUDA out of")
    assert "`train.pack_tokens`" in text and "`train.max_length`" in text


@pytest.mark.slow
def test_a_resident_model_leaves_each_trial_without_checkpointing() -> None:
    """The Trainer turns checkpointing on and never off: after a checkpointed trial (or an
    out-of-memory fallback) the next trial on the worker must run as its own recipe says."""
    from trainer_throughput import SHAPES, build_model, synthetic_dialogues
    from transformers import TrainerCallback

    from ablate.config import LoraSpec, TrainSpec
    from ablate.trial.train import attach_lora, train_lora

    model = build_model(SHAPES["tiny"], "cpu", "sdpa")
    data = synthetic_dialogues(8, 128, 512, seed=0)
    peft_model = attach_lora(model, LoraSpec(r=8, alpha=16), seed=7)

    def checkpointed_layers() -> int:
        return sum(bool(getattr(m, "gradient_checkpointing", False)) for m in model.modules())

    seen: list[bool] = []

    class Probe(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            seen.append(checkpointed_layers() > 0)

    try:
        for checkpointing in (True, False):
            spec = TrainSpec(batch_size=4, max_steps=1, gradient_checkpointing=checkpointing)
            train_lora(peft_model, data, None, 0, spec, 7, "cpu", callbacks=[Probe()])
            assert checkpointed_layers() == 0
            assert not getattr(model, "_require_grads_hooks", None)  # the input-grad hook too
        oom = OutOfMemoryWithoutCheckpointing()
        spec = TrainSpec(batch_size=4, max_steps=2)
        assert train_lora(
            peft_model, data, None, 0, spec, 7, "cpu", callbacks=[oom]
        ).checkpointing_fallback
        assert checkpointed_layers() == 0
        with pytest.raises(torch_oom()):  # a benchmark probing what fits gets the error itself
            train_lora(peft_model, data, None, 0, spec, 7, "cpu", callbacks=[oom], fallback=False)
    finally:
        peft_model.unload()
    assert seen == [True, False]  # checkpointed as asked in trial 1, not in trial 2


def torch_oom() -> type[BaseException]:
    import torch

    return torch.OutOfMemoryError
