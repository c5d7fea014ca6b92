"""Verifiers: math (sympy-backed), Countdown (safe expression evaluation), code (sandboxed)."""

from rlvr_gym.verifiers.countdown import CountdownVerifier
from rlvr_gym.verifiers.extract import last_boxed
from rlvr_gym.verifiers.math import MathVerifier, extract_answer

__all__ = ["CountdownVerifier", "MathVerifier", "extract_answer", "last_boxed"]
