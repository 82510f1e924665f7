"""What an import is asked to do: `ImportRequest`, its sources, and the checks made before reading.

Everything here fails fast with a `UserError` naming the option to fix, before any record is read
or any file is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ablate.errors import UserError
from ablate.pool.readers import FORMATS, detect_format
from ablate.pool.records import LAYOUTS

__all__ = [
    "ImportRequest",
    "ResolvedSource",
    "Source",
    "check_options",
    "is_combined",
    "parse_image_roots",
    "parse_source",
    "parse_turns",
    "resolve_sources",
    "turns_text",
]


@dataclass(frozen=True)
class Source:
    """One input of an import: a file or folder, with the name it has in a combined pool."""

    path: Path
    """A JSON / JSONL / Parquet file, a saved Hugging Face dataset, or a `load_dataset` source."""
    name: str | None = None
    """The `source` label of its rows (default: the file name without suffix)."""
    format: str | None = None
    """Reader (see `ablate.pool.readers`); default: the request's `format`."""
    image_root: Path | None = None
    """Folder its relative image paths resolve against (`--image-root NAME=DIR`); default:
    the request's `image_root`, else the source's folder."""

    @property
    def label(self) -> str:
        return self.name or Path(self.path).stem


def parse_source(text: str) -> Source:
    """`PATH` or `NAME=PATH` (the `data import` positional arguments)."""
    name, sep, path = text.partition("=")
    if sep and name and not Path(text).exists() and "/" not in name:
        return Source(Path(path), name=name)
    return Source(Path(text))


def parse_image_roots(
    values: Sequence[str | Path], sources: Sequence[Source]
) -> tuple[Path | None, list[Source]]:
    """The repeatable `--image-root`: `DIR` for every source without its own, `NAME=DIR` for
    the source NAME (its label, as `NAME=PATH` or the file name gives it). A value is `NAME=DIR`
    when NAME names a source and the whole value is not an existing folder. Returns the root of
    every source and the sources with their own roots set."""
    labels = [s.label for s in sources]
    common: Path | None = None
    own: dict[str, Path] = {}
    for value in map(str, values):
        name, sep, folder = value.partition("=")
        if sep and name in labels and not Path(value).is_dir():
            if name in own:
                raise UserError(f"--image-root {name}=...: given twice for source `{name}`")
            if not folder.strip():  # (an empty path is the current folder: never meant)
                raise UserError(f"--image-root {value}: no folder after `{name}=`; give NAME=DIR")
            own[name] = Path(folder)
        elif sep and name and "/" not in name and not Path(value).exists():
            raise UserError(
                f"--image-root {value}: no source is named `{name}` (the sources: "
                f"{', '.join(labels)}); give NAME=DIR for a source's own root, or DIR for all"
            )
        elif common is not None:
            raise UserError(
                f"--image-root {common} and --image-root {value}: one folder serves every "
                "source; give a source its own with --image-root NAME=DIR"
            )
        else:
            common = Path(value)
    return common, [
        dataclasses.replace(s, image_root=own.get(s.label, s.image_root)) for s in sources
    ]


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


def turns_text(turns: tuple[int | None, int | None]) -> str:
    """`MIN:MAX` with an open side left empty (as `--turns` takes it)."""
    lo, hi = turns
    return f"{'' if lo is None else lo}:{'' if hi is None else hi}"


@dataclass(frozen=True)
class ImportRequest:
    """What `ablate data import` was asked to do."""

    source: Path | str | Sequence[Source]
    """One path, or several `Source`s combined into one pool (rows in the order given)."""
    out: Path
    """The pool folder to write (created; an existing pool there is replaced)."""
    image_root: Path | None = None
    """Folder relative image paths resolve against, for every source without its own
    (`Source.image_root`); default: each source's folder."""
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
    """Also decode every image in full (Pillow `load`): catches corrupt and truncated files,
    costs a read and a decode each."""
    allow_outside_root: bool = False
    """Accept absolute image paths and paths that leave the image root with `..`."""
    turns: tuple[int | None, int | None] = (None, None)
    """Allowed range of assistant turns per dialogue (inclusive; None = open)."""
    labels: tuple[tuple[str, str], ...] = ()
    """Declared label rules (name, rule), see `ablate.pool.labels`; `task_type` may be redefined."""
    layout: str = "auto"
    """Record layout: `auto` (recognised by its keys) or one of `ablate.pool.records.LAYOUTS`
    (llava, hf, cauldron), forced, for records with the keys of several."""
    duplicate_ids: Literal["error", "rename"] = "error"
    """A repeated id: `error` (a bad record), or `rename`: the 2nd becomes `ID#2`, the 3rd
    `ID#3`, ... (LLaVA-style files give each conversation about an image the image's id)."""

    def sources(self) -> list[Source]:
        if isinstance(self.source, str | Path):
            return [Source(Path(self.source))]
        return [s if isinstance(s, Source) else Source(Path(s)) for s in self.source]


