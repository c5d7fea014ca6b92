"""`Sandbox`: one sandbox slot, which launches a sandbox process (with a warm spare), drives
a run through it, ends it and cleans up, and probes once which isolation works on this host.
The isolation arguments come from `isolation`, the kills from `reaping`, the uid from
`leases`, the process start from `launcher`, the capped output from `reader`, the run's
cgroup from `cgroups`."""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import marshal
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlvr_gym.verifiers import _sandbox_runner
from rlvr_gym.verifiers.cgroups import PREFIX, Hierarchy, RunCgroup, find_hierarchy, remove_stale
from rlvr_gym.verifiers.isolation import (
    HOW_TO_ISOLATE,
    SandboxUnavailable,
    bwrap_args,
    find_tools,
    interpreter,
    log_layers_once,
    logger,
    view_for,
)
from rlvr_gym.verifiers.launcher import _LAUNCHER
from rlvr_gym.verifiers.leases import _UidLease
from rlvr_gym.verifiers.reader import _Reader
from rlvr_gym.verifiers.reaping import (
    _MARKER_VAR,
    _is_root,
    _kill_marked,
    _kill_namespace,
    _remove_files_of,
    kill_uid,
)
from rlvr_gym.verifiers.sandbox_types import (
    BASE_ENV,
    Isolation,
    Layers,
    RunResult,
    SandboxConfig,
)

# The runner arrives as the first frame on stdin (see `_sandbox_runner`): the sandbox user needs
# no read access to the project's files, and `ps` shows a short command line. When the sandbox
# interpreter shares the host's bytecode format it gets compiled code (saves ~3 ms a start).
_BOOTSTRAP_SOURCE = "import sys; b = sys.stdin.buffer; exec(b.read(int(b.readline())))"
_BOOTSTRAP_CODE = "import sys, marshal; b = sys.stdin.buffer; exec(marshal.loads(" \
    "b.read(int(b.readline()))))"
_MARSHAL_VERSION = 4  # data only; readable by every Python >= 3.4
#: How long a killed PID namespace may take to empty before its `unshare`/bubblewrap is killed.
_NAMESPACE_EXIT_S = 5.0


def _frame(data: bytes) -> bytes:
    return b"%d\n" % len(data) + data


_RUNNER_BYTES = Path(_sandbox_runner.__file__).read_bytes()
_RUNNER_SOURCE_FRAME = _frame(_RUNNER_BYTES)
_RUNNER_CODE_FRAME = _frame(marshal.dumps(compile(_RUNNER_BYTES, "<rlvr-sandbox-runner>",
                                                  "exec")))


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


@functools.cache
def _hierarchy() -> Hierarchy | None:
    """The cgroup hierarchy of this host process's sandbox runs (found once; the empty run
    cgroups of dead hosts are removed then)."""
    found = find_hierarchy()
    if found is not None:
        remove_stale(found)
    return found


