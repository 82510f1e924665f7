"""`run_trial`: one training trial, read top to bottom.

    set up     the pool and the mixture's selection (minus held-out rows), the model, its encoder
    encode     the selected dialogues (memoised per worker)
    train      a LoRA adapter on the resident model, redrawn from the mixture's seed
    evaluate   the bench and the held-out rows
    report     metrics and info as a TrialResult

Nothing is cleaned up at the end on purpose: `cache` lives as long as the worker and keeps the
base model, the pool, the encoded dialogues, the encoded bench and the adapter resident, so a
worker's second trial only redraws the adapter.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ablate.config import JobSpec
from ablate.errors import UserError
from ablate.mixture import (
    Mixture,
    Selection,
    held_rows,
    heldout_positions,
    materialize,
    with_within,
)
from ablate.models import LoadedModel, load_model
from ablate.pool import Pool, open_pool
from ablate.result import TrialResult
from ablate.trial.checkpoints import FINISHED_CHECKPOINT, checkpoint_folder
from ablate.trial.encode import DialogueEncoder, Encoded, EncodeError, PixelCache, encode_rows
from ablate.trial.heldout import heldout_metrics
from ablate.trial.packing import unpacked_attention
from ablate.trial.scoring import encoded_bench, score_bench
from ablate.trial.train import TrainStats, resident_adapter, train_lora

T = TypeVar("T")


@dataclass
class TrialData:
    """The rows a trial trains on, from the pool through the mixture's selection."""

    pool: Pool
    selection: Selection
    positions: np.ndarray
    """Pool positions trained on: the selection minus the held-out rows."""
    counts: dict[str, int]
    selection_hash: str
    heldout: dict[str, Any] | None
    """Held-out pool positions per label (`bench.heldout_of_pool`), or None."""


@dataclass
class TrialModel:
    """The resident base model and what encodes dialogues for it."""

    path: str
    loaded: LoadedModel
    encoder: DialogueEncoder
    pixels: PixelCache | None
    pad_id: int
    encoded: dict[int, Any]
    """Pool position -> Encoded (or the EncodeError), kept between trials."""


@dataclass
class TrainingSet:
    """The encoded dialogues a trial trains on and what was left out."""

    examples: list[Encoded]
    skipped: dict[str, int]
    notes: list[str]
    truncated: int


def run_trial(
    job: JobSpec,
    mixture: Mixture,
    cache: dict[Any, Any] | None = None,
    callbacks: Sequence[Any] = (),
) -> TrialResult:
    """Materialise `mixture` from the job's pool, LoRA fine-tune the job's model, score the bench.

    `cache` lives as long as the worker: it keeps the base model, the pool, encoded dialogues
    and the encoded bench resident, so a worker's second trial only builds a fresh adapter.
    `callbacks`: extra transformers TrainerCallbacks for the training loop.
    """
    start = time.perf_counter()
    cache = {} if cache is None else cache
    if job.pool_dir is None or (job.bench_file is None and not job.heldout_fraction):
        raise UserError(f"{job.source}: a training trial needs `pool` and `bench`")
    data = select_rows(job, mixture, cache)
    model = resident_model(job, cache)
    _check_text_only(job, data, model)
    if job.bench_file is not None:  # a bench that cannot be scored fails before training
        encoded_bench(job.bench_file, model.encoder, cache, model.path)
    training = encode_selection(job, data, model)
    # kept on the resident model between trials and redrawn from the seed: no per-trial rebuild
    slot: dict[str, Any] = _cached(cache, ("adapter",), dict)
    peft_model = resident_adapter(
        slot, model.loaded.model, job.model.lora, mixture.seed, job.source
    )
    stats = train(job, mixture, data, model, training, peft_model, callbacks, cache)
    eval_start = time.perf_counter()
    metrics, info = evaluate(job, data, model, peft_model, cache)
    eval_seconds = time.perf_counter() - eval_start
    metrics.update(train_loss=stats.train_loss, final_train_loss=stats.final_loss)
    info.update(_trial_info(stats, data, model, training, eval_seconds))
    return TrialResult(
        metrics=metrics,
        counts=data.counts,
        selection_hash=data.selection_hash,
        row_ids=tuple(data.pool.take(data.positions, ["id"]).column("id").to_pylist()),
        seconds=time.perf_counter() - start,
        info=info,
    )


