"""The cgroup of a sandboxed run: the memory and the processes of the run as a whole are
capped (not only each process's), a run the cap kills is the program's fault, and the cgroup
is emptied after every run (a slot keeps it for its next runs) and removed when the sandbox
closes.

The hostile tests run with bubblewrap (skipped where it is not installed or
$RLVR_SANDBOX_NO_BWRAP hides it) and with util-linux `unshare` ("namespaces"), wherever this
host lets this process make cgroups (root with cgroup v1 memory and pids controllers, or a
delegated cgroup v2 subtree; skipped elsewhere). The v2 file writes are tested on a fake
cgroup tree in a temporary directory.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from rlvr_gym import Problem, Status
from rlvr_gym.verifiers import cgroups, isolation, slot
from rlvr_gym.verifiers.code import CodeVerifier, CodeVerifierConfig
from rlvr_gym.verifiers.isolation import find_tools
from rlvr_gym.verifiers.sandbox import Sandbox, SandboxConfig

HIERARCHY = cgroups.find_hierarchy()
needs_cgroups = pytest.mark.skipif(
    HIERARCHY is None, reason="this process may not make cgroups here (root with cgroup v1 "
    "memory and pids, or a delegated cgroup v2 subtree, is needed)")

MEMORY_MB = 256
RUN_MEMORY_MB = 256


def make_verifier(kind: str, **sandbox: object) -> CodeVerifier:
    if kind == "bubblewrap" and find_tools()["bwrap"] is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap) or "
                    "$RLVR_SANDBOX_NO_BWRAP hides it")
    options: dict = {"cpu_time_s": 5, "memory_mb": MEMORY_MB, "run_memory_mb": RUN_MEMORY_MB,
                     "max_processes": 16, **sandbox}
    config = SandboxConfig(bubblewrap="always" if kind == "bubblewrap" else "never", **options)
    return CodeVerifier(CodeVerifierConfig(test_timeout_s=1.0, load_timeout_s=2.0, workers=1,
                                           sandbox=config))


@pytest.fixture(scope="module", params=["bubblewrap", "namespaces"])
def verifier(request):
    if HIERARCHY is None:
        pytest.skip("this process may not make cgroups here")
    v = make_verifier(request.param)
    yield v
    v.close()


def returns(expected: object) -> Problem:
    return Problem("cgroup", "", "", kind="code", tests={
        "format": "call", "fn": "f", "cases": [{"args": [], "expected": expected}]})


def returned(verdict) -> str:
    """The value a failing call test returned, from the verdict's reason."""
    return verdict.reason.split("returned ", 1)[1].split(", expected", 1)[0]


def host_dirs(name: str) -> list[Path]:
    """The run cgroup `name` (as the program saw it) in each of the host's hierarchies."""
    assert HIERARCHY is not None
    return [Path(parent) / name for parent in HIERARCHY.parents]


def left_in(name: str) -> list[str]:
    """Processes still in the run cgroup `name` (in any hierarchy where it still exists)."""
    return [pid for d in host_dirs(name) if d.exists()
            for pid in (d / "cgroup.procs").read_text().split()]


OWN_CGROUP = """
def own_cgroup():
    names = {line.rsplit('/', 1)[1] for line in open('/proc/self/cgroup').read().split()
             if line.split(':')[1] in ('memory', '')}
    return [n for n in names if n.startswith('rlvr-sandbox-')]
"""


# -- the run as a whole is capped -------------------------------------------------------------

# Three children, each well under memory_mb (RLIMIT_AS per process), together far over the
# run's cap: per-process limits alone let all three finish. The first test case reports the
# run's cgroup, the second is the attack.
FORKED_HOGS = OWN_CGROUP + """
import os, time
def f(attack):
    if not attack:
        return own_cgroup()
    kids = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            block = b'x' * (150 << 20)  # written, so resident
            time.sleep(0.5)
            os._exit(0)
        kids.append(pid)
    return [os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids]
"""


def test_children_together_over_the_run_cap_are_killed_as_the_programs_fault(verifier):
    problem = Problem("cgroup", "", "", kind="code", tests={
        "format": "call", "fn": "f", "cases": [{"args": [0], "expected": "cgroup"},
                                               {"args": [1], "expected": [0, 0, 0]}]})
    verdict = verifier.verify(FORKED_HOGS, problem)
    assert verdict.status is Status.INCORRECT and verdict.usable, verdict.reason
    assert f"memory cap ({RUN_MEMORY_MB} MiB for all its processes) was exceeded" \
        in verdict.reason
    names = eval(returned(verdict))
    assert len(names) == 1
    assert left_in(names[0]) == []
    assert verifier.pool.stray_processes() == []
    # The slot's later runs reuse its cgroups (two, taking turns with the warm spare): the
    # kill counted for this run is not counted again.
    later = [verifier.verify(OWN_CGROUP + "f = own_cgroup\n", returns("never"))
             for _ in range(2)]
    assert names in [eval(returned(v)) for v in later]
    assert not any("memory cap" in v.reason for v in later), [v.reason for v in later]


