"""A pool moved or copied elsewhere (a cluster's shared file system) is the same pool: the images
of its own store are named inside the pool folder and read back as absolute paths from where
the pool is now; pools imported before, with absolute store paths, still read."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from PIL import Image

from ablate.pool import ImportRequest, import_pool, open_pool


def png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


def uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def key(data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    return f"images/{digest[:2]}/{digest}.png"


RED, BLUE = png((255, 0, 0)), png((0, 0, 255))


def dialogue(rid: str, images: list[str]) -> dict[str, object]:
    return {
        "id": rid,
        "image": images,
        "conversations": [
            {"from": "human", "value": "<image>" * len(images) + "\nwhat colour?"},
            {"from": "gpt", "value": "red"},
        ],
    }


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    """A pool of an embedded image, an image file of the source, and two embedded images."""
    (tmp_path / "src/imgs").mkdir(parents=True)
    (tmp_path / "src/imgs/file.png").write_bytes(png((0, 255, 0)))
    records = [
        dialogue("a", [uri(RED)]),
        dialogue("b", ["imgs/file.png"]),
        dialogue("c", [uri(RED), uri(BLUE)]),
    ]
    src = tmp_path / "src/d.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    import_pool(ImportRequest(source=src, out=tmp_path / "pool"))
    return tmp_path / "pool"


def stored_images(pool: Path) -> list[list[str]]:
    """The `images` column as `pool.arrow` holds it."""
    with pa.memory_map(str(pool / "pool.arrow"), "r") as f:
        images: list[list[str]] = ipc.open_file(f).read_all().column("images").to_pylist()
    return images


def test_store_images_are_named_inside_the_pool_and_the_fingerprint_is_unchanged(
    pool: Path, tmp_path: Path
) -> None:
    source_file = str((tmp_path / "src/imgs/file.png").resolve())
    assert stored_images(pool) == [[key(RED)], [source_file], [key(RED), key(BLUE)]]
    # The fingerprint hashes store paths inside the pool and files relative to the image root,
    # as it always did: the same data gives the same fingerprint.
    expected = hashlib.sha256()
    for rid, rel in (("a", [key(RED)]), ("b", ["imgs/file.png"]), ("c", [key(RED), key(BLUE)])):
        conv = [["human", "<image>" * len(rel) + "\nwhat colour?"], ["gpt", "red"]]
        expected.update((json.dumps([rid, conv, rel], ensure_ascii=False) + "\n").encode())
    assert open_pool(pool).manifest.fingerprint == expected.hexdigest()


def test_a_moved_pool_finds_its_images(pool: Path, tmp_path: Path) -> None:
    fingerprint = open_pool(pool).manifest.fingerprint
    moved = tmp_path / "shared/pool"
    shutil.move(pool, moved)
    opened = open_pool(moved)
    assert opened.manifest.fingerprint == fingerprint
    paths = [p for ps in opened.table().column("images").to_pylist() for p in ps]
    assert len(paths) == 4 and all(Path(p).is_absolute() and Path(p).is_file() for p in paths)
    # A trial reads the selected rows with `take`: absolute paths under the new folder.
    rows = opened.take([2, 0], ["id", "conversations", "images"]).to_pylist()
    assert [r["id"] for r in rows] == ["c", "a"]
    assert rows[0]["images"] == [str(moved.resolve() / key(RED)), str(moved.resolve() / key(BLUE))]
    with Image.open(rows[0]["images"][1]) as im:
        assert im.getpixel((0, 0)) == (0, 0, 255)


def test_a_relative_pool_folder_gives_absolute_paths(
    pool: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    images = open_pool("pool").take([0], ["images"]).column("images").to_pylist()
    assert images == [[str(pool.resolve() / key(RED))]]


def test_a_pool_imported_with_absolute_store_paths_still_reads(pool: Path) -> None:
    with pa.memory_map(str(pool / "pool.arrow"), "r") as f:
        table = ipc.open_file(f).read_all()
    old = [
        [p if p.startswith("/") else str(pool.resolve() / p) for p in ps]
        for ps in stored_images(pool)
    ]
    table = table.set_column(1, "images", pa.array(old, type=table.schema.field("images").type))
    with ipc.new_file(str(pool / "old.arrow"), table.schema) as writer:
        writer.write_table(table)
    (pool / "old.arrow").replace(pool / "pool.arrow")  # a new file: the old one stays mapped
    opened = open_pool(pool)
    assert opened.table().column("images").to_pylist() == old
    assert opened.take([2], ["images"]).column("images").to_pylist() == [old[2]]
    assert all(Path(p).is_file() for ps in old for p in ps)
