"""Import dialogue sources into one pool, validating and labelling every record.

Accepted record layouts (any source format, see `ablate.pool.readers`):
- LLaVA / Ovis / MMDU: `{"id", "image": path | [paths], "conversations": [{"from": "human"|"gpt",
  "value": "...<image>..."}]}` with one `<image>` placeholder per image (text-only: no `image`);
- Hugging Face: `{"id", "images": [paths], "messages": [{"role": "user"|"assistant", "content":
  str | [{"type": "image"} | {"type": "text", "text": ...}]}]}`, converted to the first layout.
  An image may also be a `{"bytes", "path"}` struct (a `datasets.Image` column): its path is used.

Every record read is either a row of the pool or a line of `skipped.jsonl` (or, with
`on_invalid="error"`, the reason the import stopped): `manifest.records_read == rows + skipped`.
Memory: one batch of rows (`batch_rows`) plus the set of ids seen (duplicate check, about
100 bytes per record: ~30 MB for 310k records) plus the reader's own bound.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.ipc as ipc

from ablate.errors import UserError
from ablate.pool.labels import (
    DEFAULT_TASK_TYPE_RULE,
    UNKNOWN,
    LabelError,
    LabelRule,
    parse_rule,
)
from ablate.pool.readers import FORMATS, InvalidRecord, detect_format, read_records
from ablate.pool.store import (
    BASE_SCHEMA,
    MANIFEST_FILE,
    POOL_FILE,
    SKIPPED_FILE,
    TASK_TYPE,
    PoolManifest,
)

__all__ = [
    "UNKNOWN",
    "ImportRequest",
    "InvalidRecord",
    "Source",
    "import_pool",
    "parse_source",
    "parse_turns",
]

IMAGE_TOKEN = "<image>"
SOURCE_LABEL = "source"
"""The label column naming each record's source in a combined pool."""
MAX_JOINT_COMBINATIONS = 100_000
"""Joint label counts are kept while the distinct label combinations stay below this."""

_HF_ROLES = {"user": "human", "assistant": "gpt"}


@dataclass(frozen=True)
class Source:
    """One input of an import: a file or folder, with the name it has in a combined pool."""

    path: Path
    """A JSON / JSONL / Parquet file, a saved Hugging Face dataset, or a `load_dataset` source."""
    name: str | None = None
    """The `source` label of its rows (default: the file name without suffix)."""
    format: str | None = None
    """Reader (see `ablate.pool.readers`); default: the request's `format`."""

    @property
    def label(self) -> str:
        return self.name or Path(self.path).stem


def parse_source(text: str) -> Source:
    """`PATH` or `NAME=PATH` (the `data import` positional arguments)."""
    name, sep, path = text.partition("=")
    if sep and name and not Path(text).exists() and "/" not in name:
        return Source(Path(path), name=name)
    return Source(Path(text))


def parse_turns(text: str | None) -> tuple[int | None, int | None]:
    """`--turns MIN:MAX` (either side may be empty; `N` alone means exactly N)."""
    if text is None:
        return (None, None)
    lo, sep, hi = text.partition(":")
    if not sep:
        hi = lo
    try:
        return (int(lo) if lo.strip() else None, int(hi) if hi.strip() else None)
    except ValueError:
        raise UserError(f"--turns {text!r}: expected MIN:MAX such as 4:8, 4: or :8") from None


