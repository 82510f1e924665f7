"""Every shipped mixture loads, opens with the command that uses it, and fits a matching pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.mixture import load_mixture, rows_per_type, validate
from ablate.pool import PoolManifest

MIXTURES = sorted((Path(__file__).parent.parent / "mixtures").glob("*.yaml"))


def test_there_are_shipped_mixtures() -> None:
    names = {p.stem for p in MIXTURES}
    assert {"natural", "balanced", "single_image"} <= names


@pytest.mark.parametrize("path", MIXTURES, ids=lambda p: p.name)
def test_shipped_mixture_loads_and_validates(path: Path) -> None:
    mixture = load_mixture(path)
    first = path.read_text().splitlines()[0]
    assert first.startswith(f"# ablate mixture materialize mixtures/{path.name} ")
    # A pool shaped like MMCR-310k (210k single-image, 100k multi-image dialogues).
    manifest = PoolManifest(
        rows=310_000,
        columns=("id", "task_type"),
        labels={"task_type": {"single_image": 210_000, "multi_image": 100_000}},
        fingerprint="0" * 64,
        source="mmcr.json",
    )
    validate(mixture, manifest, source=str(path))


def test_balanced_is_uniform() -> None:
    m = load_mixture(Path(__file__).parent.parent / "mixtures/balanced.yaml")
    assert rows_per_type(m.proportions, int(m.volume)) == {
        "multi_image": 2500,
        "single_image": 2500,
    }
