"""Import dialogue sources into one pool, validating and labelling every record.

`import_pool` reads top to bottom: check the request (`request`), build its label columns
(`labels`), prepare the pool folder, pass every record of every source through the checks
(`checks`) to the writer (`writer`), then write the manifest. Record layouts: `records`;
source formats: `readers`.

Every record read is either a row of the pool or a line of `skipped.jsonl` (or, with
`on_invalid="error"`, the reason the import stopped): `manifest.records_read == rows + skipped`.
A source of a combined pool that gives no row at all stops the import (its most common reason
named): a pool quietly without it would not be the mixture asked for.
Memory: one batch of rows (`batch_rows`) plus the set of ids seen (duplicate check, about
100 bytes per record: ~30 MB for 310k records) plus the reader's own bound.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.errors import UserError
from ablate.pool.checks import RecordChecker, record_id
from ablate.pool.images import ImageStore
from ablate.pool.items import InvalidRecord, Item
from ablate.pool.labels import SOURCE_LABEL, label_columns
from ablate.pool.readers import count_records, read_records, source_files
from ablate.pool.request import (
    ImportRequest,
    ResolvedSource,
    check_options,
    is_combined,
    resolve_sources,
)
from ablate.pool.store import MANIFEST_FILE, SKIPPED_FILE, PoolManifest
from ablate.pool.writer import PoolWriter, claim_out

__all__ = ["PROGRESS_EVERY", "ImportProgress", "import_pool"]


def import_pool(
    req: ImportRequest,
    progress: Callable[[ImportProgress], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> PoolManifest:
    """Read every source, validate and label every record, write `pool.arrow` + `manifest.json`.

    `progress(state)` is called every `PROGRESS_EVERY` records and at the end. `warn(text)`
    is told what the import did that the user may not expect (default: a line on stderr); the
    manifest keeps the same texts as `notes`.
    With `on_invalid="skip"`, `skipped.jsonl` gets one object per bad record:
    `{"id": ..., "line": N (JSONL) | "record": N (JSON list) | "row": N (tables),
    "code": ..., "reason": ...}` plus `"source": PATH` when several sources are combined; a
    record without a usable id gets the id its position makes (`line-3`) and `"id_made": true`.
    """
    sources = resolve_sources(req)
    check_options(req)
    columns = label_columns(req.labels, req.label_fields, is_combined(sources))
    out = Path(req.out)
    with claim_out(out) as made_out:
        writer = PoolWriter(out, columns, req.batch_rows)
        store = ImageStore(out)
        try:
            state = ImportProgress(total=_total(sources, req.split) if progress else None)
            reads = _Reads(progress, store, state, warn)
            summaries = _write_rows(req, sources, writer, store, reads)
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
            notes=tuple(reads.notes),
        )
        manifest.save(out / MANIFEST_FILE)
    return manifest


@dataclass
class ImportProgress:
    """Where an import stands: what `progress` is told every `PROGRESS_EVERY` records."""

    records: int = 0
    """Records read so far, of all sources."""
    total: int | None = None
    """Records of all sources, when known before reading (Parquet footers, saved datasets)."""
    images_written: int = 0
    images_deduplicated: int = 0

    def line(self, seconds: float) -> str:
        """`12,000 of 100,000 records (1,830/s), 11,000 images written (1,700/s), 0:49 left`."""
        seconds = max(seconds, 1e-9)
        rate = self.records / seconds
        of = f" of {self.total:,}" if self.total else ""
        text = f"{self.records:,}{of} records ({rate:,.0f}/s)"
        if self.images_written or self.images_deduplicated:
            text += (
                f", {self.images_written:,} images written ({self.images_written / seconds:,.0f}/s)"
            )
            if self.images_deduplicated:
                text += f", {self.images_deduplicated:,} repeats"
        if self.total and rate > 0 and self.records < self.total:
            left = int((self.total - self.records) / rate)
            text += f", {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d} left"
        return text


#: Records between two progress reports (a report costs one callback; the CLI prints a line).
PROGRESS_EVERY = 1000


@dataclass
class _Reads:
    """The progress of an import and whom to tell."""

    progress: Callable[[ImportProgress], None] | None
    store: ImageStore
    state: ImportProgress
    warn: Callable[[str], None] | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    """What `warn` was told (the manifest's `notes`)."""
    shown: bool = False
    """A progress report was made since the last warning (its line is still open)."""

    def count(self, n: int = 1) -> None:
        before = self.state.records
        self.state.records += n
        if self.progress and before // PROGRESS_EVERY != self.state.records // PROGRESS_EVERY:
            self.report()

    def report(self) -> None:
        if self.progress:
            self.state.images_written = self.store.written
            self.state.images_deduplicated = self.store.deduplicated
            self.progress(self.state)
            self.shown = True

    def note(self, text: str) -> None:
        """Tell `warn`, or stderr (below an open progress line), and keep it for the manifest."""
        self.notes.append(text)
        if self.warn:
            self.warn(text)
        else:
            print(f"{chr(10) if self.shown else ''}ablate: warning: {text}", file=sys.stderr)
            self.shown = False


def _total(sources: Sequence[ResolvedSource], split: str) -> int | None:
    """The records of all sources, when every one of them knows its count before reading."""
    counts = [count_records(s.path, s.format, split) for s in sources]
    return None if None in counts else sum(c for c in counts if c is not None)


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
            if not counts.rows:  # (combined: the others would make a pool without it)
                writer.publish_report()
                raise UserError(_empty_source(source, counts, writer.failed_report, several))
            files = source_files(source.path, source.format, req.split)
            summaries.append(source.summary(image_root, files, **counts.summary()))
            if counts.turns_trimmed:
                reads.note(
                    f"{counts.turns_trimmed:,} record(s) of source `{label}` opened with a gpt "
                    "turn or ended with an unanswered question; those turns were dropped (as "
                    "LLaVA's preprocessing drops them: no answer to learn) and the rest kept"
                )
            if checker.shadowed:
                reads.note(
                    f"{checker.shadowed:,} record(s) of source `{label}` have their own "
                    f"`{SOURCE_LABEL}` field (e.g. {checker.shadowed_example!r}); in this "
                    f"combined pool the `{SOURCE_LABEL}` column holds the source's name "
                    f"(`{label}`) instead. To keep the records' values too, import again with "
                    f"--label src=field:{SOURCE_LABEL}"
                )
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
) -> _SourceCounts:
    """Each record of one source becomes a row or a report line; what it made of them."""
    counts = _SourceCounts()
    for item in read_records(source.path, source.format, req.split):
        # an unreadable shard stands for all the rows it could not give (InvalidRecord.count)
        n = item.record.count if isinstance(item.record, InvalidRecord) else 1
        counts.read += n
        reads.count(n)
        try:
            # a record without an id is named by its position: the same on every re-import of
            # the same file, unique in the source (and in a combined pool, behind `NAME/`)
            row = checker.check(item.record, _position(item))
        except InvalidRecord as bad:
            writer.skip(_reject(req, source, several, item, bad), bad.count)
            counts.skipped += bad.count
            counts.codes[bad.code] += bad.count
            counts.examples.setdefault(bad.code, bad.reason)
            continue
        counts.rows += 1
        counts.ids_made += row.id_made
        counts.ids_renamed += row.id_renamed
        counts.turns_trimmed += row.turns_trimmed > 0
        writer.add(row)
    return counts


