"""Verifiers: math (sympy-backed), Countdown (safe expression evaluation), code (sandboxed)."""

from rlvr_gym.verifiers.code import CodeVerifier, CodeVerifierConfig, extract_code
from rlvr_gym.verifiers.countdown import CountdownVerifier
from rlvr_gym.verifiers.extract import last_boxed
from rlvr_gym.verifiers.math import MathVerifier, extract_answer
from rlvr_gym.verifiers.sandbox import Layers, Sandbox, SandboxConfig, SandboxPool

__all__ = ["CodeVerifier", "CodeVerifierConfig", "CountdownVerifier", "Layers", "MathVerifier",
           "Sandbox", "SandboxConfig", "SandboxPool", "extract_answer", "extract_code",
           "last_boxed"]
