"""Symbolic equivalence of two LaTeX answers, through latex2sympy2_extended and sympy.

This is the slow, possibly unbounded part of math verification (sympy can hang on
`10^{10^{10}}`), so it runs only inside worker processes started by `MathVerifier`
(`python -m rlvr_gym.verifiers.symbolic` serves requests on stdin/stdout, see `serve`).
Importing this module imports sympy and the LaTeX parser; `rlvr_gym.verifiers.math` never
imports it in the caller's process.

The rules (the reference is the gold answer; the relation is deliberately not symmetric):

- Numbers are exact: decimals are the rationals they spell (0.5 == 1/2), and two constant
  expressions are equal only if they agree to 40 significant digits. The one exception: a
  decimal answer written to at least 6 places equals the constant it rounds or truncates
  (0.3333333 == 1/3, 1.414214 == sqrt(2); 1.414 != sqrt(2)).
- Expressions with variables are equal when their difference expands/cancels to 0 or, when
  that is inconclusive, when they agree numerically at several generic points (negative
  ones included, so sqrt(x^2) != x).
- An assignment `x = 3` stands for its value: it matches `3` and `x = 3` but not `y = 3`.
  Against a gold assignment a response must itself be solved: an equation that merely holds
  at the same point (`2x = 6`, the question restated) does not pass. Two general equations
  are equal when one side-difference is a non-zero constant multiple of the other.
- Inequalities and intervals are compared as subsets of the reals (`-x > -1` is `x < 1`);
  an answer that copies the question's inequality is refused by the caller, which knows the
  question.
- `2, 3`, `\\{2, 3\\}` and `\\pm` answers are unordered sets (a one-element set equals its
  element); `(2, 3)` is an ordered pair, which against an interval or inequality is read as
  the open interval it also spells; a list of assignments to different variables
  (`x = 1, y = 2`) is the tuple of values ordered by variable name. A column or row vector
  equals the tuple of its entries; matrices compare entrywise.
- `i` is the imaginary unit.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import sys
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import sympy
from latex2sympy2_extended import latex2sympy
from latex2sympy2_extended.latex2sympy2 import ConversionConfig
from latex2sympy2_extended.math_normalization import NormalizationConfig
from sympy import S
from sympy.core.relational import Relational
from sympy.matrices import MatrixBase
from sympy.matrices.expressions import MatrixExpr

from rlvr_gym.verifiers.extract import top_level_split
from rlvr_gym.verifiers.math import MIN_ROUNDED_PLACES, decimal_places, rounds_to

_NORMALIZATION = NormalizationConfig(
    basic_latex=True, units=True, malformed_operators=True, nits=False, boxed="none",
    equations=False,
)
_CONVERSION = ConversionConfig(interpret_simple_eq_as_assignment=False)

#: Constant expressions must agree to this many significant digits (exact answers agree to
#: all of them; a rounded decimal answer agrees to its few written digits only).
_DIGITS = 40
_REL_TOL = sympy.Rational(1, 10**_DIGITS)
#: Generic points at which expressions in variables are compared (one column per variable).
_POINTS = [
    [sympy.Rational(-137, 100), sympy.Rational(61, 100), sympy.Rational(229, 100)],
    [sympy.Rational(53, 100), sympy.Rational(-211, 100), sympy.Rational(317, 100)],
    [sympy.Rational(271, 100), sympy.Rational(143, 100), sympy.Rational(-89, 100)],
]
_IMAGINARY = sympy.Symbol("i")


class ReferenceParseError(ValueError):
    """The reference answer could not be parsed: the verifier cannot judge (status error)."""


class ResponseParseError(ValueError):
    """The response's answer is not valid LaTeX math: a wrong answer (status incorrect)."""


@functools.lru_cache(maxsize=2048)
def parse(text: str) -> Any:
    """The sympy object a LaTeX answer denotes, with decimals made exact and `i` imaginary.

    Common shapes (numbers, fractions, radicals, powers, pi, `\\pm`, flat lists; see
    `direct`) are built directly; anything else goes through latex2sympy2_extended's grammar,
    and raises whatever it raises on text it cannot parse. Cached: RL samples many responses
    per reference, so the same reference text is parsed again and again.
    """
    built = direct(text)
    if built is not None:
        return built
    if text.count("\\pm") == 1 and not text.lstrip().startswith("\\pm"):
        # `\\frac{-1 \\pm \\sqrt{5}}{2}`: the grammar reads `\\pm` only at the top level
        plus, minus = (parse(text.replace("\\pm", sign)) for sign in ("+", "-"))
        if isinstance(plus, sympy.Expr) and isinstance(minus, sympy.Expr):
            return sympy.FiniteSet(plus, minus)
    interval = _numeric_interval(text)
    if interval is not None:
        return interval
    return _latex(text)


