"""Peak memory and time of one GRPO step on a 100M-parameter Qwen2: full fine-tuning, LoRA, and
LoRA with gradient checkpointing.

    python -m benchmarks.model_memory [--repeats 3] [--steps 3] [--beta 0.04] [--threads 1]

The model is `rlvr_gym.agents.tiny.build_random_model` with hidden size 768, 12 layers of 12
heads and an MLP of 2560 (random weights, built offline; its byte-level BPE tokenizer, trained
by `tokenizers` on the math tasks' text, has about 1.1k tokens). The GRPO step: 4 problems x 4
samples of the default task (2-3 digit addition, with the boxed-answer prompt a model of
your own gets), at most 32 new tokens, one micro-batch, `beta` 0.04 (DeepSeekMath's KL weight)
so that every sample is forwarded against the reference and backpropagated whatever the
rewards (an untrained model earns none). Arms: `full` (every weight trained, the reference a
frozen copy), `lora` (rank 16 on every linear layer, the reference the base model with the
adapters off), `lora+checkpointing` (the same with gradient checkpointing).

Each arm runs in its own process (`--arm NAME --model DIR`): its peak resident set size
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`) is its own, read after loading the agent and
after its steps; on a GPU also `torch.cuda.max_memory_allocated` over the steps. Each process
runs one untimed warm-up step, then `--steps` timed ones (`step_seconds` and
`update_seconds` of the step's metrics). The arms alternate their order over `--repeats`, so
that changes of the machine's load hit all of them; the table gives medians over repeats.
The figures go to `benchmarks/results/model_memory.md` (or `--out`), written by this script.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import RESULTS_DIR, provenance

RESULTS = RESULTS_DIR / "model_memory.md"
MODEL = dict(hidden_size=768, layers=12, heads=12, intermediate_size=2560, vocab_size=8000,
             context=512)
STEP = dict(prompts_per_step=4, group_size=4, max_new_tokens=32, micro_batch_size=16)
ARMS: dict[str, dict[str, Any]] = {
    "full": {}, "lora": {"lora_rank": 16}, "lora+checkpointing": {
        "lora_rank": 16, "gradient_checkpointing": True}}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_arm(arm: str, model_dir: str, steps: int, beta: float, device: str) -> dict[str, Any]:
    """One arm in this process: load the agent, a warm-up step, `steps` timed steps."""
    import gymnasium as gym

    import rlvr_gym  # noqa: F401  (registers the env ids)
    from rlvr_gym.agents.grpo import GRPO, GRPOConfig
    from rlvr_gym.agents.tiny import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS

    kwargs = {k: v for k, v in DEFAULT_ENV_KWARGS.items() if k != "prompt"}
    config = GRPOConfig(**STEP, beta=beta, warmup_steps=0, lr=1e-5, device=device, seed=0,
                        **ARMS[arm])
    agent = GRPO(model_dir, gym.make(DEFAULT_ENV_ID, seed=0, **kwargs), config)
    model = agent.policy.model
    out: dict[str, Any] = {
        "arm": arm, "loaded_mb": peak_rss_mb(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "trained": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "reference_copy": agent.reference is not None,
        "device": str(agent.policy.device), "compute_dtype": str(agent.policy.compute_dtype)}
    cuda = agent.policy.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    agent.train_step()
    metrics = [agent.train_step() for _ in range(steps)]
    out.update(peak_mb=peak_rss_mb(),
               step_seconds=statistics.median(m["step_seconds"] for m in metrics),
               update_seconds=statistics.median(m["update_seconds"] for m in metrics),
               sequences=statistics.mean(m["trained_sequences"] for m in metrics),
               response_length=statistics.mean(m["response_length"] for m in metrics))
    if cuda:
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def spawn(arm: str, model_dir: str, args: argparse.Namespace) -> dict[str, Any]:
    """`run_arm` in a fresh process; its result is the last line it prints."""
    command = [sys.executable, "-m", "benchmarks.model_memory", "--arm", arm, "--model",
               model_dir, "--steps", str(args.steps), "--beta", str(args.beta),
               "--threads", str(args.threads), "--device", args.device]
    done = subprocess.run(command, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        raise RuntimeError(f"arm {arm} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result), flush=True)
    return result


def report(command: str, runs: list[dict[str, Any]], args: argparse.Namespace,
           loads: list[tuple[float, ...]]) -> str:
    def median(arm: str, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["arm"] == arm)

    def spread(arm: str, key: str, fmt: str) -> str:
        values = [r[key] for r in runs if r["arm"] == arm]
        return f"{median(arm, key):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"

    full, lora, _ = (next(r for r in runs if r["arm"] == arm) for arm in ARMS)
    cuda = "cuda_peak_mb" in full
    load = " / ".join(f"{v:.1f}" for v in loads[0]), " / ".join(f"{v:.1f}" for v in loads[1])
    lines = [
        "# Memory and time of a GRPO step: full fine-tuning vs LoRA vs LoRA + checkpointing", "",
        *provenance(command, ("transformers", "peft")), "",
        f"Model: random-init Qwen2 (`build_random_model`, hidden {MODEL['hidden_size']}, "
        f"{MODEL['layers']} layers, MLP {MODEL['intermediate_size']}), "
        f"{full['parameters'] / 1e6:.1f}M parameters; device {full['device']}, compute "
        f"dtype {full['compute_dtype'].removeprefix('torch.')}, {args.threads} torch "
        f"thread(s). GRPO step: {STEP['prompts_per_step']} problems x {STEP['group_size']} "
        f"samples, max_new_tokens {STEP['max_new_tokens']}, beta {args.beta}, one warm-up "
        f"step then {args.steps} timed, {args.repeats} repeats per arm, each arm in its own "
        "process, arms interleaved. Medians over repeats (min-max).", "",
        f"Load average (1 / 5 / 15 min) at the start {load[0]}, at the end {load[1]} (2 "
        "cores shared with other jobs: times are comparable between arms, not absolute).", "",
        "| arm | trained parameters | reference | peak RSS MiB | RSS after loading MiB "
        "| training adds MiB |" + (" CUDA peak MiB |" if cuda else "")
        + " s/step | update s |",
        "|---|---|---|---|---|---|" + ("---|" if cuda else "") + "---|---|"]
    for arm in ARMS:
        row = next(r for r in runs if r["arm"] == arm)
        added = statistics.median(r["peak_mb"] - r["loaded_mb"] for r in runs
                                  if r["arm"] == arm)
        reference = "frozen copy" if row["reference_copy"] else \
            "adapters off" if args.beta else "none"
        lines.append(
            f"| {arm} | {row['trained'] / 1e6:.2f}M | {reference} | "
            f"{spread(arm, 'peak_mb', '.0f')} | {spread(arm, 'loaded_mb', '.0f')} | "
            f"{added:.0f} |" + (f" {spread(arm, 'cuda_peak_mb', '.0f')} |" if cuda else "")
            + f" {spread(arm, 'step_seconds', '.1f')} | {spread(arm, 'update_seconds', '.1f')} |")
    copy = full["reference_copy"]

    def relative(key: str) -> str:
        base, adapters, checkpointed = (median(a, key) for a in ARMS)
        return (f"LoRA {adapters / base:.2f}x, LoRA + checkpointing "
                f"{checkpointed / base:.2f}x")

    lines += ["", f"Relative to full fine-tuning, peak RSS: {relative('peak_mb')}; s/step: "
              f"{relative('step_seconds')}. Mean response length "
              f"{statistics.mean(r['response_length'] for r in runs):.1f} tokens, "
              f"{statistics.mean(r['sequences'] for r in runs):.0f} sequences trained per "
              "step. The RSS includes Python, torch and transformers (about the same in every "
              "arm); 'training adds' is the peak minus the peak after loading the agent.", "",
              "What each option saves: LoRA drops the gradients and AdamW state of the frozen "
              "weights and the reference copy (the reference is the base model, adapters "
              "off); checkpointing drops the stored activations of the update's forward pass. "
              "In time, LoRA skips the frozen weights' gradients in the backward pass but adds "
              "the adapters' products to every forward pass, generation included (they are "
              "not merged); checkpointing adds a forward pass to the update.", "",
              "Memory bound to the parameters (computed, not measured): full fine-tuning "
              "holds 4 bytes per parameter of fp32 weights, 4 of gradients, 8 of AdamW state"
              + (" and 4 of the reference copy" if copy else "")
              + f", {(16 + 4 * copy) * full['parameters'] / 2**20:.0f} MiB here; "
              f"LoRA 4 (fp32) or 2 (bf16) of frozen weights plus 16 per adapter parameter, "
              f"{(4 * full['parameters'] + 16 * lora['trained']) / 2**20:.0f} MiB here in "
              "fp32. The rest of a peak is mostly activations (growing with sequences x tokens "
              "x layers x width), which checkpointing cuts."]
    if not cuda:
        lines += ["", "No GPU was available for this run: the bf16 figures (frozen weights "
                  "and forward passes in bf16 under LoRA) were not measured; rerun with "
                  "`--device cuda` on a GPU to add the CUDA peak column."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per process")
    parser.add_argument("--beta", type=float, default=0.04)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--arm", choices=sorted(ARMS), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.arm is not None:  # a child process: one arm
        print(json.dumps(run_arm(args.arm, args.model, args.steps, args.beta, args.device)))
        return
    from rlvr_gym.agents.tiny import build_random_model

    command = (f"python -m benchmarks.model_memory --repeats {args.repeats} --steps "
               f"{args.steps} --beta {args.beta} --threads {args.threads} --device "
               f"{args.device}")
    loads = [os.getloadavg()]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_random_model(Path(tmp) / "qwen2-100m", **MODEL))
        for r in range(args.repeats):
            for arm in list(ARMS) if r % 2 == 0 else list(ARMS)[::-1]:
                runs.append(spawn(arm, model_dir, args))
    loads.append(os.getloadavg())
    Path(args.out).write_text(report(command, runs, args, loads))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
