"""A hub snapshot folder (`data/train-00000-of-0000N.parquet` shards, written by `datasets` with
embedded images) imports as one source: shards in order, progress with a known total, missing
shards and damaged row groups named and accounted for."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from test_pool_images import png

from ablate.errors import UserError
from ablate.pool import ImportProgress, ImportRequest, import_pool, importer, open_pool

FEATURES = datasets.Features(
    {
        "messages": datasets.List(
            {"role": datasets.Value("string"), "content": datasets.Value("string")}
        ),
        "images": datasets.List(datasets.Image()),
        "skill": datasets.Value("string"),
    }
)


def hf_rows(start: int, n: int, colours: list[tuple[int, int, int]]) -> list[dict[str, Any]]:
    """`n` one-image dialogues in the Hugging Face layout, no id; record i shows colour i % k."""
    return [
        {
            "messages": [
                {"role": "system", "content": "Answer in one word."},
                {"role": "user", "content": f"<image>What colour? ({start + i})"},
                {"role": "assistant", "content": f"colour{(start + i) % len(colours)}"},
            ],
            "images": [Image.open(io.BytesIO(png(colours[(start + i) % len(colours)])))],
            "skill": "colors" if (start + i) % 2 else "layout",
        }
        for i in range(n)
    ]


def snapshot(root: Path, sizes: list[int], split: str = "train") -> Path:
    """A dataset repository's layout: README.md + data/{split}-0000i-of-0000N.parquet."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text("---\nlicense: mit\n---\n")
    start = 0
    for i, size in enumerate(sizes):
        ds = datasets.Dataset.from_list(hf_rows(start, size, colours), features=FEATURES)
        ds.to_parquet(str(root / "data" / f"{split}-{i:05d}-of-{len(sizes):05d}.parquet"))
        start += size
    return root


def test_a_snapshot_folder_imports_its_splits_shards_in_order(tmp_path: Path) -> None:
    snap = snapshot(tmp_path / "snap", [4, 3, 5])
    snapshot(tmp_path / "snap", [2], split="test")
    states: list[ImportProgress] = []
    m = import_pool(
        ImportRequest(source=snap, out=tmp_path / "pool"),
        lambda s: states.append(ImportProgress(**vars(s))),
    )
    assert (m.rows, m.records_read, m.ids_made) == (12, 12, 12)
    assert m.sources[0]["format"] == "parquet"
    assert m.labels["skill"] == {"colors": 6, "layout": 6}
    assert (m.images_written, m.images_deduplicated) == (3, 9)  # three colours, twelve images
    table = open_pool(tmp_path / "pool").table()
    assert table.column("id").to_pylist() == [f"row-{i}" for i in range(1, 13)]  # shard order
    questions = [c[1]["value"] for c in table.column("conversations").to_pylist()]
    assert questions == [f"<image>What colour? ({i})" for i in range(12)]
    assert states[-1].total == 12 and states[-1].records == 12
    assert states[-1].images_written == 3
    # the other split, by name; an absent one lists those present
    m = import_pool(ImportRequest(source=snap, out=tmp_path / "test", split="test"))
    assert m.rows == 2
    with pytest.raises(UserError, match=r"the files hold the split\(s\) test, train, not "):
        import_pool(ImportRequest(source=snap, out=tmp_path / "v", split="validation"))


def test_progress_line_gives_rates_and_time_left() -> None:
    state = ImportProgress(records=2_000, total=10_000, images_written=1_500)
    line = state.line(seconds=4.0)
    assert line == "2,000 of 10,000 records (500/s), 1,500 images written (375/s), 0:00:16 left"
    assert ImportProgress(records=7).line(1.0) == "7 records (7/s)"


def test_a_missing_shard_is_named_before_anything_is_read(tmp_path: Path) -> None:
    snap = snapshot(tmp_path / "snap", [2, 2, 2])
    (snap / "data/train-00001-of-00003.parquet").unlink()
    with pytest.raises(UserError, match=r"shard\(s\) 00001 of 00003 are missing .*download it"):
        import_pool(ImportRequest(source=snap, out=tmp_path / "pool"))
    assert not (tmp_path / "pool").exists()


