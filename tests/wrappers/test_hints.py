"""SEELE hint scaffolding: the 3PL fit, its inverse, and accuracy control by rounds."""

import gymnasium as gym
import numpy as np
import pytest

from rlvr_gym.wrappers.hints import HintScaffold, IRTCurve, fit_irt, hint_text, solution_units

TRUE = IRTCurve(k=12.0, mu=-0.55, b=0.1)


def test_fit_recovers_known_parameters_from_synthetic_data():
    ps = np.linspace(0, 1, 11)
    points = [(float(p), float(TRUE(p))) for p in ps]
    fitted = fit_irt(points, add_margins=False)
    assert fitted.k == pytest.approx(TRUE.k, rel=1e-3)
    assert fitted.mu == pytest.approx(TRUE.mu, abs=1e-4)
    assert fitted.b == pytest.approx(TRUE.b, abs=1e-4)


def test_fit_from_noisy_samples_is_close():
    rng = np.random.default_rng(0)
    points = [(float(p), float(rng.random() < TRUE(p))) for p in np.linspace(0, 1, 21)
              for _ in range(200)]
    fitted = fit_irt(points, add_margins=False)
    grid = np.linspace(0, 1, 50)
    assert np.max(np.abs(fitted(grid) - TRUE(grid))) < 0.05


def test_inverse_is_exact():
    for target in (0.25, 0.5, 0.75):
        p = TRUE.inverse(target)
        assert TRUE(p) == pytest.approx(target, abs=1e-12)


def test_inverse_is_zero_when_the_floor_already_reaches_the_target_and_clips_at_one():
    assert IRTCurve(k=10, mu=-0.5, b=0.6).inverse(0.5) == 0.0
    assert IRTCurve(k=1, mu=-3.0, b=0.0).inverse(0.9) == 1.0


def test_margin_points_are_added_only_where_untried():
    # Only (0.5, 0.5) tried: the margins (0,0) and (1,1) make a rising curve through it.
    fitted = fit_irt([(0.5, 0.5)])
    assert fitted(0.0) < 0.2 and fitted(1.0) > 0.8
    assert fitted.inverse(0.5) == pytest.approx(0.5, abs=0.05)
    # A tried p = 1 that failed overrides the (1, 1) margin.
    assert fit_irt([(1.0, 0.0), (0.5, 0.0)])(1.0) < 0.5


def test_bad_points_are_value_errors():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_irt([(1.5, 0.2)])
    with pytest.raises(ValueError, match="two or more"):
        fit_irt([(0.5, 1.0)], add_margins=False)


def test_hint_units_and_snapping():
    solution = "2 + 3 = 5\n5 * 4 = 20\n\\boxed{20}"
    steps = solution_units(solution, "steps")
    assert "".join(steps) == solution and len(steps) == 3
    assert hint_text(steps, 2 / 3) == "2 + 3 = 5\n5 * 4 = 20\n"
    chars = solution_units(solution, "chars")
    assert hint_text(chars, 0.5) == solution[: round(0.5 * len(solution))]
    assert hint_text(chars, 0.5, snap_to_steps=True) == "2 + 3 = 5\n"


def scaffold(**kwargs):
    inner = gym.make("rlvr/ArithmeticChain-v0", min_steps=4, max_steps=4)
    return HintScaffold(inner, **kwargs)


def test_observation_is_prompt_plus_hint_and_the_action_continues_it():
    env = scaffold()
    obs, info = env.reset(seed=0)
    assert obs == info["prompt"] + info["hint"]
    assert info["hint_ratio"] == pytest.approx(4 / 5)  # cold start (|y| - 1) / |y|
    assert info["solution"].startswith(info["hint"]) and info["hint"].count("\n") == 4
    last_line = info["solution"][len(info["hint"]):]
    _, reward, terminated, _, _ = env.step(last_line)
    assert reward == 1.0 and terminated


def run_scripted_rounds(env, rng, problems, curve):
    """A policy that is right with probability curve(hint ratio). Returns accuracy per round."""
    per_round = np.zeros((problems, env.rounds))
    for i in range(problems):
        for r in range(env.rounds):
            for _ in range(env.samples_per_round):
                _, info = env.reset(options={"index": i})
                assert info["hint_round"] == r + 1
                right = rng.random() < curve(info["hint_ratio"])
                answer = f"\\boxed{{{info['answer']}}}" if right else "\\boxed{-99999}"
                per_round[i, r] += env.step(answer)[1] / env.samples_per_round
    return per_round.mean(axis=0)


def test_rollout_accuracy_reaches_the_target_within_four_rounds():
    env = scaffold(target_accuracy=0.5, rounds=4, samples_per_round=8)
    accuracy = run_scripted_rounds(env, np.random.default_rng(0), problems=100, curve=TRUE)
    assert accuracy[0] > 0.8  # the pessimistic cold start: nearly the whole solution
    assert abs(accuracy[3] - 0.5) <= 0.1, accuracy


def test_second_visit_starts_from_the_stored_ratio_and_state_round_trips():
    env = scaffold(rounds=2, samples_per_round=4)
    run_scripted_rounds(env, np.random.default_rng(1), problems=3, curve=TRUE)
    state = env.state_dict()
    stored = state[env.reset(options={"index": 0})[1]["problem_id"]]["stored_ratio"]
    assert 0.0 <= stored < 0.8
    fresh = scaffold(rounds=2, samples_per_round=4)
    fresh.load_state_dict(state)
    _, info = fresh.reset(options={"index": 0})
    assert info["hint_ratio"] == pytest.approx(stored) and info["hint_round"] == 1
