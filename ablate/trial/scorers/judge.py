"""`judge`: an LLM judge behind an OpenAI-compatible endpoint rates each generated answer 1-5 on
MMCR's five dimensions (`ablate.bench.judge`); a turn is right when its mean rating is at least
4, unscored when the judge never rated it usably."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.bench import BenchSpec
from ablate.bench.judge import DIMENSIONS, JudgeItem, judge_answers, judge_metrics
from ablate.trial.encode import ROLES, DialogueEncoder
from ablate.trial.evaluate import TurnScore
from ablate.trial.scorer import (
    SCORERS,
    EncodedBench,
    Scored,
    Scoring,
    assistant_turns,
    generated_answers,
)


@SCORERS.register("judge")
class JudgeScorer:
    def prepare(self, bench: EncodedBench, encoder: DialogueEncoder) -> Any:
        return None

    def score(self, bench: EncodedBench, exact: list[TurnScore], run: Scoring) -> Scored:
        answers = generated_answers(bench, run)
        return _judge(bench.spec, bench, answers, exact)


def _context_lines(record: dict[str, Any], turn_index: int) -> tuple[str, str]:
    """The dialogue before the question as `role: text` lines, and the question itself."""
    turns = record["conversations"][:turn_index]
    question = turns[-1]["value"] if turns else ""
    lines = [f"{ROLES.get(str(t.get('from')), 'assistant')}: {t['value']}" for t in turns[:-1]]
    return "\n".join(lines), question


def _judge(
    spec: BenchSpec, bench: EncodedBench, answers: list[str], exact: list[TurnScore]
) -> Scored:
    items: list[JudgeItem] = []
    where: list[tuple[str, int]] = []
    for record, example in zip(bench.records, bench.examples, strict=True):
        assistant = assistant_turns(record)
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
    return Scored(scores, judge_metrics(run.verdicts), info)
