"""`ablate propose --volume` on a training job refuses mixtures the pool cannot supply before
anything is enqueued (a sweep would fail each of their trials)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ablate.analysis.load import result_trial
from ablate.config import to_dict
from ablate.design import proportions_for_balance
from ablate.study import open_study

SKILLS = ["colors", "layout", "compare", "lists"]


def _study(job: Any) -> None:
    import optuna

    study = optuna.create_study(study_name=job.study, storage=job.storage_url, direction="maximize")
    rng = np.random.default_rng(0)
    for volume in (100, 200, 400):
        for balance in (0.4, 0.7, 1.0):
            props = proportions_for_balance(SKILLS, balance)
            for seed in (0, 1):
                value = 0.3 + 0.1 * balance + rng.normal(0, 0.01)
                name = f"v{volume}-b{balance:.2f}-s{seed}"
                study.add_trial(result_trial(props, volume, seed, name, value, {}, 1.0))


def test_propose_refuses_a_volume_the_pool_cannot_supply(
    train_job: Any, tmp_path: Path, capsys: Any
) -> None:
    from ablate.cli import main

    job = train_job()
    _study(job)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(to_dict(job)))
    before = len(open_study(job, create=False).get_trials())
    # the tiny world's pool holds a few hundred rows of each skill
    assert main(["propose", str(path), "-n", "1", "--volume", "50000", "--seeds", "0"]) == 2
    err = capsys.readouterr().err
    assert "ablate propose --volume 50000 (proposal 1; nothing enqueued)" in err
    assert "the pool has" in err and "Traceback" not in err
    assert len(open_study(job, create=False).get_trials()) == before
    assert main(["propose", str(path), "-n", "1", "--volume", "200", "--seeds", "0"]) == 0
    assert len(open_study(job, create=False).get_trials()) == before + 1
