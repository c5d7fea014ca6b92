"""A cgroup per sandboxed run: caps on the memory and the number of processes of the run as a
whole (`RLIMIT_AS` bounds each process, `RLIMIT_NPROC` counts per uid), and a kill of
everything left in it afterwards.

A sandbox slot keeps its emptied cgroups for its next runs (`RunCgroup.empty`, `reopen`)
instead of making one per run: a process that made a fresh memory cgroup and moved into it
started 11-12 ms later here, which cut the code verifier's throughput by 17%. What is left is
the move of each run into its cgroup (a kernel synchronisation of a few ms), which the slot
hides by starting its warm spare as the previous run begins.

The hierarchy is found once per process (`find_hierarchy`), best first:

- **cgroup v2** with the `memory` and `pids` controllers enabled for the children of this
  process's own cgroup (`cgroup.subtree_control`), or, since a cgroup with processes of its
  own cannot pass controllers on, of its parent (the host sits in a leaf of a delegated
  subtree, as `systemd-run -p Delegate=yes` plus a move into a leaf arranges). Each run gets
  `memory.max`, `memory.swap.max=0`, `memory.oom.group=1` (a run that hits its cap dies as a
  whole) and `pids.max`; afterwards `cgroup.kill` ends whatever is left.
- **cgroup v1** with `memory` and `pids` hierarchies (root only, in practice): a child of
  this process's own cgroup in each, with `memory.limit_in_bytes` (and
  `memory.memsw.limit_in_bytes`, no swap, where the kernel accounts it) and `pids.max`;
  the kernel's OOM killer picks a victim inside the run; afterwards the processes listed in
  `cgroup.procs` are killed one by one (pinned by pidfd).

Nothing is enabled or reconfigured on the host: either controllers are already available
to a cgroup this process may write to, or the layer is missing (the sandbox then runs
without it: it is an extra layer, not one the sandbox's guarantees rest on).

A run joins its cgroup before any program code exists: the host opens the cgroup's
`cgroup.procs` and hands the descriptor to the sandbox process, whose trusted runner writes
`0` (itself) to it as its first act (the kernel checks the opener's rights, so the runner
needs none of its own), and closes it; everything the program forks is born inside.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from dataclasses import dataclass
from typing import Literal

from rlvr_gym.verifiers.reaping import _kill_all

#: Prefix of every run's cgroup name (then the run's marker, which starts with the host pid).
PREFIX = "rlvr-sandbox-"

#: How to get the layer where it is missing.
HOW_TO_CAP = (
    "run as root on a host with the cgroup v1 memory and pids controllers mounted, or with "
    "cgroup v2 where this process's cgroup (or, for a process in a leaf, its parent) has "
    "memory and pids in cgroup.subtree_control and is writable by this user (e.g. a systemd "
    "unit or scope with Delegate=yes, the host moved into a leaf of it)")


@dataclass(frozen=True)
class Hierarchy:
    """Where the runs' cgroups are made."""

    version: Literal["v1", "v2"]
    """cgroup version."""
    parents: tuple[str, ...]
    """Directories the runs' cgroups are made in: v2 one; v1 the memory one, then pids."""

    def describe(self) -> str:
        """The layer's name in the `Layers` report."""
        return f"cgroup {self.version} memory+pids cap"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _mounts(mountinfo: str) -> list[tuple[str, str, str, set[str]]]:
    """(filesystem type, mount root, mount point, super options) of every cgroup mount."""
    mounts = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if dash < 5 or len(fields) < dash + 4 or fields[dash + 1] not in ("cgroup", "cgroup2"):
            continue
        point = fields[4].replace("\\040", " ")
        mounts.append((fields[dash + 1], fields[3], point, set(fields[dash + 3].split(","))))
    return mounts


def _own_dir(mount_root: str, point: str, own: str) -> str | None:
    """This process's cgroup directory under a mount, or None where the mount does not show
    it (it shows another part of the hierarchy)."""
    root = mount_root.rstrip("/")
    if own != root and not own.startswith(root + "/"):
        return None
    path = os.path.normpath(point + "/" + own[len(root):])
    return path if os.path.isdir(path) else None


def _has(directory: str, name: str, words: set[str]) -> bool:
    try:
        return words <= set(_read(os.path.join(directory, name)).split())
    except OSError:
        return False


def _v2_parent(mounts: list[tuple[str, str, str, set[str]]], own: str) -> str | None:
    needed = {"memory", "pids"}
    for fstype, mount_root, point, _ in mounts:
        if fstype != "cgroup2":
            continue
        here = _own_dir(mount_root, point, own)
        if here is None:
            continue
        candidates = [here] + ([os.path.dirname(here)] if here != os.path.normpath(point)
                               else [])
        for directory in candidates:
            if (_has(directory, "cgroup.subtree_control", needed)
                    and os.access(directory, os.W_OK | os.X_OK)):
                return directory
    return None


def _v1_parents(mounts: list[tuple[str, str, str, set[str]]], own: dict[str, str]
                ) -> tuple[str, ...] | None:
    found = []
    for controller in ("memory", "pids"):
        path = own.get(controller)
        directory = None
        for fstype, mount_root, point, options in mounts:
            if fstype == "cgroup" and controller in options and path is not None:
                directory = _own_dir(mount_root, point, path)
                if directory is not None:
                    break
        if directory is None or not os.access(directory, os.W_OK | os.X_OK):
            return None
        found.append(directory)
    return tuple(found)


