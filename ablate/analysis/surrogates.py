"""Surrogates: predict a mixture's score from its proportions and volume, rank, propose.

The models are registered in `SURROGATES` (`ablate.analysis.surrogate_registry`), one file each
in `ablate/analysis/surrogate_models/`; built in, over completed trials (inputs: shares
p_1..p_k and z = standardised ln(volume)):

- `loglinear` (RegMix-style regression): ridge on p_i, ln(p_i + 0.01), z, z^2 and p_i * z,
  so the best shares may move with volume and the score may peak along volume;
- `mixing_law` (Ye et al.'s exponential data-mixing law with a volume term):
  score = c + k * exp(sum_i t_i p_i + t_v z + t_vv z^2), fitted by scipy least squares (t_vv
  pinned at 0 on fewer than 3 volumes, which cannot identify it);
- `gp`: a Gaussian process (scikit-learn) with an anisotropic RBF kernel plus white noise,
  fitted on at most MAX_GP_POINTS trials;
- `ensemble`: the mean of `loglinear` and `gp`.

Held-out quality: K-fold cross-validation that keeps every seed replicate of a mixture in the
same fold (else a model would "predict" a mixture it saw), then the Spearman rank correlation
between the out-of-fold predictions and the observed scores, both averaged per mixture, and the
regret of the top pick (per fold: the best held-out mixture's score less that of the model's
first; averaged). Proposals use the model with the lowest regret (`best_by`).

`Surrogates.propose`, the global search kept as the baseline of benchmarks/proposal_benchmark.py:
the best of 20,000 Dirichlet(1) mixtures (plus corners, the centre and every tried mixture)
within L1 0.5 of a tried one, at the target volume; its interval is the 2.5-97.5% range of the
predictions of the same model refitted on bootstrap resamples of the mixtures. The report and
`ablate propose` use `ablate.analysis.recommend` (a trust region around the best tried mixtures,
and the best tried mixture itself when no proposal is expected to beat it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ablate.analysis.load import completed, task_types
from ablate.analysis.surrogate_models import EPS, GP, MAX_GP_POINTS, LogLinear, MixingLaw
from ablate.analysis.surrogate_registry import SURROGATES, Model, make_model
from ablate.analysis.tables import mixture_keys
from ablate.errors import UserError


@contextmanager
def single_thread_blas() -> Iterator[None]:
    """BLAS on one thread while fitting: the matrices are small (at most MAX_GP_POINTS square),
    and on a busy 2-core machine OpenBLAS's threads spin against each other and everything else
    (a 150 x 150 Cholesky: 6.6 ms on 2 threads, 0.19 ms on 1, load average 9)."""
    import scipy.linalg  # noqa: F401  (load scipy's own OpenBLAS so the limit covers it)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


#: A bootstrap refit that misses a tried mixture's mean by more than this many times the spread of
#: the tried mixtures' means is left out of the interval (`Surrogates.bootstrap`).
WILD = 3.0


def _nearest_l1(points: np.ndarray, refs: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Per row of `points`: the L1 distance to the nearest row of `refs` (chunked cdist)."""
    from scipy.spatial.distance import cdist

    out = np.empty(len(points))
    for i in range(0, len(points), chunk):
        out[i : i + chunk] = cdist(points[i : i + chunk], refs, "cityblock").min(axis=1)
    return out


@dataclass
class Data:
    """A study's completed trials as arrays: shares, standardised ln(volume), score, mixture."""

    types: list[str]
    p: np.ndarray
    z: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    z_mean: float
    z_sd: float
    volumes: np.ndarray
    sign: float
    bounds: tuple[float, float] = (-math.inf, math.inf)
    """The values the metric's mean can take (`df.attrs["range"]`, from the objective kind)."""

    def z_of(self, volume: float) -> float:
        return (math.log(volume) - self.z_mean) / self.z_sd

    def clip(self, predicted: np.ndarray) -> np.ndarray:
        """Predictions kept inside the metric's range: a surrogate extrapolates past it (an
        exponential law promises an accuracy of 1.08), the metric cannot go there. Ranks are
        taken before this, so the order among candidates beyond a bound is the model's."""
        return np.clip(predicted, *self.bounds)


