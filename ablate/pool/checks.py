"""Per-record validation: a record of a source either becomes a `Row` or raises `InvalidRecord`.

The checks run in a fixed order (the first failing one names the record's problem): the record
is an object (with an id, or one is made from its position), its turns alternate human/gpt (a
leading answer and a trailing question are dropped and counted) and no answer holds an `<image>`
(`image_in_answer`: the image would be a training target), their number is in `--turns`,
there is one `<image>` placeholder per image, image paths stay inside the image root, the files
exist (and decode, with `decode_images`), every label rule labels it, and its id is new (or,
with `duplicate_ids="rename"`, is made new).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ablate.pool.images import ImageStore, decode_image
from ablate.pool.items import InvalidRecord
from ablate.pool.labels import SOURCE_LABEL, UNKNOWN, LabelColumns, LabelError, field_label
from ablate.pool.records import IMAGE_TOKEN, ImageRef, Row, image_paths, short_text, to_llava
from ablate.pool.request import ImportRequest, turns_text

__all__ = ["RecordChecker", "record_id"]


class RecordChecker:
    """Validates and labels the records of one source."""

    def __init__(
        self,
        req: ImportRequest,
        image_root: Path,
        columns: LabelColumns,
        source_label: str,
        id_prefix: str,
        seen: set[str],
        store: ImageStore,
    ) -> None:
        self.req = req
        self.root = str(image_root)
        self.columns = columns
        self.source_label = source_label
        self.id_prefix = id_prefix
        """`NAME/` in a pool of several sources, so ids stay unique across them."""
        self.seen = seen
        """Pool ids so far, of all sources (shared): a valid row's id is added."""
        self.verified: set[str] = set()
        self.store = store
        """Where embedded images are written (the pool's content-addressed store)."""
        self.repeats: dict[str, int] = {}
        """Id -> the last `#N` it was renamed to (`duplicate_ids="rename"`)."""
        self.shadowed = 0
        """Rows whose own `source` field the source's name replaced (a combined pool)."""
        self.shadowed_example = ""
        """The first such field's value, for the warning."""

    def check(self, rec: Any, position: str = "") -> Row:
        """Validate one record (or a reader's `InvalidRecord`) and return its row.

        `position`: where the record stands in its source (`row-12`, `line-3`, `record-5`); a
        record without an `id` gets it as its id (see `made_id`)."""
        if isinstance(rec, InvalidRecord):
            raise rec
        if not isinstance(rec, dict):
            raise InvalidRecord("not_object", f"expected a JSON object, found {type(rec).__name__}")
        rec = to_llava(rec, self.req.layout)
        rid = record_id(rec)
        made = rid is None
        if rid is None:
            if not position:
                raise InvalidRecord("missing_id", "the record has no `id`")
            rid = position
        turns, trimmed = _trimmed(_conversation(rec.get("conversations")))
        n_turns = sum(t["from"] == "gpt" for t in turns)
        self._check_turn_count(n_turns)
        paths = image_paths(rec.get("image", rec.get("images")))
        placeholders = sum(t["value"].count(IMAGE_TOKEN) for t in turns)
        if placeholders != len(paths):
            raise InvalidRecord(
                "image_count",
                f"{placeholders} {IMAGE_TOKEN} placeholder(s) but {len(paths)} image(s)",
            )
        checked = self._check_images(paths)
        labels = self._labels(rec, len(paths), n_turns)
        row_id, renamed = self._unique(self.id_prefix + rid)
        images, relative = self._place(checked)  # embedded bytes are stored only now: valid
        self.seen.add(row_id)
        own = field_label(rec, SOURCE_LABEL) if self.columns.per_source else UNKNOWN
        if own != UNKNOWN:  # the record's own `source`, replaced by the source's name
            self.shadowed += 1
            self.shadowed_example = self.shadowed_example or own
        return Row(row_id, images, relative, turns, n_turns, labels, made, renamed, trimmed)

    def _unique(self, row_id: str) -> tuple[str, bool]:
        """The id, new in the pool; a repeat is refused, or renamed `ID#2`, `ID#3`, ... in
        order of appearance (`duplicate_ids="rename"`: LLaVA-style files reuse an image's id
        for each conversation about it). True when it was renamed."""
        if row_id not in self.seen:
            return row_id, False
        if self.req.duplicate_ids != "rename":
            raise InvalidRecord(
                "duplicate_id",
                f"duplicate id {row_id!r}; if the records are distinct (LLaVA-style files reuse "
                f"an image's id for each conversation about it), pass --duplicate-ids rename to "
                f"keep them as {row_id + '#2'!r}, {row_id + '#3'!r}, ...",
            )
        n = self.repeats.get(row_id, 1) + 1
        while f"{row_id}#{n}" in self.seen:  # a given id may already look like a renamed one
            n += 1
        self.repeats[row_id] = n
        return f"{row_id}#{n}", True

    def _check_turn_count(self, n_turns: int) -> None:
        lo, hi = self.req.turns
        if (lo is not None and n_turns < lo) or (hi is not None and n_turns > hi):
            raise InvalidRecord(
                "turn_count",
                f"{n_turns} assistant turn(s), outside the declared range "
                f"{turns_text(self.req.turns)} (--turns)",
            )

    def _check_images(self, given: list[ImageRef]) -> list[str | bytes]:
        """Each image as its normalised absolute path, or its embedded bytes, checked as the
        request asks. A struct with both is its file when that exists (nothing to copy), else
        its bytes: published sets keep only a file name beside the bytes."""
        refs = [self._either(r) if isinstance(r, tuple) else r for r in given]
        paths = [r for r in refs if isinstance(r, str)]
        files = iter(self._check_files(paths))
        for data in refs:
            if isinstance(data, bytes):
                self.store.check(data, self.req.decode_images)
        return [r if isinstance(r, bytes) else next(files) for r in refs]

    def _either(self, ref: tuple[str, bytes]) -> str | bytes:
        path, data = ref
        return path if os.path.isfile(os.path.join(self.root, path)) else data

    def _check_files(self, paths: list[str]) -> list[str]:
        """The image files' normalised absolute paths, checked as the request asks."""
        req = self.req
        images = [os.path.normpath(os.path.join(self.root, p)) for p in paths]
        if not req.allow_outside_root:
            for p, full in zip(paths, images, strict=True):
                # An absolute path inside the root is fine (saved HF datasets store them).
                if not _inside(full, self.root):
                    kind = "is absolute and outside" if os.path.isabs(p) else "leaves"
                    raise InvalidRecord(
                        "outside_root",
                        f"image path {p!r} {kind} the image root {self.root}; pass "
                        f"--allow-outside-root to accept it, or set {self._root_option()} to a "
                        "folder above it",
                    )
        if req.check_images or req.decode_images:
            for p, full in zip(paths, images, strict=True):
                if not os.path.isfile(full):
                    raise InvalidRecord(
                        "missing_image",
                        f"image file not found: {full} (from {p!r} under the image root "
                        f"{self.root}); if the images sit elsewhere, pass "
                        f"{self._root_option()} (the folder their paths start from)",
                    )
        if req.decode_images:
            for full in images:
                self._decode(full)
        return images

    def _root_option(self) -> str:
        """`--image-root DIR`, or in a combined pool this source's own `--image-root NAME=DIR`."""
        return f"--image-root {self.source_label}=DIR" if self.id_prefix else "--image-root DIR"

    def _place(self, checked: list[str | bytes]) -> tuple[list[str], list[str]]:
        """The paths `pool.arrow` holds and those the fingerprint uses: a file by its absolute
        path (hashed relative to the image root); an embedded image by its place in the pool's
        store (`images/ab/<sha256>.png`, both), so a moved pool still finds it."""
        images, relative = [], []
        for item in checked:
            if isinstance(item, bytes):
                key = self.store.put(item)
                images.append(key)
                relative.append(key)
            else:
                images.append(item)
                relative += self._relative([item])
        return images, relative

    def _relative(self, images: list[str]) -> list[str]:
        # The fingerprint uses paths relative to the image root, so a pool imported on another
        # machine (other root, same data) has the same fingerprint and selects the same rows.
        cut = len(self.root.rstrip(os.sep)) + 1
        return [
            full[cut:] if _inside(full, self.root) else os.path.relpath(full, self.root)
            for full in images
        ]

    def _labels(self, rec: dict[str, Any], n_images: int, n_turns: int) -> dict[str, str]:
        labels = {}
        for name, rule in self.columns.rules.items():
            try:
                labels[name] = rule.apply(rec, n_images, n_turns)
            except LabelError as err:
                raise InvalidRecord("unlabelled", str(err)) from None
        if self.columns.per_source:
            labels[SOURCE_LABEL] = self.source_label
        return labels

    def _decode(self, full: str) -> None:
        if full not in self.verified:
            decode_image(full, f"image {full}", "bad_image_file")
            self.verified.add(full)


