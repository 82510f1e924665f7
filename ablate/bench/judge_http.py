"""The judge's wire: an OpenAI-compatible server over HTTP (stdlib urllib), and what is recorded
of it.

    judge_key(spec, dir)   the API key on this node: the variable `api_key_env` names, else the
                           file `api_key_file` names (never logged, never sent but as a header)
    endpoint(url)          the URL without credentials, query or fragment: all that is recorded
    judge_identity(spec)   model, endpoint, host, rubric version and settings (no key)
    post_chat(...)         one chat completion -> Reply (text, token usage)
    get_models(...)        the model ids the server lists (None when it offers no list)

A failed request raises `JudgeHTTPError` with its `kind`: `auth` (HTTP 401/403: the key),
`transport` (refused, timed out, reset, unknown host, any other HTTP error, a body that is HTML,
empty or not JSON). The messages never contain the key: a server that echoes it is scrubbed.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from ablate.bench.spec import JudgeSpec
from ablate.errors import UserError

#: `response_format` levels, tried in this order: a JSON schema, then none (prose, parsed
#: tolerantly) once the server rejects the schema.
OUTPUT_SCHEMA = "json_schema"
OUTPUT_PROSE = "prose"
#: HTTP statuses by which a server says it does not take the request's `response_format`.
FORMAT_REJECTED = (400, 415, 422, 501)


class JudgeHTTPError(Exception):
    """A judge request that failed; `kind` is `auth` or `transport`, `status` the HTTP status."""

    def __init__(self, kind: str, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status


@dataclass
class Reply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


def key_file(spec: JudgeSpec, base_dir: Path) -> Path | None:
    """`judge.api_key_file`, relative to the bench file's folder `base_dir`."""
    if not spec.api_key_file:
        return None
    path = Path(spec.api_key_file).expanduser()
    return path if path.is_absolute() else base_dir / path


def judge_key(spec: JudgeSpec, base_dir: Path) -> str | None:
    """The API key as this node sees it: `$api_key_env` when set, else the `api_key_file`'s
    first line; None when the judge names neither. A named source that gives nothing is a
    UserError naming the variable and the file (never a value)."""
    if not spec.api_key_env and not spec.api_key_file:
        return None
    if spec.api_key_env and os.environ.get(spec.api_key_env):
        return os.environ[spec.api_key_env].strip()
    path = key_file(spec, base_dir)
    if path is not None and path.is_file():
        text = path.read_text().strip()
        if text:
            return text.splitlines()[0].strip()
    where = []
    if spec.api_key_env:
        where.append(f"${spec.api_key_env} (not set on {socket.gethostname()})")
    if path is not None:
        where.append(f"`judge.api_key_file` {path} ({'empty' if path.is_file() else 'missing'})")
    fix = (
        f"export {spec.api_key_env}=... before `ablate` (on a Ray cluster: before `ray start` "
        "on each node, or name a key file every node reads in `judge.api_key_file`)"
        if spec.api_key_env
        else f"write the key into {path}"
    )
    _no_key(" nor ".join(where), fix)


def _no_key(where: str, fix: str) -> NoReturn:
    raise UserError(
        f"the bench's judge has no API key: neither {where} gives one; {fix}, or remove "
        "`judge.api_key_env` / `judge.api_key_file` for a server without a key"
    )


