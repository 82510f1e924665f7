"""Datasets laid out as they are published: split folders and file names, wrapped JSON, ids
reused per image, OpenAI-style parts, truncated and empty images, and a relative `--out`."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from test_pool import GOOD, rec, write_source
from test_pool_images import hf_parquet, png

from ablate.errors import UserError
from ablate.pool import ImportRequest, Source, import_pool, open_pool, show_pool


def pic(rid: str, image: str) -> dict[str, Any]:
    """A one-image record whose image is `image`."""
    return {**rec(rid, 1), "image": image}


def report(pool: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (pool / "skipped.jsonl").read_text().splitlines()]


def test_a_relative_out_stores_image_paths_that_open_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "import").mkdir()
    src = hf_parquet(tmp_path / "train.parquet", [[png((255, 0, 0))], [png((0, 0, 255))]])
    monkeypatch.chdir(tmp_path / "import")
    import_pool(ImportRequest(source=src, out=Path("pools/p")))
    (tmp_path / "trial").mkdir()
    monkeypatch.chdir(tmp_path / "trial")  # a trial run from another folder
    pool = open_pool(tmp_path / "import/pools/p")
    images = [p for row in pool.take([0, 1], ["images"]).column("images").to_pylist() for p in row]
    assert len(images) == 2 and all(os.path.isabs(p) for p in images)
    with Image.open(images[1]) as im:
        assert im.convert("RGB").getpixel((0, 0)) == (0, 0, 255)


def _text_rows(split: str, n: int) -> pa.Table:
    messages = [
        [{"role": "user", "content": f"{split} q{i}"}, {"role": "assistant", "content": "a"}]
        for i in range(n)
    ]
    return pa.table({"messages": messages})


@pytest.mark.parametrize(
    "layout",
    [
        "default/{split}/0000.parquet",  # the hub's refs/convert/parquet branch
        "data/{split}.parquet",
        "data/{split}-0.parquet",
        "{split}_part.parquet",
    ],
)
def test_a_parquet_folder_picks_the_split_by_folder_or_file_name(
    tmp_path: Path, layout: str
) -> None:
    for split, n in (("train", 4), ("test", 2)):
        path = tmp_path / "repo" / layout.format(split=split)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_text_rows(split, n), path)
    m = import_pool(ImportRequest(source=tmp_path / "repo", out=tmp_path / "train"))
    assert m.rows == 4 and m.sources[0]["files"] == [layout.format(split="train")]
    m = import_pool(ImportRequest(source=tmp_path / "repo", out=tmp_path / "test", split="test"))
    assert m.rows == 2 and m.sources[0]["files"] == [layout.format(split="test")]
    questions = open_pool(tmp_path / "test").table().column("conversations").to_pylist()
    assert [c[0]["value"] for c in questions] == ["test q0", "test q1"]
    with pytest.raises(UserError, match=r"hold the split\(s\) test, train, not `validation`"):
        import_pool(ImportRequest(source=tmp_path / "repo", out=tmp_path / "v", split="validation"))


def test_a_parquet_folder_without_split_names_reads_every_file(tmp_path: Path) -> None:
    for name, n in (("part-a.parquet", 3), ("sub/part-b.parquet", 2)):
        (tmp_path / "repo" / name).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_text_rows(name, n), tmp_path / "repo" / name)
    m = import_pool(ImportRequest(source=tmp_path / "repo", out=tmp_path / "pool"))
    assert m.rows == 5 and m.sources[0]["files"] == ["part-a.parquet", "sub/part-b.parquet"]
    single = import_pool(ImportRequest(source=tmp_path / "repo/part-a.parquet", out=tmp_path / "s"))
    assert single.sources[0]["files"] == ["part-a.parquet"]


def _truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    noise = Image.frombytes("RGB", (64, 64), bytes(range(256)) * 48)
    noise.save(buf, format="JPEG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]  # the first half of a download


def test_decode_images_decodes_in_full_and_catches_a_truncated_jpeg(tmp_path: Path) -> None:
    data = _truncated_jpeg()
    (tmp_path / "src/imgs").mkdir(parents=True)
    (tmp_path / "src/imgs/cut.jpg").write_bytes(data)
    uri = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    records = [pic("file", "imgs/cut.jpg"), pic("uri", uri), GOOD[2]]
    src = write_source(tmp_path / "src", records)
    m = import_pool(ImportRequest(source=src, out=tmp_path / "plain"))
    assert m.rows == 3  # opt-in: without --decode-images only the signature is looked at
    m = import_pool(
        ImportRequest(source=src, out=tmp_path / "pool", decode_images=True, on_invalid="skip")
    )
    assert m.rows == 1 and m.checks["images_decoded"]
    codes = {e["id"]: e["code"] for e in report(tmp_path / "pool")}
    assert codes == {"file": "bad_image_file", "uri": "bad_image_bytes"}
    assert all("truncated" in e["reason"] for e in report(tmp_path / "pool"))


def test_ids_reused_per_image_are_refused_or_renamed_in_order(tmp_path: Path) -> None:
    records = [rec("33471", 1), rec("33471", 1, turns=1), rec("x", 0), rec("33471", 0)]
    records.append(rec("33471#3", 0))  # a given id that a rename would also make
    src = write_source(tmp_path / "src", records)
    with pytest.raises(UserError) as err:
        import_pool(ImportRequest(source=src, out=tmp_path / "pool"))
    assert "duplicate id '33471'" in str(err.value)
    assert "--duplicate-ids rename" in str(err.value) and "'33471#2'" in str(err.value)
    m = import_pool(ImportRequest(source=src, out=tmp_path / "pool", duplicate_ids="rename"))
    ids = open_pool(tmp_path / "pool").table().column("id").to_pylist()
    assert ids == ["33471", "33471#2", "x", "33471#3", "33471#3#2"]
    assert (m.rows, m.ids_renamed, m.sources[0]["ids_renamed"]) == (5, 3, 3)
    assert m.checks["duplicate_ids"] == "rename"
    # the command line's flag; the same ids again (deterministic)
    from ablate.cli import main

    assert main(["data", "import", str(src), "--out", str(tmp_path / "again"),
                 "--duplicate-ids", "rename"]) == 0  # fmt: skip
    assert open_pool(tmp_path / "again").manifest.fingerprint == m.fingerprint
    with pytest.raises(UserError, match="--duplicate-ids must be error or rename"):
        import_pool(ImportRequest(source=src, out=tmp_path / "p", duplicate_ids="drop"))  # type: ignore[arg-type]


def test_a_records_own_source_field_shadowed_in_a_combined_pool_is_warned_once(
    tmp_path: Path,
) -> None:
    own = [rec(f"b{i}", 0, source=s) for i, s in enumerate(["coco", "gqa", "coco"])]
    base = write_source(tmp_path / "base", own)
    other = write_source(tmp_path / "other", GOOD[:2])
    warnings: list[str] = []
    sources = [Source(base, name="base"), Source(other, name="mmcr")]
    m = import_pool(ImportRequest(source=sources, out=tmp_path / "pool"), warn=warnings.append)
    assert m.labels["source"] == {"base": 3, "mmcr": 2}
    assert len(warnings) == 1 and m.notes == (warnings[0],)
    assert "3 record(s) of source `base` have their own `source` field (e.g. 'coco')" in m.notes[0]
    assert "--label src=field:source" in m.notes[0]
    kept = import_pool(
        ImportRequest(source=sources, out=tmp_path / "kept", labels=(("src", "field:source"),)),
        warn=warnings.append,
    )
    assert kept.labels["src"] == {"coco": 2, "gqa": 1, "unknown": 2}
    alone = import_pool(ImportRequest(source=base, out=tmp_path / "alone"), warn=warnings.append)
    assert alone.labels["source"] == {"coco": 2, "gqa": 1} and alone.notes == ()


def test_an_unknown_content_part_is_refused_not_dropped(tmp_path: Path) -> None:
    def hf(rid: str, part: Any) -> dict[str, Any]:
        content = [part, {"type": "text", "text": "Q?"}]
        reply = {"role": "assistant", "content": "A."}
        return {"id": rid, "messages": [{"role": "user", "content": content}, reply]}

    records = [
        hf("audio", {"type": "audio", "audio": "a.wav"}),
        hf("null", None),
        hf("ok", {"type": "text", "text": None}),
    ]
    src = write_source(tmp_path / "src", records)
    m = import_pool(ImportRequest(source=src, out=tmp_path / "pool", on_invalid="skip"))
    assert m.rows == 1 and m.labels["task_type"] == {"text_only": 1}
    bad = {e["id"]: e for e in report(tmp_path / "pool")}
    assert {e["code"] for e in bad.values()} == {"unknown_part"}
    assert "message 0, content part 0 is type 'audio'" in bad["audio"]["reason"]
    assert "the part types known are image, image_url, text" in bad["audio"]["reason"]
    assert "content part 0 is None" in bad["null"]["reason"]


def test_image_problems_name_their_cause(tmp_path: Path) -> None:
    """A missing file names the image root and --image-root; empty embedded bytes say so."""
    src = write_source(tmp_path / "src", [pic("far", "coco/1.jpg"), GOOD[2]])
    with pytest.raises(UserError) as err:
        import_pool(ImportRequest(source=src, out=tmp_path / "pool"))
    assert f"under the image root {tmp_path / 'src'}" in str(err.value)
    assert "--image-root" in str(err.value)
    table = pa.table(
        {
            "messages": [
                [{"role": "user", "content": "<image>Q"}, {"role": "assistant", "content": "A"}]
            ]
            * 2,
            "images": [
                [{"bytes": b"", "path": "empty.jpg"}],
                [{"bytes": png((1, 2, 3)), "path": "ok.png"}],
            ],
        }
    )
    pq.write_table(table, tmp_path / "hub.parquet")
    m = import_pool(
        ImportRequest(source=tmp_path / "hub.parquet", out=tmp_path / "hub", on_invalid="skip")
    )
    assert m.rows == 1
    [entry] = report(tmp_path / "hub")
    assert (entry["code"], entry["reason"]) == ("bad_image_bytes", "embedded image bytes are empty")
    # a row without an id is reported by the id its position makes, as the pool would name it
    assert (entry["id"], entry["id_made"], entry["row"]) == ("row-1", True, 1)
    assert open_pool(tmp_path / "hub").table().column("id").to_pylist() == ["row-2"]


def test_skipped_records_without_a_usable_id_get_their_made_id(tmp_path: Path) -> None:
    no_id = {k: v for k, v in rec("x", 0).items() if k != "id"}
    no_id["conversations"][1]["from"] = "human"  # roles: two questions in a row
    blank = rec("  ", 0, turns=1)
    blank["conversations"].pop()
    src = write_source(tmp_path / "src", [GOOD[2], no_id, blank, pic("given", "nope.png")])
    import_pool(ImportRequest(source=src, out=tmp_path / "pool", on_invalid="skip"))
    made = [(e["id"], e.get("id_made", False), e["code"]) for e in report(tmp_path / "pool")]
    assert made == [
        ("line-2", True, "roles"),
        ("line-3", True, "missing_id"),
        ("given", False, "missing_image"),
    ]


def test_a_json_object_wrapping_the_records_names_the_key(tmp_path: Path) -> None:
    write_source(tmp_path / "src", [])
    wrapped = {"info": {"version": 1}, "data": GOOD[:2]}
    for name, text in (
        ("one_line.json", json.dumps(wrapped)),
        ("pretty.json", json.dumps(wrapped, indent=2)),
    ):
        (tmp_path / "src" / name).write_text(text)
        with pytest.raises(UserError) as err:
            import_pool(ImportRequest(source=tmp_path / "src" / name, out=tmp_path / "pool"))
        msg = str(err.value)
        assert "the JSON top level is an object, not an array of records" in msg
        assert "its list of records is under `data`" in msg and "jq '.data'" in msg
    # one record as an object, and JSONL named .json, still import
    (tmp_path / "src/one.json").write_text(json.dumps(GOOD[1], indent=2).replace("\n", " "))
    assert (
        import_pool(ImportRequest(source=tmp_path / "src/one.json", out=tmp_path / "a")).rows == 1
    )
    (tmp_path / "src/lines.json").write_text("\n".join(json.dumps(r) for r in GOOD[:3]))
    assert (
        import_pool(ImportRequest(source=tmp_path / "src/lines.json", out=tmp_path / "b")).rows == 3
    )


def test_sharegpt_records_lose_a_leading_answer_and_a_trailing_question_counted(
    tmp_path: Path,
) -> None:
    """ShareGPT-style sets open some dialogues with a gpt turn and end some with a question;
    LLaVA's preprocessing drops those turns, and so does the import, counting the rows."""
    leading = rec("lead", 1)
    leading["conversations"].insert(0, {"from": "gpt", "value": "Hello! Ask me anything."})
    trailing = rec("trail", 1)
    trailing["conversations"].append({"from": "human", "value": "And then?"})
    both = rec("both", 0, turns=1)
    both["conversations"] = [{"from": "system", "value": "Be brief."}, {"from": "gpt", "value": "Hi."},
                             *both["conversations"], {"from": "human", "value": "Thanks!"}]  # fmt: skip
    image_in_tail = rec("tail_image", 0)
    image_in_tail.update(image="imgs/img0.png")
    image_in_tail["conversations"].append({"from": "human", "value": "<image>\nThis one?"})
    lone = {"id": "lone", "conversations": [{"from": "gpt", "value": "Hi."}]}
    records = [GOOD[0], leading, trailing, both, image_in_tail, lone]
    src = write_source(tmp_path / "src", records)
    warnings: list[str] = []
    req = ImportRequest(source=src, out=tmp_path / "pool", on_invalid="skip")
    m = import_pool(req, warn=warnings.append)
    assert (m.rows, m.skipped, m.turns_trimmed, m.sources[0]["turns_trimmed"]) == (4, 2, 3, 3)
    assert "3 record(s) of source" in m.notes[0] and "dropped" in m.notes[0]
    rows = {r["id"]: r for r in open_pool(tmp_path / "pool").table().to_pylist()}
    assert [t["from"] for t in rows["lead"]["conversations"]] == ["human", "gpt"] * 2
    assert rows["lead"]["n_turns"] == 2 and rows["trail"]["n_turns"] == 2
    assert [t["value"] for t in rows["both"]["conversations"]] == [
        "Be brief.", "question 0 of both", "answer 0 of both"]  # fmt: skip
    assert rows[GOOD[0]["id"]]["conversations"] == GOOD[0]["conversations"]
    skipped = [json.loads(x) for x in (tmp_path / "pool/skipped.jsonl").read_text().splitlines()]
    reasons = {s["id"]: s["reason"] for s in skipped}
    assert "last turn (human) holds <image>" in reasons["tail_image"]
    assert "no question answered by a gpt turn" in reasons["lone"]
    assert open_pool(tmp_path / "pool").manifest.turns_trimmed == 3
    assert f"note         {m.notes[0]}" in show_pool(open_pool(tmp_path / "pool"))
