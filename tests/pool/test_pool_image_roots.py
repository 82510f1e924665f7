"""Combined pools whose sources keep their images apart: `--image-root NAME=DIR` gives a source
its own root, and a source that gives no row stops the import naming it and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from ablate.cli import main
from ablate.errors import UserError
from ablate.pool import ImportRequest, Source, import_pool, parse_image_roots, parse_source


def _source(folder: Path, name: str, n: int, images: Path | None = None) -> Path:
    """`folder/name.jsonl` with `n` one-image records whose image `{name}{i}.png` lies in `images`
    (default: beside the file)."""
    images = images or folder
    images.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        Image.new("RGB", (4, 4), (i, 0, 0)).save(images / f"{name}{i}.png")
        conv = [{"from": "human", "value": "<image>\nColour?"}, {"from": "gpt", "value": "red"}]
        lines.append(
            json.dumps({"id": f"{name}{i}", "image": f"{name}{i}.png", "conversations": conv})
        )
    path = folder / f"{name}.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.fixture
def apart(tmp_path: Path) -> dict[str, Path]:
    """`mmcr` with images in mmcr_images/, `base` with images in base_imgs/ (as LLaVA's mix)."""
    return {
        "mmcr": _source(tmp_path / "data", "mmcr", 3, tmp_path / "mmcr_images"),
        "base": _source(tmp_path / "data", "base", 2, tmp_path / "base_imgs"),
        "mmcr_images": tmp_path / "mmcr_images",
        "base_imgs": tmp_path / "base_imgs",
    }


def test_each_source_resolves_images_against_its_own_root(
    tmp_path: Path, apart: dict[str, Path]
) -> None:
    sources = [
        Source(apart["mmcr"], "mmcr"),
        Source(apart["base"], "base", image_root=apart["base_imgs"]),
    ]
    m = import_pool(
        ImportRequest(source=sources, out=tmp_path / "pool", image_root=apart["mmcr_images"])
    )
    assert (m.rows, m.skipped) == (5, 0)
    assert [(s["name"], s["image_root"], s["rows"]) for s in m.sources] == [
        ("mmcr", str(apart["mmcr_images"]), 3),
        ("base", str(apart["base_imgs"]), 2),
    ]


def test_a_source_with_no_row_stops_the_import_naming_it(
    tmp_path: Path, apart: dict[str, Path]
) -> None:
    sources = [Source(apart["mmcr"], "mmcr"), Source(apart["base"], "base")]
    req = ImportRequest(
        source=sources, out=tmp_path / "pool", image_root=apart["mmcr_images"], on_invalid="skip"
    )
    with pytest.raises(UserError) as err:
        import_pool(req)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(
        f"source `base` ({apart['base'].resolve()}) gave no rows: all 2 of its records were "
        "skipped, 2 as `missing_image`, e.g. image file not found: "
    )
    assert "pass --image-root base=DIR (the folder their paths start from)" in msg
    assert msg.endswith(f"fix it, or leave `base={apart['base']}` out")
    # nothing half-made is left but the reasons
    assert sorted(p.name for p in (tmp_path / "pool").iterdir()) == ["skipped.jsonl"]
    report = [json.loads(x) for x in (tmp_path / "pool/skipped.jsonl").read_text().splitlines()]
    assert [(r["id"], r["code"]) for r in report] == [
        ("base0", "missing_image"),
        ("base1", "missing_image"),
    ]


def test_a_failed_import_over_a_pool_leaves_that_pool_as_it_was(
    tmp_path: Path, apart: dict[str, Path]
) -> None:
    """Its reasons go to `skipped.failed.jsonl` (the pool's `skipped.jsonl` is its manifest's
    record: before, a failed import put its own reasons there); the next import removes them."""
    out = tmp_path / "pool"
    import_pool(ImportRequest(source=apart["mmcr"], out=out, image_root=apart["mmcr_images"]))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    sources = [Source(apart["mmcr"], "mmcr"), Source(apart["base"], "base")]
    req = ImportRequest(source=sources, out=out, image_root=apart["mmcr_images"], on_invalid="skip")
    with pytest.raises(UserError, match=r"skipped\.failed\.jsonl"):
        import_pool(req)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if k != "skipped.failed.jsonl"} == before
    assert "skipped.failed.jsonl" in after and "skipped.jsonl" not in after
    import_pool(ImportRequest(source=apart["mmcr"], out=out, image_root=apart["mmcr_images"]))
    assert not (out / "skipped.failed.jsonl").exists()


