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
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize
from scipy.stats import norm

from ablate.config import JobSpec
from ablate.search.space import CAP_TOL, VOLUME_PARAM, param_names, to_cube, to_simplex

#: Candidate mixtures scored by the acquisition per proposal (global + face + local).
N_GLOBAL = 1500

#: Trials before the GP models the results (the centroid + 2 maximin points).
DEFAULT_STARTUP = 3

#: How far the axial points of the blind design go from the centroid: this share of the way to
#: a vertex (more of one type) or to the opposite face (less of it).
AXIAL_STEP = 0.5

#: What a proposal does about trials in flight: `plan` (axial design, exact believer), or
#: `believer` (the behaviour before issue 16; kept for benchmarks).
IN_FLIGHT = ("plan", "believer")


class MixtureSampler(BaseSampler):
    """Start-up by maximin in Hellinger distance, then GP expected improvement on sqrt(shares).

    Built from the job (`min_share`, `max_share`, a searched volume, the direction, `n_startup`:
    trials, the enqueued centroid included, before the GP); `suggest` binds the task types
    before the trial's first parameter is asked (`bind`), since a job may take them from its pool.
    """

    def __init__(self, job: JobSpec, seed: int | None = None, in_flight: str = "plan") -> None:
        if in_flight not in IN_FLIGHT:
            raise ValueError(f"in_flight must be one of {IN_FLIGHT}, not {in_flight!r}")
        d = job.design
        self.in_flight = in_flight
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
            best = _farthest(self._embed(cands), x_seen)
        else:
            y = _fence_bad_tail(self.sign * np.array([float(t.values[0]) for t in done]))
            y = np.r_[y, np.full(len(bad), y.min())]  # a failed or pruned one: the worst seen
            n = len(done) + len(bad)
            best = self._proposal(x_seen[:n], y, x_seen[n:], self._embed(cands))
        return self._params(cands[best])

    def _proposal(
        self, x_done: np.ndarray, y: np.ndarray, x_run: np.ndarray, feats: np.ndarray
    ) -> int:
        """The candidate of highest expected improvement, running trials believed."""
        gp = _GP.fit(x_done, y, self.volume is not None)
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
        ei = (mu - incumbent) * norm.cdf(z) + sd * norm.pdf(z)
        return int(np.argmax(ei))

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

    def _shares(self, t: FrozenTrial) -> np.ndarray:
        """The trial's q (shares before the min_share map), as `suggest` computed them."""
        vals = [float(t.params[n]) for n in self.names]
        if self.logu:
            x = np.array([-math.log(max(v, 1e-300)) for v in vals])
            return x / x.sum() if x.sum() > 0 else np.full(self.k, 1.0 / self.k)
        return to_simplex(vals)

    def _vol01(self, volume: float) -> float:
        assert self.volume is not None
        lo, hi = (math.log(v) for v in self.volume)
        return (math.log(volume) - lo) / (hi - lo) if hi > lo else 0.5

    def _features(self, t: FrozenTrial) -> np.ndarray:
        q = self._shares(t)
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
            lo, hi = (math.log(v) for v in self.volume)
            vol = round(math.exp(lo + float(np.clip(cand[-1], 0.0, 1.0)) * (hi - lo)))
            params[VOLUME_PARAM] = int(min(max(vol, self.volume[0]), self.volume[1]))
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
                block, vol = self._local(self._shares(done[i]), v0)
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


