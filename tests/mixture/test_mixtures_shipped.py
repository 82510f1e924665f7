"""Every shipped mixture loads, opens with the command that uses it, and fits a matching pool."""

from __future__ import annotations

from pathlib import Path

import pytest
from paths_for_tests import REPO

from ablate.mixture import load_mixture, rows_per_type, validate
from ablate.pool import PoolManifest

MIXTURES = sorted((REPO / "mixtures").glob("*.yaml"))


def test_there_are_shipped_mixtures() -> None:
    names = {p.stem for p in MIXTURES}
    assert {"natural", "balanced", "single_image", "mmcr_in_base"} <= names


@pytest.mark.parametrize("path", MIXTURES, ids=lambda p: p.name)
def test_shipped_mixture_loads_and_validates(path: Path) -> None:
    mixture = load_mixture(path)
    first = path.read_text().splitlines()[0]
    assert first.startswith(f"# ablate mixture materialize mixtures/{path.name} ")
    # A pool holding MMCR-310k (210k single-image, 100k multi-image dialogues) ...
    # Combined with a 200k-row base SFT mixture (source label + joint counts for `within`).
    base = {"single_image": 120_000, "multi_image": 20_000, "text_only": 60_000}
    mmcr = {"single_image": 210_000, "multi_image": 100_000}
    manifest = PoolManifest(
        rows=510_000,
        columns=("id", "task_type", "source"),
        labels={
            "task_type": {"single_image": 330_000, "multi_image": 120_000, "text_only": 60_000},
            "source": {"base": 200_000, "mmcr": 310_000},
        },
        fingerprint="0" * 64,
        source="mmcr.json + base.jsonl",
        joint={"source": {"task_type": {"base": base, "mmcr": mmcr}}},
    )
    validate(mixture, manifest, source=str(path))


def test_balanced_is_uniform() -> None:
    m = load_mixture(REPO / "mixtures/balanced.yaml")
    assert rows_per_type(m.proportions, int(m.volume)) == {
        "multi_image": 2000,
        "single_image": 2000,
    }


#: The pool `ablate demo` imports (the built-in world's 8,000 training dialogues, `ablate data
#: synth` defaults), as `ablate data show demo-out/pool` counts it.
DEMO_POOL = PoolManifest(
    rows=8_000,
    columns=("id", "task_type"),
    labels={"task_type": {"single_image": 4_755, "multi_image": 2_034, "text_only": 1_211}},
    fingerprint="0" * 64,
    source="demo-out/world/train.jsonl",
)


@pytest.mark.parametrize("path", MIXTURES, ids=lambda p: p.name)
def test_a_mixture_whose_command_names_the_demo_pool_fits_it(path: Path) -> None:
    if "--pool demo-out/pool " not in path.read_text().splitlines()[0]:
        pytest.skip("its command names another pool")
    validate(load_mixture(path), DEMO_POOL, source=str(path))


def test_mmcr_in_base_keeps_the_base_shares() -> None:
    from ablate.mixture import plan

    m = load_mixture(REPO / "mixtures/mmcr_in_base.yaml")
    base = {"single_image": 120_000, "multi_image": 20_000, "text_only": 60_000}
    manifest = PoolManifest(
        rows=510_000,
        columns=("id", "task_type", "source"),
        labels={"task_type": {}, "source": {"base": 200_000, "mmcr": 310_000}},
        fingerprint="0" * 64,
        source="x",
        joint={
            "source": {"task_type": {"base": base, "mmcr": {"single_image": 1, "multi_image": 1}}}
        },
    )
    cells = {c.key: c.rows for c in plan(m, manifest) if c.rows}
    # 15,000 base rows at 60 / 10 / 30 %; 5,000 MMCR rows half and half.
    assert cells == {
        "base/single_image": 9_000,
        "base/multi_image": 1_500,
        "base/text_only": 4_500,
        "mmcr/single_image": 2_500,
        "mmcr/multi_image": 2_500,
    }
