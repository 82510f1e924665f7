"""A real OpenAI-compatible server on loopback for the judge's tests (the `judge_server` fixture).

`server.mode` scripts its chat answers:

    ok        ratings as JSON (answer non-empty: precision and references 5, else 2; logic 4,
              theme 5, redundancy 5), after a short preamble
    prose     the same ratings as prose lines ("Precision: 5/5 ...")
    garbage   unparsable text
    flaky     garbage on every first request of a question, then ok
    reminded  garbage until the request carries the format reminder, then ok
    slow      ok after 1 s
    harsh     rates everything 2 (a judge that does not follow the rubric)
    html      an HTML page with status 200
    empty     status 200 with an empty body
    down500   HTTP 500 to every chat request

`server.key`: when set, chat (and /models unless `models_public`) answer 401 to any other
Bearer token. `server.models`: the ids GET /v1/models lists (None: the route answers 404).
`server.schema`: "accept" (use `response_format`), "reject" (HTTP 400 when a request has it).
Every reply reports `usage` (prompt tokens: the prompt's words; completion tokens: 7).
`server.seen` records (authorization header, body) of every chat request.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GOOD = {"precision": 5, "references": 5, "logic": 4, "theme": 5, "redundancy": 5}


class Handler(BaseHTTPRequestHandler):
    server: Any

    def do_GET(self) -> None:
        s = self.server
        if self.path != "/v1/models" or s.models is None:
            return self._send(404, b'{"error": {"message": "not found"}}')
        if s.key and not s.models_public and not self._authorized():
            return self._send(401, b'{"error": {"message": "Invalid API Key"}}')
        if s.mode == "html":
            return self._send(200, b"<html><body>web UI</body></html>", "text/html")
        if s.mode == "empty":
            return self._send(200, b"")
        data = {"object": "list", "data": [{"id": m, "object": "model"} for m in s.models]}
        self._send(200, json.dumps(data).encode())

    def do_POST(self) -> None:
        s = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with s.lock:
            s.seen.append((self.headers.get("Authorization"), body))
            prompt = body["messages"][1]["content"]
            n = s.counts[prompt] = s.counts.get(prompt, 0) + 1
        if self.path != "/v1/chat/completions":
            return self._send(404, b'{"error": {"message": "not found"}}')
        if s.key and not self._authorized():
            return self._send(401, b'{"error": {"message": "Invalid API Key", "code": 401}}')
        if s.schema == "reject" and "response_format" in body:
            return self._send(400, b'{"error": {"message": "response_format is not supported"}}')
        if s.mode == "html":
            return self._send(200, b"<!doctype html><html>oops</html>", "text/html")
        if s.mode == "empty":
            return self._send(200, b"")
        if s.mode == "down500":
            return self._send(500, b'{"error": {"message": "model crashed"}}')
        if s.mode == "slow":
            time.sleep(1.0)
        text = self._answer(body, prompt, n)
        payload = {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 7},
        }
        self._send(200, json.dumps(payload).encode())

    def _answer(self, body: dict[str, Any], prompt: str, n: int) -> str:
        mode = self.server.mode
        answer = prompt.rsplit("MODEL ANSWER: ", 1)[-1]
        rating = 5 if answer.strip() else 2
        scores = {**GOOD, "precision": rating, "references": rating}
        if mode == "harsh":
            scores = dict.fromkeys(GOOD, 2)
        reminded = any("could not be read" in m["content"] for m in body["messages"][2:])
        if (
            mode == "garbage"
            or (mode == "flaky" and n == 1)
            or (mode == "reminded" and not reminded)
        ):
            return "I cannot rate this."
        if mode == "prose":
            names = ("Precision and conciseness", "Contextual references", "Logic", "Theme")
            lines = [f"**{k}**: {v}/5" for k, v in zip(names, scores.values(), strict=False)]
            return "\n".join([*lines, f"Absence of redundancy - {scores['redundancy']}"])
        if "response_format" in body:
            return json.dumps(scores)
        return "Ratings: " + json.dumps(scores)

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.server.key}"

    def _send(self, status: int, payload: bytes, kind: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass

    def log_message(self, *args: Any) -> None:
        pass


def start_server() -> Any:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.mode = "ok"
    server.key = None
    server.models = ["judge-7b", "judge-x"]
    server.models_public = False
    server.schema = "accept"
    server.seen = []
    server.counts = {}
    server.lock = threading.Lock()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server