# ---------------------------------------------------------------------------------------
# Direct parser for the common shapes: a recursive descent over a small LaTeX subset, about
# ten times faster than the full grammar (which spends most of a symbolic check parsing).
# Its results are the objects the grammar builds for the same text (tested on generated
# expressions); anything outside the subset returns None and takes the grammar.

_DIRECT_TOKEN = re.compile(
    r"\s*(\d+(?:\.\d+)?|\.\d+|\\(?:frac|sqrt|pi|cdot|times|pm|infty)(?![a-zA-Z])|[a-zA-Z]"
    r"|[-+*/^(){}\[\],])")
_DIRECT_CONSTANTS = {"\\pi": sympy.pi, "\\infty": sympy.oo, "e": sympy.E, "i": sympy.I}


class _NotDirect(Exception):
    """The text is outside the direct parser's subset."""


def direct(text: str) -> Any:
    """`text` as a sympy object when it is a flat list or `\\pm` of expressions built from
    numbers, single-letter variables, `e`, `i`, `\\pi`, `\\infty`, `+ - * / \\cdot \\times`,
    `^`, `\\frac`, `\\sqrt` (and `\\sqrt[n]`), braces and parentheses; None otherwise."""
    tokens, pos, text = [], 0, text.rstrip()
    while pos < len(text):
        m = _DIRECT_TOKEN.match(text, pos)
        if m is None:
            return None
        tokens.append(m.group(1))
        pos = m.end()
    if not tokens or "E" in tokens:
        return None
    try:
        parser = _Direct(tokens)
        items = parser.items()
    except (_NotDirect, ZeroDivisionError, RecursionError):
        return None
    return items[0] if len(items) == 1 else sympy.FiniteSet(*items)


