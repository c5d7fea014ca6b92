"""Multi-turn episodes and prompt formats: wrong answers are fed back; running out of attempts
truncates; chat templates render into the observation."""

import gymnasium as gym
import pytest

import rlvr_gym  # noqa: F401  (registers the rlvr/... ids)


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


class ChatTokenizer:
    """Stands in for a Hugging Face tokenizer with a chat template."""

    chat_template = "{% for m in messages %}...{% endfor %}"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert tokenize is False and add_generation_prompt is True
        return "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + "<|assistant|>"


def test_chat_template_renders_system_and_user_messages_into_the_observation():
    from rlvr_gym.envs import PromptFormat

    prompt = PromptFormat(template="{question}", system="Answer briefly.",
                          tokenizer=ChatTokenizer())
    env = gym.make("rlvr/Arithmetic-v0", prompt=prompt)
    obs, info = env.reset(seed=0)
    assert obs == f"<|system|>Answer briefly.<|user|>{info['question']}<|assistant|>"
    assert env.observation_space.contains(obs) and info["prompt"] == obs


def test_plain_template_must_name_the_question():
    from rlvr_gym.envs import PromptFormat

    with pytest.raises(ValueError, match="question"):
        PromptFormat(template="no placeholder")
