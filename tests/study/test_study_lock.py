"""The driver lock as `ablate status` sees it."""

from __future__ import annotations

import fcntl
import os

from ablate.study import driver_lock, lock_file, open_study
from ablate.sweep import study_status


def test_status_names_a_driver_that_holds_the_lock_before_writing_its_record(make_job) -> None:
    """Between a driver's `flock` and the write of its host and pid, `ablate status` said
    "driver: none running"."""
    job = make_job()
    study = open_study(job)
    path = lock_file(job)
    assert path is not None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held, nothing written yet
        assert "driver: one is starting" in study_status(job)
    finally:
        os.close(fd)
    assert "driver: none running" in study_status(job)
    with driver_lock(job, study):
        assert f"pid {os.getpid()}" in study_status(job)
