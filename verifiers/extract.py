"""Finding the final answer in a model response. Pure string work, no sympy: always fast."""

from __future__ import annotations

_BOX_COMMANDS = ("\\boxed", "\\fbox")


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` or `\\fbox{...}` in `text`, nested braces respected.

    Returns None when there is none or when its braces never close (an unfinished answer is
    no answer). `\\boxed 5` (no braces, a single token) is accepted as "5".
    """
    best = -1
    command = ""
    for cmd in _BOX_COMMANDS:
        pos = text.rfind(cmd)
        if pos > best:
            best, command = pos, cmd
    while best >= 0:
        content = _braced_after(text, best + len(command))
        if content is not None:
            return content
        # That occurrence was unbalanced or malformed: look at the previous one.
        prev = max(text.rfind(cmd, 0, best) for cmd in _BOX_COMMANDS)
        if prev < 0:
            return None
        best = prev
        command = next(c for c in _BOX_COMMANDS if text.startswith(c, best))
    return None


def _braced_after(text: str, start: int) -> str | None:
    i = start
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return None
    if text[i] != "{":
        # `\boxed 5` form: one whitespace-delimited token.
        if i == start:  # `\boxedfoo` is another macro, not a box
            return None
        token = text[i:].split(None, 1)[0] if text[i:].strip() else ""
        return token.rstrip("$.") or None
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c == "{" and (j == 0 or text[j - 1] != "\\"):
            depth += 1
        elif c == "}" and text[j - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None
