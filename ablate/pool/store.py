"""An imported pool on disk: `pool.arrow` (Arrow IPC file, memory-mapped) + `manifest.json`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from ablate.config import build, to_dict, uploaded_hint
from ablate.errors import UserError
from ablate.pool.images import STORE_DIR

POOL_FILE = "pool.arrow"
MANIFEST_FILE = "manifest.json"
SKIPPED_FILE = "skipped.jsonl"

TASK_TYPE = "task_type"
"""The label column every pool has, derived from the number of images of a dialogue."""

# Columns every pool has; label columns (`domain`, `skill`, ...) follow them.
BASE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("images", pa.list_(pa.string())),
        ("conversations", pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))),
        ("n_images", pa.int32()),
        ("n_turns", pa.int32()),
        (TASK_TYPE, pa.string()),
    ]
)


def task_type_of(n_images: int) -> str:
    """`text_only` / `single_image` / `multi_image` from the number of images of a dialogue."""
    if n_images == 0:
        return "text_only"
    return "single_image" if n_images == 1 else "multi_image"


@dataclass(frozen=True)
class PoolManifest:
    """What a pool holds, saved as `manifest.json` beside `pool.arrow`."""

    rows: int
    """Number of dialogues in the pool."""
    columns: tuple[str, ...]
    """Column names of `pool.arrow`, in order."""
    labels: dict[str, dict[str, int]]
    """Taxonomy column -> {label: rows}, for `task_type` and every label field."""
    fingerprint: str
    """sha256 over ids + conversations + image paths (relative to the image root), in row order."""
    source: str
    """The file the pool was imported from (absolute)."""
    skipped: int = 0
    """Invalid records left out (`--on-invalid skip`)."""
    skipped_report: str | None = None
    """`skipped.jsonl` in the pool folder listing each skipped record and why, or null."""
    created: str = ""
    """ISO 8601 time of the import (UTC)."""
    image_root: str = ""
    """The folder relative image paths of the (first) source were resolved against."""
    records_read: int = 0
    """Records read from all sources: always `rows + skipped` (nothing dropped silently)."""
    sources: tuple[dict[str, Any], ...] = ()
    """Per source: path, name, format, files (those read, relative to a folder source; null
    when the reader does not say), image_root, read, rows, skipped, ids_made, ids_renamed,
    turns_trimmed."""
    images_written: int = 0
    """Embedded images (bytes in the source) this import wrote into `images/` of the pool."""
    images_deduplicated: int = 0
    """Embedded images whose bytes were already in the pool's store: referenced, not written."""
    ids_made: int = 0
    """Rows whose source gave no `id`: each was named by its position (`row-12`, `line-3`,
    `record-5`; `NAME/row-12` in a combined pool)."""
    ids_renamed: int = 0
    """Rows whose id repeated an earlier one, renamed `ID#2`, `ID#3`, ... (`--duplicate-ids
    rename`)."""
    turns_trimmed: int = 0
    """Rows whose conversation opened with a gpt turn or ended with an unanswered question:
    those turns were dropped (as LLaVA's preprocessing does), the rest kept."""
    notes: tuple[str, ...] = ()
    """What the import did that the user may not expect (also printed as warnings), e.g. the
    records' own `source` field replaced by the source's name in a combined pool."""
    rules: dict[str, str] = field(default_factory=dict)
    """Label column -> the rule that made it (`images:...`, `field:domain`, ...)."""
    joint: dict[str, dict[str, dict[str, dict[str, int]]]] = field(default_factory=dict)
    """Joint counts: taxonomy A -> taxonomy B -> label of A -> label of B -> rows (for nested
    mixtures); empty when the pool has too many distinct label combinations."""
    checks: dict[str, Any] = field(default_factory=dict)
    """What the import checked: images_exist, images_decoded (a full decode), allow_outside_root,
    turns, duplicate_ids (error | rename)."""

    @property
    def taxonomies(self) -> tuple[str, ...]:
        """Label columns a mixture may refer to (`task_type` first)."""
        return tuple(self.labels)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(to_dict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> PoolManifest:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(
                f"{path}: cannot read the pool manifest ({err}); re-import the pool with `ablate data import`"
            ) from None
        return build(cls, data, path)


@dataclass(frozen=True)
class Pool:
    """An opened pool folder. The table is memory-mapped, so opening a large pool is cheap."""

    path: Path
    """The pool folder."""
    manifest: PoolManifest
    """Its `manifest.json`."""
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def table(self) -> pa.Table:
        """The whole pool as an Arrow table backed by the memory-mapped file (read once, cached),
        its images as absolute paths (`absolute_images`)."""
        if "table" not in self._cache:
            self._cache["table"] = absolute_images(self._mapped(), self.path)
        table: pa.Table = self._cache["table"]
        return table

    def _mapped(self) -> pa.Table:
        """`pool.arrow` as it is stored (memory-mapped, cached): image paths not resolved."""
        if "mapped" not in self._cache:
            file = self.path / POOL_FILE
            try:  # zero-copy: reads the footer and maps the pages
                table = ipc.open_file(pa.memory_map(str(file), "r")).read_all()
            except (pa.ArrowInvalid, OSError) as err:
                raise UserError(
                    f"{file}: not a readable pool table ({err}): the file is damaged or cut short "
                    "(a copy that did not finish?); copy the pool folder again, or import it "
                    "again with `ablate data import`"
                ) from None
            if table.num_rows != self.manifest.rows:
                raise UserError(
                    f"{file} holds {table.num_rows:,} rows but {self.path / MANIFEST_FILE} says "
                    f"{self.manifest.rows:,}: the two files are from different imports; copy the "
                    "pool folder again as a whole, or import it again"
                )
            self._cache["mapped"] = table
        mapped: pa.Table = self._cache["mapped"]
        return mapped

    def check_readable(self) -> None:
        """Refuse a damaged `pool.arrow`, or one of another import than the manifest, now (it
        is memory-mapped: no rows are read)."""
        self._mapped()

    def take(self, positions: Any, columns: list[str] | tuple[str, ...] | None = None) -> pa.Table:
        """The rows at `positions` (in that order), reading only their pages of the pool.

        Use this rather than `table().take(...)`: Arrow's take on a multi-chunk column first
        concatenates every chunk, copying the whole column (700 MiB of text for 310k MMCR
        dialogues) into memory; this takes per record batch and copies only selected rows.
        Images come as absolute paths (`absolute_images`).
        """
        return absolute_images(self._take(positions, columns), self.path)

    def _take(self, positions: Any, columns: list[str] | tuple[str, ...] | None) -> pa.Table:
        table = self._mapped()
        if columns is not None:
            table = table.select(list(columns))
        pos = np.asarray(positions, dtype=np.int64)
        batches = table.to_batches()
        if len(batches) <= 1 or pos.size == 0:
            return table.take(pa.array(pos, type=pa.int64()))
        if pos.min() < 0 or pos.max() >= table.num_rows:
            raise IndexError(f"positions out of range for a pool of {table.num_rows} rows")
        offsets = np.cumsum([0, *(b.num_rows for b in batches)])
        which = np.searchsorted(offsets, pos, side="right") - 1
        order = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[order], np.arange(len(batches) + 1))
        parts = [
            batches[b].take(pa.array(pos[order[bounds[b] : bounds[b + 1]]] - offsets[b]))
            for b in range(len(batches))
            if bounds[b] < bounds[b + 1]
        ]
        grouped = pa.Table.from_batches(parts, schema=table.schema)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return grouped.take(pa.array(inverse))  # concatenates the selected rows only

    def labels(self, taxonomy: str) -> np.ndarray:
        """The `taxonomy` label of every row, as a numpy array of str (one per row, in pool order)."""
        codes, names = self.codes(taxonomy)
        return np.array(names, dtype=str)[codes]

    def codes(self, taxonomy: str) -> tuple[np.ndarray, list[str]]:
        """The `taxonomy` label of every row as int32 codes into a list of label names.

        Dictionary-encoded from the memory-mapped column (4 bytes per row, cached): the fast
        path `materialize` uses, without building a Python string per row.
        """
        if taxonomy not in self.manifest.labels:
            raise UserError(
                f"{self.path}: the pool has no label column `{taxonomy}`; "
                f"available: {', '.join(self.manifest.taxonomies)}"
            )
        key = f"codes:{taxonomy}"
        if key not in self._cache:
            import pyarrow.compute as pc

            encoded = pc.dictionary_encode(self._mapped().column(taxonomy)).unify_dictionaries()
            names = encoded.chunk(0).dictionary.to_pylist() if encoded.num_chunks else []
            chunks = [c.indices.to_numpy(zero_copy_only=False) for c in encoded.chunks]
            codes = np.concatenate(chunks).astype(np.int32) if chunks else np.empty(0, np.int32)
            self._cache[key] = (codes, names)
        cached: tuple[np.ndarray, list[str]] = self._cache[key]
        return cached


