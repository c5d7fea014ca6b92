"""Code verification: run a model's Python program against a problem's tests in the sandbox.

`Problem.tests` is a dict in one of four formats:

- stdin/stdout: `{"format": "stdio", "cases": [{"input": "1 2\\n", "output": "3\\n"}, ...],
  "float_tol": None}`. Outputs are compared line by line on whitespace-separated tokens
  (trailing blank lines ignored); with `float_tol`, tokens that are both numbers compare with
  that relative/absolute tolerance. A test passes only if the program also exits with status 0.
- function call: `{"format": "call", "fn": "name", "cases": [{"args": [...], "kwargs": {...},
  "expected": value}, ...], "float_tol": None, "json_values": False}`. The returned value must
  be plain data (None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset, nested)
  of exactly the expected types: an object that overrides `__eq__` cannot even cross the
  sandbox boundary, and `True` is not `1`. With `json_values` (tests from JSON files, which
  have no tuples) a returned tuple counts as a list.
- assert statements: `{"format": "assert", "asserts": ["assert f(1) == 2", ...],
  "setup": "import math"}` (MBPP/HumanEval style). The host turns each assert's test into a
  condition it evaluates itself over plain values: comparisons (chains included), `not`,
  `and`/`or`, `math.isclose(A, B, ...)`, `abs(A - B) < EPS`, anything else by its truth
  value. Literal leaves stay in the host; the others are evaluated in the sandbox with the
  builtins as they were before the program ran, and only their values come back. Leaves the
  test code computes alone (`sorted(xs)`, `ref(x)` with `ref` from the setup) are evaluated
  before the program starts, so the program can neither forge nor influence them. (A leaf
  that mixes both, like `all(f(x) == ref(x) for x in xs)`, is a single value computed in the
  program's process, which the program can claim: write such tests as separate asserts, or
  as call tests.) Statements
  that are not top-level asserts (imports, helpers, asserts inside loops) are setup: it runs
  before the program, the names it defines win over the program's, and statements that
  needed the program run again after it. Values must be plain data, as for function calls.
- test program: `{"format": "program", "test": "def check(candidate): ...\ncheck(f)",
  "preamble": "..."}` (HumanEval, run as its own harness runs it: asserts inside loops
  count). The preamble (HumanEval's prompt: the helpers its tests call) runs before the
  program, which may replace what it defines; the test program runs after the program, with
  the builtins as they were before it, and is one test, passed when it runs to its end. Its
  verdict is computed in the program's process, as in HumanEval's harness: a program built
  to cheat (an object equal to everything, a result line it writes itself) can pass it,
  which the other formats prevent.

Any format may carry `"prompt"`: the program text responses continue (HumanEval's
completion convention). The program run is then `prompt + response`, verbatim; no fenced
block is looked for.

In every format the expected outputs never enter the sandbox, and the host requires a result
for every test: a program that exits (`sys.exit(0)`, `os._exit(0)`) before the tests ran gets
no credit for tests it did not answer. A program that writes to the result channel itself
(garbage, a result twice or before the program loaded, values claimed after it started)
scores 0.

Score = fraction of tests passed; `correct` only when all pass. `no_answer`: no Python code
in the response. `timeout`: the program ran past its wall deadline (score counts the tests it
finished). `error`: the sandbox itself failed; mask such samples, they say nothing about the
answer.
"""

from __future__ import annotations

