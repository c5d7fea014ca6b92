"""MathVerifier: the labelled corpus, the rules, the time bound, threads, processes."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import gymnasium
import pytest

import rlvr_gym  # noqa: F401  (registers the rlvr/ ids)
from rlvr_gym.types import Problem, Status
from rlvr_gym.verifiers import MathVerifier
from rlvr_gym.verifiers import math as math_module
from rlvr_gym.verifiers.workers import WorkerPool, WorkerTimeout

CORPUS = [json.loads(line) for line in
          (Path(__file__).parent / "math_corpus.jsonl").read_text(encoding="utf-8").splitlines()
          if line.strip()]
#: Answers that make sympy or the LaTeX parser run for a long time or use much memory.
HOSTILE = [
    "\\boxed{10^{10^{10}}}",
    "\\boxed{\\lfloor 3^{3^{21}} \\rfloor}",
    "\\boxed{x^{10^{10}}}",
    "\\boxed{" + "9" * 200_000 + "}",
    "x" * 200_000,
    "\\boxed{" * 30_000,
    "\\boxed{" + "{" * 30 + "1" + "}" * 30 + "}",
    "\\boxed{" + "(" * 14 + "1" + ")" * 14 + "}",
    "\\boxed{" + "\\frac{" * 60 + "1" + "}{2}" * 60 + "}",
    "\\boxed{\\frac{1}{2}}}}}{{{",
    "\\boxed{\\sqrt{\\frac{1}{2}}{{{}",
    "\\boxed{\\unknownmacro{3}\\frobnicate}",
    "\\boxed{1e999999999}",
    "\\boxed{2^{2^{2^{2^{2^{2}}}}}}",
    "\\boxed{" + "\\frac{" * 35 + "1" + "}{2}" * 35 + "}",
    "\\boxed{" + "(" * 8 + "1" + ")" * 8 + "}",
    "\\boxed{" + "x+" * 400 + "1}",
]
TIMEOUT_S = 1.5
#: Slack over the bound for process scheduling on a loaded 2-core CI machine.
MARGIN_S = 2.0


@pytest.fixture(scope="module")
def verifier():
    """One warm verifier for the module (its worker already started)."""
    v = MathVerifier(timeout_s=TIMEOUT_S, max_workers=2)
    assert v.verify("\\boxed{\\sqrt{4}}", "2").correct
    yield v
    v.close()


def _reference(case: dict) -> str | Problem:
    if case.get("question"):
        return Problem(id="corpus", question=case["question"], answer=case["reference"])
    return case["reference"]


@pytest.fixture(scope="module")
def corpus_verdicts(verifier, corpus_report):
    """Status of every corpus case, and the per-category table printed after the run."""
    statuses = [verifier.verify(c["response"], _reference(c)).status.value for c in CORPUS]
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for case, status in zip(CORPUS, statuses, strict=True):
        table[case["category"]][0] += status == case["expected"]
        table[case["category"]][1] += 1
    corpus_report.update(table)
    return statuses


def test_corpus_is_large_and_covers_every_category() -> None:
    categories = {c["category"] for c in CORPUS}
    assert len(CORPUS) >= 150
    assert categories >= {
        "integers", "decimals", "fractions", "radicals", "constants", "percentages", "degrees",
        "units_text", "expressions", "equations", "sets", "tuples", "intervals", "matrices",
        "complex", "plus_minus", "extraction", "text_choice",
    }
    assert {c["expected"] for c in CORPUS} == {"correct", "incorrect", "no_answer"}


@pytest.mark.parametrize("index", range(len(CORPUS)),
                         ids=[f"{c['category']}-{i}" for i, c in enumerate(CORPUS)])
def test_corpus_case(index: int, corpus_verdicts) -> None:
    case = CORPUS[index]
    assert corpus_verdicts[index] == case["expected"], case


def test_plain_numbers_never_start_a_worker() -> None:
    v = MathVerifier()
    plain = [("\\boxed{1,234}", "1234"), ("#### 3.50", "3.5"), ("\\boxed{50\\%}", "0.5"),
             ("\\boxed{\\frac{6}{8}}", "\\frac{3}{4}"), ("\\boxed{x = 3}", "3"),
             ("\\boxed{-3, 0, 1}", "1, 0, -3"), ("\\boxed{\\text{(B)}}", "B"), ("\\boxed{7}", "8")]
    for response, reference in plain:
        v.verify(response, reference)
    assert v.worker_count == 0
    v.close()


def test_verdict_fields(verifier: MathVerifier) -> None:
    v = verifier.verify("so \\boxed{\\frac{2}{4}}", "\\frac{1}{2}")
    assert (v.status, v.score, v.extracted) == (Status.CORRECT, 1.0, "\\frac{2}{4}")
    assert v.elapsed_s >= 0 and v.reason
    wrong = verifier.verify("\\boxed{3}", "4")
    assert (wrong.status, wrong.score) == (Status.INCORRECT, 0.0)
    none = MathVerifier(last_number_fallback=False).verify("I think it is 4", "4")
    assert none.status is Status.NO_ANSWER and none.extracted is None


def test_restating_the_question_does_not_pass(verifier: MathVerifier) -> None:
    problem = Problem(id="p", question="Compute $\\frac{1}{3} + \\frac{1}{6}$.",
                      answer="\\frac{1}{2}")
    assert verifier.verify("\\boxed{\\frac{1}{3}+\\frac{1}{6}}", problem).status is Status.INCORRECT
    assert verifier.verify("\\boxed{\\frac{3}{6}}", problem).correct
    assert verifier.verify("\\boxed{0.5}", problem).correct
    # A plain number that happens to appear in the question is an answer, not a restatement.
    half = Problem(id="h", question="What is 1/2 times 1?", answer="\\frac{1}{2}")
    assert verifier.verify("\\boxed{1/2}", half).correct


def test_equivalent(verifier: MathVerifier) -> None:
    assert verifier.equivalent("0.5", "\\frac{1}{2}")
    assert verifier.equivalent("\\frac{\\sqrt{8}}{2}", "\\sqrt{2}")
    # A decimal to 6+ places stands for the value it rounds or truncates; a shorter one does not.
    assert verifier.equivalent("0.3333333", "\\frac{1}{3}")
    assert verifier.equivalent("0.0833333", "\\frac{1}{12}")
    assert verifier.equivalent("1.414214", "\\sqrt{2}")
    assert not verifier.equivalent("0.33333", "\\frac{1}{3}")
    assert not verifier.equivalent("1.414", "\\sqrt{2}")
    assert not verifier.equivalent("0.3333343", "\\frac{1}{3}")


def test_an_unparseable_reference_is_an_error_not_a_wrong_answer(verifier) -> None:
    v = verifier.verify("\\boxed{x+1}", "\\frac{1}{")
    assert v.status is Status.ERROR and not v.usable


@pytest.mark.parametrize("response", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_answers_stay_within_the_bound(verifier: MathVerifier, response: str) -> None:
    start = time.perf_counter()
    verdict = verifier.verify(response, "5")
    assert time.perf_counter() - start < TIMEOUT_S + MARGIN_S
    assert verdict.status in (Status.INCORRECT, Status.NO_ANSWER, Status.TIMEOUT)


def test_overrun_on_the_reference_is_a_timeout_and_the_verifier_recovers(verifier) -> None:
    with pytest.raises(TimeoutError):
        verifier.equivalent("5", "\\lfloor 3^{3^{21}} \\rfloor")
    assert verifier.verify("\\boxed{\\frac{\\pi}{2}}", "\\frac{\\pi}{2}").correct


@pytest.mark.parametrize("bomb", [
    "\\boxed{e^{e^{e^{e^{10}}}}}", "\\boxed{10^{10^{10^{10}}}}",
    "\\boxed{\\lfloor 3^{3^{21}} \\rfloor}", "\\boxed{1e999999999}",
    "\\boxed{\\lfloor 7^{7^{7}} \\rfloor - 1}", "\\boxed{(2^{2^{30}}) \\bmod 7}",
])
def test_answers_that_cannot_be_evaluated_are_wrong_answers_not_masked(verifier, bomb) -> None:
    # Masked verdicts (advantage 0) would pay a failing policy for emitting bombs.
    start = time.perf_counter()
    verdict = verifier.verify(bomb, "5")
    assert verdict.status is Status.INCORRECT and verdict.usable, verdict
    assert time.perf_counter() - start < 2 * TIMEOUT_S + MARGIN_S


def test_a_worker_that_ignores_its_budget_is_killed_and_replaced() -> None:
    # budget_share=20: the worker's own alarm would fire long after the deadline, so only
    # killing the process can keep the bound.
    pool = WorkerPool(math_module._SYMBOLIC_MODULE, ["0"], 1, startup_timeout_s=60)
    request = {"gold": "5", "pred": "\\lfloor 3^{3^{21}} \\rfloor"}
    try:
        pool.call({"gold": "1", "pred": "1"}, timeout_s=30)  # start it
        start = time.perf_counter()
        with pytest.raises(WorkerTimeout):
            pool.call(request, timeout_s=1.0, budget_share=20)
        assert time.perf_counter() - start < 1.0 + MARGIN_S
        assert pool.started == 0
        assert pool.call({"gold": "2", "pred": "\\sqrt{4}"}, timeout_s=30)["status"] == "correct"
    finally:
        pool.close()


def test_a_worker_that_cannot_start_gives_error_verdicts(monkeypatch) -> None:
    monkeypatch.setattr(math_module, "_SYMBOLIC_MODULE", "rlvr_gym.verifiers.no_such_module")
    v = MathVerifier(startup_timeout_s=30)
    verdict = v.verify("\\boxed{\\sqrt{4}}", "2")
    assert verdict.status is Status.ERROR and "worker" in verdict.reason
    v.close()


def test_many_threads_at_once() -> None:
    v = MathVerifier(timeout_s=20, max_workers=2)  # generous: 8 threads queue for 2 workers
    cases = [("\\boxed{\\sqrt{50}}", "5\\sqrt{2}", True), ("\\boxed{3}", "3", True),
             ("\\boxed{(1, 2]}", "(1, 2)", False), ("\\boxed{x = 2, x = -2}", "\\pm 2", True),
             ("\\boxed{2+3i}", "3i+2", True), ("\\boxed{7}", "8", False)]
    results: list[tuple[bool, Status]] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        for j in range(6):
            response, reference, want = cases[(k + j) % len(cases)]
            verdict = v.verify(response, reference)
            with lock:
                results.append((verdict.correct == want, verdict.status))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    v.close()
    assert len(results) == 48
    assert all(ok for ok, _ in results), results
    assert v.worker_count == 0


def test_close_stops_workers_and_the_verifier_stays_usable() -> None:
    v = MathVerifier()
    assert v.verify("\\boxed{\\sqrt{9}}", "3").correct
    assert v.worker_count == 1
    v.close()
    assert v.worker_count == 0
    assert v.verify("\\boxed{\\sqrt{9}}", "3").correct
    v.close()


def test_workers_end_with_the_interpreter(tmp_path: Path) -> None:
    script = tmp_path / "uses_verifier.py"
    script.write_text(
        "from rlvr_gym.verifiers import MathVerifier\n"
        "v = MathVerifier()\n"
        "assert v.verify('\\\\boxed{\\\\sqrt{4}}', '2').correct\n"
        "print(*[w.proc.pid for w in v._pool._all])\n"  # no close(): exit must clean up
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, check=True)
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 1
    deadline = time.monotonic() + 10
    while _alive(pids[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pids[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_pickled_copy_starts_its_own_workers(verifier: MathVerifier) -> None:
    copy = pickle.loads(pickle.dumps(verifier))
    assert copy.worker_count == 0 and copy.timeout_s == verifier.timeout_s
    assert copy.verify("\\boxed{\\sqrt{9}}", "3").correct
    copy.close()
    assert verifier.verify("\\boxed{\\sqrt{16}}", "4").correct  # the original is untouched


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_uses_its_own_workers_and_leaves_the_parents(verifier) -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: verify with the inherited verifier, then close it
        try:
            ok = verifier.verify("\\boxed{\\sqrt{25}}", "5").correct
            verifier.close()
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"1"
    assert verifier.worker_count >= 1
    assert verifier.verify("\\boxed{\\sqrt{36}}", "6").correct


def test_inside_async_vector_env_workers() -> None:
    envs = gymnasium.make_vec("rlvr/MathDataset-v0", num_envs=2, vectorization_mode="async")
    try:
        envs.reset(seed=0, options={"index": 4})  # reference 5\sqrt{2}
        _, rewards, terminated, _, _ = envs.step(("\\boxed{\\sqrt{50}}", "\\boxed{5\\sqrt{3}}"))
        assert list(rewards) == [1.0, 0.0]
        assert all(terminated)
    finally:
        envs.close()


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout_s": 0}, {"timeout_s": -1}, {"max_workers": 0}, {"startup_timeout_s": 0},
     {"worker_memory_mb": -5}],
)
def test_bad_arguments_say_how_to_fix_them(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="must"):
        MathVerifier(**kwargs)


def test_a_non_string_response_is_a_usage_error(verifier: MathVerifier) -> None:
    with pytest.raises(ValueError, match="str"):
        verifier.verify(42, "42")  # type: ignore[arg-type]


def test_files_in_the_working_directory_cannot_shadow_the_workers_modules(tmp_path, monkeypatch):
    # A program (or a user's own json.py) planting modules in the host's working directory
    # must not run inside the math worker: it starts in / with -P.
    marker = tmp_path / "ran"
    for name in ("sympy", "json", "random"):
        (tmp_path / f"{name}.py").write_text(
            f"open({str(marker)!r}, 'a').write('{name}')\nraise SystemExit(3)\n")
    monkeypatch.chdir(tmp_path)
    v = MathVerifier()
    try:
        assert v.verify("\\boxed{\\frac{\\sqrt{8}}{2}}", "\\sqrt{2}").correct
    finally:
        v.close()
    assert not marker.exists()


def test_a_worker_that_died_while_idle_is_replaced_without_an_error() -> None:
    v = MathVerifier()
    try:
        assert v.verify("\\boxed{\\sqrt{9}}", "3").correct
        (worker,) = v._pool._all
        worker.proc.kill()  # e.g. the OOM killer, between two calls
        worker.proc.wait()
        verdict = v.verify("\\boxed{\\sqrt{16}}", "4")
        assert verdict.correct, verdict
        v.close()  # closing a dead worker's pipes must not raise BrokenPipeError either
    finally:
        v.close()


def test_extraction_time_does_not_grow_with_the_response() -> None:
    v = MathVerifier()
    huge = "{\\frac{1}{2}} is a half. " * 2_000_000 + "\\boxed{42}"  # 50 MB, brace-heavy
    start = time.perf_counter()
    assert v.verify(huge, "42").correct
    assert time.perf_counter() - start < 1.0
