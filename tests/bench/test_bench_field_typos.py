"""Review q#4: a bench's `domain_field: domian` or `group_fields: [skil]` was accepted, and every
trial then reported `accuracy/unknown` alone (the per-domain and per-group scores lost)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablate.bench import bench_records, load_bench
from ablate.errors import UserError


def bench(tmp_path: Path, keys: str) -> Path:
    turns = [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]
    rows = [{"id": f"b{i}", "conversations": turns, "domain": "d", "skill": "s"} for i in range(3)]
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "b.yaml"
    path.write_text(f"name: b\ndata: b.jsonl\n{keys}\n")
    return path


@pytest.mark.parametrize(
    ("keys", "said"),
    [
        ("domain_field: domian", "domain_field 'domian' is a field of none of the bench's 3 "
         "dialogues (did you mean `domain`?); fix it or remove it"),
        ("group_fields: [skill, skil]", "group_fields 'skil' is a field of none"),
        ("subtopic_field: topic", "subtopic_field 'topic' is a field of none"),
    ],
)  # fmt: skip
def test_a_label_field_no_record_has_is_refused(tmp_path: Path, keys: str, said: str) -> None:
    path = bench(tmp_path, keys)
    with pytest.raises(UserError) as err:
        bench_records(load_bench(path))
    assert str(err.value).startswith(f"{path.resolve()}: ") and said in str(err.value)


def test_fields_the_records_have_and_the_default_domain_are_accepted(tmp_path: Path) -> None:
    assert len(bench_records(load_bench(bench(tmp_path, "group_fields: [skill]")))) == 3
    path = bench(tmp_path, "domain_field: domain")
    path.with_suffix(".jsonl").write_text(
        json.dumps({"id": "x", "conversations": [{"from": "human", "value": "Q?"},
                                                  {"from": "gpt", "value": "A."}]}) + "\n"
    )  # fmt: skip
    assert len(bench_records(load_bench(path))) == 1  # a bench without domains