import ast
import collections
import math
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rlvr_gym.types import Problem, Status, Verdict, batch_problems
from rlvr_gym.verifiers._sandbox_runner import decode, encode
from rlvr_gym.verifiers.sandbox import Layers, RunResult, SandboxConfig, SandboxPool

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)^[ \t]*```", re.M | re.S)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}


def extract_code(response: str) -> str | None:
    """The program in a response: the last fenced code block tagged Python (or untagged);
    with no fenced block, the whole response. None when there is nothing but whitespace."""
    blocks = [body for tag, body in _FENCE.findall(response) if tag.lower() in _PYTHON_TAGS]
    code = blocks[-1] if blocks else response
    return code if code.strip() else None


#: A value an assert's test uses: `("lit", value)`, a literal kept in the host, or
#: `("run", j)`, the payload's expression `j`, evaluated in the sandbox.
_Leaf = tuple[str, Any]


@dataclass(frozen=True)
class _Check:
    """How the host judges one test from the values the sandbox sent back."""

    describe: str
    """The test as shown in feedback (e.g. `f(3)` or `input '1 2'`)."""
    expected: Any = None
    """The expected value (`strict`) or output text (`stdout`); host side only."""
    op: str = "strict"
    """`strict` (function-call tests), `stdout` (stdin/stdout tests) or `assert`."""
    cond: tuple[Any, ...] = ()
    """For `assert`: the test as a condition over leaves (see `_condition`)."""


@dataclass(frozen=True)
class TestSuite:
    """A problem's tests split into what goes into the sandbox (`payload`) and what stays in
    the host (`checks`, holding the expected outputs)."""

    payload: dict[str, Any]
    """Sent to the sandbox runner, without the program's code."""
    checks: tuple[_Check, ...]
    """One per test, in order."""
    float_tol: float | None = None
    """Tolerance for float comparisons, if any."""
    json_values: bool = False
    """Returned tuples count as lists (expected values came from JSON)."""
    prompt: str = ""
    """Program text the response continues (completion mode); empty: the response holds
    the whole program."""

    @property
    def fn(self) -> str | None:
        return self.payload.get("fn")


_FORMATS = ("stdio", "call", "assert", "program")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def parse_tests(tests: Any) -> TestSuite:
    """Validate `Problem.tests` and split it into sandbox payload and host-side checks.
    Raises ValueError saying what to fix."""
    _require(isinstance(tests, dict) and tests.get("format") in _FORMATS,
             f"code tests must be a dict with 'format' set to one of {list(_FORMATS)}, "
             f"got {_short(tests, 100)}")
    fmt = tests["format"]
    float_tol = tests.get("float_tol")
    _require(float_tol is None or (isinstance(float_tol, (int, float)) and float_tol >= 0),
             f"float_tol must be None or a non-negative number, got {_short(float_tol)}")
    prompt = tests.get("prompt") or ""
    _require(isinstance(prompt, str), "the tests' 'prompt' must be the program text that "
             f"responses continue, got {_short(prompt)}")
    if fmt == "assert":
        suite = _parse_asserts(tests)
    elif fmt == "program":
        suite = _parse_program(tests)
    else:
        suite = _parse_cases(tests, fmt, float_tol)
    return replace(suite, prompt=prompt)


def _parse_program(tests: dict[str, Any]) -> TestSuite:
    parts: dict[str, Any] = {"test": tests.get("test"), "preamble": tests.get("preamble") or ""}
    _require(isinstance(parts["test"], str) and bool(parts["test"].strip()),
             "program tests need 'test', the code of the test program")
    for key, text in parts.items():
        _require(isinstance(text, str), f"program tests' {key!r} must be a string of Python "
                 "code")
        try:
            ast.parse(text)
        except SyntaxError as exc:
            raise ValueError(f"program tests' {key!r} is not valid Python ({exc.msg}): "
                             f"{text[:100]!r}") from exc
    payload = {"mode": "call", "cases": [{"exec": parts["test"]}], "preamble": parts["preamble"]}
    return TestSuite(payload, (_Check("the test program", True, "strict"),))


def _parse_cases(tests: dict[str, Any], fmt: str, float_tol: float | None) -> TestSuite:
    cases: Any = tests.get("cases")
    _require(isinstance(cases, list) and len(cases) > 0,
             f"{fmt} tests need a non-empty 'cases' list")
    if fmt == "stdio":
        for case in cases:
            _require(isinstance(case, dict) and isinstance(case.get("input"), str)
                     and isinstance(case.get("output"), str),
                     "each stdio case must be {'input': str, 'output': str}")
        payload = {"mode": "stdio", "cases": [{"input": c["input"]} for c in cases]}
        return TestSuite(payload, tuple(_Check(f"input {c['input'][:60]!r}", c["output"],
                                               "stdout") for c in cases), float_tol)
    fn = tests.get("fn")
    _require(isinstance(fn, str) and fn.isidentifier(),
             f"call tests need 'fn', the function's name, got {_short(fn)}")
    wire_cases: list[dict[str, Any]] = []
    checks: list[_Check] = []
    for case in cases:
        _require(isinstance(case, dict) and "args" in case and "expected" in case,
                 "each call case must be {'args': [...], 'expected': value} (+ 'kwargs')")
        args, kwargs = list(case["args"]), dict(case.get("kwargs") or {})
        try:
            wire_cases.append({"args": encode(args), "kwargs": encode(kwargs)})
            encode(case["expected"])
        except TypeError as exc:
            raise ValueError(f"call test values must be plain data: {exc}") from exc
        shown = ", ".join([_short(a) for a in args] + [f"{k}={_short(v)}"
                                                       for k, v in kwargs.items()])
        checks.append(_Check(f"{fn}({shown[:200]})", case["expected"], "strict"))
    return TestSuite({"mode": "call", "fn": fn, "cases": wire_cases}, tuple(checks), float_tol,
                     bool(tests.get("json_values", False)))


def _literal(node: ast.expr) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


_OPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
        ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}


def _literal_kwargs(call: ast.Call) -> dict[str, Any] | None:
    kwargs = {}
    for kw in call.keywords:
        is_lit, value = _literal(kw.value)
        if kw.arg is None or not is_lit:
            return None
        kwargs[kw.arg] = value
    return kwargs


def _leaf(node: ast.expr, exprs: list[str]) -> _Leaf:
    """A literal stays in the host; anything else becomes an expression for the sandbox."""
    is_lit, value = _literal(node)
    if is_lit:
        return ("lit", value)
    exprs.append(ast.unparse(node))
    return ("run", len(exprs) - 1)


def _condition(test: ast.expr, exprs: list[str]) -> tuple[Any, ...]:
    """An assert's test as a condition the host evaluates over plain values, its non-literal
    leaves appended to `exprs` (evaluated in the sandbox):

    - `("cmp", ops, leaves)`: `leaves[0] ops[0] leaves[1] ops[1] ...` (chains included);
    - `("abs_diff", op, (a, b, eps))`: `abs(a - b) op eps`, op `<` or `<=`;
    - `("isclose", kwargs, (a, b))`: `math.isclose(a, b, **kwargs)`, literal kwargs;
    - `("not", cond)`, `("and", conds)`, `("or", conds)`;
    - `("truth", leaf)`: anything else, judged by its truth value.

    The sandbox sends back values only, never a verdict: a program that writes result lines
    itself can only claim values, and a leaf the test code computes without the program is
    evaluated before the program runs."""
    if isinstance(test, ast.Compare) and all(type(op) in _OPS for op in test.ops):
        ops = tuple(_OPS[type(op)] for op in test.ops)
        left = test.left
        if ops in (("<",), ("<=",)) and isinstance(left, ast.Call) and \
                ast.unparse(left.func) == "abs" and len(left.args) == 1 and not left.keywords \
                and isinstance(left.args[0], ast.BinOp) and isinstance(left.args[0].op, ast.Sub):
            diff = left.args[0]
            return ("abs_diff", ops[0], (_leaf(diff.left, exprs), _leaf(diff.right, exprs),
                                         _leaf(test.comparators[0], exprs)))
        return ("cmp", ops, tuple(_leaf(n, exprs) for n in [left, *test.comparators]))
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return ("not", _condition(test.operand, exprs))
    if isinstance(test, ast.BoolOp):
        return ("and" if isinstance(test.op, ast.And) else "or",
                tuple(_condition(v, exprs) for v in test.values))
    if isinstance(test, ast.Call) and ast.unparse(test.func) in ("isclose", "math.isclose") \
            and len(test.args) == 2:
        kwargs = _literal_kwargs(test)
        if kwargs is not None:
            return ("isclose", kwargs, (_leaf(test.args[0], exprs), _leaf(test.args[1], exprs)))
    return ("truth", _leaf(test, exprs))


def _parse_asserts(tests: dict[str, Any]) -> TestSuite:
    asserts = tests.get("asserts")
    if isinstance(asserts, str):
        asserts = [asserts]
    _require(isinstance(asserts, list) and bool(asserts)
             and all(isinstance(a, str) for a in asserts),
             "assert tests need 'asserts', a non-empty list of assert statements")
    assert isinstance(asserts, list)
    setup = tests.get("setup") or ""
    _require(isinstance(setup, str), "assert tests' 'setup' must be a string of Python code")
    sources = [("setup", setup)] + [("assert", text) for text in asserts]
    setup_parts: list[str] = []
    exprs: list[str] = []
    checks = []
    for origin, text in sources:
        try:
            module = ast.parse(text)
        except SyntaxError as exc:
            raise ValueError(f"{'assert test' if origin == 'assert' else 'assert tests setup'}"
                             f" is not valid Python ({exc.msg}): {text[:100]!r}") from exc
        for node in module.body:
            if isinstance(node, ast.Assert) and origin == "assert":
                checks.append(_Check(ast.unparse(node.test)[:200], op="assert",
                                     cond=_condition(node.test, exprs)))
            else:
                setup_parts.append(ast.unparse(node))
    _require(bool(checks), "assert tests contain no assert statement")
    payload = {"mode": "call", "cases": [{"expr": e} for e in exprs], "setup": setup_parts}
    return TestSuite(payload, tuple(checks), tests.get("float_tol"))


def strict_equal(got: Any, expected: Any, float_tol: float | None = None,
                 json_values: bool = False) -> bool:
    """Equality that also requires identical types at every level (a bool is not an int, a
    list is not a tuple unless `json_values`); floats within `float_tol` if given."""
    if json_values and type(got) is tuple:
        got = list(got)
    if type(got) is not type(expected):
        return False
    if type(got) is float:
        if float_tol is not None:
            return math.isclose(got, expected, rel_tol=float_tol, abs_tol=float_tol)
        return got == expected or (math.isnan(got) and math.isnan(expected))
    if type(got) in (list, tuple):
        return len(got) == len(expected) and all(
            strict_equal(g, e, float_tol, json_values) for g, e in zip(got, expected, strict=True))
    if type(got) is dict:
        if {(type(k), k) for k in got} != {(type(k), k) for k in expected}:
            return False
        return all(strict_equal(got[k], expected[k], float_tol, json_values) for k in expected)
    if type(got) in (set, frozenset):
        return {(type(v), v) for v in got} == {(type(v), v) for v in expected}
    return got == expected


def _tokens_equal(a: str, b: str, float_tol: float | None) -> bool:
    if a == b:
        return True
    if float_tol is None:
        return False
    try:
        return math.isclose(float(a), float(b), rel_tol=float_tol, abs_tol=float_tol)
    except ValueError:
        return False


def outputs_match(got: str, expected: str, float_tol: float | None = None) -> bool:
    """Stdout comparison: same lines of whitespace-separated tokens, ignoring leading and
    trailing whitespace and blank lines at the end; numbers within `float_tol` if given."""
    g = [line.split() for line in got.strip().splitlines()]
    e = [line.split() for line in expected.strip().splitlines()]
    if len(g) != len(e) or any(len(gl) != len(el) for gl, el in zip(g, e, strict=True)):
        return False
    return all(_tokens_equal(a, b, float_tol)
               for gl, el in zip(g, e, strict=True) for a, b in zip(gl, el, strict=True))


_COMPARE = {
    "==": lambda g, e: g == e, "!=": lambda g, e: g != e, "<": lambda g, e: g < e,
    "<=": lambda g, e: g <= e, ">": lambda g, e: g > e, ">=": lambda g, e: g >= e,
    "in": lambda g, e: g in e, "not in": lambda g, e: g not in e,
    "is": lambda g, e: g is e, "is not": lambda g, e: g is not e,
}


class _NoValue(Exception):
    """A leaf has no usable value (no result, an exception, a malformed value)."""


@dataclass
class _Values:
    """What one run sent back, sorted by trust: `refs` (test-code values computed before the
    program ran, so the program cannot have touched them) and `results` (one per test or
    expression, sent while or after the program ran)."""

    refs: dict[int, dict[str, Any]] = field(default_factory=dict)
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    load_error: str | None = None
    tampered: bool = False
    """The result channel carried something the runner never writes: garbage, a repeated
    result, a result before the program finished loading, values claimed after the program
    started. Only the program can have written it."""

    @classmethod
    def collect(cls, result: RunResult) -> _Values:
        values = cls(tampered=result.bad_lines > 0)
        started = loaded = False
        for m in result.messages:
            kind, i = m.get("t"), m.get("i")
            if kind == "loading":
                values.tampered |= started
                started = True
            elif kind == "loaded":
                loaded = True
            elif kind == "load_error" and values.load_error is None:
                values.load_error = _short(m.get("error"), 200)
            elif kind in ("ref", "result"):
                if type(i) is not int or i in values.refs or i in values.results or \
                        (kind == "ref" and started) or (kind == "result" and not loaded):
                    values.tampered = True
                else:
                    (values.refs if kind == "ref" else values.results)[i] = m
        return values

    def get(self, j: int) -> Any:
        """The decoded value of expression `j`; _NoValue saying why there is none."""
        m = self.refs.get(j) or self.results.get(j)
        if m is None:
            raise _NoValue("no result")
        if "e" in m:
            raise _NoValue(f"raised {_short(m['e'], 120)}")
        try:
            return decode(m.get("v"))
        except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
            raise _NoValue("sent back a malformed value") from exc


def _leaf_value(leaf: _Leaf, values: _Values) -> Any:
    kind, x = leaf
    return x if kind == "lit" else values.get(x)


def _number(value: Any) -> float | int:
    if type(value) not in (int, float):
        raise TypeError("not a number")
    return value


def _compare(op: str, left: Any, right: Any, float_tol: float | None) -> bool:
    if op in ("==", "!=") and float_tol is not None and type(left) is float \
            and type(right) is float:
        return math.isclose(left, right, rel_tol=float_tol, abs_tol=float_tol) == (op == "==")
    return bool(_COMPARE[op](left, right))


def _holds(cond: tuple[Any, ...], values: _Values, float_tol: float | None) -> bool:
    """Evaluate an assert's condition (see `_condition`) on plain values, short-circuiting as
    Python does. Raises _NoValue for a needed leaf without a value, and TypeError,
    OverflowError, ... where the values do not support the operation."""
    kind = cond[0]
    if kind == "truth":
        return bool(_leaf_value(cond[1], values))
    if kind == "not":
        return not _holds(cond[1], values, float_tol)
    if kind in ("and", "or"):
        want = kind == "or"
        return want if any(_holds(c, values, float_tol) is want for c in cond[1]) else not want
    if kind == "cmp":
        left = _leaf_value(cond[2][0], values)
        for op, leaf in zip(cond[1], cond[2][1:], strict=True):
            right = _leaf_value(leaf, values)
            if not _compare(op, left, right, float_tol):
                return False
            left = right
        return True
    a, b, *rest = (_number(_leaf_value(leaf, values)) for leaf in cond[2])
    if kind == "isclose":
        return math.isclose(a, b, **cond[1])
    return bool(_COMPARE[cond[1]](abs(a - b), rest[0]))


def _leaves(cond: tuple[Any, ...]) -> list[_Leaf]:
    if cond[0] == "truth":
        return [cond[1]]
    if cond[0] == "not":
        return _leaves(cond[1])
    if cond[0] in ("and", "or"):
        return [leaf for c in cond[1] for leaf in _leaves(c)]
    return list(cond[2])


def _judge_assert(check: _Check, values: _Values, float_tol: float | None
                  ) -> tuple[bool, str]:
    try:
        if _holds(check.cond, values, float_tol):
            return True, ""
    except _NoValue as exc:
        return False, str(exc)
    except Exception:  # noqa: BLE001 (hostile values: e.g. `<` between str and int, overflow)
        pass
    # Say what the program's side returned, and what it was compared with (literals and
    # values the test code computed).
    leaves = _leaves(check.cond)
    compared = leaves[:2] if check.cond[0] == "abs_diff" else leaves  # not the tolerance
    mine = [x for kind, x in leaves if kind == "run" and x not in values.refs]
    theirs = [leaf for leaf in compared if leaf[0] == "lit" or leaf[1] in values.refs]
    shown = []
    for j in mine[:2]:
        try:
            shown.append(_short(values.get(j)))
        except _NoValue as exc:
            return False, str(exc)
    why = "returned " + " and ".join(shown) if shown else "is false"
    if check.cond[0] in ("cmp", "isclose", "abs_diff") and len(compared) == 2 and \
            len(mine) == 1 and len(theirs) == 1:
        about = " about" if check.cond[0] != "cmp" else ""
        try:
            why += f", expected{about} {_short(_leaf_value(theirs[0], values))}"
        except _NoValue as exc:
            return False, f"{why} ({exc})"
    return False, why


def _judge(check: _Check, i: int, values: _Values, suite: TestSuite) -> tuple[bool, str]:
    """(passed, what went wrong) for test `i`."""
    if check.op == "assert":
        return _judge_assert(check, values, suite.float_tol)
    if check.op == "stdout":
        message = values.results.get(i)
        if message is None:
            return False, "no result"
        out = message.get("out")
        if not isinstance(out, str):
            return False, "no output"
        if message.get("timeout"):
            return False, "timed out"
        if message.get("truncated"):
            return False, "printed too much"
        if message.get("exit") != 0:
            return False, f"exited with status {_short(message.get('exit'), 40)}"
        if outputs_match(out, check.expected, suite.float_tol):
            return True, ""
        return False, f"printed {_short(out)}, expected {_short(check.expected)}"
    try:
        got = values.get(i)
    except _NoValue as exc:
        return False, str(exc)
    try:
        if strict_equal(got, check.expected, suite.float_tol, suite.json_values):
            return True, ""
    except Exception:  # noqa: BLE001, S110 (hostile values cannot be compared: a failure)
        pass
    return False, f"returned {_short(got)}, expected {_short(check.expected)}"


def _short(value: Any, limit: int = 160) -> str:
    """repr for feedback, cut to `limit` characters; never raises (an int past Python's
    4,300-digit `repr` limit, a structure too deep to print, are described instead)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError, MemoryError):
        text = f"<int of {value.bit_length()} bits>" if type(value) is int else \
            f"<{type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class CodeVerifierConfig:
    """How candidate programs are run and judged."""

    test_timeout_s: float = 2.0
    """Wall seconds per test; a run gets `load_timeout_s + test_timeout_s * tests`."""
    load_timeout_s: float = 2.0
    """Wall seconds for loading the program (imports, module-level code)."""
    max_timeout_s: float = 30.0
    """Upper bound on one candidate's total wall time."""
    max_code_chars: int = 100_000
    """Longer programs are judged incorrect without running."""
    max_failures_shown: int = 3
    """Failing tests described in `Verdict.reason` (multi-turn feedback shows them)."""
    workers: int | None = None
    """Parallel sandboxes for `verify_batch`; None: one per available CPU."""
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    """Resource limits and isolation options."""

    def validate(self) -> None:
        """Raise ValueError with a fix for any unusable value."""
        for name in ("test_timeout_s", "load_timeout_s", "max_timeout_s", "max_code_chars"):
            if getattr(self, name) <= 0:
                raise ValueError(f"CodeVerifierConfig.{name} must be positive, got "
                                 f"{getattr(self, name)}")
        if self.max_failures_shown < 0:
            raise ValueError("CodeVerifierConfig.max_failures_shown must be >= 0")
        if self.workers is not None and not 1 <= self.workers <= 64:
            raise ValueError(f"CodeVerifierConfig.workers must be in [1, 64] or None, got "
                             f"{self.workers}")
        self.sandbox.validate()


_Prepared = tuple[Verdict | None, str | None, TestSuite | None]


class CodeVerifier:
    """Judges Python programs against `Problem.tests` (see the module docstring for formats).

    `verify(response, problem)` never raises for anything in the response. The sandbox pool
    starts on the first program that needs running (responses with no code or a syntax error
    are judged without it), so building an env costs nothing. Call `close()` (or use `with`)
    to stop the pool; envs do it in `env.close()`.
    """

    def __init__(self, config: CodeVerifierConfig | None = None) -> None:
        self.config = config or CodeVerifierConfig()
        self.config.validate()
        self._pool: SandboxPool | None = None
        self._pool_pid = os.getpid()
        self._lock = threading.Lock()
        # Parsed tests of recently seen problems: an RL step verifies G responses per problem.
        self._suites: collections.OrderedDict[int, tuple[Problem, TestSuite]] = \
            collections.OrderedDict()

    @property
    def layers(self) -> Layers:
        """The isolation layers active on this host (starts the pool)."""
        return self.pool.layers

    @property
    def pool(self) -> SandboxPool:
        """The sandbox pool (started on first use)."""
        with self._lock:
            if self._pool is not None and self._pool_pid != os.getpid():
                self._pool = None  # a forked copy: the parent's sandboxes are not its children
            if self._pool is None:
                self._pool = SandboxPool(self.config.sandbox, self.config.workers)
                self._pool_pid = os.getpid()
            return self._pool

    def verify(self, response: str, problem: Problem) -> Verdict:
        """Run the program in `response` on `problem`'s tests and judge it. Never raises
        for anything in the response (ValueError only for arguments of the wrong type)."""
        batch_problems([response], [problem])
        start = time.perf_counter()
        verdict, code, suite = self._prepare(response, problem)
        if verdict is not None:
            return _timed(verdict, start)
        assert code is not None and suite is not None
        try:
            result = self.pool.run(self._payload(code, suite), self._timeout(suite))
        except Exception as exc:  # the harness broke, not the program: mask it
            return _timed(Verdict(Status.ERROR, 0.0, code, f"sandbox failed: {exc}"), start)
        return _timed(self._score_safely(result, suite, code), start)

    def verify_batch(self, responses: Sequence[str], problems: Sequence[Problem]
                     ) -> list[Verdict]:
        """Verdicts for many (response, problem) pairs, run in parallel on the sandbox pool;
        same order as the input. `problems` may also be a single-element list for all. Each
        pair is judged on its own: nothing one program does changes another's verdict. Never
        raises for anything in the responses (ValueError for arguments of the wrong type or
        mismatched lengths)."""
        targets = batch_problems(responses, problems)
        start = time.perf_counter()
        pairs = list(zip(responses, targets, strict=True))
        prepared = [self._prepare(r, p) for r, p in pairs]
        verdicts: list[Verdict | None] = [v for v, _, _ in prepared]
        to_run = [i for i, v in enumerate(verdicts) if v is None]
        if to_run:
            jobs = ((self._payload(prepared[i][1], prepared[i][2]),  # type: ignore[arg-type]
                     self._timeout(prepared[i][2]))  # type: ignore[arg-type]
                    for i in to_run)
            try:
                results: Iterable[RunResult] = self.pool.map(jobs)
            except Exception as exc:  # no pool at all (it cannot start): the harness failed
                results = [RunResult(error=f"sandbox failed: {exc}")] * len(to_run)
            for i, result in zip(to_run, results, strict=True):  # scored as they come
                _, code, suite = prepared[i]
                verdicts[i] = self._score_safely(result, suite, code)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - start
        return [replace(v, elapsed_s=v.elapsed_s or elapsed / len(pairs))  # keeps `usable`
                for v in verdicts if v is not None]

    def close(self) -> None:
        """Stop the sandbox pool (it restarts if the verifier is used again)."""
        with self._lock:
            if self._pool is not None and self._pool_pid == os.getpid():
                self._pool.close()
            self._pool = None

    def __enter__(self) -> CodeVerifier:
        return self

    def __getstate__(self) -> dict[str, Any]:
        # A copy (pickling a vector env, a checkpoint) gets its own pool when it first runs.
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # type: ignore[misc]

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------

    def _prepare(self, response: str, problem: Problem) -> _Prepared:
        """Everything decidable without running: a verdict, or the code and its tests."""
        try:
            suite = self._suite(problem)
        except ValueError as exc:
            return Verdict(Status.ERROR, 0.0, None, f"problem {problem.id!r}: {exc}"), None, None
        if suite.prompt:  # completion mode: the response continues the prompt, verbatim
            code = suite.prompt + response if response.strip() else None
        else:
            code = extract_code(response)
        if code is None:
            return Verdict(Status.NO_ANSWER, 0.0, None, "no Python code found"), None, None
        if len(code) > self.config.max_code_chars:
            return (Verdict(Status.INCORRECT, 0.0, code[:200], f"program longer than "
                            f"{self.config.max_code_chars} characters"), None, None)
        try:
            # Compiling is parsing only (nothing runs); it rejects garbage without a sandbox.
            compile(code, "<solution>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError) as exc:
            if code is response or code == response:  # no fenced block: not code at all
                return Verdict(Status.NO_ANSWER, 0.0, None, "no Python code found"), None, None
            msg = getattr(exc, "msg", str(exc))
            return (Verdict(Status.INCORRECT, 0.0, code, f"syntax error: {msg}"[:200]),
                    None, None)
        return None, code, suite

    def _suite(self, problem: Problem) -> TestSuite:
        """`parse_tests(problem.tests)`, cached per problem object (the 256 most recent)."""
        with self._lock:
            hit = self._suites.get(id(problem))
            if hit is not None and hit[0] is problem:
                self._suites.move_to_end(id(problem))
                return hit[1]
        suite = parse_tests(problem.tests)
        with self._lock:
            self._suites[id(problem)] = (problem, suite)  # holding it keeps its id unique
            if len(self._suites) > 256:
                self._suites.popitem(last=False)
        return suite

    def _payload(self, code: str, suite: TestSuite) -> dict[str, Any]:
        payload = dict(suite.payload, code=code)
        if suite.payload["mode"] == "stdio":
            # Each test's output shares the run's cap (JSON escaping may double it).
            n = len(suite.checks)
            payload["output_cap"] = max(1024, self.config.sandbox.max_output_bytes // (4 * n))
            payload["test_timeout_s"] = self.config.test_timeout_s
        return payload

    def _timeout(self, suite: TestSuite) -> float:
        c = self.config
        return min(c.max_timeout_s, c.load_timeout_s + c.test_timeout_s * len(suite.checks))

    def _score_safely(self, result: RunResult, suite: TestSuite, code: str) -> Verdict:
        try:
            return self._score(result, suite, code)
        except Exception as exc:  # a bug of the judge, not the answer's doing: masked
            return Verdict(Status.ERROR, 0.0, code,
                           f"the verifier failed to judge: {type(exc).__name__}: {exc}"[:300])

    def _score(self, result: RunResult, suite: TestSuite, code: str) -> Verdict:
        n = len(suite.checks)
        if result.error is not None:
            return Verdict(Status.ERROR, 0.0, code, result.error[:300])
        values = _Values.collect(result)
        if values.tampered:
            # The runner writes each line once, in order; anything else came from the program.
            return Verdict(Status.INCORRECT, 0.0, code, f"0/{n} tests passed; the program "
                           "wrote to the sandbox's result channel", usable=True)
        failures = []
        passed = 0
        for i, check in enumerate(suite.checks):
            ok, why = _judge(check, i, values, suite)
            passed += ok
            if not ok:
                failures.append(f"{check.describe}: {why}")
        score = passed / n
        if passed == n:
            return Verdict(Status.CORRECT, 1.0, code, f"{n}/{n} tests passed")
        expected = len(suite.payload["cases"])
        if values.load_error is not None:
            cause = f"the program failed before the tests: {values.load_error}"
        elif result.output_exceeded:
            cause = "output limit exceeded"
        elif result.memory_exceeded:
            cause = (f"the run's memory cap ({self.config.sandbox.run_memory_limit_mb} MiB for "
                     "all its processes) was exceeded and the kernel killed it")
        elif result.timed_out:
            cause = "time limit exceeded"
        elif len(values.refs) + len(values.results) < expected:
            cause = "the program stopped before all tests ran" + (
                f" (stderr: {result.stderr.strip().splitlines()[-1][:120]})"
                if result.stderr.strip() else "")
        else:
            cause = ""
        shown = failures[: self.config.max_failures_shown]
        more = len(failures) - len(shown)
        reason = f"{passed}/{n} tests passed" + (f"; {cause}" if cause else "") + (
            "; failed: " + "; ".join(shown) + (f"; and {more} more" if more else "")
            if shown else "")
        status = Status.TIMEOUT if result.timed_out else Status.INCORRECT
        # A program past its time or memory limit failed its tests: usable, so the partial
        # score is a penalty the agent learns from rather than a masked sample (no escape by
        # looping or hoarding memory).
        return Verdict(status, score, code, reason, usable=True)


def _timed(verdict: Verdict, start: float) -> Verdict:
    return replace(verdict, elapsed_s=time.perf_counter() - start)

