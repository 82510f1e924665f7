"""Score a fine-tuned model on a bench file with the bench's scorer (`ablate/trial/scorers/`);
the bench's encodings are kept resident in the worker's cache between trials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.bench import bench_records, load_bench, record_labels
from ablate.errors import UserError
from ablate.models import LoadedModel
from ablate.trial.encode import DialogueEncoder, EncodeError, PixelCache
from ablate.trial.evaluate import accuracy_metrics, score_turns
from ablate.trial.scorer import EncodedBench, Scoring, scorer_of


def _encode_bench(bench_file: Path, encoder: DialogueEncoder) -> EncodedBench:
    """The bench spec, its encoded dialogues and labels, and what could not be encoded."""
    spec = load_bench(bench_file)
    scorer = scorer_of(spec)  # an unknown scorer fails before anything is encoded
    records = bench_records(spec)
    kept: list[Any] = []
    examples: list[Any] = []
    labels: list[dict[str, str]] = []
    skipped: dict[str, int] = {}
    notes: list[str] = []
    for r in records:
        try:
            enc = encoder.encode(r["conversations"], r["images"], history=r["n_history"])
        except EncodeError as err:
            skipped[err.kind] = skipped.get(err.kind, 0) + 1
            if len(notes) < 5:
                notes.append(f"{r.get('id', '?')}: {err}")
            continue
        kept.append(r)
        examples.append(enc)
        labels.append(record_labels(spec, r))
    bench = EncodedBench(
        spec, kept, examples, labels, skipped, notes, stop_ids=tuple(encoder.stop_ids)
    )
    try:
        bench.extra = scorer.prepare(bench, encoder)
    except EncodeError as err:  # e.g. a `choices` entry that quotes a special token's text
        raise UserError(f"bench {bench_file}: scorer `{spec.scorer}`: {err}") from None
    return bench


def encoded_bench(
    bench_file: Path, encoder: DialogueEncoder, cache: dict[Any, Any], model_path: str
) -> EncodedBench:
    """The bench encoded for this model (resident in `cache`); a UserError when not one of its
    dialogues can be scored (images missing, a text-only model, all too long): what
    `run_trial` checks before training, since a bench scoring nothing gave `bench_loss` 0."""
    key = ("bench", str(bench_file), model_path, encoder.max_length)
    if key not in cache:
        cache[key] = _encode_bench(bench_file, encoder)
    bench: EncodedBench = cache[key]
    if not any(e.turn_spans for e in bench.examples):
        n = len(bench.examples) + sum(bench.skipped.values())
        cut = [e.first_answer_end for e in bench.examples if e.truncated_turns]
        if cut and not bench.skipped:
            # the cause first: progress lines and `ablate status` show a message's start only
            # (this said "Fix the bench's data or images" when the data was fine; review q#5)
            raise UserError(
                f"train.max_length {encoder.max_length} cuts every answer of bench {bench_file}: "
                f"raise train.max_length to at least {min(cut)} (the tokens up to the end of "
                f"the shortest first answer of its {n} dialogues; {max(cut)} keeps every first "
                "answer)"
            )
        causes = ", ".join(f"{k} {c}" for k, c in sorted(bench.skipped.items())) or "no answers"
        too_long = f"; {len(cut)} cut by train.max_length {encoder.max_length}" if cut else ""
        raise UserError(
            f"bench {bench_file}: none of its {n} dialogues can be scored with model "
            f"{model_path} ({causes}{too_long}); first problems: {'; '.join(bench.notes)}. Fix "
            "the bench's data or images (paths are relative to its `data` file), or use a "
            "model that takes them"
        )
    return bench


def score_bench(
    model: Any,
    bench_file: Path,
    encoder: DialogueEncoder,
    pixels: PixelCache | None,
    loaded: LoadedModel,
    pad_id: int,
    cache: dict[Any, Any],
    model_path: str,
) -> tuple[dict[str, float], dict[str, Any]]:
    """The bench's metrics (`accuracy_metrics` of its scorer, `bench_loss`) and what to log."""
    bench = encoded_bench(bench_file, encoder, cache, model_path)
    spec = bench.spec
    exact, bench_loss = score_turns(
        model,
        bench.examples,
        bench.labels,
        pixels,
        pad_id,
        loaded.device,
        batch_size=spec.batch_size,
    )
    info: dict[str, Any] = {
        "bench": f"{spec.name}@v{spec.version}",
        "scorer": spec.scorer,
        "bench_turns": len(exact),
        "bench_skipped": sum(bench.skipped.values()),
        **{f"bench_skipped/{k}": v for k, v in bench.skipped.items()},
        "bench_skip_reasons": bench.notes,
    }
    scored = scorer_of(spec).score(bench, exact, Scoring(model, pixels, loaded, pad_id))
    info.update(scored.info)
    metrics = accuracy_metrics(scored.turns)
    metrics.update(scored.metrics)
    metrics["bench_loss"] = bench_loss
    return metrics, info
