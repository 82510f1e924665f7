"""One trial: materialise a mixture, LoRA fine-tune, benchmark. Usable alone, without Ray."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrialResult:
    """What one trial returns to the driver (plain data: it crosses process boundaries)."""

    metrics: dict[str, float]
    """Benchmark scores (`overall_accuracy`, `contextual_accuracy`, `accuracy/<domain>`, ...) and losses."""
    counts: dict[str, int] = field(default_factory=dict)
    """Rows per task type actually selected."""
    selection_hash: str = ""
    """Content hash of the selected rows (same hash = same training data)."""
    row_ids: tuple[str, ...] = ()
    """Pool ids of the selected rows, in training order."""
    seconds: float = 0.0
    """Wall time of the whole trial."""
    info: dict[str, Any] = field(default_factory=dict)
    """Anything else worth logging: steps, tokens, tokens per second, model, device."""


def run_objective(job: Any, mixture: Any, cache: dict[Any, Any] | None = None) -> TrialResult:
    """Run one trial of the job's objective kind: `train` fine-tunes, `python` calls the target,
    `sim` scores a built-in landscape (`cache["report"]`, if set, gets its intermediate values)."""
    import time

    start = time.perf_counter()
    if job.objective.kind == "python":
        from ablate.objectives import run_python_objective

        result = run_python_objective(job, mixture)
    elif job.objective.kind == "sim":
        from ablate.sim import run_sim_objective

        result = run_sim_objective(job, mixture, (cache or {}).get("report"))
    else:
        result = run_trial(job, mixture, cache)
    result.seconds = result.seconds or (time.perf_counter() - start)
    return result


def run_trial(
    job: Any, mixture: Any, cache: dict[Any, Any] | None = None, callbacks: Any = ()
) -> TrialResult:
    """Materialise `mixture` from the job's pool, LoRA fine-tune the job's model, score the bench.

    `cache` lives as long as the worker: it keeps the base model, the pool, encoded dialogues
    and the encoded bench resident, so a worker's second trial only builds a fresh adapter.
    `callbacks`: extra transformers TrainerCallbacks for the training loop.
    """
    import time

    import torch

    from ablate.errors import UserError
    from ablate.mixture import materialize, validate
    from ablate.models import load_model
    from ablate.pool import open_pool
    from ablate.trial.encode import DialogueEncoder, EncodeError, PixelCache
    from ablate.trial.scoring import score_bench
    from ablate.trial.train import resident_adapter, train_lora

    start = time.perf_counter()
    cache = {} if cache is None else cache
    if job.pool_dir is None or (job.bench_file is None and not job.heldout_fraction):
        raise UserError(f"{job.source}: a training trial needs `pool` and `bench`")

    pool = _cached(cache, ("pool", str(job.pool_dir)), lambda: open_pool(job.pool_dir))
    validate(mixture, pool.manifest, source=job.source or "job")
    selection = materialize(mixture, pool)
    positions, counts, selection_hash = (
        selection.positions,
        dict(selection.counts),
        selection.content_hash,
    )
    heldout = None
    if job.heldout_fraction:
        heldout = _cached(
            cache,
            ("heldout", str(job.pool_dir), job.taxonomy, job.heldout_fraction, job.seed),
            lambda: heldout_positions(pool, job.taxonomy, job.heldout_fraction, job.seed),
        )
        positions, counts, selection_hash = _without(pool, selection, heldout)

    local = job.base_dir / job.model.path
    model_path = str(local) if local.exists() else job.model.path
    spec = job.model
    loaded = _cached(
        cache,
        (
            "model",
            model_path,
            spec.kind,
            spec.dtype,
            spec.attn_implementation,
            spec.trust_remote_code,
        ),
        lambda: load_model(model_path, spec=spec),
    )
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

    encoded = _cached(cache, ("encoded", model_path, job.train.max_length), dict)
    examples, skipped, notes = _encode_rows(pool, positions, encoder, encoded)
    truncated = sum(e.truncated_turns for e in examples)
    examples = [e for e in examples if e.turn_spans]
    if not examples:
        raise UserError(
            f"{job.source}: none of the {len(positions)} selected dialogues could be trained on "
            f"({_describe(skipped)}; {truncated} turns cut by train.max_length); first problems: "
            + "; ".join(notes)
        )

    checkpoint = None
    if job.train.checkpoint_dir and job.train.checkpoint_every:
        checkpoint = _checkpoint_folder(job, model_path, selection_hash, mixture.seed)

    # kept on the resident model between trials and redrawn from the seed: no per-trial rebuild
    slot = _cached(cache, ("adapter",), dict)
    peft_model = resident_adapter(slot, loaded.model, job.model.lora, mixture.seed)
    if job.train.eval_every > 0 and job.bench_file is not None:
        from ablate.trial.packing import unpacked_attention

        def intermediate() -> float | None:
            with unpacked_attention(peft_model.get_base_model()):  # padded batches, generation
                scores, _ = score_bench(
                    peft_model, job.bench_file, encoder, pixels, loaded, pad_id, cache, model_path
                )
            peft_model.train()  # back to training mode after scoring
            return scores.get(job.objective.metric)

        callbacks = [*callbacks, _intermediate_scores(job.train.eval_every, intermediate, cache)]
    stats = train_lora(
        peft_model,
        examples,
        pixels,
        pad_id,
        job.train,
        mixture.seed,
        loaded.device,
        checkpoint=checkpoint,
        callbacks=callbacks,
    )
    eval_start = time.perf_counter()
    metrics: dict[str, float] = {}
    info: dict[str, Any] = {}
    if job.bench_file is not None:
        metrics, info = score_bench(
            peft_model, job.bench_file, encoder, pixels, loaded, pad_id, cache, model_path
        )
    if heldout is not None:
        metrics.update(
            _heldout_metrics(
                peft_model,
                pool,
                heldout,
                job.taxonomy,
                encoder,
                encoded,
                pixels,
                pad_id,
                loaded.device,
            )
        )
    eval_seconds = time.perf_counter() - eval_start
    metrics.update(train_loss=stats.train_loss, final_train_loss=stats.final_loss)
    info.update(
        {
            "steps": stats.steps,
            "train_tokens": stats.tokens,
            "train_seconds": stats.seconds,
            "train_tokens_per_second": stats.tokens / max(stats.seconds, 1e-9),
            "pad_fraction": stats.pad_fraction,
            "resumed_from_step": stats.resumed_from_step,
            "gradient_checkpointing_fallback": stats.checkpointing_fallback,
            "eval_seconds": eval_seconds,
            "truncated_turns": truncated,
            "train_dialogues": len(examples),
            "skipped_dialogues": sum(skipped.values()),
            **{f"skipped/{k}": v for k, v in skipped.items()},
            "skip_reasons": notes,
            "heldout_excluded": len(selection.positions) - len(positions),
            "model": model_path,
            "model_kind": loaded.kind,
            "dtype": loaded.dtype,
            "attn_implementation": loaded.attn_implementation,
            "device": loaded.device,
        }
    )
    return TrialResult(
        metrics=metrics,
        counts=counts,
        selection_hash=selection_hash,
        row_ids=tuple(pool.take(positions, ["id"]).column("id").to_pylist()),
        seconds=time.perf_counter() - start,
        info=info,
    )


def _encode_rows(
    pool: Any, positions: Any, encoder: Any, encoded: dict[int, Any]
) -> tuple[list[Any], dict[str, int], list[str]]:
    """Encoded dialogues of the pool rows at `positions` (memoised per worker); what failed.

    A dialogue that cannot be encoded (image count, unreadable image, ...) is left out and
    counted by kind; the first five reasons are kept with the row ids.
    """
    from ablate.trial.encode import EncodeError

    needed = {int(p) for p in positions}
    todo = sorted(needed - set(encoded))
    if len(encoded) + len(todo) > 200_000:  # bound a worker's memory on huge pools
        for key in [k for k in encoded if k not in needed]:
            del encoded[key]
    if todo:
        table = pool.take(todo, ["id", "conversations", "images"])
        for pos, row in zip(todo, table.to_pylist(), strict=True):
            try:
                encoded[pos] = encoder.encode(row["conversations"], row["images"] or [])
            except EncodeError as err:
                err.row_id = row["id"]  # type: ignore[attr-defined]
                encoded[pos] = err
    examples: list[Any] = []
    skipped: dict[str, int] = {}
    notes: list[str] = []
    for p in positions:
        item = encoded[int(p)]
        if isinstance(item, EncodeError):
            skipped[item.kind] = skipped.get(item.kind, 0) + 1
            if len(notes) < 5:
                notes.append(f"{getattr(item, 'row_id', p)}: {item}")
        else:
            examples.append(item)
    return examples, skipped, notes


def _describe(skipped: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in skipped.items()) or "none skipped"


def heldout_positions(pool: Any, taxonomy: str, fraction: float, seed: int) -> dict[str, Any]:
    """The same held-out rows for every trial of a job: per label, a seeded share `fraction`
    (at least one row of every label with two or more)."""
    import hashlib

    import numpy as np

    labels = pool.labels(taxonomy)
    out = {}
    for label in sorted(set(labels.tolist())):
        rows = np.flatnonzero(labels == label)
        n = round(fraction * len(rows))
        n = max(n, 1 if len(rows) >= 2 else 0)
        digest = hashlib.sha256(f"{seed}\x1fheldout\x1f{label}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        out[label] = np.sort(rng.choice(rows, size=n, replace=False)) if n else rows[:0]
    return out


def _without(pool: Any, selection: Any, heldout: dict[str, Any]) -> tuple[Any, dict[str, int], str]:
    """The selection minus the held-out rows: positions, counts per label, a new content hash."""
    import hashlib

    import numpy as np

    held = np.concatenate(list(heldout.values())) if heldout else np.empty(0, dtype=np.int64)
    keep = selection.positions[~np.isin(selection.positions, held)]
    labels = pool.labels(selection.taxonomy)[keep]
    counts = {k: int((labels == k).sum()) for k in selection.counts}
    h = hashlib.sha256(selection.content_hash.encode())
    for p in keep.tolist():
        h.update(b"\n" + str(p).encode())
    return keep, counts, h.hexdigest()


def _heldout_metrics(
    model: Any,
    pool: Any,
    heldout: dict[str, Any],
    taxonomy: str,
    encoder: Any,
    encoded: dict[int, Any],
    pixels: Any,
    pad_id: int,
    device: str,
) -> dict[str, float]:
    """`heldout_loss` (per answer token, all held-out rows) and `heldout_loss/<label>`."""
    from ablate.trial.evaluate import example_losses

    total = [0.0, 0]
    out = {}
    for label, positions in heldout.items():
        examples, _, _ = _encode_rows(pool, positions, encoder, encoded)
        examples = [e for e in examples if e.turn_spans]
        if not examples:
            continue
        losses = example_losses(model, examples, pixels, pad_id, device)
        loss, tokens = sum(x for x, _ in losses), sum(n for _, n in losses)
        out[f"heldout_loss/{label}"] = loss / max(1, tokens)
        total[0] += loss
        total[1] += tokens
    if total[1]:
        out["heldout_loss"] = total[0] / total[1]
    del taxonomy  # the labels are the job's taxonomy; kept in the signature for clarity
    return out


def _checkpoint_folder(job: Any, model_path: str, selection_hash: str, seed: int) -> Any:
    """`<checkpoint_dir>/<selection hash[:16]>-s<seed>-<settings hash[:8]>`: a retried trial
    finds its own folder; a change of model, LoRA or training settings starts afresh."""
    import dataclasses
    import hashlib
    import json

    from ablate.config import resolve_path, to_dict

    train = dataclasses.replace(job.train, checkpoint_dir=None, checkpoint_every=0, threads=None)
    settings = json.dumps([model_path, to_dict(job.model), to_dict(train)], sort_keys=True)
    digest = hashlib.sha256(settings.encode()).hexdigest()[:8]
    root = resolve_path(job.train.checkpoint_dir, job.base_dir)
    return root / f"{selection_hash[:16]}-s{seed}-{digest}"


def _cached(cache: dict[Any, Any], key: tuple[Any, ...], make: Any) -> Any:
    """`cache[key]`, made on first use: what a worker keeps resident between trials."""
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _intermediate_scores(every: int, score: Any, cache: dict[Any, Any]) -> Any:
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