class _Direct:
    """Recursive descent over `tokens`; raises `_NotDirect` outside the subset."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.k = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.k] if self.k < len(self.tokens) else None

    def take(self, want: str | None = None) -> str:
        token = self.peek()
        if token is None or (want is not None and token != want):
            raise _NotDirect
        self.k += 1
        return token

    def items(self) -> list[Any]:
        """A comma-separated list (an unordered set) or one expression with `\\pm`."""
        if "\\pm" in self.tokens and "," in self.tokens:
            raise _NotDirect  # a list of `\\pm` items: the grammar decides
        values = []
        while True:
            if self.peek() == "\\pm":
                self.take()
                value = self.expr()
                values.extend([value, -value])
            else:
                value = self.expr()
                if self.peek() == "\\pm":
                    self.take()
                    other = self.expr()
                    values.extend([value + other, value - other])
                else:
                    values.append(value)
            if self.peek() is None:
                return values
            self.take(",")

    def expr(self) -> Any:
        value = self.term()
        while self.peek() in ("+", "-"):
            sign = self.take()
            other = self.term()
            value = value + other if sign == "+" else value - other
        return value

    def term(self) -> Any:
        value = self.unary()
        divided = False
        while True:
            token = self.peek()
            if token in ("*", "\\cdot", "\\times", "/"):
                self.take()
                other = self.unary()
                divided |= token == "/"
                if token == "/" and other == 0:
                    raise _NotDirect
                value = value / other if token == "/" else value * other
            elif token is not None and token not in ("+", "-", ")", "}", "]", ",", "\\pm", "^"):
                if divided or token[0].isdigit() or token[0] == ".":
                    raise _NotDirect  # `1/2x`, `x 5`: left to the grammar
                value = value * self.power()
            else:
                return value

    def unary(self) -> Any:
        if self.peek() in ("-", "+"):
            sign = self.take()
            value = self.unary()
            return -value if sign == "-" else value
        return self.power()

    def power(self) -> Any:
        base = self.atom()
        if self.peek() != "^":
            return base
        self.take()
        if self.peek() == "{":
            exponent = self.group()
        else:
            token = self.take()
            if not (len(token) == 1 and (token.isdigit() or token.isalpha())):
                raise _NotDirect  # `x^23`, `x^-1`: the grammar decides
            exponent = self.single(token)
        if self.peek() == "^":
            raise _NotDirect  # `a^b^c`
        return sympy.Pow(base, exponent)

    def group(self) -> Any:
        self.take("{")
        value = self.expr()
        self.take("}")
        return value

    def argument(self) -> Any:
        """A macro argument: `{...}` or one digit or letter (`\\frac12`, `\\sqrt2`)."""
        if self.peek() == "{":
            return self.group()
        token = self.take()
        if token.isdigit() and len(token) > 1:  # `\\frac12`: one digit per argument
            self.k -= 1
            self.tokens[self.k] = token[1:]
            token = token[0]
        if len(token) != 1 or not (token.isdigit() or token.isalpha()):
            raise _NotDirect
        return self.single(token)

    def single(self, token: str) -> Any:
        if token.isdigit():
            return sympy.Integer(token)
        return _DIRECT_CONSTANTS.get(token, sympy.Symbol(token))

    def atom(self) -> Any:
        token = self.take()
        if token[0].isdigit() or token[0] == ".":
            if (nxt := self.peek()) is not None and (nxt[0].isdigit() or nxt[0] == "."):
                raise _NotDirect  # `1 2`: a thin-space number or a typo; the grammar decides
            return sympy.Rational(token) if "." in token else sympy.Integer(token)
        if token == "\\frac":
            num = self.argument()
            den = self.argument()
            if den == 0 or self.peek() == "^":
                raise _NotDirect  # `\\frac{a}{b}^{c}`: the grammar decides
            return num / den
        if token == "\\sqrt":
            if self.peek() == "[":
                self.take()
                index = self.expr()
                self.take("]")
                return sympy.root(self.argument(), index)
            return sympy.sqrt(self.argument())
        if token.isalpha() and self.peek() == "(":
            raise _NotDirect  # `f(x)`: a function or a product; the grammar decides
        if token in _DIRECT_CONSTANTS:
            return _DIRECT_CONSTANTS[token]
        if token.isalpha():
            return sympy.Symbol(token)
        if token == "(":
            value = self.expr()
            self.take(")")
            return value
        if token == "{":
            self.k -= 1
            return self.group()
        raise _NotDirect


def _latex(text: str) -> Any:
    """`text` through latex2sympy2_extended's grammar, decimals made exact."""
    return _exact(latex2sympy(text, normalization_config=_NORMALIZATION,
                              conversion_config=_CONVERSION, convert_degrees=True))


def _numeric_interval(text: str) -> Any:
    """`[a, b)` or a `\\cup` of such with numeric ends, built from the ends' parses.

    Only a speed-up: the grammar's interval rules are slow (30-100 ms where each end parses
    in 1-5 ms). Returns None for anything else, which then takes the full parser; so does an
    ambiguous `(a, b)` with a >= b, which is an ordered pair.
    """
    pieces = []
    for part in text.split("\\cup"):
        part = part.strip()
        if len(part) < 5 or part[0] not in "([" or part[-1] not in ")]":
            return None
        ends = top_level_split(part[1:-1])
        if len(ends) != 2:
            return None
        start, end = (_latex(e) for e in ends)
        if not all(isinstance(v, sympy.Expr) and v.is_number and v.is_extended_real
               for v in (start, end)):
            return None
        if not start < end:
            return None
        pieces.append(sympy.Interval(start, end, part[0] == "(", part[-1] == ")"))
    return sympy.Union(*pieces) if len(pieces) > 1 else pieces[0]


def _exact(obj: Any) -> Any:
    if isinstance(obj, MatrixExpr) and not isinstance(obj, MatrixBase):
        obj = obj.doit()  # `A + B` of explicit matrices is the matrix it evaluates to
    if isinstance(obj, MatrixBase):
        return obj.applyfunc(_exact)
    if not isinstance(obj, sympy.Basic):
        return obj
    mapping: dict[Any, Any] = {f: sympy.Rational(str(f)) for f in obj.atoms(sympy.Float)}
    if _IMAGINARY in obj.free_symbols:
        mapping[_IMAGINARY] = sympy.I
    return obj.xreplace(mapping) if mapping else obj


