"""Every job file in jobs/ loads, opens with the command that runs it, and checks cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from paths_for_tests import REPO

from ablate.plan import design_mixtures, job_task_types, load_job

JOBS = sorted((REPO / "jobs").glob("*.yaml"))


def test_there_are_shipped_jobs() -> None:
    names = {p.name for p in JOBS}
    assert {"demo.yaml", "less_is_more.yaml", "search.yaml"} <= names


@pytest.mark.parametrize("path", JOBS, ids=[p.name for p in JOBS])
def test_job_loads_and_opens_with_its_command(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ablate ")  # the command that runs it (demo: `ablate demo`)
    job = load_job(path)
    # every shipped job lists its task types, so its design is checked without its pool
    # (train jobs' pools are made by `ablate demo` or imported by the user)
    assert job.task_types, f"{path.name}: list `task_types`"
    mixtures = design_mixtures(job, job_task_types(job))
    if job.design.kind == "search":
        assert job.design.n_trials >= len(mixtures) >= 1
    else:
        assert len(mixtures) == len(job.design.volumes) * len(job.design.balance) * len(
            job.design.seeds
        )
