"""iterative_repair's ``--problems``/``--samples`` path: standard problems and samples as repair-loop records.

Owns turning standard problems and samples into repair-loop records: toolkit records (the JSON
list ``--solution-file`` reads) that carry the standard problem's statement, its typed tests
(``tests``: stdin/stdout, call and assert tests of ``problem_kinds``, public ones first), the
split (``test_split``: how many are public and private) and the answer to repair under one
``*_solution`` key. ``librarybench_common.problem_tests`` reads ``tests`` through
``record_tests``, so the repair loop's output file, which keeps these keys, can be given to
compare_model_improvements.py as both ``--original-file`` and ``--improved-file``.

Which answer is repaired: with ``--samples``, the *first* sample of each problem (key
``<samples file stem>_solution``; later samples are not repaired); without it, the record's own
``*_solution`` answers. The record's own time and memory limit fields are kept (``--limits
dataset``). Call and assert answers are stored fenced, as model answers are, so
that ``extract_code`` takes them whole (a bare function is not a complete stdin program).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dataset_formats as formats
import problem_kinds as kinds
from problem_limits import LIMIT_FIELDS
from errors import InputError

TESTS_KEY = "tests"
LOAD_ERROR_KEY = "load_error"  # an unusable problem's record: why (so compare says it too)
SPLIT_KEY = "test_split"
KIND_KEY = "kind"
STATEMENT_KEYS = ("question_content", "question", "description", "text", "prompt")


@dataclass(frozen=True)
class DatasetRecords:
    """Records aligned with the problems file (index i is its record i), the records that could
    not be used as (index, one-line message), the answer key and the detected format."""

    records: list[dict[str, Any]]
    errors: list[tuple[int, str]]
    model_key: str | None
    fmt: str
    sample_errors: tuple[str, ...] = ()  # ``<file>: sample <i>: ...`` lines (the other samples are used)


def fence(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```" if code.strip() else "```python\n```"


def answer_key(samples_path: str | Path) -> str:
    """``samples.jsonl`` -> ``samples_solution``: the key the first samples are stored under."""
    stem = Path(samples_path).name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_").lower() + "_solution" if stem else "sample_solution"


def statement(problem: formats.Problem, raw: dict[str, Any]) -> str:
    """What the model is told: the dataset's statement, with the starter code or signature."""
    text = next((str(raw[k]) for k in STATEMENT_KEYS if isinstance(raw.get(k), str) and raw[k].strip()), "")
    if problem.prompt and problem.prompt.strip() not in text:
        text = f"{text}\n\nStarter code:\n```python\n{problem.prompt.rstrip()}\n```".strip()
    return text or problem.name or problem.task_id


def problem_record(problem: formats.Problem, raw: dict[str, Any], fmt: str) -> dict[str, Any]:
    return {
        "name": problem.name or problem.task_id, "task_id": problem.task_id, "format": fmt,
        "problem": statement(problem, raw), KIND_KEY: problem.kind,
        TESTS_KEY: list(problem.tests),
        SPLIT_KEY: {"public": len(problem.public_tests), "private": len(problem.private_tests)},
        **{k: raw[k] for k in LIMIT_FIELDS if raw.get(k) not in (None, "")},  # for --limits dataset
    }


def own_answer(answer: Any, kind: str) -> Any:
    """A record's own ``*_solution`` answer; call and assert code fenced (see the module doc)."""
    if not isinstance(answer, str) or kind == "stdio":
        return answer
    return fence(formats.sample_program(answer, kind))


def load(problems_path: str | Path, samples_path: str | Path | None, fmt: str | None) -> DatasetRecords:
    """The repair-loop records of a problems file (and its samples file)."""
    raw = formats.read_records(problems_path)
    fmt, loaded = formats.load_problems(problems_path, fmt, raw)
    total = len(loaded.items) + len(loaded.errors)
    good = {p.index for p in loaded.items}
    errors = list(zip([i for i in range(total) if i not in good], loaded.errors))
    records: list[dict[str, Any]] = [{} for _ in range(total)]
    for i, message in errors:
        records[i] = {"problem": "", "name": f"problem {i}", TESTS_KEY: None,
                      LOAD_ERROR_KEY: message.split(f"problem {i}: ", 1)[-1]}
    for problem in loaded.items:
        records[problem.index] = problem_record(problem, raw[problem.index], fmt)
    key: str | None = None
    sample_errors: list[str] = []
    if samples_path is not None:
        samples = formats.load_samples(samples_path, loaded.items)
        sample_errors = samples.errors
        key = answer_key(samples_path)
        by_task = {p.task_id: p.index for p in loaded.items}
        for sample in samples.items:
            if sample.index == 0:  # only the first sample of each problem is repaired
                records[by_task[sample.task_id]][key] = fence(sample.code)
    else:
        for problem in loaded.items:  # every format's own *_solution keys (not only TACO's)
            for name, answer in raw[problem.index].items():
                if name.endswith("_solution"):
                    records[problem.index][name] = own_answer(answer, problem.kind)
    return DatasetRecords(records, errors, key, fmt, tuple(sample_errors))


def record_tests(record: dict[str, Any]) -> list[Any]:
    """The typed tests stored in a record's ``tests`` (``InputError`` for anything else)."""
    tests = record.get(TESTS_KEY)
    if isinstance(record.get(LOAD_ERROR_KEY), str):
        raise InputError(record[LOAD_ERROR_KEY])
    if not isinstance(tests, list) or not tests:
        raise InputError(f"no tests ({TESTS_KEY!r} is not a non-empty list)")
    for number, test in enumerate(tests):
        if kinds.is_kind_test(test):
            continue
        if not (isinstance(test, dict) and isinstance(test.get("stdin"), str) and isinstance(test.get("stdout"), str)):
            raise InputError(f"test {number} in {TESTS_KEY!r} is neither stdin/stdout, call nor assert")
    return tests


def public_count(record: Any, total: int) -> int:
    """How many of a record's tests (the first ones) are public: all unless it stores a split."""
    split = record.get(SPLIT_KEY) if isinstance(record, dict) else None
    public = split.get("public") if isinstance(split, dict) else None
    if isinstance(public, int) and not isinstance(public, bool) and 0 <= public <= total:
        return public
    return total


def record_kind(record: Any) -> str:
    kind = record.get(KIND_KEY) if isinstance(record, dict) else None
    return kind if kind in ("call", "assert") else "stdio"
