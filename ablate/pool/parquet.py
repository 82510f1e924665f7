"""Parquet sources: one file, or a folder of shards as a dataset repository lays them out.

A hub snapshot keeps each split as numbered shards, `data/train-00000-of-00004.parquet` ...
(`-of-NNNNN` may be followed by a hash, and subsets may sit in their own folders); other
folders name the split by a folder or a file name (`default/train/0000.parquet`,
`data/train.parquet`, see `split_files`). Such a folder is one source: the `--split`'s files
are read in order, a record batch at a time, so memory is bounded by one row group plus one
batch, not by the dataset. Row counts come from the footers first (for the progress's time
left), which also finds a damaged footer before any record is read. A row group unreadable in
the middle of a shard yields one `InvalidRecord` standing for all the rows it could not give
(their count is in the footer), so `--on-invalid skip` accounts for every record.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.errors import UserError
from ablate.pool.items import InvalidRecord, Item

__all__ = ["BATCH_ROWS", "SPLIT_WORDS", "Shard", "parquet_shards", "read_parquet", "split_files"]

#: Rows per record batch turned into Python objects (about 50 MB with 50 KB images).
BATCH_ROWS = 1000
SHARD_NAME = re.compile(
    r"^(?P<split>.+?)-(?P<index>\d{5})-of-(?P<count>\d{5})(?:-[^.]*)?\.parquet$"
)


@dataclass(frozen=True)
class Shard:
    """One Parquet file of a source."""

    path: Path
    name: str
    """Relative to the source folder (the file's name for a single file)."""
    rows: int
    """From its footer."""


def parquet_shards(path: Path, split: str = "train") -> list[Shard]:
    """The files a Parquet source reads, in order, with their row counts (see the docstring)."""
    if not path.is_dir():
        return [_shard(path, path.name)]
    return [_shard(p, str(p.relative_to(path))) for p in split_files(path, split)]


def split_files(folder: Path, split: str = "train") -> list[Path]:
    """The `.parquet` files of a folder that hold `split`, in order (no file is opened).

    Shards named `NAME-00000-of-00004[-hash].parquet` belong to split NAME (and must all be
    there). Otherwise a file belongs to the split its folder or its name gives: `train/0000.parquet`
    (the hub's `refs/convert/parquet` layout), `train.parquet`, `train-0.parquet`, `train_a.parquet`;
    names of splits are the usual ones (`SPLIT_WORDS`) or the `split` asked for. A folder whose
    files name no split at all is one split: every file is read.
    """
    files = sorted((p for p in folder.rglob("*.parquet") if p.is_file()), key=lambda p: str(p))
    if not files:
        raise UserError(f"{folder}: the folder holds no .parquet files; choose another --format")
    named = {p: SHARD_NAME.match(p.name) for p in files}
    if any(named.values()):
        splits = {p: m["split"] for p, m in named.items() if m}
    else:
        splits = {p: s for p in files if (s := _split_of(p.relative_to(folder), split))}
        if not splits:
            return files
    chosen = [p for p, s in splits.items() if s == split]
    if not chosen:
        found = ", ".join(sorted(set(splits.values())))
        raise UserError(
            f"{folder}: the files hold the split(s) {found}, not `{split}`; pass --split NAME"
        )
    if any(named.values()):
        _check_complete(folder, chosen)
    return chosen


#: Folder and file names taken for a split's name (those `datasets` recognises in a repository).
SPLIT_WORDS = frozenset(
    ("train", "training", "validation", "valid", "val", "dev", "test", "testing", "eval")
)


def _split_of(relative: Path, split: str) -> str | None:
    """The split a file's folders or name give (`split` itself first), else None."""
    stem = relative.name.removesuffix(".parquet")
    head = re.split(r"[-_.]", stem, maxsplit=1)[0]
    names = [*relative.parts[:-1], stem]
    if split in names or any(stem.startswith(split + sep) for sep in "-_."):
        return split
    for name in [*relative.parts[:-1], head]:
        if name.lower() in SPLIT_WORDS:
            return name
    return None


def _check_complete(folder: Path, files: list[Path]) -> None:
    """Every `-of-NNNNN` set has all its shards: a partial download would import silently short."""
    found: dict[tuple[Path, int], set[int]] = defaultdict(set)
    for p in files:
        m = SHARD_NAME.match(p.name)
        assert m is not None
        found[(p.parent, int(m["count"]))].add(int(m["index"]))
    for (parent, count), have in found.items():
        missing = sorted(set(range(count)) - have)
        if missing:
            names = ", ".join(f"{i:05d}" for i in missing[:5]) + (
                " ..." if len(missing) > 5 else ""
            )
            raise UserError(
                f"{parent}: shard(s) {names} of {count:05d} are missing ({len(have)} of {count} "
                f"found under {folder}); the snapshot is incomplete: download it again"
            )


def _shard(path: Path, name: str) -> Shard:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.ParquetFile(str(path)).metadata.num_rows
    except (OSError, pa.ArrowException) as err:
        if (like := _looks_like(path)) is not None:  # (`--format parquet` forced on it)
            raise UserError(
                f"{path}: is not a Parquet file (it starts like {like[0]}); import it with "
                f"--format {like[1]}"
            ) from None
        raise UserError(
            f"{path}: not a readable Parquet file ({err}); its footer is damaged, so not even "
            "its row count is known: download the file again"
        ) from None
    return Shard(path, name, rows)


def _looks_like(path: Path) -> tuple[str, str] | None:
    """(what, its --format) for a file whose first byte (after blanks) opens JSON, else None:
    told apart from a damaged Parquet file, whose advice is to download it again."""
    with path.open("rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] == b"{":
        return ("JSON lines", "jsonl")
    return ("JSON", "json") if head[:1] == b"[" else None


def read_parquet(path: Path, split: str = "train") -> Iterator[Item]:
    """The rows of a Parquet file or of a folder's shards, numbered on across the shards.

    Read one row group at a time: a damaged row group costs its own rows (one `InvalidRecord`
    standing for them, naming the shard and row), and the rows after it are still read."""
    import pyarrow.parquet as pq

    n = 0
    for shard in parquet_shards(path, split):
        file = pq.ParquetFile(str(shard.path))
        first = 0  # the shard's rows before this row group
        for group in range(file.metadata.num_row_groups):
            size = file.metadata.row_group(group).num_rows
            yield from _read_group(file, shard, group, size, n, first)
            n += size
            first += size


def _read_group(
    file: Any, shard: Shard, group: int, size: int, before: int, first: int
) -> Iterator[Item]:
    """The rows of one row group; `before`: the source's rows before it, `first`: the shard's."""
    import pyarrow as pa

    done = 0
    try:
        for batch in file.iter_batches(batch_size=BATCH_ROWS, row_groups=[group]):
            for rec in batch.to_pylist():
                done += 1
                yield Item("row", before + done, rec, shard.name, first + done)
    except (OSError, pa.ArrowException) as err:
        lost = size - done
        if lost <= 0:
            return  # every row was read: the fault lies past the data
        at = first + done + 1
        reason = (
            f"shard {shard.name} is unreadable at its row {at:,} (row group {group}: "
            f"{type(err).__name__}: {str(err).strip()}); {lost:,} row(s) from there to the end "
            "of the row group cannot be read: download the shard again"
        )
        yield Item(
            "row",
            before + done + 1,
            InvalidRecord("unreadable_shard", reason, lost),
            shard.name,
            at,
        )
