"""Pool import at real scale: source formats, bad bytes, image-path rules, turn ranges, label
rules, combined pools, and the record accounting of the manifest."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_pool import GOOD, rec, write_source

from ablate.errors import UserError
from ablate.pool import ImportRequest, Source, import_pool, open_pool, readers
from ablate.pool.labels import parse_label_args, parse_rule, read_label_file


def skipped(pool: Path) -> list[dict[str, Any]]:
    path = pool / "skipped.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def ids(pool: Path) -> list[str]:
    return open_pool(pool).table().column("id").to_pylist()


# ---------------------------------------------------------------------------- formats


def test_json_array_streams_in_small_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 7-byte read buffer forces every record (and numbers/strings) across chunk boundaries.
    monkeypatch.setattr(readers, "CHUNK", 7)
    records = [dict(r, score=12345.678) for r in GOOD]
    src = write_source(tmp_path / "src", records, name="data.json")
    src.write_text(json.dumps(records, indent=2))  # newlines and indentation between tokens
    m = import_pool(ImportRequest(source=src, out=tmp_path / "pool"))
    assert m.rows == 5 and ids(tmp_path / "pool") == ["a", "b", "c", "d", "e"]
    assert m.sources[0]["format"] == "json"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"id": "a"}, {"id": "b"', "record 2 of the JSON array is cut short"),
        ('[{"id": "a"},', "record 2 of the JSON array is cut short"),
        ('[{"id": "a"}', "ends after 1 records without its closing `]`"),
        ('[{"id": "a"} {"id": "b"}]', "expected `,` or `]` after record 1"),
        ('[{"id": "a"}] [', "text after the closing `]`"),
        ('[{"id": x}]', "record 1 of the JSON array is not valid JSON"),
    ],
)
def test_broken_json_array_is_a_file_error(tmp_path: Path, text: str, message: str) -> None:
    src = tmp_path / "data.json"
    src.write_text(text)
    with pytest.raises(UserError, match=message) as err:
        import_pool(ImportRequest(source=src, out=tmp_path / "pool", on_invalid="skip"))
    assert str(src) in str(err.value)
    assert not (tmp_path / "pool").exists()


def test_bom_crlf_bad_encoding_truncated_jsonl(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src", GOOD)
    lines = [json.dumps(r).encode() for r in GOOD]
    bad_bytes = json.dumps(rec("latin", 0)).replace("question", "caf\u00e9").encode("latin-1")
    body = b"\xef\xbb\xbf" + b"\r\n".join([*lines[:2], bad_bytes, *lines[2:]]) + b"\r\n"
    body += json.dumps(rec("cut", 0)).encode()[:30]  # a truncated last line, no newline
    src.write_bytes(body)
    m = import_pool(ImportRequest(source=src, out=tmp_path / "pool", on_invalid="skip"))
    assert m.rows == 5 and m.skipped == 2 and m.records_read == 7
    report = skipped(tmp_path / "pool")
    assert [(e["line"], e["code"]) for e in report] == [(3, "bad_encoding"), (7, "bad_json")]
    assert "not UTF-8 text (byte 0xe9" in report[0]["reason"]
    assert "the file looks truncated" in report[1]["reason"]
    # Same content with LF and no BOM: the same fingerprint (CRLF and BOM are not content).
    clean = tmp_path / "clean.jsonl"
    clean.write_bytes(b"\n".join(lines) + b"\n")
    m2 = import_pool(ImportRequest(source=clean, out=tmp_path / "pool2", image_root=src.parent))
    assert m2.fingerprint == m.fingerprint


def test_utf16_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    src = tmp_path / "data.jsonl"
    src.write_bytes(json.dumps(rec("a", 0)).encode("utf-16"))
    with pytest.raises(UserError, match="UTF-16 text; convert it to UTF-8"):
        import_pool(ImportRequest(source=src, out=tmp_path / "pool"))


def _hf_records() -> list[dict[str, Any]]:
    out = []
    for i, n in enumerate([0, 1, 2]):
        content: list[dict[str, Any]] = [{"type": "image"}] * n + [{"type": "text", "text": "q"}]
        out.append(
            {
                "id": f"hf{i}",
                "images": [f"imgs/img{k}.png" for k in range(n)],
                "messages": [
                    {"role": "user", "content": content},
                    {"role": "assistant", "content": [{"type": "text", "text": f"a{i}"}]},
                ],
                "domain": "x",
            }
        )
    return out


def test_parquet_and_saved_dataset(tmp_path: Path) -> None:
    import datasets

    write_source(tmp_path, [])
    records = _hf_records()
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "d.parquet")
    m = import_pool(ImportRequest(source=tmp_path / "d.parquet", out=tmp_path / "p1"))
    assert m.labels["task_type"] == {"multi_image": 1, "single_image": 1, "text_only": 1}
    assert m.sources[0]["format"] == "parquet"
    # save_to_disk with a real datasets.Image column (structs of bytes + path, not decoded).
    feats = datasets.Features(
        {
            "id": datasets.Value("string"),
            "images": datasets.List(datasets.Image(decode=False)),
            "messages": datasets.List(
                {"role": datasets.Value("string"), "content": datasets.Value("string")}
            ),
        }
    )
    rows = [
        {
            "id": r["id"],
            "images": [{"path": str(tmp_path / p), "bytes": None} for p in r["images"]],
            "messages": [
                {"role": "user", "content": "<image>" * len(r["images"]) + "q"},
                {"role": "assistant", "content": "a"},
            ],
        }
        for r in records
    ]
    datasets.Dataset.from_list(rows, features=feats).save_to_disk(str(tmp_path / "saved"))
    # save_to_disk keeps only the file name of an image path: images resolve against --image-root.
    m2 = import_pool(
        ImportRequest(source=tmp_path / "saved", out=tmp_path / "p2", image_root=tmp_path / "imgs")
    )
    assert m2.sources[0]["format"] == "disk" and m2.rows == 3
    images = open_pool(tmp_path / "p2").table().column("images").to_pylist()
    assert images[2] == [str(tmp_path / f"imgs/img{k}.png") for k in range(2)]
    # Embedded bytes that are not an image (a truncated PNG signature): a reported skip.
    rows[1]["images"] = [{"path": None, "bytes": b"\x89PNG"}]
    datasets.Dataset.from_list(rows, features=feats).save_to_disk(str(tmp_path / "saved2"))
    m3 = import_pool(
        ImportRequest(
            source=tmp_path / "saved2",
            out=tmp_path / "p3",
            image_root=tmp_path / "imgs",
            on_invalid="skip",
        )
    )
    assert m3.rows == 2 and skipped(tmp_path / "p3")[0] == {
        "id": "hf1",
        "row": 2,
        "code": "bad_image_bytes",
        "reason": "embedded image bytes are not a PNG, JPEG, GIF, WebP, BMP or TIFF image "
        "(they start with b'\\x89PNG')",
    }


def test_load_dataset_builder_and_folder(tmp_path: Path) -> None:
    write_source(tmp_path, [])
    data = tmp_path / "shards"
    data.mkdir()
    records = _hf_records()
    for i in range(2):  # two shards, each with every image count (one inferred schema)
        rows = [dict(r, id=f"{r['id']}-{i}") for r in records]
        (data / f"part{i}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # A folder `datasets.load_dataset` understands by itself (format `dataset`, picked by auto).
    m = import_pool(ImportRequest(source=data, out=tmp_path / "p1", image_root=tmp_path))
    assert m.rows == 6 and m.sources[0]["format"] == "dataset"
    # A named builder over a file.
    rows = [dict(r, id=f"{r['id']}-{i}") for i in range(2) for r in records]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.bin")
    m2 = import_pool(
        ImportRequest(source=tmp_path / "d.bin", out=tmp_path / "p2", format="parquet")
    )
    assert m2.fingerprint == m.fingerprint
    with pytest.raises(UserError, match=r"d.bin: reading failed after row 0 \(UnicodeDecodeError"):
        import_pool(ImportRequest(source=tmp_path / "d.bin", out=tmp_path / "p3", format="csv"))


# ---------------------------------------------------------------------------- record checks


def test_outside_root_decode_and_turn_range(tmp_path: Path) -> None:
    src_dir = tmp_path / "src"
    write_source(src_dir, [])
    (tmp_path / "outside.png").write_bytes((src_dir / "imgs/img0.png").read_bytes())
    (src_dir / "imgs/corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    records = [
        rec("ok", 1),
        dict(rec("up", 1), image="../outside.png"),
        dict(rec("abs", 1), image=str(tmp_path / "outside.png")),
        dict(rec("inner", 1), image="imgs/../imgs/img1.png"),  # stays inside: fine
        dict(rec("corrupt", 1), image="imgs/corrupt.png"),
        rec("long", 0, turns=8),
        rec("short", 0, turns=1),
    ]
    src = write_source(src_dir, records)
    req = ImportRequest(source=src, out=tmp_path / "p", on_invalid="skip", turns=(2, 4))
    m = import_pool(req)
    assert ids(tmp_path / "p") == ["ok", "inner", "corrupt"]
    codes = {e["id"]: e["code"] for e in skipped(tmp_path / "p")}
    assert codes == {
        "up": "outside_root",
        "abs": "outside_root",
        "long": "turn_count",
        "short": "turn_count",
    }
    reasons = {e["id"]: e["reason"] for e in skipped(tmp_path / "p")}
    assert "'../outside.png' leaves the image root" in reasons["up"]
    assert "--allow-outside-root" in reasons["up"] and "is absolute and outside" in reasons["abs"]
    assert reasons["long"] == "8 assistant turn(s), outside the declared range 2:4 (--turns)"
    assert m.records_read == m.rows + m.skipped == 7
    assert m.checks == {
        "images_exist": True,
        "images_decoded": False,
        "allow_outside_root": False,
        "turns": "2:4",
        "duplicate_ids": "error",
    }
    loose = ImportRequest(
        source=src,
        out=tmp_path / "p2",
        on_invalid="skip",
        allow_outside_root=True,
        decode_images=True,
    )
    import_pool(loose)
    assert ids(tmp_path / "p2") == ["ok", "up", "abs", "inner", "long", "short"]
    bad = skipped(tmp_path / "p2")
    assert [e["code"] for e in bad] == ["bad_image_file"]
    assert "cannot decode image" in bad[0]["reason"] and "corrupt.png" in bad[0]["reason"]
    with pytest.raises(UserError, match="leaves the image root"):
        import_pool(ImportRequest(source=src, out=tmp_path / "p3"))


# ---------------------------------------------------------------------------- labels


def test_label_rules_parse_and_errors() -> None:
    rule = parse_rule("n", "images:0=none,1,2-3=few,4+=many")
    assert [rule.apply({}, n, 1) for n in (0, 1, 2, 3, 9)] == ["none", "1", "few", "few", "many"]
    assert parse_rule("t", "turns:4=four,8=eight").apply({}, 0, 8) == "eight"
    assert parse_rule("d", "field:domain").apply({"domain": "art"}, 0, 1) == "art"
    assert parse_rule("d", "field:domain").apply({}, 0, 1) == "unknown"
    assert parse_rule("s", "value:mmcr").apply({}, 0, 1) == "mmcr"
    for text, message in [
        ("images:0-2,2+", "overlap"),
        ("images:3-1", "runs backwards"),
        ("images:x", "is not N, N-M or N+"),
        ("colour:red", "is not a rule"),
        ("python:nosuchmodule_xyz:f", "cannot import nosuchmodule_xyz"),
        ("python:json:nope", "json has no function nope"),
    ]:
        with pytest.raises(UserError, match=message):
            parse_rule("x", text)
    with pytest.raises(UserError, match="expected NAME=RULE"):
        parse_label_args(["images"])


def test_declared_labels_and_user_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_rules.py").write_text(
        textwrap.dedent(
            """
            def kind(record):
                if record["id"] == "c":
                    raise ValueError("no kind for c")
                return "ocr" if "OCR" in record["conversations"][0]["value"] else "chat"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    records = [dict(r) for r in GOOD]
    records[1] = rec("b", 2, turns=4, domain="art")
    records[1]["conversations"][0]["value"] += " OCR"
    src = write_source(tmp_path / "src", records)
    labels_yaml = tmp_path / "labels.yaml"
    labels_yaml.write_text(
        "# image-count buckets and a user function\n"
        "n_images_bucket: images:0,1,2-3=2-3,4+\n"
        "kind: python:my_rules:kind\n"
    )
    rules = read_label_file(labels_yaml) + parse_label_args(
        ["task_type=images:0=text,1+=vision", "length=turns:1-2=short,3+=long"]
    )
    m = import_pool(
        ImportRequest(source=src, out=tmp_path / "pool", labels=rules, on_invalid="skip")
    )
    assert m.columns[5:] == ("task_type", "domain", "skill", "n_images_bucket", "kind", "length")
    assert m.labels["task_type"] == {"vision": 4}  # `c`, the text-only one, was skipped
    assert m.labels["kind"] == {"chat": 3, "ocr": 1}
    assert m.labels["n_images_bucket"] == {"1": 2, "2-3": 2}
    assert m.labels["length"] == {"long": 2, "short": 2}
    assert m.rules["kind"] == "python:my_rules:kind"
    assert skipped(tmp_path / "pool") == [
        {
            "id": "c",
            "line": 3,
            "code": "unlabelled",
            "reason": "label `kind`: my_rules:kind raised ValueError: no kind for c",
        }
    ]
    # Joint counts for nested mixtures: kind x length.
    assert m.joint["kind"]["length"] == {"chat": {"long": 1, "short": 2}, "ocr": {"long": 1}}
    with pytest.raises(UserError, match=r"no bucket of label `n` .* covers 3 image"):
        import_pool(ImportRequest(source=src, out=tmp_path / "p2", labels=(("n", "images:0-2"),)))
    with pytest.raises(UserError, match=r"label name\(s\) images clash with pool columns"):
        import_pool(ImportRequest(source=src, out=tmp_path / "p3", labels=(("images", "value:x"),)))


