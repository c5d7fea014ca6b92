"""TokenLevel: numeric spaces over every registered env, checked by Gymnasium and SB3."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlvr_gym
from rlvr_gym.wrappers.token_level import CharTokenizer, TokenLevel


def addition_env(**kwargs):
    inner = gym.make("rlvr/Arithmetic-v0", max_digits=1, max_operands=2, operators="+",
                     prompt="{question}")
    return TokenLevel(inner, **kwargs)


def type_text(env, text):
    """Step the characters of `text`, then end-of-sequence."""
    tok = env.codec
    result = None
    for token in tok.encode(text) + [tok.eos_id]:
        result = env.step(token)
        if result[2] or result[3]:
            break
    return result


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
@pytest.mark.parametrize("env_id", sorted(rlvr_gym.ENV_IDS))
def test_gymnasium_and_sb3_checkers_pass_on_every_registered_id(env_id):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    env = TokenLevel(gym.make(env_id), CharTokenizer.printable(), max_length=512)
    check_env(env)
    sb3_checker.check_env(env, warn=True)


def test_observation_is_prompt_then_generated_ids_padded():
    env = addition_env(max_length=16)
    obs, info = env.reset(seed=0)
    tok = env.codec
    prompt_ids = tok.encode(info["prompt"])
    assert obs.dtype == np.int64 and obs.shape == (16,)
    assert list(obs[: len(prompt_ids)]) == prompt_ids
    assert set(obs[len(prompt_ids):]) == {tok.pad_id}
    obs, reward, terminated, truncated, _ = env.step(tok.encode("5")[0])
    assert obs[len(prompt_ids)] == tok.encode("5")[0]
    assert (reward, terminated, truncated) == (0.0, False, False)


def test_right_answer_typed_token_by_token_earns_the_verified_reward():
    env = addition_env()
    _, info = env.reset(seed=3)
    _, reward, terminated, _, step_info = type_text(env, info["answer"])
    assert reward == 1.0 and terminated
    assert step_info["response"] == info["answer"] and step_info["verdict"].correct


def test_wrong_answer_gets_zero():
    env = addition_env()
    _, info = env.reset(seed=3)
    wrong = str(int(info["answer"]) + 1)
    assert type_text(env, wrong)[1] == 0.0


def test_length_limit_ends_the_response_and_verifies_it():
    env = addition_env(max_new_tokens=2)
    _, info = env.reset(seed=3)
    digit = env.codec.encode("9")[0]
    env.step(digit)
    _, _, terminated, _, step_info = env.step(digit)
    assert terminated and step_info["response"] == "99"


def test_prompt_too_long_for_max_length_says_how_to_fix():
    env = TokenLevel(gym.make("rlvr/Arithmetic-v0"), CharTokenizer.printable(), max_length=8)
    with pytest.raises(ValueError, match="raise max_length"):
        env.reset(seed=0)


def test_multi_turn_feedback_becomes_the_next_prompt():
    inner = gym.make("rlvr/Arithmetic-v0", max_digits=1, max_operands=2, operators="+",
                     prompt="{question}", max_attempts=2)
    env = TokenLevel(inner, CharTokenizer.printable(), max_length=256)
    _, info = env.reset(seed=3)
    obs, reward, terminated, truncated, _ = type_text(env, "-1")
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert "Try again" in env.codec.decode([int(i) for i in obs if i != env.codec.pad_id])


def test_char_tokenizer_round_trip_and_unknown_characters_dropped():
    tok = CharTokenizer()
    assert tok.decode(tok.encode("12 + 3 = 15")) == "12 + 3 = 15"
    assert tok.decode(tok.encode("Compute 3 + 4.")) == " 3 + 4."
    with pytest.raises(ValueError):
        CharTokenizer("aa")
