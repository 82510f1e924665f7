"""Read dialogue records from a source, one at a time, in bounded memory.

Formats (`--format`, default `auto`):

- `json`: one JSON array of records, parsed record by record (memory: one record plus a 1 MiB
  read buffer, whatever the file's size), or JSONL when the file does not start with `[`;
- `jsonl`: one record per line (also `.ndjson`);
- `parquet`: a Parquet file, or a folder of Parquet shards as a dataset repository lays them
  out (`data/train-00000-of-00004.parquet`, ...: the `--split`'s shards, in order), read in
  record batches (`ablate.pool.parquet`);
- `disk`: a Hugging Face dataset saved with `save_to_disk` (`datasets.load_from_disk`);
- any other name is a `datasets.load_dataset` builder (`csv`, `arrow`, `parquet`, `json`,
  `webdataset`, ...) or `dataset` for `load_dataset(PATH)` itself, read in streaming mode.

`auto` picks by the path: a folder with `dataset_info.json` or `state.json` -> `disk`, a folder
holding `.parquet` files -> `parquet` (a hub snapshot), another folder -> `dataset`; `.parquet` -> `parquet`; `.jsonl`/`.ndjson` -> `jsonl`; `.json` -> `json`;
`.csv`/`.tsv`/`.arrow` -> that builder. A JSON or JSONL file compressed with gzip, bzip2 or xz
(`train.jsonl.gz`, as many instruction sets are published) is read through its decompressor,
still a record at a time: the format is that of the name without `.gz`/`.bz2`/`.xz`.

Each reader yields `Item`s (location kind, number, record or InvalidRecord): kind `line` (JSONL,
1-based line number), `record` (JSON array, 1-based) or `row` (tabular sources, 1-based, counted
on across the shards of a sharded source; `Item.shard` / `shard_row` say which file and row).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TextIO

import pyarrow as pa

from ablate.errors import UserError, did_you_mean
from ablate.pool.items import InvalidRecord, Item
from ablate.pool.parquet import parquet_shards, read_parquet, split_files
from ablate.pool.records import LAYOUT_KEYS

CHUNK = 1 << 20
"""Bytes per read of a JSON array: the bound on the parser's buffer beyond one record."""

_WS = re.compile(r"[ \t\n\r]*")

FORMATS = ("auto", "json", "jsonl", "parquet", "disk", "dataset")

#: Compressed files by their magic bytes, each read through its decompressor (streaming).
COMPRESSED: dict[bytes, tuple[str, Callable[..., Any]]] = {
    b"\x1f\x8b": ("gzip", gzip.open),
    b"BZh": ("bzip2", bz2.open),
    b"\xfd7zXZ\x00": ("xz", lzma.open),
}
#: What a damaged compressed stream raises while it is read.
_DAMAGED = (EOFError, gzip.BadGzipFile, lzma.LZMAError, OSError, ValueError)


def detect_format(path: Path, fmt: str = "auto") -> str:
    """The reader a path needs (see the module docstring)."""
    if fmt != "auto":
        return fmt
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
            return "disk"
        return "parquet" if next(path.rglob("*.parquet"), None) else "dataset"
    suffix = path.suffix.lower()
    if suffix in (".gz", ".bz2", ".xz"):
        suffix = Path(path.stem).suffix.lower()  # train.jsonl.gz: a compressed .jsonl
    return {
        ".parquet": "parquet",
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
        ".csv": "csv",
        ".tsv": "csv",
        ".arrow": "arrow",
    }.get(suffix, "json")


def read_records(path: Path, fmt: str = "auto", split: str = "train") -> Iterator[Item]:
    """Yield the records of one source in file order (see the module docstring)."""
    if split != "train" and path.is_file():  # (it was ignored silently; review q#14)
        raise UserError(
            f"--split {split}: {path} is one file, which holds no splits; drop --split (it "
            "picks a split of a dataset folder or a Hugging Face dataset)"
        )
    fmt = detect_format(path, fmt)
    if fmt in ("json", "jsonl"):
        return _read_json(path, array_allowed=fmt == "json")
    if fmt == "parquet":
        return read_parquet(path, split)
    return _read_hf(path, fmt, split)


def count_records(path: Path, fmt: str = "auto", split: str = "train") -> int | None:
    """The records of a source when known before reading (Parquet footers), else None."""
    if detect_format(path, fmt) == "parquet":
        return sum(shard.rows for shard in parquet_shards(path, split))
    return None


def source_files(path: Path, fmt: str = "auto", split: str = "train") -> list[str] | None:
    """The files a source reads (relative to a folder source), for the manifest; None when
    the reader does not say (`disk`, `dataset`, builders)."""
    fmt = detect_format(path, fmt)
    if fmt == "parquet" and path.is_dir():
        return [str(p.relative_to(path)) for p in split_files(path, split)]
    return [path.name] if fmt in ("json", "jsonl", "parquet") else None


def _check_text_start(path: Path, head: bytes) -> None:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError(
            f"{path}: the file is UTF-16 text; convert it to UTF-8 "
            f"(e.g. iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix})"
        )


