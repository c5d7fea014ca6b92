"""The capped reader of a sandbox's output: result lines from stdout, a tail of stderr, never
more than the output cap held in memory, and the process's exit noticed through a pidfd."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import selectors
import subprocess
import time
from typing import Any


class _Reader:
    """Reads a sandbox's stdout (result lines) and stderr (kept as a tail) without ever holding
    more than the output cap, and notices the process's exit through a pidfd."""

    STDERR_TAIL = 4096

    def __init__(self, popen: subprocess.Popen, cap: int, max_messages: int) -> None:
        self.popen = popen
        self.cap = cap
        self.max_messages = max_messages
        """Result lines kept (a flood of tiny lines must not cost the host ~100x their size
        in dicts); further JSON objects count as bad lines."""
        self.total = 0
        self.messages: list[dict[str, Any]] = []
        self.bad_lines = 0
        self.timed_out = self.exceeded = False
        self._partial = b""
        self._stderr: collections.deque[bytes] = collections.deque()
        self._stderr_size = 0
        self._selector = selectors.DefaultSelector()
        assert popen.stdout is not None and popen.stderr is not None
        self._open = {popen.stdout, popen.stderr}
        for stream in self._open:
            os.set_blocking(stream.fileno(), False)
            self._selector.register(stream, selectors.EVENT_READ)
        self._pidfd = os.pidfd_open(popen.pid)
        self._selector.register(self._pidfd, selectors.EVENT_READ)
        self._exited = False
        self._done = False

    def first_line(self, deadline: float) -> dict[str, Any] | None:
        """Wait for the runner's `ready` line (or its death / the deadline)."""
        while not self.messages and self._pump(deadline):
            pass
        if not self.messages:
            return None
        return self.messages.pop(0)

    def read_until(self, deadline: float) -> None:
        while self._pump(deadline):
            pass

    def _pump(self, deadline: float) -> bool:
        """One round of reading; False when there is nothing more to wait for."""
        if self._done or self.exceeded:
            return False
        if self._exited or not self._open:
            self._drain()
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            self.timed_out = True
            return False
        for key, _ in self._selector.select(left):
            if key.fileobj == self._pidfd:
                self._exited = True
                continue
            self._read(key.fileobj)
        return not self.exceeded

    def _drain(self) -> None:
        """After the process exited: take what is still buffered in the pipes (descendants
        that keep them open must not make us wait)."""
        for stream in list(self._open):
            for _ in range(1 + self.cap // 65536):
                if self.exceeded or not self._read(stream):
                    break

    def _read(self, stream: Any) -> bool:
        try:
            chunk = os.read(stream.fileno(), 65536)
        except (BlockingIOError, ValueError):
            return False
        if not chunk:
            self._selector.unregister(stream)
            self._open.discard(stream)
            return False
        self.total += len(chunk)
        if self.total > self.cap:
            self.exceeded = True
            return False
        if stream is self.popen.stderr:
            self._stderr.append(chunk)
            self._stderr_size += len(chunk)
            while self._stderr_size - len(self._stderr[0]) >= self.STDERR_TAIL:
                self._stderr_size -= len(self._stderr.popleft())
        else:
            self._lines(chunk)
        return True

    def _lines(self, chunk: bytes) -> None:
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except (ValueError, RecursionError):  # e.g. a line of 100,000 nested lists
                message = None
            if isinstance(message, dict) and len(self.messages) < self.max_messages:
                self.messages.append(message)
                if message.get("t") == "done":
                    self._done = True
            else:
                self.bad_lines += 1

    def stderr_tail(self) -> str:
        return b"".join(self._stderr)[-self.STDERR_TAIL:].decode("utf-8", "replace")

    def close(self) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(self._pidfd)
        self._selector.close()
        os.close(self._pidfd)
