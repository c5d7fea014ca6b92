"""Wrappers that change one thing each: SEELE hints, MRT budgets, numeric views for SB3."""

from rlvr_gym.wrappers.hints import HintScaffold, IRTCurve, fit_irt
from rlvr_gym.wrappers.token_level import CharTokenizer, TokenLevel

__all__ = ["CharTokenizer", "HintScaffold", "IRTCurve", "TokenLevel", "fit_irt"]
