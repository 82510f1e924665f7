"""The judge's SQLite cache: verdicts, the raw replies it could not read, and the rubric texts.

Tables: `verdicts` (key -> scores, by judge model and rubric version), `unparsable` (key -> the
judge's last raw reply and why it could not be read, for inspection: `sqlite3 CACHE "select
raw, reason from unparsable"`), `rubrics` (rubric version -> sha256 of its text: a version
whose text changed would mix verdicts of two rubrics under one key, and is refused).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from ablate.bench.spec import JudgeSpec
from ablate.errors import UserError

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, judge_model TEXT, "
    "rubric_version INTEGER, scores TEXT, created REAL)",
    "CREATE TABLE IF NOT EXISTS unparsable (key TEXT PRIMARY KEY, judge_model TEXT, "
    "rubric_version INTEGER, raw TEXT, reason TEXT, created REAL)",
    "CREATE TABLE IF NOT EXISTS rubrics (version INTEGER PRIMARY KEY, sha256 TEXT, created REAL)",
)


def cache_path(spec: JudgeSpec, base_dir: Path) -> Path:
    """`judge.cache` relative to the bench file's folder; default `~/.cache/ablate/judge.sqlite`."""
    if spec.cache:
        path = Path(spec.cache).expanduser()
        return path if path.is_absolute() else base_dir / path
    return Path.home() / ".cache" / "ablate" / "judge.sqlite"


class JudgeCache:
    """One connection shared by the judging threads (a lock around each statement)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
            with self.db:
                for statement in _SCHEMA:
                    self.db.execute(statement)
        except (OSError, sqlite3.Error) as err:
            raise UserError(
                f"the judge's cache {path} cannot be opened ({err}); set `judge.cache` in the "
                "bench file to a writable file"
            ) from None
        self.lock = threading.Lock()

    def check_rubric(self, version: int, text: str) -> None:
        """Record the rubric text of `version`; refuse one whose text differs from the record."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        with self.lock, self.db:
            # one statement, not select-then-insert: two workers' first trials open the cache
            # at once (the second insert failed on the primary key); the first text stays
            self.db.execute(
                "INSERT OR IGNORE INTO rubrics VALUES (?, ?, ?)", (version, digest, time.time())
            )
            row = self.db.execute(
                "SELECT sha256 FROM rubrics WHERE version = ?", (version,)
            ).fetchone()
        if row[0] != digest:
            raise UserError(
                f"the judge's cache {self.path} has verdicts for rubric version {version} under "
                "another rubric text: they would mix with this one's; bump `judge."
                "rubric_version` in the bench file, or point `judge.cache` at another file"
            )

    def get(self, key: str) -> dict[str, int] | None:
        with self.lock:
            row = self.db.execute("SELECT scores FROM verdicts WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, model: str, version: int, scores: dict[str, int]) -> None:
        with self.lock, self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?)",
                (key, model, version, json.dumps(scores), time.time()),
            )
            self.db.execute("DELETE FROM unparsable WHERE key = ?", (key,))

    def put_unparsable(self, key: str, model: str, version: int, raw: str, reason: str) -> None:
        """Keep the judge's last raw reply to an answer it never rated usably."""
        with self.lock, self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO unparsable VALUES (?, ?, ?, ?, ?, ?)",
                (key, model, version, raw, reason, time.time()),
            )

    def unparsable(self, key: str) -> tuple[str, str] | None:
        """(raw reply, reason) kept for `key`, if any."""
        with self.lock:
            row = self.db.execute(
                "SELECT raw, reason FROM unparsable WHERE key = ?", (key,)
            ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def close(self) -> None:
        with self.lock:
            self.db.close()
