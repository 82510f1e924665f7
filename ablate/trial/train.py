"""LoRA fine-tuning of a resident base model with transformers' Trainer and peft.

Per-trial checkpoints: with `train.checkpoint_every: N` and a `checkpoint_dir`, the Trainer
saves the adapter, optimizer, scheduler and RNG state every N optimizer steps into the trial's
own folder; a retried trial (same data, seed and settings, so the same folder) resumes from the
last one, and a finished trial removes its folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.config import LoraSpec, TrainSpec
from ablate.errors import UserError
from ablate.trial.checkpoints import last_whole_checkpoint
from ablate.trial.encode import Encoded, PixelCache, collate
from ablate.trial.lora_targets import TARGETS_KEY, wrap_lora
from ablate.trial.packing import (
    collate_packed,
    labelled_loss,
    multimodal_rope,
    pack_bins,
    pack_capacity,
    packed_attention,
    supports_packing,
)


@dataclass(frozen=True)
class TrainStats:
    steps: int
    train_loss: float
    """Mean training loss over the steps run in this process."""
    final_loss: float
    """Mean loss over the last 10% of logged steps."""
    tokens: int
    """Non-pad tokens processed (all epochs)."""
    seconds: float
    padded_tokens: int = 0
    """Positions of the padded batches this process collated (real + pad)."""
    collated_tokens: int = 0
    """Real (non-pad) positions of those batches."""
    resumed_from_step: int = 0
    """The checkpoint step this run resumed from (0: a fresh start)."""
    batch_tokens: tuple[int, ...] = ()
    """Real tokens of each collated batch, in order (throughput of a window of steps)."""
    checkpointing_fallback: bool = False
    """The run ran out of GPU memory without gradient checkpointing and was redone with it."""
    liger: str = "off"
    """What `train.liger` did (`liger_mode`): on, off, or off and why."""
    loss_curve: tuple[tuple[int, float], ...] = ()
    """(step, training loss) at each logging step (about 20 a run): MLflow's loss chart."""
    checkpoint: str = ""
    """The checkpoint folder, kept when training ends: whoever gets the result removes it
    (`forget_checkpoint`); a killed driver's trial, requeued, resumes from it."""

    @property
    def pad_fraction(self) -> float:
        """Share of the collated positions that were padding."""
        return 1.0 - self.collated_tokens / self.padded_tokens if self.padded_tokens else 0.0


def attach_lora(model: Any, lora: LoraSpec, seed: int, source: str = "") -> Any:
    """A fresh adapter, initialised from `seed`; the base weights stay frozen and untouched.
    Targets that match no module: a UserError naming `source` (the job file) and the key."""
    peft_model = wrap_lora(
        model, lora, f"{source}: `{TARGETS_KEY}`" if source else f"`{TARGETS_KEY}`"
    )
    reset_adapter(peft_model, seed)  # the same draw a resident worker's reset makes
    return peft_model


def reset_adapter(peft_model: Any, seed: int) -> None:
    """Redraw the adapter in place from `seed`, as peft creates it: LoRA A kaiming-uniform, B
    zero, `modules_to_save` copied back from the base.

    The draws replay peft's own creation (nn.Linear's default init of A, then of B, then peft's
    kaiming A, layer by layer), so on the CPU the weights equal those of `get_peft_model` under
    `torch.manual_seed(seed)` bit for bit: trials of a study begun before this redraw existed
    keep their values. A fresh attach takes seconds for a 1B model (r=128 on all linear layers
    is ~100M parameters drawn on the CPU); this takes milliseconds on the GPU.
    """
    import torch
    from peft.tuners.lora import LoraLayer
    from peft.utils.other import ModulesToSaveWrapper

    torch.manual_seed(seed)
    with torch.no_grad():
        for module in peft_model.modules():
            if isinstance(module, LoraLayer):
                for name in module.lora_A:
                    created: tuple[Any, ...] = (
                        module.lora_A[name].weight,
                        module.lora_B[name].weight,
                    )
                    for weight in created:
                        scratch = torch.empty(weight.shape, device=weight.device)
                        torch.nn.init.kaiming_uniform_(scratch, a=math.sqrt(5))
                    module.reset_lora_parameters(name, True)
            elif isinstance(module, ModulesToSaveWrapper):
                for copy in module.modules_to_save.values():
                    copy.load_state_dict(module.original_module.state_dict())


