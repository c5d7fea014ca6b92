"""Hostile programs against the sandbox's kernel isolation: nothing outlives a run, the
answers and the host's files are out of sight, memory and IPC stay inside the run.

Each test runs with bubblewrap (skipped where it is not installed or $RLVR_SANDBOX_NO_BWRAP
hides it) and with util-linux `unshare` ("namespaces"). The attacks on an unprivileged host
run as a user that the test creates (root only; skipped otherwise).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

import rlvr_gym
from rlvr_gym import Problem, Status
from rlvr_gym.verifiers import (
    _sandbox_runner,
    cgroups,
    isolation,
    launcher,
    leases,
    pool,
    reader,
    reaping,
    sandbox,
    sandbox_types,
    slot,
)
from rlvr_gym.verifiers.code import CodeVerifier, CodeVerifierConfig
from rlvr_gym.verifiers.isolation import find_tools
from rlvr_gym.verifiers.sandbox import SandboxConfig

TMPFS_MB = 32


def returns(expected: object) -> Problem:
    return Problem("isolation", "", "", kind="code", tests={
        "format": "call", "fn": "f", "cases": [{"args": [], "expected": expected}]})


def make_verifier(kind: str) -> CodeVerifier:
    if kind == "bubblewrap" and find_tools()["bwrap"] is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap) or "
                    "$RLVR_SANDBOX_NO_BWRAP hides it")
    config = SandboxConfig(bubblewrap="always" if kind == "bubblewrap" else "never",
                           cpu_time_s=5, memory_mb=256, max_processes=16, tmpfs_mb=TMPFS_MB)
    return CodeVerifier(CodeVerifierConfig(test_timeout_s=3.0, load_timeout_s=3.0, workers=1,
                                           sandbox=config))


@pytest.fixture(scope="module", params=["bubblewrap", "namespaces"])
def verifier(request):
    v = make_verifier(request.param)
    yield v
    v.close()


def returned(verdict) -> str:
    """The value a failing single-call test returned, from the verdict's reason."""
    return verdict.reason.split("returned ", 1)[1].split(", expected", 1)[0]


def processes_of(uid: int) -> list[int]:
    """Pids of uid's processes, zombie thread-group leaders with live threads included."""
    return [pid for pid, _ in reaping._process_uids(uid)]


# -- nothing outlives a run -----------------------------------------------------------------

ZOMBIE_LEADER = """
import ctypes, os, threading, time
SYS_EXIT = {'x86_64': 60, 'aarch64': 93, 'riscv64': 93}[os.uname().machine]
def f():
    if os.fork() == 0:
        os.setsid()
        def killer():  # kills every process of this uid it can see: the slot's next runs
            while True:
                for pid in os.listdir('/proc'):
                    if pid.isdigit() and int(pid) != os.getpid():
                        try:
                            os.kill(int(pid), 9)
                        except OSError:
                            pass
                time.sleep(0.005)
        threading.Thread(target=killer).start()
        ctypes.CDLL(None).syscall(SYS_EXIT, 0)  # ends the main thread only: a zombie leader
    time.sleep(0.2)
    return os.getuid()
"""


def test_a_zombie_leaders_threads_do_not_outlive_the_run(verifier):
    verdict = verifier.verify(ZOMBIE_LEADER, returns("never"))
    uid = int(returned(verdict))
    doubled = Problem("double", "", "", kind="code", tests={
        "format": "call", "fn": "f", "cases": [{"args": [3], "expected": 6}]})
    for _ in range(5):
        good = verifier.verify("import time\ndef f(x):\n    time.sleep(0.05)\n    return 2 * x\n",
                               doubled)
        assert good.status is Status.CORRECT, good.reason
    assert verifier.pool.stray_processes() == []
    if os.geteuid() == 0:
        spare = verifier.pool._slots[0].spare_marker

        def left() -> list[tuple[int, str]]:
            found = []
            for pid in processes_of(uid):
                try:
                    environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
                except OSError:
                    continue  # gone meanwhile
                if spare not in environ:
                    found.append((pid, _cmdline(pid)))
            return found

        # A namespace being torn down may take a moment to leave /proc (longer on a loaded
        # CI machine); the killer thread (it loops forever) would still be there after the
        # grace period.
        deadline = time.monotonic() + 10.0
        while left() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left() == []


