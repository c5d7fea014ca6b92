"""What the code tasks share, and the entry point of their ids.

- `CodeFileSource`: MBPP-, HumanEval- or APPS-style datasets with configurable field names,
  from local files or Hugging Face `datasets` (`RowsConfig`; `rlvr/CodeDataset-v0`; with no
  path, a small sample shipped in the package). HumanEval's tests run as its own harness runs
  them, and `completion=True` follows its completion convention (the program is the prompt
  followed by the response).
- `make_code_env`: a `ReasoningEnv` over a registered code task (`kind="code"`, such as
  `rlvr/CodeProblems-v0` in `rlvr_gym.envs.tasks.code_problems`), judged by `CodeVerifier`;
  with `max_attempts > 1` the failing tests are fed back after each wrong attempt.

Every code problem carries its reference program as `Problem.solution`, fenced as a Python
block, so that it is itself a passing response (in completion mode, the reference completion
as it is).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, replace
from typing import Any

from rlvr_gym.envs.env import MAX_RESPONSE_CHARS, PromptFormat, ReasoningEnv
from rlvr_gym.envs.files import RowsConfig, RowSource, SkipRow, field_of
from rlvr_gym.envs.registry import task_env
from rlvr_gym.types import Problem, Status, Verdict, Verifier
from rlvr_gym.verifiers.code import CodeVerifier, parse_tests

CODE_TEMPLATE = ("{question}\nAnswer with a complete Python program in a single ```python code "
                 "block.\n")


def fenced(code: str) -> str:
    """`code` as a fenced Python block (how reference solutions are stored)."""
    return f"```python\n{code.rstrip()}\n```"


_PASSED = re.compile(r"(\d+)/(\d+) tests passed")
# Reasons (or the cause after the counts) the code verifier gives that carry no test data:
# the program's own failure, in its own words. Anything else in a reason, above all the
# failing tests ("; failed: f(1): returned 2, expected 3"), is never shown by default.
_SAFE_CAUSES = ("the program failed before the tests", "the program stopped before all tests",
                "time limit exceeded", "output limit exceeded", "syntax error",
                "no Python code found", "program longer than")


def code_feedback(verdict: Verdict) -> str:
    """Multi-turn feedback after a wrong program, without the tests: how many tests passed and
    why the program failed as a whole (its exception, syntax error, time or output limit),
    never a test's input or expected value. Showing the expected values would let a policy
    pass by answering with a lookup table of them (see `revealing_code_feedback`)."""
    if not verdict.usable:
        summary = "not judged (the verifier failed; this attempt does not count against you)"
    else:
        summary = {Status.TIMEOUT: "over the time limit",
                   Status.NO_ANSWER: "missing"}.get(verdict.status, verdict.status.value)
    detail = []
    counts = _PASSED.match(verdict.reason)
    rest = verdict.reason
    if counts:
        detail.append(f"{counts[1]} of {counts[2]} tests passed")
        rest = verdict.reason[counts.end():].removeprefix("; ")
    # The cause ends at the first "; " (the verifier's separator before the failing tests),
    # even if that cuts the program's own message short.
    cause = rest.split("; ", 1)[0] if counts else rest
    if verdict.usable and cause.startswith(_SAFE_CAUSES):
        detail.append(cause)
    return (f"\nThat program is {summary}" + (f": {'; '.join(detail)}" if detail else "") +
            ".\nFix it and answer with the whole corrected program in a ```python code block.\n")


def revealing_code_feedback(verdict: Verdict) -> str:
    """Multi-turn feedback that lists the failing tests with their inputs, what the program
    did and the expected values (the verdict's reason). For tutorials and debugging only: a
    policy trained on it learns to copy the expected values (`make_code_env(...,
    reveal_tests=True)`)."""
    return (f"\nThat program is {verdict.status.value.replace('_', ' ')}: {verdict.reason}.\n"
            "Fix it and answer with the whole corrected program in a ```python code block.\n")


@dataclass(frozen=True)
class CodeFileConfig(RowsConfig):
    """Where the code problems are (`RowsConfig`) and which fields hold what.

    `tests_format` says how the tests field is stored: `asserts` (a list of assert statements
    or one string of them: MBPP `test_list`), `check` (HumanEval: code defining
    `check(candidate)`, with the function named by `entry_point_field`; run as HumanEval's
    harness runs it, see `humaneval_tests`), `apps` (APPS `input_output`: JSON with `inputs`,
    `outputs` and optionally `fn_name`) or `native` (a dict in the format of
    `rlvr_gym.verifiers.code`).
    """

    question_field: str = "text"
    """Field with the problem statement."""
    tests_field: str = "test_list"
    """Field with the tests."""
    tests_format: str = "asserts"
    """`asserts`, `check`, `apps` or `native` (see above)."""
    solution_field: str | None = "code"
    """Field with a reference program, if any (APPS: a JSON list of programs; the first)."""
    id_field: str | None = "task_id"
    """Field with a stable id; None uses the row number."""
    setup_field: str | None = None
    """Field with test setup code run before the asserts (MBPP `test_setup_code`)."""
    entry_point_field: str | None = None
    """Field naming the function under test (HumanEval `entry_point`)."""
    prompt_prefix_field: str | None = None
    """Field whose text precedes the reference solution (HumanEval `prompt`: the solution
    field holds only the body). With `check` tests it also runs before a whole program, so
    that the helpers it defines exist for the tests."""
    difficulty_field: str | None = None
    """Field with the difficulty: a number, or APPS' introductory/interview/competition."""
    show_tests: int = 1
    """For `asserts` tests: how many asserts to show in the question, so that the model
    knows the function's name and signature (MBPP's prompts do the same)."""
    completion: bool = False
    """HumanEval's completion convention: the question is the start of the program (HumanEval's
    `prompt`), shown as it is with no instructions; the response is its completion, and the
    program run is the question followed by the response, verbatim. The reference solution
    is the solution field alone (HumanEval's `canonical_solution`). For base models;
    single-turn only."""

    def validate(self) -> None:
        super().validate()
        if self.tests_format not in ("asserts", "check", "apps", "native"):
            raise ValueError(f"tests_format must be 'asserts', 'check', 'apps' or 'native', "
                             f"got {self.tests_format!r}")
        if self.tests_format == "check" and not self.entry_point_field:
            raise ValueError("tests_format='check' (HumanEval) needs entry_point_field, the "
                             "field naming the function that check(candidate) receives")
        if self.show_tests < 0:
            raise ValueError(f"show_tests must be >= 0, got {self.show_tests}")


CODE_PRESETS: dict[str, dict[str, Any]] = {
    "mbpp": {"question_field": "text", "tests_field": "test_list", "tests_format": "asserts",
             "solution_field": "code", "id_field": "task_id", "setup_field": "test_setup_code"},
    "humaneval": {"question_field": "prompt", "tests_field": "test", "tests_format": "check",
                  "solution_field": "canonical_solution", "id_field": "task_id",
                  "entry_point_field": "entry_point", "prompt_prefix_field": "prompt",
                  "show_tests": 0},
    "apps": {"question_field": "question", "tests_field": "input_output",
             "tests_format": "apps", "solution_field": "solutions", "id_field": "problem_id",
             "difficulty_field": "difficulty", "show_tests": 0},
    "native": {"question_field": "question", "tests_field": "tests", "tests_format": "native",
               "solution_field": "solution", "id_field": "id", "show_tests": 0},
}

_APPS_LEVELS = {"introductory": 1.0, "interview": 2.0, "competition": 3.0}


def humaneval_tests(test_code: str, entry_point: str, prompt: str = "",
                    completion: bool = False) -> dict[str, Any]:
    """HumanEval's test code as a test program, run as HumanEval's own harness runs it:
    after the program, `test_code` then `check(entry_point)`, so that every assert counts,
    those inside loops too. The task's `prompt` is the start of the program (`completion`)
    or else its preamble: it runs before a whole program, so that the helpers the tests call
    (HumanEval/32's `poly`, /38's `encode_cyclic`) exist without the program repeating them.
    ValueError when the test code cannot run as such."""
    if not entry_point.isidentifier():
        raise ValueError(f"the entry point must be a function name, got {entry_point!r}")
    module = ast.parse(test_code)
    if not any(isinstance(node, ast.FunctionDef) and node.name == "check"
               for node in module.body):
        raise ValueError("the test code defines no check(candidate) function")
    return {"format": "program", "test": f"{test_code.rstrip()}\n\ncheck({entry_point})\n",
            "prompt" if completion else "preamble": prompt}


def apps_tests(input_output: Any) -> dict[str, Any]:
    """APPS `input_output` (JSON text or dict) as stdio tests, or call tests when it names
    `fn_name` (returned tuples then count as lists, and one-element output lists, APPS' way
    of wrapping a return value, are unwrapped)."""
    spec = json.loads(input_output) if isinstance(input_output, str) else input_output
    if not isinstance(spec, dict):
        raise ValueError(f"input_output must be a JSON object with 'inputs' and 'outputs', got "
                         f"a {type(spec).__name__}")
    inputs, outputs = spec.get("inputs"), spec.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list) or \
            len(inputs) != len(outputs) or not inputs:
        raise ValueError("input_output needs equally long, non-empty 'inputs' and 'outputs'")
    if spec.get("fn_name"):
        if all(isinstance(o, list) and len(o) == 1 for o in outputs):
            outputs = [o[0] for o in outputs]
        return {"format": "call", "fn": spec["fn_name"], "json_values": True,
                "cases": [{"args": list(i), "expected": o}
                          for i, o in zip(inputs, outputs, strict=True)]}

    def text(value: Any) -> str:
        return "\n".join(map(str, value)) if isinstance(value, list) else str(value)
    return {"format": "stdio", "cases": [{"input": text(i), "output": text(o)}
                                         for i, o in zip(inputs, outputs, strict=True)]}


