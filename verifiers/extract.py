"""Finding the final answer in a model response. Pure string work, no sympy: always fast.

Only the last `TAIL_CHARS` characters of a response are searched, and every function here
runs in linear time in the length of what it searches (responses can be hostile: megabytes,
thousands of unclosed `\\boxed{`), so extraction costs the same for any response length.

What counts as the final answer is stated in `docs/math_verification.md` (section 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Only this many trailing characters of a response are searched for its final answer.
TAIL_CHARS = 8_000
#: A response this short, on one line and not a sentence, is its own answer.
SHORT_ANSWER_CHARS = 120

# `\boxed{`, `\boxed 5`; `\boxedfoo` is another macro.
_BOX = re.compile(r"(\\boxed|\\fbox)(?![a-zA-Z])\s*")
_BRACE = re.compile(r"(?<!\\)[{}]")
_TOKEN = re.compile(r"\S+")
# Text that may stand between the boxes (or math environments) of one multi-part answer:
# separators, math delimiters, spacing, and short labels such as "b =" or "(b)".
_JOINER = re.compile(
    r"^(?:\s|[,;&.]|\$|\\[()\[\]]|\\\\|\\quad|\\qquad|\\[,;:!]|~|\band\b|\bor\b"
    r"|\\text\{\s*(?:and|or|,)?\s*\}|\(?[a-zA-Z]\)|[a-zA-Z](?:_\{?\w+\}?)?\s*=)*$")

# "The final answer is $X$. I hope it is correct." (Minerva / lm-eval), "Final answer: X",
# "**Answer:** X", "the answer is: X", "answer is X".
_PHRASE = re.compile(
    r"(?:final\s+answer|\banswer)(?:\s+to\s+[^\n:]{0,60}?)?\s*(?:\*\*)?\s*(?:is|:|=)\s*(?:\*\*)?"
    r"\s*:?\s*", re.IGNORECASE)
_HOPE = re.compile(r"\s*I hope it is correct\.?\s*$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?=\s|$)|\n")
_COMMAND = re.compile(r"\\[a-zA-Z]+")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")
_IS = re.compile(r"\s(?:is|are|equals|was)\s+(?:equal\s+to\s+)?:?", re.IGNORECASE)

# A math environment: $$...$$, \[...\], \(...\), $...$ (a `\$` is an escaped dollar).
_MATH_ENV = re.compile(
    r"(?<!\\)\$\$(.+?)(?<!\\)\$\$|\\\[(.+?)\\\]|\\\(([^\n]+?)\\\)"
    r"|(?<![\\$])\$((?:\\\$|[^$\n])+?)(?<!\\)\$",
    re.DOTALL)
# A thousands-separated number first (so "1,234" stays one number), then a plain one with an
# optional decimal part, exponent or "/denominator".
_NUMBER = re.compile(
    r"(?<![a-zA-Z_\d.])(?:-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])"
    r"|-?\d{1,3}(?: \d{3})+(?:\.\d+)?(?![\d])"
    r"|-?\d+,\d{1,2}(?![\d,])"  # a decimal comma: 2,74
    r"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?:/\d+)?|-?\.\d+)"
)
# A bare LaTeX answer outside any math environment (`\frac{10}{9}`, `2\sqrt{3}`).
_BARE_LATEX = re.compile(r"-?\d*\\(?:[dt]?frac\{[^{}]*\}\{[^{}]*\}|sqrt\{[^{}]*\})")


@dataclass(frozen=True)
class Answer:
    """The final answer found in a response.

    `text` is the answer (the parts of a multi-part answer joined by ", "); `source` says
    where it was found ("boxed", "tag" (`<answer>...</answer>`), "phrase", "hashes", "whole"
    (a short answer-only response), "math" or "number"); `boxes` lists the
    contents of every closed box in the searched tail, in order (the verifier's hedging
    rules read them); `parts` the boxes making up the answer (empty unless boxed).
    """

    text: str
    source: str
    boxes: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()


def find_answer(response: str, number_fallback: bool = True) -> Answer | None:
    """The final answer of `response` by the rules of `docs/math_verification.md`, or None.

    Boxes first (the last group of adjacent boxes), then the last final-answer phrase or
    GSM8K `####` line, then the last math environment or bare number, whichever ends later
    (the bare number only when `number_fallback`).
    """
    tail = response[-TAIL_CHARS:]
    boxes = boxed_spans(tail)
    if boxes:
        # "\\boxed{255} ... Final Answer: The final answer is $10,455$": a final-answer phrase
        # after the last box, giving math, restates the answer.
        later = _phrase_or_hashes(tail[boxes[-1][1] :], hashes=False)
        if later is not None and re.search(r"\d|\\", later.text):
            return later
        contents = tuple(content for _, _, content in boxes)
        group = _joined(tail, boxes, len(boxes) - 1, -1, 80)
        parts = tuple(content.strip() for _, _, content in group)
        text = ", ".join(p for p in parts if p)
        return Answer(text, "boxed", contents, parts)
    tags = _ANSWER_TAG.findall(tail)
    if tags and tags[-1].strip():  # `<answer> 42 </answer>`, the R1-style answer tag
        inner = find_answer(tags[-1].strip(), number_fallback)
        return Answer(inner.text if inner else tags[-1].strip(), "tag")
    found = _phrase_or_hashes(tail)
    if found is not None:
        return found
    whole = _strip_sentence(response) if len(response) <= SHORT_ANSWER_CHARS else ""
    # An answer-only response: math without words (`x^2+1`, `(1, 2)`) or words without
    # numbers (`Evelyn`); "I think it's -3." is a sentence, read by the rules below.
    if whole and "\n" not in whole and not _MATH_ENV.search(whole) and not _BOX.search(
            whole) and not (
            re.search(r"\d", whole) and _WORD.search(whole)) and len(_WORD.findall(whole)) < 4:
        return Answer(whole, "whole")
    return _last_math_or_number(tail, number_fallback)


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every closed `\\boxed{}`/`\\fbox{}` and `\\boxed 5`."""
    starts = list(_BOX.finditer(text))
    if not starts:
        return []
    closing = _matching_braces(text)
    found = []
    for m in starts:
        brace = m.end()
        if brace < len(text) and text[brace] == "{":
            end = closing.get(brace)
            if end is not None:
                found.append((m.start(), end + 1, text[brace + 1 : end]))
        elif brace > m.start() + len(m.group(1)):  # `\boxed 5`: one whitespace-delimited token
            token = _TOKEN.match(text, brace)
            if token and token.group().rstrip("$."):
                found.append((m.start(), token.end(), token.group().rstrip("$.")))
    # A box inside another box is part of its content, not an answer of its own.
    outer: list[tuple[int, int, str]] = []
    for box in found:
        if outer and box[0] < outer[-1][1]:
            continue
        outer.append(box)
    return outer


