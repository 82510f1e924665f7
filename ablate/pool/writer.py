"""Write one import: rows to `pool.arrow`, skipped records to `skipped.jsonl`, then `manifest.json`.

Rows and report lines go to temporary files first, moved in place only when the import succeeds,
so a failed import leaves an existing pool in the folder as it was. Memory: one batch of rows
(`batch_rows`) plus the joint label counts (at most `MAX_JOINT_COMBINATIONS` entries).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.ipc as ipc

from ablate.config import RAY_IGNORE_FILE, keep_out_of_ray_uploads, writable_folder
from ablate.errors import UserError
from ablate.pool.images import STORE_DIR
from ablate.pool.labels import SOURCE_LABEL, UNKNOWN, LabelColumns
from ablate.pool.records import Row
from ablate.pool.request import ImportRequest, ResolvedSource, turns_text
from ablate.pool.store import BASE_SCHEMA, MANIFEST_FILE, POOL_FILE, SKIPPED_FILE, PoolManifest

#: A failed import's reasons, beside a pool that was already there (see `failed_report`).
FAILED_FILE = "skipped.failed.jsonl"

__all__ = ["MAX_JOINT_COMBINATIONS", "TMP_FILES", "PoolWriter", "claim_out"]

MAX_JOINT_COMBINATIONS = 100_000
"""Joint label counts are kept while the distinct label combinations stay below this."""

Joint = dict[str, dict[str, dict[str, dict[str, int]]]]


#: What an import writes before it is done (`PoolWriter`, `_finish_table`): the only files of a
#: killed import (SIGKILL, a lost node) left in its folder; the next import there removes them.
TMP_FILES = (POOL_FILE + ".tmp", SKIPPED_FILE + ".tmp", POOL_FILE + ".staged")


@contextmanager
def claim_out(out: Path) -> Iterator[bool]:
    """Create the pool folder `out` and hold it for one import (an exclusive `flock` on the
    folder), refusing a file, a folder of other files or one another import holds; a killed
    import's `TMP_FILES` are removed. Yields True when the folder was made now, or by a killed
    import (a failed import removes it again)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder; choose another pool folder")
    left = {p.name for p in out.iterdir()} if out.is_dir() else set()
    ours = {POOL_FILE, MANIFEST_FILE, SKIPPED_FILE, FAILED_FILE, STORE_DIR, RAY_IGNORE_FILE}
    if foreign := sorted(left - ours - set(TMP_FILES)):
        raise UserError(
            f"--out {out}: the folder holds other files ({', '.join(foreign[:3])}); "
            "give an empty or new folder, or an existing pool to replace"
        )
    # a folder of a killed import's files only (with its images) counts as new, as it was then
    made_out = not out.exists() or (bool(left & set(TMP_FILES)) and left <= {*TMP_FILES, STORE_DIR})
    writable_folder(out, "pool")
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when fd closes
        except BlockingIOError:
            raise UserError(
                f"--out {out}: another `ablate data import` is writing into this folder; wait "
                "for it to finish, or give another folder"
            ) from None
        except OSError:  # a file system without locks on folders (some NFS): as before
            pass
        for name in TMP_FILES:  # not another import's: this one holds the folder
            (out / name).unlink(missing_ok=True)
        yield made_out
    finally:
        os.close(fd)


