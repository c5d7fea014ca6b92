"""Multi-turn code feedback never hands out the scoring tests' expected values: an agent that
only reads the feedback and answers with a lookup table of the values it revealed solves
nothing by default, and everything with the tutorial switch `reveal_tests=True`."""

from __future__ import annotations

import ast
import re

import pytest

from rlvr_gym import Status, Verdict
from rlvr_gym.envs.code_tasks import code_feedback, make_code_env
from rlvr_gym.verifiers.code import CodeVerifier, CodeVerifierConfig

ATTEMPTS = 4
# What the code verifier's reasons say about a failing test: `f(args): returned X, expected Y`
# (call and assert tests) or `input 'text': printed X, expected 'text'` (stdin/stdout tests).
_END = r"(?=; (?:\w+\(|input '|and \d+ more)|\.\n|$)"
CALL = re.compile(r"(\w+)\(([^()]*)\)(?: == [^:]*)?: returned .*?, expected (.+?)" + _END)
STDIO = re.compile(r"input ('(?:[^'\\]|\\.)*'): printed .*?, expected ('(?:[^'\\]|\\.)*')")


def lookup_program(question: str, calls: dict[str, str], stdio: dict[str, str]) -> str:
    """A program that knows nothing but a table: the function named in the question returns
    the value recorded for its arguments, and stdin is answered from the stdio table."""
    names = set(re.findall(r"`(\w+)\(", question))
    functions = "".join(
        f"def {name}(*args):\n    return CALLS.get(', '.join(map(repr, args)))\n"
        for name in sorted(names))
    table = ", ".join(f"{args!r}: {value}" for args, value in calls.items())
    return (f"```python\nimport sys\nCALLS = {{{table}}}\nSTDIO = {stdio!r}\n{functions}"
            "if STDIO:\n    sys.stdout.write(STDIO.get(sys.stdin.read(), ''))\n```")


def learn_from_feedback(feedback: str, calls: dict[str, str], stdio: dict[str, str]) -> None:
    for _, args, expected in CALL.findall(feedback):
        try:
            ast.literal_eval(expected)
        except (ValueError, SyntaxError):
            continue  # cut short by the verifier: not usable
        calls[args] = expected
    for given, expected in STDIO.findall(feedback):
        stdio[ast.literal_eval(given)] = ast.literal_eval(expected)


def lookup_table_attack(env) -> int:
    """Problems solved by an agent whose only knowledge is the env's feedback."""
    solved = 0
    for index in range(len(env.source)):
        obs, info = env.reset(options={"index": index})
        calls: dict[str, str] = {}
        stdio: dict[str, str] = {}
        for _ in range(ATTEMPTS):
            program = lookup_program(info["question"], calls, stdio)
            obs, reward, terminated, truncated, _ = env.step(program)
            if terminated or truncated:
                solved += reward == 1.0
                break
            learn_from_feedback(obs[obs.rindex(program) + len(program):], calls, stdio)
    return solved


@pytest.fixture(scope="module")
def verifier():
    with CodeVerifier(CodeVerifierConfig(workers=2)) as v:
        yield v


def test_the_lookup_table_attack_solves_nothing_by_default(verifier):
    env = make_code_env(verifier=verifier, max_attempts=ATTEMPTS)
    assert lookup_table_attack(env) == 0


def test_the_tutorial_switch_shows_the_failing_tests_with_their_values(verifier):
    env = make_code_env(verifier=verifier, max_attempts=ATTEMPTS, reveal_tests=True)
    # the attack is real: with the values shown, the table passes most problems
    assert lookup_table_attack(env) >= 0.8 * len(env.source)
    env.reset(options={"problem_id": "code/add"})
    obs = env.step("```python\ndef add(a, b):\n    return a - b\n```")[0]
    assert "add(1, 2): returned -1, expected 3" in obs


@pytest.mark.parametrize("reason, shown", [
    ("0/3 tests passed; failed: add(1, 2): returned None, expected 3; and 2 more",
     "That program is incorrect: 0 of 3 tests passed."),
    ("1/2 tests passed; the program stopped before all tests ran (stderr: ValueError: x); "
     "failed: input '2\\n': printed '', expected '4\\n'",
     "That program is incorrect: 1 of 2 tests passed; the program stopped before all tests "
     "ran (stderr: ValueError: x)."),
    ("syntax error: invalid syntax", "That program is incorrect: syntax error: invalid syntax."),
    ("2/3 tests passed; something new: 5; failed: f(1) == 5: returned 4, expected 5",
     "That program is incorrect: 2 of 3 tests passed."),
])
def test_feedback_keeps_counts_and_the_programs_own_failure_only(reason, shown):
    text = code_feedback(Verdict(Status.INCORRECT, 0.0, "code", reason))
    assert text.startswith(f"\n{shown}\n")
    assert "expected" not in text


def test_a_verifier_failure_is_not_blamed_on_the_program():
    text = code_feedback(Verdict(Status.ERROR, 0.0, None, "sandbox failed: expected 3"))
    assert "not judged" in text and "3" not in text
