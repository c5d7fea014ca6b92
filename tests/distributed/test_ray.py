"""Environments and verification on Ray, on a local two-node cluster started here: the same
results as the local path, actors on both nodes, and killed workers retried or reported as
`error` verdicts (never a lost or wrong reward)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

ray = pytest.importorskip("ray", reason='Ray tests need ray: pip install "rlvr-gym[ray]"')

from ray.cluster_utils import Cluster  # noqa: E402

from rlvr_gym import Problem  # noqa: E402
from rlvr_gym.agents.rollout import score  # noqa: E402
from rlvr_gym.distributed.ray_env import RayVectorEnv  # noqa: E402
from rlvr_gym.distributed.ray_verifier import (  # noqa: E402
    RayVerifierPool,
    distribute_verification,
)
from rlvr_gym.envs.tasks.code_problems import CodeProblemSource  # noqa: E402
from rlvr_gym.types import Status, Verdict  # noqa: E402
from rlvr_gym.verifiers.code import CodeVerifier, CodeVerifierConfig  # noqa: E402
from rlvr_gym.verifiers.math import MathVerifier  # noqa: E402

# The actors unpickle this module's helpers: send them by value (the workers need not import
# the tests).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

HALF = 0.5  # Ray CPUs per actor: two fit on one node, so only SPREAD puts them on both
BLANK = "```python\nx = 0\n```"


@pytest.fixture(scope="module")
def cluster():
    """A head (1 CPU) and a second node (1 CPU) on this machine, this process connected."""
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, connect=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


class SlowJudge:
    """Correct iff the response is the answer, after `delay` seconds; touches a file named
    by its pid in `marks` when it starts a pair; the response "die" kills its process."""

    def __init__(self, marks: str, delay: float) -> None:
        self.marks, self.delay = marks, delay

    def verify(self, response: str, problem: Problem) -> Verdict:
        Path(self.marks, str(os.getpid())).touch()
        if response == "die":
            os._exit(1)
        time.sleep(self.delay)
        ok = response == problem.answer
        return Verdict(Status.CORRECT if ok else Status.INCORRECT, float(ok), response, "judged")


def arithmetic(n: int) -> list[Problem]:
    env = gym.make("rlvr/Arithmetic-v0", seed=0)
    return [env.reset(options={"index": i})[1]["problem"] for i in range(n)]


def kill_when_started(marks: Path, work: threading.Thread, errors: list,
                      timeout_s: float = 120.0) -> int:
    """SIGKILL the first worker that starts verifying (its pid's mark appears) and return its
    pid. Whichever worker it is: on a loaded machine Ray may replace an actor before it gets
    work, so a pid read beforehand can be gone. The wait is long for the same reason; it fails
    at once, with the error, when the `work` thread ended without any worker starting."""
    deadline = time.monotonic() + timeout_s
    while not (started := [p for p in marks.iterdir() if p.name.isdigit()]):
        assert not errors, f"the work failed before a worker started: {errors[0]!r}"
        assert work.is_alive(), "the work ended without a worker verifying anything"
        assert time.monotonic() < deadline, "no worker started verifying"
        time.sleep(0.02)
    victim = int(started[0].name)
    os.kill(victim, signal.SIGKILL)
    return victim


def in_background(fn):
    """Run `fn` in a thread: (thread, [its result] once done, [its exception] if it raised)."""
    out: list = []
    errors: list = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # reported by kill_when_started or the test's asserts
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, out, errors


# -- RayVerifierPool -----------------------------------------------------------------------


def test_spread_puts_the_workers_on_both_nodes(cluster):
    nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    assert len(nodes) == 2
    with RayVerifierPool(MathVerifier(), 2, num_cpus=HALF) as pool:
        where = pool.workers()
    assert {w["node_id"] for w in where} == nodes
    assert len({w["pid"] for w in where}) == 2


def test_code_verdicts_equal_the_local_verifiers(cluster):
    problems = list(CodeProblemSource())[:5]
    wrong = "```python\nimport sys\nsys.exit(3)\n```"
    responses = ([p.solution for p in problems] + [BLANK] * 5 + [wrong] * 5
                 + ["no code here", "```python\ndef (:\n```"])
    targets = problems * 3 + problems[:2]
    config = CodeVerifierConfig(workers=1)
    with CodeVerifier(config) as local:
        expected = local.verify_batch(responses, targets)
        shared = local.verify_batch(responses[:4], targets[:1])
    with RayVerifierPool(CodeVerifier(config), 2, chunk_size=4, num_cpus=HALF) as pool:
        got = pool.verify_batch(responses, targets)
        assert pool.verify_batch(responses[:4], targets[:1]) == shared
        assert pool.verify(responses[0], targets[0]) == expected[0]
    assert got == expected  # in order, equal statuses, scores, reasons and usable flags
    statuses = {v.status for v in got}
    assert statuses == {Status.CORRECT, Status.INCORRECT, Status.NO_ANSWER}
    assert sum(v.correct for v in got) == 5


def test_math_verdicts_equal_the_local_verifiers(cluster):
    problems = arithmetic(6)
    responses = [f"so \\boxed{{{p.answer}}}" for p in problems[:3]] + [
        "\\boxed{-1}", "no answer at all", f"the answer is {problems[5].answer}"]
    local = MathVerifier()
    expected = [local.verify(r, p) for r, p in zip(responses, problems, strict=True)]
    with RayVerifierPool(MathVerifier(), 2, num_cpus=HALF) as pool:  # no verify_batch
        got = pool.verify_batch(responses, problems)
    assert got == expected
    assert [v.correct for v in got] == [True, True, True, False, False, True]


def test_a_worker_killed_mid_batch_is_restarted_and_its_chunk_retried(cluster, tmp_path):
    problems = arithmetic(6)
    responses = [p.answer for p in problems[:4]] + ["1234567", "x"]
    with RayVerifierPool(SlowJudge(str(tmp_path), 0.3), 2, num_cpus=HALF,
                         max_retries=2) as pool:
        thread, out, errors = in_background(lambda: pool.verify_batch(responses, problems))
        victim = kill_when_started(tmp_path, thread, errors)
        thread.join(60)
        assert victim not in {w["pid"] for w in pool.workers()}  # Ray restarted it
    expected = [SlowJudge(str(tmp_path), 0).verify(r, p)
                for r, p in zip(responses, problems, strict=True)]
    assert out == [expected]


def test_a_chunk_that_keeps_killing_its_worker_gets_error_verdicts(cluster, tmp_path):
    problems = arithmetic(4)
    responses = ["die", problems[1].answer, problems[2].answer, "wrong"]
    with RayVerifierPool(SlowJudge(str(tmp_path), 0), 2, chunk_size=2, num_cpus=HALF,
                         max_retries=1) as pool:
        got = pool.verify_batch(responses, problems)
        # the pool goes on: Ray restarted the dead worker
        again = pool.verify_batch(responses[1:], problems[1:])
    judge = SlowJudge(str(tmp_path), 0)
    assert again == [judge.verify(r, p) for r, p in zip(responses[1:], problems[1:],
                                                         strict=True)]
    assert len(got) == 4
    for verdict in got[:2]:  # the chunk of the killer, and its innocent neighbour
        assert verdict.status is Status.ERROR and not verdict.usable and verdict.score == 0
        assert "Ray worker failed (up to 1 retries)" in verdict.reason
    assert [(v.status, v.score, v.usable) for v in got[2:]] == [
        (Status.CORRECT, 1.0, True), (Status.INCORRECT, 0.0, True)]


def test_bad_arguments_say_how_to_fix_them(cluster):
    with pytest.raises(ValueError, match="num_workers must be an int >= 1"):
        RayVerifierPool(MathVerifier(), 0)
    with pytest.raises(ValueError, match="num_workers must be an int >= 1"):
        RayVerifierPool(MathVerifier(), "2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk_size must be an int >= 1"):
        RayVerifierPool(MathVerifier(), 1, chunk_size=0)
    with pytest.raises(ValueError, match="max_retries must be an int >= 0"):
        RayVerifierPool(MathVerifier(), 1, max_retries=-1)
    with pytest.raises(ValueError, match="num_cpus must be a positive number"):
        RayVerifierPool(MathVerifier(), 1, num_cpus=0)
    with pytest.raises(ValueError, match="must have a verify"):
        RayVerifierPool(object(), 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_envs must be an int >= 1 with an env id"):
        RayVectorEnv("rlvr/Arithmetic-v0", 0)
    with pytest.raises(ValueError, match="env_kwargs go with an env id"):
        RayVectorEnv([lambda: gym.make("rlvr/Arithmetic-v0")], env_kwargs={"seed": 1})
    with pytest.raises(RuntimeError, match="lower the number of workers or num_cpus"):
        RayVerifierPool(MathVerifier(), 3, start_timeout_s=1)  # 3 CPUs asked, 2 there
    with pytest.raises(RuntimeError, match="failed to start .ValueError: unknown problems "
                       "options .'seed'.; valid"):  # the env fn's own error, on one line
        RayVectorEnv([lambda: gym.make("rlvr/CodeProblems-v0", seed=1)], num_cpus=HALF)
    with RayVerifierPool(MathVerifier(), 1, num_cpus=HALF) as pool:
        problem = arithmetic(1)[0]
        with pytest.raises(ValueError, match="give one problem per response"):
            pool.verify_batch(["a", "b", "c"], [problem, problem])
        with pytest.raises(ValueError, match="decode tokens first"):
            pool.verify_batch([b"\\boxed{1}"], [problem])  # type: ignore[list-item]
    with pytest.raises(RuntimeError, match="closed; build a new one"):
        pool.verify("x", problem)


def test_distributed_env_scores_as_the_local_env(cluster):
    local = gym.make("rlvr/CodeProblems-v0")
    remote = gym.make("rlvr/CodeProblems-v0")
    pool = distribute_verification(remote, 2, num_cpus=HALF)
    try:
        assert remote.unwrapped.verifier is pool
        ids = [local.reset(options={"index": i})[1]["problem_id"] for i in range(4)]
        solutions = [local.unwrapped.source[i].solution for i in range(4)]
        actions = solutions + [BLANK] * 4
        want, got = score(local, ids * 2, actions), score(remote, ids * 2, actions)
        assert got == want
        assert [s.reward for s in got] == [1.0] * 4 + [0.0] * 4
    finally:
        local.close()
        remote.close()


# -- RayVectorEnv ----------------------------------------------------------------------------


def assert_same(a, b):
    """Equal vector-env outputs: tuples of text, arrays, infos with object arrays."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert all(x == y for x, y in zip(a.tolist(), b.tolist(), strict=True)), (a, b)
    else:
        assert type(a) is type(b) and a == b, (a, b)


@pytest.mark.parametrize(("env_id", "kwargs", "mode"), [
    ("rlvr/Arithmetic-v0", {"seed": 0}, "NextStep"),
    ("rlvr/Arithmetic-v0", {"seed": 0, "max_attempts": 2}, "SameStep"),
    ("rlvr/CodeProblems-v0", {}, "NextStep")])
def test_ray_vector_env_equals_sync_vector_env(cluster, env_id, kwargs, mode):
    fns = [lambda: gym.make(env_id, **kwargs)] * 2
    sync = gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)
    remote = RayVectorEnv(fns, num_cpus=HALF, autoreset_mode=mode)
    try:
        assert len({w["node_id"] for w in remote.workers()}) == 2
        assert remote.single_observation_space == sync.single_observation_space
        assert remote.action_space == sync.action_space
        assert remote.observation_space == sync.observation_space
        first = sync.reset(seed=7)
        assert_same(remote.reset(seed=7), first)
        answers = [p.solution if p.kind == "code" else f"\\boxed{{{p.answer}}}"
                   for p in first[1]["problem"]]
        for actions in ((answers[0], "wrong"), ("wrong", answers[1]), ("a", "b")):
            want = sync.step(actions)  # the third step autoresets the finished episodes
            assert_same(remote.step(actions), want)
        attempts = kwargs.get("max_attempts", 1)
        assert remote.get_attr("max_attempts") == sync.get_attr("max_attempts") == \
            (attempts, attempts)
        if mode == "SameStep":
            assert "final_obs" in want[4]
    finally:
        sync.close()
        remote.close()


