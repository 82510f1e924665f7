"""Review H, F3: a SIGKILLed `ablate data import` left `pool.arrow.tmp` and `skipped.jsonl.tmp`
in its folder, and the rerun of the same command refused the folder ("holds other files").
The rerun now removes exactly those leftovers (in a new folder and over an existing pool),
and only when no import holds the folder."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from ablate.cli import main
from ablate.errors import UserError
from ablate.pool import ImportRequest, import_pool, open_pool
from ablate.pool.writer import TMP_FILES
from tests.pool.test_pool import GOOD, rec, write_source
from tests.processes_for_tests import kill_when, start_cli

ROOT = Path(__file__).resolve().parents[2]


def _big_source(path: Path, n: int = 40_000) -> Path:
    """Text-only records enough for an import of a few seconds (the kill comes well before)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(rec(f"r{i}", 0)) + "\n" for i in range(n)))
    return path


def _killed_import(src: Path, out: Path) -> list[str]:
    """Run `ablate data import SRC --out OUT` in a subprocess and SIGKILL it as soon as its
    temporary files exist (it has then rows left to read for seconds); its command line."""
    argv = ["data", "import", str(src), "--out", str(out)]
    proc = start_cli(argv)
    kill_when(proc, lambda: all((out / name).exists() for name in TMP_FILES[:2]), "temp files")
    return argv


def test_rerun_after_sigkill_into_a_new_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "pool"
    argv = _killed_import(_big_source(tmp_path / "big.jsonl"), out)
    assert sorted(p.name for p in out.iterdir()) == sorted(TMP_FILES[:2])  # what F3 found
    assert main(argv) == 0, capsys.readouterr().err  # before: "holds other files"
    assert open_pool(out).manifest.rows == 40_000
    assert not any((out / name).exists() for name in TMP_FILES)


def test_rerun_after_sigkill_over_an_existing_pool(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "pool"
    import_pool(ImportRequest(source=write_source(tmp_path / "one", GOOD[:1]), out=out))
    argv = _killed_import(_big_source(tmp_path / "big.jsonl"), out)
    assert (out / TMP_FILES[0]).exists() and open_pool(out).manifest.rows == 1  # old pool intact
    assert main(argv) == 0, capsys.readouterr().err
    assert open_pool(out).manifest.rows == 40_000
    assert not any((out / name).exists() for name in TMP_FILES)


def test_only_the_importers_own_temp_names_are_removed(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src", GOOD)
    out = tmp_path / "pool"
    out.mkdir()
    for name in TMP_FILES:  # as a killed import leaves them (staged: killed while finishing)
        (out / name).write_text("half")
    (out / "pool.arrow.tmp2").write_text("not ours")
    with pytest.raises(UserError, match=r"holds other files \(pool\.arrow\.tmp2\)"):
        import_pool(ImportRequest(source=src, out=out))
    assert all((out / name).exists() for name in TMP_FILES)  # a refused folder is left alone
    (out / "pool.arrow.tmp2").unlink()
    assert import_pool(ImportRequest(source=src, out=out)).rows == len(GOOD)
    assert sorted(p.name for p in out.iterdir()) == [".rayignore", "manifest.json", "pool.arrow"]


def test_a_failed_rerun_in_a_killed_imports_folder_leaves_nothing(tmp_path: Path) -> None:
    """The folder a killed import made counts as new: a failing rerun removes it, as it would
    have removed it then."""
    out = tmp_path / "pool"
    out.mkdir()
    (out / TMP_FILES[0]).write_text("half")
    with pytest.raises(UserError, match="no such source file"):
        import_pool(ImportRequest(source=tmp_path / "nope.jsonl", out=out))
    bad = write_source(tmp_path / "bad", ['{"id": "x"}'])
    with pytest.raises(UserError, match="no known layout"):
        import_pool(ImportRequest(source=bad, out=out))
    assert not out.exists()


def test_an_import_in_progress_is_not_disturbed(tmp_path: Path) -> None:
    """Another import holding the folder: refused, its temporary files left alone."""
    src = write_source(tmp_path / "src", GOOD)
    out = tmp_path / "pool"
    out.mkdir()
    (out / TMP_FILES[0]).write_text("being written")
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UserError, match="another `ablate data import` is writing"):
            import_pool(ImportRequest(source=src, out=out))
        assert (out / TMP_FILES[0]).read_text() == "being written"
    finally:
        os.close(fd)
    assert import_pool(ImportRequest(source=src, out=out)).rows == len(GOOD)