def absolute_images(table: pa.Table, pool_dir: Path) -> pa.Table:
    """`table` with the images of the pool's own store as absolute paths.

    `pool.arrow` names an embedded image by its path inside the pool folder
    (`images/ab/<sha256>.png`), so a pool moved or copied elsewhere (a cluster's shared file
    system) still finds its images; here it is joined to where the pool is now. Image files of
    a JSON source are absolute already, as are the store's images in pools imported before
    (they are left as they are); a table without such paths is returned as it is (no copy).
    """
    if "images" not in table.column_names:
        return table
    import pyarrow.compute as pc

    column = table.column("images")
    prefix = STORE_DIR + "/"
    if not pc.any(pc.starts_with(pc.list_flatten(column), prefix)).as_py():
        return table
    base = pa.scalar(str(pool_dir.resolve()) + os.sep)
    chunks = []
    for chunk in column.chunks:
        values = chunk.values  # the whole backing array: the offsets index into it
        joined = pc.binary_join_element_wise(base, values, "")
        values = pc.if_else(pc.starts_with(values, prefix), joined, values)
        chunks.append(pa.ListArray.from_arrays(chunk.offsets, values, mask=chunk.is_null()))
    resolved = pa.chunked_array(chunks, type=column.type)
    return table.set_column(table.column_names.index("images"), "images", resolved)