def equivalent(gold_text: str, pred_text: str, gold_scales: Sequence[str] = ("1",),
               pred_scales: Sequence[str] = ("1",)) -> bool:
    """True when the response answer `pred_text` denotes the reference answer `gold_text`.

    `gold_scales`/`pred_scales` are alternative factors for a scalar answer whose marker the
    caller removed (a percentage `50\\%` may mean 50 or 50/100). Raises `ReferenceParseError`
    or `ResponseParseError` when a side cannot be parsed (latex2sympy2_extended raises plain
    exceptions on syntax errors, so any exception but MemoryError/RecursionError while parsing
    the response counts as unparseable); other exceptions are failures of the verifier.
    """
    try:
        gold = parse(gold_text)
    except Exception as exc:
        raise ReferenceParseError(f"reference {gold_text!r} could not be parsed: {exc}") from exc
    try:
        pred = parse(pred_text)
    except (MemoryError, RecursionError):
        raise  # the verifier ran out of room: its failure, not the answer's
    except Exception as exc:
        raise ResponseParseError(f"answer {pred_text!r} could not be parsed") from exc
    places, gold_places = decimal_places(pred_text), decimal_places(gold_text)
    for gs in gold_scales:
        for ps in pred_scales:
            if same(_scaled(gold, gs), _scaled(pred, ps)):
                return True
            if places >= MIN_ROUNDED_PLACES and _rounds_to(_scaled(gold, gs), _scaled(pred, ps),
                                                         places):
                return True
            if gold_places >= MIN_ROUNDED_PLACES and _rounds_to(
                    _scaled(pred, ps), _scaled(gold, gs), gold_places):
                return True
    return False


def _rounds_to(gold: Any, pred: Any, places: int) -> bool:
    """A decimal written to `places` places is the constant `gold` rounded or truncated."""
    if not (isinstance(gold, sympy.Expr) and gold.is_number and isinstance(pred, sympy.Expr)
            and pred.is_Rational):
        return False
    value = gold.evalf(places + 20)
    if not (_finite_number(value) and value.is_real):
        return False
    return rounds_to(Fraction(str(value)), Fraction(int(pred.p), int(pred.q)), places)


def _scaled(obj: Any, scale: str) -> Any:
    if scale == "1" or not isinstance(obj, sympy.Expr):
        return obj
    return obj * sympy.sympify(scale)


def same(gold: Any, pred: Any) -> bool:
    """The equivalence rules of this module on parsed objects (see the module docstring)."""
    if isinstance(gold, sympy.Eq):
        return _same_as_equation(gold, pred)
    if _is_relation(gold):
        return _same_set(_relation_set(gold), _as_set(pred))
    if isinstance(gold, sympy.FiniteSet):
        if all(_assignment(e) for e in gold.args) and _distinct_symbols(gold):
            return _same_assignments(gold, pred)
        if all(_is_relation(e) for e in gold.args):
            return _same_set(_relation_set(gold), _as_set(pred))
        return _same_finite_set(gold, pred)
    if _is_pair(gold) or isinstance(gold, sympy.Tuple):
        gold_items = [gold.start, gold.end] if _is_pair(gold) else list(gold.args)
        pred_items = _as_sequence(pred)
        if pred_items is not None and not (_is_pair(gold) and _is_pair(pred)):
            return _same_items(gold_items, pred_items)
        if isinstance(gold, sympy.Tuple):
            return False
    if isinstance(gold, sympy.Set):
        return _same_set(gold, _as_set(pred))
    if isinstance(gold, MatrixBase):
        if isinstance(pred, MatrixBase):
            return gold.shape == pred.shape and _same_items(list(gold), list(pred))
        return 1 in gold.shape and _same_items(list(gold), _as_sequence(pred))
    if isinstance(gold, sympy.Expr):
        return _same_as_value(gold, pred)
    return bool(gold == pred)


def _same_as_value(gold: sympy.Expr, pred: Any) -> bool:
    if isinstance(pred, sympy.Eq):
        solved = _assignment(pred)
        return solved is not None and _same_as_value(gold, solved[1])
    if isinstance(pred, sympy.FiniteSet):
        # A one-element set is its element; a set of assignments to one variable, too.
        values = [a[1] if (a := _assignment(e)) else e for e in pred.args]
        return len(values) == 1 and _same_as_value(gold, values[0])
    if isinstance(pred, sympy.Expr):
        return _same_value(gold, pred)
    return False