def select_rows(job: JobSpec, mixture: Mixture, cache: dict[Any, Any]) -> TrialData:
    """Set up, data: the pool (resident), the mixture's selection, minus the held-out rows."""
    pool_dir = job.pool_dir
    assert pool_dir is not None  # run_trial checked it
    pool = _cached(cache, ("pool", str(pool_dir)), lambda: open_pool(pool_dir))
    heldout = None
    if job.heldout_fraction:
        heldout = _cached(
            cache,
            ("heldout", str(pool_dir), job.taxonomy, job.heldout_fraction, job.seed),
            lambda: heldout_positions(pool, job.taxonomy, job.heldout_fraction, job.seed),
        )
    # the held-out rows leave the pool before the draw: the trial trains on its full volume
    exclude = held_rows(heldout)
    mixture = with_within(mixture, job.within, job.source or "job")
    selection = materialize(mixture, pool, exclude, source=_held_source(job, exclude))
    return TrialData(
        pool=pool,
        selection=selection,
        positions=selection.positions,
        counts=dict(selection.counts),
        selection_hash=selection.content_hash,
        heldout=heldout,
    )


def _held_source(job: JobSpec, exclude: np.ndarray) -> str:
    """Where a supply error points: the job, and its held-out rows when they shrank the pool."""
    source = job.source or "job"
    if len(exclude):
        source += f" (its pool less the {len(exclude):,} rows `bench.heldout_of_pool` holds out)"
    return source


def resident_model(job: JobSpec, cache: dict[Any, Any]) -> TrialModel:
    """Set up, model: the base model (resident), its dialogue encoder and image cache."""
    import torch

    local = job.base_dir / job.model.path
    model_path = str(local) if local.exists() else job.model.path
    spec = job.model
    key = (
        "model",
        model_path,
        spec.kind,
        spec.dtype,
        spec.attn_implementation,
        spec.trust_remote_code,
    )
    try:
        loaded = _cached(cache, key, lambda: load_model(model_path, spec=spec, looked_at=local))
    except UserError as err:  # (the model's own keys: named with the job file they are in)
        raise UserError(f"{job.source}: {err}" if job.source else str(err)) from None
    if loaded.device == "cpu":
        torch.set_num_threads(job.train.threads or max(1, int(job.resources.cpus_per_trial)))
    try:
        encoder = _cached(
            cache,
            ("encoder", model_path, job.train.max_length),
            lambda: DialogueEncoder(loaded.processor, job.train.max_length),
        )
    except EncodeError as err:
        raise UserError(f"{job.source}: model {model_path}: {err}") from None
    pixels = None
    if loaded.kind == "image-text-to-text":
        pixels = _cached(
            cache, ("pixels", model_path), lambda: PixelCache(loaded.processor.image_processor)
        )
    pad_id = loaded.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = loaded.tokenizer.eos_token_id  # many causal LMs ship without a pad token
    encoded: dict[int, Any] = _cached(cache, ("encoded", model_path, job.train.max_length), dict)
    return TrialModel(model_path, loaded, encoder, pixels, pad_id, encoded)


def _check_text_only(job: JobSpec, data: TrialData, model: TrialModel) -> None:
    """Refuse, before anything is encoded, a text-only model given dialogues with images."""
    if model.loaded.kind != "causal-lm":
        return
    taxonomy = data.selection.taxonomy
    rows = data.pool.take(data.positions, ["n_images", taxonomy]).to_pylist()
    with_images = [r[taxonomy] for r in rows if r["n_images"]]
    if with_images:
        kinds = ", ".join(sorted(set(with_images)))
        raise UserError(
            f"{job.source}: model {model.path} is a text-only causal LM, but "
            f"{len(with_images)} of the {len(rows)} selected dialogues have images ({taxonomy} "
            f"{kinds}): use an image-text-to-text model in `model.path`, or leave those out of "
            "`task_types`"
        )


