"""Wrappers that change one thing each: SEELE hints, MRT budgets, numeric views for SB3."""

from rlvr_gym.wrappers.budget import (
    LengthPenalty,
    ProgressEstimator,
    ProgressReward,
    TokenBudget,
    cumulative_regret,
    normalized_regret,
    split_episodes,
)
from rlvr_gym.wrappers.hints import HintController, HintScaffold, IRTCurve, fit_irt
from rlvr_gym.wrappers.token_level import CharTokenizer, TokenLevel

__all__ = ["CharTokenizer", "HintController", "HintScaffold", "IRTCurve", "LengthPenalty",
           "ProgressEstimator", "ProgressReward", "TokenBudget", "TokenLevel",
           "cumulative_regret", "fit_irt", "normalized_regret", "split_episodes"]
