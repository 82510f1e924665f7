"""Mixtures: loading and its errors, proportions, validation, rows_per_type, materialize, balance."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from ablate.errors import UserError
from ablate.mixture import (
    Mixture,
    check_mixture,
    kl_to_uniform,
    load_mixture,
    materialize,
    max_volume,
    min_max_ratio,
    mixture_summary,
    normalized_entropy,
    resolve_proportions,
    rows_per_type,
    validate,
)
from ablate.pool import ImportRequest, Pool, PoolManifest, import_pool, open_pool

# ---------------------------------------------------------------------------- fixtures


def _record(rid: str, n_images: int, domain: str) -> dict[str, Any]:
    images = [f"i{k}.png" for k in range(n_images)]
    return {
        "id": rid,
        "image": images,
        "domain": domain,
        "conversations": [
            {"from": "human", "value": "<image>" * n_images + f"q {rid}"},
            {"from": "gpt", "value": f"a {rid}"},
        ],
    }


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Pool:
    """30 single-image, 12 multi-image, 5 text-only dialogues; domains a/b/c."""
    root = tmp_path_factory.mktemp("mix")
    records = [_record(f"s{i:02d}", 1, "abc"[i % 3]) for i in range(30)]
    records += [_record(f"m{i:02d}", 2 + i % 3, "ab"[i % 2]) for i in range(12)]
    records += [_record(f"t{i:02d}", 0, "c") for i in range(5)]
    src = root / "src.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in records))
    import_pool(ImportRequest(source=src, out=root / "pool", check_images=False))
    return open_pool(root / "pool")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return path


MANIFEST = PoolManifest(
    rows=62_113,
    columns=("id", "task_type"),
    labels={"task_type": {"single_image": 50_000, "multi_image": 12_113}, "domain": {"x": 62_113}},
    fingerprint="f" * 64,
    source="pool.jsonl",
)

# ---------------------------------------------------------------------------- loading


def test_load_mixture_and_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path, "name: b\nvolume: 100\nproportions: {single_image: 0.5, multi_image: 0.5}\n"
    )
    m = load_mixture(path)
    assert m == Mixture(name="b", volume=100, proportions={"single_image": 0.5, "multi_image": 0.5})
    m2 = load_mixture(path, ["volume=0.25", "seed=3", "proportions=natural"])
    assert (m2.volume, m2.seed, m2.proportions) == (0.25, 3, "natural")
    m3 = load_mixture(path, ["proportions={natural: true, temperature: 0.5}"])
    assert m3.proportions == {"natural": True, "temperature": 0.5}
    assert load_mixture(path, ["proportions={natural: true}"]).proportions == "natural"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("proportions: {a: 1.2, b: -0.2}", "`proportions.b` is negative"),
        (
            "proportions: {a: 0.6, b: 0.3}",
            "sum to 0.9, not 1; normalised they would be {a: 0.6667, b: 0.3333}",
        ),
        ("proportions: {a: yes}", "`proportions.a` must be a number"),
        ("proportions: {}", "non-empty mapping"),
        ("proportions: balanced", "`proportions` must be a mapping"),
        (
            "proportions: {natural: true, temperature: 0}",
            "`proportions.temperature` must be a number > 0",
        ),
        ("proportions: {natural: false}", "`proportions.natural` must be true"),
        ("proportions: {natural: true, a: 0.5}", "mixes `natural` with a"),
        ("volume: 0", "`volume` must be a number of rows"),
        ("volume: -5", "`volume` must be a number of rows"),
        ("volume: 10.5", "`volume` 10.5 is neither"),
        ("max_repeat: 0", "`max_repeat` must be an integer >= 1"),
        ("volum: 10", "unknown key `volum` (did you mean `volume`?)"),
        ("volume: lots", "`volume` must be a number"),
    ],
)
def test_load_mixture_errors_name_file_and_key(
    tmp_path: Path, yaml_text: str, expected: str
) -> None:
    path = write(tmp_path, yaml_text + "\n")
    with pytest.raises(UserError) as err:
        load_mixture(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_shares_within_tolerance_are_accepted() -> None:
    m = check_mixture(Mixture(proportions={"a": 1 / 3, "b": 1 / 3, "c": 0.3333334}))
    assert m.proportions["c"] == pytest.approx(0.3333334)


# ---------------------------------------------------------------------------- proportions


def test_resolve_proportions() -> None:
    natural = resolve_proportions(Mixture(proportions="natural"), MANIFEST)
    assert natural == pytest.approx(
        {"single_image": 50_000 / 62_113, "multi_image": 12_113 / 62_113}
    )
    t = 0.5
    tempered = resolve_proportions(
        Mixture(proportions={"natural": True, "temperature": t}), MANIFEST
    )
    z = 50_000**t + 12_113**t
    assert tempered == pytest.approx({"single_image": 50_000**t / z, "multi_image": 12_113**t / z})
    flat = resolve_proportions(
        Mixture(proportions={"natural": True, "temperature": 1e-9}), MANIFEST
    )
    assert flat == pytest.approx({"single_image": 0.5, "multi_image": 0.5})
    given = resolve_proportions(Mixture(proportions={"multi_image": 1.0}), MANIFEST)
    assert given == {"multi_image": 1.0}


def test_rows_per_type() -> None:
    assert rows_per_type({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 10) == {"a": 4, "b": 3, "c": 3}
    assert rows_per_type({"b": 0.5, "a": 0.5}, 7) == {"a": 4, "b": 3}  # tie -> first by name
    assert rows_per_type({"a": 0.7, "b": 0.3, "z": 0.0}, 10) == {"a": 7, "b": 3, "z": 0}
    assert rows_per_type({"a": 0.125, "b": 0.875}, 8) == {"a": 1, "b": 7}
    # Shares summing to 1 only within 1e-6 still give exact totals.
    assert sum(rows_per_type({"a": 1 / 3, "b": 1 / 3, "c": 0.3333334}, 99_999).values()) == 99_999


def test_rows_per_type_is_exact_within_quota_and_monotone_in_volume() -> None:
    """At every volume 0..1,500 of 150 random share vectors (2 to 12 types, some very skewed):
    the rows sum to the volume, each type's count is the floor or ceiling of its exact share,
    and no type's count shrinks as the volume grows (so selections nest)."""
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(150):
        k = int(rng.integers(2, 13))
        shares = rng.dirichlet([float(rng.choice([0.1, 0.5, 2.0]))] * k)
        props = {f"t{i:02d}": float(s) for i, s in enumerate(shares)}
        previous = dict.fromkeys(props, 0)
        for volume in range(1_501):
            rows = rows_per_type(props, volume)
            assert sum(rows.values()) == volume
            worst = max(worst, max(abs(rows[t] - props[t] * volume) for t in props))
            assert all(rows[t] >= previous[t] for t in props), (props, volume)
            previous = rows
    # Measured: strictly within one row of the exact share (largest remainder's bound too).
    assert 0.99 < worst < 1