def encode_selection(job: JobSpec, data: TrialData, model: TrialModel) -> TrainingSet:
    """Encode: the selected dialogues; a UserError when none of them can be trained on."""
    examples, skipped, notes = encode_rows(data.pool, data.positions, model.encoder, model.encoded)
    truncated = sum(e.truncated_turns for e in examples)
    examples = [e for e in examples if e.turn_spans]
    if not examples:
        raise UserError(
            f"{job.source}: none of the {len(data.positions)} selected dialogues could be trained "
            f"on ({_describe(skipped)}; {truncated} turns cut by train.max_length); first "
            "problems: " + "; ".join(notes)
        )
    _check_skipped(job, data, model, skipped, notes)
    return TrainingSet(examples, skipped, notes, truncated)


def _check_skipped(
    job: JobSpec, data: TrialData, model: TrialModel, skipped: dict[str, int], notes: list[str]
) -> None:
    """Fail a trial that left out more than `train.max_skipped` of some task type's dialogues:
    what it trained on is no longer the mixture it stands for."""
    if not skipped:
        return
    taxonomy = data.selection.taxonomy
    labels = data.pool.take(data.positions, [taxonomy]).column(taxonomy).to_pylist()
    total: dict[str, int] = {}
    lost: dict[str, int] = {}
    for pos, label in zip(data.positions, labels, strict=True):
        total[label] = total.get(label, 0) + 1
        if isinstance(model.encoded[int(pos)], EncodeError):
            lost[label] = lost.get(label, 0) + 1
    over = [t for t, n in lost.items() if n > job.train.max_skipped * total[t]]
    if over:
        worst = max(over, key=lambda t: lost[t] / total[t])
        shares = ", ".join(f"{lost[t]} of {total[t]} `{t}`" for t in over)
        raise UserError(
            f"{job.source}: the trial could not train on {shares} selected dialogues "
            f"({_describe(skipped)}), more than `train.max_skipped` ({job.train.max_skipped:g}) "
            f"of a {taxonomy}: its mixture would not be the one asked for. First problems: "
            + "; ".join(notes)
            + f". {_advice(skipped)}, or allow it with --set "
            f"train.max_skipped={math.ceil(100 * lost[worst] / total[worst]) / 100:g}"
        )


def train(
    job: JobSpec,
    mixture: Mixture,
    data: TrialData,
    model: TrialModel,
    training: TrainingSet,
    peft_model: Any,
    callbacks: Sequence[Any],
    cache: dict[Any, Any],
) -> TrainStats:
    """Train: the adapter on the encoded dialogues; with `train.eval_every`, the bench is scored
    every so many steps and each value goes to the worker's `report` (which may stop the trial)."""
    checkpoint = None
    if job.train.checkpoint_dir and job.train.checkpoint_every:
        checkpoint = checkpoint_folder(job, model.path, data.selection_hash, mixture.seed)
    bench_file = job.bench_file
    if job.train.eval_every > 0 and bench_file is not None:

        def intermediate() -> float | None:
            with unpacked_attention(peft_model.get_base_model()):  # padded batches, generation
                scores, _ = _score(peft_model, bench_file, model, cache)
            peft_model.train()  # back to training mode after scoring
            return scores.get(job.objective.metric)

        callbacks = [*callbacks, _intermediate_scores(job.train.eval_every, intermediate, cache)]
    return train_lora(
        peft_model,
        training.examples,
        model.pixels,
        model.pad_id,
        job.train,
        mixture.seed,
        model.loaded.device,
        checkpoint=checkpoint,
        callbacks=callbacks,
    )


def evaluate(
    job: JobSpec, data: TrialData, model: TrialModel, peft_model: Any, cache: dict[Any, Any]
) -> tuple[dict[str, float], dict[str, Any]]:
    """Evaluate: the bench's scores and the held-out rows' losses."""
    metrics: dict[str, float] = {}
    info: dict[str, Any] = {}
    if job.bench_file is not None:
        metrics, info = _score(peft_model, job.bench_file, model, cache)
    if data.heldout is not None:
        metrics.update(
            heldout_metrics(
                peft_model,
                data.pool,
                data.heldout,
                model.encoder,
                model.encoded,
                model.pixels,
                model.pad_id,
                model.loaded.device,
            )
        )
    return metrics, info


