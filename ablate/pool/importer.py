"""Import LLaVA-style JSON / JSONL dialogues into a pool, validating every record.

Accepted record layouts:
- LLaVA / Ovis / MMDU: `{"id", "image": path | [paths], "conversations": [{"from": "human"|"gpt",
  "value": "...<image>..."}]}` with one `<image>` placeholder per image;
- Hugging Face: `{"id", "images": [paths], "messages": [{"role": "user"|"assistant", "content":
  str | [{"type": "image"} | {"type": "text", "text": ...}]}]}`, converted to the first layout.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.ipc as ipc

from ablate.errors import UserError
from ablate.pool.store import (
    BASE_SCHEMA,
    MANIFEST_FILE,
    POOL_FILE,
    SKIPPED_FILE,
    TASK_TYPE,
    PoolManifest,
    task_type_of,
)

IMAGE_TOKEN = "<image>"
UNKNOWN = "unknown"
"""Label of a record that lacks a label field some other record has."""

_HF_ROLES = {"user": "human", "assistant": "gpt"}


@dataclass(frozen=True)
class ImportRequest:
    """What `ablate data import` was asked to do."""

    source: Path
    """A JSON file holding a list of records, or a JSONL file (one record per line)."""
    out: Path
    """The pool folder to write (created; an existing pool there is replaced)."""
    image_root: Path | None = None
    """Folder relative image paths resolve against; default: the source file's folder."""
    on_invalid: Literal["error", "skip"] = "error"
    """`error`: stop at the first bad record; `skip`: keep the good ones, report the rest."""
    check_images: bool = True
    """Check that every image file exists (one stat per image)."""
    label_fields: tuple[str, ...] = ("domain", "skill", "subtopic", "source")
    """Record fields kept as label columns when present as scalar strings."""
    batch_rows: int = 10_000
    """Rows per Arrow record batch: bounds the memory of a JSONL import."""


