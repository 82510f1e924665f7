"""The import's named steps on their own: request checks, per-record checks, the writer, the
JSON array reader's chunk boundaries (the end-to-end import is in test_pool*.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablate.config import RAY_IGNORE_FILE
from ablate.errors import UserError
from ablate.pool import ImportRequest, Source, import_pool, readers
from ablate.pool.checks import RecordChecker
from ablate.pool.images import ImageStore
from ablate.pool.items import InvalidRecord
from ablate.pool.labels import SOURCE_LABEL, label_columns
from ablate.pool.request import check_options, is_combined, resolve_sources
from ablate.pool.store import POOL_FILE, SKIPPED_FILE


def _rec(rid: str, **extra: object) -> dict[str, object]:
    conv = [{"from": "human", "value": f"q {rid}"}, {"from": "gpt", "value": f"a {rid}"}]
    return {"id": rid, "conversations": conv, **extra}


def _jsonl(path: Path, records: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_request_checks_fail_before_reading(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "a.jsonl", [_rec("x")])
    with pytest.raises(UserError, match="give at least one source"):
        resolve_sources(ImportRequest(source=[], out=tmp_path / "p"))
    with pytest.raises(UserError, match="source names a, a repeat"):
        resolve_sources(ImportRequest(source=[Source(src), Source(src)], out=tmp_path / "p"))
    one = resolve_sources(ImportRequest(source=src, out=tmp_path / "p"))
    assert [(s.path, s.format) for s in one] == [(src.resolve(), "jsonl")]
    assert not is_combined(one)
    assert is_combined(resolve_sources(ImportRequest(source=[Source(src, "A")], out=tmp_path)))
    with pytest.raises(UserError, match=r"--turns 3:2: expected MIN:MAX"):
        check_options(ImportRequest(source=src, out=tmp_path / "p", turns=(3, 2)))


def test_label_columns_order_and_source_column() -> None:
    cols = label_columns((("depth", "turns:1=short,2+=long"),), ("domain", "source"), True)
    assert cols.names == ["task_type", "domain", "depth", SOURCE_LABEL]
    assert cols.implicit == {"domain"} and cols.per_source
    declared = label_columns((("source", "value:web"),), ("domain", "source"), True)
    assert declared.names == ["task_type", "domain", "source"] and not declared.per_source
    with pytest.raises(UserError, match="clash with pool columns"):
        label_columns((), ("n_turns",), False)


def test_checker_reports_the_first_problem_and_keeps_ids_unique(tmp_path: Path) -> None:
    req = ImportRequest(source=tmp_path, out=tmp_path / "p")
    cols = label_columns((), (), False)
    seen: set[str] = set()
    checker = RecordChecker(req, tmp_path, cols, "a", "a/", seen, ImageStore(tmp_path / "p"))
    row = checker.check(_rec("x"))
    assert (row.id, row.n_turns, row.labels) == ("a/x", 1, {"task_type": "text_only"})
    assert seen == {"a/x"}
    with pytest.raises(InvalidRecord) as err:
        checker.check(_rec("x"))
    assert err.value.code == "duplicate_id"
    # Both the roles and the image are wrong: the conversation is checked first.
    bad = _rec("y", image="missing.png")
    bad["conversations"] = [{"from": "gpt", "value": "<image> hi"}]
    with pytest.raises(InvalidRecord) as err:
        checker.check(bad)
    assert err.value.code == "roles"
    with pytest.raises(InvalidRecord) as err:
        checker.check(InvalidRecord("bad_json", "from the reader"))
    assert err.value.code == "bad_json"


def test_failed_import_leaves_the_previous_pool_and_no_temporary_files(tmp_path: Path) -> None:
    out = tmp_path / "pool"
    import_pool(ImportRequest(source=_jsonl(tmp_path / "good.jsonl", [_rec("x")]), out=out))
    before = (out / POOL_FILE).read_bytes()
    broken = _jsonl(tmp_path / "bad.jsonl", [_rec("y"), {"id": "z"}])
    with pytest.raises(UserError, match=r"record `z` \(line 2\)"):
        import_pool(ImportRequest(source=broken, out=out, batch_rows=1))
    assert (out / POOL_FILE).read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == [RAY_IGNORE_FILE, "manifest.json", POOL_FILE]
    # A folder the failed import made is removed again.
    with pytest.raises(UserError):
        import_pool(ImportRequest(source=broken, out=tmp_path / "new"))
    assert not (tmp_path / "new").exists()
    # Nothing valid at all: the report is kept to say why.
    empty = _jsonl(tmp_path / "empty.jsonl", [{"id": "z"}])
    with pytest.raises(UserError, match=r"gave no rows: all 1 of its records were skipped"):
        import_pool(ImportRequest(source=empty, out=tmp_path / "new", on_invalid="skip"))
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == [SKIPPED_FILE]


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_json_array_values_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(readers, "CHUNK", chunk)
    path = tmp_path / "a.json"
    path.write_text('[ 12345 , {"x": -6.5e3},"a,]" ,\n{"k": [1, 22]} ]  \n')
    got = [item[:3] for item in readers.read_records(path, "json")]
    assert got == [
        ("record", 1, 12345),
        ("record", 2, {"x": -6500.0}),
        ("record", 3, "a,]"),
        ("record", 4, {"k": [1, 22]}),
    ]
    path.write_text("[1, 2] [3]")
    with pytest.raises(UserError, match=r"text after the closing `\]` .*character 8\)"):
        list(readers.read_records(path, "json"))