def test_score_through_a_ray_vector_env_equals_the_local_env(cluster):
    local = gym.make("rlvr/CodeProblems-v0")
    remote = RayVectorEnv("rlvr/CodeProblems-v0", 2, num_cpus=HALF)
    try:
        pinned = local.unwrapped.source[5]
        problems = [local.unwrapped.source[i].id for i in range(3)] * 2 + [pinned]
        actions = [local.unwrapped.source[i].solution for i in range(3)] + [BLANK] * 3 + [
            "no code"]
        got = score(remote, problems, actions)
        want = score(local, problems, actions)
        assert [(s.reward, s.usable, s.correct, s.verdict.status) for s in got] == \
            [(s.reward, s.usable, s.correct, s.verdict.status) for s in want]
        assert got == want
        with pytest.raises(gym.error.ResetNeeded, match="call reset"):
            remote.step(("a", "b"))
    finally:
        local.close()
        remote.close()


def slow_arithmetic(marks: str, delay: float) -> gym.Env:
    return gym.make("rlvr/Arithmetic-v0", seed=0, verifier=SlowJudge(marks, delay))


def test_a_sub_env_killed_during_score_batch_is_retried(cluster, tmp_path):
    marks = str(tmp_path)
    problems = arithmetic(4)
    ids = [p.id for p in problems]
    actions = [problems[0].answer, "1", problems[2].answer, problems[3].answer]
    remote = RayVectorEnv([lambda: slow_arithmetic(marks, 0.4)] * 2, num_cpus=HALF)
    try:
        thread, out, errors = in_background(lambda: remote.score_batch(ids, actions))
        kill_when_started(tmp_path, thread, errors)
        thread.join(60)
        want = score(slow_arithmetic(marks, 0), ids, actions)
        assert out == [want]
        assert [s.reward for s in want] == [1.0, 0.0, 1.0, 1.0]
        remote.reset(seed=0)
        assert remote.step(("1", "2"))[1].tolist() == [0.0, 0.0]
        # a sub-env killed between steps loses its episode: step says so, reset goes on
        os.kill(remote.workers()[0]["pid"], signal.SIGKILL)
        with pytest.raises((RuntimeError, gym.error.ResetNeeded), match="reset"):
            remote.step(("1", "2"))
        first = remote.reset(seed=0)
        assert first[1]["problem_id"].tolist() == [
            slow_arithmetic(marks, 0).reset(seed=s)[1]["problem_id"] for s in (0, 1)]
    finally:
        remote.close()


