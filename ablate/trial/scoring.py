"""Score a fine-tuned model on a bench file with the bench's scorer (exact, normalized, choice,
judge); the bench's encodings are kept resident in the worker's cache between trials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.bench import BenchSpec, bench_records, load_bench, record_labels
from ablate.bench.judge import DIMENSIONS, JudgeItem, judge_answers, judge_metrics
from ablate.models import LoadedModel
from ablate.trial.encode import DialogueEncoder, EncodeError, PixelCache
from ablate.trial.evaluate import (
    TurnScore,
    accuracy_metrics,
    choice_scores,
    generate_answers,
    normalize_answer,
    score_turns,
)


def _encode_bench(bench_file: Path, encoder: DialogueEncoder) -> dict[str, Any]:
    """The bench spec, its encoded dialogues and labels, and what could not be encoded."""
    spec = load_bench(bench_file)
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
    out = {
        "spec": spec,
        "records": kept,
        "examples": examples,
        "labels": labels,
        "skipped": skipped,
        "notes": notes,
    }
    if spec.scorer == "choice":
        out["candidates"] = _choice_candidates(kept, examples, encoder)
    return out


def _choice_candidates(records: list[Any], examples: list[Any], encoder: Any) -> list[Any]:
    """Per kept turn: [(encoded dialogue with that choice as the answer, start, end), ...] and
    the index of the reference among the choices."""
    out = []
    for record, example in zip(records, examples, strict=True):
        assistant = [
            i
            for i, t in enumerate(record["conversations"])
            if t.get("from") in ("gpt", "assistant") and i >= record["n_history"]
        ]
        for k, turn_index in enumerate(assistant[: len(example.turn_spans)]):
            turn = record["conversations"][turn_index]
            options = []
            for choice in turn["choices"]:
                # the dialogue up to and including this turn, with `choice` as the answer
                conv = [*record["conversations"][:turn_index], {**turn, "value": str(choice)}]
                enc = encoder.encode(conv, record["images"], history=record["n_history"])
                start, end = enc.turn_spans[k]
                options.append((enc, start, end))
            out.append((options, turn["choices"].index(turn["value"])))
    return out


def _context_lines(record: dict[str, Any], turn_index: int) -> tuple[str, str]:
    """The dialogue before the question as `role: text` lines, and the question itself."""
    turns = record["conversations"][:turn_index]
    question = turns[-1]["value"] if turns else ""
    lines = [
        f"{'user' if t.get('from') in ('human', 'user') else 'assistant'}: {t['value']}"
        for t in turns[:-1]
    ]
    return "\n".join(lines), question


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
    key = ("bench", str(bench_file), model_path, encoder.max_length)
    if key not in cache:
        cache[key] = _encode_bench(bench_file, encoder)
    bench = cache[key]
    spec = bench["spec"]
    exact, bench_loss = score_turns(
        model,
        bench["examples"],
        bench["labels"],
        pixels,
        pad_id,
        loaded.device,
        batch_size=spec.batch_size,
    )
    info: dict[str, Any] = {
        "bench": f"{spec.name}@v{spec.version}",
        "scorer": spec.scorer,
        "bench_turns": len(exact),
        "bench_skipped": sum(bench["skipped"].values()),
        **{f"bench_skipped/{k}": v for k, v in bench["skipped"].items()},
        "bench_skip_reasons": bench["notes"],
    }
    scores, extra, scorer_info = _scored(model, bench, exact, pixels, loaded, pad_id)
    info.update(scorer_info)
    metrics = accuracy_metrics(scores)
    metrics.update(extra)
    metrics["bench_loss"] = bench_loss
    return metrics, info


def _scored(
    model: Any,
    bench: dict[str, Any],
    exact: list[TurnScore],
    pixels: PixelCache | None,
    loaded: LoadedModel,
    pad_id: int,
) -> tuple[list[TurnScore], dict[str, float], dict[str, Any]]:
    """Per turn, right or wrong by the bench's scorer; extra metrics and info (the judge's)."""
    spec = bench["spec"]
    examples, device = bench["examples"], loaded.device
    if spec.scorer == "exact":
        return exact, {}, {}
    if spec.scorer == "choice":
        flat = [opt for options, _ in bench["candidates"] for opt in options]
        ll = choice_scores(model, flat, pixels, pad_id, device, batch_size=spec.batch_size)
        picks, n = [], 0
        for options, ref in bench["candidates"]:
            values = ll[n : n + len(options)]
            n += len(options)
            picks.append(max(range(len(values)), key=values.__getitem__) == ref)
        scores = [TurnScore(ok, s.contextual, s.labels) for ok, s in zip(picks, exact, strict=True)]
        return scores, {}, {}
    answers = generate_answers(
        model,
        examples,
        pixels,
        loaded.tokenizer,
        device,
        batch_size=spec.batch_size,
        max_new_tokens=spec.max_new_tokens,
    )
    flat_answers = [a for row in answers for a in row]
    if spec.scorer == "normalized":
        refs = [a for e in examples for a in e.answers]
        scores = [
            TurnScore(normalize_answer(a) == normalize_answer(r), s.contextual, s.labels)
            for a, r, s in zip(flat_answers, refs, exact, strict=True)
        ]
        return scores, {}, {}
    return _judge(spec, bench, flat_answers, exact)


def _judge(
    spec: BenchSpec, bench: dict[str, Any], answers: list[str], exact: list[TurnScore]
) -> tuple[list[TurnScore], dict[str, float], dict[str, Any]]:
    items: list[JudgeItem] = []
    where: list[tuple[str, int]] = []
    for record, example in zip(bench["records"], bench["examples"], strict=True):
        assistant = [
            i
            for i, t in enumerate(record["conversations"])
            if t.get("from") in ("gpt", "assistant") and i >= record["n_history"]
        ]
        for k, turn_index in enumerate(assistant[: len(example.turn_spans)]):
            context, question = _context_lines(record, turn_index)
            items.append(
                JudgeItem(
                    context=context,
                    question=question,
                    reference=example.answers[k],
                    answer=answers[len(items)],
                )
            )
            where.append((str(record.get("id", "?")), k))
    judge = spec.judge
    assert judge is not None  # load_bench refuses `scorer: judge` without a judge
    run = judge_answers(judge, items, Path(spec.source).parent)
    scores = [
        TurnScore(
            None if v.scores is None else sum(v.scores.values()) / len(DIMENSIONS) >= 4,
            s.contextual,
            s.labels,
        )
        for v, s in zip(run.verdicts, exact, strict=True)
    ]
    info = {
        "judge": {
            "model": judge.model,
            "rubric_version": judge.rubric_version,
            "url": judge.url,
        },
        "judge_requests": run.requests,
        "judge_cache_hits": run.cache_hits,
        **{f"judge_errors/{k}": n for k, n in run.errors.items()},
        "judge_records": [
            {
                "id": rid,
                "turn": k,
                "answer": item.answer,
                "scores": v.scores,
                "judge": v.judge,
                "cached": v.cached,
                "error": v.error,
            }
            for (rid, k), item, v in zip(where, items, run.verdicts, strict=True)
        ],
    }
    return scores, judge_metrics(run.verdicts), info