class _Started:
    """A sandbox process that has been launched and is waiting for its payload."""

    def __init__(self, popen: subprocess.Popen, workdir: str, marker: str,
                 isolation: Isolation, cgroup: RunCgroup | None) -> None:
        self.popen = popen
        self.workdir = workdir
        self.marker = marker
        self.isolation = isolation
        self.cgroup = cgroup
        self.started = time.monotonic()

    @property
    def contained(self) -> bool:
        """Whether it has namespaces of its own (PID, mount, IPC): bubblewrap or unshare."""
        return self.isolation in ("bwrap", "namespaces")


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
        self._hierarchy: Hierarchy | None = None  # where runs' cgroups go (probe decides)
        self._free_cgroups: list[RunCgroup] = []  # emptied by finished runs, for the next
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
        early = started.contained
        if early:  # the next run's start-up overlaps this one
            self._launch_spare()
        driven = False
        try:
            result = self._drive(started, payload, timeout_s)
            driven = True
        finally:
            self._finish(started, self._launch_spare if driven and not early else None)
        if started.cgroup is not None:
            result.memory_exceeded = started.cgroup.oom_kills > 0
            joined = result.ready.get("cgroup")
            if result.error is None and joined is not True:
                result.error = f"the sandbox did not join its cgroup: {joined}"
        return result

    def _launch_spare(self) -> None:
        if not self._closed:
            try:
                self._spare = self._launch()
            except OSError:
                self._spare = None  # the next run() launches (and reports) it

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
        while self._free_cgroups:
            self._free_cgroups.pop().remove()
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

    def _runner_config(self, isolation: Isolation, workdir: str, cgroup: RunCgroup | None
                       ) -> dict[str, Any]:
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
            "view": view, "cgroup_fds": list(cgroup.fds) if cgroup is not None else [],
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
        cgroup = None
        try:
            if self._hierarchy is not None:
                c = self.config
                cgroup = self._free_cgroups.pop().reopen() if self._free_cgroups else \
                    RunCgroup(self._hierarchy, PREFIX + marker, c.run_memory_limit_mb << 20,
                              c.max_processes)
            command = self._command(workdir, isolation)
            fds = tuple(cgroup.fds) if cgroup is not None else ()
            popen = _LAUNCHER.call(lambda: subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=env, cwd=workdir, start_new_session=True,
                close_fds=True, pass_fds=fds, **kwargs))
        except BaseException:
            if cgroup is not None:
                cgroup.remove()
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        assert popen.stdin is not None
        try:
            # Fits in the pipe buffer, so this does not wait for the interpreter to start.
            limits = self._runner_config(isolation, workdir, cgroup)
            runner = _RUNNER_CODE_FRAME if self._code else _RUNNER_SOURCE_FRAME
            popen.stdin.write(runner + _frame(marshal.dumps(limits, _MARSHAL_VERSION)))
            popen.stdin.flush()
        except BrokenPipeError:
            pass  # it died at once; reading its `ready` line reports why
        if cgroup is not None:
            cgroup.close_fds()  # the sandbox process holds its own copies
        return _Started(popen, workdir, marker, isolation, cgroup)

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

    def _finish(self, started: _Started, meanwhile: Callable[[], None] | None = None
                ) -> None:
        """Kill what is left of a run and remove its directory; call `meanwhile` (once)
        before returning. With a PID namespace: its init, and the kernel does the rest
        (nothing outlives the run); `meanwhile` runs while the kernel tears the namespaces
        down, after their processes were sent SIGKILL (they see nothing outside them).
        Unsafe modes: the group, then as root every process of the uid, else the processes
        with the run's marker; `meanwhile` runs once they are gone. The run's cgroup, if
        any, is emptied (whatever is left in it killed) in every mode and kept for a later
        run of this slot (removed if it cannot be emptied, or the slot is closed)."""
        popen = started.popen
        contained = started.contained
        if contained:
            signalled = _kill_namespace(popen)
            if meanwhile is not None:
                meanwhile()
                meanwhile = None
            if signalled:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(_NAMESPACE_EXIT_S)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        for stream in (popen.stdin, popen.stdout, popen.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        popen.wait()
        if started.cgroup is not None:
            if started.cgroup.empty() and not self._closed:
                self._free_cgroups.append(started.cgroup)
            elif not started.cgroup.remove():
                logger.warning("code sandbox: could not empty and remove the run's cgroup %s",
                               started.cgroup.dirs)
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
        if meanwhile is not None:
            meanwhile()

    def _probe(self) -> Layers:
        """Find out once per configuration which layers actually work on this host; log
        them once per process."""
        key = (self.config, self.uid is not None, self.python, tuple(self._tools.values()))
        with _PROBE_LOCK:
            if key not in _PROBED:
                _PROBED[key] = self._probe_uncached()
            self.isolation, layers = _PROBED[key]
        self._hierarchy = _hierarchy() if layers.run_cgroup else None
        while self._hierarchy is None and self._free_cgroups:  # the probe's, unused now
            self._free_cgroups.pop().remove()
        log_layers_once(self.isolation, layers.active(),
                        layers.missing(self.config.isolate_network),
                        layers.missing_optional() if self.config.run_cgroup else [])
        return layers

    def _usable_hierarchy(self) -> Hierarchy | None:
        """This host's cgroup hierarchy if a run's cgroup can be made in it (the probe then
        checks that a sandbox process can join it), else None."""
        hierarchy = _hierarchy() if self.config.run_cgroup else None
        if hierarchy is None:
            return None
        try:
            RunCgroup(hierarchy, f"{PREFIX}{os.getpid()}.{self.instance}.probe", 64 << 20,
                      1).remove()
        except OSError:
            return None
        return hierarchy

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
        self._hierarchy = self._usable_hierarchy()
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
            contained = started.contained
            layers = Layers(unprivileged_uid=self.uid is not None,
                            network_namespace=c.isolate_network and isolated,
                            no_new_privileges=values[1] == ["b", True],
                            bubblewrap=isolation == "bwrap",
                            pid_namespace=contained and values[2] == ["i", "1"],
                            filesystem_view=contained and values[3] == ["b", False],
                            ipc_namespace=contained,
                            run_cgroup=self._hierarchy.describe() if self._hierarchy
                            and result.ready.get("cgroup") is True else "")
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
