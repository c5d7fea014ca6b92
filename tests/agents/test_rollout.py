"""The one rollout path: batched verification ahead of the steps, same rewards as stepping one
sample at a time, every wrapper still seeing every step."""

from __future__ import annotations

from rlvr_gym.agents.rollout import draw, score
from rlvr_gym.envs.registry import make_task_env
from rlvr_gym.types import Status, Verdict
from rlvr_gym.wrappers.budget import LengthPenalty


class BatchJudge:
    """Correct when the response starts with the answer; records how it was called."""

    def __init__(self, batch: bool = True) -> None:
        self.single: list[str] = []
        self.batches: list[list[str]] = []
        if not batch:
            self.verify_batch = None  # type: ignore[assignment]

    def _judge(self, response, problem):
        ok = response.startswith(str(problem.answer))
        return Verdict(Status.CORRECT if ok else Status.INCORRECT, float(ok))

    def verify(self, response, problem):
        self.single.append(response)
        return self._judge(response, problem)

    def verify_batch(self, responses, problems):
        self.batches.append(list(responses))
        return [self._judge(r, p) for r, p in zip(responses, problems, strict=True)]


def env_with(verifier):
    return make_task_env("arithmetic", prompt="{question}\n", verifier=verifier,
                         operators="+", max_operands=2)


def a_batch(env, n=4):
    env.reset(seed=0)
    heads = draw(env, n)
    ids = [info["problem_id"] for _, info in heads for _ in range(3)]
    actions = [a for _, info in heads for a in (str(info["answer"]), "x", "x")]
    return ids, actions


def test_score_verifies_the_batch_once_and_matches_stepping_one_by_one():
    judge = BatchJudge()
    env = env_with(judge)
    ids, actions = a_batch(env)
    scored = score(env, ids, actions)
    # one batch, identical (problem, response) pairs verified once, no step verified alone
    assert len(judge.batches) == 1
    assert len(judge.batches[0]) == len(set(zip(ids, actions, strict=True))) == 8
    assert judge.single == []
    sequential = env_with(BatchJudge(batch=False))
    expected = []
    for pid, action in zip(ids, actions, strict=True):
        sequential.reset(options={"problem_id": pid})
        expected.append(sequential.step(action)[1])
    assert [s.reward for s in scored] == expected == [1.0, 0.0, 0.0] * 4
    assert [s.correct for s in scored] == [True, False, False] * 4
    assert all(s.usable and s.verdict is not None for s in scored)


def test_a_verdict_ahead_serves_only_the_steps_of_its_batch():
    judge = BatchJudge()
    env = env_with(judge)
    ids, actions = a_batch(env, 1)
    score(env, ids, actions)
    env.reset(options={"problem_id": ids[0]})
    env.step(actions[0])  # a fourth step of the same pair: verified again, not from the batch
    assert judge.single == [actions[0]]
    assert env.unwrapped.verify_ahead([("no/such/id", "1"), (ids[0], "z" * 10**6)]) == 0


def test_wrappers_see_every_step_of_a_batched_score():
    env = LengthPenalty(env_with(BatchJudge()), tokenizer=_CharTokenizer(), coef=0.5,
                        max_tokens=10)
    ids, actions = a_batch(env)
    rewards = [s.reward for s in score(env, ids, actions)]
    for reward, action, ok in zip(rewards, actions, [1.0, 0.0, 0.0] * 4, strict=True):
        assert reward == ok - 0.5 * min(len(action), 10) / 10


def test_a_verifier_without_batches_is_stepped_one_by_one():
    judge = BatchJudge(batch=False)
    env = env_with(judge)
    ids, actions = a_batch(env, 2)
    assert [s.reward for s in score(env, ids, actions)] == [1.0, 0.0, 0.0] * 2
    assert judge.single == actions


class _CharTokenizer:
    def encode(self, text):
        return list(text)


def test_score_pins_a_problem_object_outside_the_source():
    env = env_with(BatchJudge())
    env.reset(seed=0)
    problem = env.unwrapped.source[0]
    outside = type(problem)(id="mine/1", question="1+1", answer="2")
    result = score(env, [outside], ["2"])
    assert result[0].correct and result[0].reward == 1.0
