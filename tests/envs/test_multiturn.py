"""Multi-turn episodes: wrong answers are fed back; running out of attempts truncates."""

import gymnasium as gym


def test_wrong_then_right_terminates_on_the_second_attempt():
    env = gym.make("rlvr/Arithmetic-v0", max_attempts=3)
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, step_info = env.step("\\boxed{-1}")
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert obs.startswith(info["prompt"]) and "Try again" in obs and step_info["attempt"] == 1
    _, reward, terminated, truncated, step_info = env.step(f"\\boxed{{{info['answer']}}}")
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert step_info["attempt"] == 2


def test_running_out_of_attempts_is_truncation_not_termination():
    env = gym.make("rlvr/Arithmetic-v0", max_attempts=2)
    env.reset(seed=0)
    assert env.step("\\boxed{-1}")[2:4] == (False, False)
    assert env.step("\\boxed{-2}")[2:4] == (False, True)


def test_single_turn_answer_terminates_even_when_wrong():
    env = gym.make("rlvr/Arithmetic-v0")
    env.reset(seed=0)
    assert env.step("\\boxed{-1}")[2:4] == (True, False)
