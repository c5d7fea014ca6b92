"""Code task sources, the file loader, the code env ids and multi-turn feedback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import rlvr_gym
from rlvr_gym import Status
from rlvr_gym.envs.code_tasks import (
    CodeFileConfig,
    CodeFileSource,
    apps_tests,
    humaneval_tests,
    make_code_env,
)
from rlvr_gym.envs.files import SkippedRowsWarning
from rlvr_gym.envs.registry import make_source
from rlvr_gym.envs.tasks.code_problems import CodeProblemsConfig, CodeProblemSource
from rlvr_gym.verifiers.code import CodeVerifier, CodeVerifierConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def verifier():
    with CodeVerifier(CodeVerifierConfig(workers=2)) as v:
        yield v


def test_there_are_at_least_30_problems_of_graded_difficulty():
    source = CodeProblemSource()
    assert len(source) >= 30
    assert {p.difficulty for p in source} == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert {p.tests["format"] for p in source} == {"stdio", "call", "assert"}
    assert len({p.id for p in source}) == len(source)
    assert [p.difficulty for p in source] == sorted(p.difficulty for p in source)


def test_every_reference_solution_passes_and_a_blank_program_fails(verifier):
    problems = list(CodeProblemSource()) + list(make_source("dataset", kind="code"))
    verdicts = verifier.verify_batch([p.solution for p in problems], problems)
    failing = {p.id: v.reason for p, v in zip(problems, verdicts, strict=True) if not v.correct}
    assert failing == {}
    blanks = verifier.verify_batch(["x = 0\n"] * len(problems), problems)
    assert not any(v.correct for v in blanks)


def test_difficulty_range_filters():
    easy = CodeProblemSource(CodeProblemsConfig(max_difficulty=2))
    assert len(easy) > 0 and all(p.difficulty <= 2 for p in easy)
    with pytest.raises(ValueError, match="min_difficulty"):
        CodeProblemSource(CodeProblemsConfig(min_difficulty=4, max_difficulty=2))


# -- file loader ---------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_mbpp_sample_ships_with_the_package():
    source = make_source("dataset", kind="code")
    assert len(source) == 5
    p = source[source.index_of("sample/1")]
    assert "square_all([1, 2, 3])" in p.question  # one test shown, so the name is known
    assert p.tests["format"] == "assert" and len(p.tests["asserts"]) == 3
    assert p.solution.startswith("```python\n")


def test_humaneval_check_runs_whole_so_asserts_inside_loops_count(tmp_path, verifier):
    test_code = ("METADATA = {'author': 'x'}\n\ndef check(candidate):\n    import math\n"
                 "    assert candidate(2) == 4\n"
                 "    for i in range(3):\n        assert candidate(i) == i * i\n")
    tests = humaneval_tests(test_code, "square", "def square(x):\n")
    assert tests == {"format": "program", "test": test_code.rstrip() + "\n\ncheck(square)\n",
                     "preamble": "def square(x):\n"}
    row = {"task_id": "HE/0", "prompt": "def square(x):\n    \"\"\"Square x.\"\"\"\n",
           "canonical_solution": "    return x * x\n", "test": test_code,
           "entry_point": "square"}
    source = CodeFileSource.from_preset(write_jsonl(tmp_path / "he.jsonl", [row]), "humaneval")
    problem = source[0]
    assert problem.id == "HE/0"
    assert verifier.verify(problem.solution, problem).correct
    # Right at 2 (the top-level assert), wrong at 1 (inside the loop): fails.
    assert not verifier.verify("def square(x):\n    return x * 2\n", problem).correct
    with pytest.raises(ValueError, match="defines no check"):
        humaneval_tests("assert square(2) == 4\n", "square")


def test_apps_rows_give_stdio_or_call_tests(tmp_path, verifier):
    stdio_row = {"problem_id": 7, "question": "Print the sum of two numbers.",
                 "input_output": json.dumps({"inputs": ["1 2\n", ["3 4"]],
                                             "outputs": ["3\n", ["7"]]}),
                 "solutions": json.dumps(["print(sum(map(int, input().split())))"]),
                 "difficulty": "introductory"}
    call_row = {"problem_id": 8, "question": "Return the pair (a, b) sorted.",
                "input_output": {"fn_name": "pair", "inputs": [[2, 1], [1, 3]],
                                 "outputs": [[[1, 2]], [[1, 3]]]},
                "solutions": "[]", "difficulty": "interview"}
    source = CodeFileSource.from_preset(write_jsonl(tmp_path / "apps.jsonl",
                                                    [stdio_row, call_row]), "apps")
    stdio, call = source[0], source[1]
    assert stdio.tests["cases"][1] == {"input": "3 4", "output": "7"}
    assert (stdio.difficulty, call.difficulty) == (1.0, 2.0)
    assert call.tests["fn"] == "pair" and call.tests["cases"][0]["expected"] == [1, 2]
    assert verifier.verify(stdio.solution, stdio).correct
    # JSON has no tuples: a returned tuple counts as a list for APPS call tests.
    assert verifier.verify("def pair(a, b):\n    return tuple(sorted((a, b)))\n", call).correct
    assert call.solution == ""


def test_native_rows_and_field_overrides(tmp_path):
    rows = [{"name": "n1", "statement": "Echo the input.",
             "checks": {"format": "stdio", "cases": [{"input": "x", "output": "x"}]}},
            {"name": "n2", "statement": "", "checks": {"format": "stdio", "cases": []}}]
    config = CodeFileConfig(path=write_jsonl(tmp_path / "n.jsonl", rows),
                            question_field="statement", tests_field="checks",
                            tests_format="native", id_field="name", solution_field=None)
    with pytest.warns(SkippedRowsWarning, match="skipped 1 of 2 rows.* row 1: no question"):
        source = CodeFileSource(config)
    assert [p.id for p in source] == ["n1"]
    assert source.skipped == 1


def test_loader_errors_say_how_to_fix(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"text": "q", "test_list": "not python ("}])
    with pytest.raises(ValueError, match="no usable problems.*field names"):
        CodeFileSource.from_preset(path, "mbpp")
    with pytest.raises(ValueError, match="unknown code preset"):
        CodeFileSource.from_preset(path, "leetcode")
    with pytest.raises(ValueError, match="entry_point_field"):
        CodeFileConfig(path=path, tests_format="check").validate()
    with pytest.raises(ValueError, match="equally long"):
        apps_tests({"inputs": ["1"], "outputs": []})
    with pytest.raises(ValueError, match=r"unknown code task 'contest'; choose one of "
                                         r"\['dataset', 'problems'\]"):
        make_source("contest", kind="code")


# -- envs ------------------------------------------------------------------------------------


def test_code_ids_are_registered_and_make_without_arguments():
    for env_id in ("rlvr/CodeProblems-v0", "rlvr/CodeDataset-v0"):
        assert env_id in rlvr_gym.ENV_IDS
        env = gym.make(env_id)
        obs, info = env.reset(seed=0)
        assert "```python" in obs and info["question"] in obs
        env.close()


def test_garbage_actions_are_judged_without_starting_the_sandbox():
    env = make_code_env()
    env.reset(seed=1)
    _, reward, terminated, _, info = env.step("}}{{ \x00 ¿? lorem ipsum")
    assert (reward, terminated, info["verdict"].status) == (0.0, True, Status.NO_ANSWER)
    assert env.verifier._pool is None
    env.close()


def test_multi_turn_feeds_the_test_counts_back_then_terminates_on_success(verifier):
    env = make_code_env(verifier=verifier, max_attempts=3)
    obs, info = env.reset(options={"problem_id": "code/add"})
    wrong = "```python\ndef add(a, b):\n    return a - b\n```"
    obs, reward, terminated, truncated, _ = env.step(wrong)
    assert (terminated, truncated) == (False, False)
    assert reward == 0.0
    assert "That program is incorrect: 0 of 3 tests passed." in obs and "expected" not in obs
    assert obs.endswith("corrected program in a ```python code block.\n")
    obs, reward, terminated, truncated, step_info = env.step(info["solution"])
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert step_info["attempt"] == 2


def test_multi_turn_is_truncated_when_attempts_run_out(verifier):
    env = make_code_env(verifier=verifier, max_attempts=2)
    env.reset(options={"problem_id": "code/shout"})
    results = [env.step("```python\nprint(input())\n```")[2:4] for _ in range(2)]
    assert results == [(False, False), (False, True)]


def test_example_runs_in_smoke_mode():
    completed = subprocess.run([sys.executable, str(ROOT / "examples" / "03_code_env.py"),
                                "--smoke"], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "reward=1.00" in completed.stdout
