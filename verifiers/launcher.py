"""The launcher thread: the one long-lived thread of a host process that starts every sandbox
process, so that a sandbox's kill-on-parent-death is tied to the host process, not to the
thread that asked for the sandbox."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class _Launcher:
    """The one thread that starts every sandbox process of this host process.

    `setpriv --pdeathsig=KILL` and bubblewrap's `--die-with-parent` kill the sandbox when its
    parent dies, and for Linux the parent is the *thread* that forked it: a sandbox (a warm
    spare above all) started from a short-lived thread (a thread per request, a
    `ThreadPoolExecutor` per batch) would be killed when that thread ends. Starting them all
    from this thread, which lives as long as the process, keeps the protection against the
    host's death without tying a sandbox to the thread that asked for it. A forked child of
    the host gets a launcher of its own."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[Future, Callable[[], Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def call(self, start: Callable[[], Any]) -> Any:
        """Run `start()` on the launcher thread; return its result or raise its exception."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, args=(self._jobs,),
                                                name="rlvr-sandbox-launcher", daemon=True)
                self._thread.start()
        if threading.current_thread() is self._thread:
            return start()
        future: Future = Future()
        self._jobs.put((future, start))
        return future.result()

    @staticmethod
    def _serve(jobs: queue.SimpleQueue[tuple[Future, Callable[[], Any]]]) -> None:
        while True:
            future, start = jobs.get()
            try:
                future.set_result(start())
            except BaseException as exc:  # handed to the caller, who re-raises it
                future.set_exception(exc)


_LAUNCHER = _Launcher()