def find_hierarchy(mountinfo: str | None = None, proc_cgroup: str | None = None
                   ) -> Hierarchy | None:
    """The hierarchy runs' cgroups can be made in (see the module docstring), or None.
    `mountinfo` and `proc_cgroup` default to this process's /proc/self/mountinfo and
    /proc/self/cgroup. Whether the kernel then accepts a run in it is for the caller to
    check (the sandbox's probe does)."""
    try:
        mountinfo = _read("/proc/self/mountinfo") if mountinfo is None else mountinfo
        proc_cgroup = _read("/proc/self/cgroup") if proc_cgroup is None else proc_cgroup
    except OSError:
        return None
    mounts = _mounts(mountinfo)
    own: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                own[controller] = parts[2]
    if "" in own:
        parent = _v2_parent(mounts, own[""])
        if parent is not None:
            return Hierarchy("v2", (parent,))
    parents = _v1_parents(mounts, own)
    return Hierarchy("v1", parents) if parents is not None else None


def remove_stale(hierarchy: Hierarchy) -> None:
    """Remove the empty run cgroups that hosts which died left behind (their pid is gone);
    a cgroup that still holds processes stays (the kernel refuses)."""
    for parent in hierarchy.parents:
        try:
            entries = [e.name for e in os.scandir(parent) if e.name.startswith(PREFIX)]
        except OSError:
            continue
        for name in entries:
            host = name[len(PREFIX):].split(".", 1)[0]
            if not host.isdigit() or os.path.exists(f"/proc/{host}"):
                continue
            _rmdir_quietly(os.path.join(parent, name))


class RunCgroup:
    """The cgroup of one sandboxed run, with its caps set; `fds` are the descriptors of its
    `cgroup.procs` files that the run's sandbox process inherits and writes `0` to (see the
    module docstring). OSError when it cannot be made (nothing is left behind then).

    Args:
        hierarchy: where to make it.
        name: the cgroup's name (unique on the machine: `PREFIX` + the run's marker).
        memory_bytes: the run's memory cap (swap none).
        pids: the most processes and threads the run may have at once.
    """

    def __init__(self, hierarchy: Hierarchy, name: str, memory_bytes: int, pids: int) -> None:
        self.hierarchy = hierarchy
        self.dirs = tuple(os.path.join(parent, name) for parent in hierarchy.parents)
        self.fds: list[int] = []
        self.oom_kills = 0
        """Processes of the last run the kernel killed for its memory cap (set by `empty`)."""
        self._oom_total = 0
        made: list[str] = []
        try:
            for directory in self.dirs:
                _make_dir(directory)
                made.append(directory)
            memory, pids_dir = self.dirs[0], self.dirs[-1]
            if hierarchy.version == "v2":
                limits = [("memory.max", str(memory_bytes)), ("memory.swap.max", "0"),
                          ("memory.oom.group", "1")]
                optional = {"memory.swap.max", "memory.oom.group"}
            else:  # memsw (memory + swap) must not be below the memory limit: set it second
                limits = [("memory.limit_in_bytes", str(memory_bytes)),
                          ("memory.memsw.limit_in_bytes", str(memory_bytes))]
                optional = {"memory.memsw.limit_in_bytes"}
            for file, value in limits:
                path = os.path.join(memory, file)
                if file not in optional or os.path.exists(path):
                    _write(path, value)
            _write(os.path.join(pids_dir, "pids.max"), str(pids))
            self.reopen()
        except OSError:
            self.close_fds()
            for directory in made:
                _rmdir_quietly(directory)
            raise

    def reopen(self) -> RunCgroup:
        """Open the `fds` a (next) run's sandbox process joins through; returns self."""
        self.close_fds()
        for directory in self.dirs:
            self.fds.append(os.open(os.path.join(directory, "cgroup.procs"),
                                    os.O_WRONLY | os.O_CLOEXEC))
        return self

    def close_fds(self) -> None:
        """Close the host's copies of `fds` (once the sandbox process has inherited them)."""
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def processes(self) -> list[int]:
        """Pids of the processes in the run's cgroup."""
        try:
            return [int(pid) for pid in _read(os.path.join(self.dirs[0], "cgroup.procs"))
                    .split()]
        except (OSError, ValueError):
            return []

    def empty(self, timeout_s: float = 5.0) -> bool:
        """End a run: kill every process left in the cgroup and set `oom_kills` to the run's
        count; True when no process is left (the cgroup can serve another run)."""
        self.close_fds()
        kill = os.path.join(self.dirs[0], "cgroup.kill")
        if self.hierarchy.version == "v2" and os.path.exists(kill):
            with contextlib.suppress(OSError):  # else the scan below kills them one by one
                _write(kill, "1")
        _kill_all(self.processes, lambda pid: pid in self.processes(), timeout_s)
        total = self._oom_kills()  # the kernel's count is cumulative over the cgroup's runs
        self.oom_kills, self._oom_total = total - self._oom_total, total
        return not self.processes()

    def remove(self, timeout_s: float = 5.0) -> bool:
        """`empty` the cgroup and remove it; True when it is gone within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        self.empty(timeout_s)
        removed = True
        for directory in self.dirs:
            while True:
                try:
                    _remove_dir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:  # EBUSY: a process is still on its way out
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        removed = False
                        break
                    time.sleep(0.002)
        return removed

    def _oom_kills(self) -> int:
        events = "memory.events" if self.hierarchy.version == "v2" else "memory.oom_control"
        try:
            for line in _read(os.path.join(self.dirs[0], events)).splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0


def _make_dir(directory: str) -> None:
    """Make a cgroup (the kernel fills it with its control files)."""
    os.mkdir(directory, 0o755)


def _remove_dir(directory: str) -> None:
    """Remove a cgroup (possible once no process is left in it, control files and all)."""
    os.rmdir(directory)


def _rmdir_quietly(directory: str) -> None:
    with contextlib.suppress(OSError):
        _remove_dir(directory)