def test_rows_per_type_has_no_alabama_paradox() -> None:
    """The review's case: largest remainder gave the 1% type 1 row at volume 40 and 0 at 41."""
    p = {"single_image": 0.01, "multi_image": 0.06, "text_only": 0.93}
    assert rows_per_type(p, 40) == {"multi_image": 2, "single_image": 0, "text_only": 38}
    assert rows_per_type(p, 41) == {"multi_image": 2, "single_image": 0, "text_only": 39}
    # Its first row is due at volume 100 (0.01 x 100 = 1 row); it comes at 99, where its deadline
    # is the earliest of the three. Its second may come once 0.01 v > 1 and is due at 200.
    single = [rows_per_type(p, v)["single_image"] for v in range(1, 201)]
    assert single.index(1) + 1 == 99 and single[:98] == [0] * 98
    assert single[-1] == 2 and set(single[99:]) == {1, 2} and single == sorted(single)
    # Large volumes: exact where the share is a whole number of rows.
    assert rows_per_type(p, 100_000) == {
        "multi_image": 6_000,
        "single_image": 1_000,
        "text_only": 93_000,
    }


# ---------------------------------------------------------------------------- validate


def test_validate_taxonomy_and_types() -> None:
    with pytest.raises(
        UserError, match=r"m.yaml: `taxonomy` 'skill' .*available: task_type, domain"
    ):
        validate(Mixture(taxonomy="skill"), MANIFEST, source="m.yaml")
    with pytest.raises(UserError) as err:
        validate(Mixture(proportions={"text_only": 0.5, "single_image": 0.5}), MANIFEST, "m.yaml")
    assert str(err.value) == (
        "m.yaml: `proportions.text_only`: the pool's `task_type` has no label `text_only`; "
        "it has: single_image (50,000), multi_image (12,113)"
    )
    # Even at share 0: it would count as a type of its own in the balance.
    with pytest.raises(UserError, match=r"`proportions\.text_only`: the pool's `task_type` has no"):
        validate(Mixture(volume=10, proportions={"text_only": 0.0, "single_image": 1.0}), MANIFEST)


