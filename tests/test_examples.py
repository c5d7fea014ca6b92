"""Every `examples/*.py` runs to completion in smoke mode.

Convention for example authors: an example reads the environment variable `RLVR_SMOKE`; when
it is "1" the example shrinks its budget (steps, problems, samples) so that it finishes in
seconds on a CPU, while still running every line of the tutorial. Outputs go under `runs/`
relative to the working directory, which this test points at a temporary folder.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_in_smoke_mode(script, tmp_path):
    env = {**os.environ, "RLVR_SMOKE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM":
           "false", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout}\n{result.stderr}"
