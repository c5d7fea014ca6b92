"""Verification fanned out over a Ray cluster: `RayVerifierPool` wraps any verifier and splits
each batch into chunks that Ray actors, spread over the cluster's nodes, verify with their own
copy of it (a `CodeVerifier` copy runs its sandbox pool on its actor's node).

`distribute_verification(env, ...)` puts a pool in an env's place of its verifier, so that
`env.verify_ahead` (and with it `rlvr_gym.agents.rollout.score`, every agent's scoring path)
fans out with no agent change. Needs `pip install "rlvr-gym[ray]"`, and rlvr-gym installed on
every node of the cluster.
"""

from __future__ import annotations

import math
import os
import resource
from collections.abc import Sequence
from typing import Any

from rlvr_gym.types import Problem, Status, Verdict, Verifier, batch_problems

INSTALL_HINT = 'pip install "rlvr-gym[ray]"'


def import_ray() -> Any:
    """The `ray` module, or ImportError naming the install command."""
    try:
        import ray
    except ImportError:
        raise ImportError(f"rlvr_gym.distributed needs Ray: {INSTALL_HINT}") from None
    return ray


def connect(address: str | None = None) -> Any:
    """Connect this process to Ray once and return the `ray` module.

    A Ray already initialised in this process (by the user, or an earlier call) is used as it
    is, and `address` is then ignored. Otherwise `ray.init(address=...)` with `address`, else
    the `RAY_ADDRESS` environment variable, else `"local"`: a new single-machine Ray started
    for this process (it stops when the process exits; `ray.shutdown()` stops it sooner).
    `"auto"` joins the cluster already running on this machine (`ray start --head` here, or
    this machine a node of it) and fails if there is none; `"HOST:6379"` joins the cluster
    whose head is HOST. Nothing in rlvr_gym shuts Ray down."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    if target == "local":
        ray.init(address="local", include_dashboard=False)
    else:
        ray.init(address=target)
    return ray


def error_verdict(reason: str) -> Verdict:
    """The verdict of a pair whose verification failed (masked: says nothing about the
    answer)."""
    return Verdict(Status.ERROR, 0.0, None, reason[:300], usable=False)


def failure_reason(exc: BaseException, retries: int) -> str:
    """One line on a Ray failure that lost a chunk after at most `retries` retries."""
    detail = " ".join(str(exc).split())[:200]
    return f"Ray worker failed (up to {retries} retries): {type(exc).__name__}: {detail}"


def verify_all(verifier: Verifier, responses: Sequence[str], problems: Sequence[Problem]
               ) -> list[Verdict]:
    """Verdicts of `verifier` for the pairs, in order, never raising: `verify_batch` when it
    has one, else (or when the batch raises) `verify` pair by pair, where an exception is an
    `error` verdict (as `ReasoningEnv.step` makes it)."""
    batch = getattr(verifier, "verify_batch", None)
    if callable(batch):
        try:
            return list(batch(responses, problems))
        except Exception:  # a verifier must not raise: judge the pairs one by one
            pass
    out = []
    for response, problem in zip(responses, problems, strict=True):
        try:
            out.append(verifier.verify(response, problem))
        except Exception as exc:
            out.append(Verdict(Status.ERROR, 0.0, None,
                               f"verifier raised {type(exc).__name__}: {exc}"))
    return out


def spans(n: int, workers: int, size: int | None = None) -> list[tuple[int, int]]:
    """Contiguous `(lo, hi)` runs covering `range(n)`, each of `size` items (default: as few
    as `workers` runs, one per worker)."""
    size = size or max(1, math.ceil(n / workers))
    return [(lo, min(n, lo + size)) for lo in range(0, n, size)]


def cpu_seconds() -> dict[str, float]:
    """User + system CPU seconds of this process (`self`) and of its reaped children
    (`children`, e.g. finished sandbox processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"self": own.ru_utime + own.ru_stime, "children": kids.ru_utime + kids.ru_stime}


