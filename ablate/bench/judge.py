"""An LLM judge over an OpenAI-compatible chat-completions endpoint, for open answers.

Rubric (version 1): the judge rates a model's answer to one question of a multi-turn dialogue,
given the dialogue so far and a reference answer, on MMCR's five dimensions, each an integer
1..5 (1 = fails, 3 = acceptable with flaws, 5 = fully meets the criterion):

- `precision`: precision and conciseness (correct, to the point);
- `references`: consistency of contextual references (pronouns and "that image" resolve to the
  right earlier entity);
- `logic`: logical contextual relationship (follows from the earlier turns, no contradiction);
- `theme`: clarity of dialogue theme (stays on the dialogue's topic);
- `redundancy`: absence of redundancy (5 = nothing repeated or padded).

Aggregates (see `judge_metrics`): `overall_accuracy` = share of scored answers whose mean rating
is >= 4; `contextual_accuracy` = share of scored answers rated >= 4 on both context dimensions
(`references` and `logic`); `judge_score` = mean rating over all five dimensions scaled to 0..1
as (r - 1) / 4; `judge/<dimension>` = mean 1..5 rating; `judge_unscored` = answers the judge
never rated usably (after retries): they count in no denominator, never as 0.

Verdicts are cached in SQLite by (judge model, rubric version, question, answer), where the
question is the dialogue context plus the question and the reference: re-scoring costs nothing.
The API key is read from the environment variable the bench names and is sent only in the
Authorization header; it is never logged or stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.bench.spec import JudgeSpec
from ablate.errors import UserError

RUBRIC_VERSION = 1
DIMENSIONS = ("precision", "references", "logic", "theme", "redundancy")
CONTEXT_DIMENSIONS = ("references", "logic")

RUBRIC = """You are grading one answer in a multi-turn dialogue about images.
Rate the MODEL ANSWER against the dialogue so far and the REFERENCE ANSWER on five dimensions,
each an integer from 1 (fails) through 3 (acceptable with flaws) to 5 (fully meets it):
- precision: precision and conciseness: correct and to the point;
- references: consistency of contextual references: pronouns and references to earlier turns or
  images resolve to the right entity;
