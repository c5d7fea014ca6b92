"""Problems from local JSONL or Parquet files (GSM8K-, MATH-style or any field names).

Nothing is downloaded: point `path` at a file you have. Presets name the fields of the two
common layouts:

- `gsm8k`: `question`, and `answer` holding the worked solution and `#### final answer`;
- `math`: `problem`, and `solution` holding the worked solution with `\\boxed{final answer}`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from rlvr_gym.envs.sources import ListSource, TaskSource
from rlvr_gym.types import Problem
from rlvr_gym.verifiers.extract import last_boxed

AnswerFormat = Literal["plain", "gsm8k", "boxed"]


@dataclass(frozen=True)
class FileConfig:
    """Where the problems are and which fields hold what."""

    path: str
    """A local .jsonl or .parquet file."""
    question_field: str = "problem"
    """Field with the question text."""
    answer_field: str | None = None
    """Field with the final answer (or, for `answer_format="gsm8k"`, the solution ending in
    `#### answer`). None: take the answer from the solution's last `\\boxed{}`."""
    solution_field: str | None = "solution"
    """Field with a worked solution, if any."""
    answer_format: AnswerFormat = "boxed"
    """How the answer is stored: `plain` (the field is the answer), `gsm8k` (after `####`),
    `boxed` (the last `\\boxed{}` of the solution)."""
    id_field: str | None = None
    """Field with a stable problem id; None uses the row number."""
    difficulty_field: str | None = None
    """Numeric field used as difficulty (e.g. MATH's `level`), if any."""
    limit: int | None = None
    """Keep only the first `limit` rows (quick experiments)."""

    def validate(self) -> None:
        if self.answer_format not in ("plain", "gsm8k", "boxed"):
            raise ValueError(f"answer_format must be 'plain', 'gsm8k' or 'boxed', "
                             f"got {self.answer_format!r}")
        if self.answer_format in ("plain", "gsm8k") and not self.answer_field:
            raise ValueError(f"answer_format={self.answer_format!r} needs answer_field")
        if self.answer_format == "boxed" and not (self.solution_field or self.answer_field):
            raise ValueError("answer_format='boxed' needs solution_field or answer_field")


PRESETS: dict[str, dict[str, Any]] = {
    "gsm8k": {"question_field": "question", "answer_field": "answer", "solution_field": None,
              "answer_format": "gsm8k"},
    "math": {"question_field": "problem", "answer_field": None, "solution_field": "solution",
             "answer_format": "boxed", "difficulty_field": "level"},
}

def dataset_source(from_preset: Callable[..., TaskSource], sample: str, preset: str,
                   path: str | Path | None = None, **overrides: Any) -> TaskSource:
    """`from_preset(path, preset, **overrides)`, where no `path` means the sample file
    `sample` shipped in the package: how the dataset ids (`rlvr/MathDataset-v0`,
    `rlvr/CodeDataset-v0`) read their options."""
    if path is None:
        path = str(resources.files("rlvr_gym") / "data" / sample)
    return from_preset(str(path), preset, **overrides)


_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations: <<48/2=24>>


def read_rows(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of a local JSONL or Parquet file as dicts (only the first `limit`, if given).

    Row numbers (in `Problem.meta["row"]`, default ids and messages) count from 0 over the
    rows; in JSONL blank lines are not rows. A file that cannot be read as rows raises
    ValueError naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such dataset file: {path} (rlvr-gym never downloads data; "
                                "give the path of a local .jsonl or .parquet file)")
    if path.suffix == ".parquet":
        return _parquet_rows(path)[:limit]
    rows: list[dict[str, Any]] = []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if limit is not None and len(rows) >= limit:
                break  # a quick experiment on a large file need not parse all of it
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not UTF-8 text ({exc.reason} at byte "
                                 f"{exc.start} of the line); convert the file to UTF-8, e.g. "
                                 "iconv -f latin1 -t utf-8") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as exc:  # JSONDecodeError, int too long, depth
                msg = getattr(exc, "msg", None) or type(exc).__name__
                raise ValueError(f"{path}:{lineno}: not valid JSON ({msg}); expected one JSON "
                                 "object per line") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: a JSON {type(row).__name__} where a JSON "
                                 "object was expected; each line must be one row like "
                                 '{"problem": ..., "solution": ...}')
            rows.append(row)
    return rows


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError("reading Parquet needs pyarrow: pip install 'rlvr-gym[parquet]'"
                          ) from exc
    try:
        return pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({_one_line(exc)}); check that "
                         "it was written completely, or convert it to JSONL") from None


def field_of(row: dict[str, Any], name: str) -> Any:
    """`row[name]`, or ValueError naming the field and the fields the row has."""
    if name not in row:
        raise ValueError(f"no field {name!r} (the row has {sorted(map(str, row))[:12]}); fix "
                         "the row or the field name")
    return row[name]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


class FileSource(ListSource):
    """A finite list of problems read once from a file. Rows without a usable answer are
    skipped and counted in `skipped`."""

    def __init__(self, config: FileConfig, name: str = "file") -> None:
        config.validate()
        self.config = config
        self.name = name
        self.problems: list[Problem] = []
        self.skipped = 0
        rows = read_rows(config.path, config.limit)
        for row_number, row in enumerate(rows):
            try:
                problem = self._problem(row_number, row)
            except ValueError as exc:
                raise ValueError(f"{config.path} row {row_number}: {exc}") from None
            if problem is None:
                self.skipped += 1
            else:
                self.problems.append(problem)
        if not self.problems:
            raise ValueError(f"{config.path}: no usable problems (check the field names: "
                             f"question_field={config.question_field!r}, answer_field="
                             f"{config.answer_field!r}, solution_field={config.solution_field!r})")
        self._index_problems(f"{config.path} (id_field={config.id_field!r})")

    @classmethod
    def from_preset(cls, path: str, preset: str, **overrides: Any) -> FileSource:
        """A source with a preset's field names (`gsm8k` or `math`), overridable per field."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)} or "
                             "give the field names yourself")
        return cls(replace(FileConfig(path=path), **{**PRESETS[preset], **overrides}))

    def _problem(self, row_number: int, row: dict[str, Any]) -> Problem | None:
        c = self.config
        question = row.get(c.question_field)
        if not isinstance(question, str) or not question.strip():
            return None
        solution = str(row.get(c.solution_field) or "") if c.solution_field else ""
        raw_answer = row.get(c.answer_field) if c.answer_field else None
        answer: str | None
        if c.answer_format == "gsm8k":
            text = str(raw_answer or "")
            if "####" not in text:
                return None
            worked, answer = text.rsplit("####", 1)
            answer = answer.strip()
            solution = solution or _CALCULATOR.sub("", worked).strip()
        elif c.answer_format == "boxed":
            answer = last_boxed(str(raw_answer)) if raw_answer else last_boxed(solution)
        else:
            answer = None if raw_answer is None else str(raw_answer).strip()
        if not answer:
            return None
        if last_boxed(solution) is None:
            solution = (solution.rstrip() + "\n" if solution.strip() else "") + \
                f"\\boxed{{{answer}}}"
        difficulty = row.get(c.difficulty_field) if c.difficulty_field else None
        if isinstance(difficulty, str):  # MATH's "Level 3"
            digits = re.findall(r"\d+", difficulty)
            difficulty = float(digits[0]) if digits else None
        return Problem(
            id=str(field_of(row, c.id_field)) if c.id_field else f"{self.name}/{row_number}",
            question=question.strip(),
            answer=answer,
            solution=solution,
            difficulty=float(difficulty) if isinstance(difficulty, (int, float)) else 0.0,
            meta={"row": row_number},
        )
