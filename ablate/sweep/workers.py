"""The sweep's workers on Ray: ablate's only importer of ray.

A `TrialWorker` is a long-lived Ray actor, one per GPU slot (a job with `models:` has a lane of
workers per model, each of its model's size: `models[i].gpus_per_trial` may be a fraction): its
`cache` outlives trials (the resident base model, the pool, encoded dialogues). `WorkerPool` is
everything the dispatcher asks of Ray (start, started, grow, alive, submit, wait, result,
progress, stop, forget), so the dispatcher reads as events and never sees a Ray type: a failed
trial comes back as `TrialError` or `WorkerLost`."""

# long module: ablate's only importer of ray, so every Ray call of the sweep lives here

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from ablate.config import JobSpec, model_job, model_names
from ablate.errors import Terminated, UserError, raise_deferred, signals_deferred, stop_on_sigterm
from ablate.mixture import Mixture
from ablate.objectives import run_objective
from ablate.plan import judge_key_problem
from ablate.registry import import_plugins
from ablate.result import TrialResult
from ablate.sweep.address import check_address
from ablate.trial.checkpoints import FINISHED_CHECKPOINT, forget_checkpoint

#: Object store of a Ray the driver starts itself: trials return small results, not tensors.
LOCAL_OBJECT_STORE_BYTES = 200 * 1024**2
#: How long the driver waits for its workers to start before it dispatches anyway.
WORKER_START_SECONDS = 60.0
#: How long a pruning poll waits for a worker's intermediate values.
PROGRESS_TIMEOUT_SECONDS = 30.0
#: How long retiring workers get to remove their last finished trial's checkpoint folder.
FORGET_SECONDS = 10.0


class TrialStopped(Exception):
    """Raised inside a worker's trial that the driver pruned."""


class TrialError(Exception):
    """The trial raised on its worker (the message is the cause's type and text)."""


class WorkerLost(Exception):
    """The worker process or its node died under the trial (the trial may run elsewhere)."""


class TrialWorker:
    """A long-lived Ray actor: one per GPU slot. `cache` outlives trials (the resident base model)."""

    def __init__(self, threads: int | None = None, env: dict[str, str] | None = None) -> None:
        self.cache: dict[str, Any] = {}
        self.threads = threads
        self.reports: list[tuple[int, float]] = []
        self.stopping = False
        self.finished: str | None = None
        """The last trial's checkpoint folder: removed once the driver has its result (it gives
        this worker another trial, or retires it), not when training ends: a driver killed
        first lost the folder and its requeued trial trained from step 0."""
        # the driver's `worker_env`, applied here rather than as a Ray runtime_env: an actor
        # with its own runtime_env needs a fresh worker process (seconds), one without takes a
        # worker Ray has already started; `module:function` targets import through sys.path
        for key, value in (env or {}).items():
            os.environ[key] = value
        path = [p for p in (env or {}).get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:0] = [p for p in path if p not in sys.path]
        if threads:
            os.environ["OMP_NUM_THREADS"] = str(threads)

    def ping(self) -> int:
        return os.getpid()

    def hello(self, job: JobSpec) -> str | None:
        """The first call of a new worker: None when this node can run the job's trials, else
        why not (the judge's key is missing on this node), before any trial is given to it."""
        import ray

        problem = judge_key_problem(job)
        node = ray.util.get_node_ip_address()
        return f"a Ray worker on node {node} cannot score trials: {problem}" if problem else None

    def run(self, job: JobSpec, mixture: Mixture) -> TrialResult:
        self.reports, self.stopping = [], False
        self.forget()  # the driver gives a new trial only once it recorded the last one

        def report(step: int, value: float) -> None:
            # intermediate values wait here for the driver (workers never touch Optuna)
            self.reports.append((int(step), float(value)))
            if self.stopping:
                raise TrialStopped(f"pruned at step {step}")

        self.cache["report"] = report
        import_plugins(job.plugins)  # a job's own extensions register in this process too
        result = run_objective(job, mixture, self.cache)
        result.info.setdefault("worker_pid", os.getpid())
        self.finished = result.info.pop(FINISHED_CHECKPOINT, None) or None
        return result

    def forget(self) -> None:
        """Remove the last finished trial's checkpoint folder (`finished`)."""
        forget_checkpoint(self.finished)
        self.finished = None

    def progress(self) -> list[tuple[int, float]]:
        """The intermediate values of the running trial so far (the driver polls them)."""
        return list(self.reports)

    def stop(self) -> None:
        """The driver pruned the trial: its next report raises TrialStopped."""
        self.stopping = True


