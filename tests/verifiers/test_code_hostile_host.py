"""The code verifier's host side: every reward right, whatever thread calls it and whatever a
program sends back.

- Sandboxes must not die with the thread that happened to start them (their parent-death
  signal follows the thread): correct programs verified from short-lived threads stay correct.
- Hostile output on the result channel (deeply nested JSON, huge ints, ints too long for
  `repr`) is the program's fault: `incorrect`, usable, never an exception or a masked `error`,
  and never the batch-mates' problem.
- A program cannot forge a pass by writing result lines itself.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlvr_gym import Problem, Status
from rlvr_gym.verifiers.code import CodeVerifier, CodeVerifierConfig
from rlvr_gym.verifiers.isolation import find_tools
from rlvr_gym.verifiers.sandbox import SandboxConfig

DOUBLE = Problem("host/double", "double x", "", kind="code", tests={
    "format": "call", "fn": "f",
    "cases": [{"args": [1], "expected": 2}, {"args": [5], "expected": 10}]})
CORRECT = "def f(x):\n    return 2 * x\n"


def _verifier(mode: str, test_timeout_s: float, cpu_time_s: int) -> CodeVerifier:
    if mode == "bubblewrap" and find_tools()["bwrap"] is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap) or "
                    "$RLVR_SANDBOX_NO_BWRAP hides it")
    sandbox = SandboxConfig(bubblewrap="always" if mode == "bubblewrap" else "never",
                            cpu_time_s=cpu_time_s, memory_mb=256, max_processes=16)
    return CodeVerifier(CodeVerifierConfig(test_timeout_s=test_timeout_s, load_timeout_s=1.0,
                                           workers=2, sandbox=sandbox))


@pytest.fixture(scope="module", params=["bubblewrap", "plain"])
def verifier(request):
    with _verifier(request.param, test_timeout_s=0.5, cpu_time_s=2) as v:
        yield v


@pytest.fixture(scope="module", params=["bubblewrap", "plain"])
def patient_verifier(request):
    """For programs that need a few seconds to build their output on a loaded machine."""
    with _verifier(request.param, test_timeout_s=10.0, cpu_time_s=20) as v:
        yield v


# -- item 1: launches outlive the thread that asked for them ----------------------------------


def test_correct_programs_verified_from_short_lived_threads_stay_correct(verifier):
    verdicts = []

    def one() -> None:
        verdicts.append(verifier.verify(CORRECT, DOUBLE))

    for _ in range(20):
        thread = threading.Thread(target=one)
        thread.start()
        thread.join()
    assert [v.status for v in verdicts] == [Status.CORRECT] * 20, \
        [v.reason for v in verdicts if not v.correct]


def test_correct_programs_verified_from_a_thread_pool_per_batch_stay_correct(verifier):
    verdicts = []
    for _ in range(5):
        with ThreadPoolExecutor(4) as pool:
            verdicts += list(pool.map(lambda _: verifier.verify(CORRECT, DOUBLE), range(4)))
    assert [v.status for v in verdicts] == [Status.CORRECT] * 20, \
        [v.reason for v in verdicts if not v.correct]


# -- item 3: hostile output is the program's fault, never the host's crash ------------------

# The result channel is the one pipe the runner holds besides stderr: a program finds it.
CHANNEL = ("import os\n"
           "def channel():\n"
           "    for fd in range(3, 64):\n"
           "        try:\n"
           "            if os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:'):\n"
           "                return fd\n"
           "        except OSError:\n"
           "            pass\n"
           "def send(line):\n"
           "    os.write(channel(), line.encode() + b'\\n')\n")
NESTED_JSON = CHANNEL + "send('[' * 200000)\n" + CORRECT
FLOATS = Problem("host/floats", "", "", kind="code", tests={
    "format": "assert", "setup": "import math",
    "asserts": ["assert math.isclose(f(2), 1.5)", "assert abs(f(1) - 3.5) < 1e-6"]})
HUGE_ON_FLOATS = "def f(x):\n    return 10 ** 400\n"
TOO_LONG_FOR_REPR = "def f(x):\n    return 10 ** 5000\n"
# 100,000 ints equal modulo 2**61 - 1 share one hash: building their set takes minutes. The
# program cannot build it in time itself, but it can write it as its result.
COLLIDING_SET = CHANNEL + (
    "def f(x):\n"
    "    items = ','.join('[\"i\",\"%x\"]' % (k * (2 ** 61 - 1)) for k in range(1, 100000))\n"
    "    send('{\"t\":\"result\",\"i\":0,\"v\":[\"S\",[' + items + ']]}')\n"
    "    os._exit(0)\n")


def _penalised(verdict) -> None:
    assert (verdict.status, verdict.score, verdict.usable) == (Status.INCORRECT, 0.0, True), \
        verdict


def test_a_deeply_nested_json_line_is_incorrect_not_a_crash(verifier):
    verdict = verifier.verify(NESTED_JSON, DOUBLE)
    _penalised(verdict)
    assert "result channel" in verdict.reason


def test_a_huge_int_on_a_float_assert_is_incorrect(verifier):
    verdict = verifier.verify(HUGE_ON_FLOATS, FLOATS)
    _penalised(verdict)
    assert "math.isclose(f(2), 1.5): returned 1000" in verdict.reason


def test_an_int_too_long_for_repr_is_incorrect_and_described(verifier):
    verdict = verifier.verify(TOO_LONG_FOR_REPR, DOUBLE)
    _penalised(verdict)
    assert "f(1): returned <int of 16610 bits>, expected 2" in verdict.reason


def test_a_hash_collision_set_is_refused_not_hashed_for_minutes(patient_verifier):
    problem = Problem("host/set", "", "", kind="code", tests={
        "format": "call", "fn": "f", "cases": [{"args": [0], "expected": {1, 2}}]})
    verdict = patient_verifier.verify(COLLIDING_SET, problem)
    _penalised(verdict)
    assert "malformed value" in verdict.reason


def test_each_batch_item_is_scored_on_its_own(verifier):
    responses = [CORRECT, NESTED_JSON, CORRECT, HUGE_ON_FLOATS, CORRECT, TOO_LONG_FOR_REPR,
                 CORRECT]
    problems = [DOUBLE, DOUBLE, DOUBLE, FLOATS, DOUBLE, DOUBLE, DOUBLE]
    verdicts = verifier.verify_batch(responses, problems)
    assert [v.status for v in verdicts] == [Status.CORRECT, Status.INCORRECT] * 3 + \
        [Status.CORRECT]
    assert all(v.usable for v in verdicts)


def test_bad_arguments_are_value_errors_and_nothing_else_raises(verifier):
    with pytest.raises(ValueError, match="must be a rlvr_gym.Problem"):
        verifier.verify(CORRECT, {"tests": DOUBLE.tests})
    with pytest.raises(ValueError, match="must be a str"):
        verifier.verify_batch([CORRECT, b"def f(x): return 2 * x"], [DOUBLE])


# -- item 12: a program cannot forge a pass -------------------------------------------------

SORTED = Problem("host/sorted", "", "", kind="code", tests={
    "format": "assert", "setup": "import math",
    "asserts": ["assert f([3, 1, 2]) == sorted([3, 1, 2])",
                "assert f([2, 1]) == list(reversed(range(1, 3)))[::-1]",
                "assert math.factorial(5) == f([120])[0] * 1"]})
SORT = "def f(xs):\n    return sorted(xs)\n"


FORGED_PASS = "send('{\"t\":\"result\",\"i\":%d,\"v\":[\"b\",true]}' % i)\n"


@pytest.mark.parametrize("forger", [
    # a verdict claimed for the whole assert, as the runner used to send it
    CHANNEL + "for i in range(3):\n    " + FORGED_PASS,
    # the same, then exit so that no genuine line follows
    CHANNEL + "for i in range(6):\n    " + FORGED_PASS + "os._exit(0)\n",
    # values claimed for the test's own side
    CHANNEL + "for i in range(6):\n    send('{\"t\":\"ref\",\"i\":%d,\"v\":[\"N\"]}' % i)\n"
    "def f(xs):\n    return None\n",
])
def test_writing_result_lines_does_not_forge_a_pass(verifier, forger):
    assert verifier.verify(SORT, SORTED).correct
    verdict = verifier.verify(forger + "def f(xs):\n    return []\n", SORTED)
    _penalised(verdict)


def test_forged_values_for_a_boolean_function_score_nothing(verifier):
    # Claiming True for every test, then exiting before the runner answers, would pass the
    # tests that expect True (as `return True` would); writing the lines is what it is judged
    # for: 0.
    problem = Problem("host/even", "", "", kind="code", tests={
        "format": "call", "fn": "is_even",
        "cases": [{"args": [2], "expected": True}, {"args": [3], "expected": False}]})
    verdict = verifier.verify(CHANNEL + "for i in range(2):\n    " + FORGED_PASS
                              + "os._exit(0)\n", problem)
    _penalised(verdict)
    assert "result channel" in verdict.reason


def test_patching_what_the_test_side_uses_does_not_forge_a_pass(verifier):
    cheat = "import math\nmath.factorial = lambda n: 0\ndef f(xs):\n    return [0]\n"
    problem = Problem("host/fact", "", "", kind="code", tests={
        "format": "assert", "setup": "import math",
        "asserts": ["assert f([5]) == [math.factorial(5)]"]})
    verdict = verifier.verify(cheat, problem)
    _penalised(verdict)
    assert "returned [0], expected [120]" in verdict.reason
    assert verifier.verify("def f(xs):\n    return [120]\n", problem).correct


def test_setup_runs_once_and_helpers_that_need_the_program_still_work(verifier):
    problem = Problem("host/setup", "", "", kind="code", tests={
        "format": "assert",
        "setup": "import random\nxs = [random.random() for _ in range(5)]\n"
                 "def ref(v):\n    return sorted(v)\n",
        "asserts": ["assert f(xs) == ref(xs)", "assert 0 < len(f(xs)) <= 5 != 6",
                    "assert not f([]) and f([1]) == [1]",
                    "for i in range(3):\n    assert f([i, -i]) == [-i, i]\n"
                    "assert all(a <= b for a, b in zip(f(xs), f(xs)[1:]))"]})
    assert verifier.verify(SORT, problem).correct
    wrong = verifier.verify("def f(xs):\n    return list(xs)\n", problem)
    assert (wrong.status, wrong.score) == (Status.INCORRECT, 0.0), wrong
    assert "failed before the tests" in wrong.reason  # the loop in the setup


def test_a_program_past_its_time_limit_in_a_batch_is_penalised_not_masked(verifier):
    looping = "def f(x):\n    while True:\n        pass\n"
    one_test = Problem("host/one", "", "", kind="code", tests={  # wall 1.5 s < CPU limit 2 s
        "format": "call", "fn": "f", "cases": [{"args": [1], "expected": 2}]})
    verdicts = verifier.verify_batch([looping, CORRECT], [one_test])
    assert [(v.status, v.usable) for v in verdicts] == [(Status.TIMEOUT, True),
                                                        (Status.CORRECT, True)]
