"""Where each assistant answer lies in a chat template's rendering of a dialogue, and how the
template ends a turn.

Growing prefixes: the character span of assistant turn i in the full rendering is
[len(render(turns before i, add_generation_prompt=True)), len(render(turns up to i))), provided
both renderings are prefixes of the full one. Some published templates render a turn
differently once later turns follow (Qwen3 gives only the last answer its empty think block;
Mistral's moves the system prompt to the last user turn), and there the prefix lengths point
into other turns. So the prefix property is checked, and where it fails each answer is found in
the full rendering instead: after the assistant header the template's generation prompt adds,
up to the end-of-turn text it renders after the answer, with no other assistant header in
between. A template where neither route holds is refused (`TemplateUnstable`): labels would
fall on other turns' tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Render = Callable[[list[dict[str, Any]], bool], str]
"""render(messages, add_generation_prompt) -> the template's text."""

#: A dialogue every template can render: three exchanges, answers unlike the questions.
PROBE = [
    {"role": "user", "content": "Q1 first question?"},
    {"role": "assistant", "content": "A1 first answer."},
    {"role": "user", "content": "Q2 second question?"},
    {"role": "assistant", "content": "A2 second answer."},
    {"role": "user", "content": "Q3 third question?"},
    {"role": "assistant", "content": "A3 third answer."},
]


class TemplateUnstable(ValueError):
    """The template renders an assistant turn in a way neither route can place."""


def answer_spans(
    render: Render, full: str, messages: list[dict[str, Any]], turns: list[int]
) -> list[tuple[int, int]]:
    """The character span in `full` of each assistant turn in `turns` (message indices): the
    answer and the template's end-of-turn after it, never a token of another turn."""
    spans = _prefix_spans(render, full, messages, turns)
    if spans is not None:
        return spans
    located = _located_spans(render, full, messages)
    return [located[i] for i in turns]


def _prefix_spans(
    render: Render, full: str, messages: list[dict[str, Any]], turns: list[int]
) -> list[tuple[int, int]] | None:
    """Spans from growing prefixes, or None where they would not lie inside their own turns.

    The end must be where the full rendering has it (`upto` a prefix of `full`). The start is
    the generation prompt's length: right when the prompt is a prefix of `full`; when the prompt
    differs from the turn's rendered header (OneVision's `assistant\\n` against `assistant
    \\n`), still inside the turn's own text, as long as the whole answer follows it."""
    spans = []
    for i in turns:
        prompt = render(messages[:i], True)
        upto = render(messages[: i + 1], False)
        if len(upto) <= len(prompt) or not full.startswith(upto):
            return None
        if not full.startswith(prompt):
            before = render(messages[:i], False)
            answer = str(messages[i]["content"]).strip()
            inside = upto.startswith(before) and len(before) <= len(prompt)
            if not inside or answer not in upto[len(prompt) :]:
                return None
        spans.append((len(prompt), len(upto)))
    return spans


def _located_spans(
    render: Render, full: str, messages: list[dict[str, Any]]
) -> dict[int, tuple[int, int]]:
    """Every assistant turn's span, each found in `full` after the previous one's end."""
    out: dict[int, tuple[int, int]] = {}
    cursor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        header, answer, tail = turn_parts(render, messages, i)
        if not header.strip():
            raise TemplateUnstable(
                f"its generation prompt adds no assistant header before turn {i + 1}"
            )
        at = full.find(header, cursor)
        start = at + len(header)
        found = full.find(answer + tail, start) if at >= 0 else -1
        if found < 0 or 0 <= full.find(header, start) < found:
            raise TemplateUnstable(f"assistant turn {i + 1} is not where its own rendering puts it")
        out[i] = (start, found + len(answer) + len(tail))
        cursor = out[i][1]
    return out


def turn_parts(render: Render, messages: list[dict[str, Any]], i: int) -> tuple[str, str, str]:
    """Assistant turn i as the template renders it alone: the header its generation prompt adds
    (`<|im_start|>assistant\\n`; empty when it adds none), the answer as rendered, and the text after it (the
    end-of-turn, `<|im_end|>\\n`)."""
    before = render(messages[:i], False)
    prompt = render(messages[:i], True)
    upto = render(messages[: i + 1], False)
    if not upto.startswith(before):
        raise TemplateUnstable(f"turn {i + 1} does not follow the turns before it")
    header = prompt[len(before) :] if prompt.startswith(before) else ""
    block = upto[len(before) :]
    content = str(messages[i]["content"])
    answer = content if content in block else content.strip()
    at = block.rfind(answer) if answer else -1
    if at < 0:
        raise TemplateUnstable(f"it does not render assistant turn {i + 1}'s answer as given")
    tail = block[at + len(answer) :]
    return header, answer, tail


