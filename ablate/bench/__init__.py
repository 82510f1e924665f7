"""Benchmarks as data: a YAML file names the dialogues, their label fields and the scorer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.config import build, read_yaml, resolve_path
from ablate.errors import UserError


@dataclass(frozen=True)
class BenchSpec:
    name: str
    """Shown in MLflow and reports."""
    data: str
    """JSONL of dialogues in the LLaVA layout (relative to the YAML file)."""
    version: int = 1
    """Bump when the data or scoring changes: scores of different versions do not compare."""
    domain_field: str = "domain"
    """Record field giving the domain; reported as `accuracy/<domain>`."""
    group_fields: tuple[str, ...] = ()
    """Further record fields reported as `accuracy/<field>=<value>`."""
    scorer: str = "exact"
    """`exact`: the greedy answer must equal the reference (lower-cased, stripped)."""
    source: str = ""


def load_bench(path: str | Path, overrides: tuple[str, ...] = ()) -> BenchSpec:
    spec = build(BenchSpec, read_yaml(path, overrides), path)
    if spec.scorer != "exact":
        raise UserError(f"{path}: `scorer` {spec.scorer!r} is not known; use `exact`")
    return BenchSpec(**{**spec.__dict__, "source": str(Path(path).resolve())})


def bench_records(spec: BenchSpec) -> list[dict[str, Any]]:
    """The bench's dialogues, image paths made absolute against the data file's folder."""
    data = resolve_path(spec.data, Path(spec.source).parent)
    if not data.is_file():
        raise UserError(f"{spec.source}: `data` file {data} does not exist")
    records = []
    with data.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{data}:{n}: not valid JSON ({err})") from None
            images = record.get("image") or []
            images = [images] if isinstance(images, str) else images
            record["images"] = [str(resolve_path(p, data.parent)) for p in images]
            records.append(record)
    if not records:
        raise UserError(f"{data}: the bench has no dialogues")
    return records
