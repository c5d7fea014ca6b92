"""A small pool of killable worker processes answering JSON requests under a wall-time bound.

Why processes started with `subprocess` and not `multiprocessing`:
- only a separate process can be stopped in the middle of a C-level computation (a sympy
  power with ten billion digits ignores signals and exceptions); it is killed and replaced;
- `fork` from a process that has threads can deadlock the child, while `spawn`/`forkserver`
  re-import the caller's `__main__`; an exec'd `python -m <module>` has neither problem;
- gymnasium's `AsyncVectorEnv` runs each env in a *daemonic* multiprocessing process, and
  daemonic processes may not start multiprocessing children; `subprocess` children are fine.

A worker reads one JSON request per line on stdin and writes one JSON reply per line on
stdout, after a first `{"ready": true}` line. It exits by itself when its stdin closes, so
workers never outlive the process that started them by more than a read.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import threading
import time
from typing import Any


class WorkerTimeout(Exception):
    """No reply within the bound (the worker was killed), or no worker became free in time
    (`WorkerBusy`)."""


class WorkerBusy(WorkerTimeout):
    """No worker became free in time: the request was never sent."""


class WorkerFailure(Exception):
    """A worker could not start, died, or answered garbage."""


class _Worker:
    def __init__(self, argv: list[str], startup_timeout_s: float) -> None:
        # The worker starts in the root directory, with `-P` where Python has it, so that no
        # file in the caller's working directory (a planted `sympy.py`, a user's own
        # `json.py`) can shadow a module the worker imports.
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            cwd=os.path.abspath(os.sep),
        )
        self._buffer = b""
        try:
            reply = self.read(time.monotonic() + startup_timeout_s)
        except WorkerTimeout as exc:
            self.kill()
            raise WorkerFailure(f"worker did not start within {startup_timeout_s:g} s; raise "
                                "startup_timeout_s on a slow or busy machine") from exc
        except WorkerFailure:
            self.kill()
            raise
        if reply.get("ready") is not True:
            self.kill()
            raise WorkerFailure(f"worker sent {reply!r} instead of its ready line")

    def send(self, request: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise WorkerFailure(f"worker pipe closed: {exc}") from exc

    def read(self, deadline: float) -> dict[str, Any]:
        """The next reply line, waiting at most until `deadline` (time.monotonic)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise WorkerTimeout("worker did not reply in time")
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise WorkerFailure(f"worker exited (code {self.proc.poll()})")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError as exc:
            raise WorkerFailure(f"worker sent a malformed reply {line[:100]!r}") from exc

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # unreapable now; the OS will
            self.proc.wait(timeout=5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                # Closing stdin flushes it: a dead worker's pipe raises BrokenPipeError.
                with contextlib.suppress(OSError):
                    pipe.close()


class WorkerPool:
    """Up to `max_workers` processes running `python -m <module> <args>`, started on demand.

    `call` is safe from any number of threads: each thread borrows a worker for the length
    of one request. A pool copied into a forked child notices (the pid changed) and starts
    its own workers instead of sharing its parent's.
    """

    def __init__(self, module: str, args: list[str], max_workers: int,
                 startup_timeout_s: float) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        isolated = ["-P"] if sys.version_info >= (3, 11) else []
        self._argv = [sys.executable, *isolated, "-m", module, *args]
        self.max_workers = max_workers
        self.startup_timeout_s = startup_timeout_s
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._starting = 0
        self._closed = False

    @property
    def owned_here(self) -> bool:
        """False in a forked copy of the process that created the pool."""
        return os.getpid() == self._pid

    @property
    def started(self) -> int:
        """Number of live worker processes."""
        with self._cond:
            return len(self._all)

    def call(self, request: dict[str, Any], timeout_s: float,
             budget_share: float = 0.8) -> dict[str, Any]:
        """Send `request` to a free worker and return its reply within `timeout_s` seconds.

        The time spent waiting for a busy worker counts; the start-up of a new worker does
        not (it is bounded by `startup_timeout_s` instead). The worker is told to give up by
        itself after `budget_share * timeout_s` (as `request["budget_s"]`), so that most
        overruns end with a reply and a reusable worker; one that still does not answer by
        the deadline is killed and later replaced. Raises `WorkerTimeout` or `WorkerFailure`.
        """
        deadline = time.monotonic() + timeout_s
        worker, fresh = self._acquire(deadline)
        if fresh:
            deadline = time.monotonic() + timeout_s
        try:
            worker.send({**request, "budget_s": budget_share * (deadline - time.monotonic())})
            reply = worker.read(deadline)
        except BaseException:
            self._discard(worker)
            raise
        self._release(worker)
        return reply

    def close(self) -> None:
        """Kill every worker. Further calls raise `WorkerFailure`. No-op in a forked child."""
        if os.getpid() != self._pid:
            return  # the workers belong to the parent process
        with self._cond:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.kill()

    def _acquire(self, deadline: float) -> tuple[_Worker, bool]:
        with self._cond:
            while True:
                if self._closed:
                    raise WorkerFailure("the verifier was closed")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive:
                        return worker, False
                    self._all.discard(worker)  # died while idle (an OOM kill): replace it
                    worker.kill()
                if len(self._all) + self._starting < self.max_workers:
                    self._starting += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WorkerBusy(f"all {self.max_workers} workers stayed busy")
                self._cond.wait(remaining)
        try:
            worker = _Worker(self._argv, self.startup_timeout_s)
        except BaseException:
            with self._cond:
                self._starting -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._starting -= 1
            if self._closed:
                worker.kill()
                raise WorkerFailure("the verifier was closed")
            self._all.add(worker)
        return worker, True

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            if worker in self._all:
                self._idle.append(worker)
                self._cond.notify()

    def _discard(self, worker: _Worker) -> None:
        with self._cond:
            self._all.discard(worker)
            self._cond.notify()
        worker.kill()