class PoolWriter:
    """Streams the rows of one import into a pool folder, hashing and counting them on the way.

    Use: `with writer.open():` `add` each valid row and `skip` each bad record, then `finish`
    (or `discard` on failure), then `manifest`.
    """

    def __init__(self, out: Path, columns: LabelColumns, batch_rows: int) -> None:
        self.out = out
        self.columns = columns
        self.batch_rows = batch_rows
        # Every label column is written to the temporary file; implicit field columns no record
        # had are dropped when it is moved in place (a streaming writer's schema is fixed).
        self.label_names = columns.names
        schema = BASE_SCHEMA
        for name in self.label_names[1:]:  # label_names[0] is task_type, a BASE_SCHEMA column
            schema = schema.append(pa.field(name, pa.string()))
        self.schema = schema
        self.tmp = out / TMP_FILES[0]
        self.tmp_skipped = out / TMP_FILES[1]
        # where a failing import leaves its reasons: beside a pool already there, a file of
        # its own (that pool's `skipped.jsonl` is its manifest's record, not this import's)
        failed = FAILED_FILE if (out / MANIFEST_FILE).is_file() else SKIPPED_FILE
        self.failed_report = out / failed
        self.hasher = hashlib.sha256()
        self.combos: Counter[tuple[str, ...]] | None = Counter()
        self.present: set[str] = set()
        """Implicit label columns some row has a value for."""
        self.batch: list[Row] = []
        self.rows = 0
        self.skipped = 0
        self.keep: list[str] = []
        """The columns of `pool.arrow`, once finished."""
        self._writer: ipc.RecordBatchFileWriter | None = None
        self._report: IO[str] | None = None

    @contextmanager
    def open(self) -> Iterator[None]:
        """Open the temporary table and report for `add`, `skip` and `flush`; close them after."""
        with (
            ipc.new_file(str(self.tmp), self.schema) as writer,
            self.tmp_skipped.open("w", encoding="utf-8") as report,
        ):
            self._writer, self._report = writer, report
            try:
                yield
            finally:
                self._writer = self._report = None

    def add(self, row: Row) -> bool:
        """Append a valid row; True when it completed a batch (then written)."""
        self.rows += 1
        self.hasher.update(_row_digest_text(row).encode())
        if self.combos is not None:
            self.combos[tuple(row.labels[n] for n in self.label_names)] += 1
            if len(self.combos) > MAX_JOINT_COMBINATIONS:
                self.combos = None  # too many distinct labels for joint counts
        self.present.update(n for n in self.columns.implicit if row.labels[n] != UNKNOWN)
        self.batch.append(row)
        if len(self.batch) >= self.batch_rows:
            self.flush()
            return True
        return False

    def skip(self, entry: dict[str, Any], records: int = 1) -> None:
        """Report one bad record, or `records` lost together (a line of `skipped.jsonl`)."""
        assert self._report is not None, "skip() outside open()"
        self.skipped += records
        self._report.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def flush(self) -> None:
        """Write the rows added since the last batch (none: nothing)."""
        if not self.batch:
            return
        assert self._writer is not None, "flush() outside open()"
        batch = self.batch
        columns: dict[str, list[Any]] = {
            "id": [r.id for r in batch],
            "images": [r.images for r in batch],
            "conversations": [r.conversations for r in batch],
            "n_images": [len(r.images) for r in batch],
            "n_turns": [r.n_turns for r in batch],
        }
        for name in self.label_names:
            columns[name] = [r.labels[name] for r in batch]
        self._writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=self.schema))
        batch.clear()

    def publish_report(self) -> None:
        """Put the report written so far in place as `skipped.jsonl` (for a failing import,
        which then leaves it behind: the reasons)."""
        assert self._report is not None, "publish_report() outside open()"
        if self.skipped:
            self._report.flush()
            self.tmp_skipped.replace(self.failed_report)

    def finish(self, sources: Sequence[ResolvedSource]) -> None:
        """Move the table in place, without the implicit label columns no row had a value for."""
        if self.rows == 0:
            if self.skipped:
                self.tmp_skipped.replace(self.failed_report)
            where = ", ".join(str(s.path) for s in sources)
            raise UserError(
                f"{where}: no valid records ({self.skipped} skipped, reasons in "
                f"{self.failed_report}); check the file layout (LLaVA-style `conversations`, "
                "or `messages`)"
            )
        keep_labels = self._kept_labels()
        self.keep = [n for n in self.schema.names if n in BASE_SCHEMA.names or n in keep_labels]
        _finish_table(self.tmp, self.out / POOL_FILE, self.keep)

    def discard(self, made_out: bool) -> None:
        """Remove the temporary files (and the pool folder when this import made it, empty)."""
        self.tmp.unlink(missing_ok=True)
        self.tmp_skipped.unlink(missing_ok=True)
        if made_out and not any(self.out.iterdir()):
            self.out.rmdir()

    def manifest(
        self, req: ImportRequest, sources: Sequence[ResolvedSource], summaries: list[dict[str, Any]]
    ) -> PoolManifest:
        """Publish the skipped report (or remove a stale one) and describe the finished pool.

        `summaries`: per source, its entry of `PoolManifest.sources`.
        """
        skipped_path = self.out / SKIPPED_FILE
        (self.out / FAILED_FILE).unlink(missing_ok=True)  # an earlier failed import's reasons
        if self.skipped:
            self.tmp_skipped.replace(skipped_path)
        else:
            self.tmp_skipped.unlink()
            skipped_path.unlink(missing_ok=True)
        keep_out_of_ray_uploads(self.out)
        labels, joint, taxonomies = self._counts()
        rule_texts = {n: self.columns.rules[n].text for n in taxonomies if n in self.columns.rules}
        if self.columns.per_source:
            rule_texts[SOURCE_LABEL] = "the source's name"
        return PoolManifest(
            rows=self.rows,
            columns=tuple(self.keep),
            labels=labels,
            fingerprint=self.hasher.hexdigest(),
            source=" + ".join(str(s.path) for s in sources),
            skipped=self.skipped,
            skipped_report=str(skipped_path.resolve()) if self.skipped else None,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            image_root=summaries[0]["image_root"],
            records_read=sum(s["read"] for s in summaries),
            ids_made=sum(s["ids_made"] for s in summaries),
            ids_renamed=sum(s["ids_renamed"] for s in summaries),
            turns_trimmed=sum(s["turns_trimmed"] for s in summaries),
            sources=tuple(summaries),
            rules=rule_texts,
            joint=joint,
            checks={
                "images_exist": req.check_images or req.decode_images,
                "images_decoded": req.decode_images,
                "allow_outside_root": req.allow_outside_root,
                "turns": turns_text(req.turns),
                "duplicate_ids": req.duplicate_ids,
            },
        )

    def _kept_labels(self) -> list[str]:
        implicit = self.columns.implicit
        return [n for n in self.label_names if n not in implicit or n in self.present]

    def _counts(self) -> tuple[dict[str, dict[str, int]], Joint, list[str]]:
        """Label counts per taxonomy, joint counts, and the taxonomies (kept label columns)."""
        keep_labels = self._kept_labels()
        taxonomies = [n for n in self.keep if n in keep_labels]
        if self.combos is not None:
            labels, joint = _label_counts(self.combos, self.label_names, taxonomies)
        else:  # recount from the written table when joint counts were given up
            labels, joint = _count_from_table(self.out / POOL_FILE, taxonomies)
        return labels, joint, taxonomies