# -- CLI and benchmark -------------------------------------------------------------------------


def test_cli_train_with_ray_verifiers_gives_the_same_metrics(cluster, tmp_path, capsys):
    from rlvr_gym.cli import main

    tiny = ["--steps", "1", "--no-progress", "--threads", "1", "--set", "prompts_per_step=2",
            "--set", "group_size=2", "--set", "eval_problems=4", "--set", "eval_samples=0",
            "--set", "warmup_steps=0"]
    summaries = []
    for name, extra in (("local", []), ("ray", ["--ray-verifiers", "2"])):
        assert main(["train", "--output", str(tmp_path / name), *tiny, *extra]) == 0
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        metrics = [json.loads(line) for line in
                   (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        summaries.append((summary["before"], summary["after"],
                          [{k: v for k, v in m.items() if not k.endswith(("_per_s", "_seconds"))}
                           for m in metrics]))
    assert summaries[0] == summaries[1]
    assert summaries[0][2][1]["reward"] > 0  # rewards to compare, not only zeros
    evals = []
    for extra in ([], ["--ray-verifiers", "2"]):
        capsys.readouterr()
        assert main(["eval", str(tmp_path / "local" / "agent"), "--problems", "4",
                     "--samples", "2", "--k", "1", "--no-progress", *extra]) == 0
        evals.append(json.loads(capsys.readouterr().out))
    assert evals[0] == evals[1] and evals[0]["accuracy"] > 0
    with pytest.raises(SystemExit, match="--ray-verifiers must be at least 1"):
        main(["train", "--output", str(tmp_path / "bad"), *tiny, "--ray-verifiers", "0"])
    with pytest.raises(SystemExit, match="--ray-address needs --ray-verifiers N"):
        main(["eval", "--ray-address", "auto", "--problems", "1", "--samples", "0"])


def test_benchmark_quick_mode_writes_its_report_only_where_told(cluster, tmp_path):
    from benchmarks import ray_verification

    recorded = ray_verification.RESULTS.read_text() if ray_verification.RESULTS.exists() \
        else None
    report = tmp_path / "report.md"
    ray_verification.main(["--quick", "--report", str(report)])
    text = report.read_text()
    for arm in ("local CodeVerifier.verify_batch", "Ray pool, 1 worker", "Ray pool, 2 workers"):
        assert arm in text
    assert "verifications/s" in text and "Command:" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "/s" not in line]
    assert len(rows) == 3 and all(float(row.split("|")[3]) > 0 for row in rows)
    now = ray_verification.RESULTS.read_text() if ray_verification.RESULTS.exists() else None
    assert now == recorded  # --quick never overwrites the recorded table
