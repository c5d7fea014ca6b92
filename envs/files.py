"""Problems from your own data: local files or Hugging Face `datasets` (GSM8K-, MATH-style or
any field names).

Where the rows come from (`RowsConfig`, shared with the code datasets of
`rlvr_gym.envs.code_tasks`), exactly one of:

- `path`, a local file: JSON lines (`.jsonl`), JSON (`.json`: one list of rows, or JSON lines),
  CSV (`.csv`, every value a string) or Parquet (`.parquet`); gzip-compressed files (such as
  HumanEval's `HumanEval.jsonl.gz`) are recognised by their content and read as they are;
- `path`, a directory written by `datasets`' `save_to_disk` (a `Dataset`, or a `DatasetDict`
  whose split `split` picks), or a `datasets.Dataset` / `DatasetDict` object itself;
- `hub`, a name for `datasets.load_dataset` (with `subset` and `split`), where the Hugging Face
  Hub or its cache is reachable. Nothing is downloaded otherwise.

`datasets` is an optional extra (`pip install 'rlvr-gym[datasets]'`), needed only for the
last two. Rows a source cannot use are never dropped silently: they are counted in its
`skipped`, the first reason is kept in `skip_reason`, and a `SkippedRowsWarning` says how many.

Presets name the fields of the two common math layouts:

- `gsm8k`: `question`, and `answer` holding the worked solution and `#### final answer`;
- `math`: `problem`, and `solution` holding the worked solution with `\\boxed{final answer}`.
"""

from __future__ import annotations

import csv
import gzip
import importlib
import io
import json
import re
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import IO, Any, Literal, cast

from rlvr_gym.envs.sources import ListSource, TaskSource, require
from rlvr_gym.types import Problem
from rlvr_gym.verifiers.extract import last_boxed

AnswerFormat = Literal["plain", "gsm8k", "boxed"]
Row = dict[str, Any]


@dataclass(frozen=True)
class RowsConfig:
    """Where a dataset's rows come from: exactly one of `path` and `hub` (see the module
    docstring for the formats)."""

    path: Any = None
    """A local file (.jsonl, .json, .csv, .parquet, any of them gzip-compressed), a directory
    written by `datasets`' `save_to_disk`, or a `datasets.Dataset` / `DatasetDict`."""
    hub: str | None = None
    """A dataset name for `datasets.load_dataset`, instead of `path` (downloads it: needs the
    Hugging Face Hub, or a copy in its cache)."""
    subset: str | None = None
    """The configuration of a `hub` dataset (`load_dataset`'s `name`), e.g. `"main"` for
    `openai/gsm8k`."""
    split: str | None = None
    """The split of a dataset that has several (a `DatasetDict`, saved to disk or from the
    hub), e.g. `"test"`; None takes the only one there is."""
    limit: int | None = None
    """Keep only the first `limit` rows (quick experiments)."""

    def validate(self) -> None:
        """ValueError naming the fix for an unusable combination."""
        require((self.path is None) != (self.hub is None),
                "give exactly one of path= (a local file, a directory saved by datasets' "
                "save_to_disk, or a datasets.Dataset) and hub= (a dataset name for "
                f"datasets.load_dataset), got {'both' if self.hub else 'neither'}")
        require(self.subset is None or self.hub is not None,
                "subset= names the configuration of a hub= dataset; a saved dataset or a "
                "file has none")
        require(self.limit is None or self.limit >= 1,
                f"limit must be positive or None, got {self.limit}")

    @property
    def origin(self) -> str:
        """How messages name the data: the path, `hub:<name>`, or the object's type."""
        if self.hub is not None:
            return f"hub:{self.hub}"
        if isinstance(self.path, (str, PathLike)):
            return str(self.path)
        return f"the {type(self.path).__name__} given as path"

    def rows(self) -> list[Row]:
        """The rows as dicts, only the first `limit` if given. ValueError naming the file and
        line (or the split, or the hub name) when they cannot be read as rows;
        FileNotFoundError for a missing path; ImportError with the install command where
        `datasets` is needed and absent."""
        if self.hub is not None:
            return _hub_rows(self.hub, self.subset, self.split, self.limit)
        if not isinstance(self.path, (str, PathLike)):
            return _dataset_rows(self.path, self.origin, self.split, self.limit)
        path = Path(self.path)
        if path.is_dir():
            return _dataset_rows(_load_from_disk(path), str(path), self.split, self.limit)
        require(self.split is None, f"split={self.split!r} picks a split of a datasets "
                f"dataset; {path} is a file, which has one: leave split out")
        return read_rows(path, self.limit)


