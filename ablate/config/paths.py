"""Paths and database URLs in config files: relative to the file's folder; the SQLite URL's path.

Every place that needs the file behind a `sqlite:///...` URL asks `sqlite_path` (one parser).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ablate.errors import UserError

SQLITE_PREFIX = "sqlite:///"

#: A folder ablate fills with data (a pool, a world, the demo's output) carries this file. Ray's
#: `ray job submit --working-dir` leaves out what a `.rayignore` lists and refuses a working dir
#: whose zip is over 512 MiB (its gRPC message limit), so a project folder holding pools of many
#: GB still submits, in seconds. On a cluster, data is read from a shared file system, never from
#: the uploaded working dir (README, "Run on a cluster").
RAY_IGNORE_FILE = ".rayignore"

#: Where Ray unpacks a job's working dir on a node: a data path under it came with the code.
RAY_WORKING_DIR = "runtime_resources/working_dir_files"


#: URI schemes an MLflow tracking store takes (databases through SQLAlchemy, a server, files).
TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks")


def keep_out_of_ray_uploads(folder: Path) -> None:
    """Write the folder's `.rayignore` (everything in it), unless it has one."""
    marker = folder / RAY_IGNORE_FILE
    if not marker.exists():
        marker.write_text(
            "# written by ablate: data, read from a shared path on a cluster, so\n"
            "# `ray job submit --working-dir` leaves this folder out\n*\n"
        )


def writable_folder(folder: Path, what: str) -> None:
    """Make `--out` FOLDER (`what`: "pool", "world", ...) or refuse it in one line: a file
    there or above it, or a folder that cannot be made or written (a read-only mount, whose
    first write used to end in a traceback, or another user's folder)."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder}: is a file, not a folder; give a new or empty folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"--out {folder}: cannot create the {what} folder ({err.strerror or err}); choose "
            "a writable folder"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):  # (a read-only file system fails it for root)
        raise UserError(
            f"--out {folder}: cannot write into the {what} folder (read-only file system or no "
            "permission); choose a writable folder"
        )


def uploaded_hint(path: Path) -> str:
    """What to do when data is missing under a Ray job's uploaded working dir, else ''."""
    if RAY_WORKING_DIR not in path.as_posix():
        return ""
    return (
        " (data folders made by ablate are not uploaded with `ray job submit --working-dir`: "
        "give a path on a shared file system, readable on every node)"
    )


def resolve_path(value: str, base: Path) -> Path:
    """A path from a config file: relative paths are relative to the file's own folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def resolve_db_url(url: str, base: Path) -> str:
    """Make `sqlite:///relative.db` relative to the config file's folder; other URLs unchanged.

    A plain path (no `scheme://`) is resolved too: for `storage:` it means an Optuna journal file.
    """
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return "sqlite:///" + str((base / url[len("sqlite:///") :]).resolve())
    if "://" not in url:
        return str(resolve_path(url, base).resolve())
    return url


def sqlite_path(url: str) -> Path | None:
    """The database file of a `sqlite:///path` URL; None for any other URL or a journal path."""
    return Path(url[len(SQLITE_PREFIX) :]) if url.startswith(SQLITE_PREFIX) else None


def safe_name(name: str) -> str:
    """A study name as part of a file name: each character but letters, digits and `-_.` -> `_`."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


#: `scheme://` and the URL's authority (`user:password@host:port`), up to its path or query.
_URL_AUTHORITY = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^\s/?#'\"<>]*)")
#: A `password=` value: a URL's query parameter (up to `&`) or a libpq keyword (quoted or not).
_PASSWORD_VALUE = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&#'\"<>;,)]*)", re.I)


def redact(text: str) -> str:
    """A URL, or a message quoting URLs, without passwords: what every message, log line, param
    and tag shows. Only a URL's password field (`postgresql://user:secret@host` ->
    `postgresql://user:***@host`) and `password=` values (a URL's query parameter,
    `?password=secret`, or a libpq keyword string a driver echoes, `password='secret'`) become
    `***`; the rest of the text is left as it is, so a short password's letters elsewhere in a
    driver's message are neither starred nor revealed."""

    def authority(match: re.Match[str]) -> str:
        scheme, netloc = match.groups()
        if "@" not in netloc:
            return match.group(0)
        creds, host = netloc.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}{creds}@{host}"

    text = _URL_AUTHORITY.sub(authority, text)
    return _PASSWORD_VALUE.sub(lambda m: m.group(1) + "***", text)


def check_store_urls(storage: str, tracking: str, src: str) -> None:
    """`storage` and `tracking` that name no store, refused when the job is read (before Ray
    or a study): an empty string (it opened the job's folder as a file), `sqlite:/x` with one
    slash (a journal file named `sqlite:/x` was made), a scheme MLflow does not know (`ftp://`,
    refused by MLflow only after Ray had started)."""
    fix = {
        "storage": "sqlite:///FILE.db (relative to the job file), postgresql://..., or a journal "
        "file path",
        "tracking": "sqlite:///FILE.db, http(s)://HOST:PORT of an MLflow server, or file:FOLDER",
    }
    for key, url in (("storage", storage), ("tracking", tracking)):
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if not url.strip():
            raise UserError(f"{src}: `{key}` is empty; give {fix[key]}")
        if url.lower().startswith("sqlite:") and not url.lower().startswith("sqlite:///"):
            raise UserError(f"{src}: `{key}` {redact(url)} is not a SQLite URL; write {fix[key]}")
        if key == "tracking" and scheme and scheme.split("+")[0] not in TRACKING_SCHEMES:
            raise UserError(
                f"{src}: `tracking` {redact(url)} is not an MLflow tracking URI; give {fix[key]}"
            )
