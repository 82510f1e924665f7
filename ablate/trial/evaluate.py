"""Score a model on a bench, turn by turn; losses on held-out dialogues.

`exact`: greedy decoding reproduces the reference answer (then stops) exactly when, with the
reference history as input, the argmax at every position of the answer span predicts the next
reference token, the end-of-turn marker included. So exact-match accuracy of greedy generation
is computed from a single teacher-forced forward pass instead of a token-by-token decode loop.

`normalized` and `judge` need the generated text: prompts (reference history + question) are
generated from in batches, left-padded, greedily. `choice` compares the log-likelihood of each
listed choice as the assistant's answer.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ablate.trial.encode import IGNORE, Encoded, PixelCache, collate, prefix
from ablate.trial.images import model_inputs


@dataclass(frozen=True)
class TurnScore:
    correct: bool | None
    """None: unscored (a judge that never answered usably); left out of every accuracy."""
    contextual: bool
    labels: dict[str, str]
    """The dialogue's labels: domain and group fields."""


def _forward(model: Any, batch: dict[str, Any], device: str) -> Any:
    inputs = {k: v.to(device) for k, v in model_inputs(model, batch).items() if k != "labels"}
    return model(**inputs).logits.float()


def score_turns(
    model: Any,
    examples: Sequence[Encoded],
    labels: Sequence[dict[str, str]],
    pixels: PixelCache | None,
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
            batch = collate(chunk, pixels, pad_id)
            logits = _forward(model, batch, device)
            input_ids = batch["input_ids"].to(device)
            # position t predicts token t + 1
            predicted = logits[:, :-1].argmax(-1)
            target = batch["labels"][:, 1:].to(device)
            token_loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].transpose(1, 2), target, ignore_index=IGNORE, reduction="sum"
            )
            loss_sum += float(token_loss)
            loss_tokens += int((target != IGNORE).sum())
            for row, example in enumerate(chunk):
                for (start, end), flag in zip(example.turn_spans, example.turn_flags, strict=True):
                    ok = bool(
                        (predicted[row, start - 1 : end - 1] == input_ids[row, start:end]).all()
                    )
                    scores.append(TurnScore(correct=ok, contextual=flag, labels=labels[lo + row]))
    model.train()
    return scores, loss_sum / max(1, loss_tokens)


def example_losses(
    model: Any,
    examples: Sequence[Encoded],
    pixels: PixelCache | None,
    pad_id: int,
    device: str,
    batch_size: int = 16,
) -> list[tuple[float, int]]:
    """(summed loss, labelled tokens) of each dialogue: held-out loss per task type from these."""
    import torch

    out: list[tuple[float, int]] = []
    model.eval()
    with torch.no_grad():
        for lo in range(0, len(examples), batch_size):
            chunk = examples[lo : lo + batch_size]
            batch = collate(chunk, pixels, pad_id)
            logits = _forward(model, batch, device)
            target = batch["labels"][:, 1:].to(device)
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].transpose(1, 2), target, ignore_index=IGNORE, reduction="none"
            )
            for row in range(len(chunk)):
                out.append((float(loss[row].sum()), int((target[row] != IGNORE).sum())))
    model.train()
    return out


def generate_answers(
    model: Any,
    examples: Sequence[Encoded],
    pixels: PixelCache | None,
    tokenizer: Any,
    device: str,
    batch_size: int = 16,
    max_new_tokens: int = 64,
    stop_ids: Sequence[int] = (),
) -> list[list[str]]:
    """Greedy answers to every kept assistant turn (given the reference history), batched.

    Prompts are sorted by length so a batch pads little; each answer stops at the first of
    `stop_ids` (the template's end-of-turn, `DialogueEncoder.stop_ids`), the model's own
    `generation_config` eos ids and the tokenizer's eos, and is decoded without special tokens.
    """
    import torch

    prompts = [
        (i, k, prefix(e, start))
        for i, e in enumerate(examples)
        for k, (start, _) in enumerate(e.turn_spans)
    ]
    prompts.sort(key=lambda x: len(x[2].input_ids))
    answers: list[list[str]] = [[""] * len(e.turn_spans) for e in examples]
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    model.eval()
    with torch.no_grad():
        for lo in range(0, len(prompts), batch_size):
            chunk = prompts[lo : lo + batch_size]
            batch = collate([p for _, _, p in chunk], pixels, pad_id, left=True)
            batch.pop("labels")
            # only what the model takes (not Gemma3's `num_crops`); its `token_type_ids` stay
            inputs = {k: v.to(device) for k, v in model_inputs(model, batch).items()}
            out = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=stop_tokens(model, tokenizer, stop_ids),
                pad_token_id=pad_id,
            )
            width = batch["input_ids"].shape[1]
            for (i, k, _), row in zip(chunk, out[:, width:].tolist(), strict=True):
                answers[i][k] = str(tokenizer.decode(row, skip_special_tokens=True)).strip()
    model.train()
    return answers


def stop_tokens(model: Any, tokenizer: Any, stop_ids: Sequence[int] = ()) -> list[int]:
    """What ends a generated answer: `stop_ids`, the model's `generation_config.eos_token_id`
    (an id or a list: Gemma and Qwen list their end-of-turn next to eos) and the tokenizer's
    eos, each once, in that order."""
    config = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    listed = config if isinstance(config, (list, tuple)) else [config]
    ids = [*stop_ids, *listed, tokenizer.eos_token_id]
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD's normalisation)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", text).split())


def choice_scores(
    model: Any,
    candidates: Sequence[tuple[Encoded, int, int]],
    pixels: PixelCache | None,
    pad_id: int,
    device: str,
    batch_size: int = 16,
) -> list[float]:
    """Summed log-likelihood of tokens [start, end) of each candidate dialogue."""
    import torch

    out: list[float] = []
    model.eval()
    with torch.no_grad():
        for lo in range(0, len(candidates), batch_size):
            chunk = candidates[lo : lo + batch_size]
            batch = collate([c for c, _, _ in chunk], pixels, pad_id)
            logp = torch.log_softmax(_forward(model, batch, device), dim=-1)
            ids = batch["input_ids"].to(device)
            for row, (_, start, end) in enumerate(chunk):
                positions = torch.arange(start, end, device=ids.device)
                out.append(float(logp[row, positions - 1, ids[row, positions]].sum()))
    model.train()
    return out


def accuracy_metrics(scores: Sequence[TurnScore]) -> dict[str, float]:
    """overall_accuracy, contextual_accuracy, accuracy/<domain>, accuracy/<field>=<value>.

    Unscored turns (correct is None) count in no denominator.
    """
    scored = [s for s in scores if s.correct is not None]
    if not scored:
        return {}
    metrics = {"overall_accuracy": sum(bool(s.correct) for s in scored) / len(scored)}
    contextual = [bool(s.correct) for s in scored if s.contextual]
    if contextual:
        metrics["contextual_accuracy"] = sum(contextual) / len(contextual)
    groups: dict[str, list[bool]] = defaultdict(list)
    for s in scored:
        for key, value in s.labels.items():
            groups[value if key == "domain" else f"{key}={value}"].append(bool(s.correct))
    for name, flags in sorted(groups.items()):
        metrics[f"accuracy/{name}"] = sum(flags) / len(flags)
    return metrics
