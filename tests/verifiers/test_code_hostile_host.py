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
from rlvr_gym.verifiers.sandbox import SandboxConfig

DOUBLE = Problem("host/double", "double x", "", kind="code", tests={
    "format": "call", "fn": "f",
    "cases": [{"args": [1], "expected": 2}, {"args": [5], "expected": 10}]})
CORRECT = "def f(x):\n    return 2 * x\n"


@pytest.fixture(scope="module", params=["bubblewrap", "plain"])
def verifier(request):
    import shutil

    if request.param == "bubblewrap" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    sandbox = SandboxConfig(bubblewrap="always" if request.param == "bubblewrap" else "never",
                            cpu_time_s=2, memory_mb=256, max_processes=16)
    with CodeVerifier(CodeVerifierConfig(test_timeout_s=0.5, load_timeout_s=1.0, workers=2,
                                         sandbox=sandbox)) as v:
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