- logic: logical contextual relationship: follows from the earlier turns without contradiction;
- theme: clarity of dialogue theme: stays on the topic of the dialogue;
- redundancy: absence of redundancy: 5 when nothing is repeated or padded.
Reply with one JSON object and nothing else, for example
{"precision": 4, "references": 5, "logic": 4, "theme": 5, "redundancy": 5}"""


@dataclass(frozen=True)
class JudgeItem:
    context: str
    """The dialogue so far, as `role: text` lines (images shown as <image>)."""
    question: str
    reference: str
    answer: str


@dataclass
class Verdict:
    scores: dict[str, int] | None
    """Dimension -> 1..5; None when unscored."""
    judge: dict[str, Any]
    """Who judged: model, rubric version, endpoint (never the key)."""
    error: str | None = None
    """Why it is unscored (last failure after the retries)."""
    cached: bool = False
    attempts: int = 0


@dataclass
class JudgeRun:
    verdicts: list[Verdict]
    requests: int = 0
    cache_hits: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def cache_key(model: str, rubric_version: int, item: JudgeItem) -> str:
    question = json.dumps([item.context, item.question, item.reference])
    payload = json.dumps([model, rubric_version, question, item.answer])
    return hashlib.sha256(payload.encode()).hexdigest()


def parse_scores(text: str) -> dict[str, int]:
    """The first JSON object in `text` with an integer 1..5 for every dimension."""
    match = re.search(r"\{.*?\}", text, flags=re.S)
    if not match:
        raise ValueError("no JSON object in the judge's answer")
    data = json.loads(match.group(0))
    out = {}
    for dim in DIMENSIONS:
        value = data.get(dim)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 5:
            raise ValueError(f"dimension {dim!r} is {value!r}, not a rating 1..5")
        out[dim] = round(value)
    return out


def _cache_path(spec: JudgeSpec, base_dir: Path) -> Path:
    if spec.cache:
        path = Path(spec.cache).expanduser()
        return path if path.is_absolute() else base_dir / path
    return Path.home() / ".cache" / "ablate" / "judge.sqlite"


class _Cache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        self.lock = threading.Lock()
        with self.lock, self.db:
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, judge_model TEXT, "
                "rubric_version INTEGER, scores TEXT, created REAL)"
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


def _ask(spec: JudgeSpec, item: JudgeItem, key: str | None) -> str:
    body = {
        "model": spec.model,
        "temperature": 0,
        "max_tokens": spec.max_tokens,
        "messages": [
            {"role": "system", "content": RUBRIC},
            {
                "role": "user",
                "content": f"DIALOGUE SO FAR:\n{item.context}\n\nQUESTION: {item.question}\n"
                f"REFERENCE ANSWER: {item.reference}\nMODEL ANSWER: {item.answer}",
            },
        ],
    }
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        spec.url.rstrip("/") + "/chat/completions",
        data=json.dumps(body).encode(),
        headers=headers,
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=spec.timeout_s) as response:
        data = json.loads(response.read().decode())
    return str(data["choices"][0]["message"]["content"])


def judge_answers(spec: JudgeSpec, items: Sequence[JudgeItem], base_dir: Path) -> JudgeRun:
    """Rate every item (cached verdicts first); failures are retried, then left unscored."""
    key = None
    if spec.api_key_env:
        key = os.environ.get(spec.api_key_env)
        if not key:
            raise UserError(
                f"the bench's judge reads its API key from ${spec.api_key_env}, which is not "
                "set; export it (or remove `judge.api_key_env` for a server without a key)"
            )
    identity = {"model": spec.model, "rubric_version": spec.rubric_version, "url": spec.url}
    cache = _Cache(_cache_path(spec, base_dir))
    run = JudgeRun(verdicts=[])
    lock = threading.Lock()

    def one(item: JudgeItem) -> Verdict:
        ck = cache_key(spec.model, spec.rubric_version, item)
        hit = cache.get(ck)
        if hit is not None:
            with lock:
                run.cache_hits += 1
            return Verdict(scores=hit, judge=identity, cached=True)
        error = "no attempt"
        for attempt in range(1, spec.retries + 2):
            with lock:
                run.requests += 1
            try:
                scores = parse_scores(_ask(spec, item, key))
            except (TimeoutError, urllib.error.URLError, OSError) as err:
                error = f"request failed: {getattr(err, 'reason', err)}"
                kind = "timeout" if "timed out" in str(err) else "http"
            except (ValueError, KeyError, IndexError, TypeError) as err:
                error = f"unparsable answer: {err}"
                kind = "unparsable"
            else:
                cache.put(ck, spec.model, spec.rubric_version, scores)
                return Verdict(scores=scores, judge=identity, attempts=attempt)
            with lock:
                run.errors[kind] = run.errors.get(kind, 0) + 1
            time.sleep(min(2.0, 0.1 * 2**attempt))  # back off before the retry
        return Verdict(scores=None, judge=identity, error=error, attempts=spec.retries + 1)

    with ThreadPoolExecutor(max_workers=max(1, spec.concurrency)) as pool:
        run.verdicts = list(pool.map(one, items))
    return run


def judge_metrics(verdicts: Sequence[Verdict]) -> dict[str, float]:
    """The judge's aggregates (see the module docstring for the definitions)."""
    scored = [v.scores for v in verdicts if v.scores is not None]
    out: dict[str, float] = {"judge_unscored": float(len(verdicts) - len(scored))}
    if not scored:
        return out
    n = len(scored)
    out["overall_accuracy"] = sum(sum(s.values()) / len(DIMENSIONS) >= 4 for s in scored) / n
    out["contextual_accuracy"] = sum(all(s[d] >= 4 for d in CONTEXT_DIMENSIONS) for s in scored) / n
    out["judge_score"] = sum((sum(s.values()) / len(DIMENSIONS) - 1) / 4 for s in scored) / n
    for dim in DIMENSIONS:
        out[f"judge/{dim}"] = sum(s[dim] for s in scored) / n
    return out
