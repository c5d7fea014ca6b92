"""TRL's `GRPOTrainer` and rlvr-gym's GRPO side by side: the bundled tiny model, the default
task, the same number of steps and hyper-parameters matched field by field. Records the
reward curves and held-out greedy accuracy before and after to
benchmarks/results/trl_vs_grpo.md (and the curves to trl_vs_grpo.png).

    python -m benchmarks.trl_vs_grpo                 # 100 steps, seed 0
    python -m benchmarks.trl_vs_grpo --steps 5 --report /tmp/look.md    # quick look

TRL scores through `rlvr_gym.integrations.trl` (the env's reward; unusable verdicts None) with
`position_ids_from_mask` on the model; both held-out accuracies come from
`rlvr_gym.agents.rollout.evaluate` on the same 200 problems of dataset seed 1.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import rlvr_gym  # noqa: F401  (registers the ids)
from benchmarks.common import RESULTS_DIR, provenance
from rlvr_gym.agents.grpo import GRPO, GRPOConfig
from rlvr_gym.agents.policy import Policy
from rlvr_gym.agents.rollout import evaluate
from rlvr_gym.agents.tiny import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, TINY_MODEL_DIR
from rlvr_gym.integrations.trl import position_ids_from_mask, prompt_dataset, reward_function

#: How each TRL setting follows the GRPO config (what cannot match is in `DIFFERENCES`).
MAPPING = [
    ("prompts_per_step x group_size", "per_device_train_batch_size x "
     "gradient_accumulation_steps = generation batch, num_generations = group_size: one "
     "optimiser step per sampled batch"),
    ("micro_batch_size", "per_device_train_batch_size"),
    ("temperature, top_p, max_new_tokens", "temperature, top_p (top_k=0 in both), "
     "max_completion_length"),
    ("advantage='group', std_eps 1e-4", "scale_rewards='group' (TRL's eps is 1e-4; both use "
     "the sample std)"),
    ("loss_type='grpo', epsilon_low/high, beta, num_iterations", "the same fields"),
    ("lr, warmup_steps, decay_steps=steps", "AdamW with the same betas and weight decay, and "
     "a LambdaLR computing GRPO's own `learning_rate(step)`: the identical schedule"),
    ("max_grad_norm", "max_grad_norm"),
    ("model in eval mode (no dropout)", "disable_dropout=True (the model has none anyway)"),
]
DIFFERENCES = [
    "Problems: GRPO draws 32 random problems per step from the dataset-seed-0 training set "
    "(`env.reset()`); TRL takes a dataset of that set's first 32 x steps problems "
    "(`prompt_dataset`), shuffled by its sampler, each used once. Same distribution, other "
    "problems.",
    "Random streams: both seed torch with the run's seed, but consume it differently, so the "
    "sampled completions differ from the first step.",
    "Padding: GRPO scores right-padded sequences; TRL left-pads prompts and, with "
    "`position_ids_from_mask`, derives positions from the mask (without it the bundled "
    "GPT-2's learned positions would be shifted for every padded row).",
    "Metrics: the reward curves are each trainer's own log (mean reward of the step's usable "
    "samples, at temperature 1), so they come from different problems each step.",
]


@dataclass
class Run:
    name: str
    rewards: list[float]
    seconds: float
    accuracy_after: float


def held_out(policy: Policy, env: gym.Env, problems: int, max_new_tokens: int) -> float:
    """Greedy held-out accuracy of rlvr-gym's `evaluate` (no sampled pass@k)."""
    return evaluate(policy, env, problems, samples=0, max_new_tokens=max_new_tokens)["accuracy"]


def run_grpo(config: GRPOConfig, steps: int, env: gym.Env, eval_env: gym.Env,
             problems: int) -> tuple[Run, Callable[[int], float]]:
    """rlvr-gym's GRPO for `steps`; also returns its learning-rate schedule for TRL."""
    agent = GRPO(Policy.from_pretrained(TINY_MODEL_DIR, device=config.device), env, config)
    rewards: list[float] = []
    start = time.perf_counter()
    agent.learn(steps, callback=lambda _, m: rewards.append(float(m["reward"])),
                progress_bar=False)
    seconds = time.perf_counter() - start
    accuracy = held_out(agent.policy, eval_env, problems, config.max_new_tokens)
    return Run("rlvr-gym GRPO", rewards, seconds, accuracy), agent.learning_rate


