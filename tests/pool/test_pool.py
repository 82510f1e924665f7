"""Pool import: layout, validation (both policies), manifest counts, fingerprint, show."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from PIL import Image

from ablate.errors import UserError
from ablate.pool import ImportRequest, import_pool, importer, open_pool, show_pool


def rec(rid: str, n_images: int = 1, turns: int = 2, **extra: Any) -> dict[str, Any]:
    """A valid LLaVA-style record with `n_images` images (img0.png ...) and `turns` gpt turns."""
    conv = []
    for t in range(turns):
        prefix = "<image>\n" * n_images if t == 0 else ""
        conv += [
            {"from": "human", "value": f"{prefix}question {t} of {rid}"},
            {"from": "gpt", "value": f"answer {t} of {rid}"},
        ]
    out: dict[str, Any] = {"id": rid, "conversations": conv, **extra}
    if n_images == 1:
        out["image"] = "imgs/img0.png"
    elif n_images > 1:
        out["image"] = [f"imgs/img{i}.png" for i in range(n_images)]
    return out


def write_source(folder: Path, records: list[Any], name: str = "data.jsonl") -> Path:
    """Write records as JSONL (or a JSON list for *.json) and four tiny PNGs under imgs/."""
    (folder / "imgs").mkdir(parents=True, exist_ok=True)
    for i in range(4):
        Image.new("RGB", (4, 4), (i * 60, 0, 0)).save(folder / "imgs" / f"img{i}.png")
    path = folder / name
    if name.endswith(".json"):
        path.write_text(json.dumps(records))
    else:
        path.write_text(
            "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n"
        )
    return path


GOOD = [
    rec("a", 1, domain="science", skill="count"),
    rec("b", 2, turns=4, domain="art"),
    rec("c", 0, domain="science", skill="ocr"),
    rec("d", 3, turns=4),
    rec("e", 1, domain="art", skill="count"),
]


def test_import_columns_and_manifest(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src", GOOD)
    m = import_pool(ImportRequest(source=src, out=tmp_path / "pool"))
    assert m.rows == 5 and m.skipped == 0 and m.skipped_report is None
    # `subtopic` and `source` are in no record: no column for them.
    assert m.columns == (
        "id",
        "images",
        "conversations",
        "n_images",
        "n_turns",
        "task_type",
        "domain",
        "skill",
    )
    assert m.labels == {
        "task_type": {"multi_image": 2, "single_image": 2, "text_only": 1},
        "domain": {"art": 2, "science": 2, "unknown": 1},
        "skill": {"count": 2, "ocr": 1, "unknown": 2},
    }
    pool = open_pool(tmp_path / "pool")
    t = pool.table()
    assert t is pool.table()  # cached on the instance
    assert t.schema.field("n_images").type == pa.int32()
    assert t.schema.field("conversations").type == pa.list_(
        pa.struct([("from", pa.string()), ("value", pa.string())])
    )
    assert t.column("id").to_pylist() == ["a", "b", "c", "d", "e"]
    assert t.column("n_images").to_pylist() == [1, 2, 0, 3, 1]
    assert t.column("n_turns").to_pylist() == [2, 4, 2, 4, 2]
    assert t.column("task_type").to_pylist() == [
        "single_image",
        "multi_image",
        "text_only",
        "multi_image",
        "single_image",
    ]
    images = t.column("images").to_pylist()
    assert images[1] == [str((tmp_path / "src/imgs" / f"img{i}.png").resolve()) for i in range(2)]
    assert all(Path(p).is_absolute() for row in images for p in row)
    assert list(pool.labels("domain")) == ["science", "art", "science", "unknown", "art"]
    saved = json.loads((tmp_path / "pool/manifest.json").read_text())
    assert saved["rows"] == 5 and saved["fingerprint"] == m.fingerprint


def test_json_list_and_image_root(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src", GOOD, name="data.json")
    moved = tmp_path / "elsewhere"
    shutil.move(tmp_path / "src/imgs", moved / "imgs")
    req = ImportRequest(source=src, out=tmp_path / "pool", image_root=moved)
    m = import_pool(req)
    assert m.rows == 5
    first = open_pool(tmp_path / "pool").table().column("images").to_pylist()[0]
    assert first == [str(moved.resolve() / "imgs/img0.png")]
    # Without the image root the images are missing.
    with pytest.raises(UserError, match="image file not found"):
        import_pool(ImportRequest(source=src, out=tmp_path / "pool2"))


def _bad(mutate: Any) -> dict[str, Any]:
    r = rec("bad", 1)
    mutate(r)
    return r


INVALID = {
    "image_count": _bad(lambda r: r.update(image=["imgs/img0.png", "imgs/img1.png"])),
    "missing_image": _bad(lambda r: r.update(image="imgs/nope.png")),
    "roles": _bad(lambda r: r["conversations"][1].update({"from": "human"})),
    "unknown_role": _bad(lambda r: r["conversations"][1].update({"from": "narrator"})),
    "empty_message": _bad(lambda r: r["conversations"][1].update(value=None)),
    "bad_message": _bad(lambda r: r["conversations"][1].update(value=5)),
    "bad_conversations": _bad(lambda r: r.update(conversations="hello")),
    "missing_id": _bad(lambda r: r.update(id="  ")),  # an id given but blank (none is made)
    "bad_id": _bad(lambda r: r.update(id=1.5)),  # ids are strings or integers
    "bad_json": '{"id": "bad", "conversations": [',
    "duplicate_id": rec("a", 1),
}
REASONS = {
    "image_count": "1 <image> placeholder(s) but 2 image(s)",
    "missing_image": "image file not found",
    "roles": "roles must alternate human/gpt; turns 0 and 1 are both human",
    "unknown_role": "unknown role 'narrator'",
    "empty_message": "empty or null message",
    "bad_message": "turn 1 (gpt): a message is text, found 5",  # (before: "empty or null")
    "bad_conversations": "`conversations` must be a list",
    "missing_id": "`id` is blank",
    "bad_id": "`id` must be a string or an integer, found 1.5 (float)",
    "bad_json": "unparsable JSON line",
    "duplicate_id": "duplicate id 'a'",
}


@pytest.mark.parametrize("code", list(INVALID))
def test_invalid_record_error_policy(tmp_path: Path, code: str) -> None:
    src = write_source(tmp_path / "src", [GOOD[0], GOOD[1], INVALID[code], GOOD[2]])
    with pytest.raises(UserError) as err:
        import_pool(ImportRequest(source=src, out=tmp_path / "pool"))
    msg = str(err.value)
    assert str(src) in msg and REASONS[code] in msg
    assert "line 3" in msg and "--on-invalid skip" in msg
    if code not in ("bad_json", "missing_id", "bad_id"):  # their message cannot quote an id
        assert "record `" in msg and ("`bad`" in msg or "`a`" in msg)
    assert not (tmp_path / "pool").exists()  # nothing half-written


@pytest.mark.parametrize("code", list(INVALID))
def test_invalid_record_skip_policy(tmp_path: Path, code: str) -> None:
    src = write_source(tmp_path / "src", [GOOD[0], GOOD[1], INVALID[code], GOOD[2]])
    m = import_pool(ImportRequest(source=src, out=tmp_path / "pool", on_invalid="skip"))
    assert m.rows == 3 and m.skipped == 1
    assert m.skipped_report == str((tmp_path / "pool/skipped.jsonl").resolve())
    lines = (tmp_path / "pool/skipped.jsonl").read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["code"] == code and entry["line"] == 3 and REASONS[code] in entry["reason"]
    assert open_pool(tmp_path / "pool").table().column("id").to_pylist() == ["a", "b", "c"]
    assert "skipped      1 invalid records" in show_pool(open_pool(tmp_path / "pool"))


def test_more_roles_rules(tmp_path: Path) -> None:
    trailing = rec("t", 0)  # kept without its unanswered question (tests/pool/test_pool_published)
    trailing["conversations"].append({"from": "human", "value": "and?"})
    two_gpt = rec("g", 0)
    two_gpt["conversations"][0]["from"] = "gpt"
    blank = rec("w", 0)
    blank["conversations"][0]["value"] = "   "
    src = write_source(tmp_path / "src", [trailing, two_gpt, blank, GOOD[2]])
    m = import_pool(ImportRequest(source=src, out=tmp_path / "pool", on_invalid="skip"))
    assert m.rows == 2 and m.skipped == 2 and m.turns_trimmed == 1
    codes = [
        json.loads(x)["code"] for x in (tmp_path / "pool/skipped.jsonl").read_text().splitlines()
    ]
    assert codes == ["roles", "empty_message"]


def test_check_images_off_keeps_missing_files(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src", [INVALID["missing_image"]])
    m = import_pool(ImportRequest(source=src, out=tmp_path / "pool", check_images=False))
    assert m.rows == 1


def test_json_list_reports_record_number(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src", [GOOD[0], INVALID["roles"]], name="data.json")
    with pytest.raises(UserError, match=r"record `bad` \(record 2\)"):
        import_pool(ImportRequest(source=src, out=tmp_path / "pool"))


def test_hf_messages_layout(tmp_path: Path) -> None:
    hf = {
        "id": "hf1",
        "images": ["imgs/img0.png", "imgs/img1.png"],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "hi"}],
            },
            {"role": "assistant", "content": "hello"},
        ],
        "domain": "x",
    }
    src = write_source(tmp_path / "src", [hf])
    import_pool(ImportRequest(source=src, out=tmp_path / "pool"))
    t = open_pool(tmp_path / "pool").table()
    assert t.column("task_type").to_pylist() == ["multi_image"]
    assert t.column("conversations").to_pylist()[0][0] == {
        "from": "human",
        "value": "<image><image>hi",
    }


def test_batches_and_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "PROGRESS_EVERY", 4)
    records = [rec(f"r{i}", i % 3, domain=f"d{i % 2}") for i in range(25)]
    src = write_source(tmp_path / "src", records)
    seen: list[int] = []
    req = ImportRequest(source=src, out=tmp_path / "pool", batch_rows=4)
    m = import_pool(req, lambda state: seen.append(state.records))
    assert seen[-1] == 25 and seen[:3] == [4, 8, 12]
    assert m.rows == 25 and m.labels["domain"] == {"d0": 13, "d1": 12}
    assert open_pool(tmp_path / "pool").table().num_rows == 25


def test_fingerprint_stable_and_sensitive(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src", GOOD)
    fp = import_pool(ImportRequest(source=src, out=tmp_path / "p1")).fingerprint
    # Same content, other run and other folder (other absolute image paths): same fingerprint.
    assert import_pool(ImportRequest(source=src, out=tmp_path / "p2")).fingerprint == fp
    shutil.copytree(tmp_path / "src", tmp_path / "copy")
    fp_copy = import_pool(ImportRequest(source=tmp_path / "copy/data.jsonl", out=tmp_path / "p3"))
    assert fp_copy.fingerprint == fp
    # Labels are not content; message text, image paths and row order are.
    relabeled = [dict(r, domain="other") for r in GOOD]
    changed_text = json.loads(json.dumps(GOOD))
    changed_text[4]["conversations"][1]["value"] += "!"
    changed_image = json.loads(json.dumps(GOOD))
    changed_image[0]["image"] = "imgs/img3.png"
    variants = {"relabeled": relabeled, "text": changed_text, "image": changed_image}
    variants["order"] = GOOD[::-1]
    fps = {}
    for name, records in variants.items():
        s = write_source(tmp_path / name, records)
        fps[name] = import_pool(ImportRequest(source=s, out=tmp_path / f"pool-{name}")).fingerprint
    assert fps["relabeled"] == fp
    assert len({fp, fps["text"], fps["image"], fps["order"]}) == 4


def test_reimport_replaces_pool_and_refuses_foreign_folder(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src", [GOOD[0], INVALID["roles"]])
    import_pool(ImportRequest(source=src, out=tmp_path / "pool", on_invalid="skip"))
    assert (tmp_path / "pool/skipped.jsonl").exists()
    src2 = write_source(tmp_path / "src2", GOOD)
    assert import_pool(ImportRequest(source=src2, out=tmp_path / "pool")).rows == 5
    assert not (tmp_path / "pool/skipped.jsonl").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other/notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds other files"):
        import_pool(ImportRequest(source=src2, out=tmp_path / "other"))


def test_all_invalid_and_missing_source(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src", [INVALID["roles"]])
    with pytest.raises(UserError, match="gave no rows"):
        import_pool(ImportRequest(source=src, out=tmp_path / "pool", on_invalid="skip"))
    # what a failed import into a new folder leaves: the reasons, nothing else
    assert [p.name for p in (tmp_path / "pool").iterdir()] == ["skipped.jsonl"]
    with pytest.raises(UserError, match="no such source file"):
        import_pool(ImportRequest(source=tmp_path / "nope.jsonl", out=tmp_path / "pool"))


def test_open_pool_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"not a pool folder.*ablate data import"):
        open_pool(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=str(tmp_path / "empty")):
        open_pool(tmp_path / "empty")
    src = write_source(tmp_path / "src", GOOD)
    import_pool(ImportRequest(source=src, out=tmp_path / "pool"))
    pool = open_pool(tmp_path / "pool")
    with pytest.raises(UserError, match="available: task_type, domain, skill"):
        pool.labels("subtopic")


def test_show_pool_counts(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src", GOOD)
    import_pool(ImportRequest(source=src, out=tmp_path / "pool"))
    text = show_pool(open_pool(tmp_path / "pool"))
    assert "rows         5" in text
    assert "multi_image           2   40.0%" in text
    assert "text_only             1   20.0%" in text
    assert "science          2   40.0%" in text
