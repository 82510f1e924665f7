"""The pool's own content-addressed image store: images that arrive embedded in a record
(`datasets.Image` structs with bytes, raw bytes, `data:image/...;base64,` URIs) are written once
as `images/<2 hex>/<sha256>.<ext>` in their original encoding (no re-encode: the processors read
PNG, JPEG, GIF, WebP, BMP and TIFF as they are), so the same picture in two records or two
sources is stored once. `pool.arrow` names them by their path inside the pool folder
(`images/ab/<sha256>.png`), so a pool moved or copied elsewhere still finds them; the pool's
reading methods (`Pool.table`, `Pool.take`) give them as absolute paths (`absolute_images`),
like the image files of a JSON source, so a trial reads them from any working directory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import shutil
from pathlib import Path

from ablate.pool.items import InvalidRecord

STORE_DIR = "images"
#: The leading bytes of each encoding the processors read, and the file suffix it is stored with.
SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tif"),
    (b"MM\x00*", "tif"),
)


def image_suffix(data: bytes) -> str | None:
    """The file suffix of an encoded image from its signature; None when it is not one."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for magic, suffix in SIGNATURES:
        if data.startswith(magic):
            return suffix
    return None


def decode_data_uri(text: str) -> bytes:
    """The bytes of a `data:image/...;base64,...` URI (InvalidRecord when it is not one)."""
    head, sep, body = text.partition(",")
    if not sep or not head.endswith(";base64"):
        raise InvalidRecord("bad_image", f"image {head[:40]!r}... is a data URI but not base64")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRecord("bad_image", "image data URI holds invalid base64") from None


class ImageStore:
    """`put` embedded image bytes into `<pool>/images/`; counts files written and repeats."""

    def __init__(self, pool_dir: Path) -> None:
        self.root = pool_dir.resolve() / STORE_DIR
        """Absolute, whatever the working directory."""
        self.written = 0
        """Files this import wrote."""
        self.deduplicated = 0
        """Embedded images whose bytes were already stored (by this import or an earlier one)."""
        self._known: set[str] = set()

    def check(self, data: bytes, decode: bool) -> None:
        """Refuse bytes that are not an encoded image (and, with `decode`, that do not decode)."""
        if not data:
            raise InvalidRecord("bad_image_bytes", "embedded image bytes are empty")
        if image_suffix(data) is None:
            raise InvalidRecord(
                "bad_image_bytes",
                "embedded image bytes are not a PNG, JPEG, GIF, WebP, BMP or TIFF image "
                f"(they start with {data[:8]!r})",
            )
        if decode:
            decode_image(io.BytesIO(data), "embedded image", "bad_image_bytes")

    def put(self, data: bytes) -> str:
        """Store checked bytes once; their path inside the pool (`images/ab/<sha256>.png`)."""
        suffix = image_suffix(data)
        digest = hashlib.sha256(data).hexdigest()
        key = f"{STORE_DIR}/{digest[:2]}/{digest}.{suffix}"
        path = self.root.parent / key
        if digest in self._known or path.is_file():
            self.deduplicated += 1
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)  # a file appears whole or not at all
            self.written += 1
        self._known.add(digest)
        return key

    def remove(self) -> None:
        """Drop the store (a failed import into a pool folder it made)."""
        shutil.rmtree(self.root, ignore_errors=True)


def decode_image(source: str | io.BytesIO, what: str, code: str) -> None:
    """Decode a whole image (`--decode-images`), refusing it with `code` when that fails.

    A full `load()`, not Pillow's `verify()`: `verify` checks a PNG's chunks but reads no JPEG
    scan data, so a JPEG cut short (the commonest corruption of a download) would pass."""
    from PIL import Image

    try:
        with Image.open(source) as im:
            im.load()
    except Exception as err:  # Pillow raises many kinds for corrupt data
        raise InvalidRecord(code, f"cannot decode {what}: {type(err).__name__}: {err}") from None