def _same_as_equation(gold: sympy.Eq, pred: Any) -> bool:
    solved = _assignment(gold)
    if solved is not None and not _free(solved[1]):
        symbol, value = solved
        if isinstance(pred, sympy.Eq):
            other = _assignment(pred)
            return other is not None and other[0] == symbol and same(value, other[1])
        if isinstance(pred, sympy.FiniteSet) and all(
                (a := _assignment(e)) and a[0] == symbol for e in pred.args):
            return same(value, sympy.FiniteSet(*(_assigned(e)[1] for e in pred.args)))
        if _is_relation(pred):
            return False
        return same(value, pred)
    if not isinstance(pred, sympy.Eq) or isinstance(pred.rhs, sympy.Set):
        # `y = 2x + 3` also accepts the bare right-hand side, as `x = 3` accepts `3`.
        return solved is not None and isinstance(pred, sympy.Expr) and _same_value(
            solved[1], pred)
    g, p = gold.lhs - gold.rhs, pred.lhs - pred.rhs
    if p == 0:
        return False
    ratio = sympy.cancel(g / p)
    if ratio.free_symbols:
        ratio = sympy.simplify(ratio)
    return bool(not ratio.free_symbols and ratio.is_number and ratio != 0
                and ratio.is_finite)


def _assignment(obj: Any) -> tuple[sympy.Symbol, Any] | None:
    """(symbol, value) when `obj` is `x = value` or `value = x` with x not in value."""
    if not isinstance(obj, sympy.Eq):
        return None
    for symbol, value in ((obj.lhs, obj.rhs), (obj.rhs, obj.lhs)):
        if isinstance(symbol, sympy.Symbol) and symbol not in _free(value):
            return symbol, value
    return None


def _assigned(obj: Any) -> tuple[sympy.Symbol, Any]:
    """`_assignment(obj)` where the caller has checked that `obj` is an assignment."""
    found = _assignment(obj)
    assert found is not None
    return found


def _free(obj: Any) -> set:
    return set(getattr(obj, "free_symbols", set()))


def _distinct_symbols(fs: sympy.FiniteSet) -> bool:
    symbols = [a[0] for a in map(_assignment, fs.args) if a]
    return len(symbols) > 1 and len(set(symbols)) == len(symbols)


def _assignment_tuple(fs: sympy.FiniteSet) -> sympy.Tuple:
    pairs = sorted((_assigned(e) for e in fs.args), key=lambda a: a[0].name)
    return sympy.Tuple(*(value for _, value in pairs))


def _same_assignments(gold: sympy.FiniteSet, pred: Any) -> bool:
    """Gold `x = 1, y = 2` (a system's solution): the same assignments, or the value tuple."""
    if isinstance(pred, sympy.FiniteSet) and all(_assignment(e) for e in pred.args):
        want = {a[0]: a[1] for a in map(_assigned, gold.args)}
        got = {a[0]: a[1] for a in map(_assigned, pred.args)}
        return want.keys() == got.keys() and all(same(want[k], got[k]) for k in want)
    return _same_items(list(_assignment_tuple(gold).args), _as_sequence(pred))


def _same_items(gold: list, pred: list | None) -> bool:
    """Ordered sequences with equal items."""
    return pred is not None and len(pred) == len(gold) and all(
        same(g, p) for g, p in zip(gold, pred, strict=True))


def _as_sequence(pred: Any) -> list | None:
    """A response as an ordered list: a tuple, a row/column vector, `(a, b)` read as a pair,
    or assignments to distinct variables ordered by name; None for anything else."""
    if isinstance(pred, MatrixBase):
        return list(pred) if 1 in pred.shape else None
    if isinstance(pred, sympy.Tuple):
        return list(pred.args)
    if _is_pair(pred):
        return [pred.start, pred.end]
    if isinstance(pred, sympy.FiniteSet) and _distinct_symbols(pred) and all(
            _assignment(e) for e in pred.args):
        return list(_assignment_tuple(pred).args)
    return None


