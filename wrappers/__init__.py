"""Wrappers that change one thing each: SEELE hints, MRT budgets, numeric views for SB3."""

from rlvr_gym.wrappers.token_level import CharTokenizer, TokenLevel

__all__ = ["CharTokenizer", "TokenLevel"]
