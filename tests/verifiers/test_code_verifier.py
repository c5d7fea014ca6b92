"""CodeVerifier: extraction, the four test formats, completions, statuses and the batch API."""

from __future__ import annotations

import pytest

from rlvr_gym import Problem, Status
from rlvr_gym.verifiers.code import (
    CodeVerifier,
    CodeVerifierConfig,
    extract_code,
    outputs_match,
    parse_tests,
    strict_equal,
)
from rlvr_gym.verifiers.sandbox import SandboxConfig


@pytest.fixture(scope="module")
def verifier():
    with CodeVerifier(CodeVerifierConfig(test_timeout_s=1.0, workers=2)) as v:
        yield v


def call_problem(fn="f", cases=((1, 2), (5, 10)), **extra):
    return Problem("t/call", "", "", kind="code", tests={
        "format": "call", "fn": fn, **extra,
        "cases": [{"args": [a], "expected": e} for a, e in cases]})


# -- extraction ------------------------------------------------------------------------------


def test_extracts_the_last_python_block():
    response = ("First try:\n```python\nx = 1\n```\nBetter:\n```py\nx = 2\n```\n"
                "Output:\n```text\n2\n```\n")
    assert extract_code(response) == "x = 2\n"


def test_untagged_block_counts_and_no_block_means_the_whole_response():
    assert extract_code("```\nprint(1)\n```") == "print(1)\n"
    assert extract_code("def f(x):\n    return x\n") == "def f(x):\n    return x\n"
    assert extract_code("   \n") is None


# -- comparisons (host side) ----------------------------------------------------------------


@pytest.mark.parametrize("got, expected, equal", [
    (2, 2, True), (True, 1, False), (1, True, False), (2.0, 2, False), ([1, 2], (1, 2), False),
    ((1, [2]), (1, [2]), True), ({"a": 1}, {"a": 1}, True), ({1: "x"}, {True: "x"}, False),
    ({1, 2}, {2, 1}, True), ({1}, frozenset({1}), False), (float("nan"), float("nan"), True),
    (None, None, True), ("1", 1, False),
])
def test_strict_equal_requires_identical_types(got, expected, equal):
    assert strict_equal(got, expected) is equal


def test_strict_equal_options():
    assert strict_equal(0.1 + 0.2, 0.3, float_tol=1e-9)
    assert not strict_equal(0.1 + 0.2, 0.3)
    assert strict_equal((1, (2, 3)), [1, [2, 3]], json_values=True)


@pytest.mark.parametrize("got, expected, tol, equal", [
    ("3\n", "3", None, True),
    ("  1   2 \n\n\n", "1 2\n", None, True),
    ("1 2\n", "1\n2\n", None, False),
    ("1.0000001\n", "1.0", 1e-6, True),
    ("1.0000001\n", "1.0", None, False),
    ("abc 1.5", "abc 1.5000000001", 1e-6, True),
    ("abc", "abd", 1e-6, False),
    ("", "0", None, False),
])
def test_stdout_comparison_normalises_whitespace(got, expected, tol, equal):
    assert outputs_match(got, expected, tol) is equal


# -- test parsing ----------------------------------------------------------------------------


def test_assert_tests_keep_literal_expected_values_out_of_the_payload():
    suite = parse_tests({"format": "assert", "setup": "import math",
                         "asserts": ["assert f(3) == 'SECRET-9'", "assert 'SECRET-7' != f(1)",
                                     "assert not g(2)", "assert h(1) in ['SECRET-5', 'x']",
                                     "assert math.isclose(f(2), f(1))"]})
    payload = str(suite.payload)
    assert "SECRET" not in payload
    assert [c["expr"] for c in suite.payload["cases"]] == [
        "f(3)", "f(1)", "g(2)", "h(1)", "f(2)", "f(1)"]
    assert [c.cond for c in suite.checks] == [
        ("cmp", ("==",), (("run", 0), ("lit", "SECRET-9"))),
        ("cmp", ("!=",), (("lit", "SECRET-7"), ("run", 1))),
        ("not", ("truth", ("run", 2))),
        ("cmp", ("in",), (("run", 3), ("lit", ["SECRET-5", "x"]))),
        ("isclose", {}, (("run", 4), ("run", 5)))]
    assert suite.payload["setup"] == ["import math"]


