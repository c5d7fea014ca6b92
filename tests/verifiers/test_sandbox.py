"""Hostile programs against the code sandbox.

Every hostile test asserts the same four things: the verdict is not passing, the host process
is alive (the test goes on, and a canary child process of the host survives), no sandbox
process is left behind, and canary files outside the sandbox are intact. Programs whose
attack is not on the verdict itself also compute a wrong answer, so that the first assertion
is the same for all; for them the other three carry the test.

The suite runs once with bubblewrap (skipped, saying so, where `bwrap` is not installed) and
once without it. Without bubblewrap and without root the program runs as the host's own user;
the tests that need a private filesystem or PID namespace then skip with the reason.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from rlvr_gym import Problem, Status
from rlvr_gym.verifiers.code import CodeVerifier, CodeVerifierConfig
from rlvr_gym.verifiers.isolation import SandboxUnavailable, find_tools
from rlvr_gym.verifiers.sandbox import (
    BASE_ENV,
    Layers,
    Sandbox,
    SandboxConfig,
    SandboxPool,
)

CALL = Problem("hostile/call", "double x", "", kind="code",
               tests={"format": "call", "fn": "f",
                      "cases": [{"args": [1], "expected": 2}, {"args": [5], "expected": 10}]})
ASSERTS = Problem("hostile/assert", "double x", "", kind="code",
                  tests={"format": "assert", "asserts": ["assert f(1) == 2",
                                                         "assert f(5) == 10"]})
STDIO = Problem("hostile/stdio", "echo", "", kind="code",
                tests={"format": "stdio", "cases": [{"input": "7\n", "output": "7\n"}]})


@pytest.fixture(scope="module", params=["bubblewrap", "plain"])
def verifier(request):
    if request.param == "bubblewrap" and find_tools()["bwrap"] is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    sandbox = SandboxConfig(bubblewrap="always" if request.param == "bubblewrap" else "never",
                            cpu_time_s=2, memory_mb=256, max_processes=16)
    config = CodeVerifierConfig(test_timeout_s=0.25, load_timeout_s=1.0, workers=1,
                                sandbox=sandbox)
    v = CodeVerifier(config)
    yield v
    v.close()


def _needs_isolation(verifier: CodeVerifier) -> None:
    layers = verifier.layers
    if not (layers.unprivileged_uid or layers.bubblewrap):
        pytest.skip("this host runs programs as your own user without bubblewrap: files and "
                    "processes of your user are not protected (install bubblewrap)")


@pytest.fixture
def canaries(tmp_path):
    """Files a hostile program would like to destroy: one in a private test directory and
    one in the shared /tmp."""
    private = tmp_path / "canary.txt"
    private.write_text("precious")
    shared = Path("/tmp") / f"rlvr-canary-{uuid.uuid4().hex}.txt"
    shared.write_text("precious")
    shared.chmod(0o644)
    watcher = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                               stdin=subprocess.PIPE)
    yield {"private": private, "shared": shared, "watcher": watcher}
    watcher.kill()
    watcher.wait()
    shared.unlink(missing_ok=True)


def assert_contained(verdict, verifier: CodeVerifier, canaries) -> None:
    assert not verdict.correct, verdict
    assert verdict.score < 1.0
    assert verifier.pool.stray_processes() == []
    assert canaries["watcher"].poll() is None, "a process of the host was killed"
    assert canaries["private"].read_text() == "precious"
    assert canaries["shared"].read_text() == "precious"


def test_infinite_loop(verifier, canaries):
    verdict = verifier.verify("def f(x):\n    while True:\n        pass\n", CALL)
    assert verdict.status is Status.TIMEOUT
    assert verdict.elapsed_s < 10
    assert_contained(verdict, verifier, canaries)


def test_long_sleep(verifier, canaries):
    verdict = verifier.verify("import time\ntime.sleep(3600)\ndef f(x):\n    return 2 * x\n",
                              CALL)
    assert verdict.status is Status.TIMEOUT
    assert verdict.elapsed_s < 10
    assert_contained(verdict, verifier, canaries)


def test_fork_storm(verifier, canaries):
    _needs_isolation(verifier)  # as your own user, RLIMIT_NPROC counts all your processes
    program = """
import os, time
def f(x):
    for _ in range(500):
        try:
            if os.fork() == 0:
                time.sleep(3600)
        except OSError:
            pass
    return 2 * x + 1
"""
    verdict = verifier.verify(program, CALL)
    assert verdict.status in (Status.TIMEOUT, Status.INCORRECT)
    assert_contained(verdict, verifier, canaries)


def test_escaping_the_process_group(verifier, canaries):
    program = """