FORK_STORM = """
import os, time
def f():
    born = 0
    for _ in range(48):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(5)
            os._exit(0)
        born += 1
    return born
"""


@pytest.mark.parametrize("kind", ["bubblewrap", "namespaces"])
def test_a_fork_storm_of_root_is_stopped_by_the_runs_process_cap(kind):
    """Root (drop_privileges=False) is exempt from RLIMIT_NPROC: only the cgroup's pids.max
    bounds its processes."""
    if HIERARCHY is None or os.geteuid() != 0:
        pytest.skip("needs root and a cgroup this process may make")
    v = make_verifier(kind, drop_privileges=False, max_processes=8)
    try:
        verdict = v.verify(FORK_STORM, returns(-1))
        assert verdict.status is Status.INCORRECT, verdict.reason
        assert 0 < int(returned(verdict)) < 8  # the runner is the 8th
        assert v.pool.stray_processes() == []
    finally:
        v.close()


def test_a_normal_program_with_children_is_unaffected(verifier):
    """It runs inside its run's cgroup (the last value) and passes."""
    program = OWN_CGROUP + """
import os
def f():
    kids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            block = b'x' * (40 << 20)
            os._exit(len(block) >> 20)
        kids.append(pid)
    block = b'y' * (100 << 20)
    return [os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids] + [
        len(block) >> 20, len(own_cgroup())]
"""
    verdict = verifier.verify(program, returns([40, 40, 100, 1]))
    assert verdict.status is Status.CORRECT, verdict.reason


# -- the cgroup is gone after every run -------------------------------------------------------


@pytest.mark.parametrize("kind", ["bubblewrap", "namespaces"])
def test_the_runs_cgroup_is_emptied_after_a_run_and_gone_when_the_sandbox_closes(kind):
    if HIERARCHY is None:
        pytest.skip("this process may not make cgroups here")
    v = make_verifier(kind)
    try:
        verdict = v.verify(OWN_CGROUP + "f = own_cgroup\n", returns("never"))
        names = eval(returned(verdict))
        assert len(names) == 1
        dirs = host_dirs(names[0])
        assert len(dirs) == len(HIERARCHY.parents)
        assert left_in(names[0]) == []
    finally:
        v.close()
    assert [d for d in dirs if d.exists()] == []


def test_the_runs_cgroup_is_gone_after_a_timeout(verifier):
    problem = Problem("cgroup", "", "", kind="code", tests={
        "format": "call", "fn": "f", "cases": [{"args": [0], "expected": "x"},
                                               {"args": [1], "expected": "x"}]})
    program = OWN_CGROUP + """
import os, time
def f(hang):
    if not hang:
        return own_cgroup()
    if os.fork() == 0:
        os.setsid()
        while True:
            time.sleep(1)
    while True:
        time.sleep(1)
"""
    verdict = verifier.verify(program, problem)
    assert verdict.status is Status.TIMEOUT and verdict.usable, verdict.reason
    names = eval(returned(verdict))
    assert len(names) == 1
    assert left_in(names[0]) == []
    assert verifier.pool.stray_processes() == []


def test_the_layer_is_reported(verifier):
    assert f"cgroup {HIERARCHY.version} memory+pids cap" in verifier.layers.active()
    assert verifier.layers.missing_optional() == []


# -- without cgroups the sandbox runs (an extra layer, not a reason to refuse) -----------------


def test_without_a_cgroup_the_sandbox_runs_and_says_how_to_get_one(monkeypatch, caplog):
    monkeypatch.setattr(slot, "_hierarchy", lambda: None)
    monkeypatch.setattr(slot, "_PROBED", {})
    monkeypatch.setattr(isolation, "_LOGGED", set())
    caplog.set_level(logging.INFO, logger="rlvr_gym.verifiers.sandbox")
    with Sandbox(SandboxConfig(memory_mb=MEMORY_MB)) as box:
        assert box.layers.run_cgroup == ""
        assert not [name for name in box.layers.active() if "cgroup" in name]
        result = box.run({"mode": "call", "code": "out = 6 * 7", "cases": [{"expr": "out"}]},
                         10.0)
        assert result.error is None and not result.memory_exceeded
        assert [m.get("v") for m in result.messages if m.get("t") == "result"] == [["i", "2a"]]
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no cgroup per run" in w and "Delegate=yes" in w for w in warnings)


