"""`MixtureSampler`: Bayesian optimisation on the simplex itself (the default search strategy).

Optuna's samplers see the search's box coordinates (`ablate.search`: stick-breaking u, or the
FAQ's -log(u)) and model the score there; near a face of the simplex the stick map stretches and
folds distances, and a GP on u needs many trials to learn a shape that is simple in shares. This
sampler keeps Optuna's ask/tell contract (the driver alone asks and tells; `suggest` still turns
the parameters into a mixture) but models and proposes in mixture space:

1. start-up: the driver enqueues the centroid (uniform mixture); then `n_startup - 1` space-filling
   points: each the candidate mixture farthest (Hellinger distance) from every trial so far
   (maximin), so the start covers the simplex whatever the seed, with no replay after a restart.
2. model: a Gaussian process on sqrt(p) (the Hellinger / Fisher-Rao embedding of the simplex,
   where a share going from 0 to 1% is as far as from 25% to 30%: data-mixing responses are
   steep near 0 and flat near the centre, power-law like) plus the scaled log-volume when the
   volume is searched; Matern-5/2 kernel, one length scale for the shares and one for the volume,
   a learnt noise level (seed noise), hyperparameters by maximum marginal likelihood (a few
   L-BFGS starts; cheap: at most a few hundred trials).
3. proposal: expected improvement over the best posterior mean among tried mixtures, maximised
   over a candidate set that mixes global and local search: flat-Dirichlet mixtures, mixtures on
   every face (one type left out: optima of "one type hurts" studies lie there), and a trust
   region around the best few mixtures (log-normal share perturbations at three scales, moves
   toward random mixtures, and dropping one type). Candidates breaking `max_share` are never
   proposed (the map is known, so the constraint need not be learnt); `min_share` is the same
   affine map `suggest` applies.
4. trials in flight (`max_in_flight` > 1): a proposal is planned around the trials still running
   (their parameters are set once asked; their values are not known yet):
   - before the GP starts, a sweep with k in flight asks k trials blind. Instead of more maximin
     points (near the corners: they score badly and say little about where the optimum is), the
     blind trials after the first are an axial design around the centroid (Cornell's screening
     design for mixtures: for each type, halfway toward its vertex and halfway toward the
     opposite face, i.e. more and less of that type), then maximin points of the trust region
     around the centroid. They are the candidates a sequential search tries next, and their
     results, which arrive one by one, show the GP which way each share moves the score.
   - with the GP, running trials enter it at their posterior mean as exact observations
     ("kriging believer"): no uncertainty is left at them, so no proposal repeats one, and the
     best believed value joins the incumbent of expected improvement, so proposals do not crowd
     a running trial that the GP already expects to be the best.
   With nothing running, proposals are exactly those of a sequential search. `in_flight=
   "believer"` keeps the earlier behaviour (maximin until the GP; running trials believed at the
   GP's noise level, the incumbent from finished trials only) for benchmarks/batch_search_benchmark.py.
5. distinct data: of the candidates in order (maximin or expected improvement), the first whose
   rows per type differ from every trial's at its volume (`ablate.search.distinct`): at small
   volumes nearby mixtures round to one selection, which would train on the same data again.

Multi-objective studies keep Optuna's GPSampler (see `ablate.search.make_sampler`).

Why a GP of our own rather than Optuna's GPSampler: the GPSampler models the box coordinates
and cannot be given the sqrt-share embedding or the face/trust-region candidates; measured on
benchmarks/search_benchmark.py (4 landscapes x 10 seeds, budget 40) it needed a median of 27.5
trials to come within 1% of the optimum, this sampler 11 (benchmarks/README.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState
from scipy.stats import norm

from ablate.config import JobSpec
from ablate.search.distinct import first_new
from ablate.search.gp import GP, fence_bad_tail
from ablate.search.space import CAP_TOL, VOLUME_PARAM, param_names, to_cube, to_simplex

#: Candidate mixtures scored by the acquisition per proposal (global + face + local).
N_GLOBAL = 1500

#: Trials before the GP models the results (the centroid + 2 maximin points).
DEFAULT_STARTUP = 3

#: How far the axial points of the blind design go from the centroid: this share of the way to
#: a vertex (more of one type) or to the opposite face (less of it).
AXIAL_STEP = 0.5

#: Past this many finished (and failed) trials the GP models a subset of them (`gp_subset`).
#: An exact GP costs O(n^3) per proposal, its fit most (2 L-BFGS starts of up to 60 steps, a
#: Cholesky factorisation per step): 0.04 s at 100 trials, 0.4 s at 300, 4 s at 600 and, by
#: the cube, minutes at 3,000, during which the driver records nothing (benchmarks/README.md,
#: "Proposals in a large search"). Searches of up to this many trials are modelled exactly.
MAX_GP_TRIALS = 300

#: What a proposal does about trials in flight: `plan` (axial design, exact believer), or
#: `believer` (the behaviour before issue 16; kept for benchmarks).
IN_FLIGHT = ("plan", "believer")


class MixtureSampler(BaseSampler):
    """Start-up by maximin in Hellinger distance, then GP expected improvement on sqrt(shares).

    Built from the job (`min_share`, `max_share`, a searched volume, the direction, `n_startup`:
    trials, the enqueued centroid included, before the GP); `suggest` binds the task types
    before the trial's first parameter is asked (`bind`), since a job may take them from its pool.
    """

    def __init__(
        self,
        job: JobSpec,
        seed: int | None = None,
        in_flight: str = "plan",
        distinct: bool = True,
        gp_trials: int | None = MAX_GP_TRIALS,
    ) -> None:
        if in_flight not in IN_FLIGHT:
            raise ValueError(f"in_flight must be one of {IN_FLIGHT}, not {in_flight!r}")
        d = job.design
        self.in_flight = in_flight
        self.distinct = distinct  # False: repeats allowed (the baseline of its benchmark)
        self.gp_trials = gp_trials  # None: every result (the baseline of its benchmark)
        self.job = job
        self.logu = d.parameterization == "logu"
        self.min_share = float(d.min_share)
        self.max_share = {str(t): float(c) for t, c in d.max_share.items()}
        self.volume = (int(min(d.volumes)), int(max(d.volumes))) if d.search_volume else None
        self.sign = -1.0 if job.objective.direction == "minimize" else 1.0
        self.n_startup = DEFAULT_STARTUP if d.n_startup is None else int(d.n_startup)
        self._rng = np.random.default_rng(seed)
        self._fallback = RandomSampler(seed=seed)
        self.names: list[str] = []
        self.types: list[str] = []
        self.k = 0
        self.caps: dict[int, float] = {}
        if job.task_types:
            self.bind(job.task_types)

    def bind(self, task_types: Sequence[str]) -> None:
        """The task types, in `suggest`'s order: parameter names and share caps by index."""
        types = list(task_types)
        if types and len(types) == self.k:
            return
        self.names = param_names(self.job, types)
        self.types = types
        self.k = len(types)
        self.caps = {i: self.max_share[t] for i, t in enumerate(types) if t in self.max_share}

    # --- the Optuna sampler interface -----------------------------------------------------
    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        space: dict[str, BaseDistribution] = {n: FloatDistribution(0.0, 1.0) for n in self.names}
        if self.volume is not None:
            space[VOLUME_PARAM] = IntDistribution(self.volume[0], self.volume[1], log=True)
        return space

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if study._is_multi_objective() or self.k < 2:
            return {}
        states = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.FAIL, TrialState.PRUNED)
        trials = study._get_trials(deepcopy=False, states=states, use_cache=True)
        done = [t for t in trials if t.state == TrialState.COMPLETE and self._known(t)]
        running = [t for t in trials if t.state == TrialState.RUNNING and self._known(t)]
        running = [t for t in running if t.number != trial.number]
        # failed and pruned mixtures (not a dead driver's, requeued: those run again) are seen:
        # without them a failing region (an OOM, a NaN loss) was proposed again and again, and a
        # failed centroid was asked for ever (start-up never ended)
        bad = [t for t in trials if t.state in states[2:] and self._known(t)]
        bad = [t for t in bad if not t.user_attrs.get("requeued")]
        x_seen = np.array([self._features(t) for t in done + bad + running]).reshape(
            -1, self.k + (self.volume is not None)
        )
        cands = self._candidates(done)
        if len(done) < self.n_startup:
            # start-up: the candidate farthest from every trial so far (maximin, space-filling);
            # past the first start-up points with trials in flight: of the blind design
            if running and self.in_flight == "plan" and len(x_seen) >= self.n_startup:
                cands = self._blind_design(x_seen, cands)
            score = _distance_to_seen(self._embed(cands), x_seen)
        else:
            y = fence_bad_tail(self.sign * np.array([float(t.values[0]) for t in done]))
            y = np.r_[y, np.full(len(bad), y.min())]  # a failed or pruned one: the worst seen
            n = len(done) + len(bad)
            keep = gp_subset(y, [t.number for t in done + bad], self.gp_trials)
            score = self._improvement(x_seen[:n][keep], y[keep], x_seen[n:], self._embed(cands))
        tried = [self._mixture(t.params) for t in done + bad + running if self.distinct]
        best = first_new(
            np.argsort(-score, kind="stable"),
            *self._mixtures(cands),
            (np.array([p for p, _ in tried]).reshape(-1, self.k), np.array([v for _, v in tried])),
            lambda i: self._mixture(self._params(cands[i])),
            self.types,
        )
        return self._params(cands[best])

    def _improvement(
        self, x_done: np.ndarray, y: np.ndarray, x_run: np.ndarray, feats: np.ndarray
    ) -> np.ndarray:
        """Each candidate's expected improvement, running trials believed."""
        gp = GP.fit(x_done, y, self.volume is not None)
        incumbent = float(gp.predict(x_done)[0].max())
        if len(x_run):
            believed = gp.predict(x_run)[0]
            if self.in_flight == "plan":  # as exact observations (one per distinct mixture)
                x_run, first = np.unique(x_run, axis=0, return_index=True)
                believed = believed[first]
                gp = gp.condition(x_run, believed, noise=1e-6)
                incumbent = max(incumbent, float(believed.max()))
            else:
                gp = gp.condition(x_run, believed)
        mu, sd = gp.predict(feats)
        z = (mu - incumbent) / np.maximum(sd, 1e-12)
        return (mu - incumbent) * norm.cdf(z) + sd * norm.pdf(z)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    # --- mixtures <-> parameters ----------------------------------------------------------
    def _known(self, t: FrozenTrial) -> bool:
        return all(n in t.params for n in self.names) and (
            self.volume is None or VOLUME_PARAM in t.params
        )

    def _shares(self, params: dict[str, Any]) -> np.ndarray:
        """A trial's q (shares before the min_share map), as `suggest` computes them."""
        vals = [float(params[n]) for n in self.names]
        if self.logu:
            x = np.array([-math.log(max(v, 1e-300)) for v in vals])
            return x / x.sum() if x.sum() > 0 else np.full(self.k, 1.0 / self.k)
        return to_simplex(vals)

    def _mixture(self, params: dict[str, Any]) -> tuple[np.ndarray, int]:
        """The shares (after the min_share map) and volume a trial of `params` trains on."""
        p = self.min_share + (1.0 - self.k * self.min_share) * self._shares(params)
        return p, int(params.get(VOLUME_PARAM, self.job.design.volumes[0]))

    def _mixtures(self, cands: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`_mixture` of every candidate at once, up to rounding (`_params` is exact)."""
        q = np.clip(cands[:, : self.k], 0.0, None)
        p = self.min_share + (1.0 - self.k * self.min_share) * q / q.sum(1, keepdims=True)
        if self.volume is None:
            return p, np.full(len(cands), int(self.job.design.volumes[0]))
        return p, self._volume_at(cands[:, -1])

    def _volume_at(self, coord: np.ndarray) -> np.ndarray:
        """Rows at volume coordinates in [0, 1] (log scale between the searched bounds)."""
        assert self.volume is not None
        lo, hi = (math.log(v) for v in self.volume)
        vol = np.round(np.exp(lo + np.clip(coord, 0.0, 1.0) * (hi - lo)))
        return np.clip(vol, self.volume[0], self.volume[1]).astype(int)

    def _vol01(self, volume: float) -> float:
        assert self.volume is not None
        lo, hi = (math.log(v) for v in self.volume)
        return (math.log(volume) - lo) / (hi - lo) if hi > lo else 0.5

    def _features(self, t: FrozenTrial) -> np.ndarray:
        q = self._shares(t.params)
        if self.volume is None:
            return np.sqrt(q)
        return np.r_[np.sqrt(q), self._vol01(float(t.params[VOLUME_PARAM]))]

    def _embed(self, cands: np.ndarray) -> np.ndarray:
        if self.volume is None:
            return np.sqrt(np.clip(cands, 0.0, None))
        return np.column_stack([np.sqrt(np.clip(cands[:, :-1], 0.0, None)), cands[:, -1]])

    def _params(self, cand: np.ndarray) -> dict[str, Any]:
        q = np.clip(cand[: self.k], 0.0, None)
        q = q / q.sum()
        if self.logu:
            values = [float(math.exp(-qi)) for qi in q]  # x_i = -log(u_i) = q_i: one ray member
        else:
            values = [min(max(v, 0.0), 1.0) for v in to_cube(q)]
        params: dict[str, Any] = dict(zip(self.names, values, strict=True))
        if self.volume is not None:
            params[VOLUME_PARAM] = int(self._volume_at(cand[-1:])[0])
        return params

    # --- candidates -----------------------------------------------------------------------
    def _candidates(self, done: list[FrozenTrial]) -> np.ndarray:
        """Global (flat Dirichlet), face (one type dropped) and local (around the best) mixtures,
        with a volume coordinate in [0, 1] when the volume is searched; first: the centroid."""
        k, rng = self.k, self._rng
        parts: list[np.ndarray] = [np.full((1, k), 1.0 / k), rng.dirichlet(np.ones(k), N_GLOBAL)]
        face = rng.dirichlet(np.ones(k), N_GLOBAL // 2)
        face[np.arange(len(face)), rng.integers(k, size=len(face))] = 0.0
        parts.append(face / face.sum(1, keepdims=True))
        n_global = sum(len(p) for p in parts)
        vols: list[np.ndarray] = [rng.random(n_global)]
        if done:
            y = self.sign * np.array([float(t.values[0]) for t in done])
            for i in np.argsort(-y)[:3]:
                v0 = (
                    None
                    if self.volume is None
                    else self._vol01(float(done[i].params[VOLUME_PARAM]))
                )
                block, vol = self._local(self._shares(done[i].params), v0)
                parts.append(block)
                vols.append(vol)
        shares, volumes = np.vstack(parts), np.concatenate(vols)
        ok = self._within_caps(shares)
        if ok.any():  # caps that rule out every candidate are `ablate.plan`'s to refuse
            shares = shares[ok]
            volumes = volumes[ok] if self.volume is not None else volumes
        return self._with_volumes(shares, volumes)

    def _local(self, b: np.ndarray, v0: float | None) -> tuple[np.ndarray, np.ndarray]:
        """The trust region around shares b (and volume coordinate v0): log-normal share
        perturbations at three scales, moves toward random mixtures, each type dropped."""
        k, rng = self.k, self._rng
        local = [b * np.exp(rng.normal(0.0, s, (150, k))) for s in (0.1, 0.3, 0.7)]
        lam = rng.uniform(0.0, 0.3, (150, 1))
        local.append((1.0 - lam) * b + lam * rng.dirichlet(np.ones(k), 150))
        drop = np.tile(b, (k, 1))
        drop[np.arange(k), np.arange(k)] = 0.0
        local.append(drop[drop.sum(1) > 0])
        block = np.vstack(local)
        if v0 is None:
            return block / block.sum(1, keepdims=True), np.zeros(0)
        return block / block.sum(1, keepdims=True), np.clip(
            v0 + rng.normal(0.0, 0.1, len(block)), 0.0, 1.0
        )

    def _within_caps(self, shares: np.ndarray) -> np.ndarray:
        """Which candidates keep every `max_share` cap (after the `min_share` map)."""
        ok = np.ones(len(shares), dtype=bool)
        p = self.min_share + (1.0 - self.k * self.min_share) * shares
        for i, cap in self.caps.items():
            ok &= p[:, i] <= cap + CAP_TOL
        return ok

    def _with_volumes(self, shares: np.ndarray, vols: np.ndarray) -> np.ndarray:
        return shares if self.volume is None else np.column_stack([shares, vols])

    def _blind_design(self, x_seen: np.ndarray, cands: np.ndarray) -> np.ndarray:
        """Start-up candidates while trials are in flight: the axial points of the centroid not
        tried yet, then its trust region (`cands` where `max_share` rules out both)."""
        k, rng = self.k, self._rng
        centre = np.full(k, 1.0 / k)
        ends = np.vstack([np.eye(k), (1.0 - np.eye(k)) / (k - 1)])  # vertices, opposite faces
        axial = centre + AXIAL_STEP * (ends - centre)
        gap = np.sqrt(((np.sqrt(axial)[:, None, :] - x_seen[None, :, :k]) ** 2).sum(-1)).min(1)
        local, local_vols = self._local(centre, None if self.volume is None else 0.5)
        for shares, vols, keep in (
            (axial, rng.random(len(axial)), gap > 1e-6),
            (local, local_vols, np.ones(len(local), dtype=bool)),
        ):
            ok = keep & self._within_caps(shares)
            if ok.any():
                return self._with_volumes(shares[ok], vols if self.volume is None else vols[ok])
        return cands


def gp_subset(y: np.ndarray, numbers: Sequence[int], cap: int | None) -> np.ndarray:
    """Indices of the results the GP models: all of them up to `cap`; past it, the cap // 2
    best (where expected improvement looks) and the most recent of the rest by trial number
    (where the search has just been, so it does not go back at once), in their given order."""
    if cap is None or len(y) <= cap:
        return np.arange(len(y))
    best = np.argsort(-y, kind="stable")[: cap // 2]
    rest = np.setdiff1d(np.arange(len(y)), best)
    recent = rest[
        np.argsort(np.asarray(numbers)[rest], kind="stable")[len(rest) - (cap - len(best)) :]
    ]
    return np.sort(np.r_[best, recent])


def _distance_to_seen(feats: np.ndarray, x_seen: np.ndarray) -> np.ndarray:
    """Each candidate's distance to the nearest point seen, whose largest is the maximin pick
    (when none is seen: the first candidate first, then the others in order)."""
    if not len(x_seen):
        return -np.arange(len(feats), dtype=float)
    return np.sqrt(((feats[:, None, :] - x_seen[None, :, :]) ** 2).sum(-1)).min(1)


__all__ = ["MAX_GP_TRIALS", "MixtureSampler", "gp_subset"]