def test_float_asserts_are_split_too():
    suite = parse_tests({"format": "assert", "asserts": [
        "assert math.isclose(area(2), 12.566, rel_tol=1e-3)",
        "assert abs(area(1) - 3.14159) < 1e-4", "assert abs(area(1) - area(2)) < 10"]})
    assert [c["expr"] for c in suite.payload["cases"]] == [
        "area(2)", "area(1)", "area(1)", "area(2)"]
    assert [c.cond[0] for c in suite.checks] == ["isclose", "abs_diff", "abs_diff"]
    assert "12.566" not in str(suite.payload) and "3.14159" not in str(suite.payload)


def test_statements_other_than_asserts_become_setup():
    suite = parse_tests({"format": "assert",
                         "asserts": ["import math\nassert f(1) == 1\nfor i in range(3):\n"
                                     "    assert f(i) >= 0"]})
    assert len(suite.checks) == 1
    assert suite.payload["setup"] == ["import math", "for i in range(3):\n    assert f(i) >= 0"]


@pytest.mark.parametrize("tests, message", [
    (None, "format"),
    ({"format": "call", "cases": []}, "non-empty 'cases'"),
    ({"format": "call", "fn": "1x", "cases": [{"args": [], "expected": 1}]}, "function's name"),
    ({"format": "call", "fn": "f", "cases": [{"args": [object()], "expected": 1}]},
     "plain data"),
    ({"format": "stdio", "cases": [{"input": 1, "output": "x"}]}, "'input': str"),
    ({"format": "assert", "asserts": ["assert ("]}, "not valid Python"),
    ({"format": "assert", "asserts": ["x = 1"]}, "no assert"),
    ({"format": "stdio", "float_tol": -1, "cases": [{"input": "", "output": ""}]},
     "non-negative"),
    ({"format": "program"}, "program tests need 'test'"),
    ({"format": "program", "test": "check(f"}, "'test' is not valid Python"),
    ({"format": "program", "test": "check(f)", "preamble": 3}, "'preamble' must be a string"),
    ({"format": "call", "fn": "f", "cases": [{"args": [], "expected": 1}], "prompt": [1]},
     "'prompt' must be the program text"),
])
def test_bad_tests_say_what_to_fix(tests, message):
    with pytest.raises(ValueError, match=message):
        parse_tests(tests)


# -- verdicts --------------------------------------------------------------------------------


def test_correct_program_in_a_fenced_block(verifier):
    verdict = verifier.verify("Here:\n```python\ndef f(x):\n    return 2 * x\n```", call_problem())
    assert (verdict.status, verdict.score) == (Status.CORRECT, 1.0)
    assert verdict.reason == "2/2 tests passed"


def test_score_is_the_fraction_of_tests_passed(verifier):
    problem = call_problem(cases=((1, 2), (2, 4), (3, 6), (4, 9)))
    verdict = verifier.verify("def f(x):\n    return 2 * x\n", problem)
    assert (verdict.status, verdict.score) == (Status.INCORRECT, 0.75)
    assert "f(4): returned 8, expected 9" in verdict.reason


def test_no_code_is_no_answer_and_a_broken_block_is_incorrect(verifier):
    assert verifier.verify("I would loop over the list.", call_problem()).status \
        is Status.NO_ANSWER
    verdict = verifier.verify("```python\ndef f(x:\n```", call_problem())
    assert verdict.status is Status.INCORRECT
    assert "syntax error" in verdict.reason


def test_responses_without_code_never_start_the_sandbox():
    v = CodeVerifier()
    for garbage in ("}}{{\\boxed{ \x00 ¿?", "", "the answer is 42", "```python\n(\n```"):
        assert v.verify(garbage, call_problem()).status in (Status.NO_ANSWER, Status.INCORRECT)
    assert v._pool is None


def test_missing_function_and_exceptions_fail_their_tests(verifier):
    assert "defines no function 'f'" in verifier.verify("def g(x):\n    return x\n",
                                                       call_problem()).reason
    verdict = verifier.verify("def f(x):\n    return 10 // (x - 1)\n", call_problem())
    assert verdict.score == 0.0
    assert "ZeroDivisionError" in verdict.reason


def test_all_tests_of_a_candidate_run_in_one_process(verifier):
    program = "calls = []\ndef f(x):\n    calls.append(x)\n    return len(calls)\n"
    problem = call_problem(cases=((7, 1), (7, 2), (7, 3)))
    assert verifier.verify(program, problem).correct


def test_kwargs_and_tuples_cross_the_boundary_exactly(verifier):
    problem = Problem("t/kw", "", "", kind="code", tests={
        "format": "call", "fn": "pair", "cases": [
            {"args": [1], "kwargs": {"b": (2, 3)}, "expected": (1, (2, 3))},
            {"args": [{"k": {4}}], "kwargs": {"b": None}, "expected": ({"k": {4}}, None)}]})
    assert verifier.verify("def pair(a, b=0):\n    return (a, b)\n", problem).correct
    assert not verifier.verify("def pair(a, b=0):\n    return [a, b]\n", problem).correct


