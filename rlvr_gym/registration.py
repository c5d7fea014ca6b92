"""Gymnasium ids of rlvr-gym. Importing `rlvr_gym` registers them (Gymnasium 1.x has no
plugin discovery), or use `gymnasium.make("rlvr_gym:rlvr/Arithmetic-v0")` without importing."""

from __future__ import annotations

import gymnasium as gym

#: id -> (entry point, default kwargs)
ENV_IDS: dict[str, tuple[str, dict]] = {
    "rlvr/Arithmetic-v0": ("rlvr_gym.envs.registry:make_task_env", {"task": "arithmetic"}),
    "rlvr/ArithmeticChain-v0": ("rlvr_gym.envs.registry:make_task_env", {"task": "chain"}),
    "rlvr/LinearEquation-v0": ("rlvr_gym.envs.registry:make_task_env", {"task": "linear"}),
    "rlvr/Fractions-v0": ("rlvr_gym.envs.registry:make_task_env", {"task": "fractions"}),
    "rlvr/PolynomialRoots-v0": ("rlvr_gym.envs.registry:make_task_env", {"task": "roots"}),
    "rlvr/Countdown-v0": ("rlvr_gym.envs.registry:make_task_env", {"task": "countdown"}),
    "rlvr/MathDataset-v0": ("rlvr_gym.envs.registry:make_task_env", {"task": "dataset"}),
    "rlvr/CodeProblems-v0": ("rlvr_gym.envs.code_tasks:make_code_env", {"task": "problems"}),
    "rlvr/CodeDataset-v0": ("rlvr_gym.envs.code_tasks:make_code_env", {"task": "dataset"}),
}


def register_envs() -> None:
    """Register every id in `ENV_IDS` (idempotent)."""
    for env_id, (entry_point, kwargs) in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, kwargs=dict(kwargs))
