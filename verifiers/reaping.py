"""Finding and killing a sandbox's processes, and removing what they leave behind.

Processes are found by a scan of /proc: all of one uid (`kill_uid`, as root), or those whose
environment carries a run's marker (`_MARKER_VAR`, set by `Sandbox` on every run:
`sandbox_processes`). Kills pin each pid with a pidfd, so a reused pid is never hit, and wait
until the processes are gone. A run in a PID namespace is ended by killing the namespace's
init (`_kill_namespace`); the scans are for the unsafe modes, cleanup and tests."""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

_MARKER_VAR = "RLVR_SANDBOX"


def _is_root() -> bool:
    return os.geteuid() == 0


def _process_uids(only_uid: int | None = None) -> Iterator[tuple[int, int]]:
    """(pid, uid) of every live process on the machine (of `only_uid` if given). A zombie
    counts as live while other threads of its group run: a leader that ended with the raw
    exit syscall shows `Z` while its threads go on, and a signal to its pid still kills them
    all."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            uid = entry.stat().st_uid
            if only_uid is not None and uid != only_uid:
                continue
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            state, threads = fields[0], int(fields[17])
        except (OSError, IndexError, ValueError):
            continue
        if state != b"Z" or threads > 1:  # a lone zombie is dead; its parent or init reaps it
            yield int(entry.name), uid


def _kill_all(find: Callable[[], list[int]], matches: Callable[[int], bool],
              timeout_s: float = 5.0) -> bool:
    """SIGKILL the processes `find()` returns, wait (without spinning) until they have died,
    and repeat until none is left; a fork storm may add processes meanwhile, but RLIMIT_NPROC
    bounds it. Each pid is pinned with a pidfd and checked again with `matches` before the
    signal, so a pid reused by an unrelated process is never hit. True when none is left
    within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        victims = find()
        if not victims:
            return True
        if time.monotonic() > deadline:
            return False
        pidfds = []
        for pid in victims:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:  # gone already
                continue
            try:
                if not matches(pid):
                    raise ProcessLookupError(pid)
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                pidfds.append(pidfd)
            except OSError:
                os.close(pidfd)
        with selectors.DefaultSelector() as waiting:
            for pidfd in pidfds:
                waiting.register(pidfd, selectors.EVENT_READ)  # readable once it has exited
            while waiting.get_map() and time.monotonic() < deadline:
                for key, _ in waiting.select(max(0.0, deadline - time.monotonic())):
                    waiting.unregister(key.fileobj)
        for pidfd in pidfds:
            os.close(pidfd)


def kill_uid(uid: int, timeout_s: float = 5.0) -> bool:
    """Kill every process of `uid` and wait until none is left (needs root). True on
    success."""
    def owned(pid: int) -> bool:
        try:
            return os.stat(f"/proc/{pid}").st_uid == uid
        except OSError:
            return False

    return _kill_all(lambda: [pid for pid, _ in _process_uids(uid)], owned, timeout_s)


def _marked_processes(host_pid: int | None = None) -> dict[int, str]:
    """{pid: run marker} of live processes started by the sandboxes of host process
    `host_pid` (default: this one), found by the marker in their environment."""
    prefix = f"{_MARKER_VAR}={os.getpid() if host_pid is None else host_pid}.".encode()
    only_uid = None if _is_root() else os.getuid()  # others' environments are unreadable
    found = {}
    for pid, _ in _process_uids(only_uid):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                items = f.read().split(b"\0")
        except OSError:
            continue
        for item in items:
            if item.startswith(prefix):
                found[pid] = item.split(b"=", 1)[1].decode()
                break
    return found


def sandbox_processes(host_pid: int | None = None, marker: str | None = None) -> list[int]:
    """Pids of live processes started by sandboxes of the host process `host_pid` (default:
    this one), or only of the run with `marker`. For cleanup, tests and diagnostics."""
    return [pid for pid, m in _marked_processes(host_pid).items()
            if marker is None or m == marker]


def _kill_marked(marker: str, timeout_s: float = 5.0) -> bool:
    """Kill the processes of one run (found by marker) and wait until none is left."""
    def marked(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                return f"{_MARKER_VAR}={marker}".encode() in f.read().split(b"\0")
        except OSError:
            return False

    return _kill_all(lambda: sandbox_processes(marker=marker), marked, timeout_s)


def _kill_namespace(popen: subprocess.Popen) -> bool:
    """SIGKILL the init of a run's PID namespace (the child of `unshare --fork` or of
    bubblewrap, which is `popen`): the kernel kills every other process in the namespace,
    zombie thread-group leaders included, before the init can be reaped. The namespace is
    empty once `popen` has reaped it and exited: the caller waits for that when this
    returns True. False: `popen` had no child (gone, or a spare that has not forked its
    init yet, so no program ran), and will not exit on its own: kill it instead."""
    children = f"/proc/{popen.pid}/task/{popen.pid}/children"
    try:
        with open(children) as f:
            pids = [int(pid) for pid in f.read().split()]
    except (OSError, ValueError):
        return False  # `popen` is gone or never started its child
    for pid in pids:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            with open(children) as f:  # still its child: the pid was not reused meanwhile
                if str(pid) in f.read().split():
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except OSError:
            pass
        finally:
            os.close(pidfd)
    return bool(pids)


#: Directories any uid may write to; a sandbox uid's leftovers there are removed after a run.
_SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")


def _remove_files_of(uid: int) -> None:
    """Remove what `uid` left at the top of the shared writable directories."""
    for directory in _SHARED_WRITABLE:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue
