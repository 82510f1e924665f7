"""`exact`: a turn is right when greedy decoding, given the reference history, reproduces the
reference answer and then ends the turn (one teacher-forced forward pass per dialogue)."""

from __future__ import annotations

from typing import Any

from ablate.models import LoadedModel
from ablate.trial.encode import DialogueEncoder, PixelCache
from ablate.trial.evaluate import TurnScore
from ablate.trial.scorer import SCORERS, EncodedBench, Scored


@SCORERS.register("exact")
class ExactScorer:
    def prepare(self, bench: EncodedBench, encoder: DialogueEncoder) -> Any:
        return None

    def score(
        self,
        model: Any,
        bench: EncodedBench,
        exact: list[TurnScore],
        pixels: PixelCache | None,
        loaded: LoadedModel,
        pad_id: int,
    ) -> Scored:
        return Scored(exact, {}, {})
