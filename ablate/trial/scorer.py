"""The scorer registry: `scorer:` of a bench file -> how its assistant turns are marked right or
wrong. A scorer is one file in `ablate/trial/scorers/` with a class decorated
`@SCORERS.register("name")`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ablate.bench import BenchSpec
from ablate.models import LoadedModel
from ablate.registry import Registry
from ablate.trial.encode import DialogueEncoder, PixelCache
from ablate.trial.evaluate import TurnScore, generate_answers


@dataclass
class EncodedBench:
    """A bench encoded once per worker: the dialogues kept, their encodings and labels, what
    could not be encoded, and what the scorer prepared (`extra`)."""

    spec: BenchSpec
    records: list[dict[str, Any]]
    examples: list[Any]
    labels: list[dict[str, str]]
    skipped: dict[str, int]
    notes: list[str]
    extra: Any = None
    stop_ids: tuple[int, ...] = ()
    """The tokens that end an answer in generation (`DialogueEncoder.stop_ids`)."""


@dataclass
class Scored:
    """Per turn, right or wrong (None: unscored); extra metrics and info for the trial's log."""

    turns: list[TurnScore]
    metrics: dict[str, float]
    info: dict[str, Any]


@dataclass
class Scoring:
    """The fine-tuned model being scored and what its forward passes need."""

    model: Any
    pixels: PixelCache | None
    loaded: LoadedModel
    pad_id: int


class Scorer(Protocol):
    def prepare(self, bench: EncodedBench, encoder: DialogueEncoder) -> Any:
        """Encode what scoring needs beyond the dialogues (kept in `bench.extra`)."""
        ...

    def score(self, bench: EncodedBench, exact: list[TurnScore], run: Scoring) -> Scored:
        """Mark every turn; `exact` is the teacher-forced exact-match pass every bench gets."""
        ...


SCORERS: Registry[Callable[[], Scorer]] = Registry(
    "scorer", "scorer", package="ablate.trial.scorers"
)


def scorer_of(spec: BenchSpec) -> Scorer:
    """The bench's scorer (a did-you-mean UserError naming the bench file when unknown)."""
    return SCORERS.get(spec.scorer, spec.source)()


def assistant_turns(record: dict[str, Any]) -> list[int]:
    """Indices of a bench record's scored assistant turns (after its `history`)."""
    return [
        i
        for i, t in enumerate(record["conversations"])
        if t.get("from") in ("gpt", "assistant") and i >= record["n_history"]
    ]


def generated_answers(bench: EncodedBench, run: Scoring) -> list[str]:
    """One generated answer per scored assistant turn, in bench order."""
    answers = generate_answers(
        run.model,
        bench.examples,
        run.pixels,
        run.loaded.tokenizer,
        run.loaded.device,
        batch_size=bench.spec.batch_size,
        max_new_tokens=bench.spec.max_new_tokens,
        stop_ids=bench.stop_ids,
    )
    return [a for row in answers for a in row]
