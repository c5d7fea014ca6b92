"""Running untrusted Python programs so that the host survives them.

Isolation comes in layers; each one that is active is listed in `Sandbox.layers`:

- **process group**: the program runs in its own session; at the wall deadline (or when its
  output passes the cap) the whole group is killed, not only the direct child.
- **rlimits**: CPU seconds, address space, file size, open files, no core files; processes
  where the program has a uid or user namespace of its own (the count is per uid).
- **scrubbed environment**: an allowlist (PATH, locale, one-thread BLAS settings, HOME and
  TMPDIR pointing at the private directory); nothing of the host's environment leaks.
- **private directory**: a fresh temporary directory is the working directory and HOME; it is
  removed afterwards.
- **unprivileged uid** (host runs as root): the program runs under a uid of its own (each
  sandbox leases one, machine-wide), so `RLIMIT_NPROC` is enforced, host files are protected
  by their permissions, and every process of that uid can be killed after the run.
- **network namespace**: the program sees no network device but a loopback that is down.
- **no new privileges**: setuid binaries cannot raise the program's privileges; util-linux
  `setpriv` also kills the sandbox if the host dies.
- **PID namespace**: the program sees and signals only its own processes; the runner is the
  namespace's init, and killing it kills everything in there, so nothing outlives a run.
- **filesystem view** (mount namespace): only the interpreter and its standard library,
  read-only (see `isolation.py`): no installed packages, project files, datasets, home
  directories, host /tmp, /run, /dev/shm or unix sockets; a private working directory, /tmp
  and /dev/shm on a tmpfs of `tmpfs_mb`, gone with the run.
- **IPC namespace**: SysV shared memory, semaphores and message queues die with the run
  (without bubblewrap also bounded: shared memory by `tmpfs_mb`, 16 queues).

The last four come from bubblewrap when it is installed, else from util-linux `unshare`
starting the runner in new namespaces (as root directly, otherwise inside a user namespace
of its own), in which the runner builds the view itself. Where neither works (no user
namespaces, no bubblewrap) `Sandbox` refuses with the command that fixes it, unless
`SandboxConfig.allow_unsafe` accepts weaker layers (network namespace from the runner's
own `unshare(2)`, a uid of its own as root, processes found by scans). The layers in force
are logged once per process (logger `rlvr_gym.verifiers.sandbox`).

Memory: `memory_mb` bounds each process's address space; a run may hold up to
`max_processes` times that, plus `tmpfs_mb` of files (twice with bubblewrap: /tmp and
/dev/shm are separate there, and SysV shared memory keeps the kernel's default limits). No
cgroup bounds the run as a whole.

Captured output is capped (`max_output_bytes`), so a program that prints gigabytes cannot
exhaust the host's memory. A bounded `SandboxPool` runs many programs in parallel.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import fcntl
import itertools
import json
import marshal
import os
import queue
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlvr_gym.verifiers import _sandbox_runner
from rlvr_gym.verifiers.isolation import (
    HOW_TO_ISOLATE,
    SandboxUnavailable,
    bwrap_args,
    find_tools,
    interpreter,
    log_layers_once,
    view_for,
)

# The runner arrives as the first frame on stdin (see `_sandbox_runner`): the sandbox user needs
# no read access to the project's files, and `ps` shows a short command line. When the sandbox
# interpreter shares the host's bytecode format it gets compiled code (saves ~3 ms a start).
_BOOTSTRAP_SOURCE = "import sys; b = sys.stdin.buffer; exec(b.read(int(b.readline())))"
_BOOTSTRAP_CODE = "import sys, marshal; b = sys.stdin.buffer; exec(marshal.loads(" \
    "b.read(int(b.readline()))))"
_MARSHAL_VERSION = 4  # data only; readable by every Python >= 3.4


def _frame(data: bytes) -> bytes:
    return b"%d\n" % len(data) + data


_RUNNER_BYTES = Path(_sandbox_runner.__file__).read_bytes()
_RUNNER_SOURCE_FRAME = _frame(_RUNNER_BYTES)
_RUNNER_CODE_FRAME = _frame(marshal.dumps(compile(_RUNNER_BYTES, "<rlvr-sandbox-runner>",
                                                  "exec")))


#: How a sandbox is isolated, best first: bubblewrap (filesystem view, PID/IPC/network
#: namespaces); util-linux `unshare` starting the runner as init of new mount/PID/IPC/network
#: namespaces in which it builds the same view itself ("namespaces"). Unsafe mode only
#: (`SandboxConfig.allow_unsafe`): util-linux `unshare` for a network namespace alone, the
#: runner's own `unshare(2)` call for one, or nothing.
Isolation = Literal["bwrap", "namespaces", "unshare", "runner", "none"]

_MARKER_VAR = "RLVR_SANDBOX"

#: Environment variables every sandboxed program gets (besides HOME, TMPDIR and the marker).
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
    # RLIMIT_AS counts the virtual memory of every BLAS/OpenMP thread: keep them to one.
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
}


@dataclass(frozen=True)
class SandboxConfig:
    """Limits and isolation options of one sandboxed run."""

    cpu_time_s: int = 10
    """RLIMIT_CPU: CPU seconds the program may use (then SIGXCPU, then SIGKILL)."""
    memory_mb: int = 1024
    """RLIMIT_AS: address space in MiB (numpy alone maps ~100 MiB; keep at least 256)."""
    max_processes: int = 32
    """RLIMIT_NPROC: processes the program may have at once (a fork storm stops here). Set
    only where the program has a uid or user namespace of its own, since the count is per
    uid: as root, or with bubblewrap or user namespaces."""
    max_file_mb: int = 16
    """RLIMIT_FSIZE: largest file the program may write, in MiB."""
    max_open_files: int = 64
    """RLIMIT_NOFILE: open file descriptors."""
    max_output_bytes: int = 4_000_000
    """Cap on the bytes a run may send back (results, stdout of stdin/stdout tests, stderr);
    past it the run is killed. Stdin/stdout tests share it."""
    startup_timeout_s: float = 10.0
    """Wall time allowed for the sandbox to start; overrunning it is a harness `error`."""
    isolate_network: bool = True
    """Run the program in a network namespace of its own (no network)."""
    bubblewrap: Literal["auto", "always", "never"] = "auto"
    """Use bubblewrap (`bwrap`) for filesystem/PID isolation: if installed, required, or not."""
    drop_privileges: bool = True
    """When the host runs as root, run the program under an unprivileged uid of its own."""
    uid_base: int = 1_900_000_000
    """First of 65536 uids used for sandboxes when running as root (each sandbox leases one,
    machine-wide; pick a range that no real account uses)."""
    python: str | None = None
    """Interpreter for the program; None: the host's own if the sandbox uid can run it, else
    the system's python3."""
    site_packages: bool = False
    """Let the program import installed packages (numpy, ...): the interpreter's
    site-packages directories become visible (with whatever is installed there). By default
    only the standard library is importable and visible."""
    tmpfs_mb: int = 64
    """Size of the program's private writable filesystem (working directory, /tmp, /dev/shm;
    memory-backed) in MiB, and of its SysV shared memory. bubblewrap gives /tmp and /dev/shm
    this size each."""
    allow_unsafe: bool = False
    """Run even where the layers needed for the sandbox's guarantees (PID, mount, IPC and,
    with `isolate_network`, network namespaces: bubblewrap, or util-linux `unshare` as root
    or with user namespaces) are missing. Without it such a host refuses, saying what to
    install; with it the missing layers are logged as warnings. Only for trusted code."""
    extra_env: tuple[tuple[str, str], ...] = ()
    """Further (name, value) environment variables for the program."""

    def validate(self) -> None:
        """Raise ValueError with a fix for any unusable value."""
        positive = {"cpu_time_s": self.cpu_time_s, "max_processes": self.max_processes,
                    "tmpfs_mb": self.tmpfs_mb,
                    "max_file_mb": self.max_file_mb, "max_open_files": self.max_open_files,
                    "max_output_bytes": self.max_output_bytes,
                    "startup_timeout_s": self.startup_timeout_s}
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"SandboxConfig.{name} must be positive, got {value}")
        if self.memory_mb < 64:
            raise ValueError(f"SandboxConfig.memory_mb={self.memory_mb} is too small for a "
                             "Python interpreter; use at least 64 (256+ if numpy is used)")
        if self.max_open_files < 16:
            raise ValueError("SandboxConfig.max_open_files must be at least 16 (the "
                             "interpreter itself needs a few)")
        if self.bubblewrap not in ("auto", "always", "never"):
            raise ValueError(f"SandboxConfig.bubblewrap must be 'auto', 'always' or 'never', "
                             f"got {self.bubblewrap!r}")
        if not 1000 <= self.uid_base <= 2**32 - 2 - 65536:
            raise ValueError(f"SandboxConfig.uid_base={self.uid_base} must lie in "
                             f"[1000, {2**32 - 2 - 65536}] (an unused range of 65536 uids)")
        if self.bubblewrap == "always" and find_tools()["bwrap"] is None:
            raise ValueError("SandboxConfig.bubblewrap='always' but bwrap is not installed "
                             "(or $RLVR_SANDBOX_NO_BWRAP hides it): apt-get install "
                             "bubblewrap (or dnf install bubblewrap)")


