"""Tutorial: plug your own agent into an rlvr-gym env. An agent is any function from the
prompt text to a response text; the env verifies the answer and returns the reward.

    python examples/04_custom_agent.py
    RLVR_SMOKE=1 python examples/04_custom_agent.py   # fewer episodes
"""

import os
import re

import gymnasium as gym

import rlvr_gym  # noqa: F401  (registers the rlvr/... env ids)

EPISODES = 5 if os.environ.get("RLVR_SMOKE") == "1" else 100


def calculator(prompt: str) -> str:
    """Evaluates the expression in "Compute ...", showing its work like the reference does."""
    expression = re.search(r"Compute (.*)\.", prompt).group(1)
    value = eval(expression, {"__builtins__": {}})  # digits and + - * only: safe here
    return f"{expression} = {value}\n\\boxed{{{value}}}"


def off_by_one(prompt: str) -> str:
    """A careless agent: right working, wrong last step."""
    answer = int(re.search(r"\\boxed\{(-?\d+)\}", calculator(prompt)).group(1)) + 1
    return f"I get \\boxed{{{answer}}}"


def run(agent, env_id: str, episodes: int = EPISODES, **env_kwargs) -> float:
    """Mean reward of `agent` over seeded episodes: reset -> respond -> step."""
    env = gym.make(env_id, **env_kwargs)
    total = 0.0
    for seed in range(episodes):
        prompt, info = env.reset(seed=seed)
        _, reward, terminated, truncated, step_info = env.step(agent(prompt))
        total += float(reward)
        if seed == 0:
            print(f"  {prompt.strip()!r} -> {step_info['verdict'].status.value}")
    env.close()
    return total / episodes


for name, agent in [("calculator", calculator), ("off_by_one", off_by_one)]:
    print(f"{name}:")
    accuracy = run(agent, "rlvr/Arithmetic-v0", max_digits=3)
    print(f"  mean reward on rlvr/Arithmetic-v0: {accuracy:.2f}")
