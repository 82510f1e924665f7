"""The record layouts a source may use, brought to one dialogue form, and the row a record becomes.

Accepted layouts (any source format, see `ablate.pool.readers`):
- LLaVA / Ovis / MMDU: `{"id", "image": path | [paths], "conversations": [{"from": "human"|"gpt",
  "value": "...<image>..."}]}` with one `<image>` placeholder per image (text-only: no `image`);
- Hugging Face: `{"id", "images": [paths], "messages": [{"role": "user"|"assistant", "content":
  str | [{"type": "image"} | {"type": "text", "text": ...}]}]}`, converted to the first layout.
  An image may also be a `{"bytes", "path"}` struct (a `datasets.Image` column): its path is used.
  An image part may carry its own image instead of the `images` list, as Qwen-VL, TRL and
  transformers' chat-template docs write it (`{"type": "image", "image" | "path" | "url" |
  "base64": ...}`), or OpenAI's `{"type": "image_url", "image_url": {"url": ...}}`: a local
  path, `file://` path or `data:` URI (a web URL is refused: nothing is downloaded). The parts
  are joined with nothing between them, as the model's own processor renders them (a newline
  between an image and its question was text the record did not have);
- the Cauldron: `{"images", "texts": [{"user", "assistant"}]}`, the images before the first turn.

The pool keeps each turn as one string in which `<image>` marks an image. Layouts that place
images with parts of their own (`hf` parts, the Cauldron) may hold `<image>` as plain text; such
a record is refused (`literal_image_text`) rather than have its text read as a placeholder. An
image part in an assistant message is refused (`image_in_answer`), as `checks` refuses an
`<image>` in a gpt turn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ablate.pool.images import decode_data_uri
from ablate.pool.items import InvalidRecord

__all__ = [
    "IMAGE_TOKEN",
    "LAYOUTS",
    "LAYOUT_KEYS",
    "ImageRef",
    "Row",
    "image_paths",
    "short_text",
    "to_llava",
]

IMAGE_TOKEN = "<image>"

_HF_ROLES = {"user": "human", "assistant": "gpt"}


@dataclass
class Row:
    """One valid record in the pool's form: a row of `pool.arrow`."""

    id: str
    images: list[str]
    """Image paths as `pool.arrow` holds them: a file's absolute (normalised) path, or an
    embedded image's path inside the pool's store (`images/ab/<sha256>.png`)."""
    rel_images: list[str]
    """The same paths relative to the image root: what the fingerprint hashes."""
    conversations: list[dict[str, str]]
    n_turns: int
    labels: dict[str, str]
    """Label column -> label, for every label column of the import."""
    id_made: bool = False
    """The source gave no `id`: this one was made from the record's position."""
    id_renamed: bool = False
    """Its id repeated an earlier one and got `#N` appended (`duplicate_ids="rename"`)."""
    turns_trimmed: int = 0
    """Turns dropped from its conversation: a leading gpt turn (an answer to nothing) and a
    trailing unanswered question, as LLaVA's own preprocessing drops them."""


#: The layouts a record may come in, recognised by their keys (README, "Sources").
LAYOUTS = {
    "llava": "`conversations` of {from, value}",
    "hf": "`messages` of {role, content} + `images`",
    "cauldron": "`texts` of {user, assistant} + `images`",
}
#: The key that marks each layout (a record holding none of them is in no known layout).
LAYOUT_KEYS = {"llava": "conversations", "hf": "messages", "cauldron": "texts"}
#: The content part types of the `hf` layout: an image placeholder, or text.
PART_TYPES = ("image", "image_url", "text")
#: Keys under which an image part carries its own image (transformers' chat-template docs,
#: qwen-vl-utils, TRL), in the order they are looked up.
PART_IMAGE_KEYS = ("image", "path", "url", "base64")


def to_llava(rec: dict[str, Any], layout: str = "auto") -> dict[str, Any]:
    """The record in the LLaVA layout: a Hugging Face `messages` or a Cauldron `texts` record
    is converted; `layout` forces one (`--layout`), `auto` goes by the keys; a record in none
    of the layouts is refused, naming its keys."""
    if layout == "auto":
        layout = _layout_of(rec)
    if layout == "llava":
        return rec
    key = LAYOUT_KEYS[layout]
    if not isinstance(rec.get(key), list):
        raise InvalidRecord(
            "bad_layout", f"--layout {layout} needs a list `{key}`, found {sorted(map(str, rec))}"
        )
    return _from_hf(rec) if layout == "hf" else _from_cauldron(rec)