@dataclass(frozen=True)
class Layers:
    """Which isolation layers are active for this host (see the module docstring)."""

    process_group: bool = True
    """Own session and process group, killed as a whole at the deadline."""
    rlimits: bool = True
    """CPU, address space, file size and open-file limits; the process limit too where the
    program has a uid or user namespace of its own (see `SandboxConfig.max_processes`)."""
    env_allowlist: bool = True
    """Environment reduced to an allowlist."""
    private_tmp: bool = True
    """Fresh temporary directory as cwd and HOME, removed afterwards."""
    unprivileged_uid: bool = False
    """Runs under a uid of its own (host is root)."""
    network_namespace: bool = False
    """No network: own network namespace."""
    no_new_privileges: bool = False
    """PR_SET_NO_NEW_PRIVS: setuid binaries cannot raise the program's privileges."""
    bubblewrap: bool = False
    """The view, namespaces and private /tmp come from bubblewrap."""
    pid_namespace: bool = False
    """Own PID namespace: the program sees and signals only its own processes, and all of
    them die with it (nothing outlives a run)."""
    filesystem_view: bool = False
    """Own mount namespace with only the interpreter and its standard library, read-only,
    and private size-limited /tmp, /dev/shm and working directory: no project files,
    datasets, installed packages (unless `site_packages`), host /tmp, /run or unix sockets."""
    ipc_namespace: bool = False
    """Own IPC namespace: SysV shared memory, semaphores and message queues die with the
    run."""

    def active(self) -> list[str]:
        """Names of the active layers."""
        return [name for name, on in asdict(self).items() if on]

    def missing(self, network: bool = True) -> list[str]:
        """One line per layer the sandbox's guarantees need that is missing (the network
        namespace only if `network`): what it means, and how to get it."""
        lines = []
        if network and not self.network_namespace:
            lines.append("no network namespace: sandboxed programs can reach the network")
        if not self.pid_namespace:
            lines.append("no PID namespace: programs can outlive their run and signal other "
                         "processes" + ("" if self.unprivileged_uid else " of your user"))
        if not self.filesystem_view:
            lines.append("no filesystem view: programs can read the installed package (test "
                         "answers included) and datasets"
                         + ("" if self.unprivileged_uid else ", and modify your files"))
        if not self.ipc_namespace:
            lines.append("no IPC namespace: SysV shared memory and messages outlive the run")
        return [f"{line}; {HOW_TO_ISOLATE}" for line in lines]


