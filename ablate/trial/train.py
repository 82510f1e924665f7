"""LoRA fine-tuning of a resident base model with transformers' Trainer and peft."""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ablate.config import LoraSpec, TrainSpec
from ablate.trial.encode import Encoded, PixelCache, collate


@dataclass(frozen=True)
class TrainStats:
    steps: int
    train_loss: float
    """Mean training loss over all steps."""
    final_loss: float
    """Mean loss over the last 10% of logged steps."""
    tokens: int
    """Non-pad tokens processed (all epochs)."""
    seconds: float


def attach_lora(model: Any, lora: LoraSpec, seed: int) -> Any:
    """A fresh adapter, initialised from `seed`; the base weights stay frozen and untouched."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    targets = (
        lora.target_modules if isinstance(lora.target_modules, str) else list(lora.target_modules)
    )
    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets
    )
    return get_peft_model(model, config)


def train_lora(
    peft_model: Any,
    examples: Sequence[Encoded],
    pixels: PixelCache,
    pad_id: int,
    train: TrainSpec,
    seed: int,
    device: str,
) -> TrainStats:
    from transformers import PrinterCallback, Trainer, TrainingArguments

    # transformers' own Trainer calls a deprecated property of the model: not the user's concern
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    start = time.perf_counter()
    steps_per_epoch = math.ceil(len(examples) / train.batch_size)
    max_steps = train.max_steps or max(1, math.ceil(steps_per_epoch * train.epochs))
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=train.batch_size,
            max_steps=max_steps,
            learning_rate=train.lr,
            warmup_steps=int(train.warmup_ratio * max_steps),
            weight_decay=train.weight_decay,
            lr_scheduler_type="linear",
            logging_steps=max(1, max_steps // 20),
            save_strategy="no",
            report_to=[],
            seed=seed,
            data_seed=seed,
            use_cpu=device == "cpu",
            bf16=device == "cuda",
            remove_unused_columns=False,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=peft_model,
            args=args,
            train_dataset=list(examples),
            data_collator=lambda batch: collate(batch, pixels, pad_id),
        )
        trainer.remove_callback(PrinterCallback)  # losses go to the TrialResult, not stdout
        result = trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    tail = losses[-max(1, len(losses) // 10) :] if losses else [float("nan")]
    # steps x batch rows, each counted by its own length: the data loader cycles epochs
    tokens_per_epoch = sum(len(e.input_ids) for e in examples)
    tokens = int(tokens_per_epoch * max_steps / steps_per_epoch)
    return TrainStats(
        steps=max_steps,
        train_loss=float(result.training_loss),
        final_loss=float(sum(tail) / len(tail)),
        tokens=tokens,
        seconds=time.perf_counter() - start,
    )