# -- the answers and the host's files are out of sight ----------------------------------------


def test_the_installed_package_datasets_and_site_packages_are_unreadable(verifier):
    package = Path(rlvr_gym.__file__).resolve().parent
    data = sorted(p for p in (package / "data").iterdir() if p.is_file())[0]
    interp = verifier.pool._slots[0]._interpreter
    targets = [str(data), str(package / "__init__.py"), str(Path(sandbox.__file__).resolve()),
               *interp.site, *(p for p in sys.path if "site-packages" in p)]
    program = f"""
import os, sys
def f():
    seen = []
    for path in {targets!r}:
        try:
            if os.path.isdir(path):
                seen.append((path, os.listdir(path)))
            else:
                seen.append((path, open(path, 'rb').read(16)))
        except OSError:
            pass
    sys.path[:0] = {sorted({str(package.parent)} | set(sys.path[1:]))!r}
    try:
        import rlvr_gym
        seen.append(('import', rlvr_gym.__file__))
    except ImportError:
        pass
    return seen
"""
    verdict = verifier.verify(program, returns([]))
    assert verdict.correct, verdict.reason


def test_the_sandbox_start_up_leaves_the_ctypes_package_unimported(verifier):
    """The runner builds the view and drops capabilities through `_ctypes` itself: importing
    the `ctypes` package would add ~1.5 ms to every run's start-up (issue 17). A program that
    imports it still gets it."""
    program = """
import sys
def f():
    before = 'ctypes' in sys.modules
    import ctypes
    return [before, ctypes.sizeof(ctypes.c_uint32)]
"""
    verdict = verifier.verify(program, returns([False, 4]))
    assert verdict.correct, verdict.reason


def test_the_next_spare_starts_while_the_last_runs_namespaces_are_torn_down(verifier,
                                                                           monkeypatch):
    """The kernel's teardown of a run's namespaces (a few ms) overlaps the start of the
    slot's next spare instead of delaying it (issue 17); `run` still returns only once the
    run's `unshare`/bubblewrap has reaped the namespace's init, so nothing outlives it."""
    box = verifier.pool._slots[0]
    payload = {"mode": "call", "code": "out = 7", "cases": [{"expr": "out"}]}
    box.run(payload, 10.0)
    current = box._spare
    assert current is not None
    at_launch = []
    launch = box._launch

    def spy(*args):
        at_launch.append(current.popen.returncode)
        return launch(*args)

    monkeypatch.setattr(box, "_launch", spy)
    result = box.run(payload, 10.0)
    assert [m.get("v") for m in result.messages if m.get("t") == "result"] == [["i", "7"]]
    assert at_launch == [None]  # the spare started before the run's init was reaped
    assert current.popen.returncode is not None
    assert box._spare is not None and box._spare is not current


@pytest.mark.parametrize("kind", ["always", "never"], ids=["bubblewrap", "namespaces"])
def test_closing_a_slot_right_after_a_run_does_not_wait_for_its_new_spare(kind):
    """A spare launched a moment ago may not have forked its namespace's init yet: there is
    nothing to wait for (it ran no program), so `close` kills it at once instead of waiting
    the 5 s a torn-down namespace is allowed."""
    if kind == "always" and find_tools()["bwrap"] is None:
        pytest.skip("bubblewrap is not installed or $RLVR_SANDBOX_NO_BWRAP hides it")
    box = sandbox.Sandbox(SandboxConfig(bubblewrap=kind, memory_mb=256))
    payload = {"mode": "call", "code": "out = 7", "cases": [{"expr": "out"}]}
    box.run(payload, 10.0)
    spare = box._spare
    assert spare is not None
    start = time.monotonic()
    box.close()
    assert time.monotonic() - start < 2.0
    assert spare.popen.returncode is not None


