"""Task sources and the Gymnasium envs over them. The tasks themselves, one module each, are in
`rlvr_gym.envs.tasks`."""

from rlvr_gym.envs.code_tasks import (
    CODE_PRESETS,
    CodeFileConfig,
    CodeFileSource,
    make_code_env,
)
from rlvr_gym.envs.env import CHARSET, PromptFormat, ReasoningEnv
from rlvr_gym.envs.files import PRESETS, FileConfig, FileSource, RowsConfig, SkippedRowsWarning
from rlvr_gym.envs.registry import make_source, make_task_env
from rlvr_gym.envs.sources import ListSource, ProceduralConfig, ProceduralSource, TaskSource

__all__ = ["CHARSET", "CODE_PRESETS", "CodeFileConfig", "CodeFileSource", "FileConfig",
           "FileSource", "ListSource", "PRESETS", "ProceduralConfig", "ProceduralSource",
           "PromptFormat", "ReasoningEnv", "RowsConfig", "SkippedRowsWarning", "TaskSource",
           "make_code_env", "make_source", "make_task_env"]
