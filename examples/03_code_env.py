"""Code env tutorial: programs as answers, tests as rewards, a sandbox around it all.

Run: python examples/03_code_env.py           (a few seconds)
     RLVR_SMOKE=1 python examples/03_code_env.py   (the same, fewer problems in the batch part)

1. One episode of `rlvr/CodeProblems-v0`: the observation asks for a Python program, the
   reward is the fraction of the problem's tests it passes.
2. Multi-turn: with `max_attempts=3`, a wrong program gets another try; the next observation
   says how many tests passed and why the program failed, never the tests' expected values
   (a policy would learn to copy them; `reveal_tests=True` shows them, for tutorials).
3. The verifier alone: a batch of candidates on the sandbox pool, with the isolation layers
   this machine provides, and a hostile program that gets nothing.
"""

import os
import time

import gymnasium as gym

import rlvr_gym  # noqa: F401  (registers the rlvr/... ids)
from rlvr_gym.envs.tasks.code_problems import CodeProblemSource
from rlvr_gym.verifiers import CodeVerifier

SMOKE = os.environ.get("RLVR_SMOKE") == "1"

# 1. One episode. The reference solution stands in for a model's answer.
env = gym.make("rlvr/CodeProblems-v0")
prompt, info = env.reset(options={"problem_id": "code/fizzbuzz"})
print("PROMPT:\n" + prompt)
_, reward, terminated, truncated, step_info = env.step(info["solution"])
print(f"reference solution: reward={reward:.2f} ({step_info['verdict'].reason})\n")
env.close()

# 2. Multi-turn: the first attempt forgets 'FizzBuzz', the feedback says how many tests passed.
env = gym.make("rlvr/CodeProblems-v0", max_attempts=3)
env.reset(options={"problem_id": "code/fizzbuzz"})
first_try = """```python
def fizzbuzz(n):
    return ['Fizz' if i % 3 == 0 else 'Buzz' if i % 5 == 0 else str(i)
            for i in range(1, n + 1)]
```"""
obs, reward, terminated, truncated, _ = env.step(first_try)
print(f"first try: reward={reward:.2f} terminated={terminated}; the env answers:")
print(obs[obs.index(first_try) + len(first_try):].strip(), "\n")
_, reward, terminated, truncated, _ = env.step(info["solution"])
print(f"second try: reward={reward:.2f} terminated={terminated} truncated={truncated}\n")
env.close()

# 3. The verifier on its own: a batch on the pool (what an RL trainer does per step).
problems = list(CodeProblemSource())[: 8 if SMOKE else 36]
with CodeVerifier() as verifier:
    print("isolation layers:", ", ".join(verifier.layers.active()))
    start = time.perf_counter()
    verdicts = verifier.verify_batch([p.solution for p in problems], problems)
    elapsed = time.perf_counter() - start
    print(f"{sum(v.correct for v in verdicts)}/{len(problems)} reference solutions pass "
          f"({len(problems) / elapsed:.1f} candidates/s)")
    # A program that exits before the tests run, hoping for a clean exit code: no reward.
    hostile = "```python\nimport os\nos._exit(0)\n```"
    verdict = verifier.verify(hostile, problems[0])
    print(f"os._exit(0) before the tests: reward={verdict.score:.2f} ({verdict.reason})")
