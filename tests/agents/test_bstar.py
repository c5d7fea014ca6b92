"""B-STaR and its baselines on the micro model: selection, optimiser continuity, the search
on the agent's path, a short run, exact resume, the step scorer and the CLI.

Several tests replace `agent.sample` with hand-made scored responses, so that what the agent
selects and fine-tunes on can be worked out by hand."""

import json

import pytest
import torch

from rlvr_gym.agents.bstar import BSTaR, BSTaRConfig, ScoredResponse
from rlvr_gym.cli import main
from rlvr_gym.envs.registry import make_task_env
from rlvr_gym.types import Status, split_prefix
from rlvr_gym.verifiers.steps import ArithmeticStepScorer

TINY = dict(queries_per_iteration=2, samples_per_query=2, search_queries=2,
            temperature_grid=(0.7, 1.0), threshold_grid=(0.0, 1.0), steps_per_iteration=2,
            batch_size=4, max_new_tokens=12, eval_problems=3, eval_samples=2, device="cpu")
SCORER = ArithmeticStepScorer(noise=0.5, seed=0)
"""The step scorer of the runs (noise 0.5, the config's seed)."""


def fake_sampler(agent, responses_by_temperature, calls):
    """Replace `agent.sample`: for every query (an `env.reset()` head), the (text, correct,
    reward) triples of the temperature; each call is recorded as (number of queries,
    temperature)."""

    def sample(queries, temperature, env=None, k=None):
        calls.append((len(queries), temperature))
        out = []
        for observation, info in queries:
            prompt, prefix = split_prefix(observation, info)
            for text, correct, reward in responses_by_temperature[temperature]:
                gen = agent.policy.samples([prompt], [text], [prefix])[0]
                out.append(ScoredResponse(info["problem_id"], text, correct, reward, gen))
        return out

    agent.sample = sample


def record_sft(agent):
    """Wrap `_sft_step` to record the texts of every fine-tuning batch."""
    seen: list[list[str]] = []
    step = agent._sft_step

    def spy(generations):
        seen.append([g.text for g in generations])
        return step(generations)

    agent._sft_step = spy
    return seen


# Per query: "a" twice and "b" correct, "x" and "y" wrong (the worked example of test_balance).
DIVERSE = [("a", True, 1.0), ("a", True, 1.0), ("b", True, 0.5), ("x", False, 0.2),
           ("y", False, -0.5)]
COLLAPSED = [("a", True, 1.0)] * 4 + [("z", False, 0.8)] * 2


def test_selection_feeds_fine_tuning_only_the_kept_responses(micro_model_dir, make_env):
    config = BSTaRConfig(**{**TINY, "mode": "online_rft", "temperature": 1.0,
                            "threshold": 0.3, "batch_size": 2, "steps_per_iteration": 3})
    agent = BSTaR(str(micro_model_dir), make_env(), config)
    fake_sampler(agent, {1.0: DIVERSE}, [])
    seen = record_sft(agent)
    metrics = agent.train_step()
    # Kept per query: a, a, b (reward > 0.3), deduplicated to {a, b}; two queries -> 4.
    assert metrics["pool_size"] == 4 and metrics["pool_accuracy"] == 1.0
    assert len(seen) == 3 and all(len(batch) == 2 for batch in seen)
    assert {t for batch in seen for t in batch} == {"a", "b"}


@pytest.mark.parametrize(("mode", "optimiser_steps", "back_to_initial"), [
    ("online_rft", 4, False), ("bstar", 4, False), ("iterative_rft", 2, False),
    ("restart", 2, True)])
def test_optimiser_continues_in_online_modes_and_resets_otherwise(
        micro_model_dir, make_env, mode, optimiser_steps, back_to_initial):
    config = BSTaRConfig(**{**TINY, "mode": mode, "threshold": 0.3,
                            "threshold_grid": (0.3,), "temperature_grid": (1.0,)})
    agent = BSTaR(str(micro_model_dir), make_env(), config)
    initial = {k: v.clone() for k, v in agent.policy.model.state_dict().items()}
    fake_sampler(agent, {1.0: DIVERSE}, [])
    agent.train_step()
    agent.train_step()
    state = next(iter(agent.optimizer.state.values()))
    assert int(state["step"]) == optimiser_steps
    assert agent.scheduler.last_epoch == optimiser_steps
    # A third iteration with nothing to keep: restart mode goes back to the initial weights,
    # the other modes keep what they learned.
    fake_sampler(agent, {1.0: [("x", False, -1.0)]}, [])
    assert agent.train_step()["skipped_update"] == 1
    now = agent.policy.model.state_dict()
    same = all(torch.equal(now[k], initial[k]) for k in initial)
    assert same == back_to_initial


