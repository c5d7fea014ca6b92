"""`rlvr/Countdown-v0`'s options: a subset of operations, and reference solutions that show a
search (misses worked out and rejected, then the hit) for models that learn to re-check."""

import gymnasium as gym
import pytest

import rlvr_gym  # noqa: F401  (registers the env ids)
from rlvr_gym.verifiers.countdown import CountdownVerifier, evaluate
from rlvr_gym.wrappers.budget import split_episodes

SMALL = {"min_numbers": 3, "max_numbers": 3, "max_number": 9}


def problems(n=200, **kwargs):
    source = gym.make("rlvr/Countdown-v0", seed=0, **SMALL, **kwargs).unwrapped.source
    return [source[i] for i in range(n)]


def test_operators_limit_the_construction_and_are_named_in_the_question():
    for p in problems(operators="+-"):
        assert ", and + -, make " in p.question and "parentheses" not in p.question
        assert "*" not in p.answer and "/" not in p.answer
        assert evaluate(p.answer)[0] == p.meta["target"]
    default = problems(20)
    assert all("and + - * / with parentheses, make" in p.question for p in default)
    assert any("*" in p.answer or "/" in p.answer for p in default)


@pytest.mark.parametrize("operators", ["", "-", "-/", "+^"])
def test_operators_must_include_plus_or_times_and_nothing_else(operators):
    with pytest.raises(ValueError, match="operators"):
        gym.make("rlvr/Countdown-v0", operators=operators)


def test_search_attempts_show_misses_then_the_hit_as_episodes():
    plain, searched = problems(operators="+-"), problems(operators="+-", search_attempts=3)
    verifier, misses = CountdownVerifier(), []
    for a, b in zip(plain, searched, strict=True):
        # The problem is the same; the reference solution shows a search, its answer the hit.
        assert (a.question, a.meta) == (b.question, b.meta)
        assert f"\\boxed{{{b.answer}}}" in b.solution and evaluate(b.answer)[0] == a.meta["target"]
        assert "Wait" not in a.solution
        episodes = split_episodes(b.solution)
        assert len(episodes) <= 4
        target = b.meta["target"]
        for episode in episodes[:-1]:  # each miss: worked out, then rejected
            assert episode.endswith(f", not {target}.")
            lines = episode.removeprefix("\n\nWait\n").split("\n")
            value = int(lines[-1].split(" = ")[1].split(",")[0])
            assert value != target and len(lines) == 2
        last = episodes[-1].removeprefix("\n\nWait\n").split("\n")
        assert last[-2].endswith(f" = {target}") and last[-1].startswith("\\boxed{")
        assert verifier.verify(b.solution, b).correct
        misses.append(len(episodes) - 1)
    # A random attempt hits about a third of the time: most searches miss at least once,
    # and about a third reach the cap of three misses.
    assert 0.5 < sum(m > 0 for m in misses) / len(misses) < 0.8
    assert 0.2 < misses.count(3) / len(misses) < 0.5


def test_search_attempts_must_not_be_negative():
    with pytest.raises(ValueError, match="search_attempts"):
        gym.make("rlvr/Countdown-v0", search_attempts=-1)