def _layout_of(rec: dict[str, Any]) -> str:
    if "conversations" in rec:
        return "llava"
    if isinstance(rec.get("messages"), list):
        return "hf"
    if isinstance(rec.get("texts"), list):
        return "cauldron"
    for name, key in LAYOUT_KEYS.items():  # the key is there, in another shape (review q#10)
        if key in rec:
            shape = type(rec[key]).__name__ + (" (JSON text?)" if isinstance(rec[key], str) else "")
            raise InvalidRecord(
                "bad_layout",
                f"`{key}` is a {shape}, expected a list (the {name} layout: {LAYOUTS[name]}); "
                "store it as a list, not as text",
            )
    known = "; ".join(f"{name}: {keys}" for name, keys in LAYOUTS.items())
    raise InvalidRecord(
        "unknown_layout",
        f"no known layout has the keys {sorted(map(str, rec))}; the layouts are {known}; "
        "force one with --layout NAME",
    )


def _from_cauldron(rec: dict[str, Any]) -> dict[str, Any]:
    """The Cauldron's `images` + `texts: [{user, assistant, source}]`: the images belong before
    the first user turn."""
    images = rec.get("images") or []
    n_images = len(images) if isinstance(images, list) else 1
    turns = []
    for i, text in enumerate(map(_json_struct, rec["texts"])):
        if not isinstance(text, dict):
            turns.append(text)  # refused by the conversation check, naming it
            continue
        user = _literal_text(text.get("user"), f"texts[{i}].user")
        if i == 0 and n_images:  # as Idefics' processor renders them: no newline after
            user = IMAGE_TOKEN * n_images + user
        answer = text.get("assistant")  # None stays None: refused as an empty message
        if isinstance(answer, str):
            answer = _literal_text(answer, f"texts[{i}].assistant")
        turns += [{"from": "human", "value": user}, {"from": "gpt", "value": answer}]
    out = {k: v for k, v in rec.items() if k not in ("texts", "images")}
    out["conversations"] = turns
    out["image"] = images
    return out


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
    turns, in_parts = [], []
    for msg in map(_json_struct, rec["messages"]):
        if not isinstance(msg, dict):
            turns.append(msg)
            continue
        content, role = msg.get("content"), msg.get("role")
        if isinstance(content, list):
            answer = role in ("assistant", "gpt")
            content, images = _parts_text(content, len(turns), answer)
            in_parts += images
        turns.append({"from": _HF_ROLES.get(str(role), role), "value": content})
    out = {k: v for k, v in rec.items() if k not in ("messages", "images")}
    out["conversations"] = turns
    out["image"] = _record_images(rec.get("images") or [], in_parts)
    return out


def _record_images(listed: Any, in_parts: list[Any]) -> Any:
    """The record's images: its `images` list, or those its image parts carry (None for a
    part without one). Both, or parts of which only some carry an image, are refused."""
    carried = [img for img in in_parts if img is not None]
    if not carried:
        return listed
    if len(carried) < len(in_parts):
        raise InvalidRecord(
            "bad_image",
            f"{len(carried)} of the record's {len(in_parts)} image parts carry their image and "
            "the others do not: give every image part its image, or none and list the images "
            "in the record's `images`",
        )
    if listed and listed != carried:
        raise InvalidRecord(
            "bad_image",
            f"the record lists {len(listed)} image(s) in `images` and its image parts carry "
            f"{len(carried)} others: keep one of the two",
        )
    return carried


def _parts_text(content: list[Any], turn: int, answer: bool) -> tuple[str, list[Any]]:
    """The text of a turn's content parts, `<image>` where an image part stands, and the image
    each image part carries (None: the record's `images` list has it). A part of another type
    (`audio`, `video`, ...) is refused: dropped, it would turn an image dialogue into a
    text-only one without a word. So is an image part in an answer (`answer`: an assistant
    turn), and text holding a literal `<image>` (`literal_image_text`)."""
    parts, images = [], []
    for i, part in enumerate(map(_json_struct, content)):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("image", "image_url") and answer:
            raise InvalidRecord(
                "image_in_answer",
                f"message {turn} (assistant), content part {i} is an image; an answer cannot "
                "take an image as input (at training the image would sit inside the labelled "
                "answer): move the image part into the user message before it",
            )
        if kind in ("image", "image_url"):
            parts.append(IMAGE_TOKEN)
            images.append(_part_image(part, f"message {turn}, content part {i}"))
        elif kind == "text":
            parts.append(_literal_text(part.get("text"), f"message {turn}, content part {i}"))
        else:
            what = f"type {kind!r}" if isinstance(part, dict) else short_text(part)
            raise InvalidRecord(
                "unknown_part",
                f"message {turn}, content part {i} is {what}; the part types known are "
                f"{', '.join(PART_TYPES)} (an image goes in the record's `images` list, its "
                'place in the turn is a {"type": "image"} part)',
            )
    return "".join(parts), images