def resident_adapter(
    slot: dict[str, Any], model: Any, lora: LoraSpec, seed: int, source: str = ""
) -> Any:
    """The adapter a worker keeps on its resident `model` between trials, redrawn from `seed`.

    `slot` lives as long as the worker; a different LoRA recipe unloads the old adapter first.
    `source`: the job file, named when the targets match no module.
    """
    held = slot.get("adapter")
    if held is not None and held[0] is model and held[1] == lora:
        reset_adapter(held[2], seed)
        return held[2]
    if held is not None:
        held[2].unload()
    peft_model = attach_lora(model, lora, seed, source)
    slot["adapter"] = (model, lora, peft_model)
    return peft_model


def length_batches_padding(lengths: Sequence[int], batch_size: int, order: Sequence[int]) -> float:
    """Share of padded positions when rows are batched in `order` (each batch padded to its max)."""
    real = padded = 0
    for lo in range(0, len(order), batch_size):
        batch = [lengths[i] for i in order[lo : lo + batch_size]]
        real += sum(batch)
        padded += max(batch) * len(batch)
    return 1.0 - real / padded if padded else 0.0


def train_lora(
    peft_model: Any,
    examples: Sequence[Encoded],
    pixels: PixelCache | None,
    pad_id: int,
    train: TrainSpec,
    seed: int,
    device: str,
    checkpoint: Path | None = None,
    callbacks: Sequence[Any] = (),
    fallback: bool = True,
) -> TrainStats:
    """Fine-tune the adapter on `examples`; `checkpoint` is the trial's folder (None: none).

    `callbacks` are extra transformers TrainerCallbacks (progress, early stop, fault tests).
    Gradient checkpointing is used only when memory needs it: a run without it that runs out of
    GPU memory starts again with it (the adapter redrawn from `seed`, or resumed from the
    trial's last checkpoint), so the result is the one a run with it would give. `fallback`
    False lets the out-of-memory error through instead (a benchmark probing what fits). Out of
    memory with checkpointing too: a UserError naming the settings that set a step's memory.
    """
    import torch

    run = functools.partial(
        _train, peft_model, examples, pixels, pad_id, seed=seed, device=device,
        checkpoint=checkpoint, callbacks=callbacks,
    )  # fmt: skip
    try:
        return run(train)
    except torch.OutOfMemoryError as err:
        if not fallback:
            raise
        too_big = None if not train.gradient_checkpointing else str(err)
    if too_big is None:  # outside the handler: the failed step's tensors are gone with its frames
        _free_gpu_memory()
        reset_adapter(peft_model, seed)
        try:
            stats = run(dataclasses.replace(train, gradient_checkpointing=True))
            return dataclasses.replace(stats, checkpointing_fallback=True)
        except torch.OutOfMemoryError as err:
            too_big = str(err)
    _free_gpu_memory()  # the worker lives on to run its next trial
    raise UserError(
        f"out of GPU memory even with gradient checkpointing ({too_big.splitlines()[0][:160]}): "
        "lower `train.pack_tokens` (with packing) or `train.batch_size`, or `train.max_length`, "
        "or run on a GPU with more memory"
    )


