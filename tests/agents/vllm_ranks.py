"""Run by torchrun from test_vllm_backend.py: GRPO with `backend="vllm"` on 2 ranks takes two
steps (lr high enough to change greedy outputs); each rank then writes to OUT/rank{r}.json its
process id, whether its trained model's greedy outputs changed, whether its own vLLM engine's
greedy outputs equal them (the engine was synced after the last update), and a checksum of its
weights."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import gymnasium as gym
import torch

from rlvr_gym.agents.grpo import GRPO, GRPOConfig
from rlvr_gym.agents.policy import Policy, SamplingConfig, TransformersBackend
from rlvr_gym.agents.tiny import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, TINY_MODEL_DIR

GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=40)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    env = gym.make(DEFAULT_ENV_ID, **DEFAULT_ENV_KWARGS)
    agent = GRPO(TINY_MODEL_DIR, env, GRPOConfig(
        backend="vllm", device="cpu", prompts_per_step=8, group_size=4, max_new_tokens=40,
        lr=3e-3, warmup_steps=0, eval_samples=0, seed=0))
    model, tokenizer = agent.policy.model, agent.policy.tokenizer
    hf = Policy(model, tokenizer, TransformersBackend(model, tokenizer))
    prompts = [env.reset(options={"index": i})[0] for i in range(16)]

    def greedy(policy: Policy) -> list[list[int]]:
        return [g.completion_ids for g in policy.generate(prompts, GREEDY)]

    before = greedy(hf)
    agent.learn(2, progress_bar=False)
    after = greedy(hf)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{agent.world.rank}.json").write_text(json.dumps({
        "pid": os.getpid(), "changed": after != before,
        "vllm_equals_trained": greedy(agent.policy) == after,
        "weights": float(sum(p.double().sum() for p in model.parameters()))}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
