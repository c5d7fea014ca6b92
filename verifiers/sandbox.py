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

Memory: `memory_mb` bounds each process's address space. Where the host lets this process
make cgroups (see `cgroups`), a **cgroup per run** bounds the run as a whole: its processes,
threads, tmpfs files and shared memory together stay under `run_memory_mb` (no swap), its
processes and threads under `max_processes`; past the memory cap the kernel kills the run
(`RunResult.memory_exceeded`), and whatever is left in the cgroup is killed after the run.
Without one (it is reported missing, never a reason to refuse) a run may hold up to
`max_processes` times `memory_mb`, plus `tmpfs_mb` of files (twice with bubblewrap: /tmp
and /dev/shm are separate there, and SysV shared memory keeps the kernel's default limits).

Captured output is capped (`max_output_bytes`), so a program that prints gigabytes cannot
exhaust the host's memory. A bounded `SandboxPool` runs many programs in parallel.

The code lives in one module per concern; this one is the public face and re-exports what
callers use:

- `sandbox_types`: `SandboxConfig`, `Layers`, `RunResult`, `BASE_ENV`, `Isolation`.
- `isolation`: which tools the host has, the filesystem view, the refusal without isolation.
- `slot`: `Sandbox`, one slot: launching, driving, ending a run; probing the layers.
- `pool`: `SandboxPool`, bounded parallel slots.
- `reaping`: finding and killing a run's processes (`kill_uid`, `sandbox_processes`).
- `leases`: machine-wide leases of sandbox uids (as root).
- `cgroups`: the cgroup of each run (memory and process caps, the kill afterwards).
- `launcher`: the one thread that starts every sandbox process.
- `reader`: the capped reader of a run's output.
- `_sandbox_runner`: the program that runs inside the sandbox.
"""

from rlvr_gym.verifiers.isolation import SandboxUnavailable
from rlvr_gym.verifiers.pool import SandboxPool
from rlvr_gym.verifiers.reaping import kill_uid, sandbox_processes
from rlvr_gym.verifiers.sandbox_types import (
    BASE_ENV,
    Isolation,
    Layers,
    RunResult,
    SandboxConfig,
)
from rlvr_gym.verifiers.slot import Sandbox

__all__ = ["BASE_ENV", "Isolation", "Layers", "RunResult", "Sandbox", "SandboxConfig",
           "SandboxPool", "SandboxUnavailable", "kill_uid", "sandbox_processes"]