def open_pool(path: str | Path) -> Pool:
    """Open a pool folder made by `ablate data import`."""
    path = Path(path)
    if not (path / POOL_FILE).is_file() or not (path / MANIFEST_FILE).is_file():
        what = "does not exist" if not path.exists() else f"has no {POOL_FILE} + {MANIFEST_FILE}"
        raise UserError(
            f"{path}: not a pool folder ({what}); make one with `ablate data import SOURCE --out {path}`"
            + uploaded_hint(path)
        )
    return Pool(path=path, manifest=PoolManifest.load(path / MANIFEST_FILE))


def show_pool(pool: Pool) -> str:
    """Counts per taxonomy as a plain text table, for `ablate data show` (a damaged
    `pool.arrow` is refused here, not first by the sweep that reads it)."""
    m = pool.manifest
    pool._mapped()
    lines = [
        f"pool         {pool.path}",
        f"source       {m.source}",
        f"rows         {m.rows:,}",
        f"fingerprint  {m.fingerprint[:16]}",
        f"created      {m.created}",
    ]
    if m.skipped:
        lines.append(f"skipped      {m.skipped:,} invalid records (see {m.skipped_report})")
    lines += [f"note         {note}" for note in m.notes]
    if len(m.sources) > 1:
        for s in m.sources:
            lines.append(
                f"  {s['name']:<10} {s['rows']:>9,} rows, {s['skipped']:,} skipped  {s['path']}"
            )
    for taxonomy, counts in m.labels.items():
        width = max([len(taxonomy), *map(len, counts)])
        lines += ["", f"{taxonomy:<{width}}  {'rows':>9}  {'share':>6}"]
        for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            share = n / m.rows if m.rows else 0.0
            lines.append(f"{label:<{width}}  {n:>9,}  {share:>6.1%}")
    return "\n".join(lines)
