"""Tutorial: IB-TPO. Grow rollout trees that share reasoning prefixes, see where the IB-Score
branches, then train with step-level advantages (docs/algorithms.md, IB-TPO).

    python examples/08_ibtpo.py              # about a minute on a laptop CPU
    RLVR_SMOKE=1 python examples/08_ibtpo.py # seconds: checks that it runs
"""

import os

import gymnasium as gym
import torch

import rlvr_gym  # noqa: F401  (registers the rlvr/... env ids)
from rlvr_gym.agents import IBTPO, Policy, fresh_run_dir
from rlvr_gym.agents.ibtpo import IBTPOConfig, TreeSampler, tree_metrics
from rlvr_gym.agents.policy import SamplingConfig
from rlvr_gym.agents.tiny import BUNDLED_MODELS

#: A fresh run directory each time (runs/example-ibtpo, then -2, -3, ...): runs never mix.
RUN_DIR = fresh_run_dir("runs/example-ibtpo")

SMOKE = os.environ.get("RLVR_SMOKE") == "1"
torch.set_num_threads(1)
torch.manual_seed(0)

# 1. A task with multi-step solutions and the bundled model that learned it: sums of 4-6
#    one-digit terms, solved one operation per line ("6 - 3 = 3\n3 + 1 = 4\n...\boxed{12}").
#    Trees pay off when a branch can reuse a long shared prefix, so they need several steps.
#    (The default task's "a + b = c\n\boxed{c}" has only two.)
chain = BUNDLED_MODELS["tiny-chain"]
env = gym.make(chain.env_id, seed=0, **chain.env_kwargs)
held_out = gym.make(chain.env_id, seed=1, **chain.env_kwargs)
policy = Policy.from_pretrained(chain.directory, device="cpu")

# 2. One tree per problem: B0 = 4 independent samples, then L - 1 = 8 rounds that each branch
#    the K = 1 node with the highest IB-Score B = 1 time, so G = 4 + 8 = 12 leaves. A step
#    ends at the delimiter; a branch continues the node's prefix, whose tokens are not
#    generated (nor counted) again. "=" ends a step right after each "a op b =", so a branch
#    resamples one result and goes on: on this model that gave 1.49-1.52x trajectories per
#    generated token against independent sampling, lines only 1.35-1.37x. A step's
#    probability pi(s | v) is read as the product of its token probabilities ("product"),
#    which suits these short steps; the default "mean" (length-normalised) is the safe choice
#    for LLM steps of hundreds of tokens (benchmarks/results/ibtpo_branching_chain.md).
sampling = SamplingConfig(temperature=1.0, max_new_tokens=chain.max_new_tokens)
sampler = TreeSampler(policy, held_out, sampling, initial_samples=4, rounds=9, top_k=1,
                      branches=1, strategy="ib", beta=5.0, delimiter="=",
                      step_probability="product")
held_out.reset(seed=0)
trees = sampler.sample([held_out.reset(options={"index": i}) for i in range(4 if SMOKE else 32)])
first = trees[0]
print(f"{first.prompt.strip()}: {len(first.leaves)} leaves, "
      f"{first.tree.generated_tokens} generated tokens")
for node in first.tree.branchable():
    label = repr(node.text()[-14:]) if node.step else "root"
    print(f"  {'  ' * node.depth}{label:<18} visits {node.visits:>2}  correct "
          f"{node.correct:>2.0f}  IB-Score {first.tree.ib_score(node, 5.0):+.3f}")
# Where the branches started (steps of shared prefix) and what they cost:
print("branch depths:", [leaf.branch_depth for leaf in first.leaves],
      "new tokens:", [leaf.new_tokens for leaf in first.leaves])
# Eff-Rate, accuracy, Cov(eta1, eta2), tokens per problem, trajectories per 1,000 tokens:
print({k: round(v, 3) for k, v in tree_metrics(trees, beta=5.0).items()})

# 3. Training: each step grows prompts_per_step trees; every token of a step s gets
#    A(s) = A_GL(s) + lambda A_IB(s) and the shared GRPO loss does the rest.
config = IBTPOConfig(
    prompts_per_step=2 if SMOKE else 16,
    max_new_tokens=chain.max_new_tokens,
    delimiter="=",
    step_probability="product",
    ib_beta=5.0,
    lam=0.1,
    eval_problems=10 if SMOKE else 200,
    eval_samples=0,
    output_dir=str(RUN_DIR),
)
agent = IBTPO(chain.directory, env, config, eval_env=held_out)
agent.learn(total_steps=1 if SMOKE else 10)
before, after = agent.eval_history[0], agent.eval_history[-1]
print(f"held-out greedy accuracy: {before['accuracy']:.2f} -> {after['accuracy']:.2f}")
agent.save(RUN_DIR / "agent")