class CodeFileSource(RowSource):
    """Code problems read once (`RowsConfig`); rows whose tests cannot be used are skipped,
    counted in `skipped` (with the first reason in `skip_reason`) and warned about."""

    skippable = (ValueError, KeyError, TypeError, SyntaxError, RecursionError)

    def __init__(self, config: CodeFileConfig, name: str = "codefile") -> None:
        config.validate()
        self.config = config
        self.name = name
        self.template = "{question}" if config.completion else None
        """The prompt template the questions need (completion: the question alone, so that
        the response continues it); None: the code env's default."""
        self._load(config, f"check the field names and tests_format={config.tests_format!r}, "
                           "or use CodeFileSource.from_preset with one of "
                           f"{sorted(CODE_PRESETS)}")

    @classmethod
    def from_preset(cls, path: Any, preset: str, **overrides: Any) -> CodeFileSource:
        """A source with a preset's field names (`mbpp`, `humaneval`, `apps`, `native`),
        overridable per field."""
        if preset not in CODE_PRESETS:
            raise ValueError(f"unknown code preset {preset!r}; choose one of "
                             f"{sorted(CODE_PRESETS)} or give the field names yourself")
        return cls(replace(CodeFileConfig(path=path), **{**CODE_PRESETS[preset], **overrides}))

    def _problem(self, row_number: int, row: dict[str, Any]) -> Problem:
        c = self.config
        question = row.get(c.question_field)
        if not isinstance(question, str) or not question.strip():
            raise SkipRow(f"no question in field {c.question_field!r}")
        if not c.completion:  # a completion continues the question exactly as it is
            question = question.strip()
        raw = row.get(c.tests_field)
        if raw is None:
            raise SkipRow(f"no tests in field {c.tests_field!r}")
        prefix = str(row.get(c.prompt_prefix_field) or "") if c.prompt_prefix_field else ""
        if c.tests_format == "asserts":
            asserts = [raw] if isinstance(raw, str) else list(raw)
            setup = row.get(c.setup_field) if c.setup_field else None
            tests: dict[str, Any] = {"format": "assert", "asserts": asserts,
                                     "setup": setup or ""}
            if c.show_tests and not c.completion:
                question = question.rstrip() + "\nYour code should pass tests like:\n" + \
                    "\n".join(asserts[: c.show_tests])
        elif c.tests_format == "check":
            assert c.entry_point_field is not None  # the config's validation requires it
            tests = humaneval_tests(str(raw), str(field_of(row, c.entry_point_field)),
                                    "" if c.completion else prefix)
        elif c.tests_format == "apps":
            tests = apps_tests(raw)
        else:
            tests = json.loads(raw) if isinstance(raw, str) else dict(raw)
        if c.completion:
            tests = {**tests, "prompt": question}
        parse_tests(tests)  # reject unusable tests now, with the reason
        solution = row.get(c.solution_field) if c.solution_field else None
        if c.tests_format == "apps" and isinstance(solution, str) and solution.startswith("["):
            solutions = json.loads(solution)
            solution = solutions[0] if solutions else None
        if solution and c.completion:
            try:
                compile(question + str(solution), "<reference>", "exec")
            except SyntaxError as exc:
                raise SkipRow(f"the question followed by the reference solution is not valid "
                              f"Python ({exc.msg}); completion=True needs questions that "
                              "start the program") from None
        elif solution:
            solution = fenced(prefix + str(solution))
        difficulty = row.get(c.difficulty_field) if c.difficulty_field else None
        if isinstance(difficulty, str):
            difficulty = _APPS_LEVELS.get(difficulty.lower())
        return Problem(
            id=str(row[c.id_field]) if c.id_field and c.id_field in row
            else f"{self.name}/{row_number}",
            question=question, answer="", solution=str(solution or ""), kind="code",
            tests=tests,
            difficulty=float(difficulty) if isinstance(difficulty, (int, float)) else 0.0,
            meta={"row": row_number, "format": tests["format"]})