def _joined(text: str, spans: list, index: int, step: int, limit: int) -> list:
    """`spans[index]` and the spans next to it (`step` -1: before it, +1: after it) with only
    separators (`_JOINER`, at most `limit` characters) between neighbours, in text order.
    A span is anything whose first two items are its (start, end) in `text`."""
    run = [spans[index]]
    k = index + step
    while 0 <= k < len(spans):
        left, right = (spans[k], run[0]) if step < 0 else (run[-1], spans[k])
        between = text[left[1] : right[0]]
        if len(between) > limit or not _JOINER.match(between):
            break
        if step < 0:
            run.insert(0, spans[k])
        else:
            run.append(spans[k])
        k += step
    return run


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` or `\\fbox{...}` in `text`, nested braces respected.

    Returns None when there is none or when its braces never close (an unfinished answer is
    no answer); an unclosed last box falls back to the previous closed one. `\\boxed 5` (no
    braces, a single token) is accepted as "5". Linear time: braces are matched in one pass.
    """
    boxes = boxed_spans(text)
    return boxes[-1][2] if boxes else None


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


def _phrase_or_hashes(tail: str, hashes: bool = True) -> Answer | None:
    """The answer after the last final-answer phrase or (when `hashes`) `####`, whichever
    comes later."""
    phrase = None
    for m in _PHRASE.finditer(tail):
        phrase = m
    at = tail.rfind("####") if hashes else -1
    if at >= 0 and (phrase is None or at > phrase.start()):
        found = after_hashes(tail[at:])
        if found:
            return Answer(_strip_sentence(found), "hashes")
    if phrase is None:
        return None
    rest = _HOPE.sub("", tail[phrase.end() :])
    # "Final Answer: The largest $n$ is 34." answers what follows the sentence's last "is".
    end = _SENTENCE_END.search(rest)
    sentence = rest[: end.start()] if end else rest
    copula = None
    for m in _IS.finditer(_MATH_ENV.sub(lambda e: "#" * len(e.group()), sentence)):
        copula = m
    if copula is not None:
        rest = rest[copula.end() :]
        end = _SENTENCE_END.search(rest)
        sentence = rest[: end.start()] if end else rest
    env = _MATH_ENV.search(rest)
    if env is not None and (end is None or env.start() < end.start()):
        text = ", ".join(c for _, _, c in _joined(rest, _envs(rest, env.start()), 0, 1, 40) if c)
    else:
        text = _strip_sentence(sentence)
        numbers = _NUMBER.findall(text)
        if numbers and re.search(r"[a-zA-Z]{3,}\s+[a-zA-Z]{3,}", text):
            text = numbers[-1]  # "Jane started growing it 3 hours ago": the number
    return Answer(text, "phrase") if text else None


def _envs(text: str, pos: int = 0) -> list[tuple[int, int, str]]:
    """(start, end, content) of every math environment of `text` from `pos` on."""
    return [(m.start(), m.end(), next(g for g in m.groups() if g is not None).strip())
            for m in _MATH_ENV.finditer(text, pos)]


def _strip_sentence(text: str) -> str:
    """Markdown bold, a sentence-ending period and surrounding whitespace removed."""
    text = text.strip().strip("*").strip().removesuffix(".").strip()
    return text.strip("*").strip()


def answer_is(text: str) -> str | None:
    """What follows the last final-answer phrase ("the answer is", "Final Answer:", ...) or
    `####` in the tail of `text`; None when absent or empty."""
    found = _phrase_or_hashes(text[-TAIL_CHARS:])
    return found.text if found else None


def _last_math_or_number(tail: str, number_fallback: bool) -> Answer | None:
    """The last math environment (with those just before it that only separators divide
    from it: "The solutions are $-2$, $0$, and $3$." answers "-2, 0, 3"), or a bare number
    written after it."""
    envs = _envs(tail)
    if number_fallback:
        after = tail[envs[-1][1] :] if envs else tail
        last = None
        # A LaTeX command is no word: in a garbled `\\boxed0666}` the number is 0666.
        for m in _NUMBER.finditer(_COMMAND.sub(lambda c: " " * len(c.group()), after)):
            last = m
        for m in _BARE_LATEX.finditer(after):
            if last is None or m.end() >= last.end():
                last = m
        if last is not None:
            number = last.group().replace(" ", "")
            if re.fullmatch(r"-?\d+,\d{1,2}", number):
                number = number.replace(",", ".")
            return Answer(number, "number")
    if not envs:
        return None
    text = ", ".join(c for _, _, c in _joined(tail, envs, len(envs) - 1, -1, 40) if c)
    return Answer(text, "math") if text else None


def top_level_split(text: str, separator: str = ",") -> list[str]:
    """`text` split at the separators outside any brackets or braces (`\\{`, `\\left(`
    included)."""
    parts, depth, begin = [], 0, 0
    for k, c in enumerate(text):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == separator and depth == 0:
            parts.append(text[begin:k])
            begin = k + 1
    parts.append(text[begin:])
    return parts


def last_number(text: str) -> str | None:
    """The last number written in the tail of `text` (`-3`, `1,234`, `2.5`, `3/4`, `1e-3`)."""
    numbers = _NUMBER.findall(text[-TAIL_CHARS:])
    return numbers[-1] if numbers else None
