"""`rlvr/MathDataset-v0`: math problems from your own data (`FileSource`): a local file (JSON
lines, JSON, CSV, Parquet, gzip-compressed or not), a Hugging Face `datasets` dataset saved
to disk, or a hub name.

Options: `path` or `hub` (neither: a small MATH-style sample shipped in the package), `preset`
(`math`, the default, or `gsm8k`) and any `FileConfig` field.
"""

from functools import partial

from rlvr_gym.envs.files import FileSource, dataset_source
from rlvr_gym.registration import register_task

register_task("rlvr/MathDataset-v0", "dataset",
              partial(dataset_source, FileSource.from_preset, "sample_math.jsonl", preset="math"),
              description="your math data (path= file or saved dataset, hub=, preset=) or a sample")