@dataclass(frozen=True)
class ImportRequest:
    """What `ablate data import` was asked to do."""

    source: Path | str | Sequence[Source]
    """One path, or several `Source`s combined into one pool (rows in the order given)."""
    out: Path
    """The pool folder to write (created; an existing pool there is replaced)."""
    image_root: Path | None = None
    """Folder relative image paths resolve against; default: each source's folder."""
    on_invalid: Literal["error", "skip"] = "error"
    """`error`: stop at the first bad record; `skip`: keep the good ones, report the rest."""
    check_images: bool = True
    """Check that every image file exists (one stat per image)."""
    label_fields: tuple[str, ...] = ("domain", "skill", "subtopic", "source")
    """Record fields kept as label columns when some record has them as scalars."""
    batch_rows: int = 10_000
    """Rows per Arrow record batch: bounds the memory of an import."""
    format: str = "auto"
    """How to read a source: auto | json | jsonl | parquet | disk | dataset | a builder name."""
    split: str = "train"
    """The split of a Hugging Face source."""
    decode_images: bool = False
    """Also decode every image (Pillow `verify`): catches corrupt files, costs a read each."""
    allow_outside_root: bool = False
    """Accept absolute image paths and paths that leave the image root with `..`."""
    turns: tuple[int | None, int | None] = (None, None)
    """Allowed range of assistant turns per dialogue (inclusive; None = open)."""
    labels: tuple[tuple[str, str], ...] = ()
    """Declared label rules (name, rule), see `ablate.pool.labels`; `task_type` may be redefined."""

    def sources(self) -> list[Source]:
        if isinstance(self.source, str | Path):
            return [Source(Path(self.source))]
        return [s if isinstance(s, Source) else Source(Path(s)) for s in self.source]


@dataclass
class _Row:
    id: str
    images: list[str]
    rel_images: list[str]
    conversations: list[dict[str, str]]
    n_turns: int
    labels: dict[str, str]


@dataclass
class _Rules:
    """The label columns of one import, in column order."""

    rules: dict[str, LabelRule]
    implicit: set[str] = field(default_factory=set)
    """`label_fields` columns: dropped when no record has the field."""
    per_source: bool = False
    """`source` is the source's name (combined pool) rather than a rule."""

    @property
    def names(self) -> list[str]:
        names = list(self.rules)
        if self.per_source and SOURCE_LABEL not in names:
            names.append(SOURCE_LABEL)
        return names


def _build_rules(req: ImportRequest, combined: bool) -> _Rules:
    declared = dict(req.labels)
    if len(declared) != len(req.labels):
        dup = [n for n, _ in req.labels if sum(m == n for m, _ in req.labels) > 1]
        raise UserError(f"--label {dup[0]} is declared twice; give each label column once")
    reserved = [
        n for n in [*req.label_fields, *declared] if n in BASE_SCHEMA.names and n != TASK_TYPE
    ]
    if reserved:
        raise UserError(
            f"label name(s) {', '.join(reserved)} clash with pool columns "
            f"({', '.join(BASE_SCHEMA.names)}); choose other names"
        )
    rules = {TASK_TYPE: parse_rule(TASK_TYPE, declared.pop(TASK_TYPE, DEFAULT_TASK_TYPE_RULE))}
    implicit = set()
    per_source = combined and SOURCE_LABEL not in declared
    for name in req.label_fields:
        if name in declared or (per_source and name == SOURCE_LABEL):
            continue
        rules[name] = parse_rule(name, f"field:{name}", where="label_fields")
        implicit.add(name)
    for name, text in declared.items():
        rules[name] = parse_rule(name, text)
    return _Rules(rules, implicit, per_source)


# --------------------------------------------------------------------------- one record


def _json_struct(value: Any) -> Any:
    """A struct `datasets` stored as JSON text (its `arrow.json` type for mixed structs)."""
    if isinstance(value, str) and value.startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _from_hf(rec: dict[str, Any]) -> dict[str, Any]:
    """Convert a Hugging Face `messages` + `images` record to the LLaVA layout."""
    turns = []
    for msg in map(_json_struct, rec["messages"]):
        if not isinstance(msg, dict):
            turns.append(msg)
            continue
        content = msg.get("content")
        if isinstance(content, list):
            parts = []
            for part in map(_json_struct, content):
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


