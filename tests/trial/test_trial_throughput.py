"""The throughput benchmark runs on tiny shapes on the CPU, so it stays runnable (CI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from paths_for_tests import REPO

SCRIPT = REPO / "benchmarks" / "trainer_throughput.py"


@pytest.mark.slow
def test_trainer_throughput_runs_tiny(tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--out", str(out)], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    result = json.loads(out.read_text())
    assert result["device"] == "cpu"
    # the length distribution of DESIGN.md's recipe: mean about 1,100 tokens
    assert 900 < result["length_mean"] < 1300
    # grouping similar lengths removes most of the padding of random batches
    assert result["pad_share_grouped_b8"] < 0.25 * result["pad_share_random_b8"]
    tiny = result["shapes"]["tiny"]
    assert tiny["plain_tokens_per_s"] > 0 and tiny["ablate_tokens_per_s"] > 0
    assert tiny["ablate_pad_share"] == 0.0  # packed rows: no padding at all
    assert tiny["ablate_best_setting"] == {"pack_tokens": 512, "checkpointing": False}
    # the resident switch redraws the adapter in place: a small part of a one-step trial
    assert 0 < tiny["switch_s"] < tiny["resident_s"] and tiny["cold_s"] > 0