# ---------------------------------------------------------------------------- combined pools


def test_combined_pool_has_source_label_and_prefixed_ids(tmp_path: Path) -> None:
    a = write_source(tmp_path / "a", GOOD)
    b = write_source(tmp_path / "b", [*GOOD[:2], dict(rec("x", 0), source="orig")])
    req = ImportRequest(
        source=[Source(a, name="mmcr"), Source(b, name="base")], out=tmp_path / "pool"
    )
    m = import_pool(req)
    assert ids(tmp_path / "pool") == [
        "mmcr/a", "mmcr/b", "mmcr/c", "mmcr/d", "mmcr/e", "base/a", "base/b", "base/x",
    ]  # fmt: skip
    assert m.labels["source"] == {"base": 3, "mmcr": 5}
    assert m.joint["source"]["task_type"] == {
        "base": {"multi_image": 1, "single_image": 1, "text_only": 1},
        "mmcr": {"multi_image": 2, "single_image": 2, "text_only": 1},
    }
    assert [(s["name"], s["read"], s["rows"]) for s in m.sources] == [
        ("mmcr", 5, 5),
        ("base", 3, 3),
    ]
    assert m.records_read == 8
    with pytest.raises(UserError, match="repeat; name each source"):
        import_pool(
            ImportRequest(
                source=[Source(a), Source(tmp_path / "b/data.jsonl")], out=tmp_path / "p2"
            )
        )