def record_id(rec: dict[str, Any]) -> str | None:
    """The record's `id` as text (an integer id is accepted); None when it has none (no `id`
    key, or null, as in most published instruction sets)."""
    rid = rec.get("id")
    if rid is None:
        return None
    if isinstance(rid, int) and not isinstance(rid, bool):
        rid = str(rid)
    if not isinstance(rid, str):
        raise InvalidRecord(
            "bad_id",
            f"`id` must be a string or an integer, found {short_text(rid)} ({type(rid).__name__})",
        )
    if not rid.strip():
        raise InvalidRecord("missing_id", f"`id` is blank ({rid!r}); give a non-empty id or none")
    return rid


#: Role names of the layouts (`from` in LLaVA / ShareGPT, `role` in Hugging Face messages).
_ROLES = {"human": "human", "user": "human", "gpt": "gpt", "assistant": "gpt", "system": "system"}


def _conversation(conv: Any) -> list[dict[str, str]]:
    """The turns: optional leading system turns (context only: never a training target, see
    `ablate.trial.encode`), then human/gpt alternating. It may open with a gpt turn and end
    with a question: `_trimmed` drops those."""
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
        role, value = _ROLES.get(str(turn.get("from"))), turn.get("value")
        if "from" not in turn:  # (its role read as None: "unknown role None"; review q#10)
            raise InvalidRecord(
                "unknown_role",
                f"turn {i} has no `from` key (it has {', '.join(map(str, turn)) or 'none'}); "
                "`conversations` turns are {from, value}, while {role, content} turns belong "
                "in `messages` (the hf layout): rename the record's key or its turns' keys",
            )
        if role is None:
            raise InvalidRecord(
                "unknown_role",
                f"turn {i} has unknown role {turn.get('from')!r} "
                "(use human, gpt, user, assistant or system)",
            )
        last = turns[-1]["from"] if turns else "system"  # the dialogue's last role so far
        if role == "system":
            if last != "system":
                raise InvalidRecord(
                    "roles",
                    f"turn {i} is a system turn after the dialogue began; a system turn is "
                    "context and comes first",
                )
            if value is None or (isinstance(value, str) and not value.strip()):
                continue  # an empty system prompt says nothing; rendered, it adds a blank block
        elif role == last:
            raise InvalidRecord(
                "roles",
                f"roles must alternate human/gpt; turns {i - 1} and {i} are both {role}",
            )
        if value is not None and not isinstance(value, str):
            raise InvalidRecord(
                "bad_message", f"turn {i} ({role}): a message is text, found {value!r}"[:200]
            )
        if not isinstance(value, str) or not value.strip():
            raise InvalidRecord("empty_message", f"turn {i} ({role}) has an empty or null message")
        if role == "gpt" and last != "system" and IMAGE_TOKEN in value:  # leading: `_trimmed`
            raise InvalidRecord("image_in_answer", _image_in_answer(i, value))
        turns.append({"from": role, "value": value})
    if not turns:
        raise InvalidRecord("bad_conversations", "`conversations` holds only empty system turns")
    return turns


