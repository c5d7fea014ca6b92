"""The package builds as users install it: no warnings from our pyproject.toml, the data
(sample datasets, bundled models) in the wheel, the version `rlvr-gym --version` prints."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import rlvr_gym

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "rlvr_gym", "envs", "verifiers", "wrappers", "agents")


def test_wheel_builds_without_warnings_and_ships_the_data(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:  # a copy: building writes build/ and *.egg-info next to the sources
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "wheels"), str(src)],
        capture_output=True, text=True, timeout=300)
    output = build.stdout + build.stderr
    assert build.returncode == 0, output
    assert "warning" not in output.lower(), output
    (wheel,) = (tmp_path / "wheels").glob("rlvr_gym-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"rlvr_gym-{rlvr_gym.__version__}.dist-info/METADATA").decode()
    assert {"rlvr_gym/py.typed", "rlvr_gym/data/sample_math.jsonl",
            "rlvr_gym/data/tiny-model/model.safetensors", "rlvr_gym/envs/spaces.py"} <= names
    assert f"\nVersion: {rlvr_gym.__version__}\n" in metadata
    assert "\nLicense-Expression: Apache-2.0\n" in metadata
