"""Bad dataset rows, through the env ids: every one is a ValueError naming the file and the line
or row and saying what to fix, never a bare AttributeError, KeyError or UnicodeDecodeError."""

from __future__ import annotations

import json
import re

import gymnasium as gym
import pytest

import rlvr_gym  # noqa: F401  (registers the rlvr/... ids)

GOOD_MATH = {"problem": "What is $1+1$?", "solution": "$\\boxed{2}$"}
GOOD_CODE = {"task_id": 1, "text": "Write add(a, b).", "code": "def add(a, b): return a + b",
             "test_list": ["assert add(1, 2) == 3"]}


def write(path, lines: list[bytes]):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


def row(value) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize("env_id, good", [("rlvr/MathDataset-v0", GOOD_MATH),
                                          ("rlvr/CodeDataset-v0", GOOD_CODE)])
@pytest.mark.parametrize("bad, message", [
    (b"[1, 2, 3]", "a JSON list where a JSON object was expected"),
    (b'"just a string"', "a JSON str where a JSON object was expected"),
    (b"null", "a JSON NoneType where a JSON object was expected"),
    ('{"problem": "caf\u00e9"}'.encode("latin-1"), "not UTF-8 text .*convert the file to UTF-8"),
    (b'{"n": ' + b"1" * 5000 + b"}", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
])
def test_a_malformed_line_names_the_file_and_line(tmp_path, env_id, good, bad, message):
    path = write(tmp_path / "data.jsonl", [row(good), b"", bad, row(good)])
    with pytest.raises(ValueError, match=f"^{re.escape(path)}:3: {message}"):
        gym.make(env_id, path=path)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = write(tmp_path / "bom.jsonl", [b"\xef\xbb\xbf" + row(GOOD_MATH)])
    env = gym.make("rlvr/MathDataset-v0", path=path)
    assert env.unwrapped.source[0].answer == "2"


def test_a_missing_id_field_names_the_row_and_the_fields_it_has(tmp_path):
    path = write(tmp_path / "ids.jsonl", [row({**GOOD_MATH, "uid": "a"}), row(GOOD_MATH)])
    with pytest.raises(ValueError, match=rf"^{re.escape(path)} row 1: no field 'uid' \(the row "
                                         r"has \['problem', 'solution'\]\)"):
        gym.make("rlvr/MathDataset-v0", path=path, id_field="uid")


@pytest.mark.parametrize("env_id, good, id_field", [
    ("rlvr/MathDataset-v0", GOOD_MATH, "uid"), ("rlvr/CodeDataset-v0", GOOD_CODE, "task_id")])
def test_duplicate_ids_name_both_rows(tmp_path, env_id, good, id_field):
    rows = [row({**good, id_field: "x"}), row({**good, id_field: "y"}),
            row({**good, id_field: "x"})]
    path = write(tmp_path / "dup.jsonl", rows)
    with pytest.raises(ValueError, match=rf"^{re.escape(path)} .*rows 0 and 2 have the same id "
                                         "'x'; ids must be unique"):
        gym.make(env_id, path=path, id_field=id_field)


def test_code_rows_with_unusable_fields_are_skipped_with_a_named_reason(tmp_path):
    humaneval = {"task_id": "h", "prompt": "def f():\n", "canonical_solution": "  return 1\n",
                 "test": "def check(candidate):\n    assert candidate() == 1\n"}
    path = write(tmp_path / "he.jsonl", [row(humaneval)])  # no entry_point field
    with pytest.raises(ValueError, match=rf"no usable problems \({re.escape(path)} row 0: no "
                                         "field 'entry_point'"):
        gym.make("rlvr/CodeDataset-v0", path=path, preset="humaneval")
    apps = {"problem_id": 1, "question": "Echo.", "input_output": "[1, 2]"}
    path = write(tmp_path / "apps.jsonl", [row(apps)])
    with pytest.raises(ValueError, match=rf"{re.escape(path)} row 0: input_output must be a "
                                         "JSON object"):
        gym.make("rlvr/CodeDataset-v0", path=path, preset="apps")


def test_a_corrupt_parquet_file_is_named(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: not a readable Parquet"):
        gym.make("rlvr/MathDataset-v0", path=str(path))