@dataclass(frozen=True)
class FileConfig(RowsConfig):
    """Where the problems are (`RowsConfig`) and which fields hold what."""

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

    def validate(self) -> None:
        super().validate()
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
                   path: Any = None, **overrides: Any) -> TaskSource:
    """`from_preset(path, preset, **overrides)`, where neither `path` nor `hub` means the
    sample file `sample` shipped in the package: how the dataset ids (`rlvr/MathDataset-v0`,
    `rlvr/CodeDataset-v0`) read their options."""
    if path is None and overrides.get("hub") is None:
        path = str(resources.files("rlvr_gym") / "data" / sample)
    return from_preset(path, preset, **overrides)


_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations: <<48/2=24>>


def read_rows(path: str | PathLike[str], limit: int | None = None) -> list[Row]:
    """Rows of a local file as dicts (only the first `limit`, if given): JSON lines, a JSON
    list, CSV or Parquet by the suffix (before any `.gz`; other suffixes are read as JSON
    lines), gzip-compressed or not, whatever the name says.

    Row numbers (in `Problem.meta["row"]`, default ids and messages) count from 0 over the
    rows; in JSON lines blank lines are not rows. A file that cannot be read as rows raises
    ValueError naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such dataset file: {path} (rlvr-gym never downloads data "
                                "unless you name hub=; give the path of a local .jsonl, .json, "
                                ".csv or .parquet file, or of a dataset saved by datasets)")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        return _parquet_rows(path)[:limit]
    with path.open("rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"  # gzip's magic number
        raw.seek(0)
        f = cast(IO[bytes], gzip.GzipFile(fileobj=raw)) if compressed else raw
        try:
            if name.endswith(".csv"):
                return _csv_rows(path, f, limit)
            if name.endswith(".json") and _first_byte(f) == b"[":
                return _json_list_rows(path, f)[:limit]
            return list(_json_lines(path, f, limit))
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ValueError(f"{path}: not a readable gzip file ({_one_line(exc)}); check that "
                             "it was downloaded completely, or decompress it with gunzip"
                             ) from None


def _first_byte(f: IO[bytes]) -> bytes:
    """The first byte that is not whitespace or a UTF-8 byte order mark; `f` is rewound."""
    head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    f.seek(0)
    return head


def _not_utf8(where: str, exc: UnicodeDecodeError) -> ValueError:
    return ValueError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start} of the "
                      "line); convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8")


def _json_lines(path: Path, f: IO[bytes], limit: int | None) -> Iterator[Row]:
    count = 0
    for lineno, raw in enumerate(f, 1):
        if limit is not None and count >= limit:
            return  # a quick experiment on a large file need not parse all of it
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise _not_utf8(f"{path}:{lineno}", exc) from None
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
        count += 1
        yield row


def _json_list_rows(path: Path, f: IO[bytes]) -> list[Row]:
    try:
        rows = json.loads(f.read().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise _not_utf8(str(path), exc) from None
    except (ValueError, RecursionError) as exc:
        msg = getattr(exc, "msg", None) or type(exc).__name__
        raise ValueError(f"{path}: not valid JSON ({msg}); expected a JSON list of rows like "
                         '[{"problem": ..., "solution": ...}, ...], or one object per line'
                         ) from None
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: item {i} of the list is a JSON {type(row).__name__} "
                             "where a JSON object was expected; each item must be one row")
    return list(rows)


def _csv_rows(path: Path, f: IO[bytes], limit: int | None) -> list[Row]:
    text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
    reader = csv.DictReader(text)
    rows: list[Row] = []
    try:
        for row in reader:
            if limit is not None and len(rows) >= limit:
                break
            if None in row:  # more values than the header has names
                raise ValueError(f"{path}:{reader.line_num}: more values than the header "
                                 f"names ({len(reader.fieldnames or [])}); quote values that "
                                 "hold commas")
            rows.append(row)
    except UnicodeDecodeError as exc:
        raise _not_utf8(f"{path}:{reader.line_num + 1}", exc) from None
    except csv.Error as exc:
        raise ValueError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None
    finally:
        text.detach()  # `f` stays the caller's to close
    return rows


def _parquet_rows(path: Path) -> list[Row]:
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


def _datasets() -> Any:
    """The `datasets` module, or ImportError with the install command."""
    try:
        return importlib.import_module("datasets")  # (it ships no type information)
    except ImportError as exc:
        raise ImportError("reading a Hugging Face datasets dataset needs the datasets "
                          "package: pip install 'rlvr-gym[datasets]'") from exc


def _load_from_disk(path: Path) -> Any:
    datasets = _datasets()
    try:
        return datasets.load_from_disk(str(path))
    except FileNotFoundError as exc:  # a directory, but not one save_to_disk wrote
        raise ValueError(f"{path}: a directory, but not a dataset saved by datasets' "
                         f"save_to_disk ({_one_line(exc)}); give a file, or the directory "
                         "Dataset.save_to_disk wrote") from None


def _hub_rows(name: str, subset: str | None, split: str | None, limit: int | None
              ) -> list[Row]:
    datasets = _datasets()
    try:
        data = datasets.load_dataset(name, subset, split=split)
    except (OSError, ValueError) as exc:  # hub unreachable, unknown name, subset or split
        raise ValueError(f"hub:{name}: datasets.load_dataset failed ({_one_line(exc)}); check "
                         "the name, subset= and split=, or where the hub cannot be reached, "
                         "save the dataset with save_to_disk elsewhere and give that "
                         "directory as path=") from None
    return _dataset_rows(data, f"hub:{name}", None, limit)


def _dataset_rows(data: Any, origin: str, split: str | None, limit: int | None) -> list[Row]:
    """Rows of a `datasets.Dataset`, or of the split `split` of a `DatasetDict` (None: its
    only split)."""
    datasets = _datasets()
    if isinstance(data, datasets.DatasetDict):
        splits = sorted(data)
        if split is None:
            require(len(splits) == 1, f"{origin} has the splits {splits}; choose one with "
                    "split=")
            split = splits[0]
        require(split in data, f"{origin} has no split {split!r}; its splits are {splits}")
        data = data[split]
    elif split is not None:
        raise ValueError(f"{origin} is a single dataset, not a dict of splits; leave split "
                         "out")
    if not isinstance(data, datasets.Dataset):
        raise ValueError(f"{origin}: a {type(data).__name__}, not a datasets.Dataset or "
                         "DatasetDict; give a file path, a saved dataset's directory or a "
                         "Dataset")
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    return list(data.to_list())


def field_of(row: Row, name: str) -> Any:
    """`row[name]`, or ValueError naming the field and the fields the row has."""
    if name not in row:
        raise ValueError(f"no field {name!r} (the row has {sorted(map(str, row))[:12]}); fix "
                         "the row or the field name")
    return row[name]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


class SkipRow(ValueError):
    """A row a source cannot use (no question, no answer, unusable tests): the source skips
    it, counts it in `skipped` and says so in a `SkippedRowsWarning`."""


class SkippedRowsWarning(UserWarning):
    """Some rows of a dataset were not usable and are not among the env's problems."""


