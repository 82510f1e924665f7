"""Images embedded in the records (`datasets.Image` structs, raw bytes, data URIs) go into the
pool's content-addressed store once, in their original encoding."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ablate.errors import UserError
from ablate.pool import ImportRequest, import_pool, open_pool


def png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


def hf_parquet(path: Path, images: list[list[bytes]]) -> Path:
    """A Parquet file written by `datasets` with an Image column (bytes, no path), no ids."""
    import datasets

    rows = [
        {
            "messages": [
                {"role": "user", "content": "<image>" * len(imgs) + "what colour?"},
                {"role": "assistant", "content": "red"},
            ],
            "images": [Image.open(io.BytesIO(b)) for b in imgs],
        }
        for imgs in images
    ]
    features = datasets.Features(
        {
            "messages": datasets.List(
                {"role": datasets.Value("string"), "content": datasets.Value("string")}
            ),
            "images": datasets.List(datasets.Image()),
        }
    )
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(path))
    return path


def test_embedded_images_are_stored_once_in_their_encoding(tmp_path: Path) -> None:
    red, blue = png((255, 0, 0)), png((0, 0, 255))
    src = hf_parquet(tmp_path / "train-00000-of-00001.parquet", [[red], [blue, red], [red]])
    m = import_pool(ImportRequest(source=src, out=tmp_path / "pool"))
    assert m.rows == 3 and m.ids_made == 3
    assert m.labels["task_type"] == {"single_image": 2, "multi_image": 1}
    assert (m.images_written, m.images_deduplicated) == (2, 2)  # 4 images, 2 distinct
    stored = sorted((tmp_path / "pool" / "images").rglob("*.png"))
    assert len(stored) == 2
    for data in (red, blue):  # the very bytes given: no re-encode
        digest = hashlib.sha256(data).hexdigest()
        path = tmp_path / "pool" / "images" / digest[:2] / f"{digest}.png"
        assert path.read_bytes() == data
    images = open_pool(tmp_path / "pool").table().column("images").to_pylist()
    assert images[1][1] == images[0][0] == images[2][0]  # the same file, referenced thrice
    with Image.open(images[1][0]) as im:
        assert im.getpixel((0, 0)) == (0, 0, 255)
    again = import_pool(ImportRequest(source=src, out=tmp_path / "pool"))  # re-import in place
    assert (again.images_written, again.images_deduplicated) == (0, 4)
    assert again.fingerprint == m.fingerprint


def test_data_uris_and_raw_bytes_in_json(tmp_path: Path) -> None:
    uri = "data:image/png;base64," + base64.b64encode(png((0, 255, 0))).decode()
    record = {
        "conversations": [
            {"from": "human", "value": "<image>\nwhat colour?"},
            {"from": "gpt", "value": "green"},
        ],
        "image": uri,
    }
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps(record) + "\n" + json.dumps({**record, "id": "x"}) + "\n")
    m = import_pool(ImportRequest(source=src, out=tmp_path / "pool"))
    assert m.rows == 2 and (m.images_written, m.images_deduplicated) == (1, 1)
    assert open_pool(tmp_path / "pool").table().column("id").to_pylist() == ["line-1", "x"]


def test_bytes_that_are_not_an_image_are_refused_and_a_failed_import_leaves_nothing(
    tmp_path: Path,
) -> None:
    corrupt = b"\x89PNG\r\n\x1a\n" + b"not really a png"
    src = hf_parquet(tmp_path / "a.parquet", [[png((1, 2, 3))], [png((4, 5, 6))]])
    table = pq.read_table(src).to_pylist()
    table[1]["images"] = [{"bytes": b"%PDF-1.4", "path": None}]
    table.append({**table[0], "images": [{"bytes": corrupt, "path": None}]})
    pq.write_table(pa.Table.from_pylist(table), tmp_path / "b.parquet")
    with pytest.raises(UserError, match="not a PNG, JPEG, GIF, WebP, BMP or TIFF image"):
        import_pool(ImportRequest(source=tmp_path / "b.parquet", out=tmp_path / "pool"))
    assert not (tmp_path / "pool").exists()  # nothing half-written, the store included
    m = import_pool(
        ImportRequest(
            source=tmp_path / "b.parquet",
            out=tmp_path / "pool",
            on_invalid="skip",
            decode_images=True,
        )
    )
    assert m.rows == 1 and m.skipped == 2 and m.images_written == 1
    report = [json.loads(x) for x in (tmp_path / "pool" / "skipped.jsonl").read_text().splitlines()]
    assert [r["code"] for r in report] == ["bad_image_bytes", "bad_image_bytes"]
    assert "cannot decode embedded image" in report[1]["reason"]
