"""Monitors: pass@k, Eff-Rate, held-out evaluation and the files of a run."""

import json

import pytest
import torch

from rlvr_gym.agents.monitors import MetricsLogger, eff_rate, pass_at_k
from rlvr_gym.agents.rollout import evaluate


@pytest.mark.parametrize("n, c, k, expected", [
    (5, 2, 1, 0.4),                # c / n
    (5, 2, 2, 1 - 3 / 10),         # 1 - C(3,2)/C(5,2)
    (10, 3, 5, 1 - 21 / 252),      # 1 - C(7,5)/C(10,5)
    (4, 0, 2, 0.0),
    (4, 3, 2, 1.0),                # n - c < k: every k-subset holds a correct one
])
def test_pass_at_k_matches_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_eff_rate_counts_groups_with_reward_variance():
    assert eff_rate([[1, 0], [1, 1], [0, 0], [0, 1]]) == 0.5
    assert eff_rate([]) == 0.0


def test_evaluate_scores_the_reference_policy_as_perfect(make_env):
    env = make_env(seed=1)

    class Oracle:
        """Answers with the reference solution: accuracy and pass@k must be 1."""

        def generate(self, prompts, sampling, prefixes=None):
            from rlvr_gym.agents.policy import Generation

            out = []
            for p in prompts:
                expr = p.removeprefix("Compute ").split(".")[0]
                a, b = (int(x) for x in expr.split(" + "))
                out.append(Generation(p, "", f"\\boxed{{{a + b}}}", [], [], [0], "stop"))
            return out

    metrics = evaluate(Oracle(), env, num_problems=5, samples=2, ks=(1, 2))
    assert metrics["accuracy"] == 1.0 and metrics["pass@1"] == 1.0 and metrics["pass@2"] == 1.0


def test_logger_writes_jsonl_csv_and_png(tmp_path):
    logger = MetricsLogger(tmp_path, tensorboard=False)
    for step in range(3):
        logger.log(step, {"reward": step / 2, "eff_rate": 0.5})
    logger.log(3, {"eval/accuracy": 0.7})
    logger.close()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1]) == {"step": 3, "eval/accuracy": 0.7}
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == \
        "step,reward,eff_rate,eval/accuracy"
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_evaluate_shows_progress_per_generation_batch_with_the_same_results(policy, make_env,
                                                                            capsys):
    policy.backend.batch_size = 4  # 5 greedy + 10 sampled generations
    calls = []
    generate = policy.generate
    policy.generate = lambda prompts, *a: calls.append(len(prompts)) or generate(prompts, *a)
    results = []
    for progress_bar in (False, True):
        torch.manual_seed(0)
        results.append(evaluate(policy, make_env(seed=1), num_problems=5, samples=2,
                                ks=(1, 2), max_new_tokens=6, progress_bar=progress_bar))
    assert results[0] == results[1]
    # called per generation batch of the backend: the batches of one call, bar advancing
    assert calls == [4, 1, 4, 4, 2] * 2
    assert "held-out:   0%|          | 0/15" in capsys.readouterr().err


def test_fresh_run_dir_numbers_past_directories_that_hold_runs(tmp_path):
    from rlvr_gym.agents.monitors import fresh_run_dir

    base = tmp_path / "runs" / "example"
    assert fresh_run_dir(base) == base  # nothing there yet
    base.mkdir(parents=True)
    assert fresh_run_dir(base) == base  # an empty directory holds no run
    (base / "metrics.jsonl").write_text("{}\n")
    assert fresh_run_dir(base) == tmp_path / "runs" / "example-2"
    (tmp_path / "runs" / "example-2" / "agent").mkdir(parents=True)
    assert fresh_run_dir(base) == tmp_path / "runs" / "example-3"


def test_logger_mirrors_the_numbers_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard", reason='pip install "rlvr-gym[tensorboard]"')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = MetricsLogger(tmp_path)
    for step in range(3):
        logger.log(step, {"reward": step / 2, "note": "text is left out"})
    logger.log(3, {"eval/accuracy": 0.75})
    logger.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == ["eval/accuracy", "reward"]
    assert [(e.step, e.value) for e in events.Scalars("reward")] == [(0, 0.0), (1, 0.5),
                                                                     (2, 1.0)]
    assert [(e.step, e.value) for e in events.Scalars("eval/accuracy")] == [(3, 0.75)]


def test_logger_mirrors_the_numbers_to_wandb_and_a_continuation_resumes_its_run(
        tmp_path, wandb_offline):
    run_dir = tmp_path / "run"
    logger = MetricsLogger(run_dir, tensorboard=False, title="GRPO on rlvr/Arithmetic-v0",
                           wandb_project="rlvr-test", run_config={"lr": 0.1, "eval_k": (1, 8)})
    for step in range(3):
        logger.log(step, {"reward": step / 2, "note": "text is left out"})
    logger.log(3, {"eval/accuracy": 0.75})
    logger.close()
    (first,) = wandb_offline()
    assert (first["project"], first["name"]) == ("rlvr-test", "run")
    assert first["config"] == {"lr": 0.1, "eval_k": [1, 8]}
    numbers = [{k: v for k, v in row.items() if not k.startswith("_") or k == "_step"}
               for row in first["history"]]
    assert numbers == [{"_step": 0, "reward": 0.0}, {"_step": 1, "reward": 0.5},
                       {"_step": 2, "reward": 1.0}, {"_step": 3, "eval/accuracy": 0.75}]

    # continuing the run in its directory continues its W&B run
    logger = MetricsLogger(run_dir, tensorboard=False, continue_from=3,
                           wandb_project="rlvr-test")
    logger.log(4, {"reward": 0.25})
    logger.close()
    second = wandb_offline()[1]
    assert second["id"] == first["id"] == (run_dir / "wandb-run-id").read_text().strip()
    assert [(row["_step"], row["reward"]) for row in second["history"]] == [(4, 0.25)]