def special_ids(tokenizer: Any) -> set[int]:
    """The ids of the tokenizer's special tokens: eos, pad, ... and every added token marked
    special (`<|im_end|>`, `<end_of_turn>`, `<|image_pad|>`)."""
    return {int(i) for i in tokenizer.all_special_ids} | {
        int(i) for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special
    }


def end_of_turn_ids(render: Render, tokenizer: Any) -> list[int]:
    """The special tokens the template renders after an answer (`<|im_end|>`,
    `<end_of_turn>`): none for a template whose turns end in plain text (LLaVA-1.5's
    `USER: ... ASSISTANT: ... `). Refused (`TemplateTail`): a template that renders other
    text after every answer, which would be trained as the end of every answer."""
    _, _, tail = turn_parts(render, PROBE[:2], 1)
    special = special_ids(tokenizer)
    ids = tokenizer(tail, add_special_tokens=False)["input_ids"] if tail else []
    added = {str(t) for t in getattr(tokenizer, "added_tokens_decoder", {}).values()}
    text = tail
    for token in sorted(added | set(tokenizer.all_special_tokens), key=len, reverse=True):
        text = text.replace(token, "")
    # a marker in the base vocabulary, not listed as added (a tokenizer that never marked its
    # `<|im_end|>`), is one token: only text the tokenizer splits up is refused (`<\\s>`)
    split = [
        w for w in text.split() if len(tokenizer(w, add_special_tokens=False)["input_ids"]) > 1
    ]
    if split:
        raise TemplateTail(tail, " ".join(split))
    return [int(t) for t in ids if t in special]


class TemplateTail(ValueError):
    """The template renders text after every answer that is neither whitespace nor a token of
    the tokenizer's own (llava-hf's LLaVA-NeXT-Mistral template writes `<\\s>` for `</s>`):
    labelled with the answer, the model would learn to end every answer with it, and scorers
    would read it as part of the answer."""

    def __init__(self, tail: str, text: str) -> None:
        super().__init__(
            f"its chat template renders {tail!r} after every answer, and {text!r} in it is "
            "neither whitespace nor one of the tokenizer's own tokens (a typo such as `<\\s>` "
            "for `</s>`): trained with the answers, the model would learn to end every answer "
            "with it and scorers would count it in the answer. Give the model a corrected chat "
            "template (a `chat_template.jinja` in its folder)"
        )


def special_token_text(
    tokenizer: Any, special: set[int], texts: list[tuple[int, str]]
) -> tuple[int, str] | None:
    """The first (message index, token text) of a special token the tokenizer reads in the
    dialogue's own `texts` (message index, text), or None.

    A tokenizer matches its added tokens in raw text before anything else, wherever the text
    came from: an answer holding the literal `<|im_end|>` would be encoded as the real
    end-of-turn token and labelled mid-answer, and a question holding `<|im_start|>assistant`
    would fake a turn. Tokenizing a text alone finds exactly the tokens it brings."""
    pieces = [(i, t) for i, t in texts if t]
    if not pieces:
        return None
    rows = tokenizer([t for _, t in pieces], add_special_tokens=False)["input_ids"]
    for (i, _), ids in zip(pieces, rows, strict=True):
        found = next((t for t in ids if t in special), None)
        if found is not None:
            return i, str(tokenizer.convert_ids_to_tokens(int(found)))
    return None


def template_moves_images(processor: Any, image_token: str) -> bool:
    """Whether the chat template puts a turn's images first whatever their place in its text
    (llava-hf's LLaVA-1.5 template does: `Image1: <image>` then renders as images, then
    `Image1:`), probed with an image between two texts."""
    parts = [{"type": "text", "text": "A7 "}, {"type": "image"}, {"type": "text", "text": " B7"}]
    try:
        text = str(
            processor.apply_chat_template([{"role": "user", "content": parts}], tokenize=False)
        )
    except Exception:  # a template that refuses the probe: nothing to say about it
        return False
    image, before = text.find(image_token), text.find("A7")
    return 0 <= image < before


def images_inside_text(messages: list[dict[str, str]], placeholder: str) -> bool:
    """Whether some turn has text before one of its images (`Image1: <image>`, `Compare <image>
    and <image>`), which a template that moves images to the front detaches from them."""
    return any(
        piece.strip()
        for m in messages
        if placeholder in m["content"]
        for piece in m["content"].split(placeholder)[:-1]
    )