def check_cluster_address(address: str | None) -> str | None:
    """The address to connect to (`--address`, else RAY_ADDRESS, else None: a local Ray),
    refused in one line where no Ray cluster answers (not minutes of Ray's retries)."""
    given_by = "--address" if address else "RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        check_address(address, given_by)
    return address


def init_ray(address: str | None) -> bool:
    """Connect to (or start) Ray; True when this call started it (so the driver shuts it down)."""
    given_by = "--address" if address else "RAY_ADDRESS"
    address = check_cluster_address(address)
    import ray

    if ray.is_initialized():
        return False
    # SIGTERM during `ray.init`: its core worker's C++ handler would print a stack and abort
    # (-6, Ray's processes left behind); without it Ray's Python one raises SystemExit(15)
    ray._private.ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True  # this process's
    env = {"env_vars": worker_env(None)}
    # Ctrl-C held back until `ray.init` returns: raised inside its core worker's construction
    # it left that half built, and the process died of a segfault at exit (139, not 130)
    with signals_deferred() as got:
        _init(ray, address, given_by, env)
    if got:
        with contextlib.suppress(Exception):
            ray.shutdown()  # what it started of the local node
        raise_deferred(got)
    _stop_on_sigterm()
    return True


def _init(ray: Any, address: str | None, given_by: str, env: dict[str, Any]) -> None:
    """`ray.init`: join the cluster at `address`, or start this driver's own Ray."""
    try:
        if address:
            ray.init(address=address, log_to_driver=True, runtime_env=env)
        else:
            ray.init(
                # "local": start this driver's own Ray. Without it Ray joins the cluster of the
                # machine's last `ray start` (read from /tmp/ray/ray_current_cluster, even when
                # that cluster is gone), and refuses the object store size with a ValueError
                address="local",
                include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                log_to_driver=True,
                runtime_env=env,
            )
    except ConnectionError as err:  # something answered the probe as a GCS does
        if not address:
            raise
        raise UserError(
            f"no Ray cluster answers at {address} (Ray: {str(err).splitlines()[0]}); check "
            f"`ray status` on the cluster's head node, and the {given_by} given"
        ) from None
    except SystemExit as err:
        if err.code != signal.SIGTERM:
            raise
        with contextlib.suppress(Exception):
            ray.shutdown()  # what it started of the local node
        raise Terminated() from None  # the CLI: "stopped by SIGTERM", exit 143


def _stop_on_sigterm() -> None:
    """After `ray.init`: SIGTERM (`kill PID`, `ray job stop`) stops the sweep as Ctrl-C does, the
    trials in flight requeued, and the CLI says so (`Terminated`, exit 143)."""

    previous = stop_on_sigterm()
    if previous is not None:
        _SIGTERM_BEFORE.append(previous)


#: The SIGTERM handler `_stop_on_sigterm` replaced, given back by `shutdown_ray`.
_SIGTERM_BEFORE: list[Any] = []


def shutdown_ray() -> None:
    import ray

    ray.shutdown()
    while _SIGTERM_BEFORE:  # (None: a handler not set from Python, Ray's own)
        signal.signal(signal.SIGTERM, _SIGTERM_BEFORE.pop() or signal.SIG_DFL)