import os, time
def f(x):
    if os.fork() == 0:
        os.setsid()
        time.sleep(3600)
    return 2 * x + 1
"""
    verdict = verifier.verify(program, CALL)
    assert_contained(verdict, verifier, canaries)


def test_memory_bomb(verifier, canaries):
    program = "def f(x):\n    block = bytearray(8 * 1024 ** 3)\n    return 2 * x\n"
    verdict = verifier.verify(program, CALL)
    assert "MemoryError" in verdict.reason
    assert_contained(verdict, verifier, canaries)


def test_growing_memory_bomb(verifier, canaries):
    program = "def f(x):\n    hoard = []\n    while True:\n        hoard.append(' ' * 10**7)\n"
    verdict = verifier.verify(program, CALL)
    assert_contained(verdict, verifier, canaries)


@pytest.mark.parametrize("problem, program", [
    (STDIO, "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n"),
    (CALL, "import sys\ndef f(x):\n    while True:\n        sys.stderr.write('x' * 65536)\n"),
    (CALL, "import os\ndef f(x):\n    while True:\n        os.write(3, b'{}' * 65536)\n"),
])
def test_gigabyte_print(verifier, canaries, problem, program):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    verdict = verifier.verify(program, problem)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 100
    assert_contained(verdict, verifier, canaries)


def test_writing_and_deleting_files_outside(verifier, canaries):
    _needs_isolation(verifier)
    dropped = Path("/tmp") / f"rlvr-dropped-{uuid.uuid4().hex}"
    program = f"""
import os, shutil
def f(x):
    for path in ({str(canaries['private'])!r}, {str(canaries['shared'])!r}):
        for attack in (lambda: open(path, 'w').write('owned'), lambda: os.remove(path),
                       lambda: shutil.rmtree(os.path.dirname(path))):
            try:
                attack()
            except OSError:
                pass
    open({str(dropped)!r}, 'w').write('left behind')  # allowed only in a private /tmp
    return 2 * x + 1
"""
    verdict = verifier.verify(program, CALL)
    assert not dropped.exists()
    assert_contained(verdict, verifier, canaries)


def test_reading_secrets_from_the_parent_environment(verifier, canaries, monkeypatch):
    secret = f"hunter2-{uuid.uuid4().hex}"
    monkeypatch.setenv("RLVR_TEST_SECRET", secret)
    problem = Problem("hostile/secret", "", "", kind="code", tests={
        "format": "call", "fn": "f", "cases": [{"args": [], "expected": secret}]})
    program = f"""
import os
def f():
    found = os.environ.get('RLVR_TEST_SECRET', '')
    for pid in [str(os.getppid()), {str(os.getpid())!r}] + os.listdir('/proc'):
        try:
            data = open('/proc/' + pid + '/environ', 'rb').read().decode(errors='replace')
        except OSError:
            continue
        for item in data.split('\\0'):
            if item.startswith('RLVR_TEST_SECRET='):
                found = item.split('=', 1)[1]
    return found
"""
    if not (verifier.layers.unprivileged_uid or verifier.layers.bubblewrap):
        # As your own user without bubblewrap only the scrubbed environment protects you.
        program = "import os\ndef f():\n    return os.environ.get('RLVR_TEST_SECRET', '')\n"
    verdict = verifier.verify(program, problem)
    assert f"returned {secret!r}" not in verdict.reason
    assert_contained(verdict, verifier, canaries)


def test_connecting_to_a_loopback_listener(verifier, canaries):
    if not verifier.layers.network_namespace:
        pytest.skip("no network namespace on this host (see the sandbox's warning)")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    problem = Problem("hostile/net", "", "", kind="code", tests={
        "format": "call", "fn": "f", "cases": [{"args": [], "expected": "connected"}]})
    program = f"""
import socket
def f():
    with socket.create_connection(('127.0.0.1', {port}), timeout=0.3) as s:
        s.sendall(b'hello')
    return 'connected'
"""
    try:
        verdict = verifier.verify(program, problem)
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    assert_contained(verdict, verifier, canaries)


def test_killing_the_parent(verifier, canaries):
    _needs_isolation(verifier)  # kill(-1) as your own user would take your whole session
    program = f"""
import os, signal
def f(x):
    for target in (os.getppid(), {os.getpid()}, {canaries['watcher'].pid}, -1):
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass
    return 2 * x + 1