# ---------------------------------------------------------------------------- determinism


def test_same_pool_and_selection_in_another_process(tmp_path: Path) -> None:
    """Import + materialise in a fresh interpreter (other hash seed): same fingerprint and ids."""
    records = [rec(f"r{i:03d}", i % 3, turns=1 + i % 2, domain="ab"[i % 2]) for i in range(120)]
    src = write_source(tmp_path / "src", records)
    script = textwrap.dedent(
        f"""
        import json, sys
        from ablate.mixture import Mixture, materialize
        from ablate.pool import ImportRequest, import_pool, open_pool
        m = import_pool(ImportRequest(source={str(src)!r}, out=sys.argv[1]))
        sel = materialize(Mixture(volume=50, proportions="natural", seed=4), open_pool(sys.argv[1]))
        print(json.dumps([m.fingerprint, sel.content_hash, list(sel.ids)]))
        """
    )
    outs = []
    for i, seed in enumerate(["1", "999"]):
        env = {"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}
        res = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / f"pool{i}")],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        outs.append(json.loads(res.stdout))
    from ablate.mixture import Mixture, materialize

    sel = materialize(
        Mixture(volume=50, proportions="natural", seed=4), open_pool(tmp_path / "pool0")
    )
    assert (
        outs[0]
        == outs[1]
        == [open_pool(tmp_path / "pool0").manifest.fingerprint, sel.content_hash, list(sel.ids)]
    )
