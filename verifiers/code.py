"""Code verification: run a model's Python program against a problem's tests in the sandbox.

`Problem.tests` is a dict in one of three formats:

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
  "setup": "import math"}` (MBPP/HumanEval style). The host splits each `assert A == B` whose
  `B` is a literal into the expression `A`, evaluated in the sandbox, and the expected value,
  kept in the host; likewise `!=`, `<`, ..., `in`, `is`, `not A`, bare `assert A`,
  `math.isclose(A, 1.5, ...)` and `abs(A - 1.5) < 1e-6`. Other asserts (two non-literal
  sides) are evaluated whole in the sandbox, with the builtins as they were before the
  program ran; they are only as strong as the expression, since the program could have
  patched the modules it uses. Statements that are not top-level asserts (imports, helpers,
  asserts inside loops) run as setup before the tests.

In every format the expected outputs never enter the sandbox, and the host requires a result
for every test: a program that exits (`sys.exit(0)`, `os._exit(0)`) before the tests ran, or
forges result lines, gets no credit for tests it did not answer with the right values.

Score = fraction of tests passed; `correct` only when all pass. `no_answer`: no Python code
in the response. `timeout`: the program ran past its wall deadline (score counts the tests it
finished). `error`: the sandbox itself failed; mask such samples, they say nothing about the
answer.
"""

from __future__ import annotations

import ast
import collections
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rlvr_gym.types import Problem, Status, Verdict
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


@dataclass(frozen=True)
class _Check:
    """How the host judges one test from the value the sandbox sent back."""

    describe: str
    """The test as shown in feedback (e.g. `f(3)` or `input '1 2'`)."""
    expected: Any = None
    """The expected value or output text (host side only)."""
    op: str = "=="
    """Comparison: `==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`, `is`, `is not`,
    `truthy`, `falsy`, `isclose`, `abs_diff`, `strict` (function-call tests) or `stdout`."""


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

    @property
    def fn(self) -> str | None:
        return self.payload.get("fn")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def parse_tests(tests: Any) -> TestSuite:
    """Validate `Problem.tests` and split it into sandbox payload and host-side checks.
    Raises ValueError saying what to fix."""
    _require(isinstance(tests, dict) and tests.get("format") in ("stdio", "call", "assert"),
             "code tests must be a dict with 'format' set to 'stdio', 'call' or 'assert', "
             f"got {str(tests)[:100]!r}")
    fmt = tests["format"]
    float_tol = tests.get("float_tol")
    _require(float_tol is None or (isinstance(float_tol, (int, float)) and float_tol >= 0),
             f"float_tol must be None or a non-negative number, got {float_tol!r}")
    if fmt == "assert":
        return _parse_asserts(tests)
    cases = tests.get("cases")
    _require(isinstance(cases, list) and len(cases) > 0,
             f"{fmt} tests need a non-empty 'cases' list")
    if fmt == "stdio":
        for case in cases:
            _require(isinstance(case, dict) and isinstance(case.get("input"), str)
                     and isinstance(case.get("output"), str),
                     "each stdio case must be {'input': str, 'output': str}")
        payload = {"mode": "stdio", "cases": [{"input": c["input"]} for c in cases]}
        checks = tuple(_Check(f"input {c['input'][:60]!r}", c["output"], "stdout")
                       for c in cases)
        return TestSuite(payload, checks, float_tol)
    fn = tests.get("fn")
    _require(isinstance(fn, str) and fn.isidentifier(),
             f"call tests need 'fn', the function's name, got {fn!r}")
    wire_cases, checks = [], []
    for case in cases:
        _require(isinstance(case, dict) and "args" in case and "expected" in case,
                 "each call case must be {'args': [...], 'expected': value} (+ 'kwargs')")
        args, kwargs = list(case["args"]), dict(case.get("kwargs") or {})
        try:
            wire_cases.append({"args": encode(args), "kwargs": encode(kwargs)})
            encode(case["expected"])
        except TypeError as exc:
            raise ValueError(f"call test values must be plain data: {exc}") from exc
        shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
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
_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _literal_kwargs(call: ast.Call) -> dict[str, Any] | None:
    kwargs = {}
    for kw in call.keywords:
        is_lit, value = _literal(kw.value)
        if kw.arg is None or not is_lit:
            return None
        kwargs[kw.arg] = value
    return kwargs