def _image_paths(raw: Any) -> list[str]:
    """The image paths of a record: a path, a list of paths, or `{"bytes", "path"}` structs."""
    items = [] if raw is None else [raw] if isinstance(raw, str | dict) else raw
    if not isinstance(items, list):
        raise InvalidRecord(
            "bad_image", f"`image` must be a path or a list of paths, found {raw!r}"
        )
    paths = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            path = item.get("path")
            if not (isinstance(path, str) and path):
                raise InvalidRecord(
                    "embedded_image",
                    f"image {i} is embedded bytes without a file path; write the images to "
                    "files and reference them by path",
                )
            item = path
        if not isinstance(item, str) or not item:
            raise InvalidRecord(
                "bad_image", f"`image` must be a path or a list of paths, found {raw!r}"
            )
        paths.append(item)
    return paths


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class _Checker:
    """Validates and labels records of one source."""

    def __init__(self, req: ImportRequest, image_root: Path, rules: _Rules, source: Source):
        self.req = req
        self.root = str(image_root)
        self.image_root = image_root
        self.rules = rules
        self.source_label = source.label
        self.verified: set[str] = set()

    def check(self, rec: Any) -> _Row:
        """Validate one record and return the row to store, or raise InvalidRecord."""
        req = self.req
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
                "bad_conversations",
                f"`conversations` must be a list, found {type(conv).__name__}",
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
                    f"roles must alternate human/gpt starting with human; turn {i} is {role}, "
                    f"expected {expected}",
                )
            if not isinstance(value, str) or not value.strip():
                raise InvalidRecord(
                    "empty_message", f"turn {i} ({role}) has an empty or null message"
                )
            turns.append({"from": role, "value": value})
        if turns[-1]["from"] != "gpt":
            raise InvalidRecord("roles", "the last turn is human: a question without a gpt answer")
        n_turns = len(turns) // 2
        lo, hi = req.turns
        if (lo is not None and n_turns < lo) or (hi is not None and n_turns > hi):
            rng = f"{'' if lo is None else lo}:{'' if hi is None else hi}"
            raise InvalidRecord(
                "turn_count",
                f"{n_turns} assistant turn(s), outside the declared range {rng} (--turns)",
            )

        paths = _image_paths(rec.get("image", rec.get("images")))
        placeholders = sum(t["value"].count(IMAGE_TOKEN) for t in turns)
        if placeholders != len(paths):
            raise InvalidRecord(
                "image_count",
                f"{placeholders} {IMAGE_TOKEN} placeholder(s) but {len(paths)} image(s)",
            )
        images = [os.path.normpath(os.path.join(self.root, p)) for p in paths]
        if not req.allow_outside_root:
            for p, full in zip(paths, images, strict=True):
                # An absolute path inside the root is fine (saved HF datasets store them).
                if not _inside(full, self.root):
                    kind = "is absolute and outside" if os.path.isabs(p) else "leaves"
                    raise InvalidRecord(
                        "outside_root",
                        f"image path {p!r} {kind} the image root {self.root}; pass "
                        "--allow-outside-root to accept it, or set --image-root to a folder above it",
                    )
        if req.check_images or req.decode_images:
            for p, full in zip(paths, images, strict=True):
                if not os.path.isfile(full):
                    raise InvalidRecord(
                        "missing_image", f"image file not found: {full} (from {p!r})"
                    )
        if req.decode_images:
            for full in images:
                self._decode(full)
        # The fingerprint uses paths relative to the image root, so a pool imported on another
        # machine (other root, same data) has the same fingerprint and selects the same rows.
        cut = len(self.root.rstrip(os.sep)) + 1
        rel = [
            full[cut:] if _inside(full, self.root) else os.path.relpath(full, self.root)
            for full in images
        ]

        labels = {}
        for name, rule in self.rules.rules.items():
            try:
                labels[name] = rule.apply(rec, len(paths), n_turns)
            except LabelError as err:
                raise InvalidRecord("unlabelled", str(err)) from None
        if self.rules.per_source:
            labels[SOURCE_LABEL] = self.source_label
        return _Row(rid, images, rel, turns, n_turns, labels)

    def _decode(self, full: str) -> None:
        if full in self.verified:
            return
        from PIL import Image

        try:
            with Image.open(full) as im:
                im.verify()
        except Exception as err:  # Pillow raises many kinds for a corrupt file
            raise InvalidRecord(
                "bad_image_file", f"cannot decode image {full}: {type(err).__name__}: {err}"
            ) from None
        self.verified.add(full)


# --------------------------------------------------------------------------- writing