def test_search_picks_the_maximising_pair_and_the_iteration_uses_it(micro_model_dir, make_env):
    config = BSTaRConfig(**{**TINY, "temperature_grid": (0.5, 1.0),
                            "threshold_grid": (0.0, 0.3, 0.9), "n_star": 2,
                            "monitor_temperature": 1.0, "queries_per_iteration": 3})
    agent = BSTaR(str(micro_model_dir), make_env(), config)
    calls: list[tuple[int, float]] = []
    fake_sampler(agent, {0.5: COLLAPSED, 1.0: DIVERSE}, calls)
    seen = record_sft(agent)
    metrics = agent.train_step()
    # Per query, n* = 2. T=1.0: tau 0 -> {a,b,x}: 2/3; tau .3 -> {a,b}: 1; tau .9 -> {a}: .5.
    # T=0.5: tau 0 and .3 -> {a,z}: .5 * .5; tau .9 -> {a}: .5.  The maximum is (1.0, 0.3).
    assert (metrics["temperature"], metrics["threshold"]) == (1.0, 0.3)
    assert metrics["balance_score"] == pytest.approx(1.0)
    # The subset was sampled at both temperatures, the 3 training queries at the chosen one,
    # and fine-tuning saw only responses above the chosen threshold.
    assert calls == [(2, 0.5), (2, 1.0), (3, 1.0)]
    assert {t for batch in seen for t in batch} == {"a", "b"}
    assert metrics["pool_size"] == 6


def test_short_learn_run_logs_monitors_and_writes_files(micro_model_dir, make_env, tmp_path):
    config = BSTaRConfig(**TINY, output_dir=str(tmp_path / "run"))
    agent = BSTaR(str(micro_model_dir), make_env(), config, eval_env=make_env(seed=1),
                  step_scorer=SCORER)
    agent.learn(total_steps=3, progress_bar=False)  # rounds up to 2 iterations of 2 steps
    assert agent.iteration == 2 and agent.num_steps == 4 and len(agent.history) == 2
    record = agent.history[-1]
    assert record["temperature"] in (0.7, 1.0) and record["threshold"] in (0.0, 1.0)
    assert 0.0 <= record["balance_score"] <= 1.0 and record["n_star"] == 4  # ceil(2*4 / 2)
    for key in ("pass_at_k", "pass_at_k_s", "distinct_equations", "best_of_k",
                "reward_at_k_s"):
        assert 0.0 <= record[f"subset/{key}"] <= 1.0
    assert [e["step"] for e in agent.eval_history] == [0, 4]
    assert {"accuracy", "pass_at_k", "pass_at_k_s"} <= set(agent.eval_history[-1])
    assert (tmp_path / "run" / "metrics.jsonl").exists()
    assert (tmp_path / "run" / "curves.png").exists()


def test_callback_returning_false_stops(micro_model_dir, make_env):
    agent = BSTaR(str(micro_model_dir), make_env(), BSTaRConfig(**TINY), step_scorer=SCORER)
    agent.learn(total_steps=10, callback=lambda a, m: False, progress_bar=False)
    assert agent.iteration == 1


