"""Math answer checking: extract the final answer, then compare it with the reference.

Layered for speed and for a hard time bound:

1. Extraction (`extract_answer`) and normalisation are linear-time string work.
2. Identical answers, word answers (`\\text{Evelyn}`, `(B)`) and plain numbers, including
   lists of them (`-3, 0, 1`), percentages, degrees, units, `x = 3`, scientific notation and
   `\\frac{a}{b}`, are decided exactly in pure Python. Most RL rewards end here and never
   start a worker process.
3. Everything else goes to sympy through latex2sympy2_extended, in a worker process that is
   killed and replaced when it overruns (`rlvr_gym.verifiers.symbolic` states the rules).

A verdict of `timeout` or `error` always means the verifier failed, never that the answer is
wrong; a response that is not valid math is `incorrect`.
"""

from __future__ import annotations

import os
import re
import threading
import time
import weakref
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rlvr_gym.types import Problem, Status, Verdict
from rlvr_gym.verifiers.extract import after_hashes, answer_is, last_boxed, last_number
from rlvr_gym.verifiers.workers import WorkerFailure, WorkerPool, WorkerTimeout

#: Longer extracted answers are judged incorrect without parsing (no real answer is this long,
#: and parser time grows with length).
MAX_ANSWER_CHARS = 1_000
#: Answers nested deeper than this in braces/brackets are judged incorrect without parsing
#: (the LaTeX parser recurses once per level).
MAX_NESTING = 40
#: Bare groups (`(`, `[`, `\{`, a `{` that is no macro argument) may nest this deep: the LaTeX
#: parser's time grows exponentially with their depth (about 1 s at 10 levels, 11 s at 14).
MAX_GROUP_NESTING = 8
#: Scientific notation with a larger exponent is left to the bounded worker: building the
#: exact value in this process would take unbounded time and memory.
MAX_FAST_EXPONENT = 400

_SYMBOLIC_MODULE = "rlvr_gym.verifiers.symbolic"


def extract_answer(response: str, last_number_fallback: bool = True) -> str | None:
    """The final answer in a response, or None.

    In order: the last `\\boxed{}`/`\\fbox{}` (only the last: "\\boxed{12} ... no,
    \\boxed{13}" answers 13), else the line after the last GSM8K `####`, else what follows the
    last "the answer is" / "final answer:", else (when `last_number_fallback`) the last number.
    """
    for found in (last_boxed(response), after_hashes(response), answer_is(response)):
        if found is not None and found.strip():
            return found.strip()
    return last_number(response) if last_number_fallback else None


# ----------------------------------------------------------------------------------------
# Normalisation: cheap string rewrites both sides get before any comparison.

_DELIMITERS = re.compile(r"^(?:\$\$|\$|\\\(|\\\[)(.*?)(?:\$\$|\$|\\\)|\\\])$", re.DOTALL)
_SPACING = re.compile(r"\\(?:left|right|displaystyle|[,;:!]|quad|qquad)(?![a-zA-Z])|~")
_WRAPPED_TEXT = re.compile(r"^\\(?:text|textbf|textit|mathrm|mbox|mathbf)\{([^{}]*)\}$")
# Only these mark words; `\mathrm{e}` and `\mathrm{i}` are the constants, not letters.
_TEXT_MACRO = re.compile(r"^\\(?:text|textbf|textit|mbox)\{([^{}]*)\}$")
_TRAILING_UNIT = re.compile(
    r"(?<=[\d}.)\s])\s*\\(?:text|mbox|mathrm)\{\s*[a-zA-Z][a-zA-Z\s.]*\}(?:\^\{?[23]\}?)?\s*$")
_PLAIN_UNIT = re.compile(
    r"^((?:[a-zA-Z]\s*=\s*)?-?[\d.,/]*\d)\s*[a-zA-Z]{2,}[a-zA-Z\s.]*(?:\^[23])?$")
_CONNECTIVE = re.compile(r"\\text\{\s*(?:or|and)\s*\}|\s+(?:or|and)\s+")
_PERCENT = re.compile(r"^(.*?)\s*(?:\\%|%|\\text\{\s*percent\s*\}|\s+percent)$")
_DEGREE = re.compile(r"^(.*?)\s*(?:\^\s*\{?\s*\\circ\s*\}?|°|\\degree)$")
_LETTER_CHOICE = re.compile(r"^\(?([a-zA-Z])\)?$")
_WORDS = re.compile(r"^[a-zA-Z][a-zA-Z' -]*$")