class RowSource(ListSource):
    """Base of the sources built from rows (`RowsConfig`): one problem per row, made by
    `_problem`, or the row skipped when that raises one of `skippable` (`SkipRow` by
    default); any other ValueError stops loading, naming the row."""

    skippable: tuple[type[Exception], ...] = (SkipRow,)
    skipped: int
    """Rows that were not usable."""
    skip_reason: str | None
    """Why the first of them was not, naming its row; None when none was skipped."""

    def _load(self, config: RowsConfig, fix: str) -> None:
        """Fill `problems` from `config.rows()` and index them; warn when rows were skipped,
        ValueError ending in `fix` when none was usable."""
        self.problems = []
        self.skipped = 0
        self.skip_reason = None
        rows = config.rows()
        for row_number, row in enumerate(rows):
            try:
                self.problems.append(self._problem(row_number, row))
            except self.skippable as exc:
                self.skipped += 1
                why = f"missing key {exc}" if isinstance(exc, KeyError) else \
                    str(exc) or type(exc).__name__
                self.skip_reason = self.skip_reason or \
                    f"{config.origin} row {row_number}: {why}"
            except ValueError as exc:
                raise ValueError(f"{config.origin} row {row_number}: {exc}") from None
        if not rows:
            raise ValueError(f"{config.origin}: no rows; give a dataset with at least one")
        if not self.problems:
            raise ValueError(f"no usable problems ({self.skip_reason}); {fix}")
        if self.skipped:
            warnings.warn(f"skipped {self.skipped} of {len(rows)} rows, which are not among the "
                          f"{len(self.problems)} problems; the first: {self.skip_reason} (the "
                          "source's skipped and skip_reason keep these)",
                          SkippedRowsWarning, stacklevel=2)
        id_field = getattr(config, "id_field", None)
        self._index_problems(f"{config.origin} (id_field={id_field!r})")

    def _problem(self, row_number: int, row: Row) -> Problem:
        """The problem of one row; raises one of `skippable` for a row that is not usable."""
        raise NotImplementedError