def test_host_files_in_run_lock_and_shared_tmp_directories_do_not_survive(verifier):
    token = uuid.uuid4().hex
    shared = Path("/tmp") / f"rlvr-world-writable-{token}"
    shared.mkdir()
    shared.chmod(0o1777)
    dropped = [f"/run/lock/rlvr-{token}", f"{shared}/left", f"/dev/shm/rlvr-{token}"]
    program = f"""
def f():
    for path in {dropped!r}:
        try:
            open(path, 'w').write('left behind')
        except OSError:
            pass
    return 0
"""
    try:
        verifier.verify(program, returns(1))
        assert [p for p in dropped if os.path.exists(p)] == []
    finally:
        shutil.rmtree(shared, ignore_errors=True)
        for path in dropped:
            Path(path).unlink(missing_ok=True)


def test_a_host_unix_socket_is_unreachable(verifier, tmp_path):
    path = Path("/tmp") / f"rlvr-sock-{uuid.uuid4().hex}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    path.chmod(0o777)
    listener.listen(4)
    listener.setblocking(False)
    program = f"""
import socket
def f():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect({str(path)!r})
    s.sendall(b'hello')
    return 'connected'
"""
    try:
        verdict = verifier.verify(program, returns("connected"))
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
        path.unlink(missing_ok=True)
    assert not verdict.correct


# -- memory and IPC stay inside the run -------------------------------------------------------

SYSV = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
KEY = {key}
class Message(ctypes.Structure):
    _fields_ = [('mtype', ctypes.c_long), ('text', ctypes.c_char * 64)]
def leave():
    shm = libc.shmget(KEY, 4096, 0o1666)  # IPC_CREAT | rw for all
    address = libc.shmat(shm, None, 0)
    ctypes.memmove(address, b'planted', 7)
    queue = libc.msgget(KEY, 0o1666)
    libc.msgsnd(queue, ctypes.byref(Message(1, b'planted')), 64, 0)
    return shm >= 0 and queue >= 0
def find():
    found = []
    shm = libc.shmget(KEY, 0, 0)
    if shm >= 0:
        address = libc.shmat(shm, None, 0)
        found.append(ctypes.string_at(address, 7).decode())
    queue = libc.msgget(KEY, 0)
    if queue >= 0:
        message = Message()
        if libc.msgrcv(queue, ctypes.byref(message), 64, 0, 0o4000) >= 0:  # IPC_NOWAIT
            found.append(message.text.decode())
    return found
"""


def test_sysv_shared_memory_and_messages_die_with_the_run(verifier):
    key = int.from_bytes(os.urandom(3), "big") + 1
    planted = verifier.verify(SYSV.format(key=key) + "f = leave\n", returns(True))
    assert planted.correct, planted.reason  # the objects could be made inside the run
    found = verifier.verify(SYSV.format(key=key) + "f = find\n", returns([]))
    assert found.correct, found.reason
    host = Path("/proc/sysvipc/shm").read_text() + Path("/proc/sysvipc/msg").read_text()
    assert f" {key} " not in host


def test_memory_pinned_in_tmpfs_and_sysv_shm_is_bounded_and_freed(verifier):
    program = """
import ctypes, os
def f():
    written = 0
    for path in ('/dev/shm', '/tmp', '.'):
        for i in range(32):
            try:
                with open('%s/pin-%d' % (path, i), 'wb') as out:
                    for _ in range(8):
                        out.write(b'x' * (1 << 20))
                        written += 1
            except OSError:
                break
    segment = ctypes.CDLL(None).shmget(0, 512 << 20, 0o1600)  # IPC_PRIVATE, 512 MiB
    return written, segment >= 0
