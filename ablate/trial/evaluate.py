"""Score a model on a bench: exact match per assistant turn, one forward pass per dialogue.

Greedy decoding reproduces the reference answer (then stops) exactly when, with the reference
history as input, the argmax at every position of the answer span predicts the next reference
token, the end-of-turn marker included. So exact-match accuracy of greedy generation is computed
from a single teacher-forced forward pass instead of a token-by-token decode loop.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ablate.trial.encode import Encoded, PixelCache, collate


@dataclass(frozen=True)
class TurnScore:
    correct: bool
    contextual: bool
    labels: dict[str, str]
    """The dialogue's labels: domain and group fields."""


def score_turns(
    model: Any,
    examples: Sequence[Encoded],
    labels: Sequence[dict[str, str]],
    pixels: PixelCache,
    pad_id: int,
    device: str,
    batch_size: int = 32,
) -> tuple[list[TurnScore], float]:
    """Per-turn exact match and the mean loss over answer tokens."""
    import torch

    scores: list[TurnScore] = []
    loss_sum, loss_tokens = 0.0, 0
    model.eval()
    with torch.no_grad():
        for lo in range(0, len(examples), batch_size):
            chunk = examples[lo : lo + batch_size]
            batch = {k: v.to(device) for k, v in collate(chunk, pixels, pad_id).items()}
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
            # position t predicts token t + 1
            predicted = logits[:, :-1].argmax(-1)
            target = batch["labels"][:, 1:]
            token_loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].transpose(1, 2), target, ignore_index=-100, reduction="sum"
            )
            loss_sum += float(token_loss)
            loss_tokens += int((target != -100).sum())
            for row, example in enumerate(chunk):
                for (start, end), flag in zip(example.turn_spans, example.turn_flags, strict=True):
                    ok = bool(
                        (
                            predicted[row, start - 1 : end - 1]
                            == batch["input_ids"][row, start:end]
                        ).all()
                    )
                    scores.append(TurnScore(correct=ok, contextual=flag, labels=labels[lo + row]))
    model.train()
    return scores, loss_sum / max(1, loss_tokens)


def accuracy_metrics(scores: Sequence[TurnScore]) -> dict[str, float]:
    """overall_accuracy, contextual_accuracy, accuracy/<domain>, accuracy/<field>=<value>."""
    if not scores:
        return {}
    metrics = {"overall_accuracy": sum(s.correct for s in scores) / len(scores)}
    contextual = [s.correct for s in scores if s.contextual]
    if contextual:
        metrics["contextual_accuracy"] = sum(contextual) / len(contextual)
    groups: dict[str, list[bool]] = defaultdict(list)
    for s in scores:
        for key, value in s.labels.items():
            groups[value if key == "domain" else f"{key}={value}"].append(s.correct)
    for name, flags in sorted(groups.items()):
        metrics[f"accuracy/{name}"] = sum(flags) / len(flags)
    return metrics
