"""`exact`: a turn is right when greedy decoding, given the reference history, reproduces the
reference answer and then ends the turn (one teacher-forced forward pass per dialogue)."""

from __future__ import annotations

from typing import Any

from ablate.trial.encode import DialogueEncoder
from ablate.trial.evaluate import TurnScore
from ablate.trial.scorer import SCORERS, EncodedBench, Scored, Scoring


@SCORERS.register("exact")
class ExactScorer:
    def prepare(self, bench: EncodedBench, encoder: DialogueEncoder) -> Any:
        return None

    def score(self, bench: EncodedBench, exact: list[TurnScore], run: Scoring) -> Scored:
        return Scored(exact, {}, {})