def endpoint(url: str) -> str:
    """`url` without user:password@, query string or fragment (what logs and records show)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def host_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


def judge_identity(spec: JudgeSpec, output: str = OUTPUT_SCHEMA) -> dict[str, Any]:
    """Who judged and how: recorded with every judged trial, study and sweep run (never the
    key, its variable's value or the URL's query string)."""
    return {
        "model": spec.model,
        "host": host_of(spec.url),
        "url": endpoint(spec.url),
        "rubric_version": spec.rubric_version,
        "output": output,
        "max_tokens": spec.max_tokens,
        "temperature": 0,
        "retries": spec.retries,
        "timeout_s": spec.timeout_s,
    }


def judge_label(identity: dict[str, Any]) -> str:
    """`MODEL at HOST (rubric vN)`: the judge in one phrase (reports, tags, console)."""
    return (
        f"{identity.get('model')} at {identity.get('host')} "
        f"(rubric v{identity.get('rubric_version')})"
    )


def chat_body(
    spec: JudgeSpec, messages: list[dict[str, str]], output: str, schema: dict[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": spec.model,
        "temperature": 0,
        "max_tokens": spec.max_tokens,
        "messages": messages,
    }
    if output == OUTPUT_SCHEMA:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "mmcr_rating", "strict": True, "schema": schema},
        }
    return body


def post_chat(
    spec: JudgeSpec, body: dict[str, Any], key: str | None, timeout: float | None = None
) -> Reply:
    """POST URL/chat/completions; the reply's text (content, else reasoning_content) and usage.

    A 200 JSON reply without text is a Reply with the raw body as text (the caller's parser
    calls it unparsable and keeps it)."""
    url = spec.url.rstrip("/") + "/chat/completions"
    data = _request(url, key, timeout or spec.timeout_s, json.dumps(body).encode())
    usage = data.get("usage") if isinstance(data, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    try:
        message = data["choices"][0]["message"]
        text = message.get("content") or message.get("reasoning_content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        text = ""
    return Reply(
        text=str(text) if text else json.dumps(data)[:2000],
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
    )


def get_models(spec: JudgeSpec, key: str | None, timeout: float) -> list[str] | None:
    """The ids of GET URL/models; None when the server has no such route (HTTP 404/405)."""
    try:
        data = _request(spec.url.rstrip("/") + "/models", key, timeout, None)
    except JudgeHTTPError as err:
        if err.status in (404, 405, 501):
            return None
        raise
    items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list):
        items = data.get("models") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    ids = [
        str(m.get("id") or m.get("name") or m.get("model")) for m in items if isinstance(m, dict)
    ]
    return [i for i in ids if i and i != "None"]


def _request(url: str, key: str | None, timeout: float, payload: bytes | None) -> Any:
    """The JSON body of one request; a JudgeHTTPError for anything else."""
    headers = {"Accept": "application/json"}
    if payload is not None:
        headers["Content-Type"] = "application/json"
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        url, data=payload, headers=headers, method="POST" if payload is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            kind = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        text = _scrub(_server_message(err), key)
        auth = err.code in (401, 403)
        raise JudgeHTTPError(
            "auth" if auth else "transport", f"HTTP {err.code} {err.reason}{text}", err.code
        ) from None
    except TimeoutError:
        raise JudgeHTTPError("transport", f"no answer within {timeout:g} s (timed out)") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, ConnectionRefusedError):
            raise JudgeHTTPError("transport", "connection refused") from None
        if isinstance(reason, TimeoutError | socket.timeout):
            raise JudgeHTTPError(
                "transport", f"no answer within {timeout:g} s (timed out)"
            ) from None
        raise JudgeHTTPError("transport", _scrub(str(reason), key)) from None
    return _json_body(raw, kind, key)


def _json_body(raw: bytes, content_type: str, key: str | None) -> Any:
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        raise JudgeHTTPError("transport", "answered HTTP 200 with an empty body", 200)
    if "html" in content_type.lower() or text[:1] == "<":
        raise JudgeHTTPError("transport", "answered HTML, not JSON (a web page, not the API)", 200)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise JudgeHTTPError(
            "transport", f"answered a body that is not JSON: {_scrub(text[:80], key)!r}", 200
        ) from None


def _server_message(err: urllib.error.HTTPError) -> str:
    """The server's own words for an HTTP error (OpenAI style `error.message`), short."""
    try:
        text = err.read().decode("utf-8", errors="replace").strip()
    except Exception:
        return ""
    try:
        data = json.loads(text)
        error = data.get("error", data) if isinstance(data, dict) else data
        text = str(error.get("message", error) if isinstance(error, dict) else error)
    except (json.JSONDecodeError, AttributeError):
        pass
    text = " ".join(text.split())
    return f": {text[:160]}" if text and not text.startswith("<") else ""


def _scrub(text: str, key: str | None) -> str:
    """`text` with the key (and its tail, as some servers echo `sk-...abcd`) masked."""
    if key and len(key) >= 4:
        text = text.replace(key, "***")
        if len(key) >= 12:
            text = text.replace(key[-6:], "***")
    return text


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
