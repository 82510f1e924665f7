"""Dialogues -> token ids, labels on assistant turns only, pixel values.

Labels come from the model's own chat template without `{% generation %}` markers: the
conversation is rendered once in full, and the character span of assistant turn i is
[len(render(turns before i, add_generation_prompt=True)), len(render(turns up to i))). Tokens
whose offsets start inside a span are labelled; everything else is -100. The span includes the
template's end-of-turn marker, so the model also learns to stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

IGNORE = -100
ROLES = {
    "human": "user",
    "gpt": "assistant",
    "user": "user",
    "assistant": "assistant",
    "system": "system",
}


@dataclass
class Encoded:
    """One dialogue, ready for the model."""

    input_ids: list[int]
    labels: list[int]
    turn_spans: list[tuple[int, int]]
    """Token index ranges [start, end) of each kept assistant turn."""
    images: list[str]
    """Image paths, in placeholder order (only those of kept turns)."""
    truncated_turns: int = 0
    """Assistant turns cut off by max_length."""
    turn_flags: list[bool] = field(default_factory=list)
    """Per kept assistant turn: contextual or not (bench only)."""


def to_messages(conversations: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"role": ROLES[t["from"]], "content": t["value"]} for t in conversations]


class DialogueEncoder:
    """Encodes LLaVA-layout conversations with one processor's chat template and tokenizer."""

    def __init__(self, processor: Any, max_length: int = 1024) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.max_length = max_length
        self.image_token = getattr(processor, "image_token", "<image>")
        self.tokens_per_image = self._count_image_tokens()

    def _count_image_tokens(self) -> int:
        from PIL import Image

        probe = self.processor(
            text=self.image_token, images=[Image.new("RGB", (32, 32))], return_tensors="np"
        )
        image_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        return int((probe["input_ids"][0] == image_id).sum())

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
        text = self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        return str(text)

    def encode(self, conversations: Sequence[dict[str, Any]], images: Sequence[str]) -> Encoded:
        messages = to_messages(conversations)
        flags = [
            bool(t.get("contextual", False))
            for t in conversations
            if ROLES[t["from"]] == "assistant"
        ]
        expand = self.image_token * self.tokens_per_image
        full = self.render(messages).replace(self.image_token, expand)
        char_spans: list[tuple[int, int]] = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            start = len(
                self.render(messages[:i], add_generation_prompt=True).replace(
                    self.image_token, expand
                )
            )
            end = len(self.render(messages[: i + 1]).replace(self.image_token, expand))
            char_spans.append((start, end))
        enc = self.tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = enc["input_ids"]
        offsets: list[tuple[int, int]] = enc["offset_mapping"]
        labels = [IGNORE] * len(ids)
        turn_spans: list[tuple[int, int]] = []
        t = 0
        for start, end in char_spans:
            while t < len(ids) and offsets[t][0] < start:
                t += 1
            first = t
            while t < len(ids) and offsets[t][0] < end:
                labels[t] = ids[t]
                t += 1
            turn_spans.append((first, t))

        kept = len(turn_spans)
        while kept and turn_spans[kept - 1][1] > self.max_length:
            kept -= 1  # cut at a turn boundary: drop whole trailing turns that do not fit
        cut = turn_spans[kept - 1][1] if kept else 0
        image_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        n_images = sum(1 for x in ids[:cut] if x == image_id) // max(1, self.tokens_per_image)
        return Encoded(
            input_ids=ids[:cut],
            labels=labels[:cut],
            turn_spans=turn_spans[:kept],
            images=list(images[:n_images]),
            truncated_turns=len(turn_spans) - kept,
            turn_flags=flags[:kept],
        )


class PixelCache:
    """Images are files loaded lazily; a dialogue pool reuses few files, so cache pixel tensors."""

    def __init__(self, image_processor: Any, max_items: int = 4096) -> None:
        self.image_processor = image_processor
        self.max_items = max_items
        self._cache: dict[str, Any] = {}

    def __call__(self, paths: Sequence[str]) -> Any:
        import torch
        from PIL import Image

        out = []
        for path in paths:
            if path not in self._cache:
                with Image.open(path) as img:
                    pixels = self.image_processor(img.convert("RGB"), return_tensors="pt")[
                        "pixel_values"
                    ][0]
                if len(self._cache) >= self.max_items:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[path] = pixels
            out.append(self._cache[path])
        return torch.stack(out) if out else None


def collate(batch: Sequence[Encoded], pixels: PixelCache, pad_id: int) -> dict[str, Any]:
    """Right-pad a batch; pixel values of all its images in placeholder order."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        input_ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        attention[row, :n] = 1
    out: dict[str, Any] = {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
    paths = [p for e in batch for p in e.images]
    if paths:
        out["pixel_values"] = pixels(paths)
    return out