@dataclass
class RunResult:
    """What came back from one sandboxed run.

    `messages` are the JSON lines the sandbox runner sent after start-up (test results); they
    come from inside the sandbox and may be forged by the program, so callers compare values
    against expected outputs they hold themselves. `error` is set only for harness failures
    (the sandbox did not start or broke before the program ran): mask those, do not score them.
    """

    messages: list[dict[str, Any]] = field(default_factory=list)
    """Parsed result lines, in order; unparsable lines are dropped and counted."""
    bad_lines: int = 0
    """Lines that were not JSON objects, or objects past the most the runner writes for the
    payload: the program wrote to the result channel."""
    stderr: str = ""
    """The last few KiB of the program's stderr."""
    exit_code: int | None = None
    """Exit status of the sandbox (negative: killed by that signal); None if it was killed by
    the host."""
    timed_out: bool = False
    """The wall deadline passed and the run was killed."""
    output_exceeded: bool = False
    """The output cap was reached and the run was killed."""
    error: str | None = None
    """Harness failure, or None."""
    elapsed_s: float = 0.0
    """Wall time from sending the payload to the end of the run."""
    ready: dict[str, Any] = field(default_factory=dict)
    """The runner's start-up report (its uid, whether it got a network namespace)."""


def _is_root() -> bool:
    return os.geteuid() == 0


