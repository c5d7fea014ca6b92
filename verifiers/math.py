"""Math answer checking: extract the final answer, then compare it with the reference.

The rules (what counts as the final answer, when two answers are the same, which responses
never pay, what each status means) are stated in `docs/math_verification.md`. Layered for
speed and for a hard time bound:

1. Extraction (`rlvr_gym.verifiers.extract`) scans a bounded tail of the response;
   normalisation, labels (`x = 5`, `f(x) = ...`), multi-part boxes and hedging refusals are
   linear-time string work.
2. Identical answers, word answers (`\\text{Evelyn}`, `(B)`) and plain numbers, including
   lists of them (`-3, 0, 1`), percentages, degrees, units, scientific notation and
   `\\frac{a}{b}`, are decided exactly in pure Python. Most RL rewards end here and never
   start a worker process.
3. Everything else goes to sympy in a worker process that is killed and replaced when it
   overruns (`rlvr_gym.verifiers.symbolic` states the rules; common shapes skip the LaTeX
   grammar there through a small direct parser).

A verdict of `timeout` or `error` always means the verifier failed, never that the answer is
wrong. When a comparison fails or overruns, the reference alone is checked under the same
bound: if it is fine, the answer caused the failure (a parser bomb, a power tower) and the
verdict is `incorrect`, trained on like any wrong answer.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rlvr_gym.types import Problem, Status, Verdict
from rlvr_gym.verifiers.extract import Answer, boxed_spans, find_answer, top_level_split
from rlvr_gym.verifiers.workers import WorkerBusy, WorkerFailure, WorkerPool, WorkerTimeout

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
#: A power whose exponent is itself a power with more than this many digits has no
#: comparable value (`10^{10^{10}}`, `3^{3^{21}}`): incorrect without evaluating it.
MAX_TOWER_DIGITS = 6
#: Distinct boxed values in one response from which a single-valued answer is hedging.
HEDGING_BOXES = 3

_SYMBOLIC_MODULE = "rlvr_gym.verifiers.symbolic"


def extract_answer(response: str, last_number_fallback: bool = True) -> str | None:
    """The final answer in a response, or None (the rules: `docs/math_verification.md`).

    In order: the last group of adjacent `\\boxed{}`/`\\fbox{}` (only the last: "\\boxed{12}
    ... no, \\boxed{13}" answers 13; "\\boxed{3} and \\boxed{5}" answers "3, 5"), else what
    follows the last final-answer phrase or GSM8K `####`, else the last math environment or
    (when `last_number_fallback`) a bare number written after it.
    """
    found = find_answer(response, last_number_fallback)
    return found.text if found else None


# ----------------------------------------------------------------------------------------
# Normalisation: cheap string rewrites both sides get before any comparison.

_DELIMITERS = re.compile(r"^(?:\$\$|\$|\\\(|\\\[)(.*?)(?:\$\$|\$|\\\)|\\\])$", re.DOTALL)
_SPACING = re.compile(r"\\(?:left|right|displaystyle|[,;:!]|quad|qquad)(?![a-zA-Z])|~")
_WRAPPED_TEXT = re.compile(r"^\\(?:text|textbf|textit|mathrm|mbox|mathbf)\{([^{}]*)\}$")
# Only these mark words; `\mathrm{e}` and `\mathrm{i}` are the constants, not letters.
_TEXT_MACRO = re.compile(r"^\\(?:text|textbf|textit|mbox|mathrm|mathbf)\{([^{}]*)\}$")
_TRAILING_UNIT = re.compile(
    r"(?<=[\d}.)\s])\s*\\(?:text|mbox|mathrm)\{\s*[a-zA-Z][a-zA-Z\s.]*\}(?:\^\{?[23]\}?)?\s*$")
_PLAIN_UNIT = re.compile(
    r"^((?:[a-zA-Z]\s*=\s*)?-?[\d.,/]*\d)\s*(?:[a-zA-Z]{2,}[a-zA-Z\s.]*(?:\^[23])?"
    r"|[a-zA-Z]{1,4}(?:/[a-zA-Z]{1,4})+(?:\^\{?[23]\}?)?)$")
_CONNECTIVE = re.compile(r"\s*,?\s*\\text\{\s*(?:or|and)\s*\}\s*|\s*,?\s+(?:or|and)\s+")
# MATH writes thousands as `10,\!000` (a negative thin space after the comma).
_MATH_THOUSANDS = re.compile(r"(?<=\d),\\!\s*(?=\d{3}(?!\d))")
_MATRIX_ENV = re.compile(r"\\(begin|end)\{[pbB]?matrix\}")
_MATRIX_SPACE = re.compile(r"\s*(&|\\\\)\s*")
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
    spans = boxed_spans(t)
    if len(spans) == 1 and spans[0][:2] == (0, len(t)):  # an answer boxed twice
        t = spans[0][2].strip()
    t = _MATH_THOUSANDS.sub("", t)
    if "matrix}" in t:  # pmatrix, bmatrix and matrix are one matrix; spacing is layout
        t = _MATRIX_SPACE.sub(r"\1", _MATRIX_ENV.sub(r"\\\1{pmatrix}", t)).strip()
        t = re.sub(r"^\\left\(\s*(\\begin\{pmatrix\}.*\\end\{pmatrix\})\s*\\right\)$", r"\1", t)
    t = _SPACING.sub(" ", t).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    t = t.replace("\\$", "").replace("$", "").replace("\\ ", " ").replace("{,}", ",")
    # An upright letter is the letter (`\mathrm{E}` is E, `\mathrm{e}` and `\mathrm{i}` the
    # constants; the LaTeX parser would take them as units).
    t = re.sub(r"\\math(?:rm|it|bf)\{\s*([a-zA-Z])\s*\}", r"\1", t)
    t = re.sub(r"^\\text\{\s*([a-zA-Z])\s*\}$", r"\1", t)  # `\text{e}`, `\text{C}`
    t = t.replace("\\varnothing", "\\emptyset")
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
# Labels around an answer: `x = 5`, `f(x) = 2x+1`, `(p,q)=(3,2)`, `k \in \{1,2\}`.

_NAME_CHARS = re.compile(r"[a-zA-Z\s(),:'|\\{}]+")
_SUBSCRIPT = re.compile(r"_\{[^{}]*\}|_\w")
_PLAIN_NAME = re.compile(r"^[a-zA-Z]+(?:_\{?\w+\}?)?'*$")
_RELATION_SIGN = re.compile(r"\\[lg]eq?|\\ne(?:q)?|[<>!]=?|\\in\b|\\le\b|\\ge\b")
_RATIO = re.compile(r"^(-?\d+(?:\.\d+)?)\s*:\s*([1-9]\d*(?:\.\d+)?)$")
_VALUE_MACROS = re.compile(r"\\(?:frac|sqrt|pi|cdot|times|left|right)(?![a-zA-Z])")


def _is_label(text: str) -> bool:
    """A name standing for the answer: `x`, `x_1`, `AB`, `f(x)`, `(p,q)`, `V_1:V_2`,
    `\\sin\\theta`, `m\\angle A`, `\\text{Area}`: letters, macros, subscripts, primes,
    parentheses, commas and colons; no digit outside a subscript, no operator."""
    t = re.sub(r"\\(?:text|mathrm|textbf|operatorname)\{([^{}]*)\}", r"\1", text).strip()
    t = _SUBSCRIPT.sub("", t)
    return 0 < len(t) <= 30 and _NAME_CHARS.fullmatch(t) is not None and re.search(
        r"[a-zA-Z]", t) is not None


def _is_constant(text: str) -> bool:
    """Arithmetic on numbers only (`2(3+4)`, `2^{5}`, `\\frac{3}{4} \\cdot 8`)."""
    return re.search(r"[a-zA-Z]", _VALUE_MACROS.sub("", text)) is None


def unlabel(text: str) -> tuple[str | None, str]:
    """(label, value) of an answer written with a label; (None, text) without one.

    `x = 5` -> ("x", "5"); `f(x) = 2x+1` -> ("f(x)", "2x+1"); `(p,q)=(3,2)` -> ("(p,q)",
    "(3,2)"); `k \\in \\{1, 2\\}` -> ("k", "\\{1, 2\\}"); a chain `x = 2y = 6` -> ("x",
    "6"); a computation `2(3+4) = 14` -> (None, "14"). An equation whose left side is no
    label (`x^2 + y^2 = 1`) is left whole.
    """
    m = re.match(r"^(.*?)\\in\s+(.+)$", text)
    if m and _is_label(m.group(1)) and not _RELATION_SIGN.search(m.group(2)):
        return m.group(1).strip(), m.group(2).strip()
    members = _equals_split(text)
    if len(members) < 2 or len(list_items(text)) > 1 or any(
            _RELATION_SIGN.search(x) for x in members):
        return None, text
    first, last = members[0].strip(), members[-1].strip()
    if not last:
        return None, text
    if _is_label(first):
        return first, last
    if len(members) > 2 or (_is_constant(first) and _is_constant(last)):
        return None, last  # a chain or a computation: what it arrives at
    return None, text


def _equals_split(text: str) -> list[str]:
    """`text` split at the `=` signs outside brackets."""
    return top_level_split(text, "=")


def list_items(text: str) -> list[str]:
    """The comma-separated items of an answer outside brackets; a thousands separator
    (`1,024`: a comma, then exactly three digits) does not separate."""
    items: list[str] = []
    for part in top_level_split(text):
        if items and re.match(r"\d{3}(?!\d)", part) and re.search(r"(?<![\d.])\d{1,3}$",
                                                                  items[-1]):
            items[-1] += "," + part
        else:
            items.append(part)
    return items


def _unlabelled(text: str, gold: str | None) -> tuple[list[str | None], str]:
    """Labels and the value of an answer or of each item of a list of answers. A list of
    labelled items becomes the list of its values: against a tuple reference in the order of
    the names when they are distinct plain names (`b = -2, a = 1` is `(1, -2)`), else in the
    order written. Against a labelled reference (`gold` None) lists keep their labels (a
    system's solution `x = 1, y = 2` is compared as assignments)."""
    label, value = unlabel(text)
    if label is not None or gold is None:
        return [label], value
    items = list_items(text)
    if len(items) < 2:
        return [label], value
    pairs = [unlabel(item.strip()) for item in items]
    labels = [lbl for lbl, _ in pairs]
    if not any(labels):
        return [None], text
    if not _is_tuple(gold):
        return labels, ", ".join(v.strip() for _, v in pairs)
    if all(lbl and _PLAIN_NAME.match(lbl) for lbl in labels) and len(set(labels)) == len(labels):
        pairs.sort(key=lambda pair: str(pair[0]))
    return labels, "(" + ", ".join(v.strip() for _, v in pairs) + ")"


def _is_tuple(text: str) -> bool:
    return text.startswith("(") and text.endswith(")") and len(top_level_split(text)) == 1


def _ratio(text: str) -> str:
    """`11:21` as the fraction `11/21` (a ratio against an answer written as a number)."""
    m = _RATIO.match(text)
    return f"{m.group(1)}/{m.group(2)}" if m else text


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
_MIXED = re.compile(r"^(-?)(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}$")
_MIXED_PLAIN = re.compile(r"^(-?)(\d+)\s+(\d+)/(\d+)$")
_REPEATING = re.compile(r"^(-?)(\d*)\.(\d*)\\overline\{(\d+)\}$")


def as_number(text: str) -> Fraction | None:
    """Exact value of a plain number, else None.

    Accepts integers, decimals, thousands separators (`1,234`), `7/8`, `\\frac{7}{8}`,
    `\\frac78`, scientific notation (`1.5e3`, `1.5 \\times 10^{3}`) with |exponent| up to
    `MAX_FAST_EXPONENT`.
    """
    t = text.strip().replace("\\!", "")
    m = _MIXED.match(t) or _MIXED_PLAIN.match(t)
    if m:  # 3\frac{1}{2} and 7 3/4 are mixed numbers (MATH's convention), not products
        sign, whole, num, den = m.groups()
        value = int(whole) + Fraction(int(num), int(den)) if int(den) else None
        return None if value is None else -value if sign else value
    m = _REPEATING.match(t)
    if m:  # 0.1\overline{6} = 1/6
        sign, whole, fixed, cycle = m.groups()
        value = Fraction(int(whole or "0")) + Fraction(int(fixed or "0"), 10 ** len(fixed)) + (
            Fraction(int(cycle), (10 ** len(cycle) - 1) * 10 ** len(fixed)))
        return -value if sign else value
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
    places: int = 0  # decimal places written, for a number


def _plain_value(t: str) -> _Plain | None:
    variable = None
    m = _ASSIGNMENT.match(t)
    if m and "=" not in m.group(1):
        variable, t = t.split("=", 1)[0].strip(), m.group(1).strip()
    number = as_number(t)
    if number is not None:
        return _Plain("number", number, variable, decimal_places(t))
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
    # A decimal written to 6+ places on either side may be the other's rounding.
    return any(rounds_to(g, p, pred.places) or rounds_to(p, g, gold.places)
               for g, p in ((gold.value * Fraction(gs), pred.value * Fraction(ps))
                            for gs in gold_scales if gs != "pi/180"
                            for ps in pred_scales if ps != "pi/180"))


#: A decimal answer written to at least this many places may stand for the value it rounds.
MIN_ROUNDED_PLACES = 6


def decimal_places(text: str) -> int:
    """Digits written after the decimal point of a plain decimal (`0.0833333` -> 7), else 0."""
    m = re.fullmatch(r"\s*[-+]?\d*\.(\d+)\s*", text)
    return len(m.group(1)) if m else 0


def rounds_to(gold: Fraction, pred: Fraction, places: int) -> bool:
    """`pred` is `gold`, or (written to at least `MIN_ROUNDED_PLACES` decimal places) `gold`
    rounded or truncated at its last place (`0.142857` for 1/7, never `0.142858`)."""
    if gold == pred:
        return True
    if places < MIN_ROUNDED_PLACES:
        return False
    scaled, written = gold * 10**places, pred * 10**places
    return written.denominator == 1 and (
        written == int(scaled) or abs(written - scaled) <= Fraction(1, 2))


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
    t = re.sub(r"\s+|\$|\\left|\\right|\\[,;!]|[()]", "", t)
    t = re.sub(r"\\[dt]?frac\{(\w+)\}\{(\w+)\}", r"\1/\2", t)
    return t.replace("\\cdot", "*").replace("\\times", "*")


def _restates(pred: str, gold: str, question: str) -> bool:
    """The answer is an expression copied from the question (e.g. "1/3 + 1/6" for "Compute
    1/3 + 1/6", "\\frac{12}{18}" for "Simplify 12/18"), which sympy would find equal to the
    reference. Plain numbers (`-3`, `1/2`) are exempt, they appear in questions for innocent
    reasons; a fraction not in lowest terms is not."""
    p = _squash(pred)
    if as_number(pred) is not None:
        m = re.fullmatch(r"-?(\d+)/(\d+)", p)
        return bool(m and math.gcd(int(m.group(1)), int(m.group(2))) > 1
                    and p in _squash(question) and p != _squash(gold))
    if not re.search(r"[-+*/^=<>]|\\frac|\\sqrt|\\cdot|\\times|\\[lg]e|\\neq?", p[1:]):
        return False
    return len(p) >= 3 and p in _squash(question) and p != _squash(gold)


def reference_answer(reference: str) -> str:
    """The answer a reference text gives: itself, or for a whole worked solution (one with a
    box, or longer than `MAX_ANSWER_CHARS`) its final answer by the response rules."""
    if len(reference) > MAX_ANSWER_CHARS or "\\boxed" in reference or "\\fbox" in reference:
        found = find_answer(reference, number_fallback=False)
        if found is not None and found.text:
            return found.text
    return reference


def _parts(answer: str) -> int:
    """How many comma-separated parts a normalised answer has (`1,234` is one number; the
    items of a set `\\{1, 2\\}` count)."""
    if as_number(answer) is not None:
        return 1
    inner = re.sub(r"^\\?\{(.*)\\?\}$", r"\1", answer)
    return len(list_items(inner))


def _final_text(found: Answer, gold: str) -> tuple[str, str | None]:
    """The answer text to judge, and a refusal reason when the boxes hedge.

    A multi-part reference (n parts) boxed part by part in separate sentences reads the last
    n boxes; a single-valued reference with `HEDGING_BOXES` or more different boxed values in
    the response is hedging (a self-correction changes its answer once).
    """
    if found.source != "boxed":
        return found.text, None
    if not found.text:
        return found.text, "empty box"
    wanted = _parts(normalize(gold))
    if wanted >= 2 and len(found.parts) < wanted <= len(found.boxes) and all(
            _parts(normalize(part)) == 1 for part in found.parts):
        return ", ".join(box.strip() for box in found.boxes[-wanted:]), None
    if wanted == 1:
        distinct = {re.sub(r"\s+", "", normalize(box)) for box in found.boxes if box.strip()}
        if len(distinct) >= HEDGING_BOXES:
            return found.text, f"{len(distinct)} different boxed answers: hedging never pays"
    return found.text, None


_TOWER_LEVEL = r"(?:\d+(?:\.\d+)?|(?<![a-zA-Z\\])e|\\pi)"
_TOWER = re.compile(rf"(?:{_TOWER_LEVEL}\s*\^\s*\{{?\s*){{2,}}{_TOWER_LEVEL}")


def _tower(answer: str) -> bool:
    """Whether `answer` holds a numeric power tower (`10^{10^{10}}`, `e^{e^{e^{10}}}`) whose
    lowest exponent has more than `MAX_TOWER_DIGITS` digits: no exact value can be built."""
    for m in _TOWER.finditer(answer):
        levels = [math.e if x == "e" else math.pi if x == "\\pi" else float(x)
                  for x in re.findall(_TOWER_LEVEL, m.group())]
        exponent = levels[-1]
        try:
            for base in reversed(levels[1:-1]):
                if base > 1 and exponent * math.log10(base) > 300:
                    return True
                exponent = base**exponent
        except OverflowError:
            return True
        if exponent > 10**MAX_TOWER_DIGITS:
            return True
    return False


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
        self._sound: OrderedDict[str, bool] = OrderedDict()
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
        gold = reference_answer(gold)
        found = find_answer(response, self.last_number_fallback)
        if found is None:
            return Verdict(Status.NO_ANSWER, 0.0, None, "no final answer found",
                           time.perf_counter() - start)
        answer, refusal = _final_text(found, gold)
        if refusal is not None:
            status, reason = Status.INCORRECT, refusal
        else:
            status, reason = self._judge(answer, gold, question)
        shown = answer if len(answer) <= 200 else answer[:200] + "..."
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
        gold_labels, gold = _unlabelled(gold, "")
        if gold_labels == [None] and len(_equals_split(gold)) > 1:
            # against an equation (`2x + 4y = 3`) a line `y = ...` is whole
            pred_labels: list[str | None] = [None]
        else:
            pred_labels, pred = _unlabelled(pred, gold if gold_labels == [None] else None)
        if gold_labels != [None] and len(_equals_split(pred)) > 1:
            gold = normalize(gold_raw)  # an equation against an equation: compared whole
        if len(gold_labels) == len(pred_labels) == 1 and all(
                lbl and _PLAIN_NAME.match(lbl) for lbl in gold_labels + pred_labels) and (
                gold_labels[0] != pred_labels[0]):
            return Status.INCORRECT, (f"answers for {pred_labels[0]}, the reference is for "
                                      f"{gold_labels[0]}")
        if pred == gold:
            return Status.CORRECT, "same value as the reference"
        if _RATIO.match(pred) or _RATIO.match(gold):
            pred, gold = _ratio(pred), _ratio(gold)
        (pred_core, pred_mark), (gold_core, gold_mark) = _split_marker(pred), _split_marker(gold)
        gold_scales, pred_scales = _scales(gold_mark, pred_mark), _scales(pred_mark, gold_mark)
        pred_plain, gold_plain = _plain_value(pred_core), _plain_value(gold_core)
        if pred_plain is not None and gold_plain is not None:
            if _plain_equal(gold_plain, pred_plain, gold_scales, pred_scales):
                return Status.CORRECT, "same value as the reference"
            return Status.INCORRECT, "differs from the reference"
        # A plain number goes to sympy in plain digits (`1,000,000` is no list there).
        pred_core, gold_core = (
            str(plain.value) if plain is not None and plain.kind == "number" and "," in core
            else core for plain, core in ((pred_plain, pred_core), (gold_plain, gold_core)))
        deepest, deepest_group = _nesting(pred_core)
        if deepest > MAX_NESTING or deepest_group > MAX_GROUP_NESTING:
            return Status.INCORRECT, (f"answer nested deeper than {MAX_NESTING} levels or "
                                      f"{MAX_GROUP_NESTING} bare groups")
        if _tower(pred_core):
            return Status.INCORRECT, ("the answer is a power tower too large to evaluate "
                                      f"(an exponent over 10^{MAX_TOWER_DIGITS})")
        return self._symbolic(gold_core, pred_core, gold_scales, pred_scales)

    def _symbolic(self, gold: str, pred: str, gold_scales: tuple[str, ...],
                  pred_scales: tuple[str, ...]) -> tuple[Status, str]:
        request = {"gold": gold, "pred": pred, "gold_scales": list(gold_scales),
                   "pred_scales": list(pred_scales)}
        status, reason, on_request = self._ask(request)
        if on_request and self._reference_is_sound(gold):
            # The reference alone is judged within the bound: the answer caused the failure.
            return Status.INCORRECT, f"the answer could not be evaluated: {reason}"
        return status, reason

    def _ask(self, request: dict[str, Any]) -> tuple[Status, str, bool]:
        """(status, reason, whether a failure came from the request itself: the comparison
        overran or raised, or the request killed two workers in a row). A busy pool, a worker
        that cannot start or dies once are the verifier's failures."""
        for attempt in (1, 2):
            try:
                reply = self._worker_pool().call(request, self.timeout_s)
            except WorkerBusy as exc:
                return Status.TIMEOUT, f"no verdict within {self.timeout_s:g} s ({exc})", False
            except WorkerTimeout as exc:
                return Status.TIMEOUT, f"no verdict within {self.timeout_s:g} s ({exc})", True
            except WorkerFailure as exc:
                if attempt == 1 and "exited" in str(exc):
                    continue  # a worker that died under this request: once more on a new one
                return Status.ERROR, f"verifier worker failed: {exc}", attempt == 2
            try:
                status = Status(reply["status"])
            except (KeyError, ValueError, TypeError):
                return (Status.ERROR, f"verifier worker sent an unknown reply {reply!r:.200}",
                        False)
            reason = str(reply.get("reason", ""))
            return status, reason, status in (Status.TIMEOUT, Status.ERROR)
        raise AssertionError("unreachable")

    def _reference_is_sound(self, gold: str) -> bool:
        """Whether the reference parses and evaluates within the bound (it is compared with
        the answer `0`; cached per text): a failure on an answer against a sound reference is
        the answer's fault."""
        with self._guard():
            known = self._sound.get(gold)
        if known is None:
            status, _, _ = self._ask({"gold": gold, "pred": "0"})
            known = status in (Status.CORRECT, Status.INCORRECT)
            if status is not Status.TIMEOUT:  # a busy machine may time out a sound reference
                with self._guard():
                    self._sound[gold] = known
                    while len(self._sound) > 1024:
                        self._sound.popitem(last=False)
        return known

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