@dataclass(frozen=True)
class ResolvedSource:
    """A source checked to exist, with its absolute path and the reader it needs."""

    source: Source
    path: Path
    """Absolute."""
    format: str
    """The reader (`auto` resolved, see `ablate.pool.readers.detect_format`)."""

    def image_root(self, req: ImportRequest) -> Path:
        """The folder this source's relative image paths resolve against: its own, else the
        request's, else the source's folder."""
        root = self.source.image_root or req.image_root
        if root:
            return Path(root).resolve()
        return self.path if self.path.is_dir() else self.path.parent

    def summary(
        self,
        image_root: Path,
        files: list[str] | None,
        read: int,
        rows: int,
        skipped: int,
        ids_made: int = 0,
        ids_renamed: int = 0,
        turns_trimmed: int = 0,
    ) -> dict[str, Any]:
        """Its entry of the manifest's `sources` (`files`: those read, relative to a folder
        source; `ids_made`: rows whose id was made; `ids_renamed`: repeats given `#N`;
        `turns_trimmed`: rows that lost a leading answer or a trailing question)."""
        return {
            "path": str(self.path),
            "name": self.source.label,
            "format": self.format,
            "files": files,
            "image_root": str(image_root),
            "read": read,
            "rows": rows,
            "skipped": skipped,
            "ids_made": ids_made,
            "ids_renamed": ids_renamed,
            "turns_trimmed": turns_trimmed,
        }


def resolve_sources(req: ImportRequest) -> list[ResolvedSource]:
    """The request's sources, each checked to exist and be readable in its format."""
    sources = req.sources()
    if not sources:
        raise UserError("give at least one source to import")
    names = [s.label for s in sources]
    if len(set(names)) != len(names):
        raise UserError(f"source names {', '.join(names)} repeat; name each source: NAME=PATH")
    resolved = []
    for s in sources:
        path = Path(s.path).resolve()
        fmt = s.format or req.format
        if not path.exists():
            raise UserError(f"{s.path}: no such source file (a LLaVA-style JSON list or JSONL)")
        if path.is_file() is False and fmt in ("json", "jsonl"):
            raise UserError(f"{s.path}: is a folder, not a {fmt} file")
        if fmt not in FORMATS and not fmt.isidentifier():
            raise UserError(f"--format {fmt!r}: use one of {', '.join(FORMATS)} or a builder name")
        resolved.append(ResolvedSource(s, path, detect_format(path, fmt)))
    return resolved


def is_combined(sources: Sequence[ResolvedSource]) -> bool:
    """Several sources, or one named source: the pool gets a `source` label column."""
    return len(sources) > 1 or any(s.source.name for s in sources)


def check_options(req: ImportRequest) -> None:
    """The request's options other than its sources and labels."""
    if req.image_root is not None and not Path(req.image_root).is_dir():
        raise UserError(f"--image-root {req.image_root}: no such folder")
    for s in req.sources():
        if s.image_root is not None and not Path(s.image_root).is_dir():
            raise UserError(f"--image-root {s.label}={s.image_root}: no such folder")
    if req.on_invalid not in ("error", "skip"):
        raise UserError(f"--on-invalid must be error or skip, got {req.on_invalid!r}")
    if req.duplicate_ids not in ("error", "rename"):
        raise UserError(f"--duplicate-ids must be error or rename, got {req.duplicate_ids!r}")
    if req.layout != "auto" and req.layout not in LAYOUTS:
        raise UserError(f"--layout must be auto, {', '.join(LAYOUTS)}; got {req.layout!r}")
    lo, hi = req.turns
    if (lo is not None and lo < 1) or (lo is not None and hi is not None and hi < lo):
        raise UserError(f"--turns {lo}:{hi}: expected MIN:MAX with 1 <= MIN <= MAX")