"""
    before = _shmem_kib()
    verdict = verifier.verify(program, returns("never"))
    written, segment = eval(returned(verdict))  # a tuple of an int and a bool
    # bubblewrap sizes /tmp and /dev/shm separately; the working directory lies in /tmp.
    assert written <= 2 * TMPFS_MB + 1
    if not verifier.layers.bubblewrap:  # bubblewrap leaves the IPC limits at their defaults
        assert segment is False
    assert _shmem_kib() - before < 16 * 1024  # freed with the run (spare's few KiB aside)


def _shmem_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Shmem:"):
            return int(line.split()[1])
    raise AssertionError("no Shmem line in /proc/meminfo")


# -- secure by default ------------------------------------------------------------------------


def test_the_layers_in_force_are_logged_once(caplog):
    caplog.set_level("INFO", logger="rlvr_gym.verifiers.sandbox")
    isolation._LOGGED.clear()
    config = SandboxConfig(bubblewrap="never")
    for _ in range(2):
        sandbox.Sandbox(config).close()
    lines = [r.message for r in caplog.records if "layers in force" in r.message]
    assert len(lines) == 1
    assert "pid_namespace" in lines[0] and "filesystem_view" in lines[0]


# -- an unprivileged host (a user this test creates) ------------------------------------------

#: One user per test session: a run of these tests elsewhere on the machine (another
#: checkout's suite) must not see, or be blamed for, this session's processes.
TEST_USER = f"rlvr-sbx-{os.getpid()}"

UNPRIVILEGED_SCRIPT = r"""
import json, os, sys, threading
sys.path.insert(0, sys.argv[1])
from rlvr_gym.verifiers.isolation import SandboxUnavailable
from rlvr_gym.verifiers.sandbox import Sandbox, SandboxConfig
kind, canary, secret = sys.argv[2], sys.argv[3], os.environ['SECRET']
config = SandboxConfig(bubblewrap=kind, cpu_time_s=5, memory_mb=256, max_processes=16)
try:
    a, b = Sandbox(config), Sandbox(config)
except SandboxUnavailable as exc:
    print(json.dumps({'refused': str(exc)}))
    sys.exit(0)
def call(box, code, timeout=20.0):
    result = box.run({'mode': 'call', 'code': code, 'cases': [{'expr': 'out'}]}, timeout)
    values = [m for m in result.messages if m.get('t') == 'result']
    return values[0].get('v', values[0].get('e')) if values else result.stderr[-300:]
report = {'isolation': a.isolation, 'layers': a.layers.active()}
daemon = ("import os, sys\nif os.fork() == 0:\n    os.setsid()\n"
          "    os.execve(sys.executable, [sys.executable, '-c', 'import time\\n"
          "for _ in range(30): time.sleep(1)'], {})\nout = 1\n")
report['daemon'] = call(a, daemon)
victim = {}
worker = threading.Thread(target=lambda: victim.update(
    v=call(a, 'import time\ntime.sleep(1.0)\nout = \'alive\'')))
worker.start()
hopper = ("import os, signal, time\nend = time.time() + 0.6\n"
          "while time.time() < end:\n    try:\n        os.kill(-1, signal.SIGKILL)\n"
          "    except OSError:\n        pass\n"
          "    for pid in os.listdir('/proc'):\n"
          "        if pid.isdigit() and int(pid) != os.getpid():\n"
          "            try:\n                os.kill(int(pid), 9)\n            except OSError:\n"
          "                pass\nout = 1\n")
report['hopper'] = call(b, hopper)
worker.join()
report['victim'] = victim['v']
report['write'] = call(a, "out = []\nfor path in %r:\n    try:\n"
                          "        open(path, 'a').write('owned')\n        out.append(path)\n"
                          "    except OSError:\n        pass\n" % [canary])
report['peek'] = call(a, "import os\nout = []\nfor pid in ['%d'] + os.listdir('/proc'):\n"
                         "    for name in ('environ', 'mem', 'cmdline'):\n        try:\n"
                         "            path = '/proc/%%s/%%s' %% (pid, name)\n"
                         "            data = open(path, 'rb').read(65536)\n"
                         "        except OSError:\n            continue\n"
                         "        if %r.encode() in data:\n            out.append((pid, name))\n"
                         % (os.getpid(), secret))