def study_data(df: Any, metric: str = "value") -> Data:
    done = completed(df, metric)
    types = task_types(done)
    if not types:
        raise UserError("the study's trials carry no proportions; nothing to fit")
    p = done[[f"p/{t}" for t in types]].to_numpy(float)
    lv = np.log(done["volume"].to_numpy(float))
    sd = float(lv.std()) or 1.0
    return Data(
        types=types,
        p=p,
        z=(lv - lv.mean()) / sd,
        y=done[metric].to_numpy(float),
        groups=mixture_keys(done).to_numpy(),
        z_mean=float(lv.mean()),
        z_sd=sd,
        volumes=done["volume"].to_numpy(float),
        sign=-1.0 if df.attrs.get("direction") == "minimize" else 1.0,
        bounds=tuple(df.attrs.get("range", (-math.inf, math.inf))),
    )


@dataclass
class CrossValidation:
    name: str
    spearman: float
    """Held-out Spearman over mixtures (out-of-fold prediction vs observed, means per mixture)."""
    spearman_trials: float
    """The same over single trials (seed noise included)."""
    rmse: float
    folds: int
    seconds: float
    regret: float = math.nan
    """Held-out regret of the top pick: per fold, the best held-out mixture's mean score less
    the mean score of the one the model ranked first (0: it picked the best), averaged over
    folds; what a proposal needs, where Spearman weighs every rank alike."""


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(spearmanr(a, b).statistic)


def cross_validate(data: Data, name: str, folds: int = 5, seed: int = 0) -> CrossValidation:
    """Grouped K-fold: all seeds of a mixture are held out together."""
    import time

    import pandas as pd
    from sklearn.model_selection import GroupKFold

    start = time.perf_counter()
    n_groups = len(set(data.groups))
    if n_groups < 4:
        raise UserError(
            f"cross-validation needs at least 4 distinct mixtures; the study has {n_groups}"
        )
    folds = min(folds, n_groups)
    pred = np.empty_like(data.y)
    fold = np.empty(len(data.y), int)
    split = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for i, (train, test) in enumerate(split.split(data.p, data.y, data.groups)):
        model = make_model(name).fit(data.p[train], data.z[train], data.y[train])
        pred[test] = model.predict(data.p[test], data.z[test])
        fold[test] = i
    frame = pd.DataFrame({"g": data.groups, "y": data.sign * data.y, "f": data.sign * pred})
    by_mix = frame.assign(k=fold).groupby("g").mean()
    regrets = [
        float(part["y"].max() - part["y"].iloc[int(np.argmax(part["f"].to_numpy()))])
        for _, part in by_mix.groupby("k")
    ]
    return CrossValidation(
        name=name,
        spearman=_spearman(by_mix["f"].to_numpy(), by_mix["y"].to_numpy()),
        spearman_trials=_spearman(pred, data.y),
        rmse=float(np.sqrt(np.mean((pred - data.y) ** 2))),
        folds=folds,
        seconds=time.perf_counter() - start,
        regret=float(np.mean(regrets)),
    )