def test_stdio_tests_with_float_tolerance(verifier):
    problem = Problem("t/io", "", "", kind="code", tests={
        "format": "stdio", "float_tol": 1e-6,
        "cases": [{"input": "2\n", "output": "1.4142135\n"}, {"input": "9\n", "output": "3"}]})
    verdict = verifier.verify("x = float(input())\nprint(f'{x ** 0.5:.9f}')\n", problem)
    assert verdict.correct, verdict.reason


def test_stdio_program_that_crashes_after_printing_fails(verifier):
    problem = Problem("t/io2", "", "", kind="code", tests={
        "format": "stdio", "cases": [{"input": "", "output": "ok"}]})
    assert verifier.verify("print('ok')", problem).correct
    verdict = verifier.verify("print('ok')\nraise RuntimeError('late')", problem)
    assert not verdict.correct
    assert "exited with status 1" in verdict.reason


def test_assert_tests_compare_in_the_host(verifier):
    problem = Problem("t/assert", "", "", kind="code", tests={
        "format": "assert", "setup": "import math",
        "asserts": ["assert f(2) == 4", "assert not f(0)", "assert f(3) > 8",
                    "assert math.isclose(f(0.5), 0.25)", "assert (1, 1) == g()"]})
    good = "def f(x):\n    return x * x\ndef g():\n    return (1, 1)\n"
    assert verifier.verify(good, problem).correct
    verdict = verifier.verify("def f(x):\n    return x + x\ndef g():\n    return [1, 1]\n",
                              problem)
    assert verdict.score == pytest.approx(2 / 5)


def test_float_asserts_are_judged_in_the_host(verifier):
    problem = Problem("t/float", "", "", kind="code", tests={
        "format": "assert", "setup": "import math",
        "asserts": ["assert math.isclose(area(2), 12.566, rel_tol=1e-3)",
                    "assert abs(area(1) - 3.14159) < 1e-4"]})
    assert verifier.verify("import math\ndef area(r):\n    return math.pi * r * r\n",
                           problem).correct
    cheat = "import math\nmath.isclose = lambda *a, **k: True\ndef area(r):\n    return 0\n"
    assert verifier.verify(cheat, problem).score == 0.0
    assert "expected about 12.566" in verifier.verify(cheat, problem).reason


def test_redefining_builtins_does_not_fool_whole_expression_asserts(verifier):
    problem = Problem("t/builtins", "", "", kind="code", tests={
        "format": "assert", "asserts": ["assert abs(f(1) - f(2)) > 5", "assert len(g()) == 3"]})
    cheat = ("import builtins\nabs = lambda x: 99\nbuiltins.len = lambda x: 3\n"
             "def f(x):\n    return x\ndef g():\n    return []\n")
    assert verifier.verify(cheat, problem).score == 0.0
    honest = "def f(x):\n    return 10 * x\ndef g():\n    return [1, 2, 3]\n"
    assert verifier.verify(honest, problem).correct


def test_timeout_is_its_own_status_keeps_partial_credit_and_is_not_masked():
    config = CodeVerifierConfig(test_timeout_s=0.3, load_timeout_s=0.5, workers=1,
                                sandbox=SandboxConfig(bubblewrap="never"))
    with CodeVerifier(config) as v:
        program = "def f(x):\n    while x == 5:\n        pass\n    return 2 * x\n"
        verdict = v.verify(program, call_problem(cases=((1, 2), (5, 10), (3, 6))))
    assert verdict.status is Status.TIMEOUT
    assert verdict.score == pytest.approx(1 / 3)
    assert verdict.usable  # the program's fault: agents must learn from it, not mask it


def test_a_sandbox_that_cannot_start_is_an_error_not_a_wrong_answer():
    broken = CodeVerifierConfig(sandbox=SandboxConfig(python="/bin/false", bubblewrap="never",
                                                      drop_privileges=False))
    with CodeVerifier(broken) as v:
        verdict = v.verify("def f(x):\n    return 2 * x\n", call_problem())
        batch = v.verify_batch(["def f(x):\n    return 2 * x\n", "no code"], [call_problem()])
    assert verdict.status is Status.ERROR
    assert "sandbox" in verdict.reason
    assert [b.status for b in batch] == [Status.ERROR, Status.NO_ANSWER]


