"""`judge`: an LLM judge behind an OpenAI-compatible endpoint rates each generated answer 1-5 on
MMCR's five dimensions (`ablate.bench.judge`); a turn is right when its mean rating is at least
4, unscored when the judge never rated it usably. A trial whose answers are mostly unscored
because the judge's server failed (refused key, no answer) fails with `JudgeUnavailable`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.bench import BenchSpec
from ablate.bench.judge import (
    DIMENSIONS,
    JudgeItem,
    check_available,
    context_lines,
    cost_metrics,
    judge_answers,
    judge_metrics,
)
from ablate.trial.encode import DialogueEncoder
from ablate.trial.evaluate import TurnScore
from ablate.trial.scorer import (
    SCORERS,
    EncodedBench,
    Scored,
    Scoring,
    assistant_turns,
    generated_answers,
)

#: Unparsable raw replies shown in a trial's `info.judge_unparsable` (all are in the cache), and
#: how much of each.
UNPARSABLE_SHOWN = 3
UNPARSABLE_CHARS = 400


@SCORERS.register("judge")
class JudgeScorer:
    def prepare(self, bench: EncodedBench, encoder: DialogueEncoder) -> Any:
        return None

    def score(self, bench: EncodedBench, exact: list[TurnScore], run: Scoring) -> Scored:
        answers = generated_answers(bench, run)
        return _judge(bench.spec, bench, answers, exact)


def _judge(
    spec: BenchSpec, bench: EncodedBench, answers: list[str], exact: list[TurnScore]
) -> Scored:
    items: list[JudgeItem] = []
    where: list[tuple[str, int]] = []
    for record, example in zip(bench.records, bench.examples, strict=True):
        assistant = assistant_turns(record)
        for k, turn_index in enumerate(assistant[: len(example.turn_spans)]):
            context, question = context_lines(record, turn_index)
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
    check_available(run)  # a refused key or a dead server fails the trial, naming the cause
    scores = [
        TurnScore(
            None if v.scores is None else sum(v.scores.values()) / len(DIMENSIONS) >= 4,
            s.contextual,
            s.labels,
        )
        for v, s in zip(run.verdicts, exact, strict=True)
    ]
    records = [
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
    ]
    unreadable = [
        {
            "id": r["id"],
            "turn": r["turn"],
            "reason": v.error,
            "raw": (v.raw or "")[:UNPARSABLE_CHARS],
        }
        for r, v in zip(records, run.verdicts, strict=True)
        if v.cause == "unparsable"
    ]
    info = {
        "judge": run.identity,
        "judge_cache_hits": run.cache_hits,
        **{f"judge_errors/{k}": n for k, n in run.errors.items()},
        "judge_unparsable": unreadable[:UNPARSABLE_SHOWN],
        "judge_records": records,
    }
    return Scored(scores, {**judge_metrics(run.verdicts), **cost_metrics(run)}, info)
