"""What pyproject ships with an installed ablate exists inside the package."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ablate.demo import shipped_file

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_data_pattern_matches_files_inside_the_package() -> None:
    """`mixtures/*.yaml` was listed but lay outside the package: an installed ablate had none."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["ablate"]
    for pattern in patterns:
        found = sorted((ROOT / "ablate").glob(pattern))
        assert found, f"package-data pattern {pattern!r} matches nothing under ablate/"
        source = sorted((ROOT / pattern.split("/")[0]).glob(pattern.split("/", 1)[1]))
        assert [p.name for p in found] == [p.name for p in source]


def test_shipped_files_resolve() -> None:
    assert shipped_file("jobs", "demo.yaml").is_file()
    assert shipped_file("mixtures", "balanced.yaml").is_file()
