"""Task sources and the Gymnasium envs over them."""

from rlvr_gym.envs.env import CHARSET, PromptFormat, ReasoningEnv
from rlvr_gym.envs.files import PRESETS, FileConfig, FileSource
from rlvr_gym.envs.registry import make_source, make_task_env
from rlvr_gym.envs.sources import TaskSource

__all__ = ["CHARSET", "PRESETS", "FileConfig", "FileSource", "PromptFormat", "ReasoningEnv",
           "TaskSource", "make_source", "make_task_env"]
