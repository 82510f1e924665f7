"""Review q#10: the import's messages for three common shapes of published data pointed at the
wrong cause ("unknown role None", "no known layout has the keys ['messages']", "its footer is
damaged ... download the file again")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablate.errors import UserError
from ablate.pool import ImportRequest, import_pool


def error_of(source: Path, tmp_path: Path, **kw: str) -> str:
    with pytest.raises(UserError) as err:
        import_pool(ImportRequest(source=source, out=tmp_path / "pool", **kw))  # type: ignore[arg-type]
    return str(err.value)


def test_role_content_turns_under_conversations_name_the_keys(tmp_path: Path) -> None:
    src = tmp_path / "rc.jsonl"
    turns = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]
    src.write_text(json.dumps({"id": "s1", "conversations": turns}) + "\n")
    msg = error_of(src, tmp_path)
    assert "turn 0 has no `from` key (it has role, content); `conversations` turns are " in msg
    assert "{role, content} turns belong in `messages`" in msg and "None" not in msg


def test_messages_stored_as_json_text_says_so(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    turns = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]
    src = tmp_path / "m.parquet"
    pq.write_table(pa.table({"messages": [json.dumps(turns)]}), src)
    msg = error_of(src, tmp_path)
    assert "`messages` is a str (JSON text?), expected a list (the hf layout: " in msg
    assert "no known layout" not in msg


def test_parquet_forced_on_a_jsonl_file_says_what_it_is(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text('{"id": "a", "conversations": []}\n')
    assert error_of(src, tmp_path, format="parquet") == (
        f"{src}: is not a Parquet file (it starts like JSON lines); import it with --format jsonl"
    )
    (tmp_path / "b.parquet").write_bytes(b"PAR1 garbage")  # damaged: as before
    assert "download the file again" in error_of(tmp_path / "b.parquet", tmp_path)


def test_a_split_asked_of_a_single_file_is_refused(tmp_path: Path) -> None:
    """q#14: `--split tran` on a single Parquet file was ignored silently."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    turns = [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]
    src = tmp_path / "one.parquet"
    pq.write_table(pa.table({"id": ["a"], "conversations": [turns]}), src)
    assert error_of(src, tmp_path, split="tran").startswith(
        f"--split tran: {src} is one file, which holds no splits; drop --split"
    )
    assert import_pool(ImportRequest(source=src, out=tmp_path / "ok")).rows == 1