@dataclass
class Proposal:
    proportions: dict[str, float]
    volume: float
    predicted: float
    low: float
    high: float
    model: str
    distance: float = 0.0
    """L1 distance of the shares to the nearest tried mixture's, whatever its volume (large: an
    extrapolation; a volume far outside the tried ones is one too, which this does not count)."""
    refits: int = 0
    """Bootstrap refits the interval was drawn from, and how many of them were left out as wild
    (they missed a tried mixture's mean by more than WILD x the spread of those means)."""
    wild: int = 0

    def interval(self) -> str:
        """`95% bootstrap interval of the prediction 0.61 to 0.62` (and the wild refits left
        out, when any): the surrogate's uncertainty, not a run's seed noise around it."""
        # review o: read as an interval for the score a run gets, it missed 4 of 4 at a grid's
        # peak: the refits share the model's bias there, which no refit shows
        text = (
            f"95% bootstrap interval of the prediction {self.low:.3f} to {self.high:.3f}, the "
            "refits' spread (the surrogate's own bias is not in it)"
        )
        if self.wild:  # (they missed a tried mixture's mean by over WILD x the means' spread)
            text += f", {self.wild} of {self.refits} refits left out as wild"
        return text

    def describe(self, metric: str) -> str:
        shares = ", ".join(f"{t} {p:.3f}" for t, p in self.proportions.items())
        return (
            f"{{{shares}}} at {self.volume:,.0f} rows: predicted {metric} {self.predicted:.3f} "
            f"({self.interval()}, {self.model}; "
            f"L1 distance {self.distance:.2f} to the nearest tried shares, volume not counted)"
        )


@dataclass
class Surrogates:
    """Cross-validated surrogates of one study and the best of them (`best_by`: by held-out
    regret of the top pick unless told otherwise)."""

    data: Data
    cv: dict[str, CrossValidation]
    best: str
    models: dict[str, Model] = field(default_factory=dict)
    metric: str = "value"

    def model(self, name: str | None = None) -> Model:
        name = name or self.best
        if name not in self.models:
            d = self.data
            self.models[name] = make_model(name).fit(d.p, d.z, d.y)
        return self.models[name]

    def predict(self, proportions: Any, volume: float, name: str | None = None) -> np.ndarray:
        p = np.atleast_2d(np.asarray(proportions, float))
        return self.model(name).predict(p, np.full(len(p), self.data.z_of(volume)))

    def bootstrap(
        self, p: np.ndarray, z: np.ndarray, name: str, n_boot: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, int]:
        """Predictions at (p, z) of the model refitted on `n_boot` resamples of whole mixtures
        (all their seeds), its hyperparameters kept: one row per resample that could be fitted,
        kept inside the metric's range (`Data.clip`); and how many refits were left out as wild.

        A refit is wild when it misses a tried mixture's observed mean by more than WILD times
        the spread of those means (max - min): a resample of few distinct mixtures leaves a
        7-parameter mixing law free to explode on the rest (a refit on 3 of 6 mixtures scoring
        0.58-0.61 predicted 1.56 for a tried one), and one such refit in 40 sets the 97.5% end
        of the interval."""
        d = self.data
        base = self.model(name)
        groups, first, inverse = np.unique(d.groups, return_index=True, return_inverse=True)
        means = np.bincount(inverse, weights=d.y) / np.bincount(inverse)
        tol = WILD * float(np.ptp(means)) + 1e-6 * (1.0 + float(np.abs(means).max()))
        # each group's rows in ascending order, by one stable sort (not one scan per group)
        by_group = np.split(
            np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1]
        )
        index = dict(zip(groups, by_group, strict=True))
        boots, wild = [], 0
        for _ in range(n_boot):
            rows = np.concatenate([index[g] for g in rng.choice(groups, len(groups))])
            try:
                m = base.refit_fixed(d.p[rows], d.z[rows], d.y[rows])
                seen = m.predict(d.p[first], d.z[first])
                pred = m.predict(p, z)
            except (np.linalg.LinAlgError, ValueError):
                continue  # a degenerate resample (e.g. one volume only): skip it
            if not (np.abs(seen - means).max() <= tol and np.isfinite(pred).all()):
                wild += 1
                continue
            boots.append(d.clip(pred))
        return (np.array(boots) if boots else np.full((1, len(p)), np.nan)), wild

    def propose(
        self,
        volume: float | None = None,
        n: int = 1,
        name: str | None = None,
        n_candidates: int = 20_000,
        n_boot: int = 100,
        min_distance: float = 0.1,
        max_distance: float = 0.5,
        seed: int = 0,
    ) -> list[Proposal]:
        """The n best mixtures at `volume` (default: the best tried volume), at least
        `min_distance` apart in L1, each with a 95% bootstrap interval on its predicted score.

        Candidates farther than `max_distance` (L1) from every tried mixture are left out: there
        a surrogate extrapolates (an exponential law can promise scores above 1)."""
        d = self.data
        name = name or self.best
        if volume is None:
            means = {v: d.sign * d.y[d.volumes == v].mean() for v in np.unique(d.volumes)}
            volume = float(max(means, key=lambda v: means[v]))
        rng = np.random.default_rng(seed)
        k = len(d.types)
        cands = np.vstack(
            [np.eye(k), np.full((1, k), 1 / k), d.p, rng.dirichlet(np.ones(k), n_candidates)]
        )
        cands = np.round(cands, 3)
        cands = cands / cands.sum(axis=1, keepdims=True)
        tried = np.unique(np.round(d.p, 3), axis=0)
        cands = cands[_nearest_l1(cands, tried) <= max_distance + 1e-9]
        with single_thread_blas():
            return self._propose(cands, float(volume), n, name, n_boot, min_distance, rng)

    def _propose(
        self,
        cands: np.ndarray,
        volume: float,
        n: int,
        name: str,
        n_boot: int,
        min_distance: float,
        rng: np.random.Generator,
    ) -> list[Proposal]:
        d = self.data
        score = d.sign * self.predict(cands, volume, name)
        chosen: list[int] = []
        for i in np.argsort(-score):
            if all(np.abs(cands[i] - cands[j]).sum() >= min_distance for j in chosen):
                chosen.append(int(i))
            if len(chosen) == n:
                break
        picks = cands[chosen]
        b, wild = self.bootstrap(picks, np.full(len(picks), d.z_of(volume)), name, n_boot, rng)
        lo, hi = np.nanpercentile(b, [2.5, 97.5], axis=0)
        pred = d.clip(self.predict(picks, volume, name))
        return [
            Proposal(
                proportions={t: float(x) for t, x in zip(d.types, row, strict=True)},
                volume=volume,
                predicted=float(pred[j]),
                low=float(lo[j]),
                high=float(hi[j]),
                model=name,
                distance=float(np.abs(d.p - row).sum(axis=1).min()),
                refits=n_boot,
                wild=wild,
            )
            for j, row in enumerate(picks)
        ]