def normalize(text: str) -> str:
    """The answer with math delimiters, spacing macros, currency, trailing units and a final
    period removed, `\\dfrac`/`\\tfrac` as `\\frac`, `\\mathrm{e}` as `e`, `1{,}000` as
    `1,000`, "a or b" as "a, b", spaces collapsed."""
    t = text.strip()
    m = _DELIMITERS.match(t)
    if m:
        t = m.group(1).strip()
    t = _SPACING.sub(" ", t).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    t = t.replace("\\$", "").replace("$", "").replace("\\ ", " ").replace("{,}", ",")
    # Upright e and i are the constants (the LaTeX parser would take `\mathrm{e}` as a unit).
    t = re.sub(r"\\math(?:rm|it)\{\s*([ei])\s*\}", r"\1", t)
    t = re.sub(r"\s+", " ", t).strip().removesuffix(".").strip()
    m = _WRAPPED_TEXT.match(t)
    if m and re.match(r"[-\d.]", m.group(1).strip()):
        t = m.group(1).strip()  # \text{5 cm}: a number with its unit
    if _text_key(t) is not None:
        return t
    t = _CONNECTIVE.sub(", ", t)
    for _ in range(2):  # "5 \text{ cm}^2", "12 \text{ square } \text{units}"
        t = _TRAILING_UNIT.sub("", t).strip()
    t = re.sub(r"\s*(?:dollars?|cents?)$", "", t)
    m = _PLAIN_UNIT.match(t)
    if m:
        t = m.group(1)
    return t


def _text_key(t: str) -> str | None:
    """A word answer (`\\text{Evelyn}`, `odd`, `(B)`) as lowercase words; None for math.

    Words are compared as text, never through sympy, where `Evelyn` would be a product of
    six commuting symbols and equal `Nevely`.
    """
    m = _TEXT_MACRO.match(t)
    inner = m.group(1).strip() if m else t
    choice = _LETTER_CHOICE.match(inner)
    if choice and (m or inner.startswith("(")):
        return choice.group(1).lower()
    if _WORDS.match(inner) and (m or re.search(r"[a-zA-Z]{3,}", inner)):
        return re.sub(r"\s+", " ", inner).strip().lower()
    if choice and len(inner) == 1 and inner.isupper():
        return inner.lower()  # a bare multiple-choice letter "B"
    return None


def _split_marker(t: str) -> tuple[str, str | None]:
    """(core, "%" | "deg" | None): a trailing percent sign or degree mark taken off."""
    m = _PERCENT.match(t)
    if m and m.group(1):
        return m.group(1).strip(), "%"
    m = _DEGREE.match(t)
    # Only a whole answer is in degrees; `\cos 60^\circ` is a cosine (sympy converts it).
    if m and m.group(1) and not re.search(r"\\(?!frac|sqrt)[a-zA-Z]", m.group(1)):
        return m.group(1).strip(), "deg"
    return t, None


_SCALES = {"%": ("1", "1/100"), "deg": ("1", "pi/180")}


def _scales(mine: str | None, other: str | None) -> tuple[str, ...]:
    """A marked value may mean its number or its converted value (50% = 50 or 0.5), but only
    against an unmarked answer: 50% vs 5000% must not match through 50 = 5000/100."""
    if mine is None or mine == other:
        return ("1",)
    return _SCALES[mine]


# ----------------------------------------------------------------------------------------
# Fast exact path: plain numbers and flat lists of them, in pure Python.

_FRAC = re.compile(r"^(-?)\\frac(?:\{(-?\d+)\}\{(-?\d+)\}|(\d)(\d))$")
# `1,234,567` or `1 234 567` (a thin space `\,` is normalised to a space); one separator.
_THOUSANDS = re.compile(r"^-?\d{1,3}([, ])\d{3}(?:\1\d{3})*(?:\.\d+)?$")
_DECIMAL = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:/\d+)?$")
_SCIENTIFIC = re.compile(
    r"^([-+]?(?:\d+\.?\d*|\.\d+))\s*(?:[eE]|\\times\s*10\^|\\cdot\s*10\^|\*\s*10\^)"
    r"\s*\{?\s*([-+]?\d+)\s*\}?$")
_ASSIGNMENT = re.compile(r"^[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*(.+)$")


