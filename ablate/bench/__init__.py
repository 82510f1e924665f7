"""Benchmarks as data. Only re-exports: the bench file and its records (`spec`), the LLM judge
(`judge`)."""

from ablate.bench.judge_parse import RATINGS
from ablate.bench.spec import (
    BenchSpec,
    JudgeSpec,
    bench_problems,
    bench_records,
    label_fields,
    load_bench,
    record_labels,
)

__all__ = [
    "RATINGS",
    "BenchSpec",
    "JudgeSpec",
    "bench_problems",
    "bench_records",
    "label_fields",
    "load_bench",
    "record_labels",
]