def _part_image(part: dict[str, Any], where: str) -> Any:
    """The image an image part carries (None: none, the record's `images` list has it)."""
    if part.get("type") == "image_url":
        url = part.get("image_url")
        value = url.get("url") if isinstance(url, dict) else url
        key = "image_url.url"
    else:
        key = next((k for k in PART_IMAGE_KEYS if part.get(k) not in (None, "")), "")
        value = part.get(key) if key else None
        if key == "base64" and isinstance(value, str) and not value.startswith("data:"):
            value = f"data:image/png;base64,{value}"  # decoded, then sniffed for its format
    if isinstance(value, str) and value.startswith("file://"):
        value = value.removeprefix("file://")
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        raise InvalidRecord(
            "remote_image",
            f"{where} gives its image as the web address {short_text(value)} under `{key}`; "
            "ablate reads images from files and downloads nothing: download the images and "
            "give their local paths",
        )
    if value is None and part.get("type") == "image_url":
        raise InvalidRecord("bad_image", f"{where} is an image_url part without a url")
    return value


def _literal_text(text: Any, where: str) -> str:
    """Text that the layout marks as text (an `hf` text part, a Cauldron turn), refused when it
    holds the string `<image>`: the pool keeps a turn as one string in which `<image>` marks an
    image (`ablate.trial.encode` splits on it), so the literal text would become a placeholder
    and the image count be wrong, or an image be put where the text was."""
    text = str(text or "")
    if IMAGE_TOKEN in text:
        at = text.index(IMAGE_TOKEN)
        quote = short_text(text[max(0, at - 40) : at + len(IMAGE_TOKEN) + 40])
        raise InvalidRecord(
            "literal_image_text",
            f"{where} is text holding the literal string {IMAGE_TOKEN} ({quote}); this layout "
            f"places images with their own parts, but the pool stores a turn as text in which "
            f"{IMAGE_TOKEN} marks an image, so this text would be taken for an image "
            f"placeholder. Reword it (e.g. <img>) or leave the record out",
        )
    return text


#: An image as a record gives it: a path, embedded bytes, or both (a `datasets.Image` struct).
ImageRef = str | bytes | tuple[str, bytes]


def image_paths(raw: Any) -> list[ImageRef]:
    """The images of a record: a path, a list of paths, raw bytes, `data:image/...;base64,`
    URIs, or `{"bytes", "path"}` structs (`datasets.Image`; with both, the checker uses the
    path when that file exists, else the bytes)."""
    # "" like null: exports that fill the column on every row write "" for text-only records
    items = (
        [] if raw is None or raw == "" else [raw] if isinstance(raw, str | dict | bytes) else raw
    )
    if not isinstance(items, list):
        raise InvalidRecord(
            "bad_image", f"`image` must be a path or a list of paths, found {raw!r}"
        )
    refs: list[ImageRef] = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            data, path = item.get("bytes"), item.get("path")
            has_path = isinstance(path, str) and bool(path)
            if isinstance(data, bytes | bytearray):  # empty bytes: refused unless the file exists
                refs.append((str(path), bytes(data)) if has_path else bytes(data))
                continue
            if has_path:
                item = path
            else:
                raise InvalidRecord(
                    "bad_image", f"image {i} is a struct with neither bytes nor a path: {item!r}"
                )
        if isinstance(item, str) and item.startswith("data:image/"):
            item = decode_data_uri(item)
        if isinstance(item, bytes | bytearray):
            refs.append(bytes(item))  # checked by the image store (empty, not an image)
            continue
        if not isinstance(item, str) or not item:
            raise InvalidRecord(
                "bad_image",
                f"image {i} is {short_text(item)} ({type(item).__name__}), neither a path nor bytes: "
                "an image is a file path, encoded image bytes, a data:image/...;base64 URI or a "
                "{bytes, path} struct (a datasets.Image column)",
            )
        refs.append(item)
    return refs


def short_text(value: Any) -> str:
    """`repr(value)`, cut to 200 characters for a message."""
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."