def as_number(text: str) -> Fraction | None:
    """Exact value of a plain number, else None.

    Accepts integers, decimals, thousands separators (`1,234`), `7/8`, `\\frac{7}{8}`,
    `\\frac78`, scientific notation (`1.5e3`, `1.5 \\times 10^{3}`) with |exponent| up to
    `MAX_FAST_EXPONENT`.
    """
    t = text.strip().replace("\\!", "")
    if _THOUSANDS.match(t):
        t = t.replace(",", "").replace(" ", "")
    t = t.replace(" ", "") if " " in t and not re.search(r"\d \d", t) else t
    m = _FRAC.match(t)
    if m:
        sign, num, den, d1, d2 = m.groups()
        num, den = int(num or d1), int(den or d2)
        return None if den == 0 else Fraction(num, den) * (-1 if sign else 1)
    m = _SCIENTIFIC.match(t)
    if m:
        exponent = int(m.group(2))
        if abs(exponent) > MAX_FAST_EXPONENT:
            return None
        return Fraction(m.group(1)) * Fraction(10) ** exponent
    if _DECIMAL.match(t) and len(t) <= 200:
        try:
            return Fraction(t)
        except (ValueError, ZeroDivisionError):
            return None
    return None


@dataclass(frozen=True)
class _Plain:
    """A fast-path value: a number, an unordered set of numbers, or an ordered tuple, and the
    variable it was assigned to (`x = 3`), if any."""

    kind: str  # "number" | "set" | "tuple"
    value: Any
    variable: str | None = None


def _plain_value(t: str) -> _Plain | None:
    variable = None
    m = _ASSIGNMENT.match(t)
    if m and "=" not in m.group(1):
        variable, t = t.split("=", 1)[0].strip(), m.group(1).strip()
    number = as_number(t)
    if number is not None:
        return _Plain("number", number, variable)
    kind = "set"
    if t.startswith("\\{") and t.endswith("\\}"):
        t = t[2:-2]
    elif t.startswith("(") and t.endswith(")"):
        t, kind = t[1:-1], "tuple"
    if "," not in t or re.search(r",\d{3}(?!\d)", t):
        return None  # "1,234, 5": thousands separator or list separator? Left to sympy.
    variables = {variable} if variable else set()
    values = []
    for item in t.split(","):
        item = item.strip()
        m = _ASSIGNMENT.match(item)
        if m:
            variables.add(item.split("=", 1)[0].strip())
            item = m.group(1).strip()
        number = as_number(item)
        if number is None:
            return None
        values.append(number)
    if len(variables) > 1:
        return None  # `x = 1, y = 2` is an ordered assignment: sympy
    value = tuple(values) if kind == "tuple" else frozenset(values)
    return _Plain(kind, value, variables.pop() if variables else None)


def _plain_equal(gold: _Plain, pred: _Plain, gold_scales: tuple[str, ...],
                 pred_scales: tuple[str, ...]) -> bool:
    if gold.variable and pred.variable and gold.variable != pred.variable:
        return False  # `y = 6` does not answer `x = 6`
    if gold.kind == "set" and pred.kind == "number":
        return gold.value == frozenset([pred.value])
    if gold.kind == "number" and pred.kind == "set":
        return pred.value == frozenset([gold.value])
    if gold.kind != pred.kind:
        return False
    if gold.kind != "number":
        return gold.value == pred.value
    # pi/180 never relates two rationals except at 0, where scale 1 already matches.
    return any(gold.value * Fraction(gs) == pred.value * Fraction(ps)
               for gs in gold_scales if gs != "pi/180" for ps in pred_scales if ps != "pi/180")


def _nesting(t: str) -> tuple[int, int]:
    """(deepest nesting of all brackets, deepest nesting of bare groups)."""
    depth = deepest = 0
    groups: list[bool] = []  # per open bracket: is it a bare group?
    group_depth = deepest_group = 0
    for k, c in enumerate(t):
        if c in "{([":
            bare = c != "{" or k == 0 or not re.match(r"[a-zA-Z^_}\]]", t[k - 1])
            groups.append(bare)
            depth += 1
            group_depth += bare
            deepest, deepest_group = max(deepest, depth), max(deepest_group, group_depth)
        elif c in "})]" and groups:
            depth -= 1
            group_depth -= groups.pop()
    return deepest, deepest_group


