"""Data folders stay out of `ray job submit --working-dir` (Ray refuses a zip over 512 MiB).

A researcher's project folder holds the job files next to pools of many GB; the working dir Ray
zips and uploads must still be the code and the job files only. Ray's own packaging code (what
`ray job submit` runs) is used to list what would be uploaded.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from ablate.errors import UserError
from ablate.pool import ImportRequest, import_pool, open_pool
from ablate.world import WorldSpec, synth_world


def _uploaded(folder: Path, tmp_path: Path) -> set[str]:
    from ray._private.runtime_env.packaging import create_package

    tmp_path.mkdir(parents=True, exist_ok=True)
    target = tmp_path / "package.zip"
    create_package(str(folder), target, include_gitignore=True)
    with zipfile.ZipFile(target) as z:
        return {name for name in z.namelist() if not name.endswith("/")}


def test_a_project_folders_pool_and_world_are_not_uploaded_with_the_code(tmp_path: Path) -> None:
    project = tmp_path / "project"
    files = synth_world(WorldSpec(out=project / "world", n_train=24, n_bench_per_cell=1))
    import_pool(ImportRequest(source=files.train, out=project / "pools" / "mine"))
    (project / "job.yaml").write_text("pool: /shared/pools/mine\n")
    assert any((project / "world" / "images").iterdir())
    assert _uploaded(project, tmp_path / "zip") == {"job.yaml"}
    # the marker does not make the pool folder foreign: importing into it again replaces it
    again = import_pool(ImportRequest(source=files.train, out=project / "pools" / "mine"))
    assert again.rows == open_pool(project / "pools" / "mine").manifest.rows == 24


def test_a_pool_missing_from_an_uploaded_working_dir_says_to_use_a_shared_path(
    tmp_path: Path,
) -> None:
    uploaded = tmp_path / "session/runtime_resources/working_dir_files/_ray_pkg_1/pools/mine"
    with pytest.raises(UserError, match="not uploaded with `ray job submit --working-dir`"):
        open_pool(uploaded)
    with pytest.raises(UserError) as plain:
        open_pool(tmp_path / "pools" / "mine")
    assert "ray job submit" not in str(plain.value)