def test_validate_volume_supply_message() -> None:
    m = Mixture(volume=80_000, proportions={"single_image": 0.5, "multi_image": 0.5}, max_repeat=2)
    with pytest.raises(UserError) as err:
        validate(m, MANIFEST, source="m.yaml")
    msg = str(err.value)
    assert msg.startswith("m.yaml: `volume` needs 40,000 rows of multi_image")
    assert "the pool has 12,113 and max_repeat is 2" in msg
    assert "lower `volume` to at most 48,452, raise `max_repeat` to 4" in msg
    validate(replace(m, volume=48_452), MANIFEST)
    validate(replace(m, max_repeat=4), MANIFEST)
    with pytest.raises(UserError, match="needs 24,227 rows"):
        validate(replace(m, volume=48_453), MANIFEST)
    with pytest.raises(UserError, match="is 0 rows"):
        validate(Mixture(volume=1e-6), MANIFEST)


def test_max_volume_is_tight() -> None:
    rng = random.Random(1)
    for _ in range(100):
        counts = {"a": rng.randint(1, 500), "b": rng.randint(1, 500), "c": rng.randint(1, 500)}
        shares = [rng.random() + 0.01 for _ in counts]
        props = {t: s / sum(shares) for t, s in zip(counts, shares, strict=True)}
        v = max_volume(props, counts, 1)
        assert all(n <= counts[t] for t, n in rows_per_type(props, v).items())
        assert any(n > counts[t] for t, n in rows_per_type(props, v + 1).items())


# ---------------------------------------------------------------------------- materialize


def test_materialize_counts_and_determinism(pool: Pool) -> None:
    m = Mixture(volume=20, proportions={"single_image": 0.5, "multi_image": 0.5}, seed=7)
    sel = materialize(m, pool)
    assert sel.counts == {"multi_image": 10, "single_image": 10}
    assert len(sel.ids) == 20 and len(set(sel.ids)) == 20
    assert sel.positions.dtype == np.int64
    table = pool.table()
    assert table.column("id").take(sel.positions).to_pylist() == list(sel.ids)
    types = Counter(table.column("task_type").take(sel.positions).to_pylist())
    assert types == {"single_image": 10, "multi_image": 10}
    again = materialize(m, open_pool(pool.path))  # a fresh handle: nothing cached
    assert again.ids == sel.ids and again.content_hash == sel.content_hash
    # Golden value: the same on every machine (sha256 seeding + PCG64, no Python hash()).
    assert sel.ids[:6] == GOLDEN_FIRST_IDS and sel.content_hash == GOLDEN_HASH
    other = materialize(replace(m, seed=8), pool)
    assert other.ids != sel.ids and other.content_hash != sel.content_hash


GOLDEN_FIRST_IDS = ("s25", "m05", "m07", "s22", "m04", "s04")
GOLDEN_HASH = "9a5462644e5bd01f3f4b89fe33604da3d96f6b46d9951bccb2c4a0a16e88459f"


def test_nested_volumes(pool: Pool) -> None:
    props = {"single_image": 0.6, "multi_image": 0.4}
    previous: set[str] = set()
    for volume in (5, 10, 11, 20, 30):
        ids = set(materialize(Mixture(volume=volume, proportions=props, seed=3), pool).ids)
        assert previous <= ids
        previous = ids
    # Three types, natural shares, fractions of the pool.
    small = materialize(Mixture(volume=0.2, seed=1), pool)
    large = materialize(Mixture(volume=0.8, seed=1), pool)
    assert set(small.ids) <= set(large.ids)
    assert sum(small.counts.values()) == round(0.2 * 47)


def test_a_float_volume_up_to_one_is_a_fraction_an_integer_is_rows(
    pool: Pool, tmp_path: Path
) -> None:
    path = write(tmp_path, "proportions: natural\nvolume: 1.0\n")
    whole = load_mixture(path)
    assert sum(materialize(whole, pool).counts.values()) == 47  # 1.0: the whole pool
    assert "47 rows (100% of the pool)" in mixture_summary(whole, pool)
    for given, rows in (("volume=1.0", 47), ("volume=0.25", 12), ("volume=1", 1), ("volume=5", 5)):
        mixture = load_mixture(path, [given])
        assert sum(materialize(mixture, pool).counts.values()) == rows, given
    assert sum(materialize(load_mixture(write(tmp_path, "volume: 1\n")), pool).counts.values()) == 1