@dataclass
class _SourceCounts:
    """What one source's records became."""

    read: int = 0
    rows: int = 0
    skipped: int = 0
    ids_made: int = 0
    ids_renamed: int = 0
    turns_trimmed: int = 0
    """Rows that lost a leading answer or a trailing question."""
    codes: Counter[str] = dataclasses.field(default_factory=Counter)
    """Skipped records per reason code."""
    examples: dict[str, str] = dataclasses.field(default_factory=dict)
    """The first reason given for each code."""

    def summary(self) -> dict[str, int]:
        """The counts the manifest's `sources` entry holds."""
        keep = ("read", "rows", "skipped", "ids_made", "ids_renamed", "turns_trimmed")
        return {k: getattr(self, k) for k in keep}


def _empty_source(
    source: ResolvedSource, counts: _SourceCounts, report: Path, several: bool
) -> str:
    """Why a source gave no row: its most common skip reason, with its fix (a guess at the
    layout would say less: records in a known layout are refused for their own reasons)."""
    label, given = source.source.label, source.source
    drop = f"fix it, or leave `{f'{given.name}=' if given.name else ''}{given.path}` out"
    if not several:
        drop = "fix the records, or import another source"
    if not counts.read:
        return f"source `{label}` ({source.path}) holds no records; {drop}"
    code, n = counts.codes.most_common(1)[0]
    return (
        f"source `{label}` ({source.path}) gave no rows: all {counts.skipped:,} of its records "
        f"were skipped, {n:,} as `{code}`, e.g. {counts.examples[code]}. Reasons per record in "
        f"{report}; {drop}"
    )


def _position(item: Item) -> str:
    """The id a record's position makes (`row-12`, `line-3`, `record-5`)."""
    return f"{item.kind}-{item.number}"


def _reject(
    req: ImportRequest, source: ResolvedSource, several: bool, item: Item, bad: InvalidRecord
) -> dict[str, Any]:
    """The report line of a bad record, or (`on_invalid="error"`) the UserError that stops."""
    try:
        rid = record_id(item.record) if isinstance(item.record, dict) else None
    except InvalidRecord:
        rid = None  # a blank or mistyped id: named by its position, as a record without one
    where = f"{item.kind} {item.number:,}"
    if item.shard and source.path.is_dir():
        where += f", {item.shard} row {item.shard_row:,}"
    if req.on_invalid == "error":
        what = f"record `{rid}` ({where})" if rid else where
        raise UserError(
            f"{source.path}: {what}: {bad.reason}. Fix the record, or pass "
            "--on-invalid skip to keep the good records and write a report "
            f"of the skipped ones to {Path(req.out) / SKIPPED_FILE}"
        ) from None
    entry: dict[str, Any] = {"id": rid} if rid else {"id": _position(item), "id_made": True}
    entry[item.kind] = item.number
    if item.shard and source.path.is_dir():
        entry |= {"shard": item.shard, "shard_row": item.shard_row}
    entry |= {"code": bad.code, "reason": bad.reason}
    if bad.count > 1:
        entry["records"] = bad.count
    if several:
        entry["source"] = str(source.path)
    return entry
