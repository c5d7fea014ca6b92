"""`rlvr/ReasoningGym-v0` over a sample of reasoning-gym's datasets: made by name, scored by
the dataset's own `score_answer`, reproducible by seed. (The registry conformance suite,
test_registry_envs.py, runs on the id's default dataset.)"""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import pytest

import rlvr_gym  # noqa: F401  (registers the ids)
from rlvr_gym.envs.tasks.reasoning_gym import ReasoningGymSource
from rlvr_gym.types import Problem, Status
from rlvr_gym.verifiers.reasoning_gym import ReasoningGymVerifier

reasoning_gym = pytest.importorskip(
    "reasoning_gym", reason='reasoning-gym is not installed: pip install "rlvr-gym[reasoning-gym]"')

ID = "rlvr/ReasoningGym-v0"
#: datasets of several families (arithmetic, puzzles, logic, strings, graphs, planning) whose
#: `score_answer` gives a wrong answer 0
SAMPLE = ["chain_sum", "sudoku", "knights_knaves", "word_sorting", "base_conversion",
          "family_relationships", "maze", "tower_of_hanoi"]
WRONG = "Let me think.\n<answer>zzz qqq</answer>"


@pytest.mark.parametrize("task", SAMPLE)
def test_reset_step_scores_the_reference_1_and_a_wrong_answer_0(task):
    env = gym.make(ID, task=task)
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        assert info["question"] in obs and "<answer>" in obs
        assert info["problem_id"].startswith(f"reasoning_gym.{task}/0/")
        _, reward, terminated, truncated, step = env.step(info["solution"])
        assert (reward, terminated, truncated) == (1.0, True, False)
        assert step["verdict"].correct and step["verdict"].extracted == info["answer"]
        env.reset(seed=seed)
        _, reward, terminated, _, step = env.step(WRONG)
        assert (reward, terminated) == (0.0, True)
        assert step["verdict"].status is Status.INCORRECT and step["verdict"].usable
    env.close()


@pytest.mark.parametrize("task", SAMPLE)
def test_problems_are_reasoning_gyms_items_and_fixed_by_the_dataset_seed(task):
    first, again, other = (ReasoningGymSource(task, seed=s) for s in (0, 0, 1))
    theirs = reasoning_gym.create_dataset(task, seed=0)
    for i in range(5):
        assert first[i] == again[i]
        assert (first[i].question, first[i].answer) == (theirs[i]["question"],
                                                         theirs[i]["answer"])
    assert sum(first[i].question != other[i].question for i in range(5)) >= 4


def test_problems_do_not_depend_on_the_process():
    code = ("from rlvr_gym.envs.tasks.reasoning_gym import ReasoningGymSource; "
            "print(repr(ReasoningGymSource('sudoku', seed=3)[17]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == repr(ReasoningGymSource("sudoku", seed=3)[17])


def test_options_reach_the_dataset_and_size_bounds_the_draws():
    env = gym.make(ID, task="chain_sum", min_terms=6, max_terms=6, size=7, seed=2)
    source = env.unwrapped.source
    assert len(source) == 7
    for i in range(7):
        assert source[i].meta["entry"]["metadata"]["num_terms"] == 6
        assert source.index_of(source[i].id) == i
    with pytest.raises(IndexError):
        source[7]


def test_the_reward_is_score_answers_partial_credit_and_a_box_also_answers():
    # advanced_geometry gives a small format credit to any answer, chain_sum credits an answer
    # that contains the reference by the length ratio: the env passes both through.
    for task, answer in [("advanced_geometry", "no idea"), ("chain_sum", None)]:
        env = gym.make(ID, task=task)
        _, info = env.reset(seed=0)
        problem = info["problem"]
        answer = answer or f"{problem.answer} or so"
        expected = reasoning_gym.create_dataset(task, seed=0).score_answer(
            answer, problem.meta["entry"])
        assert 0 < expected < 1
        _, reward, _, _, step = env.step(f"I get \\boxed{{{answer}}}")
        assert reward == pytest.approx(expected) and step["verdict"].status is Status.INCORRECT


def test_an_answer_score_answer_rejects_is_incorrect_not_a_verifier_failure():
    env = gym.make(ID, task="prime_factorization")
    env.reset(seed=0)
    _, reward, _, _, step = env.step("<answer>xyz</answer>")
    verdict = step["verdict"]
    assert reward == 0.0 and verdict.status is Status.INCORRECT and verdict.usable
    assert "rejected the answer (ValueError" in verdict.reason


def test_no_answer_and_a_foreign_problem():
    verifier = ReasoningGymVerifier()
    problem = ReasoningGymSource()[0]
    assert verifier.verify("it is " + problem.answer, problem).status is Status.NO_ANSWER
    foreign = verifier.verify("<answer>4</answer>", Problem("x/1", "2 + 2?", "4"))
    assert foreign.status is Status.ERROR and not foreign.usable
    assert "not a reasoning-gym problem" in foreign.reason


def test_a_dataset_without_a_reference_answer_has_an_empty_solution():
    problem = ReasoningGymSource("graph_color")[0]
    assert problem.answer == "" and problem.solution == ""


def test_characters_of_reasoning_gym_questions_reach_the_observation():
    env = gym.make(ID, task="circuit_logic")
    obs, info = env.reset(seed=0)
    assert "─" in info["question"] and info["question"] in obs
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize(("options", "message"), [
    ({"task": "no_such_task"}, "unknown reasoning-gym task 'no_such_task'; choose one of"),
    ({"max_termz": 3}, r"unknown chain_sum options \['max_termz'\]; valid: .*'max_terms'"),
    ({"min_terms": 0}, "reasoning-gym refuses the chain_sum options .*min_terms must be"),
    ({"seed": None}, "seed must be an int"),
])
def test_bad_options_are_one_line_errors_naming_the_fix(options, message):
    with pytest.raises(ValueError, match=message):
        gym.make(ID, **options)


def test_without_reasoning_gym_making_the_env_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # import fails as if absent
    with pytest.raises(ImportError, match=r'pip install "rlvr-gym\[reasoning-gym\]"'):
        gym.make(ID)