def _squash(t: str) -> str:
    """`t` without spaces and delimiters, `\\frac{1}{3}` as `1/3`, `\\cdot` as `*`: a form in
    which an expression from the question and the same one in LaTeX coincide."""
    t = re.sub(r"\s+|\$|\\left|\\right|\\[,;!]", "", t)
    t = re.sub(r"\\[dt]?frac\{(\w+)\}\{(\w+)\}", r"\1/\2", t)
    return t.replace("\\cdot", "*").replace("\\times", "*")


def _restates(pred: str, gold: str, question: str) -> bool:
    """The answer is an expression copied from the question (e.g. "1/3 + 1/6" for "Compute
    1/3 + 1/6"), which sympy would find equal to the reference. Plain numbers (`-3`, `1/2`)
    are exempt: they appear in questions for innocent reasons."""
    if as_number(pred) is not None:
        return False
    p = _squash(pred)
    if not re.search(r"[-+*/^=<>]|\\frac|\\sqrt|\\cdot|\\times", p[1:]):
        return False
    return len(p) >= 3 and p in _squash(question) and p != _squash(gold)


class MathVerifier:
    """Judges a math response against a reference answer, within a hard time bound.

    Args:
        timeout_s: wall-time bound of one symbolic comparison, from any thread (default
            3 s). Waiting for a busy worker counts towards it; starting a worker does not
            (bounded by `startup_timeout_s`: only the first symbolic call, and the first
            after a worker was killed, pays the 1-3 s sympy import).
        last_number_fallback: take the last number of the response when it has no
            `\\boxed{}`, `####` or "the answer is".
        max_workers: most worker processes started at once (they start on demand, one
            per concurrently verifying thread).
        startup_timeout_s: bound on starting a worker process.
        worker_memory_mb: address-space limit of each worker (0: none).

    The sympy workers are separate processes: started lazily (plain numbers never start
    one), killed and replaced after a timeout, stopped by `close()`, at garbage collection
    and at interpreter exit. Safe to call from several threads, from forked children and
    from gymnasium's AsyncVectorEnv workers. Picklable (the copy starts its own workers).
    """

    def __init__(self, timeout_s: float = 3.0, last_number_fallback: bool = True,
                 max_workers: int = 4, startup_timeout_s: float = 60.0,
                 worker_memory_mb: int = 2048) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive seconds, got {timeout_s!r}")
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers!r}")
        if not startup_timeout_s > 0:
            raise ValueError(f"startup_timeout_s must be positive, got {startup_timeout_s!r}")
        if worker_memory_mb < 0:
            raise ValueError("worker_memory_mb must be 0 (no limit) or a number of MB, got "
                             f"{worker_memory_mb!r}")
        self.timeout_s = float(timeout_s)
        self.last_number_fallback = last_number_fallback
        self.max_workers = max_workers
        self.startup_timeout_s = float(startup_timeout_s)
        self.worker_memory_mb = worker_memory_mb
        self._pool: WorkerPool | None = None
        self._lock = threading.Lock()
        self._lock_pid = os.getpid()

    def verify(self, response: str, reference: str | Problem) -> Verdict:
        """The verdict on `response` against `reference` (a `Problem` or its answer text).

        Never raises on a bad response (only on a response that is not a `str`): no answer
        found is `no_answer`; an answer that is not
        valid math, too long or too deeply nested is `incorrect`; a verifier failure is
        `error`, an overrun `timeout`. With a `Problem`, an answer that copies an expression
        from its question ("restates the question") is `incorrect`.
        """
        start = time.perf_counter()
        if isinstance(reference, Problem):
            gold, question = reference.answer, reference.question
        else:
            gold, question = str(reference), ""
        if not isinstance(response, str):
            raise ValueError(f"response must be the model's text (str), got "
                             f"{type(response).__name__}")
        extracted = extract_answer(response, self.last_number_fallback)
        if extracted is None:
            return Verdict(Status.NO_ANSWER, 0.0, None, "no final answer found",
                           time.perf_counter() - start)
        status, reason = self._judge(extracted, gold, question)
        shown = extracted if len(extracted) <= 200 else extracted[:200] + "..."
        return Verdict(status, 1.0 if status is Status.CORRECT else 0.0, shown, reason,
                       time.perf_counter() - start)

    def equivalent(self, a: str, b: str) -> bool:
        """True when answer `a` denotes reference answer `b` (both answer texts, not whole
        responses; the rules are not symmetric, see `rlvr_gym.verifiers.symbolic`).

        Raises `TimeoutError` when the comparison overran `timeout_s` and `RuntimeError` when
        the verifier failed: neither means "not equivalent".
        """
        status, reason = self._judge(a, b, "")
        if status is Status.TIMEOUT:
            raise TimeoutError(reason)
        if status is Status.ERROR:
            raise RuntimeError(reason)
        return status is Status.CORRECT

    @property
    def worker_count(self) -> int:
        """Live sympy worker processes of this verifier in this process (0 until a
        non-trivial answer needs sympy, and after `close()`)."""
        pool = self._pool
        return pool.started if pool is not None and pool.owned_here else 0

    def close(self) -> None:
        """Stop the worker processes. The verifier stays usable (it starts new ones); a
        symbolic comparison in flight in another thread ends with status `error`."""
        with self._guard():
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_pool=None, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock, self._lock_pid = threading.Lock(), os.getpid()

    def _judge(self, pred_raw: str, gold_raw: str, question: str) -> tuple[Status, str]:
        if len(pred_raw) > MAX_ANSWER_CHARS:
            return Status.INCORRECT, f"answer longer than {MAX_ANSWER_CHARS} characters"
        if len(gold_raw) > MAX_ANSWER_CHARS:
            return Status.ERROR, f"reference longer than {MAX_ANSWER_CHARS} characters"
        pred, gold = normalize(pred_raw), normalize(gold_raw)
        if not pred:
            return Status.INCORRECT, "empty answer"
        if pred == gold:
            return Status.CORRECT, "identical to the reference"
        gold_text, pred_text = _text_key(gold), _text_key(pred)
        if gold_text is not None or pred_text is not None:
            if gold_text == pred_text:
                return Status.CORRECT, "same words as the reference"
            return Status.INCORRECT, "words differ from the reference"
        if question and _restates(pred, gold, question):
            return Status.INCORRECT, "the answer restates an expression from the question"
        (pred_core, pred_mark), (gold_core, gold_mark) = _split_marker(pred), _split_marker(gold)
        gold_scales, pred_scales = _scales(gold_mark, pred_mark), _scales(pred_mark, gold_mark)
        pred_plain, gold_plain = _plain_value(pred_core), _plain_value(gold_core)
        if pred_plain is not None and gold_plain is not None:
            if _plain_equal(gold_plain, pred_plain, gold_scales, pred_scales):
                return Status.CORRECT, "same value as the reference"
            return Status.INCORRECT, "differs from the reference"
        deepest, deepest_group = _nesting(pred_core)
        if deepest > MAX_NESTING or deepest_group > MAX_GROUP_NESTING:
            return Status.INCORRECT, (f"answer nested deeper than {MAX_NESTING} levels or "
                                      f"{MAX_GROUP_NESTING} bare groups")
        return self._symbolic(gold_core, pred_core, gold_scales, pred_scales)

    def _symbolic(self, gold: str, pred: str, gold_scales: tuple[str, ...],
                  pred_scales: tuple[str, ...]) -> tuple[Status, str]:
        request = {"gold": gold, "pred": pred, "gold_scales": list(gold_scales),
                   "pred_scales": list(pred_scales)}
        try:
            reply = self._worker_pool().call(request, self.timeout_s)
        except WorkerTimeout as exc:
            return Status.TIMEOUT, f"no verdict within {self.timeout_s:g} s ({exc})"
        except WorkerFailure as exc:
            return Status.ERROR, f"verifier worker failed: {exc}"
        try:
            return Status(reply["status"]), str(reply.get("reason", ""))
        except (KeyError, ValueError, TypeError):
            return Status.ERROR, f"verifier worker sent an unknown reply {reply!r:.200}"

    def _guard(self) -> threading.Lock:
        if self._lock_pid != os.getpid():  # forked: the parent's lock may be held forever
            self._lock, self._lock_pid = threading.Lock(), os.getpid()
        return self._lock

    def _worker_pool(self) -> WorkerPool:
        with self._guard():
            if self._pool is None or not self._pool.owned_here:
                # A pool inherited through fork belongs to the parent: leave its workers.
                self._pool = WorkerPool(_SYMBOLIC_MODULE, [str(self.worker_memory_mb)],
                                        self.max_workers, self.startup_timeout_s)
                weakref.finalize(self, WorkerPool.close, self._pool)
            return self._pool
