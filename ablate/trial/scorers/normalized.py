"""`normalized`: the generated answer (batched greedy generation) equals the reference after
lower-casing and removing punctuation, articles and extra spaces."""

from __future__ import annotations

from typing import Any

from ablate.trial.encode import DialogueEncoder
from ablate.trial.evaluate import TurnScore, normalize_answer
from ablate.trial.scorer import SCORERS, EncodedBench, Scored, Scoring, generated_answers


@SCORERS.register("normalized")
class NormalizedScorer:
    def prepare(self, bench: EncodedBench, encoder: DialogueEncoder) -> Any:
        return None

    def score(self, bench: EncodedBench, exact: list[TurnScore], run: Scoring) -> Scored:
        answers = generated_answers(bench, run)
        refs = [a for e in bench.examples for a in e.answers]
        scores = [
            TurnScore(normalize_answer(a) == normalize_answer(r), s.contextual, s.labels)
            for a, r, s in zip(answers, refs, exact, strict=True)
        ]
        return Scored(scores, {}, {})