def _free_gpu_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _CountingCollator:
    """The Trainer's collator: collates with `collate_rows` and counts, per batch, the real
    (non-pad) tokens and the positions collated."""

    def __init__(
        self, collate_rows: Callable[[Sequence[dict[str, Any]]], tuple[dict[str, Any], int, int]]
    ) -> None:
        self.collate_rows = collate_rows
        self.real = 0
        self.padded = 0
        self.per_batch: list[int] = []

    def __call__(self, batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
        out, real, positions = self.collate_rows(batch)
        self.per_batch.append(real)
        self.real += real
        self.padded += positions
        return out


def _train(
    peft_model: Any,
    examples: Sequence[Encoded],
    pixels: PixelCache | None,
    pad_id: int,
    train: TrainSpec,
    *,
    seed: int,
    device: str,
    checkpoint: Path | None,
    callbacks: Sequence[Any],
) -> TrainStats:
    from transformers import PrinterCallback

    start = time.perf_counter()
    dataset, collate_rows = _training_rows(peft_model, examples, pixels, pad_id, train, seed)
    per_device = 1 if train.packing else train.batch_size  # a packed row holds many dialogues
    steps_per_epoch = math.ceil(len(dataset) / (per_device * train.grad_accum))
    max_steps = train.max_steps or max(1, math.ceil(steps_per_epoch * train.epochs))
    saving = checkpoint is not None and train.checkpoint_every > 0
    resume = None
    if saving and checkpoint is not None and checkpoint.is_dir():
        resume = last_whole_checkpoint(checkpoint)
    counted = _CountingCollator(collate_rows)
    with tempfile.TemporaryDirectory() as scratch:
        out_dir = str(checkpoint) if saving else scratch
        args = _training_arguments(train, out_dir, per_device, max_steps, saving, seed, device)
        trainer = _trainer_class(packed_loss=train.packing)(
            model=peft_model,
            args=args,
            train_dataset=dataset,  # a list of dicts is a map-style dataset
            data_collator=counted,
            callbacks=list(callbacks),
        )
        trainer.remove_callback(PrinterCallback)  # losses go to the TrialResult, not stdout
        base = peft_model.get_base_model()
        packed = packed_attention(base) if train.packing else contextlib.nullcontext()
        with packed, _checkpointing_undone(base):
            result = trainer.train(resume_from_checkpoint=resume)
        curve = _loss_curve(trainer.state.log_history)
    resumed = int(Path(resume).name.split("-")[-1]) if resume else 0
    # an epoch's tokens scaled by the epochs run: the data loader cycles epochs
    tokens_per_epoch = sum(len(e.input_ids) for e in examples)
    tokens = int(tokens_per_epoch * max_steps / steps_per_epoch)
    return TrainStats(
        steps=max_steps,
        train_loss=float(result.training_loss),
        final_loss=_tail_mean(curve),
        tokens=tokens,
        seconds=time.perf_counter() - start,
        padded_tokens=counted.padded,
        collated_tokens=counted.real,
        batch_tokens=tuple(counted.per_batch),
        resumed_from_step=resumed,
        checkpoint=str(checkpoint) if saving and checkpoint is not None else "",
        liger=liger_mode(train, device),
        loss_curve=curve,
    )


def _loss_curve(log_history: list[dict[str, Any]]) -> tuple[tuple[int, float], ...]:
    """(step, loss) of each logging step the trainer recorded."""
    return tuple((int(h["step"]), float(h["loss"])) for h in log_history if "loss" in h)


def _tail_mean(curve: tuple[tuple[int, float], ...]) -> float:
    """The mean loss over the last 10% of the logged steps (NaN when none was logged)."""
    tail = [loss for _, loss in curve[-max(1, len(curve) // 10) :]]
    return sum(tail) / len(tail) if tail else float("nan")


def liger_mode(train: TrainSpec, device: str) -> str:
    """What `train.liger` does on this machine: `on`, `off`, or the documented fallback on a
    machine without CUDA (Liger's kernels are Triton kernels for GPUs), which the trial's `info`
    reports. On CUDA without the package: refused, naming the setting and the fix."""
    if not train.liger:
        return "off"
    if device != "cuda":
        return "off: no CUDA device (Liger's Triton kernels need one)"
    if importlib.util.find_spec("liger_kernel") is None:
        raise UserError(
            "train.liger is true, but the liger-kernel package is not installed on this "
            "machine: `pip install 'ablate[gpu]'` there, or set `train.liger: false`"
        )
    return "on"


def _training_arguments(
    train: TrainSpec,
    out_dir: str,
    per_device: int,
    max_steps: int,
    saving: bool,
    seed: int,
    device: str,
) -> Any:
    """transformers' TrainingArguments of one trial (`out_dir` holds its checkpoints)."""
    from transformers import TrainingArguments

    liger = liger_mode(train, device) == "on"
    return TrainingArguments(
        output_dir=out_dir,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=train.grad_accum,
        max_steps=max_steps,
        learning_rate=train.lr,
        warmup_steps=int(train.warmup_ratio * max_steps),
        weight_decay=train.weight_decay,
        lr_scheduler_type=train.scheduler,
        logging_steps=max(1, max_steps // 20),
        save_strategy="steps" if saving else "no",
        save_steps=max(1, train.checkpoint_every),
        save_total_limit=1 if saving else None,
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=device == "cpu",
        bf16=device == "cuda",
        activation_checkpointing=train.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False}
        if train.gradient_checkpointing
        else None,
        use_liger_kernel=liger,
        # packed rows: Liger's RMSNorm, SwiGLU and RoPE, and the head and loss on labelled
        # positions only (`labelled_loss`); Liger's fused loss forward would be handed the
        # rows' boundaries (a TypeError in some releases) or drop them before attention
        liger_kernel_config={"fused_linear_cross_entropy": False, "cross_entropy": False}
        if liger and train.packing
        else None,
        train_sampling_strategy="group_by_length"
        if train.group_by_length and not train.packing
        else "random",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def checkpointing_off(model: Any) -> None:
    """Activation checkpointing off again, with the input embeddings' require-grad hook.

    transformers' Trainer turns it on for a run and never off: on a resident model every later
    trial would run checkpointed (about 30% slower).
    """
    if any(getattr(m, "gradient_checkpointing", False) for m in model.modules()):
        model.activation_checkpointing_disable()
        model.disable_input_require_grads()


@contextlib.contextmanager
def _checkpointing_undone(model: Any) -> Iterator[None]:
    try:
        yield
    finally:
        checkpointing_off(model)


def _training_rows(
    peft_model: Any,
    examples: Sequence[Encoded],
    pixels: PixelCache | None,
    pad_id: int,
    train: TrainSpec,
    seed: int,
) -> tuple[list[dict[str, Any]], Any]:
    """The Trainer's dataset and a collator returning (batch, real tokens, positions).

    Unpacked: one dict per dialogue (the length-grouped sampler reads `len(row["input_ids"])`);
    packed: one dict per row of dialogues (`pack_bins`), collated padding-free.
    """
    if not train.packing:

        def padded(batch: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], int, int]:
            out = collate([b["example"] for b in batch], pixels, pad_id)
            mask = out["attention_mask"]
            return out, int(mask.sum()), int(mask.numel())

        return [{"input_ids": e.input_ids, "example": e} for e in examples], padded
    base = peft_model.get_base_model()
    why = supports_packing(base)
    if why:
        raise UserError(
            f"`train.packing` cannot train this model: {why}; use `train.group_by_length: true`"
        )
    lengths = [len(e.input_ids) for e in examples]
    capacity = pack_capacity(lengths, train.batch_size, train.pack_tokens)
    bins = pack_bins(lengths, capacity, seed)
    rope_index = multimodal_rope(base)

    def packed(batch: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], int, int]:
        out = collate_packed([e for b in batch for e in b["examples"]], pixels, rope_index)
        n = int(out["input_ids"].numel())
        return out, n, n

    return [{"examples": [examples[i] for i in b]} for b in bins], packed


def _trainer_class(packed_loss: bool) -> Any:
    """transformers' Trainer; for packed rows, one whose loss runs the head only on labelled
    positions (`labelled_loss`)."""
    from transformers import Trainer

    if not packed_loss:
        return Trainer

    class LabelledLossTrainer(Trainer):
        loss_is_scaled_for_ga = True  # divided by the step's labelled tokens below

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            if num_items_in_batch is None:  # one row's mean, averaged over accumulation
                steps = self.current_gradient_accumulation_steps
                return labelled_loss(model, inputs) / steps
            return labelled_loss(model, inputs, num_items_in_batch)

    return LabelledLossTrainer