def _split_assert(test: ast.expr) -> tuple[str, _Check]:
    """(expression evaluated in the sandbox, host-side check) for one assert's test."""
    shown = ast.unparse(test)[:200]
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _OPS:
        op = _OPS[type(test.ops[0])]
        left, right = test.left, test.comparators[0]
        is_lit, value = _literal(right)
        # abs(A - B) < EPS with B and EPS literal: the usual float check, judged in the host
        if is_lit and op in ("<", "<=") and isinstance(left, ast.Call) and \
                ast.unparse(left.func) == "abs" and len(left.args) == 1 and not left.keywords \
                and isinstance(left.args[0], ast.BinOp) and isinstance(left.args[0].op, ast.Sub):
            for inner, other in ((left.args[0].left, left.args[0].right),
                                 (left.args[0].right, left.args[0].left)):
                other_lit, target = _literal(other)
                if other_lit:
                    return ast.unparse(inner), _Check(shown, (target, value, op), "abs_diff")
        if is_lit:
            return ast.unparse(left), _Check(shown, value, op)
        is_lit, value = _literal(left)
        if is_lit and op in _MIRROR:
            return ast.unparse(right), _Check(shown, value, _MIRROR[op])
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return ast.unparse(test.operand), _Check(shown, None, "falsy")
    # math.isclose(A, B, rel_tol=..., abs_tol=...) with one literal side
    if isinstance(test, ast.Call) and ast.unparse(test.func) in ("isclose", "math.isclose") \
            and len(test.args) == 2:
        kwargs = _literal_kwargs(test)
        for inner, other in ((test.args[0], test.args[1]), (test.args[1], test.args[0])):
            other_lit, target = _literal(other)
            if other_lit and kwargs is not None:
                return ast.unparse(inner), _Check(shown, (target, kwargs), "isclose")
    return ast.unparse(test), _Check(shown, None, "truthy")


def _parse_asserts(tests: dict[str, Any]) -> TestSuite:
    asserts = tests.get("asserts")
    if isinstance(asserts, str):
        asserts = [asserts]
    _require(isinstance(asserts, list) and asserts and all(isinstance(a, str) for a in asserts),
             "assert tests need 'asserts', a non-empty list of assert statements")
    setup = tests.get("setup") or ""
    _require(isinstance(setup, str), "assert tests' 'setup' must be a string of Python code")
    setup_parts, exprs, checks = [setup] if setup.strip() else [], [], []
    for text in asserts:
        try:
            module = ast.parse(text)
        except SyntaxError as exc:
            raise ValueError(f"assert test is not valid Python ({exc.msg}): {text[:100]!r}"
                             ) from exc
        for node in module.body:
            if isinstance(node, ast.Assert):
                expr, check = _split_assert(node.test)
                exprs.append({"expr": expr})
                checks.append(check)
            else:
                setup_parts.append(ast.unparse(node))
    _require(bool(checks), "assert tests contain no assert statement")
    payload = {"mode": "call", "cases": exprs, "setup": "\n".join(setup_parts)}
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


def _judge(check: _Check, message: dict[str, Any], suite: TestSuite) -> tuple[bool, str]:
    """(passed, what went wrong) for one test's result line."""
    if check.op == "stdout":
        out = message.get("out")
        if not isinstance(out, str):
            return False, "no output"
        if message.get("timeout"):
            return False, "timed out"
        if message.get("truncated"):
            return False, "printed too much"
        if message.get("exit") != 0:
            return False, f"exited with status {message.get('exit')}"
        if outputs_match(out, check.expected, suite.float_tol):
            return True, ""
        return False, f"printed {_short(out)}, expected {_short(check.expected)}"
    if "e" in message:
        return False, f"raised {str(message['e'])[:120]}"
    try:
        got = decode(message.get("v"))
    except (ValueError, TypeError, OverflowError, RecursionError):
        return False, "sent back a malformed value"
    try:
        if check.op == "strict":
            ok = strict_equal(got, check.expected, suite.float_tol, suite.json_values)
        elif check.op in ("truthy", "falsy"):
            ok = bool(got) == (check.op == "truthy")
        elif check.op in ("isclose", "abs_diff"):
            ok = type(got) in (int, float) and _close(got, check)
        elif check.op in ("==", "!=") and suite.float_tol is not None \
                and type(got) is float and type(check.expected) is float:
            ok = math.isclose(got, check.expected, rel_tol=suite.float_tol,
                              abs_tol=suite.float_tol) == (check.op == "==")
        else:
            ok = bool(_COMPARE[check.op](got, check.expected))
    except (TypeError, ValueError, RecursionError):  # e.g. `<` between str and int
        ok = False
    if ok:
        return True, ""
    if check.op in ("isclose", "abs_diff"):
        expected = f", expected about {_short(check.expected[0])}"
    else:
        expected = "" if check.op in ("truthy", "falsy") else \
            f", expected {_short(check.expected)}"
    return False, f"returned {_short(got)}{expected}"


