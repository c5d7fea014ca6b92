"""`SandboxPool`: a bounded pool of `Sandbox` slots that runs batches of programs in
parallel."""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from rlvr_gym.verifiers.reaping import _marked_processes
from rlvr_gym.verifiers.sandbox_types import RunResult, SandboxConfig
from rlvr_gym.verifiers.slot import Sandbox


def _result_of(future: Future[RunResult]) -> RunResult:
    try:
        return future.result()
    except Exception as exc:  # the harness broke for this job only
        return RunResult(error=f"sandbox failed: {type(exc).__name__}: {exc}")


class SandboxPool:
    """A bounded pool of sandbox slots for batches of programs.

    `workers` slots run at once; `map` submits at most `max_pending` runs ahead of the ones
    consumed (back-pressure, so a huge batch does not pile up in memory). A run that hangs is
    killed at its deadline by its slot, whose next process is already starting: a hung program
    never blocks the pool.

    Args:
        config: sandbox limits and options, shared by all slots.
        workers: parallel slots; None uses the number of CPUs available to this process.
        max_pending: runs submitted but not yet consumed; None uses `2 * workers`.
    """

    def __init__(self, config: SandboxConfig | None = None, workers: int | None = None,
                 max_pending: int | None = None) -> None:
        workers = workers if workers is not None else len(os.sched_getaffinity(0))
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        max_pending = max_pending if max_pending is not None else 2 * workers
        if max_pending < workers:
            raise ValueError(f"max_pending ({max_pending}) must be at least workers "
                             f"({workers}), or slots sit idle")
        self.config = config or SandboxConfig()
        self.workers = workers
        self.max_pending = max_pending
        self._slots: collections.deque[Sandbox] = collections.deque()
        self._created = 0
        self._instances: set[int] = set()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="rlvr-sandbox")
        first = self._slot()  # probe now so that problems surface at construction
        self._release(first)
        self.layers = first.layers
        """The isolation layers active on this host."""
        self.python = first.python
        """The interpreter programs run under."""

    def run(self, payload: dict[str, Any], timeout_s: float) -> RunResult:
        """Run one payload on a free slot (blocks for one), in the calling thread."""
        slot = self._slot()
        try:
            return slot.run(payload, timeout_s)
        finally:
            self._release(slot)

    def map(self, jobs: Iterable[tuple[dict[str, Any], float]]) -> Iterator[RunResult]:
        """Run (payload, timeout_s) jobs on the pool; yield results in input order. The input
        is consumed lazily, `max_pending` jobs ahead of the results consumed. Each job stands
        on its own: one whose run raises yields a result with `error` set, and the others
        go on."""
        pending: collections.deque[Future[RunResult]] = collections.deque()
        for payload, timeout_s in jobs:
            if len(pending) >= self.max_pending:
                yield _result_of(pending.popleft())
            pending.append(self._executor.submit(self.run, payload, timeout_s))
        while pending:
            yield _result_of(pending.popleft())

    def stray_processes(self) -> list[int]:
        """Live processes of this host's sandboxes other than the idle warm spares: should be
        empty whenever no run is in progress (tests use it)."""
        with self._lock:
            spares = {s.spare_marker for s in self._slots}
            mine = set(self._instances)
        return [pid for pid, marker in _marked_processes().items()
                if int(marker.split(".")[1]) in mine and marker not in spares]

    def close(self) -> None:
        """Stop the threads and kill every slot's warm spare."""
        self._executor.shutdown(wait=True)
        with self._lock:
            while self._slots:
                self._slots.popleft().close()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _slot(self) -> Sandbox:
        with self._lock:
            if self._slots:
                return self._slots.popleft()
            slot_number = self._created
            self._created += 1
        sandbox = Sandbox(self.config, slot=slot_number)
        with self._lock:
            self._instances.add(sandbox.instance)
        return sandbox

    def _release(self, slot: Sandbox) -> None:
        with self._lock:
            self._slots.append(slot)
