"""What `env.step` accepts: a response over the action space's length is judged incorrect
(and penalised) without reaching the verifier; an action that is not text is the caller's
error, said in one line; random strings of the space still work."""

from __future__ import annotations

import time

import gymnasium as gym
import pytest

import rlvr_gym  # noqa: F401  (registers the rlvr/... ids)
from rlvr_gym import Status, Verdict
from rlvr_gym.envs.code_tasks import make_code_env
from rlvr_gym.envs.env import MAX_PROMPT_CHARS, MAX_RESPONSE_CHARS
from rlvr_gym.envs.registry import make_task_env


class Spy:
    """A verifier that records what reaches it."""

    def __init__(self) -> None:
        self.lengths: list[int] = []

    def verify(self, response, problem):
        self.lengths.append(len(response))
        return Verdict(Status.INCORRECT, 0.0, None, "wrong")


def test_a_50mb_response_is_penalised_without_reaching_the_verifier():
    spy = Spy()
    env = make_task_env("arithmetic", verifier=spy, max_attempts=2)
    prompt, _ = env.reset(seed=0)
    start = time.perf_counter()
    obs, reward, terminated, truncated, info = env.step("\\boxed{1}" * 5_000_000)
    elapsed = time.perf_counter() - start
    verdict = info["verdict"]
    assert spy.lengths == []
    assert (verdict.status, verdict.score, verdict.usable) == (Status.INCORRECT, 0.0, True)
    assert f"response longer than {MAX_RESPONSE_CHARS} characters" in verdict.reason
    assert "max_length" in verdict.reason and reward == 0.0
    assert (terminated, truncated) == (False, False)  # multi-turn: a wrong attempt
    assert len(obs) <= MAX_PROMPT_CHARS and env.observation_space.contains(obs)
    assert elapsed < 2.0


def test_the_limit_is_the_action_spaces_max_length_and_configurable():
    spy = Spy()
    env = gym.make("rlvr/Arithmetic-v0", max_response_chars=20, verifier=spy)
    assert env.action_space.max_length == 20
    env.reset(seed=0)
    env.step("x" * 20)
    env.reset(seed=0)
    assert "longer than 20 characters" in env.step("x" * 21)[4]["verdict"].reason
    assert spy.lengths == [20]
    with pytest.raises(ValueError, match="max_response_chars must be a positive int"):
        gym.make("rlvr/Arithmetic-v0", max_response_chars=0)


def test_real_verifiers_never_see_an_over_long_response():
    math_env = gym.make("rlvr/Arithmetic-v0")
    math_env.reset(seed=0)
    verdict = math_env.step("1" * (MAX_RESPONSE_CHARS + 1))[4]["verdict"]
    assert verdict.status is Status.INCORRECT and verdict.usable
    code_env = make_code_env()
    code_env.reset(seed=0)
    program = "```python\n" + "x = 1\n" * (MAX_RESPONSE_CHARS // 6) + "```"
    verdict = code_env.step(program)[4]["verdict"]
    assert verdict.status is Status.INCORRECT and "longer than" in verdict.reason
    assert code_env.unwrapped.verifier._pool is None  # no sandbox was started
    code_env.close()


@pytest.mark.parametrize("action", [b"\\boxed{3}", 3, [1, 2, 3], None])
def test_an_action_that_is_not_text_is_a_clear_error_and_changes_nothing(action):
    spy = Spy()
    env = make_task_env("arithmetic", verifier=spy, max_attempts=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=f"must be the response text .*got "
                                         f"{type(action).__name__}"):
        env.step(action)
    assert spy.lengths == []
    assert env.step("\\boxed{3}")[4]["attempt"] == 1  # the episode did not advance


def test_random_strings_of_the_action_space_are_judged():
    env = gym.make("rlvr/Arithmetic-v0")
    env.action_space.seed(0)
    for _ in range(5):
        env.reset(seed=0)
        action = env.action_space.sample()
        assert env.action_space.contains(action)
        assert env.step(action)[4]["verdict"].status in (Status.NO_ANSWER, Status.INCORRECT)


def test_the_hint_wrapper_does_not_turn_non_text_actions_into_text():
    from rlvr_gym.wrappers.hints import HintScaffold

    spy = Spy()
    env = HintScaffold(make_task_env("arithmetic", verifier=spy))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="got bytes"):
        env.step(b"\\boxed{3}")
    assert spy.lengths == []