class _VerifierWorker:
    """A Ray actor's copy of the wrapped verifier (unpickled in the actor's process, so a
    `CodeVerifier` starts its own sandbox pool on the actor's node)."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier

    def where(self) -> dict[str, Any]:
        import ray

        return {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}

    def verify_chunk(self, responses: list[str], problems: list[Problem]) -> list[Verdict]:
        return verify_all(self.verifier, responses, problems)

    def usage(self) -> dict[str, float]:
        return cpu_seconds()

    def close(self) -> dict[str, float]:
        close = getattr(self.verifier, "close", None)
        if callable(close):
            close()
        return cpu_seconds()


def check_workers(count: Any, max_retries: Any, num_cpus: Any, name: str = "num_workers"
                  ) -> None:
    """ValueError naming the fix for a bad actor count (the argument `name`), retry bound or
    CPU share."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"{name} must be an int >= 1 (Ray actors to start), got {count!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be an int >= 0 (retries of a chunk whose worker "
                         f"died), got {max_retries!r}")
    if isinstance(num_cpus, bool) or not isinstance(num_cpus, (int, float)) \
            or not num_cpus > 0:
        raise ValueError(f"num_cpus must be a positive number (Ray CPUs each worker asks "
                         f"for), got {num_cpus!r}")


def wait_started(ray: Any, actors: list[Any], timeout_s: float, what: str,
                 num_cpus: float) -> list[dict[str, Any]]:
    """Where each actor runs (`where()`), once all have started; RuntimeError naming the fix
    when they cannot be placed or built within `timeout_s` (the actors are then killed)."""
    refs = [actor.where.remote() for actor in actors]
    try:
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        if len(ready) < len(refs):
            cpus = ray.cluster_resources().get("CPU", 0)
            raise RuntimeError(
                f"only {len(ready)} of {len(refs)} Ray {what} started within {timeout_s:.0f} s; "
                f"each asks for num_cpus={num_cpus} and the cluster has {cpus:g} CPUs: lower "
                "the number of workers or num_cpus, or add nodes")
        return [ray.get(ref) for ref in refs]
    except BaseException as exc:
        for actor in actors:
            ray.kill(actor)
        if isinstance(exc, ray.exceptions.RayError):
            # the last line of Ray's text is the error the actor's constructor raised
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            detail = lines[-1][:300] if lines else type(exc).__name__
            raise RuntimeError(f"a Ray {what} failed to start ({detail}); every node needs "
                               "rlvr-gym installed") from None
        raise


class RayVerifierPool:
    """A verifier whose batches are verified by Ray actors spread over the cluster.

    Each of the `num_workers` actors holds a pickled copy of `verifier`. `verify_batch` splits
    the pairs into chunks of `chunk_size` (default: one chunk per worker), hands them to the
    actors in turn, and returns the verdicts in input order: the same verdicts as
    `verifier.verify_batch` (or `verify` pair by pair, for a verifier without batches) on the
    same pairs. `verify` is a batch of one. Never raises for model output.

    Failures: an actor whose process dies is restarted by Ray (`max_restarts=-1`), and the
    chunk it was verifying is retried on it (`max_task_retries`) up to `max_retries` times;
    after that every pair of the chunk gets an `error` verdict (usable=False) naming the
    failure. No pair is ever lost or given a reward it did not earn.

    Args:
        verifier: any `Verifier` (picklable); a `CodeVerifier` with `workers=w` runs `w`
            sandboxes per actor.
        num_workers: actors to start (>= 1).
        chunk_size: pairs per remote call; None: ceil(batch / num_workers).
        max_retries: retries of a chunk whose actor died (>= 0).
        num_cpus: Ray CPUs each actor asks for (the cluster must have num_workers * num_cpus).
        scheduling_strategy: Ray's placement of the actors; "SPREAD" puts them on as many
            nodes as it can.
        address: the cluster to join if this process is not connected to Ray yet (see
            `connect`).
        start_timeout_s: how long to wait for the actors to start before RuntimeError.
    """

    def __init__(self, verifier: Verifier, num_workers: int = 2, *,
                 chunk_size: int | None = None, max_retries: int = 2, num_cpus: float = 1.0,
                 scheduling_strategy: Any = "SPREAD", address: str | None = None,
                 start_timeout_s: float = 120.0) -> None:
        if not callable(getattr(verifier, "verify", None)):
            raise ValueError(f"verifier must have a verify(response, problem) method, got "
                             f"{type(verifier).__name__}")
        check_workers(num_workers, max_retries, num_cpus)
        if chunk_size is not None and (isinstance(chunk_size, bool)
                                       or not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be an int >= 1 or None (one chunk per worker), "
                             f"got {chunk_size!r}")
        if not start_timeout_s > 0:
            raise ValueError(f"start_timeout_s must be positive seconds, got {start_timeout_s!r}")
        ray = connect(address)
        self.verifier = verifier
        self.num_workers = num_workers
        self.chunk_size = chunk_size
        self.max_retries = max_retries
        worker = ray.remote(_VerifierWorker).options(
            num_cpus=num_cpus, scheduling_strategy=scheduling_strategy, max_restarts=-1,
            max_task_retries=max_retries)
        # One pickle in the object store, held for the actors' restarts while the pool lives.
        self._copy = ray.put(verifier)
        self._actors: list[Any] = [worker.remote(self._copy) for _ in range(num_workers)]
        wait_started(ray, self._actors, start_timeout_s, "verifier workers", num_cpus)
        self._next = 0  # the actor that gets the next chunk: batches of one take turns

    def workers(self) -> list[dict[str, Any]]:
        """Where each actor runs now: `{"pid", "node_id"}` (a restarted actor has a new pid)."""
        ray = import_ray()
        return list(ray.get([actor.where.remote() for actor in self._live()]))

    def usage(self) -> list[dict[str, float]]:
        """CPU seconds of each actor's process and of its reaped children (`cpu_seconds`)."""
        ray = import_ray()
        return list(ray.get([actor.usage.remote() for actor in self._live()]))

    def verify(self, response: str, problem: Problem) -> Verdict:
        """The verdict on one pair, from one actor (see `verify_batch`)."""
        return self.verify_batch([response], [problem])[0]

    def verify_batch(self, responses: Sequence[str], problems: Sequence[Problem]
                     ) -> list[Verdict]:
        """Verdicts for many pairs, in input order, verified in parallel by the actors.
        `problems` may be a single problem shared by all responses. ValueError for
        arguments of the wrong type or mismatched lengths; never raises for model output."""
        targets = batch_problems(responses, problems)
        actors = self._live()
        ray = import_ray()
        runs = spans(len(responses), len(actors), self.chunk_size)
        refs = []
        for k, (lo, hi) in enumerate(runs):
            actor = actors[(self._next + k) % len(actors)]
            refs.append(actor.verify_chunk.remote(list(responses[lo:hi]), targets[lo:hi]))
        self._next = (self._next + len(runs)) % len(actors)
        out: list[Verdict] = []
        for ref, (lo, hi) in zip(refs, runs, strict=True):
            try:
                verdicts = ray.get(ref)
            except ray.exceptions.RayError as exc:
                verdicts = [error_verdict(failure_reason(exc, self.max_retries))] * (hi - lo)
            out += verdicts
        return out

    def close(self) -> list[dict[str, float]]:
        """Close the actors' verifiers, stop the actors, and return the `cpu_seconds()` of
        each actor that closed within 30 s, taken after its verifier closed (so its sandbox
        processes are reaped and counted). The Ray connection stays (see `connect`). Using
        the pool afterwards raises RuntimeError; closing it again returns []."""
        if not self._actors:
            return []
        ray = import_ray()
        try:
            refs = [actor.close.remote() for actor in self._actors]
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=30)
            usage = []
            for ref in ready:
                try:
                    usage.append(ray.get(ref))
                except ray.exceptions.RayError:
                    continue  # its actor died while closing: nothing left to stop
            return usage
        finally:
            for actor in self._actors:
                ray.kill(actor)
            self._actors = []

    def __enter__(self) -> RayVerifierPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _live(self) -> list[Any]:
        if not self._actors:
            raise RuntimeError("this RayVerifierPool is closed; build a new one")
        return self._actors


def distribute_verification(env: Any, pool_or_num_workers: RayVerifierPool | int,
                            **pool_kwargs: Any) -> RayVerifierPool:
    """Put a `RayVerifierPool` in the place of `env.unwrapped.verifier` and return it, so
    that the env's `verify_ahead` (every agent's `rollout.score`) and `step` verify on the
    cluster. Given a worker count, the pool wraps the env's current verifier (`pool_kwargs`
    go to `RayVerifierPool`); given a pool, it is used as it is. `env.close()` closes it."""
    base = getattr(env, "unwrapped", env)
    if not hasattr(base, "verifier"):
        raise ValueError(f"{type(base).__name__} has no verifier to distribute; pass a "
                         "rlvr_gym ReasoningEnv (or a wrapper of one)")
    if isinstance(pool_or_num_workers, RayVerifierPool):
        if pool_kwargs:
            raise ValueError("pool options go to RayVerifierPool(...) when you pass a pool; "
                             f"got {sorted(pool_kwargs)} too")
        pool = pool_or_num_workers
    else:
        pool = RayVerifierPool(base.verifier, pool_or_num_workers, **pool_kwargs)
    base.verifier = pool
    return pool
