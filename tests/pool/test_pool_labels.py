"""`python:MODULE:FUNCTION` label rules import MODULE from the current folder first, as
`python -m` does, and a module that is nowhere is refused naming where it was looked for."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ablate.errors import UserError
from ablate.pool.labels import parse_rule


def test_a_rules_module_in_the_current_folder_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cwd_rules_for_tests.py").write_text(
        "def kind(record):\n    return 'many' if record['n_images'] > 1 else 'few'\n"
    )
    monkeypatch.chdir(tmp_path)
    # As the `ablate` script runs: neither the current folder nor "" on the import path.
    here = {"", os.getcwd(), str(tmp_path)}
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in here])
    monkeypatch.delitem(sys.modules, "cwd_rules_for_tests", raising=False)
    rule = parse_rule("k", "python:cwd_rules_for_tests:kind")
    assert rule.apply({"id": "a"}, 2, 1) == "many"
    monkeypatch.delitem(sys.modules, "cwd_rules_for_tests")


def test_a_missing_rules_module_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(UserError, match=r"cannot import no_rules_here_xyz .*current folder"):
        parse_rule("k", "python:no_rules_here_xyz:kind")
