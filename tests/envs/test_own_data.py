"""Your own data in every shape the dataset envs read: gzip-compressed files, JSON lists, CSV,
Hugging Face `datasets` datasets (saved to disk, in memory, or by a hub name, mocked here:
nothing is downloaded). Tests build their own data."""

from __future__ import annotations

import gzip
import json
import re
import sys

import gymnasium as gym
import pytest

import rlvr_gym  # noqa: F401  (registers the rlvr/... ids)
from rlvr_gym.envs.files import FileConfig, FileSource, SkippedRowsWarning

ROWS = [{"question": "Tom has 3 boxes of 12 eggs. How many eggs?",
         "answer": "3 * 12 = <<3*12=36>>36 eggs.\n#### 36"},
        {"question": "What is 7 times 6?", "answer": "7 * 6 = 42\n#### 42"},
        {"question": "Half of 50?", "answer": "50 / 2 = 25\n#### 25"}]
CODE_ROWS = [{"task_id": 1, "text": "Write add(a, b).", "code": "def add(a, b): return a + b",
              "test_list": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]}]
ANSWERS = ["36", "42", "25"]


def answers(**options) -> list[str]:
    env = gym.make("rlvr/MathDataset-v0", preset="gsm8k", **options)
    return [p.answer for p in env.unwrapped.source]


def jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_gzip_files_are_read_whatever_their_name(tmp_path):
    (tmp_path / "g.jsonl.gz").write_bytes(gzip.compress(jsonl(ROWS)))
    (tmp_path / "named_plain.jsonl").write_bytes(gzip.compress(jsonl(ROWS)))
    assert answers(path=str(tmp_path / "g.jsonl.gz")) == ANSWERS
    assert answers(path=str(tmp_path / "named_plain.jsonl")) == ANSWERS
    assert answers(path=str(tmp_path / "g.jsonl.gz"), limit=2) == ANSWERS[:2]


def test_a_truncated_gzip_file_is_named(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl(ROWS * 50))[:60])
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: not a readable gzip file"):
        answers(path=str(path))


def test_json_lists_json_lines_and_csv(tmp_path):
    (tmp_path / "list.json").write_text(json.dumps(ROWS, indent=1))
    (tmp_path / "lines.json").write_bytes(jsonl(ROWS))
    csv_text = "question,answer\n" + "".join(
        f'"{r["question"]}","{r["answer"]}"\n' for r in ROWS)
    (tmp_path / "rows.csv").write_text(csv_text)
    (tmp_path / "rows.csv.gz").write_bytes(gzip.compress(csv_text.encode()))
    for name in ("list.json", "lines.json", "rows.csv", "rows.csv.gz"):
        assert answers(path=str(tmp_path / name)) == ANSWERS, name
    assert answers(path=str(tmp_path / "rows.csv"), limit=1) == ANSWERS[:1]


@pytest.mark.parametrize("name, content, message", [
    ("bad.json", '[{"question": "q"}, 3]', "item 1 of the list is a JSON int"),
    ("bad.json", '[{"question": "q"},', "not valid JSON"),
    ("bad.csv", "question,answer\nq,a,extra\n", ":2: more values than the header names"),
])
def test_malformed_json_and_csv_files_say_what_is_wrong(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}.*{message}"):
        answers(path=str(path))


def test_unusable_rows_are_counted_and_warned_about_never_dropped_silently(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_bytes(jsonl(ROWS + [{"question": "No answer", "answer": "none"},
                                   {"question": "", "answer": "#### 1"}]))
    with pytest.warns(SkippedRowsWarning, match=r"^skipped 2 of 5 rows, which are not among "
                                                r"the 3 problems; the first: .* row 3: no "):
        source = FileSource.from_preset(str(path), "gsm8k")
    assert (len(source), source.skipped) == (3, 2)
    assert source.skip_reason.endswith("row 3: no '#### answer' in field 'answer'")


def test_where_the_rows_come_from_must_be_said_once(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_bytes(jsonl(ROWS))
    with pytest.raises(ValueError, match="exactly one of path= .* and hub= .*, got both$"):
        answers(path=str(path), hub="openai/gsm8k")
    with pytest.raises(ValueError, match="split='test' picks a split of a datasets dataset; "
                                         ".* is a file"):
        answers(path=str(path), split="test")
    with pytest.raises(ValueError, match="subset= names the configuration of a hub= dataset"):
        answers(path=str(path), subset="main")


# -- Hugging Face datasets -------------------------------------------------------------------


@pytest.fixture()
def datasets():
    return pytest.importorskip("datasets", reason="pip install 'rlvr-gym[datasets]'")


def test_a_dataset_saved_to_disk(tmp_path, datasets):
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "one"))
    assert answers(path=str(tmp_path / "one")) == ANSWERS
    assert answers(path=str(tmp_path / "one"), limit=2) == ANSWERS[:2]
    with pytest.raises(ValueError, match="is a single dataset, not a dict of splits"):
        answers(path=str(tmp_path / "one"), split="test")


def test_a_dataset_dict_saved_to_disk_needs_its_split(tmp_path, datasets):
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:1]),
                                   "test": datasets.Dataset.from_list(ROWS[1:])})
    splits.save_to_disk(str(tmp_path / "dict"))
    assert answers(path=str(tmp_path / "dict"), split="test") == ANSWERS[1:]
    with pytest.raises(ValueError, match=r"has the splits \['test', 'train'\]; choose one "
                                         "with split="):
        answers(path=str(tmp_path / "dict"))
    with pytest.raises(ValueError, match=r"has no split 'validation'; its splits are"):
        answers(path=str(tmp_path / "dict"), split="validation")


def test_a_dataset_object_and_a_code_dataset(tmp_path, datasets):
    assert answers(path=datasets.Dataset.from_list(ROWS)) == ANSWERS
    datasets.Dataset.from_list(CODE_ROWS).save_to_disk(str(tmp_path / "code"))
    env = gym.make("rlvr/CodeDataset-v0", path=str(tmp_path / "code"))
    problem = env.unwrapped.source[0]
    assert problem.tests["asserts"] == CODE_ROWS[0]["test_list"]
    assert env.unwrapped.verifier.verify(problem.solution, problem).correct
    env.close()


def test_a_directory_that_is_not_a_saved_dataset_is_named(tmp_path, datasets):
    with pytest.raises(ValueError, match="a directory, but not a dataset saved by datasets"):
        answers(path=str(tmp_path))


def test_a_hub_name_goes_to_load_dataset(monkeypatch, datasets):
    calls = []

    def load_dataset(name, subset=None, split=None):
        calls.append((name, subset, split))
        if name != "openai/gsm8k":
            raise datasets.exceptions.DatasetNotFoundError(f"Dataset '{name}' doesn't exist")
        return datasets.Dataset.from_list(ROWS)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    assert answers(hub="openai/gsm8k", subset="main", split="test") == ANSWERS
    assert calls == [("openai/gsm8k", "main", "test")]
    with pytest.raises(ValueError, match=r"^hub:nobody/nothing: datasets.load_dataset failed "
                                         r"\(Dataset 'nobody/nothing' doesn't exist\); check "
                                         "the name"):
        answers(hub="nobody/nothing")


def test_without_datasets_a_one_line_import_error_names_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` now fails
    with pytest.raises(ImportError) as caught:
        FileSource(FileConfig(path=str(tmp_path), solution_field="solution"))
    assert str(caught.value) == ("reading a Hugging Face datasets dataset needs the datasets "
                                 "package: pip install 'rlvr-gym[datasets]'")