def test_max_repeat(pool: Pool) -> None:
    m = Mixture(volume=30, proportions={"multi_image": 1.0}, max_repeat=3, seed=0)
    sel = materialize(m, pool)  # 12 multi-image rows: 2.5 passes
    seen = Counter(sel.ids)
    assert sel.counts == {"multi_image": 30}
    assert len(seen) == 12 and set(seen.values()) == {2, 3}
    assert sum(v == 3 for v in seen.values()) == 6
    # Nested across passes too: volume 14 is a sub-multiset of volume 30.
    small = Counter(materialize(replace(m, volume=14), pool).ids)
    assert all(small[k] <= seen[k] for k in small)
    with pytest.raises(UserError, match="needs 30 rows of multi_image, the pool has 12"):
        materialize(replace(m, max_repeat=2), pool)


def test_other_taxonomy(pool: Pool) -> None:
    sel = materialize(
        Mixture(volume=9, proportions={"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, taxonomy="domain"), pool
    )
    assert sel.counts == {"a": 3, "b": 3, "c": 3}
    domains = Counter(pool.labels("domain")[sel.positions].tolist())
    assert domains == {"a": 3, "b": 3, "c": 3}


def test_to_parquet(pool: Pool, tmp_path: Path) -> None:
    sel = materialize(Mixture(volume=12, proportions="natural"), pool)
    path = sel.to_parquet(tmp_path / "out/sel.parquet", pool)
    t = pq.read_table(path)
    assert t.column_names == ["id", "position", "task_type", "domain"]
    assert t.column("id").to_pylist() == list(sel.ids)
    assert t.column("position").to_pylist() == sel.positions.tolist()
    meta = t.schema.metadata
    assert meta[b"ablate.content_hash"].decode() == sel.content_hash
    assert meta[b"ablate.pool_fingerprint"].decode() == pool.manifest.fingerprint
    assert sum(json.loads(meta[b"ablate.counts"]).values()) == 12


def test_mixture_summary(pool: Pool) -> None:
    text = mixture_summary(
        Mixture(name="bal", volume=20, proportions={"single_image": 0.5, "multi_image": 0.5}), pool
    )
    assert "volume       20 rows" in text
    assert "single_image   50.00%         10         30     0.33" in text
    assert "text_only       0.00%          0          5     0.00" in text
    # Over the pool's 3 task types, as a trial records `balance`: log 2 / log 3 = 0.631.
    assert "normalised entropy 0.631, min/max 0.000, KL to uniform 0.405 nats" in text
    assert "over the pool's 3 `task_type` labels" in text
    listed = Mixture(
        name="bal",
        volume=20,
        proportions={"single_image": 0.5, "multi_image": 0.5, "text_only": 0.0},
    )
    assert mixture_summary(listed, pool).splitlines()[-2:] == text.splitlines()[-2:]
    assert normalized_entropy(listed.proportions) == pytest.approx(math.log(2) / math.log(3))


# ---------------------------------------------------------------------------- balance


def test_balance_measures() -> None:
    assert normalized_entropy({"a": 0.5, "b": 0.5}) == pytest.approx(1.0)
    assert normalized_entropy({"a": 1.0, "b": 0.0}) == 0.0
    assert normalized_entropy({"a": 1.0}) == 1.0  # convention for k == 1
    h = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert normalized_entropy({"a": 0.9, "b": 0.1}) == pytest.approx(h / math.log(2))
    assert min_max_ratio({"a": 0.2, "b": 0.3, "c": 0.5}) == pytest.approx(0.4)
    assert min_max_ratio({"a": 1.0, "b": 0.0}) == 0.0
    assert kl_to_uniform({"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}) == pytest.approx(0.0)
    assert kl_to_uniform({"a": 1.0, "b": 0.0}) == pytest.approx(math.log(2))
    p = {"a": 0.7, "b": 0.2, "c": 0.1}
    assert kl_to_uniform(p) == pytest.approx(math.log(3) * (1 - normalized_entropy(p)))
    with pytest.raises(ValueError):
        normalized_entropy({})
