"""Real `ablate` processes killed at a chosen moment (crash tests: `kill -9` mid-command)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_cli(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    """`python -m ablate.cli ARGV` from the repository root, its stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "ablate.cli", *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def kill_when(
    proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str, poll: float = 0.002
) -> None:
    """SIGKILL `proc` as soon as `ready()` (the moment to test); fails when it exits first or
    `what` has not happened within 120 s."""
    try:
        deadline = time.monotonic() + 120
        while not ready():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, f"{what} never happened"
            time.sleep(poll)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
