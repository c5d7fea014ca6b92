"""MRT wrappers: episodes under a token budget, progress bonuses, regret."""

import gymnasium as gym
import pytest

from rlvr_gym.wrappers.budget import (
    LengthPenalty,
    ProgressReward,
    TokenBudget,
    cumulative_regret,
    normalized_regret,
    split_episodes,
)
from rlvr_gym.wrappers.token_level import CharTokenizer

CHARS = CharTokenizer.printable()  # one token per character: counts are easy to check


def budget_env(budget=200, **kwargs):
    inner = gym.make("rlvr/Arithmetic-v0", max_digits=1, max_operands=2, operators="+",
                     prompt="{question}\n")
    return TokenBudget(inner, CHARS, budget_tokens=budget, **kwargs)


def test_each_step_is_one_episode_and_the_observation_accumulates():
    env = budget_env()
    prompt, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("Let me add.")
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert obs == prompt + "Let me add." and info["total_tokens"] == len("Let me add.")
    obs, *_, info = env.step("\n\nWait, carefully.")
    assert obs.endswith("Let me add.\n\nWait, carefully.")
    assert info["episode_index"] == 2 and info["boundaries"] == [11, 29]


def test_an_episode_ends_at_the_next_marker_and_the_rest_is_dropped():
    env = budget_env()
    env.reset(seed=0)
    *_, info = env.step("First try.\n\nWait, second try.")
    assert info["response"] == "First try."
    assert info["dropped_chars"] == len("\n\nWait, second try.")


def test_episode_token_cap():
    env = budget_env(episode_tokens=5)
    env.reset(seed=0)
    assert env.step("abcdefghij")[4]["response"] == "abcde"


def test_an_answer_ends_the_response_and_is_verified():
    env = budget_env()
    _, info = env.reset(seed=0)
    env.step("Thinking.")
    _, reward, terminated, truncated, step_info = env.step(f" So \\boxed{{{info['answer']}}}")
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert step_info["verdict"].correct


def test_spending_the_budget_without_an_answer_truncates():
    env = budget_env(budget=20)
    env.reset(seed=0)
    assert env.step("0123456789")[2:4] == (False, False)
    _, reward, terminated, truncated, info = env.step("abcdefghijKLMNOP")
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert info["total_tokens"] == 20 and info["response"] == "0123456789abcdefghij"


def test_progress_bonus_telescopes_on_policy():
    """J = share of the words 'one two three' present: bonuses sum to J(final) - J(empty)."""

    def estimator(problem, prompt, prefix):
        return sum(w in prefix for w in ("one", "two", "three")) / 3

    env = ProgressReward(budget_env(), estimator, alpha=0.5)
    _, info = env.reset(seed=0)
    assert info["J"] == 0.0
    bonuses = []
    for episode in ("one", "\n\nWait, two", "\n\nWait, two again", "\n\nWait, three"):
        _, reward, _, _, step_info = env.step(episode)
        bonuses.append(reward)
    assert bonuses == pytest.approx([0.5 / 3, 0.5 / 3, 0.0, 0.5 / 3])
    assert sum(bonuses) == pytest.approx(0.5 * (1.0 - 0.0))
    assert step_info["J"] == 1.0


def test_normalized_regret_matches_hand_computation():
    # (0,0) -> (100,.5) -> (200,1) then held: area to 400 = 25 + 75 + 200 = 300.
    assert normalized_regret([100, 200], [0.5, 1.0], 400) == pytest.approx(0.25)
    # Cut at 150: area = 25 + (0.5 + 0.75) / 2 * 50 = 56.25.
    assert normalized_regret([100, 200], [0.5, 1.0], 150) == pytest.approx(1 - 56.25 / 150)
    assert normalized_regret([], [], 100) == pytest.approx(1.0)


def test_cumulative_regret_and_bad_arguments():
    assert cumulative_regret([0.2, 0.5, 1.0]) == pytest.approx(1.3)
    with pytest.raises(ValueError, match="non-decreasing"):
        normalized_regret([200, 100], [0.5, 1.0], 400)
    with pytest.raises(ValueError, match="budget"):
        normalized_regret([1], [1.0], 0)


def test_split_episodes_cuts_before_each_marker_and_rejoins():
    text = "Wait, 1 + 1 = 3\n\nWait, no.\n1 + 1 = 2\n\nAlternatively 2\n\nhm \\boxed{2}"
    episodes = split_episodes(text)
    assert episodes == ["Wait, 1 + 1 = 3", "\n\nWait, no.\n1 + 1 = 2",
                        "\n\nAlternatively 2\n\nhm \\boxed{2}"]
    assert "".join(episodes) == text
    assert split_episodes("") == [] and split_episodes("a\n\nWait", markers=()) == ["a\n\nWait"]


def test_length_penalty_charges_tokens_of_the_response():
    inner = gym.make("rlvr/Arithmetic-v0", max_digits=1, max_operands=2, operators="+",
                     prompt="{question}\n")
    env = LengthPenalty(inner, CHARS, coef=0.5, max_tokens=40)
    _, info = env.reset(seed=0)
    response = f"\\boxed{{{info['answer']}}}"
    _, reward, terminated, _, step_info = env.step(response)
    assert terminated and step_info["verdict"].correct
    assert reward == pytest.approx(1.0 - 0.5 * len(response) / 40)
    assert step_info["response_tokens"] == len(response)
    with pytest.raises(ValueError, match="coef"):
        LengthPenalty(inner, CHARS, coef=-1.0, max_tokens=40)
