"""`rlvr/CodeDataset-v0`: programming problems from a local JSONL or Parquet file
(`CodeFileSource`).

Options: `path` (default: a small MBPP-style sample shipped in the package), `preset` (`mbpp`,
the default, `humaneval`, `apps` or `native`) and any `CodeFileConfig` field.
"""

from functools import partial

from rlvr_gym.envs.code_tasks import CodeFileSource
from rlvr_gym.envs.files import dataset_source
from rlvr_gym.registration import register_task

register_task("rlvr/CodeDataset-v0", "dataset",
              partial(dataset_source, CodeFileSource.from_preset, "sample_code.jsonl",
                      preset="mbpp"),
              kind="code", description="your MBPP/HumanEval/APPS-style JSONL (path=, preset=) or "
              "a sample")