class FileSource(RowSource):
    """A finite list of problems read once (`RowsConfig`). Rows without a question or a
    usable answer are skipped, counted in `skipped` and warned about."""

    def __init__(self, config: FileConfig, name: str = "file") -> None:
        config.validate()
        self.config = config
        self.name = name
        self._load(config, f"check the field names: question_field={config.question_field!r}, "
                           f"answer_field={config.answer_field!r}, solution_field="
                           f"{config.solution_field!r}")

    @classmethod
    def from_preset(cls, path: Any, preset: str, **overrides: Any) -> FileSource:
        """A source with a preset's field names (`gsm8k` or `math`), overridable per field."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)} or "
                             "give the field names yourself")
        return cls(replace(FileConfig(path=path), **{**PRESETS[preset], **overrides}))

    def _problem(self, row_number: int, row: Row) -> Problem:
        c = self.config
        question = row.get(c.question_field)
        if not isinstance(question, str) or not question.strip():
            raise SkipRow(f"no question in field {c.question_field!r}")
        solution = str(row.get(c.solution_field) or "") if c.solution_field else ""
        raw_answer = row.get(c.answer_field) if c.answer_field else None
        answer: str | None
        if c.answer_format == "gsm8k":
            text = str(raw_answer or "")
            if "####" not in text:
                raise SkipRow(f"no '#### answer' in field {c.answer_field!r}")
            worked, answer = text.rsplit("####", 1)
            answer = answer.strip()
            solution = solution or _CALCULATOR.sub("", worked).strip()
        elif c.answer_format == "boxed":
            answer = last_boxed(str(raw_answer)) if raw_answer else last_boxed(solution)
        else:
            answer = None if raw_answer is None else str(raw_answer).strip()
        if not answer:
            raise SkipRow(f"no answer (answer_format={c.answer_format!r})")
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