def _open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when it starts with a compressor's magic bytes."""
    with path.open("rb") as fh:
        magic = fh.read(6)
    for prefix, (_, opener) in COMPRESSED.items():
        if magic.startswith(prefix):
            return opener(path, "rb")
    return path.open("rb")


def _open_text(path: Path) -> TextIO:
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", newline="")


def _damaged(path: Path, err: BaseException, where: str) -> UserError:
    """A compressed file whose stream breaks off (a cut download): the records before `where`
    were read; nothing after can be."""
    with path.open("rb") as fh:
        magic = fh.read(6)
    kind = next((k for p, (k, _) in COMPRESSED.items() if magic.startswith(p)), "")
    if not kind:  # a plain file's OSError is not a decompression fault
        raise err
    return UserError(
        f"{path}: the {kind} stream is damaged or cut short after {where} ({err}); download "
        f"or compress the file again (`{kind} -t {path.name}` tests it)"
    )


def _read_json(path: Path, array_allowed: bool) -> Iterator[Item]:
    try:
        with _open_binary(path) as fh:
            head = fh.read(4096)
    except _DAMAGED as err:
        raise _damaged(path, err, "its start") from None
    _check_text_start(path, head)
    stripped = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if array_allowed and stripped.startswith(b"["):
        yield from _read_json_array(path)
        return
    if array_allowed and stripped.startswith(b"{"):
        _refuse_wrapped(path)
    yield from _read_jsonl(path)


def _read_jsonl(path: Path) -> Iterator[Item]:
    """Line by line in binary, decoding each line, so a bad byte costs one line, not the file."""
    with _open_binary(path) as fh:
        for n, raw in _numbered_lines(path, fh):
            if n == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield Item(
                    "line",
                    n,
                    InvalidRecord(
                        "bad_encoding",
                        f"not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                        "re-encode the file as UTF-8",
                    ),
                )
                continue
            try:
                yield Item("line", n, json.loads(line))
            except json.JSONDecodeError as err:
                truncated = not raw.endswith(b"\n")
                hint = (
                    "; the last line has no newline: the file looks truncated" if truncated else ""
                )
                yield Item(
                    "line", n, InvalidRecord("bad_json", f"unparsable JSON line ({err}){hint}")
                )