@pytest.mark.parametrize("mode", ["bstar", "restart"])
def test_save_load_resumes_exactly(micro_model_dir, make_env, tmp_path, mode):
    config = BSTaRConfig(**{**TINY, "mode": mode, "lr": 1e-2})
    straight = BSTaR(str(micro_model_dir), make_env(), config, step_scorer=SCORER)
    straight.learn(total_steps=4, progress_bar=False)

    first = BSTaR(str(micro_model_dir), make_env(), config, step_scorer=SCORER)
    first.learn(total_steps=2, progress_bar=False)
    first.save(tmp_path / "agent")
    resumed = BSTaR.load(tmp_path / "agent", make_env(), step_scorer=SCORER)
    assert resumed.iteration == 1 and resumed.step_scorer is SCORER
    resumed.learn(total_steps=2, progress_bar=False)

    assert resumed.num_steps == straight.num_steps == 4 and resumed.iteration == 2
    assert len(resumed.history) == 2
    assert json.dumps(resumed.history[-1] | {"iteration_seconds": 0}, sort_keys=True) == \
        json.dumps(straight.history[-1] | {"iteration_seconds": 0}, sort_keys=True)
    for (name, a), b in zip(straight.policy.model.state_dict().items(),
                            resumed.policy.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_config_validation_and_help():
    with pytest.raises(ValueError, match="mode must be one of"):
        BSTaRConfig(mode="star")
    with pytest.raises(ValueError, match="temperatures must be > 0"):
        BSTaRConfig(temperature_grid=(0.0, 1.0))
    helps = BSTaRConfig.field_help()
    assert "balance" in helps["n_star"] or "ceil(N / M)" in helps["n_star"]
    assert set(helps) == set(BSTaRConfig.__dataclass_fields__)
    assert BSTaRConfig(steps_per_iteration=500, batch_size=135,
                       queries_per_iteration=11_500).balance_n_star() == 6  # 67,500 / 11,500


def test_cli_trains_bstar_and_resumes(tmp_path, capsys, make_env):
    out = tmp_path / "run"
    run = ["--agent", "bstar", "--steps", "1", "--no-progress", "--threads", "1",
           "--set", "steps_per_iteration=1", "--set", "queries_per_iteration=2",
           "--set", "samples_per_query=2", "--set", "search_queries=2",
           "--set", "temperature_grid=0.7,1.0", "--set", "batch_size=2",
           "--set", "eval_problems=3", "--set", "eval_samples=2"]
    assert main(["train", "--output", str(out), *run]) == 0
    assert "held-out before:" in capsys.readouterr().out
    assert (out / "agent" / "agent.json").exists()
    assert main(["train", "--resume", str(out / "agent"), "--output", str(tmp_path / "more"),
                 *run]) == 0
    saved = json.loads((tmp_path / "more" / "agent" / "agent.json").read_text())
    assert saved["num_steps"] == 2
    assert BSTaR.load(tmp_path / "more" / "agent", make_env()).iteration == 2
    assert main(["train", "--agent", "bstar", "--help-config"]) == 0
    assert "threshold_grid" in capsys.readouterr().out


def env_with(verifier):
    return make_task_env("arithmetic", prompt="{question}\n", verifier=verifier,
                         operators="+", max_operands=2)


@pytest.mark.parametrize("step_scorer", [None, ArithmeticStepScorer(noise=0.5, seed=4)])
def test_reward_is_the_answer_check_plus_the_step_score(micro_model_dir, step_scorer,
                                                        constant_verifier):
    agent = BSTaR(str(micro_model_dir), env_with(constant_verifier(Status.CORRECT)),
                  BSTaRConfig(**TINY), step_scorer=step_scorer)
    responses = agent.sample(agent.queries(agent.env, range(3)), 1.0)
    assert len(responses) == 6 and all(r.correct for r in responses)
    expected = [1.0 + (step_scorer(r.generation.response) if step_scorer else 0.0)
                for r in responses]
    assert [r.reward for r in responses] == expected


@pytest.mark.parametrize("status", [Status.ERROR, Status.TIMEOUT])
def test_verifier_failures_are_dropped_not_scored_as_wrong(micro_model_dir, status,
                                                           constant_verifier):
    agent = BSTaR(str(micro_model_dir), env_with(constant_verifier(status)),
                  BSTaRConfig(**{**TINY, "mode": "online_rft", "threshold": -2.0}))
    before = [p.detach().clone() for p in agent.policy.model.parameters()]
    metrics = agent.train_step()
    assert metrics["pool_size"] == 0 and metrics["skipped_update"] == 1
    assert all(torch.equal(a, b) for a, b in
               zip(before, agent.policy.model.parameters(), strict=True))


def test_generation_and_weight_sync_go_through_the_policys_backend(micro_model_dir, make_env):
    agent = BSTaR(str(micro_model_dir), make_env(),
                  BSTaRConfig(**{**TINY, "mode": "online_rft", "threshold": -2.0}))
    backend, calls = agent.policy.backend, []
    generate, sync = backend.generate_with_logprobs, backend.sync_weights
    backend.generate_with_logprobs = lambda *a: calls.append("generate") or generate(*a)
    backend.sync_weights = lambda: calls.append("sync") or sync()
    assert agent.train_step()["pool_size"] > 0
    # The subset and the pool are sampled by the backend, which gets the fine-tuned weights.
    assert calls == ["generate", "generate", "sync"]