class InvalidRecord(Exception):
    """One record failed validation; `code` is a stable short name, the message says why."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class _Row:
    id: str
    images: list[str]
    rel_images: list[str]
    conversations: list[dict[str, str]]
    n_turns: int
    labels: dict[str, str]


# --------------------------------------------------------------------------- reading


def _records(source: Path) -> Iterator[tuple[str, int, Any]]:
    """Yield (location kind, number, parsed record or InvalidRecord) in file order."""
    with source.open("rb") as fh:
        head = fh.read(4096).lstrip()
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:].lstrip()
    if head.startswith(b"["):
        # A JSON list has to be parsed whole; JSONL below streams line by line.
        try:
            data = json.loads(source.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as err:
            raise UserError(
                f"{source}: not valid JSON ({err}); fix the file or convert it to JSONL"
            ) from None
        for i, rec in enumerate(data, start=1):
            yield "record", i, rec
        return
    with source.open(encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield "line", n, json.loads(line)
            except json.JSONDecodeError as err:
                yield "line", n, InvalidRecord("bad_json", f"unparsable JSON line ({err})")


def _from_hf(rec: dict[str, Any]) -> dict[str, Any]:
    """Convert a Hugging Face `messages` + `images` record to the LLaVA layout."""
    turns = []
    for msg in rec["messages"]:
        if not isinstance(msg, dict):
            turns.append(msg)
            continue
        content = msg.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image":
                    parts.append(IMAGE_TOKEN)
                elif isinstance(part, dict) and part.get("type") == "text":
                    parts.append(str(part.get("text") or ""))
            content = "\n".join(p for p in parts if p)
        role = msg.get("role")
        turns.append({"from": _HF_ROLES.get(str(role), role), "value": content})
    out = {k: v for k, v in rec.items() if k not in ("messages", "images")}
    out["conversations"] = turns
    out["image"] = rec.get("images") or []
    return out


def _check(rec: Any, req: ImportRequest, image_root: Path) -> _Row:
    """Validate one record and return the row to store, or raise InvalidRecord."""
    if not isinstance(rec, dict):
        raise InvalidRecord("not_object", f"expected a JSON object, found {type(rec).__name__}")
    if "conversations" not in rec and isinstance(rec.get("messages"), list):
        rec = _from_hf(rec)
    rid = rec.get("id")
    if isinstance(rid, int) and not isinstance(rid, bool):
        rid = str(rid)
    if not isinstance(rid, str) or not rid.strip():
        raise InvalidRecord("missing_id", f"`id` must be a non-empty string, found {rid!r}")

    conv = rec.get("conversations")
    if not isinstance(conv, list):
        raise InvalidRecord(
            "bad_conversations", f"`conversations` must be a list, found {type(conv).__name__}"
        )
    if not conv:
        raise InvalidRecord("bad_conversations", "`conversations` is empty")
    turns: list[dict[str, str]] = []
    for i, turn in enumerate(conv):
        if not isinstance(turn, dict):
            raise InvalidRecord(
                "bad_conversations", f"turn {i} must be an object with `from` and `value`"
            )
        role, value = turn.get("from"), turn.get("value")
        if role not in ("human", "gpt"):
            raise InvalidRecord(
                "unknown_role", f"turn {i} has unknown role {role!r} (use human or gpt)"
            )
        expected = "human" if i % 2 == 0 else "gpt"
        if role != expected:
            raise InvalidRecord(
                "roles",
                f"roles must alternate human/gpt starting with human; turn {i} is {role}, expected {expected}",
            )
        if not isinstance(value, str) or not value.strip():
            raise InvalidRecord("empty_message", f"turn {i} ({role}) has an empty or null message")
        turns.append({"from": role, "value": value})
    if turns[-1]["from"] != "gpt":
        raise InvalidRecord("roles", "the last turn is human: a question without a gpt answer")

    raw = rec.get("image", rec.get("images"))
    paths = [] if raw is None else [raw] if isinstance(raw, str) else raw
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        raise InvalidRecord(
            "bad_image", f"`image` must be a path or a list of paths, found {raw!r}"
        )
    placeholders = sum(t["value"].count(IMAGE_TOKEN) for t in turns)
    if placeholders != len(paths):
        raise InvalidRecord(
            "image_count",
            f"{placeholders} {IMAGE_TOKEN} placeholder(s) but {len(paths)} image(s)",
        )
    images = [os.path.normpath(os.path.join(image_root, p)) for p in paths]
    if req.check_images:
        for p, full in zip(paths, images, strict=True):
            if not os.path.isfile(full):
                raise InvalidRecord("missing_image", f"image file not found: {full} (from {p!r})")
    # The fingerprint uses paths relative to the image root, so a pool imported on another
    # machine (other root, same data) has the same fingerprint and selects the same rows.
    rel = [Path(os.path.relpath(full, image_root)).as_posix() for full in images]

    labels = {}
    for name in req.label_fields:
        value = rec.get(name)
        if isinstance(value, str) and value.strip():
            labels[name] = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            labels[name] = str(value)
    n_turns = sum(t["from"] == "gpt" for t in turns)
    return _Row(rid, images, rel, turns, n_turns, labels)


# --------------------------------------------------------------------------- writing


def import_pool(req: ImportRequest, progress: Callable[[int], None] | None = None) -> PoolManifest:
    """Read `req.source`, validate every record, write `req.out/pool.arrow` + `manifest.json`.

    `progress(n)` is called after each batch with the number of records read so far.
    With `on_invalid="skip"`, `skipped.jsonl` gets one object per bad record:
    `{"id": ... or null, "line": N (JSONL) | "record": N (JSON list), "code": ..., "reason": ...}`.
    """
    source = Path(req.source).resolve()
    if not source.is_file():
        raise UserError(f"{req.source}: no such source file (a LLaVA-style JSON list or JSONL)")
    image_root = Path(req.image_root).resolve() if req.image_root else source.parent
    if req.image_root is not None and not image_root.is_dir():
        raise UserError(f"--image-root {req.image_root}: no such folder")
    reserved = [f for f in req.label_fields if f in BASE_SCHEMA.names]
    if reserved:
        raise UserError(
            f"label field(s) {', '.join(reserved)} clash with pool columns "
            f"({', '.join(BASE_SCHEMA.names)}); drop them from the label fields"
        )
    if req.on_invalid not in ("error", "skip"):
        raise UserError(f"--on-invalid must be error or skip, got {req.on_invalid!r}")
    out = Path(req.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder; choose another pool folder")
    if out.is_dir():
        foreign = [
            p.name for p in out.iterdir() if p.name not in (POOL_FILE, MANIFEST_FILE, SKIPPED_FILE)
        ]
        if foreign:
            raise UserError(
                f"--out {out}: the folder holds other files ({', '.join(sorted(foreign)[:3])}); "
                "give an empty or new folder, or an existing pool to replace"
            )
    made_out = not out.exists()
    out.mkdir(parents=True, exist_ok=True)

    # Write all requested label columns to a temporary file; columns no record had are dropped
    # when it is moved in place (the schema of a streaming writer is fixed up front).
    schema = BASE_SCHEMA
    for name in req.label_fields:
        schema = schema.append(pa.field(name, pa.string()))
    tmp = out / (POOL_FILE + ".tmp")
    tmp_skipped = out / (SKIPPED_FILE + ".tmp")
    hasher = hashlib.sha256()
    seen: set[str] = set()
    counts: dict[str, Counter[str]] = {name: Counter() for name in schema.names[5:]}
    present: set[str] = set()
    batch: list[_Row] = []
    read = rows = skipped = 0

    def flush(writer: ipc.RecordBatchFileWriter) -> None:
        columns: dict[str, list[Any]] = {
            "id": [r.id for r in batch],
            "images": [r.images for r in batch],
            "conversations": [r.conversations for r in batch],
            "n_images": [len(r.images) for r in batch],
            "n_turns": [r.n_turns for r in batch],
            TASK_TYPE: [task_type_of(len(r.images)) for r in batch],
        }
        for name in req.label_fields:
            columns[name] = [r.labels.get(name, UNKNOWN) for r in batch]
        writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=schema))
        batch.clear()

    try:
        with (
            ipc.new_file(str(tmp), schema) as writer,
            tmp_skipped.open("w", encoding="utf-8") as report,
        ):
            for kind, number, rec in _records(source):
                read += 1
                rid = rec.get("id") if isinstance(rec, dict) else None
                try:
                    if isinstance(rec, InvalidRecord):
                        raise rec
                    row = _check(rec, req, image_root)
                    if row.id in seen:
                        raise InvalidRecord("duplicate_id", f"duplicate id {row.id!r}")
                except InvalidRecord as bad:
                    if req.on_invalid == "error":
                        what = f"record `{rid}` ({kind} {number})" if rid else f"{kind} {number}"
                        raise UserError(
                            f"{source}: {what}: {bad.reason}. Fix the record, or pass "
                            "--on-invalid skip to keep the good records and write a report "
                            f"of the skipped ones to {out / SKIPPED_FILE}"
                        ) from None
                    skipped += 1
                    entry = {"id": rid if isinstance(rid, str | int) else None, kind: number}
                    entry |= {"code": bad.code, "reason": bad.reason}
                    report.write(json.dumps(entry, ensure_ascii=False) + "\n")
                    continue
                seen.add(row.id)
                rows += 1
                hasher.update(_row_digest_text(row).encode())
                counts[TASK_TYPE][task_type_of(len(row.images))] += 1
                for name in req.label_fields:
                    counts[name][row.labels.get(name, UNKNOWN)] += 1
                present.update(row.labels)
                batch.append(row)
                if len(batch) >= req.batch_rows:
                    flush(writer)
                    if progress:
                        progress(read)
            if batch:
                flush(writer)
            if progress:
                progress(read)
        if rows == 0:
            if skipped:
                tmp_skipped.replace(out / SKIPPED_FILE)
            raise UserError(
                f"{source}: no valid records ({skipped} skipped, reasons in {out / SKIPPED_FILE}); "
                "check the file layout (LLaVA-style `conversations`, or `messages`)"
            )
        keep = [n for n in schema.names if n in BASE_SCHEMA.names or n in present]
        _finish_table(tmp, out / POOL_FILE, keep)
    except BaseException:
        tmp.unlink(missing_ok=True)
        tmp_skipped.unlink(missing_ok=True)
        if made_out and not any(out.iterdir()):
            out.rmdir()
        raise

    skipped_path = out / SKIPPED_FILE
    if skipped:
        tmp_skipped.replace(skipped_path)
    else:
        tmp_skipped.unlink()
        skipped_path.unlink(missing_ok=True)
    manifest = PoolManifest(
        rows=rows,
        columns=tuple(keep),
        labels={name: dict(sorted(counts[name].items())) for name in keep if name in counts},
        fingerprint=hasher.hexdigest(),
        source=str(source),
        skipped=skipped,
        skipped_report=str(skipped_path.resolve()) if skipped else None,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        image_root=str(image_root),
    )
    manifest.save(out / MANIFEST_FILE)
    return manifest


def _row_digest_text(row: _Row) -> str:
    """The canonical text of one row for the pool fingerprint (one JSON line)."""
    conv = [[t["from"], t["value"]] for t in row.conversations]
    return json.dumps([row.id, conv, row.rel_images], ensure_ascii=False) + "\n"


def _finish_table(tmp: Path, final: Path, keep: list[str]) -> None:
    """Move the temporary file in place, dropping label columns that no record had."""
    with pa.memory_map(str(tmp), "r") as src:
        reader = ipc.open_file(src)
        if reader.schema.names == keep:
            tmp.replace(final)
            return
        schema = pa.schema([reader.schema.field(n) for n in keep])
        staged = final.with_suffix(".arrow.staged")
        with ipc.new_file(str(staged), schema) as writer:
            for i in range(reader.num_record_batches):
                writer.write_batch(reader.get_batch(i).select(keep))
    staged.replace(final)
    tmp.unlink()
