"""Layouts recognised by their keys: the Cauldron's `texts`, and records in no known layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pytest
from test_pool_images import png

from ablate.errors import UserError
from ablate.pool import ImportRequest, import_pool, open_pool


def test_the_cauldrons_layout_puts_the_images_before_the_first_user_turn(tmp_path: Path) -> None:
    rows = [
        {
            "images": [png((255, 0, 0)), png((0, 0, 255))],
            "texts": [
                {"user": "Which is red?", "assistant": "The first.", "source": "synthetic"},
                {"user": "And blue?", "assistant": "The second.", "source": "synthetic"},
            ],
        },
        {"images": [], "texts": [{"user": "Say hi.", "assistant": "Hi.", "source": "s"}]},
    ]
    features = datasets.Features(
        {
            "images": datasets.List(datasets.Image()),
            "texts": datasets.List(
                {
                    "user": datasets.Value("string"),
                    "assistant": datasets.Value("string"),
                    "source": datasets.Value("string"),
                }
            ),
        }
    )
    data = [{**r, "images": [{"bytes": b, "path": None} for b in r["images"]]} for r in rows]
    datasets.Dataset.from_list(data, features=features).to_parquet(str(tmp_path / "c.parquet"))
    m = import_pool(ImportRequest(source=tmp_path / "c.parquet", out=tmp_path / "pool"))
    assert m.rows == 2 and m.labels["task_type"] == {"multi_image": 1, "text_only": 1}
    assert m.images_written == 2
    table = open_pool(tmp_path / "pool").table()
    first = table.column("conversations").to_pylist()[0]
    conv = json.loads(first) if isinstance(first, str) else first
    assert conv[0]["value"] == "<image><image>Which is red?"
    assert [t["value"] for t in conv[1:]] == ["The first.", "And blue?", "The second."]


def test_a_record_in_no_known_layout_names_its_keys_and_the_layouts(tmp_path: Path) -> None:
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps({"id": "q", "prompt": "hi", "response": "hello"}) + "\n")
    with pytest.raises(UserError) as err:
        import_pool(ImportRequest(source=src, out=tmp_path / "pool"))
    msg = str(err.value)
    assert "no known layout has the keys ['id', 'prompt', 'response']" in msg
    assert "cauldron: `texts` of {user, assistant} + `images`" in msg


def test_layout_can_be_forced_when_a_record_has_the_keys_of_several(tmp_path: Path) -> None:
    record = {
        "id": "both",
        "conversations": [{"from": "human", "value": "llava q"}, {"from": "gpt", "value": "a"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hf q"}]},
            {"role": "assistant", "content": "b"},
        ],
    }
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps(record) + "\n")
    for layout, question in (("auto", "llava q"), ("llava", "llava q"), ("hf", "hf q")):
        out = tmp_path / f"pool-{layout}"
        import_pool(ImportRequest(source=src, out=out, layout=layout))
        first = open_pool(out).table().column("conversations").to_pylist()[0]
        conv = json.loads(first) if isinstance(first, str) else first
        assert conv[0]["value"] == question, layout
    with pytest.raises(UserError, match=r"--layout cauldron needs a list `texts`"):
        import_pool(ImportRequest(source=src, out=tmp_path / "bad", layout="cauldron"))
    with pytest.raises(UserError, match="--layout must be auto, llava, hf, cauldron"):
        import_pool(ImportRequest(source=src, out=tmp_path / "bad", layout="sharegpt"))


def test_the_cli_offers_every_layout() -> None:
    from ablate.cli.parser import build_parser
    from ablate.pool.records import LAYOUTS

    parser = build_parser()
    for layout in ("auto", *LAYOUTS):  # the CLI's list (kept literal: --help stays fast)
        args = parser.parse_args(["data", "import", "x.jsonl", "--out", "p", "--layout", layout])
        assert args.layout == layout
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "import", "x.jsonl", "--out", "p", "--layout", "sharegpt"])


def test_system_turns_are_kept_first_as_context_in_every_layout(tmp_path: Path) -> None:
    llava = {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "user", "value": "Hi?"},  # ShareGPT sets also say user / assistant
            {"from": "assistant", "value": "Hello."},
        ]
    }
    hf = {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be kind."}]},
            {"role": "user", "content": "Hi?"},
            {"role": "assistant", "content": "Hello."},
        ]
    }
    empty_system = {"conversations": [{"from": "system", "value": ""}, *llava["conversations"][1:]]}
    late = {"conversations": [*llava["conversations"][1:], {"from": "system", "value": "x"}]}
    src = tmp_path / "d.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in (llava, hf, empty_system, late)) + "\n")
    m = import_pool(ImportRequest(source=src, out=tmp_path / "pool", on_invalid="skip"))
    assert (m.rows, m.skipped) == (3, 1)
    table = open_pool(tmp_path / "pool").table()
    convs = table.column("conversations").to_pylist()
    assert [[t["from"] for t in c] for c in convs] == [
        ["system", "human", "gpt"],
        ["system", "human", "gpt"],
        ["human", "gpt"],  # an empty system prompt says nothing and is not kept
    ]
    assert convs[1][0]["value"] == "Be kind."
    assert table.column("n_turns").to_pylist() == [1, 1, 1]  # assistant turns only
    skipped = json.loads((tmp_path / "pool/skipped.jsonl").read_text())
    assert (
        skipped["code"] == "roles"
        and "system turn is context and comes first" in (skipped["reason"])
    )


def test_image_parts_that_disagree_with_the_images_are_refused_per_record(tmp_path: Path) -> None:
    def hf(n_parts: int, n_images: int) -> dict[str, Any]:
        parts = [{"type": "image"}] * n_parts + [{"type": "text", "text": "what?"}]
        return {
            "images": [{"bytes": png((9, 9, 9)), "path": None}] * n_images,
            "messages": [
                {"role": "user", "content": parts},
                {"role": "assistant", "content": [{"type": "text", "text": "grey"}]},
            ],
        }

    rows = [hf(1, 1), hf(2, 1), hf(1, 2), hf(0, 1)]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), str(tmp_path / "d.parquet"))
    with pytest.raises(UserError, match=r"row 2: 2 <image> placeholder\(s\) but 1 image\(s\)"):
        import_pool(ImportRequest(source=tmp_path / "d.parquet", out=tmp_path / "pool"))
    m = import_pool(
        ImportRequest(source=tmp_path / "d.parquet", out=tmp_path / "pool", on_invalid="skip")
    )
    assert (m.rows, m.skipped, m.images_written) == (1, 3, 1)  # only a kept record's image
    report = [json.loads(x) for x in (tmp_path / "pool/skipped.jsonl").read_text().splitlines()]
    assert [(e["row"], e["code"]) for e in report] == [(2, "image_count"), (3, "image_count"),
                                                        (4, "image_count")]  # fmt: skip


def test_a_misspelt_format_is_refused_at_once_with_a_suggestion(tmp_path: Path) -> None:
    """`--format parket`: refused before `datasets` looks the name up on the Hub (offline, that
    was 24 s of retries), naming the closest format."""
    source = tmp_path / "d.jsonl"
    turns = [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]
    source.write_text(json.dumps({"id": "a", "conversations": turns}) + "\n")
    with pytest.raises(
        UserError, match=r"--format `parket` is not a format \(did you mean `parquet`"
    ):
        import_pool(ImportRequest(source=source, out=tmp_path / "pool", format="parket"))