@contextlib.contextmanager
def cluster_for(job: JobSpec, address: str | None) -> Iterator[None]:
    """Connected to (or running) Ray for the block, with room checked for one trial of the job
    (before anything is enqueued); a Ray this call started is shut down after."""
    started = init_ray(address)
    try:
        for i, name in enumerate(model_names(job) or [""]):
            one = model_job(job, name)
            key = f"models[{i}].gpus_per_trial" if name else "resources.gpus_per_trial"
            n_slots(one, float(one.resources.cpus_per_trial), gpus_per_trial(one), key)  # or raises
        yield
    finally:
        if started:
            shutdown_ray()


def worker_env(threads: int | None) -> dict[str, str]:
    """PYTHONPATH = the driver's sys.path, so `module:function` targets import on workers."""
    env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def gpus_per_trial(job: JobSpec) -> float:
    """`resources.gpus_per_trial`, or 1 when the cluster has GPUs and 0 when it has none."""
    import ray

    if job.resources.gpus_per_trial is not None:
        return float(job.resources.gpus_per_trial)
    return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def n_slots(job: JobSpec, cpus: float, gpus: float, key: str = "resources.gpus_per_trial") -> int:
    """How many trials the cluster can run at once, capped by `resources.max_in_flight`; `key`:
    the job key that asks for `gpus` (a model's own, in a job with `models:`). A trial runs on
    one node: one that no node can hold is refused (Ray would wait for it forever)."""
    import ray

    total = ray.cluster_resources()
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    big_cpu, big_gpu = (max([n.get(r, 0.0) for n in nodes] or [0.0]) for r in ("CPU", "GPU"))
    has = f"{total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs"
    slots = int(total.get("CPU", 0) // cpus) if cpus > 0 else job.resources.max_in_flight
    where = f"{job.source_shown}: " if job.source else ""
    if gpus > 0 and not total.get("GPU", 0):
        raise UserError(
            f"{where}a trial asks for {key}={gpus:g} but the Ray cluster has {has}; connect to "
            f"a cluster with GPUs (--address or RAY_ADDRESS), or set {key}: 0 to train on "
            "CPUs. Nothing was enqueued."
        )
    if gpus > big_gpu + 1e-9:  # (the same slack as `_fit`)
        raise UserError(
            f"{where}a trial asks for {key}={gpus:g} but the largest node of the Ray cluster "
            f"has {big_gpu:g} GPUs ({has} in all; a trial runs on one node): set {key} to at "
            f"most {big_gpu:g}, or connect to a cluster with larger nodes. Nothing was enqueued."
        )
    if gpus > 0:
        slots = min(slots, int(total["GPU"] // gpus))
    if slots < 1 or cpus > big_cpu + 1e-9:
        raise UserError(
            f"{where}the Ray cluster ({has}; the largest node {big_cpu:g} CPUs) cannot host one "
            f"trial of resources.cpus_per_trial={cpus:g}; lower it or add nodes. Nothing was "
            "enqueued."
        )
    return max(1, min(job.resources.max_in_flight, slots))


class WorkerPool:
    """The job's `TrialWorker` actors and every Ray call the dispatcher needs.

    Workers come in lanes, one per model of `models:` ("" for a one-model job), each with its
    model's CPUs and GPUs per trial; a worker runs only its lane's trials, so it keeps one base
    model resident. Lanes share the cluster: `grow` requests workers lane by lane (in the
    order of `wanted`) as long as they fit what the cluster has left."""

    def __init__(self, job: JobSpec, prune: bool) -> None:
        import ray

        self.job = job
        self.shapes: dict[str, tuple[float, float, int]] = {}
        """Lane -> (CPUs, GPUs, threads) of each of its workers."""
        self._actor_cls: dict[str, Any] = {}
        for name in model_names(job) or [""]:
            one = model_job(job, name)
            cpus, gpus = float(one.resources.cpus_per_trial), gpus_per_trial(one)
            self.shapes[name] = (cpus, gpus, one.train.threads or max(1, int(cpus)))
            self._actor_cls[name] = ray.remote(TrialWorker).options(
                num_cpus=cpus,
                num_gpus=gpus,
                max_restarts=0,
                # pruning: `progress` and `stop` run beside `run`, in a second thread of the actor
                max_concurrency=2 if prune else 1,
            )
        self.cpus, self.gpus, self.threads = next(iter(self.shapes.values()))
        """The first lane's (the only one's in a one-model job): what GPU-hours count."""
        self.max_in_flight = job.resources.max_in_flight
        self.actors: list[Any] = []
        """Every worker requested and not forgotten: started, or waiting for a slot."""
        self.starting: dict[Any, Any] = {}
        """Ping ref -> a requested worker that has not answered yet."""
        self._lane: dict[int, str] = {}
        """id(actor) -> its lane."""

    def lane(self, actor: Any) -> str:
        """The model whose trials the worker runs ("" in a one-model job)."""
        return self._lane.get(id(actor), "")

    def new_actor(self, lane: str = "") -> Any:
        """Request a worker: Ray places it when a slot is free (until then it holds nothing);
        `started` hands it over once it answers."""
        threads = self.shapes[lane][2]
        actor: Any = self._actor_cls[lane].remote(threads, worker_env(threads))
        self.actors.append(actor)
        self._lane[id(actor)] = lane
        self.starting[actor.hello.remote(self.job)] = actor
        return actor

    def start(self, wanted: int | Mapping[str, int]) -> list[Any]:
        """Workers for the trials `wanted` per lane (as many as fit), waited for up to
        WORKER_START_SECONDS: trials start when their workers are up, so a trial's recorded
        start and duration are its own (a busy cluster may not place them all now: those come
        later through `started`)."""
        if isinstance(wanted, int):  # a one-model job (or its first lane)
            wanted = {next(iter(self.shapes)): wanted}
        self.grow(wanted)
        return self.started(timeout=WORKER_START_SECONDS, wait_all=True)

    def started(self, timeout: float = 0.0, wait_all: bool = False) -> list[Any]:
        """Requested workers that answered since the last call (one that died starting is
        dropped); waits up to `timeout` for the first (`wait_all`: for all)."""
        import ray

        if not self.starting:
            return []
        refs = list(self.starting)
        ready, _ = ray.wait(refs, num_returns=len(refs) if wait_all else 1, timeout=timeout)
        if ready and not wait_all:  # collect every other one that is up too, without waiting
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        up, problems = [], []
        for ref in ready:
            actor = self.starting.pop(ref)
            try:
                problem = ray.get(ref)
                up.append(actor)
            except Exception:
                self.forget(actor)
                continue
            if problem:
                problems.append(problem)
        if problems:  # e.g. the judge's key is not set on a node: stop before any trial
            self.kill_all()
            raise UserError(problems[0])
        return up

    def alive(self, actors: list[Any], timeout: float = 5.0) -> list[Any]:
        """The actors that answer a ping: after a node loss, idle workers on that node are
        gone too, and a trial given to one would spend a retry for nothing."""
        import ray

        pings = {a.ping.remote(): a for a in actors}
        ready, _ = ray.wait(list(pings), num_returns=len(pings), timeout=timeout)
        up = []
        for ref, actor in pings.items():
            try:
                if ref not in ready:
                    raise TimeoutError  # an idle worker answers at once: this one is doubtful
                ray.get(ref)
                up.append(actor)
            except Exception:
                self.forget(actor)  # a replacement is requested by the caller's `grow`
        return up

    def grow(self, wanted: Mapping[str, int]) -> int:
        """Request workers up to `wanted` per lane (capped by max_in_flight and what the cluster
        has now, less what this pool's workers hold): a node that joined mid-sweep takes
        trials, and a lane whose trials are done leaves room to the next; how many requested."""
        import ray

        total = ray.cluster_resources()
        free_cpu, free_gpu = total.get("CPU", 0.0), total.get("GPU", 0.0)
        have: dict[str, int] = {}
        for actor in self.actors:
            lane = self.lane(actor)
            have[lane] = have.get(lane, 0) + 1
            free_cpu -= self.shapes[lane][0]
            free_gpu -= self.shapes[lane][1]
        room, requested = self.max_in_flight - len(self.actors), 0
        for lane, want in wanted.items():
            if lane not in self.shapes:
                continue
            cpus, gpus, _ = self.shapes[lane]
            n = min(want - have.get(lane, 0), room, _fit(free_cpu, cpus), _fit(free_gpu, gpus))
            for _ in range(max(0, n)):
                self.new_actor(lane)
            n = max(0, n)
            free_cpu, free_gpu = free_cpu - n * cpus, free_gpu - n * gpus
            room, requested = room - n, requested + n
        return requested

    def forget(self, actor: Any) -> None:
        """Kill a dead (or doubtful) worker and stop counting it."""
        self.kill(actor)
        with contextlib.suppress(ValueError):
            self.actors.remove(actor)
        for ref in [r for r, a in self.starting.items() if a is actor]:
            del self.starting[ref]
        if not any(a is actor for a in self.actors):
            self._lane.pop(id(actor), None)

    def submit(self, actor: Any, job: JobSpec, mixture: Mixture) -> Any:
        """Run the trial on `actor`, as its model's job (`models:`: its model, train, resources)."""
        return actor.run.remote(model_job(job, mixture.model), mixture)

    def wait(self, refs: list[Any], timeout: float) -> list[Any]:
        """The refs (at most one) that finished within `timeout` seconds."""
        import ray

        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        return list(ready)

    def result(self, ref: Any) -> TrialResult:
        """The finished trial's result; raises `WorkerLost` or `TrialError` when it failed."""
        import ray
        from ray import exceptions as rex

        try:
            result: TrialResult = ray.get(ref)
            return result
        except rex.RayTaskError as err:
            cause = getattr(err, "cause", None)
            text = f"{type(cause).__name__}: {cause}" if cause is not None else _text(err)
            raise TrialError(text) from None
        except Exception as err:
            if _is_worker_death(err):
                raise WorkerLost(_text(err)) from None
            raise TrialError(_text(err)) from None

    def progress(self, actor: Any) -> list[tuple[int, float]] | None:
        """A running trial's intermediate values; None when the worker cannot answer (it died,
        or is too busy): the death itself reaches the driver through `result`."""
        import ray

        try:
            return list(ray.get(actor.progress.remote(), timeout=PROGRESS_TIMEOUT_SECONDS))
        except Exception:
            return None

    def stop(self, actor: Any) -> None:
        actor.stop.remote()

    def kill(self, actor: Any) -> None:
        import ray

        with contextlib.suppress(Exception):
            ray.kill(actor)

    def kill_all(self, idle: list[Any] | None = None) -> None:
        """Kill every worker; the `idle` ones first remove their last finished trial's
        checkpoint (a busy one's folder stays: its trial, requeued, resumes from it)."""
        self.clean(idle or [])
        for actor in self.actors:
            self.kill(actor)

    def retire(self, actor: Any) -> None:
        """An idle worker no longer needed (its lane is done): cleaned, then forgotten."""
        self.clean([actor])
        self.forget(actor)

    def clean(self, idle: list[Any]) -> None:
        """Idle workers remove their last finished trial's checkpoint folder (`forget`)."""
        import ray

        with contextlib.suppress(Exception):
            refs = [a.forget.remote() for a in idle]
            ray.wait(refs, num_returns=len(refs), timeout=FORGET_SECONDS)


def _fit(free: float, need: float) -> int:
    """How many of `need` fit in `free` (a large number when nothing is needed); 1e-9 of slack
    so that four 0.25-GPU workers fit one GPU whatever the rounding."""
    return int((free + 1e-9) // need) if need > 0 else 1 << 30


def _is_worker_death(err: BaseException) -> bool:
    from ray import exceptions as rex

    kinds: tuple[type[BaseException], ...] = (rex.RayActorError, rex.WorkerCrashedError)
    kinds += (rex.NodeDiedError, rex.ObjectLostError)
    oom = getattr(rex, "OutOfMemoryError", None)
    kinds += (oom,) if oom is not None else ()
    return isinstance(err, kinds) and not isinstance(err, rex.RayTaskError)


def _text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"
