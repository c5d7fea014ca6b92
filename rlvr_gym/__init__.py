"""rlvr-gym: reasoning tasks as Gymnasium environments with verifiable rewards.

    import gymnasium, rlvr_gym
    env = gymnasium.make("rlvr/Arithmetic-v0")
"""

from rlvr_gym.registration import ENV_IDS, register_envs, register_task
from rlvr_gym.types import Problem, Status, Verdict, Verifier

__version__ = "0.1.0"
__all__ = ["ENV_IDS", "Problem", "Status", "Verdict", "Verifier", "register_envs",
           "register_task"]

register_envs()
