"""Conformance of every registered id, in the spirit of Gymnasium's own tests: a new id is
checked the day it is registered. The tasks written one file each outside the package
(local_tasks/, see conftest.py) are checked the same way."""

import importlib.util
import pickle

import gymnasium as gym
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env

import rlvr_gym

ENV_IDS = sorted(rlvr_gym.ENV_IDS)
#: the tasks of local_tasks/, as `module:id` (gym.make imports the module, which registers it)
LOCAL_IDS = ["digit_sum:rlvr/DigitSum-v0", "affine_code:rlvr/AffineCode-v0"]
#: id -> (the optional package it needs, its install command): skipped where it is absent
OPTIONAL = {"rlvr/ReasoningGym-v0": ("reasoning_gym", 'pip install "rlvr-gym[reasoning-gym]"')}


@pytest.fixture(params=ENV_IDS + LOCAL_IDS)
def env(request, local_tasks):
    package, install = OPTIONAL.get(request.param, (None, ""))
    if package and importlib.util.find_spec(package) is None:
        pytest.skip(f"{request.param} needs {package}: {install}")
    env = gym.make(request.param)
    yield env
    env.close()


def test_every_registered_id_passes_gymnasium_check_env(env):
    check_env(env.unwrapped, skip_render_check=False)


def test_seeded_reset_gives_same_problem_and_prompt(env):
    obs_a, info_a = env.reset(seed=123)
    obs_b, info_b = env.reset(seed=123)
    assert obs_a == obs_b
    assert info_a["problem_id"] == info_b["problem_id"]
    assert env.observation_space.contains(obs_a)


def test_seeded_episodes_are_deterministic_including_reward(env):
    rewards = []
    for _ in range(2):
        fresh = gym.make(env.spec)
        fresh.reset(seed=7)
        obs, info = fresh.reset()  # second reset draws from the seeded np_random
        rewards.append((obs, fresh.step(info["solution"])[1]))
        fresh.close()
    assert rewards[0] == rewards[1]


def test_reference_solution_earns_full_reward_and_terminates(env):
    _, info = env.reset(seed=0)
    _, reward, terminated, truncated, step_info = env.step(info["solution"])
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert step_info["verdict"].correct


def test_garbage_answer_is_a_verdict_not_an_exception(env):
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step("}}{{\\boxed{ \x00 ¿?")
    assert reward == 0.0 and terminated and not truncated
    assert info["verdict"].status.value in ("no_answer", "incorrect")


def test_stepping_a_finished_episode_asks_for_reset(env):
    env.reset(seed=0)
    env.step("no idea")
    with pytest.raises(ResetNeeded):
        env.unwrapped.step("again")


def test_problem_id_pins_the_problem(env):
    _, info = env.reset(seed=5)
    for seed in (1, 2, 3):
        _, pinned = env.reset(seed=seed, options={"problem_id": info["problem_id"]})
        assert pinned["problem_id"] == info["problem_id"]
        assert pinned["prompt"] == info["prompt"]


def test_info_carries_what_agents_and_wrappers_need(env):
    _, info = env.reset(seed=0)
    for key in ("problem", "problem_id", "question", "prompt", "answer", "solution",
                "difficulty", "attempt"):
        assert key in info
    assert info["question"] in info["prompt"]


def test_env_pickles_with_its_state(env):
    env.reset(seed=3)
    clone = pickle.loads(pickle.dumps(env.unwrapped))
    assert clone.problem == env.unwrapped.problem


def test_ansi_render_shows_prompt_and_verdict():
    env = gym.make("rlvr/Arithmetic-v0", render_mode="ansi")
    _, info = env.reset(seed=0)
    env.step(info["solution"])
    text = env.render()
    assert info["question"] in text and "[correct score=1.00]" in text


def test_make_without_import_through_module_prefix():
    env = gym.make("rlvr_gym:rlvr/Countdown-v0")
    assert env.reset(seed=0)[0]


def vector_episode(mode, **vector_kwargs):
    """Reset and two steps of a 3-env vector of 2-attempt episodes: a right, a wrong and a
    missing answer, then each env's reference solution; what each call returned."""
    envs = gym.make_vec("rlvr/ArithmeticChain-v0", num_envs=3, vectorization_mode=mode,
                        vector_kwargs=vector_kwargs, max_attempts=2)
    try:
        obs, infos = envs.reset(seed=11)
        calls = [(tuple(obs), list(infos["question"]))]
        solutions = tuple(infos["solution"])
        for actions in ((solutions[0], "\\boxed{-1}", "no idea"), solutions):
            obs, rewards, terminated, truncated, infos = envs.step(actions)
            verdicts = [(v.status, v.score) if v is not None else None
                        for v in infos.get("verdict", [None] * 3)]
            calls.append((tuple(obs), list(rewards), list(terminated), list(truncated), verdicts))
        return calls
    finally:
        envs.close()


def test_async_vector_env_returns_what_the_sync_one_does():
    sync = vector_episode("sync")
    prompts = sync[0][0]
    assert all(p.startswith("Start with ") for p in prompts) and len(set(prompts)) == 3
    assert sync[1][1] == [1.0, 0.0, 0.0] and sync[1][3] == [False, False, False]
    assert sync[1][0][1].endswith("\\boxed{-1}\nThat is incorrect: differs from the reference. "
                                  "Try again.\n")  # the feedback of a wrong attempt
    assert vector_episode("async") == sync
    # `copy=False`: the shared buffer itself, read when it is read
    assert vector_episode("async", copy=False)[1:] == sync[1:]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec_runs_groups_of_episodes(mode):
    envs = gym.make_vec("rlvr/ArithmeticChain-v0", num_envs=3, vectorization_mode=mode)
    try:
        obs, infos = envs.reset(seed=11)
        assert isinstance(obs, tuple) and len(obs) == 3 and all(isinstance(o, str) for o in obs)
        _, rewards, terminated, truncated, _ = envs.step(tuple(infos["solution"]))
        assert list(rewards) == [1.0, 1.0, 1.0]
        assert all(terminated) and not any(truncated)
    finally:
        envs.close()


def test_unknown_reset_option_is_a_clear_error():
    env = gym.make("rlvr/Arithmetic-v0")
    with pytest.raises(ValueError, match="problem_id"):
        env.reset(options={"problme_id": "x"})