def test_an_empty_source_stops_the_import(tmp_path: Path, apart: dict[str, Path]) -> None:
    empty = tmp_path / "data" / "empty.jsonl"
    empty.write_text("\n")
    sources = [Source(apart["mmcr"]), Source(empty)]
    req = ImportRequest(source=sources, out=tmp_path / "pool", image_root=apart["mmcr_images"])
    with pytest.raises(UserError, match=r"^source `empty` \(.*\) holds no records; fix it, or"):
        import_pool(req)
    assert not (tmp_path / "pool").exists()


def test_image_root_values_are_read_by_source_name(tmp_path: Path) -> None:
    sources = [parse_source("mmcr=a/mmcr.json"), parse_source("b/base.jsonl")]
    common, named = parse_image_roots(["imgs", "base=other/imgs"], sources)
    assert common == Path("imgs")
    assert [(s.label, s.image_root) for s in named] == [
        ("mmcr", None),
        ("base", Path("other/imgs")),
    ]
    assert parse_image_roots([], sources) == (None, sources)
    # a folder whose name holds `=` (it exists) or a path with `/` before `=` is one root for all
    (tmp_path / "mmcr=x").mkdir()
    assert parse_image_roots([str(tmp_path / "mmcr=x")], sources)[0] == tmp_path / "mmcr=x"
    assert parse_image_roots(["x/mmcr=y"], sources)[0] == Path("x/mmcr=y")
    with pytest.raises(UserError, match=r"no source is named `nope` \(the sources: mmcr, base\)"):
        parse_image_roots(["nope=imgs"], sources)
    with pytest.raises(UserError, match="one folder serves every source"):
        parse_image_roots(["imgs", "more"], sources)
    with pytest.raises(UserError, match="given twice for source `base`"):
        parse_image_roots(["base=a", "base=b"], sources)
    with pytest.raises(UserError, match=r"--image-root base=: no folder after `base=`"):
        parse_image_roots(["base="], sources)  # (it meant the current folder, silently)


def test_cli_takes_a_root_per_source(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, apart: dict[str, Path]
) -> None:
    argv = ["data", "import", f"mmcr={apart['mmcr']}", f"base={apart['base']}"]
    argv += ["--image-root", str(apart["mmcr_images"]), "--on-invalid", "skip"]
    assert main([*argv, "--out", str(tmp_path / "p1")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ablate: error: source `base` (") and err.count("\n") == 1
    assert "--image-root base=DIR" in err
    argv += ["--image-root", f"base={apart['base_imgs']}", "--out", str(tmp_path / "p2")]
    assert main(argv) == 0
    assert "imported 5 dialogues" in capsys.readouterr().out
    assert main([*argv[:-4], "--image-root", "base=nowhere", "--out", str(tmp_path / "p3")]) == 2
    assert capsys.readouterr().err == "ablate: error: --image-root base=nowhere: no such folder\n"
    assert main(["data", "import", str(apart["base"]), "--out", str(tmp_path / "p4")]) == 2
    assert "pass --image-root DIR (the folder" in capsys.readouterr().err  # one source: no NAME


def test_cli_help_names_the_per_source_form(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["data", "import", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--image-root [NAME=]DIR" in out and "NAME=DIR for source NAME's own" in out
