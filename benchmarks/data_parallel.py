"""The data-parallel learner on this machine: GRPO seconds per step in 1 process and in 2 gloo
ranks (`torchrun`), with and without FSDP, arms interleaved, and whether 2 ranks take the same
optimiser step as 1 process on the same global batch (largest parameter difference after one
update, per loss setting).

    python -m benchmarks.data_parallel                      # writes results/data_parallel.md
    python -m benchmarks.data_parallel --one-step OUT       # one update, run alone or by torchrun
    python -m benchmarks.data_parallel --one-step OUT --fsdp    # the same, sharded under torchrun

`--one-step` is also what tests/distributed/test_data_parallel.py (and, with `--fsdp`,
tests/distributed/test_fsdp.py) runs: every process samples the same global batch (one seed),
rank r of W updates on its contiguous share of the groups, and each writes its parameters
after every setting to OUT/rank{r}.pt.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, provenance

SETTINGS: dict[str, dict[str, Any]] = {
    "grpo": {"loss_type": "grpo"},
    "dapo, beta 0.04, 2 passes": {"loss_type": "dapo", "beta": 0.04, "num_iterations": 2},
    "dr_grpo, all groups on rank 0": {"loss_type": "dr_grpo", "uneven": True},
    "no row to train (advantages all 0)": {"loss_type": "grpo", "zero": True},
}
"""Update settings checked: config fields (and `uneven`: rank 0 holds every group; `zero`:
every advantage is 0, so no rank runs a backward pass and the optimiser must not step)."""

FSDP_SETTINGS: dict[str, dict[str, Any]] = {
    "grpo": {"loss_type": "grpo"},
    "dapo, 2 passes": {"loss_type": "dapo", "num_iterations": 2},
    "dr_grpo, 2 passes, all groups on rank 0": {"loss_type": "dr_grpo", "num_iterations": 2,
                                                "uneven": True},
}
"""The settings checked with `fsdp=True` on several ranks (no KL term: FSDP refuses beta > 0).
The off-policy one pads the old-log-prob passes too."""


def one_step(out: Path, problems: int = 8, group_size: int = 4, fsdp: bool = False) -> None:
    """For each of `SETTINGS` (`FSDP_SETTINGS` with `fsdp`, sharded when there are several
    ranks), a fresh GRPO agent on the bundled tiny model takes one update on this rank's share
    of a global batch that every process samples alike; the flat (whole) parameters and
    gradients after each are saved to `out`/rank{rank}.pt."""
    import gymnasium as gym
    import torch

    from rlvr_gym.agents import GRPO, GRPOConfig
    from rlvr_gym.agents.rollout import Rollout, sample_groups
    from rlvr_gym.agents.tiny import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, TINY_MODEL_DIR
    from rlvr_gym.distributed.data_parallel import World
    from rlvr_gym.distributed.fsdp import full_tensor

    torch.set_num_threads(1)
    env = gym.make(DEFAULT_ENV_ID, seed=0, **DEFAULT_ENV_KWARGS)
    params = {}
    sharded = fsdp and World.from_env().distributed
    for name, setting in (FSDP_SETTINGS if fsdp else SETTINGS).items():
        fields = {k: v for k, v in setting.items() if k not in ("uneven", "zero")}
        agent = GRPO(TINY_MODEL_DIR, env, GRPOConfig(
            device="cpu", max_new_tokens=16, micro_batch_size=6, group_size=group_size,
            prompts_per_step=problems, warmup_steps=0, fsdp=sharded, **fields))
        world = agent.world
        heads = [env.reset(options={"index": i}) for i in range(problems)]
        with torch.random.fork_rng():
            torch.manual_seed(1234)  # the same global batch in every process
            groups, _ = sample_groups(agent.policy, env, heads, group_size, agent.config.sampling())
        if setting.get("uneven"):
            mine = groups if world.main else []
        else:
            share = len(groups) // world.size
            mine = groups[world.rank * share:(world.rank + 1) * share]
        zero = torch.zeros(sum(len(g.generations) for g in mine)) if setting.get("zero") \
            else None
        agent.update(Rollout(groups=mine, advantages=zero))
        model = agent.policy.model
        params[name] = torch.cat([full_tensor(p.detach()).flatten() for p in model.parameters()])
        params[f"{name} gradient"] = torch.cat([
            full_tensor(p.grad).flatten() if p.grad is not None else torch.zeros(p.numel())
            for p in model.parameters()])
        # how many parameters the optimiser stepped (AdamW skips those without a gradient)
        params[f"{name} stepped parameters"] = torch.tensor([float(len(agent.optimizer.state))])
    out.mkdir(parents=True, exist_ok=True)
    torch.save(params, out / f"rank{world.rank}.pt")


def launch(args: list[str], processes: int, port: int) -> list[str]:
    """The command running `python -m ARGS` in 1 process, or `processes` under torchrun."""
    if processes == 1:
        return [sys.executable, "-m", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
            "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", *args]


def step_difference(work: Path, port: int, fsdp: bool = False
                    ) -> dict[str, tuple[float, float, float]]:
    """Per setting, for the parameters after one update and for the (last) gradient: the
    largest absolute difference between rank 0 of 2 and 1 process, between the two ranks
    (which must hold the same weights), and the largest absolute value. With `fsdp` the 2
    ranks shard the model (`FSDP_SETTINGS`)."""
    import torch

    for processes in (1, 2):
        subprocess.run(launch(["benchmarks.data_parallel", "--one-step",
                               str(work / f"p{processes}"), *(["--fsdp"] if fsdp else [])],
                              processes, port), check=True, cwd=Path(__file__).parent.parent,
                       timeout=300)
    single = torch.load(work / "p1" / "rank0.pt")
    ranks = [torch.load(work / "p2" / f"rank{r}.pt") for r in (0, 1)]
    return {name: (float((ranks[0][name] - single[name]).abs().max()),
                   float((ranks[1][name] - ranks[0][name]).abs().max()),
                   float(single[name].abs().max())) for name in single}


ARMS = {"1 process": (1, False), "2 ranks (DDP)": (2, False), "2 ranks, FSDP": (2, True)}
"""Timed arms: processes and whether they shard the model."""


def timed_run(processes: int, fsdp: bool, steps: int, work: Path, port: int
              ) -> dict[str, float]:
    """`rlvr-gym train` (the main job's GRPO settings, a small held-out set) for `steps`
    steps in `processes` gloo processes (sharded with `fsdp`): median s/step after the first,
    wall and CPU seconds (all processes)."""
    out = work / f"run-{processes}-{time.monotonic_ns()}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(launch(["rlvr_gym.cli", "train", "--steps", str(steps), "--output", str(out),
                           "--no-progress", "--threads", "1", "--set", "eval_problems=16",
                           "--set", "eval_samples=0", "--set", "device=cpu",
                           *(["--set", "fsdp=true"] if fsdp else [])], processes, port),
                   check=True, capture_output=True, cwd=Path(__file__).parent.parent)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    step_seconds = [r["step_seconds"] for r in records if "step_seconds" in r]
    return {"s_per_step": statistics.median(step_seconds[1:] or step_seconds),
            "wall_s": wall, "cpu_s": cpu}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--one-step", type=Path, default=None, metavar="OUT",
                        help="run one update per setting and save the parameters (see above)")
    parser.add_argument("--fsdp", action="store_true",
                        help="with --one-step: the FSDP settings, sharded under torchrun")
    parser.add_argument("--steps", type=int, default=6, help="GRPO steps per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per arm")
    parser.add_argument("--port", type=int, default=29571, help="torchrun rendezvous port")
    parser.add_argument("--report", type=Path, default=RESULTS_DIR / "data_parallel.md",
                        help="where to write the report")
    args = parser.parse_args(argv)
    if args.one_step is not None:
        one_step(args.one_step, fsdp=args.fsdp)
        return
    if args.report == RESULTS_DIR / "data_parallel.md" and (args.steps, args.repeats) != (6, 3):
        raise SystemExit("error: a shorter run must not overwrite the recorded table; give "
                         "--report PATH")
    with tempfile.TemporaryDirectory(prefix="rlvr-dp-") as tmp:
        work = Path(tmp)
        differences = step_difference(work, args.port)
        sharded = step_difference(work / "fsdp", args.port, fsdp=True)
        runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
        for _ in range(args.repeats):  # interleaved: every arm sees the same machine load
            for arm, (processes, fsdp) in ARMS.items():
                runs[arm].append(timed_run(processes, fsdp, args.steps, work, args.port))
    command = "python -m benchmarks.data_parallel" + (
        f" --steps {args.steps} --repeats {args.repeats}" if (args.steps, args.repeats)
        != (6, 3) else "")
    lines = ["# Data-parallel GRPO (torch.distributed, gloo; DDP and FSDP) on this machine", "",
             *provenance(command), "",
             f"GRPO with the main job's settings (32 problems x 8 samples per step, bundled "
             f"tiny model, one torch thread per process), {args.steps} steps per run, "
             f"{args.repeats} runs per arm, interleaved. s/step: median over the steps after "
             "the first (rank 0's `step_seconds`, which includes the gradient all-reduce); "
             "wall: the whole command (start-up, two 16-problem held-out evaluations); CPU: "
             "all processes.", "",
             "| arm | s/step (median of runs) | s/step per run | wall s (median) | "
             "CPU s (median) |", "|---|---|---|---|---|"]
    for arm, results in runs.items():
        per_step = [r["s_per_step"] for r in results]
        lines.append(f"| {arm} | {statistics.median(per_step):.2f} | "
                     f"{', '.join(f'{s:.2f}' for s in per_step)} | "
                     f"{statistics.median(r['wall_s'] for r in results):.1f} | "
                     f"{statistics.median(r['cpu_s'] for r in results):.1f} |")
    step = {arm: statistics.median(r["s_per_step"] for r in results)
            for arm, results in runs.items()}
    lines += ["", f"Speed-up of 2 DDP ranks over 1 process: "
              f"{step['1 process'] / step['2 ranks (DDP)']:.2f}x per step; 2 FSDP ranks: "
              f"{step['1 process'] / step['2 ranks, FSDP']:.2f}x (FSDP gathers each block's "
              "weights for every forward pass, generation included, which a model that fits "
              "one device does not need).", "",
              "## The same step", "",
              "One update on the same global batch (8 problems x 4 samples, sampled alike by "
              "every process), 1 process on all groups vs 2 gloo ranks on half each: the "
              "largest absolute difference of any parameter (and of the summed gradient) "
              "afterwards. The gradients agree to float32 rounding; AdamW's first step, "
              "g / (|g| + eps) per element, moves every parameter by up to lr (2e-4) and so "
              "turns a rounding difference in a near-zero gradient into a larger one.", "",
              "| setting | max abs difference, 2 ranks vs 1 | rank 1 vs rank 0 | "
              "max abs value |", "|---|---|---|---|"]
    lines += [f"| {name} | {a:.1e} | {b:.1e} | {c:.2g} |"
              for name, (a, b, c) in differences.items()]
    lines += ["", "The same with the 2 ranks sharding the model (FSDP, its settings):", "",
              "| setting | max abs difference, 2 ranks vs 1 | rank 1 vs rank 0 | "
              "max abs value |", "|---|---|---|---|"]
    lines += [f"| {name} | {a:.1e} | {b:.1e} | {c:.2g} |"
              for name, (a, b, c) in sharded.items()]
    args.report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