def test_the_run_memory_cap_defaults_to_twice_memory_mb_and_is_validated():
    assert SandboxConfig(memory_mb=300).run_memory_limit_mb == 600
    assert SandboxConfig(memory_mb=300, run_memory_mb=128).run_memory_limit_mb == 128
    with pytest.raises(ValueError, match="run_memory_mb=32 is too small"):
        SandboxConfig(run_memory_mb=32).validate()


# -- the hierarchy and the files written, on a fake cgroup tree -------------------------------


def fake_kernel(monkeypatch, files: dict[str, str]) -> None:
    """Make `cgroups` see a directory tree as the kernel's: a new cgroup comes with `files`,
    and removing one removes them."""
    def make(directory: str) -> None:
        os.mkdir(directory)
        for name, text in files.items():
            Path(directory, name).write_text(text)

    def remove(directory: str) -> None:
        for entry in os.listdir(directory):
            os.unlink(os.path.join(directory, entry))
        os.rmdir(directory)

    monkeypatch.setattr(cgroups, "_make_dir", make)
    monkeypatch.setattr(cgroups, "_remove_dir", remove)


V2_FILES = {"cgroup.procs": "", "cgroup.kill": "", "memory.max": "max", "memory.swap.max": "max",
            "memory.oom.group": "0", "pids.max": "max", "memory.events": "low 0\nhigh 0\n"
            "max 7\noom 2\noom_kill 2\noom_group_kill 1\n"}


def test_v2_uses_the_own_cgroup_or_else_its_parent_and_writes_the_caps(tmp_path, monkeypatch):
    root = tmp_path / "unified"
    leaf = root / "service" / "host"
    leaf.mkdir(parents=True)
    (root / "service" / "cgroup.subtree_control").write_text("cpu memory pids\n")
    (leaf / "cgroup.subtree_control").write_text("")
    mountinfo = (f"25 1 0:22 / {tmp_path}/v1 rw - tmpfs tmpfs rw\n"
                 f"30 25 0:26 / {root} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n")
    proc = "0::/service/host\n"
    # The host sits in a leaf: the runs become its siblings in the delegated subtree.
    assert cgroups.find_hierarchy(mountinfo, proc) == cgroups.Hierarchy(
        "v2", (str(root / "service"),))
    # Where its own cgroup passes the controllers on (the root cgroup), children of its own.
    (leaf / "cgroup.subtree_control").write_text("memory pids\n")
    assert cgroups.find_hierarchy(mountinfo, proc).parents == (str(leaf),)
    # A mount that shows another part of the tree, or no controllers: none.
    assert cgroups.find_hierarchy(mountinfo.replace(" / ", " /elsewhere "), proc) is None
    (leaf / "cgroup.subtree_control").write_text("memory\n")
    (root / "service" / "cgroup.subtree_control").write_text("cpu\n")
    assert cgroups.find_hierarchy(mountinfo, proc) is None

    fake_kernel(monkeypatch, V2_FILES)
    hierarchy = cgroups.Hierarchy("v2", (str(root / "service"),))
    run = cgroups.RunCgroup(hierarchy, "rlvr-sandbox-1.2.3", 300 << 20, 12)
    made = root / "service" / "rlvr-sandbox-1.2.3"
    assert run.dirs == (str(made),)
    assert {name: (made / name).read_text() for name in
            ("memory.max", "memory.swap.max", "memory.oom.group", "pids.max")} == {
        "memory.max": str(300 << 20), "memory.swap.max": "0", "memory.oom.group": "1",
        "pids.max": "12"}
    assert len(run.fds) == 1
    assert os.readlink(f"/proc/self/fd/{run.fds[0]}") == str(made / "cgroup.procs")
    run.close_fds()
    kills = []
    monkeypatch.setattr(cgroups, "_write", lambda path, value: kills.append((path, value)))
    assert run.remove()
    assert kills == [(str(made / "cgroup.kill"), "1")]
    assert run.oom_kills == 2
    assert not made.exists()


