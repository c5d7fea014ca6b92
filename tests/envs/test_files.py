"""Local dataset files: JSONL and Parquet, GSM8K and MATH layouts. Tests write their own data."""

import json

import gymnasium as gym
import pytest

from rlvr_gym.envs import FileConfig, FileSource
from rlvr_gym.envs.files import SkippedRowsWarning

GSM8K_ROWS = [
    {"question": "Tom has 3 boxes of 12 eggs. How many eggs?",
     "answer": "He has 3 * 12 = <<3*12=36>>36 eggs.\n#### 36"},
    {"question": "A shirt costs $1,250 after tax. What did it cost?",
     "answer": "It cost 1,250 dollars.\n#### 1,250"},
    {"question": "Broken row without a final answer", "answer": "no marker here"},
]
MATH_ROWS = [
    {"problem": "Compute $\\frac{1}{2}+\\frac{1}{3}$.",
     "solution": "Common denominator 6.\nSo $\\boxed{\\frac{5}{6}}$.", "level": "Level 2"},
    {"problem": "What is $2^{10}$?", "solution": "$2^{10} = \\boxed{1024}$.", "level": "Level 1"},
]


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_gsm8k_preset_reads_answers_and_strips_calculator_notes(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", GSM8K_ROWS)
    with pytest.warns(SkippedRowsWarning, match=r"skipped 1 of 3 rows, which are not among the "
                                                r"2 problems; the first: .*g\.jsonl row 2: no "
                                                "'#### answer' in field 'answer'"):
        source = FileSource.from_preset(str(path), "gsm8k")
    assert len(source) == 2 and source.skipped == 1
    first = source[0]
    assert first.answer == "36"
    assert "<<" not in first.solution and first.solution.endswith("\\boxed{36}")
    assert source[1].answer == "1,250"


def test_math_preset_takes_the_last_boxed_answer_and_level(tmp_path):
    source = FileSource.from_preset(str(write_jsonl(tmp_path / "m.jsonl", MATH_ROWS)), "math")
    assert [p.answer for p in source.problems] == ["\\frac{5}{6}", "1024"]
    assert [p.difficulty for p in source.problems] == [2.0, 1.0]


def test_parquet_files_load_like_jsonl(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "m.parquet"
    pq.write_table(pa.Table.from_pylist(MATH_ROWS), path)
    source = FileSource.from_preset(str(path), "math")
    assert [p.question for p in source.problems] == [r["problem"] for r in MATH_ROWS]


def test_custom_field_names_and_ids(tmp_path):
    rows = [{"q": "1+1?", "a": "2", "uid": "p-1"}, {"q": "2+2?", "a": "4", "uid": "p-2"}]
    config = FileConfig(path=str(write_jsonl(tmp_path / "c.jsonl", rows)), question_field="q",
                        answer_field="a", solution_field=None, answer_format="plain",
                        id_field="uid")
    source = FileSource(config)
    assert source.index_of("p-2") == 1
    assert source[1].solution == "\\boxed{4}"


def test_math_dataset_env_over_a_user_file(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", GSM8K_ROWS[:2])
    env = gym.make("rlvr/MathDataset-v0", path=str(path), preset="gsm8k")
    _, info = env.reset(options={"index": 1})
    _, reward, terminated, _, _ = env.step("The total is 1250 dollars.\n#### 1250")
    assert info["answer"] == "1,250" and reward == 1.0 and terminated


def test_non_ascii_questions_stay_inside_the_observation_space(tmp_path):
    path = write_jsonl(tmp_path / "u.jsonl", [{"problem": "Combien font 2×3 ? 🙂",
                                               "solution": "\\boxed{6}"}])
    env = gym.make("rlvr/MathDataset-v0", path=str(path))
    obs, _ = env.reset(seed=0)
    assert "🙂" in obs and env.observation_space.contains(obs)


@pytest.mark.parametrize(("content", "message"), [
    ('{"problem": "x"}\nnot json\n', "not valid JSON"),
    ('{"wrong": "field", "solution": "\\\\boxed{1}"}\n', "question_field"),
])
def test_bad_files_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        FileSource.from_preset(str(path), "math")


def test_missing_file_and_unknown_preset_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        FileSource.from_preset(str(tmp_path / "nope.jsonl"), "math")
    path = write_jsonl(tmp_path / "m.jsonl", MATH_ROWS)
    with pytest.raises(ValueError, match="gsm8k"):
        FileSource.from_preset(str(path), "aime")


def test_limit_keeps_the_first_rows_and_stops_reading_there(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", MATH_ROWS)
    with path.open("a") as f:
        f.write("this line is not JSON\n")  # never reached with a limit
    source = FileSource(FileConfig(path=str(path), limit=1))
    assert [p.answer for p in source.problems] == ["\\frac{5}{6}"]
    with pytest.raises(ValueError, match="not valid JSON"):
        FileSource(FileConfig(path=str(path)))
