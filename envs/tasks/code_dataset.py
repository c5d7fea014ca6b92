"""`rlvr/CodeDataset-v0`: programming problems from your own data (`CodeFileSource`): a local
file (JSON lines, JSON, CSV, Parquet, gzip-compressed or not), a Hugging Face `datasets`
dataset saved to disk, or a hub name.

Options: `path` or `hub` (neither: a small MBPP-style sample shipped in the package), `preset`
(`mbpp`, the default, `humaneval`, `apps` or `native`), `completion` (HumanEval's completion
convention) and any `CodeFileConfig` field.
"""

from functools import partial

from rlvr_gym.envs.code_tasks import CodeFileSource
from rlvr_gym.envs.files import dataset_source
from rlvr_gym.registration import register_task

register_task("rlvr/CodeDataset-v0", "dataset",
              partial(dataset_source, CodeFileSource.from_preset, "sample_code.jsonl",
                      preset="mbpp"),
              kind="code", description="your MBPP/HumanEval/APPS-style data (path=, hub=, preset=) "
              "or a sample")
