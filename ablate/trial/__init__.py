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


def run_trial(job: Any, mixture: Any, cache: dict[Any, Any] | None = None) -> TrialResult:
    """Materialise `mixture` from the job's pool, LoRA fine-tune the job's model, score the bench.

    `cache` lives as long as the worker: it keeps the base model, the pool and the encoded bench
    resident, so a worker's second trial only builds a fresh adapter.
    """
    import time

    import torch

    from ablate.bench import bench_records, load_bench
    from ablate.errors import UserError
    from ablate.mixture import materialize, validate
    from ablate.models import load_model
    from ablate.pool import open_pool
    from ablate.trial.encode import DialogueEncoder, PixelCache
    from ablate.trial.evaluate import accuracy_metrics, score_turns
    from ablate.trial.train import attach_lora, train_lora

    start = time.perf_counter()
    cache = {} if cache is None else cache
    if job.pool_dir is None or job.bench_file is None:
        raise UserError(f"{job.source}: a training trial needs `pool` and `bench`")

    pool = _cached(cache, ("pool", str(job.pool_dir)), lambda: open_pool(job.pool_dir))
    validate(mixture, pool.manifest, source=job.source or "job")
    selection = materialize(mixture, pool)

    local = job.base_dir / job.model.path
    model_path = str(local) if local.exists() else job.model.path
    loaded = _cached(cache, ("model", model_path), lambda: load_model(model_path))
    if loaded.device == "cpu":
        torch.set_num_threads(job.train.threads or max(1, int(job.resources.cpus_per_trial)))
    encoder = _cached(
        cache,
        ("encoder", model_path, job.train.max_length),
        lambda: DialogueEncoder(loaded.processor, job.train.max_length),
    )
    pixels = _cached(
        cache, ("pixels", model_path), lambda: PixelCache(loaded.processor.image_processor)
    )
    pad_id = loaded.processor.tokenizer.pad_token_id

    table = pool.table().select(["id", "conversations", "images"]).take(selection.positions)
    rows = table.to_pylist()
    examples = [encoder.encode(r["conversations"], r["images"] or []) for r in rows]
    truncated = sum(e.truncated_turns for e in examples)
    examples = [e for e in examples if e.turn_spans]

    def encode_bench() -> tuple[Any, list[Any], list[dict[str, str]]]:
        spec = load_bench(job.bench_file)
        records = bench_records(spec)
        fields = (spec.domain_field, *spec.group_fields)
        labels = [
            {("domain" if f == spec.domain_field else f): str(r.get(f, "unknown")) for f in fields}
            for r in records
        ]
        return spec, [encoder.encode(r["conversations"], r["images"]) for r in records], labels

    bench, bench_examples, bench_labels = _cached(
        cache, ("bench", str(job.bench_file), model_path, job.train.max_length), encode_bench
    )

    peft_model = attach_lora(loaded.model, job.model.lora, mixture.seed)
    try:
        stats = train_lora(
            peft_model, examples, pixels, pad_id, job.train, mixture.seed, loaded.device
        )
        eval_start = time.perf_counter()
        scores, bench_loss = score_turns(
            peft_model, bench_examples, bench_labels, pixels, pad_id, loaded.device
        )
        eval_seconds = time.perf_counter() - eval_start
    finally:
        peft_model.unload()  # drop the adapter: the resident base model is as it was loaded
    metrics = accuracy_metrics(scores)
    metrics.update(
        train_loss=stats.train_loss, final_train_loss=stats.final_loss, bench_loss=bench_loss
    )
    return TrialResult(
        metrics=metrics,
        counts=dict(selection.counts),
        selection_hash=selection.content_hash,
        row_ids=tuple(selection.ids),
        seconds=time.perf_counter() - start,
        info={
            "steps": stats.steps,
            "train_tokens": stats.tokens,
            "train_seconds": stats.seconds,
            "train_tokens_per_second": stats.tokens / max(stats.seconds, 1e-9),
            "eval_seconds": eval_seconds,
            "truncated_turns": truncated,
            "bench": f"{bench.name}@v{bench.version}",
            "bench_turns": len(scores),
            "model": model_path,
            "device": loaded.device,
        },
    )


def _cached(cache: dict[Any, Any], key: tuple[Any, ...], make: Any) -> Any:
    """`cache[key]`, made on first use: what a worker keeps resident between trials."""
    if key not in cache:
        cache[key] = make()
    return cache[key]