def import_pool(req: ImportRequest, progress: Callable[[int], None] | None = None) -> PoolManifest:
    """Read every source, validate and label every record, write `pool.arrow` + `manifest.json`.

    `progress(n)` is called after each batch with the number of records read so far.
    With `on_invalid="skip"`, `skipped.jsonl` gets one object per bad record:
    `{"id": ... or null, "line": N (JSONL) | "record": N (JSON list) | "row": N (tables),
    "code": ..., "reason": ...}` plus `"source": PATH` when several sources are combined.
    """
    sources = req.sources()
    if not sources:
        raise UserError("give at least one source to import")
    combined = len(sources) > 1 or any(s.name for s in sources)
    names = [s.label for s in sources]
    if len(set(names)) != len(names):
        raise UserError(f"source names {', '.join(names)} repeat; name each source: NAME=PATH")
    resolved = []
    for s in sources:
        path = Path(s.path).resolve()
        fmt = s.format or req.format
        if not path.exists():
            raise UserError(f"{s.path}: no such source file (a LLaVA-style JSON list or JSONL)")
        if path.is_file() is False and fmt in ("json", "jsonl", "parquet"):
            raise UserError(f"{s.path}: is a folder, not a {fmt} file")
        if fmt not in FORMATS and not fmt.isidentifier():
            raise UserError(f"--format {fmt!r}: use one of {', '.join(FORMATS)} or a builder name")
        resolved.append((s, path, detect_format(path, fmt)))
    if req.image_root is not None and not Path(req.image_root).is_dir():
        raise UserError(f"--image-root {req.image_root}: no such folder")
    if req.on_invalid not in ("error", "skip"):
        raise UserError(f"--on-invalid must be error or skip, got {req.on_invalid!r}")
    lo, hi = req.turns
    if (lo is not None and lo < 1) or (lo is not None and hi is not None and hi < lo):
        raise UserError(f"--turns {lo}:{hi}: expected MIN:MAX with 1 <= MIN <= MAX")
    rules = _build_rules(req, combined)
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

    # Write every label column to a temporary file; implicit field columns no record had are
    # dropped when it is moved in place (the schema of a streaming writer is fixed up front).
    label_names = rules.names
    schema = BASE_SCHEMA
    for name in label_names[1:]:  # label_names[0] is task_type, a BASE_SCHEMA column
        schema = schema.append(pa.field(name, pa.string()))
    tmp = out / (POOL_FILE + ".tmp")
    tmp_skipped = out / (SKIPPED_FILE + ".tmp")
    hasher = hashlib.sha256()
    seen: set[str] = set()
    combos: Counter[tuple[str, ...]] | None = Counter()
    present: set[str] = set()
    batch: list[_Row] = []
    read = rows = skipped = 0
    per_source: list[dict[str, Any]] = []

    def flush(writer: ipc.RecordBatchFileWriter) -> None:
        columns: dict[str, list[Any]] = {
            "id": [r.id for r in batch],
            "images": [r.images for r in batch],
            "conversations": [r.conversations for r in batch],
            "n_images": [len(r.images) for r in batch],
            "n_turns": [r.n_turns for r in batch],
        }
        for name in label_names:
            columns[name] = [r.labels[name] for r in batch]
        writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=schema))
        batch.clear()

    try:
        with (
            ipc.new_file(str(tmp), schema) as writer,
            tmp_skipped.open("w", encoding="utf-8") as report,
        ):
            for source, path, fmt in resolved:
                image_root = (
                    Path(req.image_root).resolve()
                    if req.image_root
                    else (path if path.is_dir() else path.parent)
                )
                checker = _Checker(req, image_root, rules, source)
                prefix = f"{source.label}/" if len(resolved) > 1 else ""
                s_read = s_rows = s_skipped = 0
                for kind, number, rec in read_records(path, fmt, req.split):
                    read += 1
                    s_read += 1
                    rid = rec.get("id") if isinstance(rec, dict) else None
                    try:
                        if isinstance(rec, InvalidRecord):
                            raise rec
                        row = checker.check(rec)
                        row.id = prefix + row.id
                        if row.id in seen:
                            raise InvalidRecord("duplicate_id", f"duplicate id {row.id!r}")
                    except InvalidRecord as bad:
                        if req.on_invalid == "error":
                            what = (
                                f"record `{rid}` ({kind} {number})" if rid else f"{kind} {number}"
                            )
                            raise UserError(
                                f"{path}: {what}: {bad.reason}. Fix the record, or pass "
                                "--on-invalid skip to keep the good records and write a report "
                                f"of the skipped ones to {out / SKIPPED_FILE}"
                            ) from None
                        skipped += 1
                        s_skipped += 1
                        entry: dict[str, Any] = {
                            "id": rid if isinstance(rid, str | int) else None,
                            kind: number,
                        }
                        entry |= {"code": bad.code, "reason": bad.reason}
                        if len(resolved) > 1:
                            entry["source"] = str(path)
                        report.write(json.dumps(entry, ensure_ascii=False) + "\n")
                        continue
                    seen.add(row.id)
                    rows += 1
                    s_rows += 1
                    hasher.update(_row_digest_text(row).encode())
                    if combos is not None:
                        combos[tuple(row.labels[n] for n in label_names)] += 1
                        if len(combos) > MAX_JOINT_COMBINATIONS:
                            combos = None  # too many distinct labels for joint counts
                    present.update(n for n in rules.implicit if row.labels[n] != UNKNOWN)
                    batch.append(row)
                    if len(batch) >= req.batch_rows:
                        flush(writer)
                        if progress:
                            progress(read)
                per_source.append(
                    {
                        "path": str(path),
                        "name": source.label,
                        "format": fmt,
                        "image_root": str(image_root),
                        "read": s_read,
                        "rows": s_rows,
                        "skipped": s_skipped,
                    }
                )
            if batch:
                flush(writer)
            if progress:
                progress(read)
        if rows == 0:
            if skipped:
                tmp_skipped.replace(out / SKIPPED_FILE)
            where = ", ".join(str(p) for _, p, _ in resolved)
            raise UserError(
                f"{where}: no valid records ({skipped} skipped, reasons in {out / SKIPPED_FILE}); "
                "check the file layout (LLaVA-style `conversations`, or `messages`)"
            )
        keep_labels = [n for n in label_names if n not in rules.implicit or n in present]
        keep = [n for n in schema.names if n in BASE_SCHEMA.names or n in keep_labels]
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
    taxonomies = [n for n in keep if n in keep_labels]
    counts = _label_counts(combos, label_names, taxonomies) if combos is not None else None
    if counts is None:  # recount from the written table when joint counts were given up
        counts = _count_from_table(out / POOL_FILE, taxonomies)
    labels, joint = counts
    rule_texts = {n: rules.rules[n].text for n in taxonomies if n in rules.rules}
    if rules.per_source:
        rule_texts[SOURCE_LABEL] = "the source's name"
    lo, hi = req.turns
    manifest = PoolManifest(
        rows=rows,
        columns=tuple(keep),
        labels=labels,
        fingerprint=hasher.hexdigest(),
        source=" + ".join(str(p) for _, p, _ in resolved),
        skipped=skipped,
        skipped_report=str(skipped_path.resolve()) if skipped else None,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        image_root=per_source[0]["image_root"],
        records_read=read,
        sources=tuple(per_source),
        rules=rule_texts,
        joint=joint,
        checks={
            "images_exist": req.check_images or req.decode_images,
            "images_decoded": req.decode_images,
            "allow_outside_root": req.allow_outside_root,
            "turns": f"{'' if lo is None else lo}:{'' if hi is None else hi}",
        },
    )
    manifest.save(out / MANIFEST_FILE)
    return manifest


Joint = dict[str, dict[str, dict[str, dict[str, int]]]]


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


def _row_digest_text(row: _Row) -> str:
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
        staged = final.with_suffix(".arrow.staged")
        with ipc.new_file(str(staged), schema) as writer:
            for i in range(reader.num_record_batches):
                writer.write_batch(reader.get_batch(i).select(keep))
    staged.replace(final)
    tmp.unlink()
