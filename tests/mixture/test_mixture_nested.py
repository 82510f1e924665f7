"""Mixture options beyond flat shares: per-type max_repeat, min_share floors, nested `within`
mixtures over a combined pool (the share of one source inside a fixed base mixture)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ablate.errors import UserError
from ablate.mixture import (
    Mixture,
    Nested,
    apply_min_share,
    load_mixture,
    materialize,
    mixture_summary,
    resolve_proportions,
    validate,
)
from ablate.pool import ImportRequest, Pool, PoolManifest, Source, import_pool, open_pool


def _record(rid: str, n_images: int) -> dict[str, Any]:
    return {
        "id": rid,
        "image": [f"i{k}.png" for k in range(n_images)],
        "conversations": [
            {"from": "human", "value": "<image>" * n_images + f"q {rid}"},
            {"from": "gpt", "value": f"a {rid}"},
        ],
    }


@pytest.fixture(scope="module")
def combined(tmp_path_factory: pytest.TempPathFactory) -> Pool:
    """mmcr: 40 single + 20 multi; base: 30 single, 10 multi, 20 text-only."""
    root = tmp_path_factory.mktemp("combined")
    parts = {
        "mmcr": [_record(f"s{i}", 1) for i in range(40)] + [_record(f"m{i}", 2) for i in range(20)],
        "base": [_record(f"s{i}", 1) for i in range(30)]
        + [_record(f"m{i}", 3) for i in range(10)]
        + [_record(f"t{i}", 0) for i in range(20)],
    }
    sources = []
    for name, records in parts.items():
        path = root / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        sources.append(Source(path, name=name))
    import_pool(ImportRequest(source=sources, out=root / "pool", check_images=False))
    return open_pool(root / "pool")


SHARE = Mixture(
    name="mmcr-share",
    volume=60,
    taxonomy="source",
    proportions={"mmcr": 0.25, "base": 0.75},
    within={"base": Nested(taxonomy="task_type", proportions="natural")},
    seed=3,
)


def test_nested_mixture_keeps_the_base_mixture_fixed(combined: Pool) -> None:
    sel = materialize(SHARE, combined)
    assert sel.counts == {"base": 45, "mmcr": 15}
    # base's own task-type shares (30 / 10 / 20 of 60), at 45 rows: 22.5 / 7.5 / 15. The half
    # row goes to single_image, whose 23rd row is due first (at 46 base rows; multi_image's 8th
    # at 48): `apportion`, earliest deadline first.
    assert sel.cells == {"base/multi_image": 7, "base/single_image": 23, "base/text_only": 15}
    table = combined.table()
    got = Counter(
        zip(
            table.column("source").take(sel.positions).to_pylist(),
            table.column("task_type").take(sel.positions).to_pylist(),
            strict=True,
        )
    )
    assert got[("base", "single_image")] == 23 and got[("base", "text_only")] == 15
    assert got[("mmcr", "single_image")] + got[("mmcr", "multi_image")] == 15
    # Changing the MMCR share leaves the base's inner proportions as they were.
    more = materialize(replace(SHARE, proportions={"mmcr": 0.5, "base": 0.5}), combined)
    assert more.cells == {"base/multi_image": 5, "base/single_image": 15, "base/text_only": 10}
    # Nested volumes hold inside every stratum.
    for small, large in [(20, 40), (40, 60), (60, 80)]:
        a = materialize(replace(SHARE, volume=small), combined)
        b = materialize(replace(SHARE, volume=large), combined)
        assert set(a.ids) <= set(b.ids)
    again = materialize(SHARE, open_pool(combined.path))
    assert again.ids == sel.ids and again.content_hash == sel.content_hash


def test_nested_mixture_from_yaml_and_summary(combined: Pool, tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "name: mmcr-share\nvolume: 60\ntaxonomy: source\nseed: 3\n"
        "proportions: {mmcr: 0.25, base: 0.75}\n"
        "within:\n  base: {taxonomy: task_type, proportions: natural}\n"
    )
    assert load_mixture(path) == SHARE
    text = mixture_summary(load_mixture(path), combined)
    assert "base             75.00%         45         60     0.75   within: task_type" in text
    assert "  single_image   38.33%         23         30     0.77" in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"volume": 120},
            # base: 0.75 x 120 = 90 rows, 1/6 of them multi-image = 15 > 10; at most
            # 60 base rows fit (10 multi-image = 1/6), so volume 60 / 0.75 = 80.
            "`volume` needs 15 rows of base / multi_image (`task_type` multi_image within base), "
            "the pool has 10 and max_repeat is 1; lower `volume` to at most 80, raise "
            "`max_repeat` to 2, or change `proportions` or `within.base.proportions`",
        ),
        (
            {"within": {"base": Nested("task_type", {"single_image": 0.5, "video": 0.5})}},
            "`within.base.proportions.video` is 0.5 but the pool has no `video` rows in "
            "`task_type` among its `base` rows; they have: multi_image (10), single_image (30), "
            "text_only (20)",
        ),
        (
            {"within": {"base": Nested("task_type", {"single_imag": 0.5, "text_only": 0.5})}},
            "`task_type` among its `base` rows (did you mean `single_image`?); they have: ",
        ),
        ({"within": {"wiki": Nested()}}, "`within.wiki`: the pool's `source` has no label 'wiki'"),
        ({"within": {"base": Nested("source")}}, "the mixture's own taxonomy"),
        ({"within": {"base": Nested("genre")}}, "`within.base.taxonomy` 'genre' is not a label"),
        # review q#14: no did-you-mean here (the top-level `taxonomy` had one), and `min_share`
        # too large was said of "mixture:", not of the file
        (
            {"within": {"base": Nested("task_typ")}},
            "'task_typ' is not a label column of the pool (did you mean `task_type`?); available: ",
        ),
        ({"min_share": 0.7}, "`min_share` 0.7 for each of its 2 types with a share needs 1.4"),
    ],
)
def test_nested_mixture_errors(combined: Pool, change: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError) as err:
        validate(replace(SHARE, **change), combined.manifest, source="m.yaml")
    assert str(err.value).startswith("m.yaml: ") and message in str(err.value)


def test_nested_mixture_needs_joint_counts(combined: Pool) -> None:
    old = replace(combined.manifest, joint={})
    with pytest.raises(UserError, match="re-import the pool"):
        validate(SHARE, old)


def test_per_type_max_repeat(combined: Pool) -> None:
    m = Mixture(volume=60, proportions={"multi_image": 0.5, "text_only": 0.5}, seed=1)
    with pytest.raises(UserError) as err:
        validate(m, combined.manifest, source="m.yaml")
    assert "needs 30 rows of text_only, the pool has 20 and max_repeat is 1" in str(err.value)
    assert "lower `volume` to at most 41" in str(err.value)
    with pytest.raises(UserError, match=r"raise `max_repeat.text_only` to 2"):
        validate(replace(m, max_repeat={"multi_image": 3}), combined.manifest)
    sel = materialize(replace(m, max_repeat={"text_only": 2}), combined)
    seen = Counter(sel.ids)
    assert max(seen[i] for i in seen if "/t" in i) == 2
    assert max(seen[i] for i in seen if "/m" in i) == 1  # multi-image stays capped at 1
    with pytest.raises(UserError, match=r"`max_repeat.text_only` must be an integer >= 1"):
        validate(replace(m, max_repeat={"text_only": 0}), combined.manifest)


def test_min_share_floors() -> None:
    p = apply_min_share({"a": 0.9, "b": 0.08, "c": 0.02}, 0.1)
    assert p == pytest.approx({"a": 0.8, "b": 0.1, "c": 0.1})
    assert sum(p.values()) == pytest.approx(1.0)
    # Water-filling: rescaling `b` down pushes it under its floor too.
    q = apply_min_share({"a": 0.6, "b": 0.32, "c": 0.08}, {"b": 0.3, "c": 0.3})
    assert q == pytest.approx({"a": 0.4, "b": 0.3, "c": 0.3})
    assert apply_min_share({"a": 1.0}, {"b": 0.25}) == pytest.approx({"a": 0.75, "b": 0.25})
    manifest = PoolManifest(
        rows=1010,
        columns=("id",),
        labels={"task_type": {"single_image": 1000, "multi_image": 10}},
        fingerprint="0" * 64,
        source="x",
    )
    m = Mixture(volume=100, proportions="natural", min_share=0.05, max_repeat=2)
    assert resolve_proportions(m, manifest) == pytest.approx(
        {"single_image": 0.95, "multi_image": 0.05}
    )
    validate(m, manifest)
    with pytest.raises(UserError, match="`min_share` must be a share between 0 and 1"):
        validate(replace(m, min_share=1.5), manifest)
    with pytest.raises(UserError, match=r"`min_share` sums to 1\.2, more than 1"):
        validate(replace(m, min_share={"single_image": 0.6, "multi_image": 0.6}), manifest)
    with pytest.raises(UserError, match=r"`min_share\.text_only`: the pool's `task_type` has no"):
        validate(replace(m, min_share={"text_only": 0.1}), manifest)
    # a number over the 2 types with a share: 0.6 each cannot hold (before: 50/50, silently)
    with pytest.raises(UserError, match=r"`min_share` 0\.6 for each of its 2 types with a share"):
        validate(replace(m, min_share=0.6), manifest)
    half = resolve_proportions(replace(m, min_share=0.5), manifest)  # 50/50 exactly: allowed
    assert half == pytest.approx({"single_image": 0.5, "multi_image": 0.5})


def test_flat_materialize_matches_golden_after_fast_path(tmp_path: Path) -> None:
    """The codes-based materialize selects exactly what the original did (golden values)."""
    from test_mixture import GOLDEN_FIRST_IDS, GOLDEN_HASH
    from test_mixture import _record as rec3

    records = [rec3(f"s{i:02d}", 1, "abc"[i % 3]) for i in range(30)]
    records += [rec3(f"m{i:02d}", 2 + i % 3, "ab"[i % 2]) for i in range(12)]
    records += [rec3(f"t{i:02d}", 0, "c") for i in range(5)]
    src = tmp_path / "src.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in records))
    import_pool(ImportRequest(source=src, out=tmp_path / "pool", check_images=False))
    m = Mixture(volume=20, proportions={"single_image": 0.5, "multi_image": 0.5}, seed=7)
    sel = materialize(m, open_pool(tmp_path / "pool"))
    assert sel.ids[:6] == GOLDEN_FIRST_IDS and sel.content_hash == GOLDEN_HASH


def test_rows_held_out_leave_the_pool_before_the_draw(combined: Pool) -> None:
    """`exclude` (a job's held-out rows): never drawn, the volume and the strata drawn in full
    from the rest, and validation counts the pool less them (nested strata too)."""
    from ablate.mixture import held_rows, heldout_positions, manifest_without

    held = heldout_positions(combined, "task_type", 0.25, seed=0)
    # 25% of each task type: single 70 -> 18, multi 30 -> 8 (7.5 rounds to even), text 20 -> 5
    assert {k: len(v) for k, v in held.items()} == {
        "multi_image": 8,
        "single_image": 18,
        "text_only": 5,
    }
    exclude = held_rows(held)
    less = manifest_without(combined, exclude)
    assert less.rows == 120 - 31
    assert less.labels["task_type"] == {"single_image": 52, "multi_image": 22, "text_only": 15}
    table = combined.table()
    pairs = Counter(
        zip(
            table.column("source").take(exclude).to_pylist(),
            table.column("task_type").take(exclude).to_pylist(),
            strict=True,
        )
    )
    joint = less.joint["source"]["task_type"]
    for (source, task_type), n in pairs.items():
        assert (
            joint[source][task_type]
            == combined.manifest.joint["source"]["task_type"][source][task_type] - n
        )
    sel = materialize(replace(SHARE, volume=48), combined, exclude)
    assert len(sel.positions) == 48 and sel.counts == {"base": 36, "mmcr": 12}
    assert not set(sel.positions.tolist()) & set(exclude.tolist())
    # nested volumes still nest with rows held out
    small = materialize(replace(SHARE, volume=24), combined, exclude)
    assert set(small.ids) <= set(sel.ids)
    # a volume the whole pool supplies but the pool less its held-out rows does not
    flat = Mixture(name="f", volume=20, proportions={"text_only": 1.0}, taxonomy="task_type")
    validate(flat, combined.manifest)  # 20 text-only rows: all of them
    with pytest.raises(UserError, match="needs 20 rows of text_only, the pool has 15"):
        materialize(flat, combined, exclude)


def test_a_job_holds_its_within_fixed_at_every_design_point(combined: Pool, tmp_path: Path) -> None:
    """`within:` in a job: every design point (the share of `mmcr` varied by the grid) draws
    the base's rows at its natural task-type split; the settings fingerprint it; an inner
    stratum the pool cannot supply is refused before any training."""
    from ablate.config import JobSpec, build
    from ablate.plan import design_mixtures, validate_job
    from ablate.study.settings import job_settings
    from ablate.trial.run import select_rows

    data = {
        "study": "within",
        "pool": str(combined.path),
        "bench": {"heldout_of_pool": 0.05},
        "taxonomy": "source",
        "task_types": ["mmcr", "base"],
        "within": {"base": {"taxonomy": "task_type", "proportions": "natural"}},
        "design": {"kind": "grid", "volumes": [40], "balance": [0.5, 1.0], "seeds": [0]},
        "model": {"path": "unused"},
    }
    job = build(JobSpec, data, tmp_path / "job.yaml")
    assert validate_job(job) == []
    for mixture in design_mixtures(job, ["mmcr", "base"]):
        sel = select_rows(job, mixture, {}).selection
        base = sel.counts["base"]
        inner = {k.split("/")[1]: n for k, n in sel.cells.items()}
        assert sum(inner.values()) == base and set(inner) == {
            "single_image",
            "multi_image",
            "text_only",
        }
        # the base pool less its held-out rows: 30 single, 10 multi, 20 text -> about 1/2, 1/6, 1/3
        assert abs(inner["single_image"] - base / 2) <= 1.5
        assert abs(inner["text_only"] - base / 3) <= 1.5
    settings = job_settings(job, ["mmcr", "base"])
    assert settings["within"] == data["within"]
    assert "within" not in job_settings(build(JobSpec, {**data, "within": {}}, "j"), ["a"])
    from ablate.mixture import with_within

    with pytest.raises(UserError, match="has a `within` of its own and the job gives `within` too"):
        with_within(SHARE, data["within"], "job.yaml")  # SHARE has its own: nothing to guess
    mostly_multi = {"single_image": 0.2, "multi_image": 0.6, "text_only": 0.2}
    too_big = build(
        JobSpec,
        {**data, "within": {"base": {"taxonomy": "task_type", "proportions": mostly_multi}}},
        "j.yaml",
    )  # base: 20 of 40 rows at balance 1.0, 12 of them multi-image; the pool has 9 left
    with pytest.raises(UserError, match=r"base / multi_image \(`task_type` multi_image within"):
        validate_job(too_big)
