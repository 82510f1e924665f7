"""Where `<image>` may stand: never in an answer (`image_in_answer`), and in layouts that place
images with parts of their own (`hf` parts, the Cauldron) never as plain text
(`literal_image_text`), while the legitimate placements of published sets still import."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from test_pool import write_source
from test_pool_images import png

from ablate.errors import UserError
from ablate.pool import ImportRequest, import_pool, open_pool


def _import(tmp_path: Path, records: list[Any]) -> tuple[Any, dict[str, dict[str, Any]]]:
    """Import with `--on-invalid skip`: the manifest and the skipped records by id."""
    src = write_source(tmp_path / "src", records)
    m = import_pool(ImportRequest(source=src, out=tmp_path / "pool", on_invalid="skip"))
    report = tmp_path / "pool" / "skipped.jsonl"
    lines = report.read_text().splitlines() if report.exists() else []
    return m, {json.loads(x)["id"]: json.loads(x) for x in lines}


def _llava(rid: str, images: int, *turns: str) -> dict[str, Any]:
    roles = ["human", "gpt"] * len(turns)
    conv = [{"from": r, "value": v} for r, v in zip(roles, turns, strict=False)]
    return {"id": rid, "image": [f"imgs/img{i}.png" for i in range(images)], "conversations": conv}


def _hf(rid: str, images: int, user: list[Any], answer: list[Any]) -> dict[str, Any]:
    return {
        "id": rid,
        "images": [_uri((i * 40, 0, 0)) for i in range(images)],
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
    }


IMG = {"type": "image"}


def _uri(colour: tuple[int, int, int]) -> str:
    """An embedded image as JSON holds it."""
    return "data:image/png;base64," + base64.b64encode(png(colour)).decode()


def _text(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


def test_an_image_in_an_answer_is_refused_naming_the_turn(tmp_path: Path) -> None:
    records = [
        _llava("in-answer", 1, "What tag marks a picture?", "The tag <image> marks it."),
        _llava("later-answer", 1, "<image>\nColour?", "Red.", "And now?", "See <image>."),
        # ShareGPT says user / assistant
        {
            "id": "sharegpt",
            "image": "imgs/img0.png",
            "conversations": [
                {"from": "user", "value": "Hi?"},
                {"from": "assistant", "value": "<image>\nHello."},
            ],
        },
        _hf("hf-part", 1, [_text("Draw a cat.")], [IMG, _text("Here.")]),
        _llava("ok", 1, "<image>\nColour?", "Red."),
    ]
    m, skipped = _import(tmp_path, records)
    assert (m.rows, m.skipped) == (1, 4)
    assert {k: v["code"] for k, v in skipped.items()} == dict.fromkeys(
        ["in-answer", "later-answer", "sharegpt", "hf-part"], "image_in_answer"
    )
    assert skipped["in-answer"]["reason"].startswith(
        "turn 1 (gpt) holds <image> ('The tag <image> marks it.'): an answer cannot take an image"
    )
    assert "move the placeholder into the human turn" in skipped["in-answer"]["reason"]
    assert skipped["later-answer"]["reason"].startswith("turn 3 (gpt) holds <image>")
    assert skipped["hf-part"]["reason"].startswith(
        "message 1 (assistant), content part 0 is an image; an answer cannot take an image"
    )
    # the same record stops an import that does not skip, naming it
    src = write_source(tmp_path / "one", records[:1])
    with pytest.raises(UserError, match=r"record `in-answer` \(line 1\): turn 1 \(gpt\) holds"):
        import_pool(ImportRequest(source=src, out=tmp_path / "p1"))


def test_a_leading_answer_with_an_image_is_still_a_roles_problem(tmp_path: Path) -> None:
    # A leading gpt turn is dropped as LLaVA drops it; with an image it cannot be: `roles`.
    rec = {"id": "lead", "image": "imgs/img0.png", "conversations": []}
    rec["conversations"] = [
        {"from": "gpt", "value": "<image> hi"},
        {"from": "human", "value": "q"},
        {"from": "gpt", "value": "a"},
    ]
    _, skipped = _import(tmp_path, [rec, _llava("ok", 0, "q", "a")])
    assert skipped["lead"]["code"] == "roles"


def test_legitimate_placements_of_published_sets_import(tmp_path: Path) -> None:
    records = [
        # LLaVA-665k: the image in the first question
        _llava("llava", 1, "<image>\nWhat is it?", "A cat."),
        # a later question brings the second image
        _llava("later", 2, "<image>\nColour?", "green.", "Now this one: <image>\nColour?", "blue."),
        # two in one line; MMDU's `Image1: <image>` prefixes
        _llava("inline", 2, "Compare <image> and <image>.", "Different."),
        _llava("mmdu", 2, "Image1: <image>\nImage2: <image>\nHow many?", "2."),
        # the image after the question (ShareGPT4V and others)
        _llava("after", 1, "Describe this.\n<image>", "A red square."),
        # text only, talking about images in words
        _llava("text", 0, "What is an image tag?", "In HTML it is <img>."),
        # hf parts: the image in a later user message, and a system message
        {
            "id": "hf-later",
            "images": [_uri((1, 2, 3))],
            "messages": [
                {"role": "system", "content": [_text("Be brief.")]},
                {"role": "user", "content": [_text("Hi.")]},
                {"role": "assistant", "content": [_text("Hello.")]},
                {"role": "user", "content": [_text("And this?"), IMG]},
                {"role": "assistant", "content": "A dark square."},
            ],
        },
        # hf with string content keeps the LLaVA convention: `<image>` is the placeholder
        {
            "id": "hf-string",
            "images": ["imgs/img0.png"],
            "messages": [
                {"role": "user", "content": "<image>\nWhat is it?"},
                {"role": "assistant", "content": "A square."},
            ],
        },
    ]
    m, skipped = _import(tmp_path, records)
    assert (m.rows, m.skipped, skipped) == (len(records), 0, {})
    table = open_pool(tmp_path / "pool").table()
    convs = table.column("conversations").to_pylist()
    by_id = dict(zip(table.column("id").to_pylist(), convs, strict=True))
    assert [t["value"] for t in by_id["hf-later"]] == [
        "Be brief.",
        "Hi.",
        "Hello.",
        "And this?<image>",
        "A dark square.",
    ]


def test_literal_image_text_in_hf_parts_is_refused_as_such_not_as_a_count(tmp_path: Path) -> None:
    records = [
        _hf("text-only", 0, [_text("In HTML, what does the <image> tag do?")], [_text("Nothing.")]),
        _hf("with-image", 1, [IMG, _text("Is this an <image>?")], [_text("Yes.")]),
        _hf("in-answer", 0, [_text("Name an SVG element.")], [_text("<image> places a picture.")]),
        _hf("ok", 1, [IMG, _text("Is this an image?")], [_text("Yes.")]),
    ]
    m, skipped = _import(tmp_path, records)
    assert (m.rows, m.skipped) == (1, 3)
    assert {v["code"] for v in skipped.values()} == {"literal_image_text"}
    reason = skipped["with-image"]["reason"]
    assert reason.startswith(
        "message 0, content part 1 is text holding the literal string <image> "
        "('Is this an <image>?'); this layout places images with their own parts"
    )
    assert "taken for an image placeholder" in reason and "placeholder(s) but" not in reason
    assert skipped["in-answer"]["reason"].startswith("message 1, content part 0 is text")


def test_literal_image_text_in_the_cauldron_is_refused(tmp_path: Path) -> None:
    def cauldron(user: str, assistant: str) -> dict[str, Any]:
        return {
            "images": [_uri((9, 9, 9))],
            "texts": [{"user": user, "assistant": assistant, "source": "s"}],
        }

    records = [
        cauldron("What is the <image> element?", "An SVG element."),
        cauldron("Which SVG element places a picture?", "The <image> element."),
        cauldron("Write the SVG.", '<svg><image href="a.png"/></svg>'),  # not `<image>`: kept
        cauldron("What colour?", "Grey."),
    ]
    m, skipped = _import(tmp_path, records)
    assert (m.rows, m.skipped) == (2, 2)
    assert [(v["code"], v["reason"].split(" is text")[0]) for v in skipped.values()] == [
        ("literal_image_text", "texts[0].user"),
        ("literal_image_text", "texts[0].assistant"),
    ]
