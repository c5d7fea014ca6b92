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
- **network namespace**: the program sees no network device but a loopback that is down
  (bubblewrap, util-linux `unshare`, or `unshare(2)` by the sandbox's own start-up code).
- **no new privileges** (util-linux `setpriv` or bubblewrap): setuid binaries cannot raise
  the program's privileges; `setpriv` also kills the sandbox if the host dies.
- **bubblewrap** (when installed): a minimal read-only filesystem (the interpreter and system
  libraries; no /etc, no home directories, no project files) with a private /tmp, a private
  PID namespace (the program cannot see or signal host processes, and it dies with its
  sandbox), private IPC and hostname.

Without root and without bubblewrap the program runs as the host's own user: it is kept off
the network and bounded in time and memory, but it could modify the user's files or signal
the user's processes. `Sandbox` warns about every missing layer, once, with how to get it.

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
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlvr_gym.verifiers import _sandbox_runner

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


@dataclass(frozen=True)
class _Interpreter:
    """What the sandbox needs to know about the interpreter it runs."""

    cache_tag: str
    """`sys.implementation.cache_tag`: same as the host's means compiled code can be sent."""
    prefix: str
    """`sys.base_prefix`: where its standard library lives (mounted into bubblewrap)."""


_INTERPRETERS: dict[str, _Interpreter] = {}


def _interpreter(python: str) -> _Interpreter:
    """Facts about `python`, asked once per interpreter."""
    if python not in _INTERPRETERS:
        script = "import sys; print(sys.implementation.cache_tag); print(sys.base_prefix)"
        try:
            out = subprocess.run([python, "-I", "-S", "-c", script], capture_output=True,
                                 text=True, timeout=30, env={"PATH": BASE_ENV["PATH"]}).stdout
            tag, prefix = out.splitlines()[:2]
        except (OSError, subprocess.TimeoutExpired, ValueError):
            tag, prefix = "", os.path.dirname(os.path.dirname(os.path.realpath(python)))
        _INTERPRETERS[python] = _Interpreter(tag, os.path.realpath(prefix))
    return _INTERPRETERS[python]


def _system_mounts(prefix: str) -> list[str]:
    """bubblewrap arguments for a minimal read-only system: /usr, the interpreter's prefix,
    the top-level library and binary directories (as links where the host has links), the
    loader cache. Nothing else of the host (no /etc, /home, /root, project files) is visible,
    and few mounts start much faster than a read-only bind of all of /."""
    args = []
    for directory in dict.fromkeys(["/usr", prefix]):
        if directory == "/usr" or not directory.startswith("/usr/"):
            args += ["--ro-bind", directory, directory]
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    if os.path.exists("/etc/ld.so.cache"):
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return args


#: How a sandbox gets its network namespace, best first: bubblewrap (which also isolates the
#: filesystem and PIDs), util-linux `unshare` in front of the interpreter, the runner's own
#: `unshare(2)` call, or nothing.
Isolation = Literal["bwrap", "unshare", "runner", "none"]

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
    """Let the program import installed packages (numpy, ...); by default only the standard
    library is importable."""
    extra_env: tuple[tuple[str, str], ...] = ()
    """Further (name, value) environment variables for the program."""

    def validate(self) -> None:
        """Raise ValueError with a fix for any unusable value."""
        positive = {"cpu_time_s": self.cpu_time_s, "max_processes": self.max_processes,
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
        if self.bubblewrap == "always" and shutil.which("bwrap") is None:
            raise ValueError("SandboxConfig.bubblewrap='always' but bwrap is not installed: "
                             "apt-get install bubblewrap (or dnf install bubblewrap)")


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
    """Minimal read-only filesystem, private /tmp, own PID/IPC/UTS namespaces."""

    def active(self) -> list[str]:
        """Names of the active layers."""
        return [name for name, on in asdict(self).items() if on]

    def missing(self) -> list[str]:
        """One line per missing layer: what it means and how to get it."""
        lines = []
        if not self.network_namespace:
            lines.append("no network namespace: sandboxed programs can reach the network; "
                         "install bubblewrap or allow unprivileged user namespaces "
                         "(sysctl kernel.unprivileged_userns_clone=1)")
        if not (self.unprivileged_uid or self.bubblewrap):
            lines.append("programs run as your own user with no private filesystem or PID "
                         "namespace: they could modify your files and signal your processes"
                         + ("" if self.network_namespace else ", and nothing limits how many "
                            "processes they start") + "; "
                         "install bubblewrap (apt-get install bubblewrap) or run as root so "
                         "that programs get an unprivileged uid")
        return lines


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
    """(pid, uid) of every live, non-zombie process on the machine (of `only_uid` if given)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            uid = entry.stat().st_uid
            if only_uid is not None and uid != only_uid:
                continue
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z":  # a zombie is dead already; its parent or init reaps it
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
_WARNED: set[str] = set()


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
        self._tools = {name: shutil.which(name) for name in ("bwrap", "unshare", "setpriv")}
        self._interpreter = _interpreter(self.python)
        self._code = self._interpreter.cache_tag == sys.implementation.cache_tag
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

    def _runner_config(self, isolation: Isolation) -> dict[str, Any]:
        c = self.config
        return {
            "cpu_s": c.cpu_time_s, "as_bytes": c.memory_mb << 20,
            "fsize_bytes": c.max_file_mb << 20, "nofile": c.max_open_files,
            "nproc": c.max_processes, "isolate_network": isolation == "runner",
            "own_uid_or_namespace": self.uid is not None or isolation in ("bwrap", "unshare"),
        }

    def _privileges(self) -> list[str]:
        """util-linux `setpriv` in front of everything: drops to the sandbox uid (as root),
        forbids gaining privileges through setuid binaries, and kills the sandbox if the
        host dies. Doing the uid change there instead of in `subprocess` lets Python start
        the child with vfork, which matters when the host is a large training process."""
        if not self._tools["setpriv"]:
            return []
        args = [self._tools["setpriv"], "--no-new-privs", "--pdeathsig=KILL"]
        if self.uid is not None:
            args += [f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups"]
        return args + ["--"]

    def _command(self, workdir: str, isolation: Isolation) -> list[str]:
        python = [self.python, "-I"] + ([] if self.config.site_packages else ["-S"])
        command = python + ["-c", _BOOTSTRAP_CODE if self._code else _BOOTSTRAP_SOURCE]
        if isolation == "unshare":
            return self._privileges() + [self._tools["unshare"], "--user", "--net", "--"] + command
        if isolation != "bwrap":
            return self._privileges() + command
        # --as-pid-1: the runner itself is the PID namespace's init (no extra init process,
        # ~30% faster); when it exits or is killed, the kernel kills the whole namespace.
        bwrap = [self._tools["bwrap"], "--unshare-all", "--as-pid-1", "--die-with-parent",
                 "--new-session"]
        if self.config.site_packages:  # installed packages may live anywhere: show all
            bwrap += ["--ro-bind", "/", "/"]
        else:
            bwrap += _system_mounts(self._interpreter.prefix)
        bwrap += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        if not self.config.isolate_network:
            bwrap.append("--share-net")
        bwrap += ["--bind", workdir, workdir, "--chdir", workdir, "--"]
        return self._privileges() + bwrap + command

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
            if not self._tools["setpriv"]:
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
            limits = self._runner_config(isolation)
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
        """Kill what is left of a run (the group; as root every process of the uid) and
        remove its directory."""
        popen = started.popen
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        for stream in (popen.stdin, popen.stdout, popen.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        popen.wait()
        if self.uid is not None:
            kill_uid(self.uid)
            if started.isolation != "bwrap":  # bubblewrap's /tmp and /dev are private
                _remove_files_of(self.uid)
        else:
            # Processes that left the group (setsid) or die asynchronously with bubblewrap's
            # PID namespace: find them by the run's marker and make sure they are gone.
            _kill_marked(started.marker)
        shutil.rmtree(started.workdir, ignore_errors=True)

    def _probe(self) -> Layers:
        """Find out once per configuration which layers actually work on this host."""
        key = (self.config, self.uid is not None, self.python, tuple(self._tools.values()))
        with _PROBE_LOCK:
            if key not in _PROBED:
                _PROBED[key] = self._probe_uncached()
            self.isolation, layers = _PROBED[key]
        for line in layers.missing():
            if line not in _WARNED:
                _WARNED.add(line)
                warnings.warn(f"rlvr-gym sandbox: {line}", RuntimeWarning, stacklevel=3)
        return layers

    def _probe_uncached(self) -> tuple[Isolation, Layers]:
        """Try the isolation strategies best first; the first whose sandbox runs a program
        that sees no network device but `lo` wins (`none` when network is allowed or
        nothing else works)."""
        c = self.config
        strategies: list[Isolation] = []
        if c.bubblewrap != "never" and self._tools["bwrap"]:
            strategies.append("bwrap")
        if c.bubblewrap != "always" and c.isolate_network:
            strategies += (["unshare"] if self._tools["unshare"] else []) + ["runner"]
        if c.bubblewrap != "always":
            strategies.append("none")
        probe = {"mode": "call", "cases": [{"expr": "nets"}, {"expr": "nnp"}],
                 "code": "import socket\nnets = sorted(n for _, n in socket.if_nameindex())\n"
                         "nnp = 'NoNewPrivs:\\t1' in open('/proc/self/status').read()"}
        failures = []
        for isolation in strategies:
            started = self._launch(isolation)
            try:
                result = self._drive(started, probe, c.startup_timeout_s)
            finally:
                self._finish(started)
            values = [m.get("v") for m in result.messages if m.get("t") == "result"]
            if result.error is not None or not values:
                failures.append(f"{isolation}: {result.error or result.stderr[-300:]}")
                continue
            isolated = values[0] == ["l", [["s", "lo"]]]
            if c.isolate_network and isolation != "none" and not isolated:
                failures.append(f"{isolation}: the program still sees {values[0]}")
                continue
            return isolation, Layers(unprivileged_uid=self.uid is not None,
                                     network_namespace=c.isolate_network and isolated,
                                     no_new_privileges=values[1:] == [["b", True]],
                                     bubblewrap=isolation == "bwrap")
        raise RuntimeError("the code sandbox cannot start on this host: " + " | ".join(
            failures) + (" (SandboxConfig.bubblewrap='always' allows nothing else)"
                         if c.bubblewrap == "always" else ""))


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
