"""Every registered id keeps its data: the same config and index give the same problem.

The values below were recorded from the code before tasks registered themselves (commit
b4b952b), so that moving the tasks around is proven not to change a single problem, prompt,
spec or the `rlvr-gym envs` listing. A change that is meant to alter a task's data must
re-record them, and say so. (The listing was re-recorded when it gained each task's one-line
description in place of `task=NAME`; the ids and their order are those of b4b952b.)
`rlvr/ReasoningGym-v0`, added later, pins its entry point and listing only: its problems are
reasoning-gym's, which change with that package's version (tests/envs/test_reasoning_gym.py
checks them against reasoning-gym itself).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from typing import Any

import gymnasium as gym
import pytest

import rlvr_gym
from rlvr_gym.cli import main

#: (id, options of `gym.make`, digest of its first problems and prompts): every id with its
#: defaults, and each configurable task once with options.
DIGESTS: list[tuple[str, dict[str, Any], str]] = [
    ('rlvr/Arithmetic-v0', {}, '1722387bb2e03672'),
    ('rlvr/ArithmeticChain-v0', {}, 'fac2b5ef441a43d0'),
    ('rlvr/LinearEquation-v0', {}, '4f6f3ba48b63a030'),
    ('rlvr/Fractions-v0', {}, 'f1b99cc7f1425ed4'),
    ('rlvr/PolynomialRoots-v0', {}, '9cea64107fbb1f12'),
    ('rlvr/Countdown-v0', {}, 'cf658c9159b200d8'),
    ('rlvr/MathDataset-v0', {}, 'bd2035d06b75d676'),
    ('rlvr/CodeProblems-v0', {}, '2a90016c4bf53b37'),
    ('rlvr/CodeDataset-v0', {}, '53b08730fd4c9db6'),
    ('rlvr/Arithmetic-v0', {'max_digits': 3, 'max_operands': 5, 'seed': 1}, 'af42e72d032e0677'),
    ('rlvr/ArithmeticChain-v0', {'max_steps': 8, 'seed': 1}, 'b32341d7c4c6f10f'),
    ('rlvr/LinearEquation-v0', {'seed': 1, 'two_sided_probability': 0.9}, '9b3aed818cbc8ead'),
    ('rlvr/Fractions-v0', {'operators': '/', 'seed': 1}, 'aa0ad8181ef6ae07'),
    ('rlvr/PolynomialRoots-v0', {'max_degree': 5, 'seed': 1}, '49bfc6a975751d3f'),
    ('rlvr/Countdown-v0', {'max_numbers': 6, 'seed': 1}, '936848aaec3fd800'),
    ('rlvr/MathDataset-v0', {'limit': 5}, '4665be26532f4371'),
    ('rlvr/CodeProblems-v0', {'min_difficulty': 3}, 'e50b7125e673cd8e'),
    ('rlvr/CodeDataset-v0', {'preset': 'mbpp', 'show_tests': 2}, '86bfe0cc4f9c319a'),
]


def digest(env_id: str, options: dict[str, Any], count: int = 40) -> str:
    """Digest of `count` problems (every field) and their prompts, spread over the
    source's indices."""
    env = gym.make(env_id, **options)
    source = env.unwrapped.source
    step = max(1, len(source) // count)
    h = hashlib.sha256()
    for i in range(0, min(len(source), count * step), step):
        p = source[i]
        h.update(repr((p.id, p.question, p.answer, p.solution, p.kind, p.tests, p.difficulty,
                       sorted(p.meta.items()))).encode())
        _, info = env.reset(options={"problem_id": p.id})
        h.update(info["prompt"].encode())
    env.close()
    return h.hexdigest()[:16]


#: id -> (entry point, kwargs), in listing order
ENV_IDS: dict[str, tuple[str, dict[str, Any]]] = {
    'rlvr/Arithmetic-v0': ('rlvr_gym.envs.registry:make_task_env', {'task': 'arithmetic'}),
    'rlvr/ArithmeticChain-v0': ('rlvr_gym.envs.registry:make_task_env', {'task': 'chain'}),
    'rlvr/LinearEquation-v0': ('rlvr_gym.envs.registry:make_task_env', {'task': 'linear'}),
    'rlvr/Fractions-v0': ('rlvr_gym.envs.registry:make_task_env', {'task': 'fractions'}),
    'rlvr/PolynomialRoots-v0': ('rlvr_gym.envs.registry:make_task_env', {'task': 'roots'}),
    'rlvr/Countdown-v0': ('rlvr_gym.envs.registry:make_task_env', {'task': 'countdown'}),
    'rlvr/MathDataset-v0': ('rlvr_gym.envs.registry:make_task_env', {'task': 'dataset'}),
    'rlvr/CodeProblems-v0': ('rlvr_gym.envs.code_tasks:make_code_env', {'task': 'problems'}),
    'rlvr/CodeDataset-v0': ('rlvr_gym.envs.code_tasks:make_code_env', {'task': 'dataset'}),
    'rlvr/ReasoningGym-v0': ('rlvr_gym.envs.tasks.reasoning_gym:make_reasoning_gym_env',
                             {'task': 'chain_sum'}),
}
#: (id, question, answer) of problems 0 and 3 of each id's default source
PROBLEMS: dict[str, list[tuple[str, str, str]]] = {
    'rlvr/Arithmetic-v0':
    [('arithmetic/0/0', 'Compute 37 + 13 + 0.', '50'),
     ('arithmetic/0/3', 'Compute 72 + 38 * 62.', '2428')],
    'rlvr/ArithmeticChain-v0':
    [('chain/0/0',
      'Start with 6. Then subtract 3, then add 1, then add 1, then add 8. What is the result?',
      '13'),
     ('chain/0/3',
      'Start with 9. Then multiply by 8, then multiply by 4, then subtract 3. What is the '
      'result?',
      '285')],
    'rlvr/LinearEquation-v0':
    [('linear/0/0', 'Solve for x: 3x + 1 = -5x + 113', '14'),
     ('linear/0/3', 'Solve for x: 8x + 25 = 25', '0')],
    'rlvr/Fractions-v0':
    [('fractions/0/0',
      'Compute (7/11) - (2/7). Give the answer as a fraction in lowest terms.',
      '\\frac{27}{77}'),
     ('fractions/0/3',
      'Compute (6/7) * (5/6). Give the answer as a fraction in lowest terms.',
      '\\frac{5}{7}')],
    'rlvr/PolynomialRoots-v0':
    [('roots/0/0', 'Find all real roots of x^3 + 2x^2 - 3x = 0.', '-3, 0, 1'),
     ('roots/0/3', 'Find all real roots of x^3 - 14x^2 + 63x - 90 = 0.', '3, 5, 6')],
    'rlvr/Countdown-v0':
    [('countdown/0/0',
      'Using the numbers 16, 13, 7, 8, each exactly once, and + - * / with parentheses, make '
      '195.',
      '(7 + 16 - 8) * 13'),
     ('countdown/0/3',
      'Using the numbers 23, 24, 22, 18, each exactly once, and + - * / with parentheses, make '
      '5.',
      '24 + 22 - 23 - 18')],
    'rlvr/MathDataset-v0':
    [('file/0', 'What is the value of $3^4 - 2^5$?', '49'),
     ('file/3', 'Find all solutions of $x^2 - 7x + 10 = 0$.', '2, 5')],
    'rlvr/CodeProblems-v0':
    [('code/add',
      'Write a function `add(a, b)` that returns the sum of the integers a and b.',
      ''),
     ('code/reverse_string',
      'Write a function `reverse_string(s)` that returns the string s reversed.',
      '')],
    'rlvr/CodeDataset-v0':
    [('sample/1',
      'Write a function to return the square of every number in a list.\n'
      'Your code should pass tests like:\n'
      'assert square_all([1, 2, 3]) == [1, 4, 9]',
      ''),
     ('sample/4',
      'Write a function to check whether a list of numbers is sorted in non-decreasing order.\n'
      'Your code should pass tests like:\n'
      'assert is_sorted([1, 2, 2, 5])',
      '')],
}
#: `rlvr-gym envs`
LISTING = """\
rlvr/Arithmetic-v0       integer expressions; difficulty = digits and operands
rlvr/ArithmeticChain-v0  a start value and k operations, one step per line
rlvr/LinearEquation-v0   solve a x + b = c for x (sometimes x on both sides)
rlvr/Fractions-v0        fraction arithmetic, answer in lowest terms
rlvr/PolynomialRoots-v0  the integer roots of a polynomial; the answer is a set
rlvr/Countdown-v0        reach a target with the given numbers (many valid answers)
rlvr/MathDataset-v0      your math data (path= file or saved dataset, hub=, preset=) or a sample
rlvr/CodeProblems-v0     36 Python problems, difficulty 1-5, judged by their tests
rlvr/CodeDataset-v0      your MBPP/HumanEval/APPS-style data (path=, hub=, preset=) or a sample
rlvr/ReasoningGym-v0     any reasoning-gym dataset (task=...), scored by its score_answer
"""


def test_registered_ids_entry_points_and_kwargs_are_unchanged():
    assert rlvr_gym.ENV_IDS == ENV_IDS
    assert list(rlvr_gym.ENV_IDS) == list(ENV_IDS)  # the listing order
    for env_id, (entry_point, kwargs) in ENV_IDS.items():
        assert (gym.spec(env_id).entry_point, gym.spec(env_id).kwargs) == (entry_point, kwargs)


@pytest.mark.parametrize("env_id", list(PROBLEMS))
def test_pinned_problems_are_unchanged(env_id):
    env = gym.make(env_id)
    source = env.unwrapped.source
    got = [(source[i].id, source[i].question, source[i].answer) for i in (0, 3 % len(source))]
    env.close()
    assert got == PROBLEMS[env_id]


@pytest.mark.parametrize(("env_id", "options", "expected"), DIGESTS)
def test_problem_and_prompt_digests_are_unchanged(env_id, options, expected):
    assert digest(env_id, options) == expected


def test_envs_listing_is_unchanged():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["envs"]) == 0
    assert out.getvalue() == LISTING
