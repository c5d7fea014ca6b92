"""`rlvr_gym.integrations.verl`: dataset rows that name env, options and problem, and a
`compute_score` that judges through that env (verl itself is not needed)."""

from __future__ import annotations

import json
import threading

import gymnasium as gym
import pytest

from rlvr_gym.envs import PromptFormat
from rlvr_gym.integrations.verl import compute_score, score_response, verl_rows
from rlvr_gym.types import Status, Verdict


def test_rows_name_the_env_its_options_and_the_problem():
    rows = verl_rows("rlvr/Arithmetic-v0", size=3, start=4, split="test", max_digits=1, seed=1)
    env = gym.make("rlvr/Arithmetic-v0", max_digits=1, seed=1)
    for k, row in enumerate(rows):
        obs, info = env.reset(options={"index": 4 + k})
        assert row == {"data_source": "rlvr/Arithmetic-v0",
                       "prompt": [{"role": "user", "content": obs}], "ability": "math",
                       "reward_model": {"style": "rule", "ground_truth": info["problem_id"]},
                       "extra_info": {"split": "test", "index": 4 + k,
                                      "env_kwargs": '{"max_digits": 1, "seed": 1}'}}
    assert verl_rows("rlvr/CodeProblems-v0", size=1)[0]["ability"] == "code"


def test_compute_score_judges_on_the_rows_env_and_problem():
    rows = verl_rows("rlvr/Arithmetic-v0", size=2, max_digits=1, seed=1)
    env = gym.make("rlvr/Arithmetic-v0", max_digits=1, seed=1)
    for row in rows:
        problem_id = row["reward_model"]["ground_truth"]
        solution = env.reset(options={"problem_id": problem_id})[1]["solution"]
        args = (row["data_source"], solution, problem_id)
        assert compute_score(*args, row["extra_info"]) == {"score": 1.0, "acc": 1.0,
                                                             "usable": 1.0}
        by_hand = {"env_kwargs": json.loads(row["extra_info"]["env_kwargs"])}  # a dict works
        assert compute_score(*args, by_hand)["score"] == 1.0
    # without the options it is another env (seed 0), where the id does not exist
    with pytest.raises(KeyError, match="not an id of this source"):
        compute_score("rlvr/Arithmetic-v0", "\\boxed{1}", rows[0]["reward_model"]["ground_truth"])
    default = verl_rows("rlvr/Countdown-v0", size=1)[0]
    assert compute_score(default["data_source"], "\\boxed{1}",
                         default["reward_model"]["ground_truth"]) == {"score": 0.0, "acc": 0.0,
                                                                       "usable": 1.0}


def test_each_thread_scores_on_its_own_env():
    row = verl_rows("rlvr/Countdown-v0", size=1)[0]
    results = []

    def work():
        results.append(compute_score(row["data_source"], "\\boxed{(7 + 16 - 8) * 13}",
                                     row["reward_model"]["ground_truth"], row["extra_info"]))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [{"score": 1.0, "acc": 1.0, "usable": 1.0}] * 4


class Failing:
    def verify(self, response, problem):
        return Verdict(Status.TIMEOUT, 0.0, None, "worker timed out")


def test_an_unusable_verdict_scores_0_and_is_flagged():
    env = gym.make("rlvr/Arithmetic-v0", verifier=Failing())
    problem_id = env.reset(seed=0)[1]["problem_id"]
    assert score_response(env, problem_id, "\\boxed{3}") == {"score": 0.0, "acc": 0.0,
                                                             "usable": 0.0}


def test_options_that_are_not_json_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="pass a prompt as its template string"):
        verl_rows("rlvr/Arithmetic-v0", size=1, prompt=PromptFormat("{question}\n"))
