"""Quickstart: make an env, read a problem, answer it, look at the verdict.

Run: python examples/01_quickstart.py
"""

import gymnasium as gym

import rlvr_gym  # registers the rlvr/... ids
from rlvr_gym.verifiers import MathVerifier

env = gym.make("rlvr/ArithmeticChain-v0", max_steps=3, render_mode="ansi")
prompt, info = env.reset(seed=0)
print("PROMPT:\n" + prompt)

# An agent answers with text; here the reference solution stands in for a model.
response = "Let me work it out step by step.\n" + info["solution"]
_, reward, terminated, truncated, info = env.step(response)
print(env.render())
print(f"reward={reward} terminated={terminated} truncated={truncated}")

# The same problem again, pinned by id (how an agent samples a group), answered wrongly.
env.reset(options={"problem_id": info["problem_id"]})
_, reward, *_, info = env.step("I believe it is \\boxed{-1}")
print(f"wrong answer -> reward={reward}, status={info['verdict'].status.value}")

# The verifier on its own: answers are compared as mathematical objects.
verifier = MathVerifier()
print(verifier.verify("... so the answer is \\boxed{0.5}", "\\frac{1}{2}"))
print("available envs:", ", ".join(rlvr_gym.ENV_IDS))
env.close()
verifier.close()
