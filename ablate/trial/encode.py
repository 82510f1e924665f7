"""Dialogues -> token ids, labels on assistant turns only, images for the model's processor.

Labels come from the model's own chat template without `{% generation %}` markers: each answer's
character span by rendering growing prefixes, or after its own assistant header (Qwen3); other
templates are refused (`ablate.trial.turns`). Tokens of the (unexpanded) rendering whose
offsets start inside a span are labelled; the span includes the template's end-of-turn marker,
or the tokenizer's eos appended to every answer when the template has none (LLaVA-1.5), so the
model also learns to stop. A dialogue whose own text holds a special token's text (an answer
quoting `<|im_end|>`) is refused: the tokenizer would read it as that control token.

Images go through the model's own processor: it expands each image placeholder into as many
tokens as that image needs (fixed for Llava, by image size for Qwen2-VL). The unexpanded tokens
are aligned with the expanded ones: between two placeholders the text tokens are identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ablate.bench.spec import ROLES
from ablate.models import chat_template_of
from ablate.pool import Pool
from ablate.trial.align import align
from ablate.trial.errors import EncodeError
from ablate.trial.images import PixelCache, load_image
from ablate.trial.turns import (
    PROBE,
    TemplateTail,
    TemplateUnstable,
    answer_spans,
    end_of_turn_ids,
    images_inside_text,
    special_ids,
    special_token_text,
    template_moves_images,
)

IGNORE = -100
PLACEHOLDER = "<image>"
"""The image placeholder of the LLaVA/Ovis layout, one per image, in the dialogue text."""
TYPE_KEYS = ("mm_token_type_ids", "token_type_ids")
"""Per-token type rows (1 on image tokens), kept when the processor returns them: Qwen2-VL's
M-RoPE needs `mm_token_type_ids`; Gemma3's image tokens attend both ways by `token_type_ids`."""


@dataclass
class Encoded:
    """One dialogue, ready for the model."""

    input_ids: list[int]
    labels: list[int]
    turn_spans: list[tuple[int, int]]
    """Token index ranges [start, end) of each kept (scored) assistant turn."""
    images: list[str]
    """Image paths, in placeholder order (only those of kept turns)."""
    truncated_turns: int = 0
    """Assistant turns cut off by max_length (`first_answer_end`: the max_length the first needs)."""
    first_answer_end: int = 0
    turn_flags: list[bool] = field(default_factory=list)
    """Per kept assistant turn: contextual or not (bench only)."""
    image_starts: list[int] = field(default_factory=list)
    """Token index where each kept image's tokens begin (a prompt up to t needs the images
    starting before t)."""
    token_types: list[int] | None = None
    """The processor's `mm_token_type_ids` (M-RoPE models such as Qwen2-VL need them)."""
    token_type_ids: list[int] | None = None
    """The processor's `token_type_ids` (Gemma3's bidirectional attention within an image)."""
    answers: list[str] = field(default_factory=list)
    """Reference answer text of each kept assistant turn."""
    turn_extras: list[dict[str, Any]] = field(default_factory=list)
    """Per kept assistant turn: the record's extra turn fields (`choices`, ...)."""
    images_moved: bool = False
    """The template moved images that sit inside a turn's text to its front (LLaVA-1.5)."""

    def images_before(self, position: int) -> list[str]:
        return [p for p, s in zip(self.images, self.image_starts, strict=True) if s < position]