def _close(got: float, check: _Check) -> bool:
    if check.op == "isclose":
        target, kwargs = check.expected
        return math.isclose(got, target, **kwargs)
    target, eps, op = check.expected
    return _COMPARE[op](abs(got - target), eps)


def _short(value: Any, limit: int = 160) -> str:
    """repr for feedback, cut to `limit` characters."""
    text = repr(value)
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
            if self._pool is None:
                self._pool = SandboxPool(self.config.sandbox, self.config.workers)
            return self._pool

    def verify(self, response: str, problem: Problem) -> Verdict:
        """Run the program in `response` on `problem`'s tests and judge it."""
        start = time.perf_counter()
        verdict, code, suite = self._prepare(response, problem)
        if verdict is not None:
            return _timed(verdict, start)
        assert code is not None and suite is not None
        try:
            result = self.pool.run(self._payload(code, suite), self._timeout(suite))
        except Exception as exc:  # the harness broke, not the program: mask it
            return _timed(Verdict(Status.ERROR, 0.0, code, f"sandbox failed: {exc}"), start)
        return _timed(self._score(result, suite, code), start)

    def verify_batch(self, responses: Sequence[str], problems: Sequence[Problem]
                     ) -> list[Verdict]:
        """Verdicts for many (response, problem) pairs, run in parallel on the sandbox pool;
        same order as the input. `problems` may also be a single-element list for all."""
        if len(problems) not in (1, len(responses)):
            raise ValueError(f"got {len(responses)} responses but {len(problems)} problems; "
                             "give one problem per response or a single shared problem")
        start = time.perf_counter()
        shared = len(problems) == 1
        pairs = [(r, problems[0] if shared else problems[i]) for i, r in enumerate(responses)]
        prepared = [self._prepare(r, p) for r, p in pairs]
        verdicts: list[Verdict | None] = [v for v, _, _ in prepared]
        to_run = [i for i, v in enumerate(verdicts) if v is None]
        if to_run:
            jobs = ((self._payload(prepared[i][1], prepared[i][2]),  # type: ignore[arg-type]
                     self._timeout(prepared[i][2]))  # type: ignore[arg-type]
                    for i in to_run)
            try:
                for i, result in zip(to_run, self.pool.map(jobs), strict=True):
                    _, code, suite = prepared[i]
                    verdicts[i] = self._score(result, suite, code)  # type: ignore[arg-type]
            except Exception as exc:
                for i in to_run:
                    if verdicts[i] is None:
                        verdicts[i] = Verdict(Status.ERROR, 0.0, prepared[i][1],
                                              f"sandbox failed: {exc}")
        elapsed = time.perf_counter() - start
        return [Verdict(v.status, v.score, v.extracted, v.reason,
                        v.elapsed_s or elapsed / len(pairs))
                for v in verdicts if v is not None]

    def close(self) -> None:
        """Stop the sandbox pool (it restarts if the verifier is used again)."""
        with self._lock:
            if self._pool is not None:
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
        code = extract_code(str(response))
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

    def _score(self, result: RunResult, suite: TestSuite, code: str) -> Verdict:
        n = len(suite.checks)
        if result.error is not None:
            return Verdict(Status.ERROR, 0.0, code, result.error[:300])
        load_error = next((m.get("error") for m in result.messages
                           if m.get("t") == "load_error"), None)
        by_index: dict[int, dict[str, Any]] = {}
        for m in result.messages:
            i = m.get("i")
            if m.get("t") == "result" and type(i) is int and 0 <= i < n and i not in by_index:
                by_index[i] = m
        failures = []
        passed = 0
        for i, check in enumerate(suite.checks):
            if i not in by_index:
                failures.append(f"{check.describe}: no result")
                continue
            ok, why = _judge(check, by_index[i], suite)
            passed += ok
            if not ok:
                failures.append(f"{check.describe}: {why}")
        score = passed / n
        if passed == n:
            return Verdict(Status.CORRECT, 1.0, code, f"{n}/{n} tests passed")
        if load_error is not None:
            cause = f"the program failed before the tests: {str(load_error)[:200]}"
        elif result.output_exceeded:
            cause = "output limit exceeded"
        elif result.timed_out:
            cause = "time limit exceeded"
        elif len(by_index) < n:
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
        # A program past its time limit failed its tests: usable, so the partial score is a
        # penalty the agent learns from rather than a masked sample (no escape by looping).
        return Verdict(status, score, code, reason, usable=True)


def _timed(verdict: Verdict, start: float) -> Verdict:
    return replace(verdict, elapsed_s=time.perf_counter() - start)

