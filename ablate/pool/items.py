"""What a reader yields: a record (or why it is invalid) and where it stands in its source."""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["InvalidRecord", "Item"]


class InvalidRecord(Exception):
    """One record failed validation; `code` is a stable short name, the message says why."""

    def __init__(self, code: str, reason: str, count: int = 1) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.count = count
        """Records it stands for: more than one when a shard is unreadable from a row on."""


class Item(NamedTuple):
    """One record of a source and where it stands."""

    kind: str
    """`line` (JSONL), `record` (JSON array) or `row` (tables)."""
    number: int
    """1-based, over the whole source (a sharded source counts on across its shards)."""
    record: Any
    """The parsed record, or an `InvalidRecord`."""
    shard: str = ""
    """In a Parquet source: the file (relative to a sharded source's folder)."""
    shard_row: int = 0
    """The record's 1-based row in that file."""