def _finite(x: float, sign: float = 1.0) -> float:
    return sign * x if math.isfinite(x) else math.inf


def best_by(cv: dict[str, CrossValidation], select: str = "regret") -> str:
    """The surrogate proposals use: the lowest held-out regret of the top pick (ties: the higher
    held-out Spearman), or with `select="spearman"` the highest Spearman; then the earlier."""
    if select not in ("regret", "spearman"):
        raise UserError(f"select must be regret or spearman, got {select!r}")
    if select == "spearman":
        return min(cv, key=lambda n: _finite(cv[n].spearman, -1.0))
    return min(cv, key=lambda n: (_finite(cv[n].regret), _finite(cv[n].spearman, -1.0)))


def fit_surrogates(
    df: Any,
    metric: str = "value",
    models: Sequence[str] | None = None,
    folds: int = 5,
    select: str = "regret",
) -> Surrogates:
    """Cross-validate every model (default: every registered surrogate, in registration order);
    the one proposals use is the best by `best_by(cv, select)` (held-out regret of the top
    pick by default)."""
    names = list(models) if models is not None else SURROGATES.names()
    data = study_data(df, metric)
    with single_thread_blas():
        cv = {name: cross_validate(data, name, folds) for name in names}
    return Surrogates(data=data, cv=cv, best=best_by(cv, select), metric=metric)


__all__ = [
    "EPS",
    "GP",
    "MAX_GP_POINTS",
    "SURROGATES",
    "WILD",
    "CrossValidation",
    "Data",
    "LogLinear",
    "MixingLaw",
    "Model",
    "Proposal",
    "Surrogates",
    "best_by",
    "cross_validate",
    "fit_surrogates",
    "make_model",
    "single_thread_blas",
    "study_data",
]
