"""`rlvr/MathDataset-v0`: math problems from a local JSONL or Parquet file (`FileSource`).

Options: `path` (default: a small MATH-style sample shipped in the package), `preset`
(`math`, the default, or `gsm8k`) and any `FileConfig` field.
"""

from functools import partial

from rlvr_gym.envs.files import FileSource, dataset_source
from rlvr_gym.registration import register_task

register_task("rlvr/MathDataset-v0", "dataset",
              partial(dataset_source, FileSource.from_preset, "sample_math.jsonl", preset="math"),
              description="your JSONL/Parquet math file (path=, preset=gsm8k|math) or a sample")
