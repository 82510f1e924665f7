"""Import dialogue sources into one pool, validating and labelling every record.

`import_pool` reads top to bottom: check the request (`request`), build its label columns
(`labels`), prepare the pool folder, pass every record of every source through the checks
(`checks`) to the writer (`writer`), then write the manifest. Record layouts: `records`;
source formats: `readers`.

Every record read is either a row of the pool or a line of `skipped.jsonl` (or, with
`on_invalid="error"`, the reason the import stopped): `manifest.records_read == rows + skipped`.
Memory: one batch of rows (`batch_rows`) plus the set of ids seen (duplicate check, about
100 bytes per record: ~30 MB for 310k records) plus the reader's own bound.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.errors import UserError
from ablate.pool.checks import RecordChecker
from ablate.pool.images import ImageStore
from ablate.pool.labels import label_columns
from ablate.pool.readers import InvalidRecord, read_records
from ablate.pool.request import (
    ImportRequest,
    ResolvedSource,
    check_options,
    is_combined,
    resolve_sources,
)
from ablate.pool.store import MANIFEST_FILE, SKIPPED_FILE, PoolManifest
from ablate.pool.writer import PoolWriter, prepare_out

__all__ = ["import_pool"]


def import_pool(req: ImportRequest, progress: Callable[[int], None] | None = None) -> PoolManifest:
    """Read every source, validate and label every record, write `pool.arrow` + `manifest.json`.

    `progress(n)` is called after each batch with the number of records read so far.
    With `on_invalid="skip"`, `skipped.jsonl` gets one object per bad record:
    `{"id": ... or null, "line": N (JSONL) | "record": N (JSON list) | "row": N (tables),
    "code": ..., "reason": ...}` plus `"source": PATH` when several sources are combined.
    """
    sources = resolve_sources(req)
    check_options(req)
    columns = label_columns(req.labels, req.label_fields, is_combined(sources))
    out = Path(req.out)
    made_out = prepare_out(out)
    writer = PoolWriter(out, columns, req.batch_rows)
    store = ImageStore(out)
    try:
        summaries = _write_rows(req, sources, writer, store, _Reads(progress))
        writer.finish(sources)
    except BaseException:
        if made_out:
            store.remove()
        writer.discard(made_out)
        raise
    manifest = dataclasses.replace(
        writer.manifest(req, sources, summaries),
        images_written=store.written,
        images_deduplicated=store.deduplicated,
    )
    manifest.save(out / MANIFEST_FILE)
    return manifest


@dataclass
class _Reads:
    """Records read so far, of all sources: what `progress` is told after each written batch."""

    progress: Callable[[int], None] | None
    n: int = 0

    def report(self) -> None:
        if self.progress:
            self.progress(self.n)


def _write_rows(
    req: ImportRequest,
    sources: Sequence[ResolvedSource],
    writer: PoolWriter,
    store: ImageStore,
    reads: _Reads,
) -> list[dict[str, Any]]:
    """Every source in the order given through the checks into the writer; their summaries."""
    seen: set[str] = set()  # ids of all sources so far
    several = len(sources) > 1
    summaries = []
    with writer.open():
        for source in sources:
            image_root = source.image_root(req)
            label = source.source.label
            prefix = f"{label}/" if several else ""  # ids stay unique across sources
            checker = RecordChecker(req, image_root, writer.columns, label, prefix, seen, store)
            counts = _write_source(req, source, several, checker, writer, reads)
            summaries.append(source.summary(image_root, **counts))
        writer.flush()
        reads.report()
    return summaries


def _write_source(
    req: ImportRequest,
    source: ResolvedSource,
    several: bool,
    checker: RecordChecker,
    writer: PoolWriter,
    reads: _Reads,
) -> dict[str, int]:
    """Each record of one source becomes a row or a report line; its read / rows / skipped."""
    read = rows = skipped = made = 0
    for kind, number, rec in read_records(source.path, source.format, req.split):
        read += 1
        reads.n += 1
        try:
            # a record without an id is named by its position: the same on every re-import of
            # the same file, unique in the source (and in a combined pool, behind `NAME/`)
            row = checker.check(rec, f"{kind}-{number}")
        except InvalidRecord as bad:
            writer.skip(_reject(req, source, several, kind, number, rec, bad))
            skipped += 1
            continue
        rows += 1
        made += row.id_made
        if writer.add(row):
            reads.report()
    return {"read": read, "rows": rows, "skipped": skipped, "ids_made": made}


def _reject(
    req: ImportRequest,
    source: ResolvedSource,
    several: bool,
    kind: str,
    number: int,
    rec: Any,
    bad: InvalidRecord,
) -> dict[str, Any]:
    """The report line of a bad record, or (`on_invalid="error"`) the UserError that stops."""
    rid = rec.get("id") if isinstance(rec, dict) else None
    if req.on_invalid == "error":
        what = f"record `{rid}` ({kind} {number})" if rid else f"{kind} {number}"
        raise UserError(
            f"{source.path}: {what}: {bad.reason}. Fix the record, or pass "
            "--on-invalid skip to keep the good records and write a report "
            f"of the skipped ones to {Path(req.out) / SKIPPED_FILE}"
        ) from None
    entry: dict[str, Any] = {"id": rid if isinstance(rid, str | int) else None, kind: number}
    entry |= {"code": bad.code, "reason": bad.reason}
    if several:
        entry["source"] = str(source.path)
    return entry
