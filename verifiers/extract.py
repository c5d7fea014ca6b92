"""Finding the final answer in a model response. Pure string work, no sympy: always fast.

Every function here runs in linear time in the length of its input (responses can be hostile:
hundreds of thousands of characters, thousands of unclosed `\\boxed{`).
"""

from __future__ import annotations

import re

# `\boxed{`, `\boxed 5`; `\boxedfoo` is another macro.
_BOX = re.compile(r"(\\boxed|\\fbox)(?![a-zA-Z])\s*")
_BRACE = re.compile(r"(?<!\\)[{}]")
_TOKEN = re.compile(r"\S+")

#: Only this many trailing characters are searched for "the answer is" and the last number.
TAIL_CHARS = 2_000

_ANSWER_IS = re.compile(
    r"(?:final answer|answer)\s*(?:is|:)\s*:?\s*([^\n]+)", re.IGNORECASE
)
# A thousands-separated number first (so "1,234" stays one number), then a plain one with an
# optional decimal part, exponent or "/denominator".
_NUMBER = re.compile(
    r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])"
    r"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?:/\d+)?"
)


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` or `\\fbox{...}` in `text`, nested braces respected.

    Returns None when there is none or when its braces never close (an unfinished answer is
    no answer); an unclosed last box falls back to the previous closed one. `\\boxed 5` (no
    braces, a single token) is accepted as "5". Linear time: braces are matched in one pass.
    """
    starts = list(_BOX.finditer(text))
    if not starts:
        return None
    closing = _matching_braces(text)
    for m in reversed(starts):
        brace = m.end()
        if brace < len(text) and text[brace] == "{":
            end = closing.get(brace)
            if end is not None:
                return text[brace + 1 : end]
        elif brace > m.start() + len(m.group(1)):  # `\boxed 5`: one whitespace-delimited token
            token = _TOKEN.match(text, brace)
            if token and token.group().rstrip("$."):
                return token.group().rstrip("$.")
    return None


def _matching_braces(text: str) -> dict[int, int]:
    """Position of each unescaped `{` -> position of its matching `}` (unclosed ones absent)."""
    closing: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE.finditer(text):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            closing[stack.pop()] = m.start()
    return closing


def after_hashes(text: str) -> str | None:
    """The GSM8K-style answer: the first non-empty line after the last `####`, else None."""
    if "####" not in text:
        return None
    for line in text.rsplit("####", 1)[1].splitlines():
        if line.strip():
            return line.strip()
    return None


def answer_is(text: str) -> str | None:
    """What follows the last "the answer is" / "final answer:" in the tail of `text`.

    Surrounding `$...$`, Markdown bold and a sentence-ending period are removed; None when
    absent or empty.
    """
    matches = _ANSWER_IS.findall(text[-TAIL_CHARS:])
    if not matches:
        return None
    # A trailing period ends the sentence ("The answer is 12."); "12." is 12 anyway.
    answer = matches[-1].strip().removesuffix(".").rstrip()
    answer = answer.strip("*").strip()  # Markdown bold: "**Answer:** 3", "is **12**"
    if answer.startswith("$") and answer.endswith("$") and len(answer) > 1:
        answer = answer.strip("$").strip()
    return answer or None


def last_number(text: str) -> str | None:
    """The last number written in the tail of `text` (`-3`, `1,234`, `2.5`, `3/4`, `1e-3`)."""
    numbers = _NUMBER.findall(text[-TAIL_CHARS:])
    return numbers[-1] if numbers else None