def _image_in_answer(turn: int, value: str) -> str:
    at = value.index(IMAGE_TOKEN)
    quote = short_text(value[max(0, at - 40) : at + len(IMAGE_TOKEN) + 40])
    return (
        f"turn {turn} (gpt) holds {IMAGE_TOKEN} ({quote}): an answer cannot take an image as "
        "input, and at training the image would sit inside the labelled answer. If it is the "
        "question's image, move the placeholder into the human turn before it; if it is "
        f"literal text (an HTML tag, say), the pool cannot tell it from a placeholder: reword "
        "it (e.g. <img>) or leave the record out"
    )


def _trimmed(turns: list[dict[str, str]]) -> tuple[list[dict[str, str]], int]:
    """The turns without a leading gpt turn (an answer to a question the record lacks) and
    without a trailing question (no answer to learn), and how many were dropped: LLaVA's
    preprocessing drops the same, and ShareGPT-style sets hold both. A dropped turn that
    holds an `<image>` would lose its image, so such a record is refused instead."""
    system = [t for t in turns if t["from"] == "system"]
    dialogue = turns[len(system) :]
    keep = slice(
        1 if dialogue and dialogue[0]["from"] == "gpt" else 0,
        -1 if dialogue and dialogue[-1]["from"] == "human" else None,
    )
    kept = dialogue[keep]
    if not kept:
        what = "only system turns" if not dialogue else "no question answered by a gpt turn"
        raise InvalidRecord("roles", f"the conversation holds {what}: nothing to train on")
    # only the first and the last turn can be dropped (a scan of `kept` per turn was
    # quadratic: 155 us a record of 50 turns)
    dropped = dialogue[: keep.start] + (dialogue[keep.stop :] if keep.stop else [])
    for turn in dropped:
        if IMAGE_TOKEN in turn["value"]:
            where = "first" if turn is dialogue[0] else "last"
            raise InvalidRecord(
                "roles",
                f"the {where} turn ({turn['from']}) holds {IMAGE_TOKEN} but cannot be kept "
                f"(a {'leading answer' if where == 'first' else 'question without an answer'}); "
                "move the image into a human turn that a gpt turn answers",
            )
    return system + kept, len(dropped)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
