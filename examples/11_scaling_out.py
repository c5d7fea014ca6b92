"""Tutorial: scale out on one machine. Verification runs on Ray workers with the same rewards
as in-process, and the learner runs as two data-parallel processes under torchrun.

    python examples/11_scaling_out.py        # about a minute on a 2-core CPU
    RLVR_SMOKE=1 python examples/11_scaling_out.py   # a few seconds: checks that it runs

Prints the mean training reward of each GRPO step twice, once with the env verifying in this
process and once with its verifier replaced by a pool of 2 Ray workers, then whether the two
runs got the same rewards (they do: the same samples get the same verdicts). It ends with the
torchrun command that trains the same agent in 2 data-parallel processes.
Needs `pip install "rlvr-gym[ray]"`. docs/scaling_out.md has the commands for several machines.
"""

import os

if __name__ == "__main__":  # Ray starts worker processes: keep the top level guarded
    import gymnasium as gym
    import ray
    import torch

    import rlvr_gym  # noqa: F401  (registers the rlvr/... env ids)
    from rlvr_gym.agents import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, GRPO, TINY_MODEL_DIR, GRPOConfig
    from rlvr_gym.distributed.ray_verifier import distribute_verification

    SMOKE = os.environ.get("RLVR_SMOKE") == "1"
    torch.set_num_threads(1)
    STEPS = 2 if SMOKE else 10
    config = GRPOConfig(prompts_per_step=4 if SMOKE else 16, group_size=4, device="cpu", seed=0)

    # 1. A local Ray "cluster" of this machine. On a real cluster: ray.init(address="HEAD:6379"),
    #    or set RAY_ADDRESS; the actors are then spread over its nodes.
    ray.init(num_cpus=2, include_dashboard=False)

    def train(on_ray: bool) -> list[float]:
        """The mean reward of each step of a short GRPO run."""
        env = gym.make(DEFAULT_ENV_ID, seed=0, **DEFAULT_ENV_KWARGS)
        if on_ray:
            # 2. The env's verifier becomes a pool of 2 Ray workers: every batch of samples the
            #    agent scores through the env is verified on them; the agent does not know.
            distribute_verification(env, 2)
        rewards: list[float] = []
        GRPO(TINY_MODEL_DIR, env, config).learn(
            STEPS, callback=lambda agent, metrics: rewards.append(metrics["reward"]),
            progress_bar=False)
        env.close()
        return rewards

    local, on_ray = train(on_ray=False), train(on_ray=True)
    print("mean reward per step, in-process verifier:", " ".join(f"{r:.3f}" for r in local))
    print("mean reward per step, Ray verifier pool:  ", " ".join(f"{r:.3f}" for r in on_ray))
    print(f"same rewards: {local == on_ray}")
    ray.shutdown()

    # 3. The learner on two processes (gloo on a CPU, NCCL on GPUs): each samples half of the
    #    step's prompts, their gradients are summed, rank 0 evaluates, logs and saves.
    print("data-parallel training: torchrun --nproc_per_node 2 -m rlvr_gym.cli train "
          "--output runs/grpo-2ranks")
