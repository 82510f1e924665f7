"""Paths and database URLs in config files: relative to the file's folder; the SQLite URL's path.

Every place that needs the file behind a `sqlite:///...` URL asks `sqlite_path` (one parser).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ablate.errors import UserError, did_you_mean

SQLITE_PREFIX = "sqlite:///"

#: A folder ablate fills with data (a pool, a world, the demo's output) carries this file. Ray's
#: `ray job submit --working-dir` leaves out what a `.rayignore` lists and refuses a working dir
#: whose zip is over 100 MiB (the job server's request body limit: "413: Maximum request body
#: size 104857600 exceeded", Ray 2.60), so a project folder holding pools of many GB still
#: submits, in seconds. On a cluster, data is read from a shared file system, never from the
#: uploaded working dir (README, "Run on a cluster").
RAY_IGNORE_FILE = ".rayignore"

#: Where Ray unpacks a job's working dir on a node: a data path under it came with the code.
RAY_WORKING_DIR = "runtime_resources/working_dir_files"


#: URI schemes an MLflow tracking store takes (databases through SQLAlchemy, a server, files).
TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks")
#: Database URL schemes an Optuna storage takes (SQLAlchemy dialects; `+driver` may follow).
STORAGE_SCHEMES = ("sqlite", "postgresql", "mysql", "mariadb", "mssql", "oracle")


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


#: `scheme://` and a user name, up to the `:` before a password.
_URL_USER = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^\s:/@'\"<>]*):")
#: The host (and port) after a URL's credentials, up to its path, query or the text's next word.
_URL_HOST = re.compile(r"[^\s/?#'\"<>]*")
#: A "password" that is a port followed by a path or words (`http://h:5000/x and a@b`).
_PORT_FIRST = re.compile(r"\d+(?:[/?#]\S*)?\s")
#: A `password=` value: a URL's query parameter (up to `&`) or a libpq keyword (quoted or not).
_PASSWORD_VALUE = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&#'\"<>;,)]*)", re.I)


def _password_span(text: str, start: int) -> int:
    """Where the password starting at `start` ends (its `@`), or -1 if no password starts there.

    As SQLAlchemy parses a URL, the password runs to the first `@` (so `/`, `?`, `#`, quotes and
    spaces are part of it: `postgresql://u:pa/ss@h/db` has password `pa/ss`), extended to the
    last `@` before the host's end (an unencoded `@`, `u:p@ss@h`). In free text a span holding
    whitespace is a password only if it does not read as a port and words or a quoted list
    (`http://h:5000 failed, mail a@b`)."""
    end = text.find("@", start)
    line_end = text.find("\n", start)
    if end < 0 or 0 <= line_end < end or "://" in text[start:end]:
        return -1
    span = text[start:end]
    if any(c.isspace() for c in span) and (
        _PORT_FIRST.match(span) or re.search(r"[\'\",;()]\s", span)
    ):
        return -1
    host = _URL_HOST.match(text, end + 1)
    assert host is not None  # the pattern matches the empty string
    return end + 1 + host.group(0).rfind("@") if "@" in host.group(0) else end


def redact(text: str) -> str:
    """A URL, or a message quoting URLs, without passwords: what every message, log line, param
    and tag shows. Only a URL's password field (`postgresql://user:secret@host` ->
    `postgresql://user:***@host`, whatever characters the password holds) and `password=`
    values (a URL's query parameter, `?password=secret`, or a libpq keyword string a driver
    echoes, `password='secret'`) become `***`; the rest of the text is left as it is, so a
    short password's letters elsewhere in a driver's message are neither starred nor revealed."""
    out, pos = [], 0
    for match in _URL_USER.finditer(text):
        if match.start() < pos:  # inside a password already starred
            continue
        end = _password_span(text, match.end())
        if end >= 0:
            out.append(text[pos : match.end()] + "***")
            pos = end
    text = "".join(out) + text[pos:]
    return _PASSWORD_VALUE.sub(lambda m: m.group(1) + "***", text)


def check_store_urls(storage: str, tracking: str, src: str) -> None:
    """`storage` and `tracking` that name no store, refused when the job is read (before Ray
    or a study): an empty string (it opened the job's folder as a file), `sqlite:/x` with one
    slash (a journal file named `sqlite:/x` was made), a scheme MLflow does not know (`ftp://`,
    refused by MLflow only after Ray had started), a storage scheme no database has
    (`postgresq://`: SQLAlchemy's NoSuchModuleError, said as a server problem)."""
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
        known = STORAGE_SCHEMES if key == "storage" else TRACKING_SCHEMES
        if key == "storage" and scheme and scheme.split("+")[0] not in known:
            raise UserError(
                f"{src}: `storage` {redact(url)}: `{scheme}://` is no database ablate knows"
                f"{did_you_mean(scheme.split('+')[0], known)}; give {fix[key]} (known "
                f"schemes: {', '.join(known)})"
            )
        if key == "tracking" and scheme and scheme.split("+")[0] not in known:
            raise UserError(
                f"{src}: `tracking` {redact(url)} is not an MLflow tracking URI; give {fix[key]}"
            )
