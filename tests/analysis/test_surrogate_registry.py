"""The surrogate registry: a surrogate of a test's own runs through cross-validation and
proposals like the built-ins; a misspelt name fails with the closest one."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from ablate.analysis import SURROGATES, fit_surrogates
from ablate.analysis.propose import propose_and_enqueue
from ablate.config import to_dict
from ablate.errors import UserError

TYPES = ["caption", "count", "compare"]
TARGET = np.array([0.5, 0.3, 0.2])


class Nearest:
    """1-nearest neighbour on [p, z] (L1): the score of the closest trial."""

    def fit(self, p: np.ndarray, z: np.ndarray, y: np.ndarray) -> Nearest:
        self.x, self.y = np.column_stack([p, z]), y
        return self

    def predict(self, p: np.ndarray, z: np.ndarray) -> np.ndarray:
        x = np.column_stack([p, z])
        distance = np.abs(x[:, None, :] - self.x[None, :, :]).sum(axis=2)
        return np.asarray(self.y[distance.argmin(axis=1)])

    def refit_fixed(self, p: np.ndarray, z: np.ndarray, y: np.ndarray) -> Nearest:
        return Nearest().fit(p, z, y)


@pytest.fixture
def nearest() -> Iterator[str]:
    SURROGATES.register("nearest")(Nearest)
    try:
        yield "nearest"
    finally:
        SURROGATES.unregister("nearest")


def trial_table(n_mixtures: int = 30, seeds: int = 2) -> Any:
    """What `load` returns for a study of Dirichlet mixtures at 1,000 and 10,000 rows: the score
    falls with the L1 distance of the shares to TARGET, plus seed noise (seeded)."""
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_mixtures):
        p = rng.dirichlet(np.ones(len(TYPES)))
        volume = (1000, 10_000)[i % 2]
        for seed in range(seeds):
            score = 1 - np.abs(p - TARGET).sum() + 0.05 * math.log10(volume) + rng.normal(0, 0.01)
            row = {"trial": len(rows), "state": "COMPLETE", "value": score, "mixture": f"m{i}"}
            row |= {"volume": float(volume), "balance": 0.5, "seed": seed}
            row |= {f"p/{t}": float(x) for t, x in zip(TYPES, p, strict=True)}
            rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs.update({"study": "synthetic", "direction": "maximize", "task_types": TYPES})
    return df


def test_a_registered_surrogate_is_fitted_and_proposes(nearest: str) -> None:
    assert SURROGATES.names() == ["loglinear", "mixing_law", "gp", "ensemble", nearest]
    df = trial_table()
    sur = fit_surrogates(df)  # every registered surrogate, in registration order
    assert list(sur.cv) == ["loglinear", "mixing_law", "gp", "ensemble", nearest]
    cv = sur.cv[nearest]
    assert cv.folds == 5 and cv.spearman > 0.5, cv  # held out: a mixture is never its own neighbour
    (prop,) = sur.propose(10_000, n=1, name=nearest, n_candidates=500, n_boot=20)
    assert prop.model == nearest and prop.low <= prop.predicted <= prop.high
    # 1-NN predicts a tried score: the proposal's prediction is the best trial's at 10,000 rows
    at_10k = df[df["volume"] == 10_000]
    assert prop.predicted in set(at_10k["value"])
    alone = fit_surrogates(df, models=[nearest])
    assert list(alone.cv) == [nearest] and alone.best == nearest
    assert alone.cv[nearest].spearman == cv.spearman


def test_unregistered_surrogate_is_gone(nearest: str) -> None:
    SURROGATES.unregister(nearest)
    assert nearest not in SURROGATES
    with pytest.raises(UserError, match="not a known surrogate"):
        fit_surrogates(trial_table(), models=[nearest])


def test_misspelt_surrogate_says_did_you_mean(make_job: Any, tmp_path: Path, capsys: Any) -> None:
    from ablate.cli import main

    with pytest.raises(UserError, match=r"`--model` 'gpp' .*did you mean `gp`"):
        fit_surrogates(trial_table(), models=["gpp"])
    job = make_job()  # no study in its storage: the name is checked before the study is read
    with pytest.raises(UserError, match=r"ablate propose: .*did you mean `loglinear`"):
        propose_and_enqueue(job, n=1, model="loglinaer")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(to_dict(job)))
    assert main(["propose", str(path), "--model", "mixing_lwa"]) == 2
    err = capsys.readouterr().err
    assert "did you mean `mixing_law`" in err and "Traceback" not in err


def test_propose_help_names_every_built_in_surrogate(capsys: Any) -> None:
    """`--model` has no `choices` (the registry imports numpy; `ablate --help` stays fast): its
    help text names the surrogates instead, and must keep up with the registry."""
    from ablate.cli import main

    with pytest.raises(SystemExit):
        main(["propose", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in SURROGATES.names():
        assert name in text
