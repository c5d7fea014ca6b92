"""HintController: the hint level as a Discrete action, checked by Gymnasium and SB3."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlvr_gym
from rlvr_gym.wrappers.hints import HintController


def last_line_answerer(prompt):
    """Solves a chain iff the hint reveals all computation lines (the boxed line is left)."""
    computed = [line for line in prompt.splitlines() if " = " in line]
    return f"\\boxed{{{computed[-1].split(' = ')[-1]}}}" if computed else "\\boxed{?}"


def controller(**kwargs):
    inner = gym.make("rlvr/ArithmeticChain-v0", min_steps=2, max_steps=2)
    return HintController(inner, last_line_answerer, **kwargs)


@pytest.mark.filterwarnings("ignore:.*not having a spec")
@pytest.mark.parametrize("env_id", sorted(rlvr_gym.ENV_IDS))
def test_gymnasium_and_sb3_checkers_pass_over_every_registered_id(env_id):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    check_env(HintController(gym.make(env_id), lambda prompt: ""))
    sb3_checker.check_env(HintController(gym.make(env_id), lambda prompt: ""), warn=True)


def test_reward_is_correctness_minus_hint_cost_and_success_averages_update():
    env = controller(levels=(0.0, 1.0), hint_cost=0.5, smoothing=0.5)
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [pytest.approx(0.2), 0.5, 0.5]  # difficulty 2 * 0.1, priors
    obs, reward, terminated, truncated, info = env.step(0)  # no hint: the answerer fails
    assert (reward, info["correct"]) == (0.0, False) and obs[1] == 0.25
    obs, reward, _, _, info = env.step(1)  # the whole solution: correct, costs 0.5
    assert (reward, info["correct"]) == (0.5, True) and obs[2] == 0.75


def test_episode_is_a_fixed_number_of_problems_then_truncated():
    env = controller(problems_per_episode=3)
    env.reset(seed=0)
    flags = [env.step(1)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


def test_best_fixed_level_is_the_smallest_sufficient_hint():
    # Chains of 2 steps: 3 solution lines; a ratio of 2/3 reveals both computations.
    env = controller(levels=(0.0, 1 / 3, 2 / 3, 1.0), hint_cost=0.2, problems_per_episode=20)
    means = []
    for level in range(4):
        env.reset(seed=1)
        means.append(np.mean([env.step(level)[1] for _ in range(20)]))
    assert int(np.argmax(means)) == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="levels"):
        controller(levels=(0.5, 2.0))
    with pytest.raises(ValueError, match="answer"):
        HintController(gym.make("rlvr/ArithmeticChain-v0"), answer="not callable")
