"""A task is one file: its module's `register_task` call is all it takes for `gym.make`, the
`rlvr-gym envs` listing and `make_source` to know it, for math and code tasks alike."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import pytest

import rlvr_gym
from rlvr_gym.cli import main
from rlvr_gym.envs.registry import make_source
from rlvr_gym.envs.sources import ProceduralSource
from rlvr_gym.registration import register_task
from rlvr_gym.verifiers.code import CodeVerifier
from rlvr_gym.verifiers.countdown import CountdownVerifier
from rlvr_gym.verifiers.math import MathVerifier

HERE = Path(__file__).parent


def test_a_math_task_in_one_file_is_made_listed_and_configured(local_tasks):
    env = gym.make("digit_sum:rlvr/DigitSum-v0", min_digits=6, max_digits=6)
    assert rlvr_gym.ENV_IDS["rlvr/DigitSum-v0"] == ("rlvr_gym.envs.registry:make_task_env",
                                                   {"task": "digit_sum"})
    assert isinstance(env.unwrapped.verifier, MathVerifier)
    _, info = env.reset(seed=0)
    number = info["question"].removeprefix("What is the sum of the digits of ").rstrip("?")
    assert len(number) == 6 and info["answer"] == str(sum(map(int, number)))
    assert env.step(info["solution"])[1] == 1.0
    env.close()
    assert make_source("digit_sum", seed=3)[5].id == "digit_sum/3/5"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["envs"])
    assert out.getvalue().splitlines()[-1].split(None, 1) == [
        "rlvr/DigitSum-v0", "the sum of the digits of a number"]


def test_a_code_task_takes_the_same_path(local_tasks):
    env = gym.make("affine_code:rlvr/AffineCode-v0", max_coefficient=3)
    assert rlvr_gym.ENV_IDS["rlvr/AffineCode-v0"] == ("rlvr_gym.envs.code_tasks:make_code_env",
                                                     {"task": "affine"})
    assert isinstance(env.unwrapped.verifier, CodeVerifier)
    obs, info = env.reset(seed=0)
    assert "```python" in obs and info["problem"].kind == "code"
    assert env.step(info["solution"])[1] == 1.0
    env.reset(seed=0)
    assert env.step("```python\ndef f(x):\n    return x\n```")[1] == 0.0
    env.close()


def test_a_task_may_bring_its_own_default_verifier():
    assert isinstance(gym.make("rlvr/Countdown-v0").unwrapped.verifier, CountdownVerifier)
    passed = MathVerifier()
    assert gym.make("rlvr/Countdown-v0", verifier=passed).unwrapped.verifier is passed


def test_unknown_options_and_tasks_are_errors_that_list_the_valid_ones(local_tasks):
    with pytest.raises(ValueError, match=r"unknown digit_sum options \['digits'\]; valid: "
                                         r"\['max_digits', 'min_digits', 'seed', 'size'\]"):
        gym.make("digit_sum:rlvr/DigitSum-v0", digits=3)
    with pytest.raises(ValueError, match=r"need 2 <= min_digits"):
        gym.make("digit_sum:rlvr/DigitSum-v0", min_digits=5, max_digits=3)
    with pytest.raises(ValueError, match=r"unknown math task 'digits'; choose one of \["):
        make_source("digits")


@dataclass(frozen=True)
class _Options:
    pass


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    (("rlvr/Arithmetic-v0", "sums", ProceduralSource, _Options), {},
     "rlvr/Arithmetic-v0 is already registered; give the new task another id"),
    (("rlvr/Sums-v0", "arithmetic", ProceduralSource, _Options), {},
     "the math task name 'arithmetic' is taken by rlvr/Arithmetic-v0"),
    (("rlvr/Sums-v0", "sums", ProceduralSource, _Options), {"kind": "prose"},
     "kind must be one of"),
    (("rlvr/Sums-v0", "sums", ProceduralSource, dict), {}, "config must be a dataclass"),
    (("rlvr/Sums-v0", "sums", ProceduralSource, _Options), {"description": "sums\nof two"},
     "description must be one line"),
])
def test_register_task_refuses_a_taken_id_or_name_and_changes_nothing(args, kwargs, message):
    before = dict(rlvr_gym.ENV_IDS)
    with pytest.raises(ValueError, match=message):
        register_task(*args, **kwargs)
    assert before == rlvr_gym.ENV_IDS and "rlvr/Sums-v0" not in gym.registry


def test_make_through_the_module_prefix_registers_without_torch():
    code = ("import sys, gymnasium as gym\n"
            "env = gym.make('rlvr_gym:rlvr/CodeProblems-v0')\n"
            "import rlvr_gym\n"
            "print(env.reset(seed=0)[1]['problem_id'], len(rlvr_gym.ENV_IDS),\n"
            "      'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[1:] == ["10", "False"] and out[0].startswith("code/")


def test_the_worked_examples_of_the_docs_are_the_tested_task_files():
    doc = (HERE.parents[1] / "docs" / "adding_a_task.md").read_text()
    files = "".join(path.read_text() for path in (HERE / "local_tasks").glob("*.py"))
    chunks = [chunk.strip() for block in re.findall(r"```python\n(.*?)```", doc, re.S)
              if "class " in block or "register_task(" in block
              for chunk in block.split("\n\n")
              if not all(line.startswith(("from ", "import ")) for line in chunk.splitlines())]
    assert len(chunks) >= 6
    assert [chunk for chunk in chunks if chunk not in files] == []