def _trial_info(
    stats: TrainStats,
    data: TrialData,
    model: TrialModel,
    training: TrainingSet,
    eval_seconds: float,
) -> dict[str, Any]:
    """Report: what a trial logs besides its metrics."""
    loaded = model.loaded
    return {
        "steps": stats.steps,
        "train_tokens": stats.tokens,
        "train_seconds": stats.seconds,
        "train_tokens_per_second": stats.tokens / max(stats.seconds, 1e-9),
        "pad_fraction": stats.pad_fraction,
        "resumed_from_step": stats.resumed_from_step,
        FINISHED_CHECKPOINT: stats.checkpoint,  # (popped by whoever records the result)
        "gradient_checkpointing_fallback": stats.checkpointing_fallback,
        "liger": stats.liger,
        "loss_curve": [list(point) for point in stats.loss_curve],
        "eval_seconds": eval_seconds,
        "truncated_turns": training.truncated,
        "train_dialogues": len(training.examples),
        "skipped_dialogues": sum(training.skipped.values()),
        **{f"skipped/{k}": v for k, v in training.skipped.items()},
        "skip_reasons": training.notes,
        # dialogues with text before an image the template rendered after it (LLaVA-1.5)
        "images_moved_by_template": sum(e.images_moved for e in training.examples),
        # a nested mixture's rows per inner stratum (`base/task_type=single_image`): the
        # outer `counts` do not show what `within` drew
        **{f"strata/{key}": n for key, n in data.selection.cells.items()},
        # rows the job holds out of its pool (none of them drawn: the volume is whole)
        "heldout_rows": int(held_rows(data.heldout).size),
        "model": model.path,
        "model_kind": loaded.kind,
        "dtype": loaded.dtype,
        "attn_implementation": loaded.attn_implementation,
        "device": loaded.device,
    }


def _score(
    peft_model: Any, bench_file: Path, model: TrialModel, cache: dict[Any, Any]
) -> tuple[dict[str, float], dict[str, Any]]:
    return score_bench(
        peft_model,
        bench_file,
        model.encoder,
        model.pixels,
        model.loaded,
        model.pad_id,
        cache,
        model.path,
    )


#: What to do about dialogues left out for each kind of problem (`EncodeError.kind`).
_FIXES = {
    "too_long": "raise `train.max_length`",
    "image_count": "fix the pool's images",
    "unreadable_image": "fix the pool's images",
    "images_for_text_model": "use an image-text-to-text model",
    "template_refused": "give the model a chat template that takes these roles",
    "template_unstable": "give the model a prefix-stable chat template",
    "template_tail": "correct the model's chat template (a `chat_template.jinja` in its folder)",
    "special_token_text": "remove the special tokens' text (`<|im_end|>`, `</s>`) from the pool",
}


def _advice(skipped: dict[str, int]) -> str:
    fixes = dict.fromkeys(_FIXES.get(kind, "fix the pool") for kind in skipped)
    text = " or ".join(fixes)
    return text[:1].upper() + text[1:]


def _describe(skipped: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in skipped.items()) or "none skipped"


def _cached(cache: dict[Any, Any], key: tuple[Any, ...], make: Callable[[], T]) -> T:
    """`cache[key]`, made on first use: what a worker keeps resident between trials."""
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _intermediate_scores(
    every: int, score: Callable[[], float | None], cache: dict[Any, Any]
) -> Any:
    """A TrainerCallback scoring the bench every `every` steps; each value goes to the worker's
    `report(step, value)` (set by the sweep's worker: the driver prunes on them), which may raise
    to stop a pruned trial."""
    from transformers import TrainerCallback

    class IntermediateScores(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            step = state.global_step
            if step % every or step >= state.max_steps:
                return  # the final score is the trial's result, not an intermediate value
            value = score()
            report = cache.get("report")
            if value is not None and report is not None:
                report(step, float(value))

    return IntermediateScores()
