"""The volume question of a search study, put to the surrogate.

A search runs each mixture once at its own volume, so no test of "less is more" can be made
from it (`words.searched_reason`): a bin of volumes holds different mixtures. The surrogate
fitted on every trial can still say where it expects the best volume: its predicted score
against volume at the best tried shares, on `N_VOLUMES` log-spaced volumes from the smallest to
the largest tried (never beyond: a surrogate extrapolates badly), and in how many bootstrap
refits (whole mixtures resampled, `Surrogates.bootstrap`) the best of them beats the largest.
A prediction, not a test: the grid follow-up that tests it is named with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ablate.analysis.recommend import skill_threshold
from ablate.analysis.surrogates import Surrogates, single_thread_blas
from ablate.analysis.words import gain, vol

#: Volumes the curve is predicted at, log-spaced over the tried range (the ends included).
N_VOLUMES = 9
#: Bootstrap refits for the share of refits where the best volume beats the largest.
N_BOOT = 50


@dataclass(frozen=True)
class VolumeAnswer:
    """The surrogate's predicted score against volume at the best tried shares."""

    model: str
    shares: dict[str, float]
    volumes: tuple[float, ...]
    """Log-spaced from the smallest to the largest tried volume."""
    predicted: tuple[float, ...]
    best: int
    """Index of the volume predicted best."""
    chance: float
    """Share of bootstrap refits predicting the best volume better than the largest."""
    spearman: float
    skill: float
    sign: float = 1.0

    @property
    def less_is_more(self) -> bool:
        """The surrogate predicts a smaller volume better than the largest tried (never with
        one tried volume)."""
        return self.best < len(self.volumes) - 1

    def describe(self, metric: str) -> str:
        shares = ", ".join(f"{t} {x:.3f}" for t, x in self.shares.items())
        v, p = self.volumes, self.predicted
        if len(v) == 1:  # nothing to put to the surrogate: say what would be
            return (
                f"Every trial ran at {vol(v[0])}: this search cannot say whether less data is "
                f"better. Seed replicates over several volumes near its best tried shares "
                f"({shares}) test it (`design.kind: dirichlet` with `design.prior` set to them, "
                "`design.seeds: [0, 1, 2]`), or a search over a volume range "
                "(`design.search_volume: true`) predicts it."
            )
        curve = "; ".join(f"{vol(x)}: {y:.3f}" for x, y in zip(v, p, strict=True))
        head = (
            f"By the surrogate (a prediction, not a test): at the best tried shares ({shares}) "
            f"{self.model} predicts {metric} against volume, within the tried volumes: {curve}"
        )
        if self.less_is_more:
            diff = gain(self.sign * (p[self.best] - p[-1]), metric, self.sign)
            said = (
                f"it expects less to be more: {vol(v[self.best])} {diff} than the largest tried "
                f"({vol(v[-1])}), in {self.chance:.0%} of bootstrap refits"
            )
        else:
            said = f"it expects the largest tried volume ({vol(v[-1])}) to score best"
        skill = (
            f"held-out Spearman {self.spearman:.2f}"
            if self.spearman > self.skill
            else f"but it has no held-out skill (Spearman {self.spearman:.2f}, not above "
            f"{self.skill:.2f}), so this curve says little"
        )
        return (
            f"{head}. {said[:1].upper()}{said[1:]} ({skill}). Seed replicates over these "
            "volumes test it: a fixed design near these shares (`design.kind: dirichlet` with "
            "`design.prior` set to them, or the grid balance level nearest them) with "
            "`design.seeds: [0, 1, 2]`."
        )


def volume_answer(sur: Surrogates, n_boot: int = N_BOOT, seed: int = 0) -> VolumeAnswer:
    """The best surrogate's score against volume at the shares of the best tried mixture (the
    best mean over its trials), within the tried volumes."""
    d = sur.data
    groups, first, inverse = np.unique(d.groups, return_index=True, return_inverse=True)
    means = np.bincount(inverse, weights=d.y) / np.bincount(inverse)
    shares = d.p[first[int(np.argmax(d.sign * means))]]
    # one tried volume: one point (nine equal ones had the curve's first "beat" its last)
    n = N_VOLUMES if d.volumes.max() > d.volumes.min() else 1
    volumes = np.geomspace(d.volumes.min(), d.volumes.max(), n)
    if d.volumes.min() >= 1:
        volumes = np.round(volumes)
    p = np.tile(shares, (len(volumes), 1))
    z = np.array([d.z_of(float(v)) for v in volumes])
    with single_thread_blas():
        pred = d.clip(sur.model().predict(p, z))
        best = int(np.argmax(d.sign * pred))
        boots, _ = sur.bootstrap(p, z, sur.best, n_boot, np.random.default_rng(seed))
    diff = d.sign * (boots[:, best] - boots[:, -1])
    chance = float(np.mean(diff > 0)) if np.isfinite(diff).all() else float("nan")
    cv = sur.cv[sur.best]
    return VolumeAnswer(
        model=sur.best,
        shares={t: float(x) for t, x in zip(d.types, shares, strict=True)},
        volumes=tuple(float(v) for v in volumes),
        predicted=tuple(float(y) for y in pred),
        best=best,
        chance=chance,
        spearman=cv.spearman,
        skill=skill_threshold(len(groups)),
        sign=d.sign,
    )


__all__ = ["N_VOLUMES", "VolumeAnswer", "volume_answer"]
