"""The README's snippets for reasoning-gym, TRL and verl run as written, each in a fresh
directory, and do what their comments say. The TRL one is the test that TRL's
`GRPOTrainer` trains on the bundled model for 2 steps on an env's rewards."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def snippet(heading: str) -> str:
    """The first Python block under the README heading `### heading`."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n### {heading}\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def run(code: str, where: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.chdir(where)
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, str(README), "exec"), namespace)
    return namespace


def test_reasoning_gym_snippet(tmp_path, monkeypatch, capsys):
    pytest.importorskip("reasoning_gym", reason='pip install "rlvr-gym[reasoning-gym]"')
    ns = run(snippet("reasoning-gym"), tmp_path, monkeypatch)
    assert ns["reward"] == 1.0 and "<answer>" in ns["prompt"]
    assert ns["info"]["problem"].meta["entry"]["metadata"]["num_terms"] == 3
    assert capsys.readouterr().out == "1.0 chain_sum score_answer: 1.0\n"


def test_trl_snippet_trains_the_bundled_model_for_two_steps(tmp_path, monkeypatch):
    pytest.importorskip("trl", reason='TRL is not installed: pip install "rlvr-gym[trl]"')
    import torch

    torch.manual_seed(0)
    code = snippet("TRL")
    start = code.index("trainer.train()")
    ns = run(code[:start], tmp_path, monkeypatch)
    before = [p.detach().clone() for p in ns["model"].parameters()]
    ns["trainer"].train()
    logs = [h for h in ns["trainer"].state.log_history if "reward" in h]
    assert ns["trainer"].state.global_step == 2 and len(logs) == 2
    assert all(0.0 <= h["rewards/rlvr_reward/mean"] <= 1.0 for h in logs)
    assert not any(math.isnan(h["reward"]) for h in logs)
    assert any(not torch.equal(a, b) for a, b in zip(before, ns["model"].parameters(),
                                                      strict=True))


def test_verl_snippet(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    import pandas as pd

    from rlvr_gym.integrations.verl import compute_score

    ns = run(snippet("verl"), tmp_path, monkeypatch)
    assert capsys.readouterr().out == "{'score': 1.0, 'acc': 1.0, 'usable': 1.0}\n"
    table = pd.read_parquet(tmp_path / "countdown_train.parquet")
    assert len(table) == 256 and list(table["data_source"].unique()) == ["rlvr/Countdown-v0"]
    row = table.iloc[5]  # a row read back from the file scores as verl would pass it
    problem = ns["rows"][5]
    assert row["reward_model"]["ground_truth"] == problem["reward_model"]["ground_truth"]
    assert compute_score(row["data_source"], "\\boxed{1 + 1}", row["reward_model"]["ground_truth"],
                         dict(row["extra_info"])) == {"score": 0.0, "acc": 0.0, "usable": 1.0}