def make_code_env(
    task: str = "problems",
    prompt: PromptFormat | str | None = None,
    verifier: Verifier | None = None,
    max_attempts: int = 1,
    render_mode: str | None = None,
    reveal_tests: bool = False,
    max_response_chars: int = MAX_RESPONSE_CHARS,
    **config: Any,
) -> ReasoningEnv:
    """Entry point of the code ids (`rlvr/CodeProblems-v0`, `rlvr/CodeDataset-v0`, any task
    registered with `kind="code"`).

    Args:
        task: the registered code task: `problems` (self-written) or `dataset` (your data:
            `path` or `hub`, `preset` and `CodeFileConfig` fields; with neither, the sample
            file in the package).
        prompt: prompt format or template with `{question}`; default the source's own
            (`{question}` alone in completion mode), else `CODE_TEMPLATE`.
        verifier: a `CodeVerifier` to share between envs; default the task's own, else a new
            `CodeVerifier` (its sandbox pool starts on the first program that needs running,
            and `env.close()` stops it).
        max_attempts: >1 for multi-turn: after each wrong attempt the env says how many tests
            passed and why the program failed (`code_feedback`); the episode is truncated
            when the attempts run out.
        render_mode: None or "ansi".
        reveal_tests: multi-turn feedback also lists the failing tests with their expected
            values (`revealing_code_feedback`). For tutorials only: never train on it, the
            policy would learn to answer with the expected values.
        max_response_chars: longer responses are judged `incorrect` without running them
            (the action space's `max_length`).
        **config: options of the task source.
    """
    if max_attempts > 1 and config.get("completion"):
        raise ValueError("completion=True is single-turn (a completion cannot follow feedback); "
                         "use max_attempts=1, or whole programs (completion=False)")
    return task_env("code", task, verifier, CodeVerifier, config,
                    prompt=prompt, default_prompt=CODE_TEMPLATE, max_attempts=max_attempts,
                    feedback=revealing_code_feedback if reveal_tests else code_feedback,
                    render_mode=render_mode, max_response_chars=max_response_chars)