a.close(); b.close()
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def test_user(tmp_path_factory):
    """An unprivileged user and a copy of the sandbox modules it can import; (uid, gid,
    package root)."""
    if os.geteuid() != 0:
        pytest.skip("creating the unprivileged test user needs root")
    if shutil.which("useradd") is None or not os.path.exists("/usr/bin/python3"):
        pytest.skip("useradd and /usr/bin/python3 are needed for the unprivileged tests")
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    TEST_USER], check=True)
    user = pwd.getpwnam(TEST_USER)
    root = tmp_path_factory.mktemp("unprivileged")
    root.chmod(0o755)
    for parent in root.parents:  # pytest's base temp is private to root
        if str(parent) in ("/", "/tmp"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o711)
    package = root / "rlvr_gym" / "verifiers"
    package.mkdir(parents=True)
    (root / "rlvr_gym" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    for module in (sandbox, sandbox_types, isolation, slot, pool, reaping, leases, launcher,
                   reader, cgroups, _sandbox_runner):
        shutil.copy(module.__file__, package / Path(module.__file__).name)
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(root)], check=True)
    yield user.pw_uid, user.pw_gid, root
    subprocess.run(["pkill", "-KILL", "-u", str(user.pw_uid)], check=False)
    subprocess.run(["userdel", TEST_USER], check=False)


def run_as_test_user(test_user, kind: str, path: str | None = None) -> dict:
    uid, gid, root = test_user
    canary = root / "rlvr_gym" / "verifiers" / "sandbox.py"
    secret = f"SECRET-{uuid.uuid4().hex}"
    env = {"PATH": path or os.environ["PATH"], "SECRET": secret, "HOME": str(root)}
    for name in (isolation.NO_BWRAP_ENV,):
        if name in os.environ:
            env[name] = os.environ[name]
    before = canary.read_bytes()
    done = subprocess.run(
        [shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={gid}",
         "--clear-groups", "/usr/bin/python3", "-I", "-c", textwrap.dedent(UNPRIVILEGED_SCRIPT),
         str(root), kind, str(canary)],
        capture_output=True, text=True, timeout=60, env=env, cwd=str(root))
    assert done.returncode == 0, done.stderr[-2000:]
    assert canary.read_bytes() == before
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # A namespace torn down as the script exits may take a moment to leave /proc; an escaped
    # daemon (it sleeps 30 s) would still be there after the grace period.
    deadline = time.monotonic() + 3.0
    while processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.05)
    report["left"] = [(pid, _cmdline(pid)) for pid in processes_of(uid)]
    return report


def _cmdline(pid: int) -> str:
    """The command line and the state line of a process, for a failure message."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                     if line.startswith(("State:", "Threads:")))
        return f"{cmdline[:200]} [{state}]"
    except (OSError, StopIteration):
        return "?"


@pytest.mark.parametrize("kind", ["always", "never"], ids=["bubblewrap", "namespaces"])
def test_unprivileged_host_attacks_are_contained(test_user, kind):
    if kind == "always" and find_tools()["bwrap"] is None:
        pytest.skip("bubblewrap is not installed or $RLVR_SANDBOX_NO_BWRAP hides it")
    report = run_as_test_user(test_user, kind)
    if "refused" in report:
        pytest.skip("no user namespaces on this host: " + report["refused"][:200])
    assert report["isolation"] == ("bwrap" if kind == "always" else "namespaces")
    assert {"pid_namespace", "filesystem_view", "ipc_namespace"} <= set(report["layers"])
    assert report["daemon"] == ["i", "1"]
    assert report["victim"] == ["s", "alive"]  # the neighbour's kill storm did not reach it
    assert report["write"] == ["l", []]
    assert report["peek"] == ["l", []]
    assert report["left"] == []  # the empty-environment daemon died with its run


def test_unprivileged_host_without_namespaces_refuses_with_the_fix(test_user):
    report = run_as_test_user(test_user, "never", path="/nonexistent")
    assert "apt-get install bubblewrap" in report["refused"]
    assert "allow_unsafe=True" in report["refused"]
    assert report["left"] == []