def _label_counts(
    combos: Mapping[tuple[str, ...], int], names: list[str], keep: list[str]
) -> tuple[dict[str, dict[str, int]], Joint]:
    """Counts per label of each taxonomy, and joint counts for every ordered pair of them."""
    idx = {n: names.index(n) for n in keep}
    labels: dict[str, Counter[str]] = {n: Counter() for n in keep}
    joint: dict[str, dict[str, dict[str, Counter[str]]]] = {
        a: {b: {} for b in keep if b != a} for a in keep
    }
    for combo, n in combos.items():
        for a in keep:
            la = combo[idx[a]]
            labels[a][la] += n
            for b in keep:
                if b != a:
                    joint[a][b].setdefault(la, Counter())[combo[idx[b]]] += n
    return (
        {a: dict(sorted(c.items())) for a, c in labels.items()},
        {
            a: {
                b: {la: dict(sorted(c.items())) for la, c in sorted(t.items())}
                for b, t in bs.items()
            }
            for a, bs in joint.items()
        },
    )


def _count_from_table(path: Path, keep: list[str]) -> tuple[dict[str, dict[str, int]], Joint]:
    import pyarrow.compute as pc

    with pa.memory_map(str(path), "r") as src:
        table = ipc.open_file(src).read_all()
        labels = {}
        for n in keep:
            vc = pc.value_counts(table.column(n)).to_pylist()
            labels[n] = dict(sorted((d["values"], d["counts"]) for d in vc))
    return labels, {}


def _row_digest_text(row: Row) -> str:
    """The canonical text of one row for the pool fingerprint (one JSON line)."""
    conv = [[t["from"], t["value"]] for t in row.conversations]
    return json.dumps([row.id, conv, row.rel_images], ensure_ascii=False) + "\n"


def _finish_table(tmp: Path, final: Path, keep: list[str]) -> None:
    """Move the temporary file in place, in column order `keep` (dropping unused labels).

    Read batch by batch from a plain file (not a memory map), so the pages read do not add up
    in this process's resident memory.
    """
    with pa.OSFile(str(tmp), "r") as src:
        reader = ipc.open_file(src)
        if reader.schema.names == keep:
            tmp.replace(final)
            return
        schema = pa.schema([reader.schema.field(n) for n in keep])
        staged = final.with_name(TMP_FILES[2])
        with ipc.new_file(str(staged), schema) as writer:
            for i in range(reader.num_record_batches):
                writer.write_batch(reader.get_batch(i).select(keep))
    staged.replace(final)
    tmp.unlink()