def _world_runnable(path: str) -> bool:
    """True when a user with no special rights can execute `path` (every ancestor directory
    searchable by others, the file executable by others)."""
    p = Path(os.path.realpath(path))
    try:
        if not p.stat().st_mode & stat.S_IXOTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in p.parents)
    except OSError:
        return False


def _choose_python(config: SandboxConfig, other_uid: bool) -> str:
    if config.python is not None:
        if shutil.which(config.python) is None:
            raise ValueError(f"SandboxConfig.python={config.python!r} is not an executable")
        return config.python
    own = os.path.realpath(sys.executable)
    if not other_uid:
        return own
    lib = os.path.join(sys.base_prefix, "lib")
    if _world_runnable(own) and _world_runnable(lib):
        return own
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if _world_runnable(candidate):
            return candidate
    raise ValueError(f"the sandbox uid cannot run this interpreter ({own} lies in a directory "
                     "closed to other users) and no system python3 was found: install "
                     "python3 system-wide or set SandboxConfig.python to a world-readable "
                     "interpreter")


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


def _kill_namespace(popen: subprocess.Popen, timeout_s: float = 5.0) -> None:
    """SIGKILL the init of a run's PID namespace (the child of `unshare --fork` or of
    bubblewrap, which is `popen`): the kernel kills every other process in the namespace,
    zombie thread-group leaders included, before the init can be reaped. Then wait until
    `popen` has reaped it and exited, so that the namespace is empty when this returns."""
    children = f"/proc/{popen.pid}/task/{popen.pid}/children"
    try:
        with open(children) as f:
            pids = [int(pid) for pid in f.read().split()]
    except (OSError, ValueError):
        return  # `popen` is gone or never started its child
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
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(timeout_s)


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


_UID_RANGE = 1 << 16


def _lease_dir() -> str:
    """A root-only directory for the uid lock files (checked, so that nobody else can plant
    files or links there)."""
    path = "/run/rlvr-sandbox-uids" if os.access("/run", os.W_OK) else "/tmp/rlvr-sandbox-uids"
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o077:
        raise RuntimeError(f"{path} must be a directory owned by root with mode 0700; remove "
                           "it (someone else may have created it) and try again")
    return path