def damaged(path: Path, rows: int, group_rows: int, bad_group: int) -> Path:
    """A Parquet file of `rows` records in row groups of `group_rows`, row group `bad_group`'s
    pages overwritten (its footer intact, as when a download is corrupted in the middle)."""
    conv = [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]
    table = pa.table({"id": [f"r{i}" for i in range(rows)], "conversations": [conv] * rows})
    pq.write_table(table, str(path), row_group_size=group_rows)
    chunk = pq.ParquetFile(str(path)).metadata.row_group(bad_group).column(0)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    data[start : start + chunk.total_compressed_size] = b"\xff" * chunk.total_compressed_size
    path.write_bytes(bytes(data))
    return path


def test_a_row_group_unreadable_mid_shard_is_named_and_accounted(tmp_path: Path) -> None:
    snap = snapshot(tmp_path / "snap", [3])
    (snap / "data/train-00000-of-00001.parquet").unlink()
    (snap / "data/train-00000-of-00002.parquet").unlink(missing_ok=True)
    damaged(snap / "data/train-00000-of-00002.parquet", rows=6, group_rows=2, bad_group=1)
    damaged(snap / "data/train-00001-of-00002.parquet", rows=2, group_rows=2, bad_group=0)
    with pytest.raises(UserError) as err:
        import_pool(ImportRequest(source=snap, out=tmp_path / "pool"))
    msg = str(err.value)
    assert "row 3, data/train-00000-of-00002.parquet row 3" in msg
    assert "shard data/train-00000-of-00002.parquet is unreadable at its row 3" in msg
    assert "2 row(s)" in msg and "--on-invalid skip" in msg
    m = import_pool(ImportRequest(source=snap, out=tmp_path / "pool", on_invalid="skip"))
    # 8 records: rows 1-2 and 5-6 of the first shard read; 2 + 2 lost, each run one report line
    assert (m.records_read, m.rows, m.skipped) == (8, 4, 4)
    ids = open_pool(tmp_path / "pool").table().column("id").to_pylist()
    assert ids == ["r0", "r1", "r4", "r5"]
    lines = [json.loads(x) for x in (tmp_path / "pool/skipped.jsonl").read_text().splitlines()]
    assert [(e["row"], e["shard"], e["shard_row"], e["records"]) for e in lines] == [
        (3, "data/train-00000-of-00002.parquet", 3, 2),
        (7, "data/train-00001-of-00002.parquet", 1, 2),
    ]
    assert all(e["code"] == "unreadable_shard" for e in lines)


def test_a_damaged_footer_is_refused_naming_the_file(tmp_path: Path) -> None:
    snap = snapshot(tmp_path / "snap", [2, 2])
    shard = snap / "data/train-00001-of-00002.parquet"
    shard.write_bytes(shard.read_bytes()[:-20])
    with pytest.raises(UserError, match=r"train-00001-of-00002.parquet: not a readable Parquet"):
        import_pool(ImportRequest(source=snap, out=tmp_path / "pool", on_invalid="skip"))


def test_thirty_percent_repeated_images_store_exactly_seventy_percent(tmp_path: Path) -> None:
    distinct = [png((i, 255 - i, 7)) for i in range(70)]
    images = distinct + distinct[:30]  # 100 images, 30 of them repeats
    conv = [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]
    table = pa.table(
        {
            "image": [{"bytes": b, "path": None} for b in images],
            "conversations": [conv] * len(images),
        }
    )
    pq.write_table(table, str(tmp_path / "r.parquet"))
    m = import_pool(ImportRequest(source=tmp_path / "r.parquet", out=tmp_path / "pool"))
    assert (m.rows, m.images_written, m.images_deduplicated) == (100, 70, 30)
    assert len(list((tmp_path / "pool/images").rglob("*.png"))) == 70


def test_an_image_that_is_neither_a_path_nor_bytes_is_named(tmp_path: Path) -> None:
    conv = [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps({"id": "x", "image": [17], "conversations": conv}) + "\n")
    with pytest.raises(UserError, match=r"image 0 is 17 \(int\), neither a path nor bytes"):
        import_pool(ImportRequest(source=src, out=tmp_path / "pool"))


@pytest.fixture(autouse=True)
def _progress_often(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "PROGRESS_EVERY", 5)