def to_messages(conversations: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for n, t in enumerate(conversations):
        role = ROLES.get(str(t.get("from", t.get("role", ""))))
        if role is None:
            raise EncodeError("bad_record", f"turn {n}: unknown role {t.get('from')!r}")
        out.append({"role": role, "content": str(t.get("value", t.get("content", "")))})
    return out


class DialogueEncoder:
    """Encodes LLaVA-layout conversations with one model's processor (or tokenizer) and template.

    `processor`: a multimodal processor (has `image_processor`) or a tokenizer (text-only model).
    """

    def __init__(self, processor: Any, max_length: int = 1024) -> None:
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.max_length = max_length
        self.multimodal = hasattr(processor, "image_processor")
        if chat_template_of(processor) is None:
            raise EncodeError("no_chat_template", "the model has no chat template")
        self.image_token = str(getattr(processor, "image_token", None) or PLACEHOLDER)
        self.image_token_id = (
            int(self.tokenizer.convert_tokens_to_ids(self.image_token)) if self.multimodal else -1
        )
        self.structured = self.multimodal and self._template_takes_parts()
        self.image_newline = self.structured and self._template_breaks_after_image()
        self.moves_images = self.structured and template_moves_images(processor, self.image_token)
        self.eos_after_answer = ""
        """Appended to every answer when the template ends a turn with no special token
        (LLaVA-1.5's `ASSISTANT: blue `): the tokenizer's eos, so the model learns to stop."""
        self.stop_ids = self._check_template()
        """The tokens that end an answer: the template's end-of-turn (`<|im_end|>`), else eos."""
        self.special = special_ids(self.tokenizer) - {self.tokenizer.unk_token_id}
        """Control tokens a dialogue's own text must not hold (unk: text, however unknown)."""

    def _check_template(self) -> list[int]:
        """Refuse a template whose answers cannot be placed (see `ablate.trial.turns`); the
        ids of its end-of-turn tokens, or of the eos appended where it has none."""
        try:
            answer_spans(self.render, self.render(PROBE), PROBE, [1, 3, 5])
            ends = end_of_turn_ids(self.render, self.tokenizer)
        except TemplateUnstable as err:
            raise EncodeError(
                "template_unstable",
                f"its chat template renders an earlier turn differently once later turns follow "
                f"(as Qwen3's empty think block on the last answer only), and {err}, so labels "
                "would fall on other turns' tokens: give the model a chat template whose turns "
                "render the same in any prefix (a `chat_template.jinja` in its folder)",
            ) from None
        except TemplateTail as err:  # (its message names the text and the fix)
            raise EncodeError("template_tail", str(err)) from None
        eos = self.tokenizer.eos_token
        if ends or not eos:
            return ends
        self.eos_after_answer = str(eos)
        return [int(self.tokenizer.eos_token_id)]

    def _template_breaks_after_image(self) -> bool:
        """Whether the template puts its own newline after an image (LLaVA-1.5, OneVision):
        then the LLaVA layout's `<image>\\n` separator is not rendered twice."""
        probe = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q7"}]}]
        text = str(self.processor.apply_chat_template(probe, tokenize=False))
        image, question = text.find(self.image_token), text.find("Q7")
        return 0 <= image < question and text[:question].endswith("\n")

    def _template_takes_parts(self) -> bool:
        """Whether the template renders content as parts ([{type: image}, {type: text}]), as
        real VLM templates do; else content is a string with the image token inline."""
        probe = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q7"}]}]
        try:
            text = str(self.processor.apply_chat_template(probe, tokenize=False))
        except Exception:
            return False
        return "Q7" in text and "'type'" not in text and '"type"' not in text

    def _content(self, text: str) -> Any:
        if not self.multimodal:
            return text
        if not self.structured:
            return text.replace(PLACEHOLDER, self.image_token)
        parts: list[dict[str, str]] = []
        for n, piece in enumerate(text.split(PLACEHOLDER)):
            if n:
                parts.append({"type": "image"})
                if self.image_newline and piece.startswith("\n"):
                    piece = piece[1:]  # the template's own newline follows the image
            if piece:
                parts.append({"type": "text", "text": piece})
        return parts

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool = False) -> str:
        converted = [{"role": m["role"], "content": self._content(m["content"])} for m in messages]
        from jinja2.exceptions import TemplateError

        try:
            text = self.processor.apply_chat_template(
                converted, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        except TemplateError as err:  # a template's own `raise_exception` (e.g. "no system role")
            roles = sorted({m["role"] for m in messages})
            raise EncodeError(
                "template_refused",
                f"the model's chat template refused a dialogue with roles {roles}: {err}",
            ) from None
        return str(text)

    def encode(
        self,
        conversations: Sequence[dict[str, Any]],
        images: Sequence[str],
        history: int = 0,
    ) -> Encoded:
        """Encode one dialogue; the first `history` turns are context only (never labelled).

        Raises EncodeError for an image count the placeholders disagree with, an unreadable
        image, images given to a text-only model, or a special token's text in a turn.
        """
        messages = to_messages(conversations)
        self._check_images(messages, images)
        self._check_special_text(messages)
        scored = [i for i, m in enumerate(messages) if m["role"] == "assistant" and i >= history]
        turns = [conversations[i] for i in scored]
        full, ids, labels, spans = self._label_turns(self.render(messages), messages, scored)
        types: dict[str, list[int]] = {}
        image_starts: list[int] = []
        if images:
            ids, labels, spans, image_starts, types = self._expand(full, ids, labels, spans, images)

        kept = len(spans)
        while kept and spans[kept - 1][1] > self.max_length:
            kept -= 1  # cut at a turn boundary: drop whole trailing turns that do not fit
        cut = spans[kept - 1][1] if kept else 0
        n_images = sum(1 for s in image_starts if s < cut)
        return Encoded(
            input_ids=ids[:cut],
            labels=labels[:cut],
            turn_spans=spans[:kept],
            images=list(images[:n_images]),
            truncated_turns=len(spans) - kept,
            first_answer_end=spans[0][1] if spans else 0,
            turn_flags=[bool(x.get("contextual", False)) for x in turns[:kept]],
            image_starts=image_starts[:n_images],
            token_types=types["mm_token_type_ids"][:cut] if "mm_token_type_ids" in types else None,
            token_type_ids=types["token_type_ids"][:cut] if "token_type_ids" in types else None,
            answers=[str(x.get("value", "")) for x in turns[:kept]],
            turn_extras=[
                {k: v for k, v in x.items() if k not in ("from", "value", "contextual")}
                for x in turns[:kept]
            ],
            images_moved=self.moves_images and images_inside_text(messages, PLACEHOLDER),
        )

    def _check_images(self, messages: list[dict[str, str]], images: Sequence[str]) -> None:
        n_placeholders = sum(m["content"].count(PLACEHOLDER) for m in messages)
        if images and not self.multimodal:
            raise EncodeError(
                "images_for_text_model",
                f"{len(images)} image(s) given to a text-only model; use an image-text-to-text "
                "model, or data without images",
            )
        if n_placeholders != len(images):
            raise EncodeError(
                "image_count",
                f"the dialogue has {n_placeholders} {PLACEHOLDER} placeholder(s) but "
                f"{len(images)} image(s)",
            )

    def _check_special_text(self, messages: list[dict[str, str]]) -> None:
        """Refuse a dialogue whose own text holds a special token's text (`<|im_end|>` in an
        answer: `ablate.trial.turns.special_token_text`); it is left out and counted, as a
        too-long one is (`train.max_skipped`). Not escaped: that would change the text the
        model learns and is scored on. Not tokenized apart (`split_special_tokens`): every
        processor re-tokenizes the whole rendering to expand its images, and the alignment
        of the two tokenizations is what keeps the labels exact."""
        texts = [(n, t) for n, m in enumerate(messages) for t in m["content"].split(PLACEHOLDER)]
        found = special_token_text(self.tokenizer, self.special, texts)
        if found is not None:
            n, token = found
            raise EncodeError(
                "special_token_text",
                f"turn {n + 1} ({messages[n]['role']}) holds the text {token!r}, which the "
                "tokenizer reads as its special (control) token: trained as is, the model would "
                "learn it mid-turn; remove or escape it in the data",
            )

    def _label_turns(
        self, full: str, messages: list[dict[str, str]], scored: list[int]
    ) -> tuple[str, list[int], list[int], list[tuple[int, int]]]:
        """The rendering `full` (with `eos_after_answer` after every answer), its tokens, labels
        on the `scored` assistant turns and each one's token span (`ablate.trial.turns`)."""
        answers = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        try:
            if self.eos_after_answer:
                everywhere = answer_spans(self.render, full, messages, answers)
                full, everywhere = _with_text_after(full, everywhere, self.eos_after_answer)
                char_spans = [
                    span for i, span in zip(answers, everywhere, strict=True) if i in scored
                ]
            else:
                char_spans = answer_spans(self.render, full, messages, scored)
        except TemplateUnstable as err:
            raise EncodeError(
                "template_unstable", f"the chat template's turns cannot be placed: {err}"
            ) from None
        enc = self.tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = list(enc["input_ids"])
        offsets: list[tuple[int, int]] = enc["offset_mapping"]
        labels = [IGNORE] * len(ids)
        spans: list[tuple[int, int]] = []
        t = 0
        for start, end in char_spans:
            while t < len(ids) and offsets[t][0] < start:
                t += 1
            first = t
            while t < len(ids) and offsets[t][0] < end:
                labels[t] = ids[t]
                t += 1
            spans.append((first, t))
        return full, ids, labels, spans

    def _expand(
        self,
        full: str,
        ids: list[int],
        labels: list[int],
        spans: list[tuple[int, int]],
        images: Sequence[str],
    ) -> tuple[list[int], list[int], list[tuple[int, int]], list[int], dict[str, list[int]]]:
        """Run the processor on the rendering + images and carry labels over to its tokens;
        the processor's type rows (`TYPE_KEYS`) it returns."""
        pil = [load_image(p) for p in images]
        try:
            out = self.processor(text=[full], images=pil, add_special_tokens=False)
        except (ValueError, IndexError, RuntimeError) as err:
            raise EncodeError(
                "image_count", f"the processor refused the dialogue's images: {err}"
            ) from None
        expanded: list[int] = [int(x) for x in out["input_ids"][0]]
        types = {k: [int(x) for x in out[k][0]] for k in TYPE_KEYS if out.get(k) is not None}
        mapping = align(ids, expanded, self.image_token_id)
        if mapping is None or ids.count(self.image_token_id) != len(images):
            raise EncodeError(
                "image_count",
                f"the processor's image tokens disagree with the dialogue: {len(images)} image(s), "
                f"{ids.count(self.image_token_id)} {self.image_token} token(s) in the rendering, "
                f"{expanded.count(self.image_token_id)} after expansion",
            )
        new_labels = [IGNORE] * len(expanded)
        for i, j in enumerate(mapping):
            if j >= 0:
                new_labels[j] = labels[i]
        new_spans = [(mapping[s], mapping[e - 1] + 1) if e > s else (0, 0) for s, e in spans]
        starts = []
        for i, x in enumerate(ids):
            if x == self.image_token_id:
                # the expansion of placeholder i begins right after the token before it
                starts.append(mapping[i - 1] + 1 if i else 0)
        return expanded, new_labels, new_spans, starts, types


def _with_text_after(
    full: str, spans: list[tuple[int, int]], text: str
) -> tuple[str, list[tuple[int, int]]]:
    """`full` with `text` inserted at the end of each span, and the spans grown to include it."""
    pieces: list[str] = []
    out: list[tuple[int, int]] = []
    last = 0
    for n, (start, end) in enumerate(spans):
        pieces += [full[last:end], text]
        out.append((start + n * len(text), end + (n + 1) * len(text)))
        last = end
    return "".join(pieces) + full[last:], out


def collate(
    batch: Sequence[Encoded], pixels: PixelCache | None, pad_id: int, left: bool = False
) -> dict[str, Any]:
    """Pad a batch (right, or left for generation); image tensors in placeholder order."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    # type rows: 0 (text) on padding and on a dialogue without images
    present = [k for k in TYPE_KEYS if any(_types(e, k) is not None for e in batch)]
    types = {k: torch.zeros_like(input_ids) for k in present}
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        cols = slice(width - n, width) if left else slice(0, n)
        input_ids[row, cols] = torch.tensor(e.input_ids, dtype=torch.long)
        labels[row, cols] = torch.tensor(e.labels, dtype=torch.long)
        attention[row, cols] = 1
        for key, rows in types.items():
            if (values := _types(e, key)) is not None:
                rows[row, cols] = torch.tensor(values, dtype=torch.long)
    out: dict[str, Any] = {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
    out.update(types)
    paths = [p for e in batch for p in e.images]
    if paths and pixels is not None:
        out.update(pixels.batch(paths))
    return out


def _types(example: Encoded, key: str) -> list[int] | None:
    """The example's type row named `key` (one of `TYPE_KEYS`), None when it has none."""
    return example.token_types if key == "mm_token_type_ids" else example.token_type_ids


def prefix(example: Encoded, end: int) -> Encoded:
    """The first `end` tokens of a dialogue with the images they contain (a generation prompt)."""
    images = example.images_before(end)
    return Encoded(
        input_ids=example.input_ids[:end],
        labels=[IGNORE] * end,
        turn_spans=[],
        images=images,
        image_starts=example.image_starts[: len(images)],
        token_types=None if example.token_types is None else example.token_types[:end],
        token_type_ids=None if example.token_type_ids is None else example.token_type_ids[:end],
    )


def encode_rows(
    pool: Pool,
    positions: Sequence[int] | np.ndarray,
    encoder: DialogueEncoder,
    encoded: dict[int, Any],
) -> tuple[list[Encoded], dict[str, int], list[str]]:
    """Encoded dialogues of the pool rows at `positions` (memoised per worker); what failed.

    A dialogue that cannot be encoded (image count, unreadable image, a first answer beyond
    max_length, ...) is left out and counted by kind; the first five reasons are kept with the
    row ids.
    """
    needed = {int(p) for p in positions}
    todo = sorted(needed - set(encoded))
    if len(encoded) + len(todo) > 200_000:  # bound a worker's memory on huge pools
        for key in [k for k in encoded if k not in needed]:
            del encoded[key]
    if todo:
        table = pool.take(todo, ["id", "conversations", "images"])
        for pos, row in zip(todo, table.to_pylist(), strict=True):
            try:
                item = encoder.encode(row["conversations"], row["images"] or [])
                if not item.turn_spans:  # nothing left to learn from: counted, never dropped
                    n = encoder.max_length  # (the token count says how far to raise it)
                    why = f"its first answer ends at token {item.first_answer_end}, beyond"
                    raise EncodeError("too_long", f"{why} train.max_length ({n} tokens)")
                encoded[pos] = item
            except EncodeError as err:
                err.row_id = row["id"]  # type: ignore[attr-defined]
                encoded[pos] = err
    examples: list[Encoded] = []
    skipped: dict[str, int] = {}
    notes: list[str] = []
    for p in positions:
        item = encoded[int(p)]
        if isinstance(item, EncodeError):
            skipped[item.kind] = skipped.get(item.kind, 0) + 1
            if len(notes) < 5:
                notes.append(f"{getattr(item, 'row_id', p)}: {item}")
        else:
            examples.append(item)
    return examples, skipped, notes
