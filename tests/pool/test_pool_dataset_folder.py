"""A folder of LLaVA-style JSONL read by `datasets.load_dataset(PATH)` (format `dataset`) imports
as the .jsonl file does, although `datasets` types the mixed str/list `image` column as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from ablate.pool import ImportRequest, import_pool, open_pool


def test_a_jsonl_folder_imports_like_the_jsonl_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    (folder / "images").mkdir(parents=True)
    for name in ("x", "y"):
        Image.new("RGB", (4, 4)).save(folder / "images" / f"{name}.png")

    def rec(rid: str, image: str | list[str] | None) -> dict[str, object]:
        n = 0 if image is None else 1 if isinstance(image, str) else len(image)
        out: dict[str, object] = {
            "id": rid,
            "conversations": [
                {"from": "human", "value": "<image>" * n + "\nwhat is it?"},
                {"from": "gpt", "value": "a square"},
            ],
        }
        return out if image is None else {**out, "image": image}

    records = [rec("t", None), rec("s", "images/x.png"), rec("m", ["images/x.png", "images/y.png"])]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    from_folder = import_pool(ImportRequest(source=folder, out=tmp_path / "a"))
    from_file = import_pool(ImportRequest(source=folder / "train.jsonl", out=tmp_path / "b"))
    assert from_folder.sources[0]["format"] == "dataset"
    assert (from_folder.rows, from_folder.skipped) == (3, 0)
    assert from_folder.labels == from_file.labels
    assert from_folder.fingerprint == from_file.fingerprint
    a, b = open_pool(tmp_path / "a").table(), open_pool(tmp_path / "b").table()
    for column in ("id", "images", "conversations"):
        assert a.column(column).to_pylist() == b.column(column).to_pylist()
    assert a.column("images").to_pylist()[2] == [
        str((folder / "images/x.png").resolve()),
        str((folder / "images/y.png").resolve()),
    ]