class _UidLease:
    """Exclusive use of one sandbox uid while this object lives, across all processes of the
    machine: an flock on a per-uid file in a root-only directory. Unique uids matter because
    cleanup kills every process of the uid."""

    def __init__(self, base: int) -> None:
        directory = _lease_dir()
        self._fd: int | None = None
        start = (os.getpid() * 64) % _UID_RANGE
        for k in range(_UID_RANGE):
            uid = base + (start + k) % _UID_RANGE
            fd = os.open(os.path.join(directory, str(uid)),
                         os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            kill_uid(uid)  # whatever a crashed previous holder left running
            return
        raise RuntimeError(f"all {_UID_RANGE} sandbox uids from {base} are in use")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


class _Started:
    """A sandbox process that has been launched and is waiting for its payload."""

    def __init__(self, popen: subprocess.Popen, workdir: str, marker: str,
                 isolation: Isolation) -> None:
        self.popen = popen
        self.workdir = workdir
        self.marker = marker
        self.isolation = isolation
        self.started = time.monotonic()


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
_INSTANCES = itertools.count()
_LIVE: weakref.WeakSet[Sandbox] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """At interpreter exit, kill the warm spares and remove their directories (a `__del__`
    is not guaranteed to run then)."""
    for sandbox in list(_LIVE):
        sandbox.close()

_PROBED: dict[tuple, tuple[Isolation, Layers]] = {}
_PROBE_LOCK = threading.Lock()


class Sandbox:
    """One sandbox slot: runs one program at a time, each in a fresh process tree.

    While the caller digests a result the next sandbox process is already starting (a warm
    spare), so interpreter start-up overlaps other work. Thread-safe only in the sense that
    one slot must be used by one thread at a time; `SandboxPool` hands out slots.

    Args:
        config: limits and options.
        slot: worker number within its pool.
    """

    def __init__(self, config: SandboxConfig | None = None, slot: int = 0) -> None:
        self.config = config or SandboxConfig()
        self.config.validate()
        if slot < 0:
            raise ValueError(f"slot must be non-negative, got {slot}")
        self.slot = slot
        self.python = _choose_python(self.config, _is_root() and self.config.drop_privileges)
        self._lease: _UidLease | None = None
        self.uid: int | None = None
        """The uid programs run under (root host only), leased for this sandbox's lifetime."""
        if _is_root() and self.config.drop_privileges:
            self._lease = _UidLease(self.config.uid_base)
            self.uid = self._lease.uid
        self.instance = next(_INSTANCES)
        """Unique number of this sandbox in the host process (part of its runs' markers)."""
        self._runs = 0
        self._spare: _Started | None = None
        self._closed = False
        # Absolute paths: the sandbox's own PATH is the allowlisted one.
        self._tools = find_tools()
        self._interpreter = interpreter(self.python, BASE_ENV["PATH"])
        self._code = self._interpreter.cache_tag == sys.implementation.cache_tag
        self._view = view_for(self._interpreter, self.python, self.config.site_packages)
        self.isolation: Isolation = "none"
        """How this sandbox gets its network namespace (decided by the probe)."""
        self.layers = self._probe()
        _LIVE.add(self)

    # -- public ---------------------------------------------------------------------------

    def run(self, payload: dict[str, Any], timeout_s: float) -> RunResult:
        """Send `payload` (see `_sandbox_runner`) to a fresh sandbox and collect its result
        lines; the program gets `timeout_s` of wall time from the moment the payload is sent.
        Never raises for anything the program does."""
        if self._closed:
            raise RuntimeError("this Sandbox is closed")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        started = self._spare or self._launch()
        self._spare = None
        try:
            result = self._drive(started, payload, timeout_s)
        finally:
            self._finish(started)
        if not self._closed:
            try:
                self._spare = self._launch()
            except OSError:
                self._spare = None  # the next run() launches (and reports) it
        return result

    @property
    def spare_marker(self) -> str | None:
        """Marker of the warm spare process (idle, waiting for a payload), if any."""
        return self._spare.marker if self._spare is not None else None

    def close(self) -> None:
        """Kill the warm spare and release the slot's resources (its uid)."""
        self._closed = True
        if self._spare is not None:
            self._finish(self._spare)
            self._spare = None
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_spare", None) is not None or getattr(self, "_lease", None):
            self.close()

    # -- internals ------------------------------------------------------------------------

    def _runner_config(self, isolation: Isolation, workdir: str) -> dict[str, Any]:
        c = self.config
        view = None
        if isolation == "namespaces":
            view = {"root": workdir, "workdir": workdir, "tmp_bytes": c.tmpfs_mb << 20,
                    "uid": self.uid, "binds": list(self._view.binds),
                    "hidden": list(self._view.hidden),
                    "symlinks": [list(pair) for pair in self._view.symlinks]}
        return {
            "cpu_s": c.cpu_time_s, "as_bytes": c.memory_mb << 20,
            "fsize_bytes": c.max_file_mb << 20, "nofile": c.max_open_files,
            "nproc": c.max_processes, "isolate_network": isolation == "runner",
            "own_uid_or_namespace": self.uid is not None or isolation != "runner",
            "view": view,
        }

    def _privileges(self, isolation: Isolation) -> list[str]:
        """util-linux `setpriv` in front of everything: drops to the sandbox uid (as root;
        with "namespaces" the runner does that after building its view), forbids gaining
        privileges through setuid binaries, and kills the sandbox if the host dies. Doing
        the uid change there instead of in `subprocess` lets Python start the child with
        vfork, which matters when the host is a large training process."""
        setpriv = self._tools["setpriv"]
        if not setpriv:
            return []
        args = [setpriv, "--no-new-privs", "--pdeathsig=KILL"]
        if self.uid is not None and isolation != "namespaces":
            args += [f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups"]
        return args + ["--"]

    def _tool(self, name: str) -> str:
        """The path of a tool the chosen isolation needs (the probe chose it because it is
        there)."""
        path = self._tools[name]
        assert path is not None, f"{name} was chosen but is not installed"
        return path

    def _command(self, workdir: str, isolation: Isolation) -> list[str]:
        python = [self.python, "-I"] + ([] if self.config.site_packages else ["-S"])
        command = python + ["-c", _BOOTSTRAP_CODE if self._code else _BOOTSTRAP_SOURCE]
        privileges = self._privileges(isolation)
        if isolation == "unshare":
            return privileges + [self._tool("unshare"), "--user", "--net", "--"] + command
        if isolation == "namespaces":
            # The runner is the init of the new PID namespace (--fork): killing it kills
            # everything in there. --kill-child: it dies with `unshare`. As root the
            # runner drops to the sandbox uid itself; otherwise a user namespace of its
            # own (mapping only the user, as root without capabilities) lets it build
            # its view.
            unshare = [self._tool("unshare"), "--fork", "--kill-child", "--pid", "--mount",
                       "--ipc", "--uts"]
            if self.uid is None:
                unshare += ["--user", "--map-root-user"]
            if self.config.isolate_network:
                unshare.append("--net")
            return privileges + unshare + ["--"] + command
        if isolation != "bwrap":
            return privileges + command
        # --as-pid-1: the runner itself is the PID namespace's init (no extra init process,
        # ~30% faster); when it exits or is killed, the kernel kills the whole namespace.
        size = str(self.config.tmpfs_mb << 20)
        bwrap = [self._tool("bwrap"), "--unshare-all", "--as-pid-1", "--die-with-parent",
                 "--new-session", *bwrap_args(self._view),
                 "--dev", "/dev", "--proc", "/proc", "--size", size, "--tmpfs", "/tmp",
                 "--size", size, "--tmpfs", "/dev/shm"]
        if not self.config.isolate_network:
            bwrap.append("--share-net")
        # The working directory lives in the sized /tmp, not on the host's disk.
        bwrap += ["--dir", workdir, "--chdir", workdir, "--"]
        return privileges + bwrap + command

    def _launch(self, isolation: Isolation | None = None) -> _Started:
        isolation = self.isolation if isolation is None else isolation
        workdir = tempfile.mkdtemp(prefix="rlvr-sandbox-")
        self._runs += 1
        env = dict(BASE_ENV)
        env.update(HOME=workdir, TMPDIR=workdir)
        marker = f"{os.getpid()}.{self.instance}.{self._runs}"
        env[_MARKER_VAR] = marker
        env.update(dict(self.config.extra_env))
        kwargs: dict[str, Any] = {}
        if self.uid is not None:
            os.chown(workdir, self.uid, self.uid)
            if not self._tools["setpriv"] and isolation != "namespaces":
                kwargs.update(user=self.uid, group=self.uid, extra_groups=[])
        try:
            command = self._command(workdir, isolation)
            popen = _LAUNCHER.call(lambda: subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=env, cwd=workdir, start_new_session=True,
                close_fds=True, **kwargs))
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        assert popen.stdin is not None
        try:
            # Fits in the pipe buffer, so this does not wait for the interpreter to start.
            limits = self._runner_config(isolation, workdir)
            runner = _RUNNER_CODE_FRAME if self._code else _RUNNER_SOURCE_FRAME
            popen.stdin.write(runner + _frame(marshal.dumps(limits, _MARSHAL_VERSION)))
            popen.stdin.flush()
        except BrokenPipeError:
            pass  # it died at once; reading its `ready` line reports why
        return _Started(popen, workdir, marker, isolation)

    def _drive(self, started: _Started, payload: dict[str, Any], timeout_s: float
               ) -> RunResult:
        popen = started.popen
        assert popen.stdin is not None and popen.stdout is not None and popen.stderr is not None
        result = RunResult()
        # The runner writes a few lines per run and at most two per case (a `ref` or a
        # `result`): anything beyond that is the program's own writing.
        reader = _Reader(popen, self.config.max_output_bytes,
                         16 + 2 * len(payload.get("cases") or ()))
        try:
            ready = reader.first_line(started.started + self.config.startup_timeout_s)
            result.ready = ready or {}
            if ready is None or ready.get("t") != "ready":
                result.error = ("the sandbox did not start: " +
                                (reader.stderr_tail().strip()[-300:] or "no output"))
                return result
            t0 = time.monotonic()
            try:
                popen.stdin.write(_frame(marshal.dumps(payload, _MARSHAL_VERSION)))
                popen.stdin.close()
            except BrokenPipeError:
                pass  # the runner died: the reader sees it
            reader.read_until(t0 + timeout_s)
            result.elapsed_s = time.monotonic() - t0
        finally:
            reader.close()
        result.messages, result.bad_lines = reader.messages, reader.bad_lines
        result.stderr = reader.stderr_tail()
        result.timed_out = reader.timed_out
        result.output_exceeded = reader.exceeded
        result.exit_code = None if (reader.timed_out or reader.exceeded) else popen.poll()
        return result

    def _finish(self, started: _Started) -> None:
        """Kill what is left of a run and remove its directory. With a PID namespace: its
        init, and the kernel does the rest (nothing outlives the run). Unsafe modes: the
        group, then as root every process of the uid, else the processes with the run's
        marker."""
        popen = started.popen
        contained = started.isolation in ("bwrap", "namespaces")
        if contained:
            _kill_namespace(popen)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        for stream in (popen.stdin, popen.stdout, popen.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        popen.wait()
        if contained:
            pass  # the namespaces are gone with their last process, /tmp and /dev/shm too
        elif self.uid is not None:
            kill_uid(self.uid)
            _remove_files_of(self.uid)
        else:
            # Processes that left the group (setsid) or die asynchronously with bubblewrap's
            # PID namespace: find them by the run's marker and make sure they are gone.
            _kill_marked(started.marker)
        shutil.rmtree(started.workdir, ignore_errors=True)

    def _probe(self) -> Layers:
        """Find out once per configuration which layers actually work on this host; log
        them once per process."""
        key = (self.config, self.uid is not None, self.python, tuple(self._tools.values()))
        with _PROBE_LOCK:
            if key not in _PROBED:
                _PROBED[key] = self._probe_uncached()
            self.isolation, layers = _PROBED[key]
        log_layers_once(self.isolation, layers.active(),
                        layers.missing(self.config.isolate_network))
        return layers

    def _probe_uncached(self) -> tuple[Isolation, Layers]:
        """Try the isolation strategies best first; the first whose sandbox runs a program
        that is contained as promised wins: a PID namespace of its own, no project files in
        sight, and (with `isolate_network`) no network device but `lo`. Only with
        `allow_unsafe` do weaker strategies follow; otherwise SandboxUnavailable says what to
        install."""
        c = self.config
        strategies: list[Isolation] = []
        if c.bubblewrap != "never" and self._tools["bwrap"]:
            strategies.append("bwrap")
        if c.bubblewrap != "always" and self._tools["unshare"]:
            strategies.append("namespaces")
        safe = len(strategies)
        if c.bubblewrap != "always" and c.allow_unsafe:
            if c.isolate_network:
                if self._tools["unshare"]:
                    strategies.append("unshare")
                strategies.append("runner")
            strategies.append("none")
        probe = {"mode": "call", "cases": [{"expr": "nets"}, {"expr": "nnp"}, {"expr": "pid"},
                                           {"expr": "seen"}],
                 "code": "import os, socket\n"
                         "nets = sorted(n for _, n in socket.if_nameindex())\n"
                         "nnp = 'NoNewPrivs:\\t1' in open('/proc/self/status').read()\n"
                         "pid = os.getpid()\n"
                         f"seen = os.path.exists({_sandbox_runner.__file__!r})"}
        failures = []
        for n, isolation in enumerate(strategies):
            started = self._launch(isolation)
            try:
                result = self._drive(started, probe, c.startup_timeout_s)
            finally:
                self._finish(started)
            values = [m.get("v") for m in result.messages if m.get("t") == "result"]
            if result.error is not None or len(values) != 4:
                failures.append(f"{isolation}: {result.error or result.stderr[-300:]}")
                continue
            isolated = values[0] == ["l", [["s", "lo"]]]
            if c.isolate_network and isolation != "none" and not isolated:
                failures.append(f"{isolation}: the program still sees {values[0]}")
                continue
            contained = isolation in ("bwrap", "namespaces")
            layers = Layers(unprivileged_uid=self.uid is not None,
                            network_namespace=c.isolate_network and isolated,
                            no_new_privileges=values[1] == ["b", True],
                            bubblewrap=isolation == "bwrap",
                            pid_namespace=contained and values[2] == ["i", "1"],
                            filesystem_view=contained and values[3] == ["b", False],
                            ipc_namespace=contained)
            if n < safe and layers.missing(c.isolate_network):
                failures.append(f"{isolation}: " + layers.missing(c.isolate_network)[0]
                                .split(";")[0])
                continue
            return isolation, layers
        if c.bubblewrap == "always":
            raise RuntimeError("the code sandbox cannot start with bubblewrap on this host: "
                               + " | ".join(failures) + " (SandboxConfig.bubblewrap='always' "
                               "allows nothing else)")
        if not c.allow_unsafe:
            raise SandboxUnavailable(
                "the code sandbox cannot isolate programs on this host ("
                + (" | ".join(failures) or "no bubblewrap and no util-linux unshare")
                + f"): {HOW_TO_ISOLATE}; or, for trusted code only, accept the missing layers "
                "with SandboxConfig(allow_unsafe=True)")
        raise RuntimeError("the code sandbox cannot start on this host: "
                           + " | ".join(failures))


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