def _same_finite_set(gold: sympy.FiniteSet, pred: Any) -> bool:
    if isinstance(pred, sympy.Eq) and (a := _assignment(pred)):
        pred = a[1]
    if isinstance(pred, sympy.FiniteSet):
        items = [a[1] if (a := _assignment(e)) else e for e in pred.args]
    elif pred is S.EmptySet:
        items = []
    elif isinstance(pred, (sympy.Expr, sympy.Tuple, MatrixBase)) and not _is_relation(pred):
        items = [pred]
    else:
        return False
    want = list(gold.args)
    return all(any(same(g, p) for p in items) for g in want) and all(
        any(same(g, p) for g in want) for p in items)


def _is_pair(obj: Any) -> bool:
    """An open interval with finite ends, which `(a, b)` also spells as an ordered pair."""
    return (isinstance(obj, sympy.Interval) and obj.left_open and obj.right_open
            and obj.start.is_finite is True and obj.end.is_finite is True)


def _is_relation(obj: Any) -> bool:
    return (isinstance(obj, Relational) and not isinstance(obj, sympy.Eq)) or isinstance(
        obj, (sympy.And, sympy.Or))


def _relation_set(rel: Any) -> sympy.Set | None:
    """The subset of the reals where a relation in one variable holds (None if not that)."""
    if isinstance(rel, sympy.FiniteSet):  # "x < 1 or x > 4"
        parts = [_relation_set(e) for e in rel.args]
        return None if any(p is None for p in parts) else sympy.Union(*parts)
    if len(_free(rel)) != 1:
        return None
    if isinstance(rel, (sympy.And, sympy.Or)):
        parts = [_relation_set(a) for a in rel.args]
        if any(p is None for p in parts):
            return None
        return (sympy.Intersection if isinstance(rel, sympy.And) else sympy.Union)(*parts)
    ray = _ray(rel)
    if ray is not None:
        return ray
    symbol = next(iter(_free(rel)))
    real = sympy.Dummy(symbol.name, real=True)
    return rel.xreplace({symbol: real}).as_set()


def _ray(rel: Any) -> sympy.Set | None:
    """`x > 4`, `4 >= x` as an interval directly (sympy's general solver takes ~100x longer)."""
    if not isinstance(rel, Relational) or isinstance(rel, (sympy.Eq, sympy.Ne)):
        return None
    if isinstance(rel.lhs, sympy.Symbol) and not _free(rel.rhs):
        bound, below = rel.rhs, isinstance(rel, (sympy.StrictLessThan, sympy.LessThan))
    elif isinstance(rel.rhs, sympy.Symbol) and not _free(rel.lhs):
        bound, below = rel.lhs, isinstance(rel, (sympy.StrictGreaterThan, sympy.GreaterThan))
    else:
        return None
    if not (bound.is_number and bound.is_extended_real):
        return None
    strict = isinstance(rel, (sympy.StrictLessThan, sympy.StrictGreaterThan))
    if below:
        return sympy.Interval(-sympy.oo, bound, True, strict)
    return sympy.Interval(bound, sympy.oo, strict, True)


def _as_set(pred: Any) -> sympy.Set | None:
    """A response as a subset of the reals: an interval/union, or a *solved* relation."""
    if isinstance(pred, sympy.Eq) and (a := _assignment(pred)):
        pred = a[1]
    if isinstance(pred, sympy.Set):
        if isinstance(pred, sympy.FiniteSet) and pred.args and all(
                _is_relation(e) for e in pred.args):
            return _relation_set(pred)
        return pred
    if _is_relation(pred):
        return _relation_set(pred)
    return None


def _same_set(gold: sympy.Set | None, pred: sympy.Set | None) -> bool:
    if gold is None or pred is None:
        return False
    if gold == pred:
        return True
    gs, ps = _pieces(gold), _pieces(pred)
    if len(gs) == len(ps) and all(_same_piece(g, p) for g, p in zip(gs, ps, strict=True)):
        return True
    return sympy.Complement(gold, pred) is S.EmptySet and (
        sympy.Complement(pred, gold) is S.EmptySet)


def _pieces(s: sympy.Set) -> list:
    return list(s.args) if isinstance(s, sympy.Union) else [s]


def _same_piece(g: Any, p: Any) -> bool:
    if isinstance(g, sympy.Interval) and isinstance(p, sympy.Interval):
        return (g.left_open == p.left_open and g.right_open == p.right_open
                and _same_value(g.start, p.start) and _same_value(g.end, p.end))
    if isinstance(g, sympy.FiniteSet) and isinstance(p, sympy.FiniteSet):
        return _same_finite_set(g, p)
    return bool(g == p)