def run_trl(config: GRPOConfig, steps: int, env: gym.Env, eval_env: gym.Env, problems: int,
            learning_rate: Callable[[int], float]) -> Run:
    """TRL's GRPOTrainer for `steps` with `config`'s hyper-parameters (see `MAPPING`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer

    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR)
    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL_DIR)
    position_ids_from_mask(model)
    samples = config.prompts_per_step * config.group_size
    if samples % config.micro_batch_size:
        raise ValueError("prompts_per_step x group_size must be a multiple of micro_batch_size")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.adam_betas,
                                  weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                 lambda step: learning_rate(step) / config.lr)
    with tempfile.TemporaryDirectory() as out:
        args = TRLConfig(
            output_dir=out, max_steps=steps, seed=config.seed,
            per_device_train_batch_size=config.micro_batch_size,
            gradient_accumulation_steps=samples // config.micro_batch_size,
            num_generations=config.group_size, max_completion_length=config.max_new_tokens,
            temperature=config.temperature, top_p=config.top_p, top_k=0,
            scale_rewards="group", loss_type=config.loss_type, beta=config.beta,
            epsilon=config.epsilon_low, epsilon_high=config.epsilon_high,
            num_iterations=config.num_iterations, max_grad_norm=config.max_grad_norm,
            disable_dropout=True, gradient_checkpointing=False, bf16=False,
            use_cpu=not torch.cuda.is_available(), logging_steps=1, save_strategy="no",
            report_to="none", disable_tqdm=True)
        trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=args,
                              reward_funcs=reward_function(env),
                              train_dataset=prompt_dataset(env, size=config.prompts_per_step
                                                           * steps),
                              optimizers=(optimizer, schedule))
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    rewards = [float(h["reward"]) for h in trainer.state.log_history if "reward" in h]
    policy = Policy(trainer.model, tokenizer)
    return Run("TRL GRPOTrainer", rewards, seconds,
               held_out(policy, eval_env, problems, config.max_new_tokens))


def plot(runs: list[Run], before: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs:
        line, = ax.plot(run.rewards, alpha=0.3)
        window = min(10, len(run.rewards))
        smooth = np.convolve(run.rewards, np.ones(window) / window, mode="valid")
        ax.plot(range(window - 1, len(run.rewards)), smooth, color=line.get_color(),
                label=f"{run.name}: held-out {before:.3f} -> {run.accuracy_after:.3f}")
    ax.set(xlabel="step", ylabel="mean reward of the step's samples",
           title="TRL GRPOTrainer vs rlvr-gym GRPO, tiny model, 2-3 digit addition")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(runs: list[Run], before: float, config: GRPOConfig, steps: int,
                 problems: int, command: str, path: Path) -> None:
    every = max(1, steps // 10)
    marks = sorted({*range(0, steps, every), steps - 1})
    lines = [
        "# Benchmark: TRL's GRPOTrainer vs rlvr-gym's GRPO on the same env", "",
        *provenance(command, ("trl", "transformers")), "",
        f"Load average when the report was written: "
        f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())}. {torch.get_num_threads()} torch "
        "thread(s).", "",
        f"Model: the bundled tiny model (`TINY_MODEL_DIR`). Task: `{DEFAULT_ENV_ID}` with "
        "`DEFAULT_ENV_KWARGS` (2-3 digit addition), training on dataset seed 0. "
        f"{steps} steps of {config.prompts_per_step} problems x {config.group_size} samples, "
        f"lr {config.lr:g} (warm-up {config.warmup_steps} steps, linear decay to 0 at step "
        f"{steps}), seed {config.seed}. Held-out: greedy accuracy on {problems} problems of "
        "dataset seed 1 through `rlvr_gym.agents.rollout.evaluate`, for both.", "",
        "| trainer | held-out accuracy before | after | gain (points) | mean reward, first 10 "
        "steps | mean reward, last 10 steps | training time (s) | s/step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(f"| {run.name} | {before:.3f} | {run.accuracy_after:.3f} | "
                     f"{100 * (run.accuracy_after - before):+.1f} | "
                     f"{np.mean(run.rewards[:10]):.3f} | {np.mean(run.rewards[-10:]):.3f} | "
                     f"{run.seconds:.0f} | {run.seconds / steps:.2f} |")
    lines += ["", "Training time: the trainer's own loop (sampling, scoring, updates), model "
              "loading and held-out evaluation excluded.", "",
              f"Reward per step (the curves: {path.with_suffix('.png').name}):", "",
              "| step | " + " | ".join(r.name for r in runs) + " |",
              "|---|" + "---|" * len(runs)]
    lines += [f"| {s + 1} | " + " | ".join(f"{r.rewards[s]:.3f}" for r in runs) + " |"
              for s in marks]
    lines += ["", "## How the hyper-parameters are matched", "",
              "| rlvr-gym GRPOConfig | TRL GRPOConfig |", "|---|---|"]
    lines += [f"| {ours} | {theirs} |" for ours, theirs in MAPPING]
    lines += ["", "## Where the two runs differ", ""] + [f"- {d}" for d in DIFFERENCES]
    lines += ["", f"One seed ({config.seed}): a gap between the two trainers smaller than the "
              "spread of held-out accuracy over seeds (benchmarks/results/grpo.md, 3 seeds of "
              "the main job) says nothing about which is better.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    plot(runs, before, path.with_suffix(".png"))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-problems", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--report", default=str(RESULTS_DIR / "trl_vs_grpo.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warmup = min(GRPOConfig.warmup_steps, args.steps - 1)  # a short look warms up less
    config = GRPOConfig(seed=args.seed, warmup_steps=warmup, decay_steps=args.steps,
                        eval_samples=0, save_every=0, device="cpu")
    env = gym.make(DEFAULT_ENV_ID, seed=0, **DEFAULT_ENV_KWARGS)
    eval_env = gym.make(DEFAULT_ENV_ID, seed=1, **DEFAULT_ENV_KWARGS)
    before = held_out(Policy.from_pretrained(TINY_MODEL_DIR, device="cpu"), eval_env,
                      args.eval_problems, config.max_new_tokens)
    ours, learning_rate = run_grpo(config, args.steps, env, eval_env, args.eval_problems)
    theirs = run_trl(config, args.steps, env, eval_env, args.eval_problems, learning_rate)
    command = shlex.join(["python", "-m", "benchmarks.trl_vs_grpo", *sys.argv[1:]])
    write_report([ours, theirs], before, config, args.steps, args.eval_problems, command,
                 Path(args.report))


if __name__ == "__main__":
    main()