"""
    verdict = verifier.verify(program, CALL)
    assert os.getpid() > 0  # still here
    assert_contained(verdict, verifier, canaries)


@pytest.mark.parametrize("exit_call", ["sys.exit(0)", "os._exit(0)", "raise SystemExit"])
@pytest.mark.parametrize("problem", [ASSERTS, CALL], ids=["asserts", "call"])
def test_exiting_before_the_tests(verifier, canaries, exit_call, problem):
    program = f"import os, sys\ndef f(x):\n    return 2 * x\n{exit_call}\n"
    verdict = verifier.verify(program, problem)
    assert verdict.status is Status.INCORRECT
    assert verdict.score == 0.0
    assert_contained(verdict, verifier, canaries)


def test_exiting_inside_a_test(verifier, canaries):
    program = "import os\ndef f(x):\n    if x == 5:\n        os._exit(0)\n    return 2 * x\n"
    verdict = verifier.verify(program, ASSERTS)
    assert verdict.score == 0.5
    assert_contained(verdict, verifier, canaries)


@pytest.mark.parametrize("problem", [ASSERTS, CALL], ids=["asserts", "call"])
@pytest.mark.parametrize("program", [
    "class Any:\n    def __eq__(self, other):\n        return True\n"
    "    __hash__ = None\ndef f(x):\n    return Any()\n",
    "class Int(int):\n    def __eq__(self, other):\n        return True\n"
    "    __hash__ = int.__hash__\ndef f(x):\n    return Int(0)\n",
], ids=["object", "int-subclass"])
def test_always_equal_objects(verifier, canaries, problem, program):
    verdict = verifier.verify(program, problem)
    assert verdict.score == 0.0
    assert_contained(verdict, verifier, canaries)


@pytest.mark.parametrize("fmt", ["call", "assert", "stdio"])
def test_reading_the_expected_outputs(verifier, canaries, fmt):
    token = f"EXPECTED-{uuid.uuid4().hex}"
    tests = {
        "call": {"format": "call", "fn": "f", "cases": [{"args": [], "expected": token}]},
        "assert": {"format": "assert", "asserts": [f"assert f() == {token!r}"]},
        "stdio": {"format": "stdio", "cases": [{"input": "", "output": token}]},
    }[fmt]
    problem = Problem("hostile/peek", "", "", kind="code", tests=tests)
    program = """
import gc, os
def f():
    seen = []
    for obj in gc.get_objects():
        if type(obj) is dict:
            seen.extend(v for v in obj.values() if type(v) is str)
        elif type(obj) in (list, tuple) and obj is not seen:
            seen.extend(v for v in obj if type(v) is str)
    for root, _, files in os.walk('.'):
        for name in files:
            seen.append(open(os.path.join(root, name), errors='replace').read())
    for path in ('/proc/self/cmdline', '/proc/self/environ', '/proc/%d/cmdline' % os.getppid()):
        try:
            seen.append(open(path, errors='replace').read())
        except OSError:
            pass
    for text in seen:
        at = text.find('EXPECTED-')
        if at >= 0:
            return text[at:at + 41]
    return ''
if __name__ == '__main__':
    print(f())
"""
    verdict = verifier.verify(program, problem)
    assert f"returned {token!r}" not in verdict.reason
    assert f"printed {token!r}" not in verdict.reason
    assert_contained(verdict, verifier, canaries)


# -- the layers themselves -------------------------------------------------------------------


def test_environment_is_an_allowlist_and_home_is_private(verifier, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/should/not/leak")
    problem = Problem("env", "", "", kind="code", tests={
        "format": "call", "fn": "f", "cases": [{"args": [], "expected": []}]})
    program = f"""
import os
def f():
    # bubblewrap sets PWD to the working directory, which is the private directory
    allowed = set({sorted(BASE_ENV)!r}) | {{'HOME', 'TMPDIR', 'RLVR_SANDBOX', 'PWD'}}
    extra = sorted(set(os.environ) - allowed)
    assert os.environ['HOME'] == os.getcwd() == os.environ['TMPDIR']
    open('scratch.txt', 'w').write('ok')
    return extra
