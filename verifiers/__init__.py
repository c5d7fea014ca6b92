"""Verifiers: math (sympy-backed), Countdown (safe expression evaluation), code (sandboxed)."""

from rlvr_gym.verifiers.countdown import CountdownVerifier
from rlvr_gym.verifiers.extract import last_boxed

__all__ = ["CountdownVerifier", "last_boxed"]
