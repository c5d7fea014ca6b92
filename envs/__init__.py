"""Task sources and the Gymnasium envs over them."""

from rlvr_gym.envs.code_tasks import (
    CODE_PRESETS,
    CodeFileConfig,
    CodeFileSource,
    CodeProblemsConfig,
    CodeProblemSource,
    make_code_env,
)
from rlvr_gym.envs.env import CHARSET, PromptFormat, ReasoningEnv
from rlvr_gym.envs.files import PRESETS, FileConfig, FileSource
from rlvr_gym.envs.registry import make_source, make_task_env
from rlvr_gym.envs.sources import ListSource, TaskSource

__all__ = ["CHARSET", "CODE_PRESETS", "CodeFileConfig", "CodeFileSource", "CodeProblemSource",
           "CodeProblemsConfig", "FileConfig", "FileSource", "ListSource", "PRESETS",
           "PromptFormat", "ReasoningEnv", "TaskSource", "make_code_env", "make_source",
           "make_task_env"]