def test_a_problem_with_unusable_tests_is_an_error(verifier):
    bad = Problem("t/bad", "", "", kind="code", tests={"format": "call", "cases": []})
    verdict = verifier.verify("def f(x):\n    return x\n", bad)
    assert verdict.status is Status.ERROR
    assert "t/bad" in verdict.reason


def test_verify_batch_keeps_order_and_mixes_fast_and_sandboxed_verdicts(verifier):
    problems = [call_problem(), call_problem(cases=((3, 9),))]
    responses = ["def f(x):\n    return 2 * x\n", "def f(x):\n    return x * x\n",
                 "no code here", "```python\nsyntax(\n```"]
    verdicts = verifier.verify_batch(responses, problems * 2)
    assert [v.status for v in verdicts] == [Status.CORRECT, Status.CORRECT, Status.NO_ANSWER,
                                            Status.INCORRECT]
    shared = verifier.verify_batch(responses[:2], [call_problem()])
    assert [v.score for v in shared] == [1.0, 0.0]
    with pytest.raises(ValueError, match="one problem per response"):
        verifier.verify_batch(responses, problems)


def test_config_validation_says_how_to_fix():
    with pytest.raises(ValueError, match="test_timeout_s must be positive"):
        CodeVerifier(CodeVerifierConfig(test_timeout_s=0))
    with pytest.raises(ValueError, match="workers"):
        CodeVerifier(CodeVerifierConfig(workers=0))


# -- test programs (HumanEval's harness) and completions -------------------------------------

# HumanEval/38's shape: the only assert sits inside a loop, and the check calls a helper
# (encode) that the task's prompt defines.
LOOP_CHECK = """
def check(candidate):
    for n in range(1, 30):
        s = "abcdefghijklmnopqrstuvwxyz"[:n]
        assert candidate(encode(s)) == s

check(decode)
"""
PREAMBLE = 'def encode(s):\n    return s[1:] + s[:1]\n\ndef decode(s):\n    """Undo encode."""\n'


def program_problem(**extra):
    return Problem("t/program", "", "", kind="code", tests={
        "format": "program", "test": LOOP_CHECK, "preamble": PREAMBLE, **extra})


def test_a_test_program_counts_the_asserts_inside_its_loops(verifier):
    problem = program_problem()
    right = "def decode(s):\n    return s[-1:] + s[:-1]\n"  # encode comes from the preamble
    verdict = verifier.verify(right, problem)
    assert (verdict.status, verdict.score, verdict.reason) == (Status.CORRECT, 1.0,
                                                               "1/1 tests passed")
    # Right for the first 12 iterations of the loop only: the loop's later asserts fail it.
    short = "def decode(s):\n    return s[-1:] + s[:-1] if len(s) <= 12 else s\n"
    verdict = verifier.verify(short, problem)
    assert (verdict.status, verdict.score) == (Status.INCORRECT, 0.0)
    assert verdict.reason == "0/1 tests passed; failed: the test program: raised " \
                             "'AssertionError: '"


def test_the_program_replaces_the_preamble_and_the_test_program_keeps_the_builtins(verifier):
    problem = program_problem()
    # The preamble's stub `decode` (it returns None) loses to the program's.
    assert not verifier.verify("x = 1\n", problem).correct
    cheat = ("import builtins\nbuiltins.AssertionError = None\nbuiltins.range = "
             "lambda *a: []\ndef decode(s):\n    return ''\n")
    assert verifier.verify(cheat, problem).score == 0.0
    exits = "import sys\ndef decode(s):\n    sys.exit(0)\n"
    assert "SystemExit" in verifier.verify(exits, problem).reason


def test_a_completion_continues_the_prompt_verbatim(verifier):
    problem = program_problem(prompt=PREAMBLE, preamble="")
    assert verifier.verify("    return s[-1:] + s[:-1]\n", problem).correct
    wrong = verifier.verify("    return s\n", problem)
    assert (wrong.status, wrong.extracted) == (Status.INCORRECT,
                                               PREAMBLE + "    return s\n")
    # A whole program in a fenced block is not a completion: it does not parse after the
    # prompt, and no block is looked for.
    fenced = "```python\ndef decode(s):\n    return s[-1:] + s[:-1]\n```"
    verdict = verifier.verify(fenced, problem)
    assert verdict.status is Status.INCORRECT and verdict.reason.startswith("syntax error")
    assert verifier.verify("  \n", problem).status is Status.NO_ANSWER
    calls = call_problem(prompt="def f(x):\n")
    assert verifier.verify("    return 2 * x\n", calls).correct
