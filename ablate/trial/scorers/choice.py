"""`choice`: every assistant turn lists `choices`; right when the reference has the highest
summed log-likelihood as the answer."""

from __future__ import annotations

from typing import Any

from ablate.trial.encode import DialogueEncoder
from ablate.trial.evaluate import TurnScore, choice_scores
from ablate.trial.scorer import SCORERS, EncodedBench, Scored, Scoring, assistant_turns


@SCORERS.register("choice")
class ChoiceScorer:
    def prepare(self, bench: EncodedBench, encoder: DialogueEncoder) -> Any:
        return _choice_candidates(bench.records, bench.examples, encoder)

    def score(self, bench: EncodedBench, exact: list[TurnScore], run: Scoring) -> Scored:
        flat = [opt for options, _ in bench.extra for opt in options]
        batch = bench.spec.batch_size
        ll = choice_scores(
            run.model, flat, run.pixels, run.pad_id, run.loaded.device, batch_size=batch
        )
        picks, n = [], 0
        for options, ref in bench.extra:
            values = ll[n : n + len(options)]
            n += len(options)
            picks.append(max(range(len(values)), key=values.__getitem__) == ref)
        scores = [TurnScore(ok, s.contextual, s.labels) for ok, s in zip(picks, exact, strict=True)]
        return Scored(scores, {}, {})


def _choice_candidates(records: list[Any], examples: list[Any], encoder: Any) -> list[Any]:
    """Per kept turn: [(encoded dialogue with that choice as the answer, start, end), ...] and
    the index of the reference among the choices."""
    out = []
    for record, example in zip(records, examples, strict=True):
        assistant = assistant_turns(record)
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
