"""Records without an `id` (most published instruction sets have none) are named by their
position in the source: stable on re-import, unique in the pool, counted in the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from test_pool import GOOD, rec, write_source

from ablate.pool import ImportRequest, Source, import_pool, open_pool


def _without_ids(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "id"} for r in records]


def test_records_without_ids_are_named_by_position_and_counted(tmp_path: Path) -> None:
    records = [*_without_ids(GOOD[:3]), GOOD[3]]  # three without an id, one with
    src = write_source(tmp_path / "src", records)
    m = import_pool(ImportRequest(source=src, out=tmp_path / "pool"))
    ids = open_pool(tmp_path / "pool").table().column("id").to_pylist()
    assert ids == ["line-1", "line-2", "line-3", "d"]
    assert m.ids_made == 3 and m.sources[0]["ids_made"] == 3 and m.rows == 4
    saved = json.loads((tmp_path / "pool" / "manifest.json").read_text())
    assert saved["ids_made"] == 3
    again = import_pool(ImportRequest(source=src, out=tmp_path / "pool2"))
    assert open_pool(tmp_path / "pool2").table().column("id").to_pylist() == ids
    assert again.fingerprint == m.fingerprint  # the same pool on re-import


def test_a_parquet_of_hf_messages_without_ids_and_a_combined_pool(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src", [GOOD[0]])  # the images, and a JSONL with ids
    messages = [
        {
            "messages": [
                {"role": "user", "content": "<image>\nwhat colour?"},
                {"role": "assistant", "content": "red"},
            ],
            "images": ["imgs/img0.png"],
        },
        {
            "messages": [
                {"role": "user", "content": "count to two"},
                {"role": "assistant", "content": "one two"},
            ],
            "images": [],
        },
    ]
    table = pa.Table.from_pylist(messages)
    pq.write_table(table, tmp_path / "src" / "hf.parquet")
    m = import_pool(
        ImportRequest(
            source=[Source(src, name="llava"), Source(tmp_path / "src" / "hf.parquet", name="hf")],
            out=tmp_path / "pool",
        )
    )
    ids = open_pool(tmp_path / "pool").table().column("id").to_pylist()
    assert ids == ["llava/a", "hf/row-1", "hf/row-2"]  # rows count from 1, as in error messages
    assert m.ids_made == 2 and [s["ids_made"] for s in m.sources] == [0, 2]
    assert m.labels["task_type"] == {"single_image": 2, "text_only": 1}


def test_a_made_id_that_collides_with_a_given_one_is_a_duplicate(tmp_path: Path) -> None:
    records = [rec("line-2", 1), _without_ids([GOOD[1]])[0]]
    src = write_source(tmp_path / "src", records)
    m = import_pool(ImportRequest(source=src, out=tmp_path / "pool", on_invalid="skip"))
    assert m.rows == 1 and m.skipped == 1 and m.ids_made == 0
    report = json.loads((tmp_path / "pool" / "skipped.jsonl").read_text())
    assert report["code"] == "duplicate_id" and report["line"] == 2
