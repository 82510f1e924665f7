"""A mixture against its pool: misspelt task types (did-you-mean), balance over the pool's labels,
nested selections with three types at every volume, and `--out` paths that cannot be written."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from test_mixture_nested import _record

from ablate.errors import UserError
from ablate.mixture import (
    Mixture,
    check_out_path,
    load_mixture,
    materialize,
    mixture_summary,
    validate,
)
from ablate.pool import ImportRequest, Pool, import_pool, open_pool


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Pool:
    """The review's pool, a tenth of it: 30 single-image, 12 multi-image, 5 text-only rows."""
    root = tmp_path_factory.mktemp("checks")
    records = [_record(f"s{i:02d}", 1) for i in range(30)]
    records += [_record(f"m{i:02d}", 2) for i in range(12)]
    records += [_record(f"t{i:02d}", 0) for i in range(5)]
    src = root / "src.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    import_pool(ImportRequest(source=src, out=root / "pool", check_images=False))
    return open_pool(root / "pool")


HAVE = "it has: multi_image (12), single_image (30), text_only (5)"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "proportions: {single_image: 0.5, mult_image: 0.5}",
            "`proportions.mult_image`: the pool's `task_type` has no label `mult_image` "
            f"(did you mean `multi_image`?); {HAVE}",
        ),
        (  # at share 0 too: it would count as a fourth type in the balance
            "proportions: {single_image: 1.0, mult_image: 0}",
            "`proportions.mult_image`: the pool's `task_type` has no label `mult_image` "
            f"(did you mean `multi_image`?); {HAVE}",
        ),
        (  # a cap meant for multi_image would silently default to 1
            "proportions: {single_image: 0.5, multi_image: 0.5}\n"
            "max_repeat: {multi_image: 2, mult_image: 3}",
            "`max_repeat.mult_image`: the pool's `task_type` has no label `mult_image` "
            f"(did you mean `multi_image`?); {HAVE}",
        ),
        (
            "proportions: natural\nmin_share: {text_only: 0.1, txt_only: 0.05}",
            "`min_share.txt_only`: the pool's `task_type` has no label `txt_only` "
            f"(did you mean `text_only`?); {HAVE}",
        ),
    ],
)
def test_a_misspelt_task_type_is_named_with_the_closest_label(
    pool: Pool, tmp_path: Path, yaml_text: str, message: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(f"volume: 10\n{yaml_text}\n")
    for check in (validate, mixture_summary, materialize):
        with pytest.raises(UserError) as err:
            if check is validate:
                validate(load_mixture(path), pool.manifest, source=str(path))
            elif check is mixture_summary:
                mixture_summary(load_mixture(path), pool, source=str(path))
            else:
                materialize(load_mixture(path), pool)
        text = str(err.value)
        assert "\n" not in text and text.endswith(message), text
        if check is not materialize:
            assert text == f"{path}: {message}"


def test_show_balance_is_over_the_pool_labels_as_a_trial_records_it(pool: Pool) -> None:
    """{single .5, multi .5} in a 3-type pool: entropy log 2 / log 3 = 0.631, min/max 0, KL to
    uniform log 3 - log 2 = 0.405 nats; the same whether the file lists text_only: 0 or not."""
    two = Mixture(volume=20, proportions={"single_image": 0.5, "multi_image": 0.5})
    three = Mixture(
        volume=20, proportions={"single_image": 0.5, "multi_image": 0.5, "text_only": 0.0}
    )
    for m in (two, three):
        tail = mixture_summary(m, pool).splitlines()[-2:]
        assert tail == [
            "balance      normalised entropy 0.631, min/max 0.000, KL to uniform 0.405 nats",
            "             over the pool's 3 `task_type` labels, as a trial records its `balance`",
        ]
    # Natural shares 30 / 12 / 5 of 47: H / log 3 = 0.795, min/max 5 / 30 = 0.167.
    natural = mixture_summary(Mixture(volume=47, proportions="natural"), pool)
    assert "normalised entropy 0.795, min/max 0.167, KL to uniform 0.225 nats" in natural


def test_three_types_nest_at_every_volume(pool: Pool) -> None:
    """The review's Alabama case: {.01, .06, .93} with largest remainder dropped the single-image
    row going from 40 to 41 rows. Now each volume's rows (copies counted) are a sub-multiset of
    the next one's, at every volume up to 60, and per-type counts never shrink."""
    m = Mixture(
        proportions={"single_image": 0.01, "multi_image": 0.06, "text_only": 0.93},
        max_repeat={"text_only": 12},
        seed=0,
    )
    previous: Counter[str] = Counter()
    counts = dict.fromkeys(m.proportions, 0)
    for volume in range(1, 61):
        sel = materialize(Mixture(**{**m.__dict__, "volume": volume}), pool)
        ids = Counter(sel.ids)
        assert not previous - ids, volume  # nothing of the smaller volume is dropped
        assert all(sel.counts.get(t, 0) >= n for t, n in counts.items()), volume
        previous, counts = ids, {t: sel.counts.get(t, 0) for t in counts}
    assert counts == {"single_image": 0, "multi_image": 4, "text_only": 56}


def test_out_must_be_a_file_path_that_can_be_written(pool: Pool, tmp_path: Path) -> None:
    sel = materialize(Mixture(volume=5, proportions="natural"), pool)
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(UserError) as err:
        sel.to_parquet(folder, pool)
    assert str(err.value) == (
        f"--out {folder} is a folder; give a file such as {folder / 'selection.parquet'}"
    )
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(UserError) as err:
        check_out_path(afile / "sub" / "x.parquet")
    assert str(err.value) == (
        f"--out {afile / 'sub' / 'x.parquet'}: {afile} is a file, not a folder; "
        "write elsewhere, e.g. --out x.parquet"
    )
    assert afile.read_text() == "" and list(folder.iterdir()) == []  # nothing written
    written = sel.to_parquet(tmp_path / "new" / "x.parquet", pool)
    assert written.is_file()