def _same_value(gold: Any, pred: Any) -> bool:
    """Equality of two scalar expressions (see the module docstring for the exactness rule)."""
    if isinstance(gold, sympy.Basic) and gold.has(sympy.zoo, sympy.nan):
        return False  # `12:00` is 12/0: undefined values are never equal
    if gold == pred:
        return True
    if not (isinstance(gold, sympy.Expr) and isinstance(pred, sympy.Expr)):
        return False
    if gold.is_Rational and pred.is_Rational:
        return False  # distinct exact rationals (== above was exact)
    symbols = sorted(_free(gold) | _free(pred), key=lambda s: s.name)
    if not symbols:
        return _close(gold, pred)
    difference = gold - pred
    if sympy.expand(difference) == 0:
        return True
    agreeing = 0
    for point in _POINTS:
        values = {s: point[k % len(point)] + k // len(point) for k, s in enumerate(symbols)}
        g, p = gold.xreplace(values), pred.xreplace(values)
        gv, pv = g.evalf(_DIGITS + 10), p.evalf(_DIGITS + 10)
        if not (_finite_number(gv) and _finite_number(pv)):
            continue  # outside a domain (log of a negative, a pole): try another point
        if not _close(gv, pv):
            return False
        agreeing += 1
    if agreeing >= 2:
        return True
    return sympy.simplify(difference) == 0


def _finite_number(v: Any) -> bool:
    return bool(v.is_number and v.is_finite and not v.has(sympy.nan, sympy.zoo))


def _close(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Constant expressions equal to `_DIGITS` significant digits (infinities exactly)."""
    av, bv = a.evalf(_DIGITS + 10), b.evalf(_DIGITS + 10)
    if not (_finite_number(av) and _finite_number(bv)):
        return bool(av == bv) and av.is_infinite is True and not av.has(sympy.zoo)
    scale = max(abs(av), abs(bv), S.One)
    return bool(abs(av - bv) <= _REL_TOL * scale)


# ---------------------------------------------------------------------------------------
# Worker process: one JSON request per line on stdin, one JSON reply per line on stdout.


class _Deadline(BaseException):
    """Raised by SIGALRM inside the worker. A BaseException, so that the `except Exception`
    blocks inside sympy and latex2sympy cannot swallow it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Deadline


def answer(request: dict) -> dict:
    """The reply to one request {"gold", "pred", "gold_scales", "pred_scales"}:
    {"status": "correct" | "incorrect" | "error", "reason": str}."""
    try:
        ok = equivalent(request["gold"], request["pred"], request.get("gold_scales", ("1",)),
                        request.get("pred_scales", ("1",)))
    except ResponseParseError as exc:
        return {"status": "incorrect", "reason": str(exc)}
    except ReferenceParseError as exc:
        return {"status": "error", "reason": str(exc)}
    except Exception as exc:  # RecursionError and MemoryError included: the verifier failed
        return {"status": "error", "reason": f"sympy failed: {type(exc).__name__}: {exc}"[:300]}
    reason = "symbolically equivalent to the reference" if ok else "differs from the reference"
    return {"status": "correct" if ok else "incorrect", "reason": reason}


def serve(memory_mb: int) -> None:
    """Answer requests until stdin closes. Each request carries "budget_s": past it, the
    request is abandoned with status "timeout" (the parent kills the process if even that
    does not come back in time, e.g. inside a long C-level integer operation)."""
    if memory_mb > 0:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # Keep the protocol on a private copy of stdout; anything a library prints goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    signal.signal(signal.SIGALRM, _on_alarm)
    # Ctrl-C in a terminal reaches the whole process group: let the parent decide, and end
    # this worker through its closed stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.setrecursionlimit(3_000)
    parse("1")  # warm the parser before saying ready
    out.write('{"ready": true}\n')
    for line in sys.stdin:
        request = json.loads(line)
        try:
            signal.setitimer(signal.ITIMER_REAL, max(float(request["budget_s"]), 0.001))
            reply = answer(request)
        except _Deadline:
            reply = {"status": "timeout", "reason": "symbolic comparison ran past its budget"}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        out.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