class _GP:
    """A small exact GP: Matern-5/2 with one length scale for the shares' sqrt-embedding and one
    for the volume coordinate, Gaussian noise, standardised targets; ML-II hyperparameters."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        theta: np.ndarray,
        mean: float,
        scale: float,
        noise: np.ndarray | None = None,
    ):
        self.x, self.theta, self.mean, self.scale = x, theta, mean, scale
        self.yn = (y - mean) / scale
        # per-observation noise variance (standardised units): the learnt level unless given
        self.noise = np.full(len(x), math.exp(theta[-1])) if noise is None else noise
        kxx = self._k(x, x) + np.diag(self.noise + 1e-8)
        self.chol = cho_factor(kxx, lower=True)
        self.alpha = cho_solve(self.chol, self.yn)

    @staticmethod
    def _scaled(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        ls = np.full(x.shape[1], math.exp(theta[0]))
        if len(theta) == 4:  # shares + volume
            ls[-1] = math.exp(theta[1])
        return x / ls

    def _k(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return _matern(self._scaled(a, self.theta), self._scaled(b, self.theta), self.theta[-2])

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, volume: bool) -> _GP:
        # standardised through y / max|y|: y.std() of a 1e200 squares past the float range
        # (inf), and the GP's predictions were NaN
        top = float(np.abs(y).max()) or 1.0
        mean, scale = float((y / top).mean()) * top, float((y / top).std()) * top or 1.0
        yn = (y - mean) / scale
        n_ls = 2 if volume else 1
        # bounds: length scales (Hellinger-embedding units: corners are sqrt(2) apart),
        # log signal variance, log noise variance (standardised units)
        bounds = [(math.log(0.05), math.log(5.0))] * n_ls + [
            (math.log(0.05), math.log(20.0)),
            (math.log(1e-6), math.log(0.5)),
        ]

        def nll(theta: np.ndarray) -> float:
            xs = cls._scaled(x, theta)
            kxx = _matern(xs, xs, theta[-2]) + (math.exp(theta[-1]) + 1e-8) * np.eye(len(x))
            try:
                c = cho_factor(kxx, lower=True)
            except np.linalg.LinAlgError:
                return 1e10
            a = cho_solve(c, yn)
            return float(0.5 * yn @ a + np.log(np.diag(c[0])).sum())

        best = None
        for ls0 in (0.3, 1.0):
            x0 = np.array([math.log(ls0)] * n_ls + [0.0, math.log(1e-2)])
            res = minimize(nll, x0, method="L-BFGS-B", bounds=bounds, options={"maxiter": 60})
            if best is None or res.fun < best.fun:
                best = res
        assert best is not None
        return cls(x, y, best.x, mean, scale)

    def condition(self, x_new: np.ndarray, y_new: np.ndarray, noise: float | None = None) -> _GP:
        """The same hyperparameters with extra (pseudo-)observations, with the learnt noise
        level or the given noise variance (standardised units; 1e-6, the least the fit learns:
        exact)."""
        x = np.vstack([self.x, x_new])
        y = np.r_[self.yn * self.scale + self.mean, y_new]
        extra = np.full(len(x_new), math.exp(self.theta[-1]) if noise is None else noise)
        return _GP(x, y, self.theta, self.mean, self.scale, np.r_[self.noise, extra])

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ks = self._k(x, self.x)
        mu = ks @ self.alpha
        v = cho_solve(self.chol, ks.T)
        var = np.clip(math.exp(self.theta[-2]) - (ks * v.T).sum(1), 1e-12, None)
        return mu * self.scale + self.mean, np.sqrt(var) * self.scale


def _fence_bad_tail(y: np.ndarray) -> np.ndarray:
    """Results far on the bad side (below the lower quartile by more than 3 interquartile
    ranges: a diverged run's loss of 1e6 among losses near 2) pulled in to that fence, order
    kept. Left as they are, standardising squeezed every other result into a sliver and the GP
    took the outlier's jump for noise. Maximising, so the bad side is low; the good side stays
    as it is (a far better result is the one to follow)."""
    if len(y) < 4:
        return y
    q1, q3 = np.percentile(y, [25, 75])
    spread = q3 - q1
    if not spread > 0:
        return y
    fence = q1 - 3.0 * spread
    below = y < fence
    # squeezed into one spread below the fence, order kept: the worst still ranks last
    y = y.copy()
    y[below] = fence - spread * (1.0 - 1.0 / (1.0 + (fence - y[below]) / spread))
    return y


def _farthest(feats: np.ndarray, x_seen: np.ndarray) -> int:
    """Maximin: the candidate farthest from every point seen (the first one when none is)."""
    if not len(x_seen):
        return 0
    return int(np.sqrt(((feats[:, None, :] - x_seen[None, :, :]) ** 2).sum(-1)).min(1).argmax())


def _matern(a: np.ndarray, b: np.ndarray, log_var: float) -> np.ndarray:
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    r = np.sqrt(5.0 * np.clip(d2, 0.0, None))
    return math.exp(log_var) * (1.0 + r + r * r / 3.0) * np.exp(-r)


__all__ = ["MixtureSampler"]
