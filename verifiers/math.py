"""Math answer checking: extract the final answer, then compare with the reference.

Layered for speed: plain numbers (integers, decimals, fractions) are compared exactly in
pure Python, so most RL rewards never reach sympy.
"""

from __future__ import annotations

import re
import time
from fractions import Fraction

from rlvr_gym.types import Problem, Status, Verdict
from rlvr_gym.verifiers.extract import last_boxed

MAX_ANSWER_CHARS = 1_000

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:/\d+)?")
_ANSWER_IS = re.compile(r"answer is[:\s]*\$?([^\n$]+?)\$?\s*(?:\.\s|\.?$)", re.IGNORECASE)
_FRAC = re.compile(r"^(-?)\\[dt]?frac\{(-?\d+)\}\{(\d+)\}$")


def extract_answer(response: str, last_number_fallback: bool = True) -> str | None:
    """The final answer in a response: last `\\boxed{}`, else GSM8K `####`, else "the answer
    is ...", else (optionally) the last number."""
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed.strip()
    if "####" in response:
        tail = response.rsplit("####", 1)[1].strip().splitlines()
        if tail and tail[0].strip():
            return tail[0].strip()
    matches = _ANSWER_IS.findall(response[-2_000:])
    if matches:
        return matches[-1].strip()
    if last_number_fallback:
        numbers = _NUMBER.findall(response[-2_000:])
        if numbers:
            return numbers[-1]
    return None


def as_number(text: str) -> Fraction | None:
    """Exact value of a plain number (`-12`, `3.50`, `1,234`, `7/8`, `\\frac{7}{8}`), else None."""
    t = text.strip().strip("$").replace("\\!", "").replace(" ", "")
    if t.endswith("."):
        t = t[:-1]
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", t):
        t = t.replace(",", "")
    m = _FRAC.match(t)
    if m:
        sign, num, den = m.groups()
        return Fraction(int(num), int(den)) * (-1 if sign else 1) if int(den) else None
    if re.fullmatch(r"-?\d+(\.\d+)?(/\d+)?", t):
        try:
            return Fraction(t)
        except (ValueError, ZeroDivisionError):
            return None
    return None


class MathVerifier:
    """Judges a math response against a reference answer.

    `verify(response, reference)` takes the reference as a string or a `Problem` (its
    `answer` is used) and returns a `Verdict`; it never raises on a bad response.
    """

    def __init__(self, last_number_fallback: bool = True) -> None:
        self.last_number_fallback = last_number_fallback

    def verify(self, response: str, reference: str | Problem) -> Verdict:
        start = time.perf_counter()
        gold = reference.answer if isinstance(reference, Problem) else str(reference)
        extracted = extract_answer(str(response), self.last_number_fallback)
        if extracted is None:
            return Verdict(Status.NO_ANSWER, 0.0, None, "no final answer found",
                           time.perf_counter() - start)
        if len(extracted) > MAX_ANSWER_CHARS:
            return Verdict(Status.INCORRECT, 0.0, extracted[:100] + "...",
                           f"answer longer than {MAX_ANSWER_CHARS} characters",
                           time.perf_counter() - start)
        same = self.equivalent(extracted, gold)
        return Verdict(Status.CORRECT if same else Status.INCORRECT, 1.0 if same else 0.0,
                       extracted, "equivalent to the reference" if same else
                       f"{extracted!r} differs from the reference", time.perf_counter() - start)

    def equivalent(self, a: str, b: str) -> bool:
        """True when two answers denote the same mathematical object."""
        x, y = as_number(a), as_number(b)
        if x is not None and y is not None:
            return x == y
        return a.strip() == b.strip()
