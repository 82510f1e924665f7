"""The judge's checks before any training, each failure against a real loopback server: one
line naming the cause, within seconds, never the key."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from ablate.bench import JudgeSpec
from ablate.bench.preflight import check_judge
from ablate.errors import UserError

KEY = "sk-right-key-0123456789"
RECORDS = [
    {
        "id": f"d{i}",
        "n_history": 0,
        "conversations": [
            {"from": "human", "value": f"<image> What is shape {i}?"},
            {"from": "gpt", "value": f"A circle number {i}."},
        ],
    }
    for i in range(5)
]


def _check(server: Any, tmp_path: Path, probe: bool = True, **kw: Any) -> Any:
    spec = JudgeSpec(
        **{"url": server.url, "model": "judge-7b", "cache": str(tmp_path / "c.sqlite"), **kw}
    )
    return check_judge(spec, tmp_path / "bench.yaml", RECORDS, probe)


def _fails(server: Any, tmp_path: Path, **kw: Any) -> str:
    start = time.perf_counter()
    with pytest.raises(UserError) as err:
        _check(server, tmp_path, **kw)
    assert time.perf_counter() - start < 30
    msg = str(err.value)
    assert "\n" not in msg and KEY not in msg and "Traceback" not in msg
    assert msg.startswith(f"{tmp_path / 'bench.yaml'}: judge check (before any training): ")
    return msg.split("(before any training): ", 1)[1]


def test_a_judge_that_works_passes_and_says_what_was_checked(
    judge_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_KEY", KEY)
    judge_server.key = KEY
    check = _check(judge_server, tmp_path, api_key_env="JUDGE_KEY")
    assert check.models == ["judge-7b", "judge-x"] and check.probe == [4.8, 4.8, 4.8]
    assert check.identity["output"] == "json_schema" and KEY not in repr(check)
    assert check.line().startswith(f"judge judge-7b at {judge_server.url} (rubric v1, output ")
    # the known pair, then 3 probe items (spread over the bench), each its own reference
    answers = [
        b["messages"][1]["content"].rsplit("MODEL ANSWER: ", 1)[1] for _, b in judge_server.seen
    ]
    assert sorted(answers[1:]) == ["A circle number 0.", "A circle number 1.", "A circle number 2."]


def test_an_unset_key_variable(judge_server: Any, tmp_path: Path) -> None:
    msg = _fails(judge_server, tmp_path, api_key_env="ABLATE_NOT_SET_ANYWHERE")
    assert msg.startswith("the bench's judge has no API key: neither $ABLATE_NOT_SET_ANYWHERE")
    assert not judge_server.seen  # nothing was asked


def test_a_wrong_key(judge_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    judge_server.key = KEY
    monkeypatch.setenv("JUDGE_KEY", "sk-wrong-0123456789")
    msg = _fails(judge_server, tmp_path, api_key_env="JUDGE_KEY")
    assert msg == (
        f"{judge_server.url} refused the API key from $JUDGE_KEY (HTTP 401 Unauthorized: "
        "Invalid API Key); check the key"
    )
    assert "sk-wrong" not in msg
    # llama.cpp lists its models without a key: the test rating finds the wrong key
    judge_server.models_public = True
    msg = _fails(judge_server, tmp_path, api_key_env="JUDGE_KEY")
    assert (
        msg.startswith("the test rating failed: ") and "refused the API key from $JUDGE_KEY" in msg
    )
    assert len(judge_server.seen) == 1  # a refused key is not retried


def test_a_dead_server_and_one_that_never_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ablate.bench import preflight

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = type("Dead", (), {"url": f"http://127.0.0.1:{port}/v1"})()
    assert _fails(dead, tmp_path) == (
        f"nothing answers at 127.0.0.1:{port} (connection refused); start the judge server or "
        "correct `judge.url`"
    )
    monkeypatch.setattr(preflight, "SERVER_TIMEOUT_S", 0.5)
    with socket.socket() as hole:  # accepts connections, never answers
        hole.bind(("127.0.0.1", 0))
        hole.listen()
        port = hole.getsockname()[1]
        mute = type("Mute", (), {"url": f"http://127.0.0.1:{port}/v1"})()
        msg = _fails(mute, tmp_path)
    assert msg.startswith(f"127.0.0.1:{port} did not answer GET /models: no answer")
    assert "timed out" in msg


def test_a_model_the_server_does_not_list(judge_server: Any, tmp_path: Path) -> None:
    assert _fails(judge_server, tmp_path, model="judge-70b") == (
        f"{judge_server.url} does not serve the model `judge-70b` (it lists: judge-7b, judge-x); "
        "set `judge.model` to the name the server lists"
    )
    judge_server.models = None  # no /models route: the test rating decides
    assert _check(judge_server, tmp_path, model="judge-70b").models is None


def test_a_url_without_v1(judge_server: Any, tmp_path: Path) -> None:
    bare = judge_server.url.removesuffix("/v1")
    assert _fails(judge_server, tmp_path, url=bare) == (
        f"`judge.url` {bare} has no /v1: an OpenAI-compatible API answers under it; write {bare}/v1"
    )
    msg = _fails(judge_server, tmp_path, url=bare + "/api")
    assert msg.endswith(
        "HTTP 404 Not Found: not found; is `judge.url` the API's base URL, ending in /v1?"
    )
    assert _fails(judge_server, tmp_path, url="localhost:8000").startswith(
        "`judge.url` 'localhost:8000' is not an http(s) URL with a host"
    )


def test_html_and_empty_bodies(judge_server: Any, tmp_path: Path) -> None:
    hint = "; is `judge.url` the API's base URL, ending in /v1?"
    judge_server.mode = "html"
    assert _fails(judge_server, tmp_path) == (
        f"{judge_server.url}/models answered HTML, not JSON (a web page, not the API){hint}"
    )
    judge_server.mode = "empty"
    assert _fails(judge_server, tmp_path) == (
        f"{judge_server.url}/models answered HTTP 200 with an empty body{hint}"
    )


def test_a_judge_that_cannot_follow_the_format(judge_server: Any, tmp_path: Path) -> None:
    judge_server.mode = "garbage"
    msg = _fails(judge_server, tmp_path, retries=1)
    assert msg.startswith("the judge's test rating could not be read after 2 attempts")
    assert "its reply: 'I cannot rate this.'" in msg


def test_the_sanity_probe_stops_a_judge_that_rates_references_low(
    judge_server: Any, tmp_path: Path
) -> None:
    judge_server.mode = "harsh"  # rates everything 2, even an answer equal to its reference
    msg = _fails(judge_server, tmp_path)
    assert msg.startswith("the test rating") is False
    assert msg == (
        "the judge rated 3 of 3 bench reference answers against themselves below 4 (mean "
        "ratings 2.0, 2.0, 2.0): it does not follow the rubric, and its scores would not "
        "measure the model; use a stronger judge model, or pass --skip-judge-probe to run anyway"
    )
    check = _check(judge_server, tmp_path, probe=False)  # the opt-out
    assert check.probe == [] and "probe skipped" in check.line()


def test_a_server_without_structured_output_is_checked_in_prose(
    judge_server: Any, tmp_path: Path
) -> None:
    judge_server.schema, judge_server.mode = "reject", "prose"
    assert _check(judge_server, tmp_path).identity["output"] == "prose"