def _numbered_lines(path: Path, fh: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    n = 0
    try:
        for n, raw in enumerate(fh, start=1):
            yield n, raw
    except _DAMAGED as err:
        raise _damaged(path, err, f"line {n:,}") from None


def _read_json_array(path: Path) -> Iterator[Item]:
    """Stream the elements of one top-level JSON array with `raw_decode`, a chunk at a time.

    Memory: the text of the element being parsed plus one chunk. A syntax error inside the
    array is a file-level error (the parser cannot find the next element reliably).
    """
    with _open_text(path) as fh:
        text = _ArrayText(path, fh)
        if text.skip_ws() != "[":
            raise UserError(f"{path}: expected a JSON array starting with `[`")
        n = 0
        for n, value in enumerate(_array_values(text), start=1):
            yield Item("record", n, value)
        if text.skip_ws():
            raise UserError(
                f"{path}: text after the closing `]` of the JSON array "
                f"(character {text.at:,}); a file holds one array"
            )


def _array_values(text: _ArrayText) -> Iterator[Any]:
    """The elements of the JSON array at the parse position (at its `[`), one at a time."""
    text.pos += 1
    n = 0
    while True:
        c = text.skip_ws()
        if not c:
            raise UserError(
                f"{text.path}: the JSON array ends after {n:,} records without its closing `]`: "
                "the file looks truncated"
            )
        if c == "]":
            text.pos += 1
            return
        if n:
            if c != ",":
                raise UserError(
                    f"{text.path}: expected `,` or `]` after record {n:,} "
                    f"(character {text.at:,}); fix the JSON"
                )
            text.pos += 1
            text.skip_ws()
        n += 1
        yield text.decode(record=n)


def _refuse_wrapped(path: Path) -> None:
    """Refuse a `.json` file that is one object holding the records (`{"data": [...]}`).

    Read key by key, a list element at a time (bounded memory); a file that turns out to be
    JSONL (more values follow), one record (it has a layout's key) or an object without a list
    of objects passes (each is then a record, refused or not on its own)."""
    keys: list[str] = []
    lists: list[str] = []
    with _open_text(path) as fh:
        text = _ArrayText(path, fh)
        try:
            text.skip_ws()
            text.pos += 1  # the `{`
            while (c := text.skip_ws()) != "}":
                if keys:
                    if c != ",":
                        return  # not one JSON object: the JSONL reader names the fault
                    text.pos += 1
                    text.skip_ws()
                keys.append(str(text.decode(record=1)))
                if text.skip_ws() != ":":
                    return
                text.pos += 1
                if text.skip_ws() == "[":
                    objects = [isinstance(v, dict) for v in _array_values(text)]  # read it all
                    if any(objects):
                        lists.append(keys[-1])
                else:
                    text.decode(record=1)
            text.pos += 1
            if text.skip_ws() or set(keys) & set(LAYOUT_KEYS.values()) or not lists:
                return  # JSONL, or a file of one record
        except UserError:
            return  # not valid JSON: the JSONL reader reports each bad line
    where = f"`{lists[0]}`" if len(lists) == 1 else ", ".join(f"`{k}`" for k in lists)
    raise UserError(
        f"{path}: the JSON top level is an object, not an array of records; its list of "
        f"records is under {where}. Write that list to its own file (e.g. "
        f"`jq '.{lists[0]}' {path.name} > records.json`) and import that"
    )


class _ArrayText:
    """The text of a JSON array file read a chunk at a time: `buf[pos:]` is still to parse."""

    def __init__(self, path: Path, fh: TextIO) -> None:
        self.path = path
        self.fh = fh
        self.decoder = json.JSONDecoder()
        self.buf = ""
        self.pos = 0  # parse position in buf
        self.base = 0  # characters dropped before buf[0], for messages
        self.eof = False

    @property
    def at(self) -> int:
        """The 1-based character number of the parse position in the file, for messages."""
        return self.base + self.pos + 1

    def fill(self) -> bool:
        """Append a chunk, first dropping the consumed text (so buf stays ~one chunk)."""
        if self.eof:
            return False
        try:
            chunk = self.fh.read(CHUNK)
        except UnicodeDecodeError as err:
            raise UserError(
                f"{self.path}: not UTF-8 text ({err.reason} after character "
                f"{self.base + len(self.buf):,}); re-encode the file as UTF-8"
            ) from None
        except _DAMAGED as err:
            raise _damaged(self.path, err, f"character {self.base + len(self.buf):,}") from None
        if not chunk:
            self.eof = True
            return False
        self.base += self.pos
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def skip_ws(self) -> str:
        """Move past whitespace; the next character, or "" at the end of the file."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                return ""

    def decode(self, record: int) -> Any:
        """Parse the JSON value at the parse position (element number `record`) and move past it."""
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
                # A number at the end of the buffer may continue in the next chunk.
                if end == len(self.buf) and self.fill():
                    continue
                break
            except json.JSONDecodeError as err:
                if self.fill():
                    continue
                cut = err.msg.startswith("Unterminated") or err.pos >= len(self.buf.rstrip())
                what = "cut short: the file looks truncated" if cut else "not valid JSON"
                raise UserError(
                    f"{self.path}: record {record:,} of the JSON array is {what} "
                    f"({err.msg.removesuffix(' at')} at "
                    f"character {self.base + err.pos + 1:,}); fix the file or convert it to JSONL"
                ) from None
        self.pos = end
        return value


def _read_hf(path: Path, fmt: str, split: str) -> Iterator[Item]:
    """A Hugging Face dataset: saved to disk, or anything `datasets.load_dataset` reads locally.

    Rows come as Arrow batches (`with_format("arrow")`), so image columns stay
    `{"bytes", "path"}` structs instead of being decoded into PIL images. A column `datasets`
    typed as JSON (its `Json` feature: a JSONL column whose values mix kinds, such as LLaVA's
    `image`, a path or a list of paths) comes as JSON text and is decoded, so the records are
    those of the file read as JSONL.
    """
    import datasets
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    if fmt not in ("disk", "dataset", *_PACKAGED_DATASETS_MODULES):
        # an unknown builder name is looked up on the Hugging Face Hub: minutes of retries
        # offline, for what is a typo (`parket`)
        known = ["json", "jsonl", "parquet", "disk", "dataset", *_PACKAGED_DATASETS_MODULES]
        raise UserError(
            f"{path}: --format `{fmt}` is not a format{did_you_mean(fmt, known)}; choose json, "
            "jsonl, parquet, disk, dataset, or a datasets.load_dataset builder such as csv or "
            "arrow"
        )
    try:
        if fmt == "disk":
            ds: Any = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise UserError(
                        f"{path}: the saved dataset has splits {', '.join(ds)}, not `{split}`; "
                        "pass --split NAME"
                    )
                ds = ds[split]
        elif fmt == "dataset":
            ds = datasets.load_dataset(str(path), split=split, streaming=True)
        else:
            files = str(path / "**") if path.is_dir() else str(path)
            ds = datasets.load_dataset(fmt, data_files={split: files}, split=split, streaming=True)
    except UserError:
        raise
    except Exception as err:  # datasets raises many kinds; all mean "cannot read this source"
        raise UserError(
            f"{path}: cannot read it as format `{fmt}` ({type(err).__name__}: {err}); "
            "choose another --format (json, jsonl, parquet, disk, dataset, or a "
            "datasets.load_dataset builder such as csv or arrow)"
        ) from None
    n = 0
    try:
        for table in ds.with_format("arrow").iter(batch_size=1000):
            encoded = [f.name for f in table.schema if isinstance(f.type, pa.JsonType)]
            for rec in table.to_pylist():
                for name in encoded:
                    if isinstance(rec[name], str):
                        rec[name] = json.loads(rec[name])
                n += 1
                yield Item("row", n, rec)
    except UserError:
        raise
    except Exception as err:
        raise UserError(
            f"{path}: reading failed after row {n:,} ({type(err).__name__}: {err})"
        ) from None