"""
    verdict = verifier.verify(program, problem)
    assert verdict.correct, verdict.reason


def test_private_directory_is_removed_afterwards(verifier):
    problem = Problem("cwd", "", "", kind="code", tests={
        "format": "call", "fn": "f", "cases": [{"args": [], "expected": "never"}]})
    verdict = verifier.verify("import os\ndef f():\n    return os.getcwd()\n", problem)
    cwd = verdict.reason.split("returned '", 1)[1].split("'", 1)[0]
    assert os.path.basename(cwd).startswith("rlvr-sandbox-")
    assert not os.path.exists(cwd)


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid is only changed when the host is root")
def test_runs_as_an_unprivileged_uid_when_root(verifier):
    assert verifier.layers.unprivileged_uid
    problem = Problem("uid", "", "", kind="code", tests={
        "format": "call", "fn": "f", "cases": [{"args": [], "expected": True}]})
    verdict = verifier.verify("import os\ndef f():\n    return os.getuid() >= 1000\n", problem)
    assert verdict.correct, verdict.reason


def test_layers_are_reported(verifier):
    active = verifier.layers.active()
    assert {"process_group", "rlimits", "env_allowlist", "private_tmp"} <= set(active)
    assert ("bubblewrap" in active) == (verifier.config.sandbox.bubblewrap == "always")
    if shutil.which("setpriv") or "bubblewrap" in active:
        assert "no_new_privileges" in active


def test_without_isolation_tools_the_sandbox_refuses_unless_unsafe(monkeypatch, caplog):
    monkeypatch.setenv("PATH", "/nonexistent")  # no bwrap, unshare or setpriv to be found
    with pytest.raises(SandboxUnavailable, match=r"apt-get install bubblewrap.*"
                       r"unprivileged_userns_clone=1.*allow_unsafe=True"):
        Sandbox(SandboxConfig(bubblewrap="auto"))
    caplog.set_level(logging.INFO, logger="rlvr_gym.verifiers.sandbox")
    sandbox = Sandbox(SandboxConfig(bubblewrap="auto", allow_unsafe=True))
    try:
        assert any("unsafe mode" in r.message and "no PID namespace" in r.message
                   for r in caplog.records if r.levelno == logging.WARNING)
        assert sandbox.isolation in ("runner", "none")
        assert sandbox.layers.unprivileged_uid == (os.geteuid() == 0)
        result = sandbox.run({"mode": "call", "code": "import os\nuid = os.getuid()",
                              "cases": [{"expr": "uid"}]}, 5.0)
        uid = int(next(m for m in result.messages if m["t"] == "result")["v"][1], 16)
        assert (uid != 0) if os.geteuid() == 0 else (uid == os.geteuid() or uid == 65534)
    finally:
        sandbox.close()


def test_hung_worker_is_replaced_and_does_not_block_the_pool():
    with SandboxPool(SandboxConfig(bubblewrap="never"), workers=1) as pool:
        hang = {"mode": "call", "code": "import time\ntime.sleep(3600)", "cases": []}
        quick = {"mode": "call", "code": "x = 1", "cases": [{"expr": "x + 1"}]}
        results = list(pool.map([(hang, 0.3), (quick, 5.0)]))
        assert results[0].timed_out
        assert {"t": "result", "i": 0, "v": ["i", "2"]} in results[1].messages
        assert pool.stray_processes() == []


def test_pool_map_applies_back_pressure():
    pulled = []

    def jobs():
        for i in range(20):
            pulled.append(i)
            yield {"mode": "call", "code": "", "cases": [{"expr": str(i)}]}, 5.0

    with SandboxPool(SandboxConfig(bubblewrap="never"), workers=2, max_pending=3) as pool:
        results = pool.map(jobs())
        first = next(results)
        assert len(pulled) <= 4  # max_pending submitted, plus the one that waited
        rest = list(results)
    def value(result):  # the test code's own value: sent before the (empty) program ran
        return next(m["v"] for m in result.messages if m["t"] == "ref")

    assert value(first) == ["i", "0"]
    assert [value(r) for r in rest] == [["i", format(i, "x")] for i in range(1, 20)]


def test_missing_layers_are_explained():
    lines = Layers(network_namespace=False).missing()
    assert [line.split(":")[0] for line in lines] == [
        "no network namespace", "no PID namespace", "no filesystem view", "no IPC namespace"]
    assert all("apt-get install bubblewrap" in line for line in lines)
    assert Layers(network_namespace=False).missing(network=False)[0].startswith("no PID")
    assert Layers(network_namespace=True, pid_namespace=True, filesystem_view=True,
                  ipc_namespace=True).missing() == []


def test_bad_configs_say_how_to_fix():
    with pytest.raises(ValueError, match="at least 64"):
        Sandbox(SandboxConfig(memory_mb=8))
    with pytest.raises(ValueError, match="bubblewrap must be"):
        SandboxConfig(bubblewrap="sometimes").validate()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_pending"):
        SandboxPool(SandboxConfig(bubblewrap="never"), workers=4, max_pending=2)
