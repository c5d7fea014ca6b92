"""The sandbox's data types: its configuration (`SandboxConfig`), the isolation layers in force
(`Layers`), how a sandbox is isolated (`Isolation`), the environment every program gets
(`BASE_ENV`), and what one run gives back (`RunResult`). See `sandbox` for the layers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rlvr_gym.verifiers.cgroups import HOW_TO_CAP
from rlvr_gym.verifiers.isolation import HOW_TO_ISOLATE, find_tools

#: How a sandbox is isolated, best first: bubblewrap (filesystem view, PID/IPC/network
#: namespaces); util-linux `unshare` starting the runner as init of new mount/PID/IPC/network
#: namespaces in which it builds the same view itself ("namespaces"). Unsafe mode only
#: (`SandboxConfig.allow_unsafe`): util-linux `unshare` for a network namespace alone, the
#: runner's own `unshare(2)` call for one, or nothing.
Isolation = Literal["bwrap", "namespaces", "unshare", "runner", "none"]

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
    uid: as root, or with bubblewrap or user namespaces. With a cgroup per run (see
    `Layers.run_cgroup`) also the run's `pids.max`: its processes and threads, whatever
    its uid."""
    run_cgroup: bool = True
    """Cap the run as a whole (`run_memory_mb`, `max_processes`) with a cgroup of its own where
    the host allows one. Moving each run into its cgroup is a kernel synchronisation of a few
    milliseconds, mostly hidden behind the previous run; it cost 4-8% of the code verifier's
    throughput on this project's cgroup v1 test host (benchmarks/results/code_verifier.md).
    False runs without it (memory is then capped per process only)."""
    run_memory_mb: int | None = None
    """Memory cap of the run as a whole (all its processes, its files in tmpfs, SysV shared
    memory; no swap) in MiB, through a cgroup where the host allows one (see
    `Layers.run_cgroup`); `max_processes` caps the run's processes and threads there too.
    Past it the kernel kills the run (its memory hog at least): the program's fault. None:
    twice `memory_mb` (one process at its full limit, as much again for the rest), instead
    of the `max_processes` x `memory_mb` that per-process limits allow."""
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
        if self.run_memory_mb is not None and self.run_memory_mb < 64:
            raise ValueError(f"SandboxConfig.run_memory_mb={self.run_memory_mb} is too small "
                             "for a Python interpreter; use at least 64, or None for twice "
                             "memory_mb")
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

    @property
    def run_memory_limit_mb(self) -> int:
        """The run's memory cap in MiB: `run_memory_mb`, or twice `memory_mb` when None."""
        return self.run_memory_mb if self.run_memory_mb is not None else 2 * self.memory_mb


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
    run_cgroup: str = ""
    """A cgroup per run capping its memory (`SandboxConfig.run_memory_mb`) and processes
    (`max_processes`), emptied with a kill after the run: its name ("cgroup v1 memory+pids
    cap", "cgroup v2 memory+pids cap"), or "" where the host gives none (the sandbox runs
    without it)."""

    def active(self) -> list[str]:
        """Names of the active layers (the cgroup's by its description)."""
        return [on if name == "run_cgroup" else name for name, on in asdict(self).items()
                if on]

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

    def missing_optional(self) -> list[str]:
        """One line per missing layer that the sandbox runs without (never a refusal): what
        it means, and how to get it."""
        if self.run_cgroup:
            return []
        return ["no cgroup per run: memory is capped per process only (a run may hold up to "
                f"max_processes x memory_mb, plus its files in tmpfs); {HOW_TO_CAP}"]


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
    memory_exceeded: bool = False
    """The run's memory cap (its cgroup) was reached and the kernel killed a process of the
    run (with cgroup v2 the whole run)."""
    error: str | None = None
    """Harness failure, or None."""
    elapsed_s: float = 0.0
    """Wall time from sending the payload to the end of the run."""
    ready: dict[str, Any] = field(default_factory=dict)
    """The runner's start-up report (its uid, whether it got a network namespace)."""
