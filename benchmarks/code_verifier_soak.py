"""Soak: thousands of code verifications from every kind of caller, hostile and correct mixed.

Three drivers run at the same time, each with its own verifiers:

- short-lived threads: every verification in a thread of its own (4 at a time), on one shared
  `CodeVerifier` (the pattern that killed warm sandboxes when their launching thread ended);
- an async vector env: `gymnasium.vector.AsyncVectorEnv` over `rlvr/CodeProblems-v0` (2 env
  processes), reset and stepped with the problem's reference solution or a hostile program;
- a process pool: 2 spawned worker processes, each judging batches of 20 with `verify_batch`
  (hostile programs and correct ones in the same batch).

30% of the programs are hostile, cycling through: fork bomb, memory bomb, deeply nested JSON
on the result channel, an int too long for `repr`, a sleeper (killed at its deadline), a
`setsid` daemon, forged result lines. Every hostile program also answers wrongly. The rest are
correct programs (three test formats in the thread and pool drivers; the reference solutions
in the env driver).

Reported: correct programs not rewarded (must be 0), hostile programs rewarded (any score
above 0; must be 0), verdict counts, processes of sandbox uids / with sandbox markers (of
this soak's host processes, and machine-wide, where other users' sandboxes count too) and
System V IPC objects (`ipcs`) before and after, and the host's memory (RSS sampled during
the run, max RSS of the main process and of the process-pool workers).

    .venv/bin/python -m benchmarks.code_verifier_soak [--n 10000]

The full run (`--n 10000`) writes benchmarks/results/code_verifier_soak.md; a smaller one
writes code_verifier_soak_small.md, so that it never replaces the recorded full run.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, provenance
from rlvr_gym import Problem, Status
from rlvr_gym.verifiers.code import CodeVerifier, CodeVerifierConfig
from rlvr_gym.verifiers.sandbox import SandboxConfig

FULL_N = 10_000
SANDBOX = SandboxConfig(cpu_time_s=2, memory_mb=256, max_processes=16)
CONFIG = CodeVerifierConfig(test_timeout_s=0.5, load_timeout_s=1.0, sandbox=SANDBOX)

DOUBLE = Problem("soak/double", "", "", kind="code", tests={
    "format": "call", "fn": "f",
    "cases": [{"args": [1], "expected": 2}, {"args": [5], "expected": 10}]})
SORTED = Problem("soak/sorted", "", "", kind="code", tests={
    "format": "assert", "setup": "xs = [3, 1, 2]\ndef ref(v):\n    return sorted(v)\n",
    "asserts": ["assert f(xs) == ref(xs)", "assert f([2, 1]) == [1, 2]"]})
ECHO = Problem("soak/echo", "", "", kind="code", tests={
    "format": "stdio", "cases": [{"input": "7\n", "output": "7\n"}, {"input": "x\n",
                                                                    "output": "x\n"}]})
CORRECT = [("def f(x):\n    return 2 * x\n", DOUBLE),
           ("def f(v):\n    return sorted(v)\n", SORTED),
           ("print(input())\n", ECHO)]

_CHANNEL = ("import os\n"
            "def send(line):\n"
            "    for fd in range(3, 64):\n"
            "        try:\n"
            "            if os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:'):\n"
            "                os.write(fd, line.encode() + b'\\n')\n"
            "                return\n"
            "        except OSError:\n"
            "            pass\n")
_WRONG = "def f(x):\n    return None\n"
HOSTILE = {
    "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n"
                 "    except OSError:\n        pass\n",
    "memory bomb": "chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 7))\n",
    "nested JSON": _CHANNEL + "send('[' * 200000)\n" + _WRONG,
    "huge int": "def f(x):\n    return 10 ** 5000\n",
    "sleeper": "import time\ntime.sleep(600)\n",
    "setsid daemon": "import os, time\nif os.fork() == 0:\n    os.setsid()\n"
                     "    if os.fork() == 0:\n        time.sleep(600)\n    os._exit(0)\n"
                     + _WRONG,
    "forged lines": _CHANNEL + "for i in range(4):\n"
                    "    send('{\"t\":\"result\",\"i\":%d,\"v\":[\"b\",true]}' % i)\n"
                    "os._exit(0)\n",
}
KINDS = list(HOSTILE)


def item(k: int) -> tuple[str, str]:
    """(kind, program) of item k: 3 in 10 hostile, cycling through the attacks."""
    if k % 10 in (3, 6, 9):
        kind = KINDS[(k // 10 * 3 + (k % 10) // 3) % len(KINDS)]
        return kind, HOSTILE[kind]
    return "correct", ""


Record = tuple[str, str, str, bool, float]  # driver, kind, status, usable, score


def _record(driver: str, kind: str, verdict: Any) -> Record:
    return (driver, kind, str(verdict.status.value), bool(verdict.usable), float(verdict.score))


# -- driver 1: a thread per verification ---------------------------------------------------


def drive_threads(indices: range, out: list[Record], progress: collections.Counter) -> None:
    verifier = CodeVerifier(replace(CONFIG, workers=2))
    slots = threading.Semaphore(4)

    def one(k: int) -> None:
        try:
            kind, program = item(k)
            response, problem = (CORRECT[k % 3] if kind == "correct" else (program, DOUBLE))
            out.append(_record("threads", kind, verifier.verify(response, problem)))
            progress["done"] += 1
        finally:
            slots.release()

    threads = []
    for k in indices:
        slots.acquire()
        thread = threading.Thread(target=one, args=(k,))
        thread.start()
        threads.append(thread)
        threads = [t for t in threads if t.is_alive()]
    for thread in threads:
        thread.join()
    verifier.close()


# -- driver 2: an async vector env ----------------------------------------------------------


def _make_env() -> Any:
    import gymnasium as gym

    import rlvr_gym  # noqa: F401 (registers the ids)

    return gym.make("rlvr/CodeProblems-v0",
                    verifier=CodeVerifier(replace(CONFIG, workers=1)))


def drive_vector_env(indices: range, out: list[Record], progress: collections.Counter,
                     hosts: set[int]) -> None:
    import gymnasium as gym

    n_envs = 2
    envs = gym.vector.AsyncVectorEnv([_make_env] * n_envs, context="spawn")
    hosts.update(process.pid for process in envs.processes)
    try:
        ks = list(indices)
        for start in range(0, len(ks), n_envs):
            batch = ks[start:start + n_envs]
            _, info = envs.reset(seed=start)
            kinds = [item(k)[0] for k in batch] + ["correct"] * (n_envs - len(batch))
            actions = tuple(info["solution"][j] if kinds[j] == "correct"
                            else f"```python\n{HOSTILE[kinds[j]]}```" for j in range(n_envs))
            _, _, _, _, info = envs.step(actions)
            for j in range(len(batch)):
                out.append(_record("vector env", kinds[j], info["verdict"][j]))
                progress["done"] += 1
    finally:
        envs.close()


# -- driver 3: a process pool ----------------------------------------------------------------

_POOL_VERIFIER: CodeVerifier | None = None


def _pool_init() -> None:
    global _POOL_VERIFIER
    _POOL_VERIFIER = CodeVerifier(replace(CONFIG, workers=1))


def _pool_batch(ks: list[int]) -> tuple[list[Record], int, int]:
    assert _POOL_VERIFIER is not None
    pairs = [CORRECT[k % 3] if kind == "correct" else (program, DOUBLE)
             for k in ks for kind, program in [item(k)]]
    verdicts = _POOL_VERIFIER.verify_batch([r for r, _ in pairs], [p for _, p in pairs])
    records = [_record("process pool", item(k)[0], v) for k, v in zip(ks, verdicts, strict=True)]
    return records, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, os.getpid()


def drive_process_pool(indices: range, out: list[Record], progress: collections.Counter,
                       rss: list[int], hosts: set[int]) -> None:
    ks = list(indices)
    chunks = [ks[i:i + 20] for i in range(0, len(ks), 20)]
    with ProcessPoolExecutor(2, mp_context=get_context("spawn"), initializer=_pool_init) as pool:
        for records, maxrss, pid in pool.map(_pool_batch, chunks):
            hosts.add(pid)
            out.extend(records)
            progress["done"] += len(records)
            rss.append(maxrss)


# -- what is left on the machine ------------------------------------------------------------


def leftovers(hosts: set[int]) -> dict[str, int]:
    """Processes of sandbox uids or with a sandbox marker (of any host process, and of this
    soak's processes `hosts`: others on the machine may be running sandboxes too), System V
    IPC objects, sandbox directories in /tmp."""
    base = SANDBOX.uid_base
    by_uid = marked = ours = 0
    prefixes = tuple(f"RLVR_SANDBOX={pid}.".encode() for pid in hosts)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if base <= entry.stat().st_uid < base + 65536:
                by_uid += 1
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                items = f.read().split(b"\0")
            marked += any(i.startswith(b"RLVR_SANDBOX=") for i in items)
            ours += any(i.startswith(prefixes) for i in items)
        except OSError:
            continue
    ipc = {}
    for flag, name in (("-m", "shm"), ("-q", "msg"), ("-s", "sem")):
        out = subprocess.run(["ipcs", flag], capture_output=True, text=True).stdout
        ipc[f"ipc {name}"] = sum(line.startswith("0x") for line in out.splitlines())
    dirs = sum(name.startswith("rlvr-sandbox-") for name in os.listdir("/tmp"))
    return {"processes of sandbox uids (machine-wide)": by_uid,
            "processes with a sandbox marker (machine-wide)": marked,
            "processes with a marker of this soak's processes": ours,
            **ipc, "sandbox directories in /tmp": dirs}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=FULL_N, help="verifications in all")
    args = parser.parse_args()
    if args.n < 30:
        parser.error("--n must be at least 30 (10 per driver)")
    hosts = {os.getpid()}
    before = leftovers(hosts)
    n_threads, n_env = int(args.n * 0.4), int(args.n * 0.3)
    ranges = {"threads": range(0, n_threads), "env": range(n_threads, n_threads + n_env),
              "pool": range(n_threads + n_env, args.n)}
    records: list[Record] = []
    progress: collections.Counter = collections.Counter()
    worker_rss: list[int] = []
    failures: list[str] = []

    def guarded(name: str, fn: Any, *fn_args: Any) -> None:
        try:
            fn(*fn_args)
        except BaseException as exc:  # reported: a driver that dies is a failed soak
            failures.append(f"{name}: {type(exc).__name__}: {exc}")

    start = time.monotonic()
    drivers = [threading.Thread(target=guarded, args=("threads", drive_threads,
                                                      ranges["threads"], records, progress)),
               threading.Thread(target=guarded, args=("vector env", drive_vector_env,
                                                      ranges["env"], records, progress,
                                                      hosts)),
               threading.Thread(target=guarded, args=("process pool", drive_process_pool,
                                                      ranges["pool"], records, progress,
                                                      worker_rss, hosts))]
    for driver in drivers:
        driver.start()
    samples: list[tuple[int, float]] = []
    while any(d.is_alive() for d in drivers):
        time.sleep(2.0)
        samples.append((progress["done"], rss_mib()))
        print(f"{progress['done']}/{args.n} verified, host RSS {samples[-1][1]:.0f} MiB, "
              f"{time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    elapsed = time.monotonic() - start
    time.sleep(1.0)  # let the last killed processes be reaped
    after = leftovers(hosts)

    correct = [r for r in records if r[1] == "correct"]
    unrewarded = [r for r in correct if r[2] != Status.CORRECT.value]
    hostile = [r for r in records if r[1] != "correct"]
    rewarded = [r for r in hostile if r[4] > 0]
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for _, kind, status, usable, _ in records:
        by_kind[kind][status + ("" if usable else " (masked)")] += 1
    by_driver = collections.Counter(r[0] for r in records)
    early = next((mib for done, mib in samples if done >= args.n // 10), samples[0][1]
                 if samples else 0.0)
    lines = ["# Code verifier soak: hostile and correct programs from threads, vector envs and "
             "a process pool", "",
             *provenance(f"python -m benchmarks.code_verifier_soak --n {args.n}"), "",
             f"{len(records)} of {args.n} verifications done in {elapsed:.0f} s "
             f"({len(records) / elapsed:.1f}/s): " + ", ".join(
                 f"{n} from {d}" for d, n in by_driver.items()) + ". "
             f"Host running as {'root' if os.geteuid() == 0 else 'a normal user'}; bubblewrap "
             f"{'installed' if any(Path(p, 'bwrap').exists() for p in os.environ.get('PATH', '').split(':')) else 'not installed'}.",  # noqa: E501
             "",
             f"- **Correct programs not rewarded: {len(unrewarded)}** of {len(correct)}"
             + (": " + "; ".join(f"{d} {s}" for d, _, s, _, _ in unrewarded[:10])
                if unrewarded else ""),
             f"- **Hostile programs rewarded: {len(rewarded)}** of {len(hostile)}",
             f"- Drivers that failed: {len(failures)}" + (": " + "; ".join(failures)
                                                           if failures else ""),
             f"- Host memory: RSS {early:.0f} MiB after the first 10% of verifications, "
             f"{samples[-1][1] if samples else 0:.0f} MiB at the end; max RSS of the main "
             f"process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB, "
             f"of the process-pool workers {max(worker_rss, default=0) / 1024:.0f} MiB", "",
             "| left on the machine | before | after |", "|---|---|---|"]
    lines += [f"| {name} | {before[name]} | {after[name]} |" for name in before]
    lines += ["", "| program | verdicts |", "|---|---|"]
    lines += [f"| {kind} | " + ", ".join(f"{s}: {n}" for s, n in sorted(c.items())) + " |"
              for kind, c in sorted(by_kind.items())]
    lines.append("")
    out = RESULTS_DIR / ("code_verifier_soak.md" if args.n == FULL_N
                         else "code_verifier_soak_small.md")
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    ok = not unrewarded and not rewarded and not failures and \
        after["processes with a marker of this soak's processes"] == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