def test_v1_makes_a_child_of_the_own_cgroup_in_the_memory_and_pids_hierarchies(
        tmp_path, monkeypatch):
    memory, pids = tmp_path / "memory", tmp_path / "pids"
    (memory / "box" / "me").mkdir(parents=True)
    pids.mkdir()
    mountinfo = (f"35 31 0:32 / {memory} rw,relatime - cgroup cgroup rw,memory\n"
                 f"39 31 0:36 / {pids} rw,relatime - cgroup cgroup rw,pids\n"
                 f"41 31 0:38 / {tmp_path}/unified rw,relatime - cgroup2 cgroup2 rw\n")
    proc = "8:pids:/\n4:memory:/box/me\n0::/\n"
    hierarchy = cgroups.find_hierarchy(mountinfo, proc)
    assert hierarchy == cgroups.Hierarchy("v1", (str(memory / "box" / "me"), str(pids)))
    assert hierarchy.describe() == "cgroup v1 memory+pids cap"
    assert cgroups.find_hierarchy(mountinfo, "4:memory:/box/me\n0::/\n") is None  # no pids

    fake_kernel(monkeypatch, {"cgroup.procs": "", "memory.limit_in_bytes": "",
                              "memory.memsw.limit_in_bytes": "", "pids.max": "",
                              "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n"
                                                    "oom_kill 3\n"})
    run = cgroups.RunCgroup(hierarchy, "rlvr-sandbox-9.0.1", 200 << 20, 5)
    mem_dir, pids_dir = (Path(d) for d in run.dirs)
    assert mem_dir.parent == memory / "box" / "me" and pids_dir.parent == pids
    assert (mem_dir / "memory.limit_in_bytes").read_text() == str(200 << 20)
    assert (mem_dir / "memory.memsw.limit_in_bytes").read_text() == str(200 << 20)
    assert (pids_dir / "pids.max").read_text() == "5"
    assert len(run.fds) == 2
    assert run.remove() and run.oom_kills == 3
    assert not mem_dir.exists() and not pids_dir.exists()


def test_a_cgroup_that_cannot_be_set_up_leaves_nothing_behind(tmp_path, monkeypatch):
    (tmp_path / "memory").mkdir()
    (tmp_path / "pids").mkdir()
    fake_kernel(monkeypatch, {"cgroup.procs": "", "memory.limit_in_bytes": ""})

    def write(path: str, value: str) -> None:
        if path.endswith("pids.max"):
            raise PermissionError(13, "Permission denied", path)
        Path(path).write_text(value)

    monkeypatch.setattr(cgroups, "_write", write)
    hierarchy = cgroups.Hierarchy("v1", (str(tmp_path / "memory"), str(tmp_path / "pids")))
    with pytest.raises(PermissionError):
        cgroups.RunCgroup(hierarchy, "rlvr-sandbox-1.0.1", 100 << 20, 4)
    assert list((tmp_path / "memory").iterdir()) == list((tmp_path / "pids").iterdir()) == []


def test_stale_run_cgroups_of_dead_hosts_are_removed(tmp_path, monkeypatch):
    fake_kernel(monkeypatch, {})
    dead = 2 ** 22 + 1  # above pid_max's largest value: no such process
    for name in (f"rlvr-sandbox-{dead}.0.1", f"rlvr-sandbox-{os.getpid()}.0.1", "other"):
        (tmp_path / name).mkdir()
    cgroups.remove_stale(cgroups.Hierarchy("v2", (str(tmp_path),)))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "other", f"rlvr-sandbox-{os.getpid()}.0.1"]


@needs_cgroups
def test_a_run_that_could_not_join_its_cgroup_is_a_harness_failure(monkeypatch):
    """The probe found the layer working; a run that still is not capped is masked (an
    `error`), never scored."""
    joinable = cgroups.RunCgroup.reopen

    def unjoinable(self: cgroups.RunCgroup) -> cgroups.RunCgroup:
        joinable(self)
        os.close(self.fds[0])
        self.fds[0] = os.open(os.devnull, os.O_RDONLY)  # writing to it fails
        return self

    with Sandbox(SandboxConfig(memory_mb=MEMORY_MB)) as box:
        assert box.layers.run_cgroup
        monkeypatch.setattr(cgroups.RunCgroup, "reopen", unjoinable)
        result = box.run({"mode": "call", "code": "out = 1", "cases": [{"expr": "out"}]}, 10.0)
    assert result.error == ("the sandbox did not join its cgroup: cgroup.procs: "
                            "Bad file descriptor")


def test_run_cgroup_false_runs_without_one_and_says_nothing_of_it(caplog):
    if HIERARCHY is None:
        pytest.skip("this process may not make cgroups here")
    with caplog.at_level(logging.WARNING, logger="rlvr_gym.verifiers.sandbox"):
        v = make_verifier("namespaces", run_cgroup=False, max_processes=17)
        try:
            verdict = v.verify(OWN_CGROUP + "f = own_cgroup\n", returns("never"))
            assert eval(returned(verdict)) == []  # in no run cgroup
            assert not any("cgroup" in layer for layer in v.layers.active())
        finally:
            v.close()
    assert not any("no cgroup per run" in r.getMessage() for r in caplog.records)
