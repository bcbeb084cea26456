"""Owns reading problem records and selecting problems: loading a solution file (a JSON list of
records), turning a record's ``input_output`` into tests, a problem's printable name, its answer
keys (``*_solution``, ``--model-key``), and which problems the command line selected
(``--problem-id``/``--problem-ids``/``--range``). ``librarybench_common`` re-exports every public
name here, so ``common.load_problems`` and the seed's ``create_test_cases_from_input_output`` keep
working.
"""

from __future__ import annotations

import json
import os
import re
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from errors import ConfigError, InputError
from records import StdioTest


def load_problems(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a solution file: a JSON list of problem records."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    return parse_json_list(path, text, "problem records")


def parse_json_list(path: str | os.PathLike[str], text: str, what: str = "records") -> list[Any]:
    """``text`` as a JSON list, or an ``InputError`` naming the file and where the JSON breaks."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of {what}, got {type(data).__name__}")
    return data


def parse_input_output(input_output: Any) -> dict[str, Any]:
    """``input_output`` is a JSON string in TACO files and sometimes already a dict."""
    if isinstance(input_output, str):
        try:
            input_output = json.loads(input_output)
        except json.JSONDecodeError as exc:
            raise InputError(f"input_output is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(input_output, dict):
        raise InputError(f"input_output must be an object with inputs and outputs, got {type(input_output).__name__}")
    return input_output


def create_test_cases_from_input_output(input_output: Any) -> list[StdioTest]:
    """Convert ``{"inputs": [...], "outputs": [...]}`` into stdin/stdout tests (seed signature)."""
    io = parse_input_output(input_output)
    if io.get("fn_name"):  # call-based TACO/APPS: call tests, run through problem_kinds' harness
        from dataset_formats import taco_tests
        return taco_tests(io)[1]
    inputs, outputs = io.get("inputs"), io.get("outputs")
    if inputs is None or outputs is None:
        raise InputError("input_output has no inputs/outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise InputError("input_output inputs and outputs must be lists")
    if len(inputs) != len(outputs):
        raise InputError(f"input_output has {len(inputs)} inputs but {len(outputs)} outputs")
    return [{"stdin": _as_text(i), "stdout": _as_text(o)} for i, o in zip(inputs, outputs)]


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


def problem_tests(record: Any, index: int, path: str | os.PathLike[str] = "<records>") -> list[StdioTest]:
    """The tests of one record, or an ``InputError`` located at the file and problem index."""
    if not isinstance(record, dict):
        raise InputError("record is not a JSON object", file=path, index=index)
    if "input_output" not in record and "tests" in record:  # a standard problem's record (dataset_records)
        from dataset_records import record_tests
        try:
            return record_tests(record)
        except InputError as exc:
            raise exc.at(path, index) from None
    if "input_output" not in record or record["input_output"] in (None, "", {}):
        raise InputError("no tests (missing input_output)", file=path, index=index)
    try:
        tests = create_test_cases_from_input_output(record["input_output"])
    except InputError as exc:
        raise exc.at(path, index) from None
    if not tests:
        raise InputError("no tests (input_output has empty inputs)", file=path, index=index)
    return tests


_BOILERPLATE_LINE = re.compile(r"^\s*read\s+problems?\s+statements?\b", re.IGNORECASE)


def problem_name(record: Any, index: int, limit: int = 80) -> str:
    """A short printable label for a problem: its ``name``, else the statement's first line that is
    not CodeChef's "Read problems statements in Mandarin Chinese..." boilerplate (which would give
    every CodeChef problem the same name), else ``problem <index>``; control characters removed."""
    raw = record.get("name") if isinstance(record, dict) else None
    if not raw and isinstance(record, dict):
        lines = str(record.get("problem") or "").split("\n")
        raw = next((line for line in lines if line.strip() and not _BOILERPLATE_LINE.match(line)), "")
    clean = "".join(c if unicodedata.category(c)[0] != "C" else " " for c in str(raw or ""))
    return " ".join(clean.split())[:limit] or f"problem {index}"


def solution_keys(records: Iterable[Any], include_human: bool = False) -> list[str]:
    """Every ``*_solution`` key in the records (model answers), in first-seen order."""
    keys: list[str] = []
    for record in records:
        if isinstance(record, dict):
            for key in record:
                if key.endswith("_solution") and key not in keys:
                    keys.append(key)
    if not include_human:
        keys = [k for k in keys if k != "human_solution"]
    elif "human_solution" in keys:
        keys = [k for k in keys if k != "human_solution"] + ["human_solution"]
    return keys


def model_key_candidates(name: str) -> tuple[str, ...]:
    """The keys a ``--model-key`` value may mean: itself, then its ``_solution`` form."""
    return (name,) if name.endswith("_solution") else (name, f"{name}_solution")


def match_model_key(name: str, available: Iterable[str]) -> str | None:
    """The first of ``model_key_candidates(name)`` that is in ``available`` (None: none is)."""
    keys = set(available)
    return next((key for key in model_key_candidates(name) if key in keys), None)


def resolve_model_key(record: dict[str, Any], model_name: str | None) -> str:
    """Map a seed-style model name (``o3_mini``, ``claude``) or a full key to the record's key."""
    if model_name:
        key = match_model_key(model_name, record)
        if key is not None:
            return key
        raise InputError(f"model key {model_name!r} not found (record has {', '.join(solution_keys([record], True)) or 'no *_solution keys'})")
    keys = solution_keys([record])
    if not keys:
        raise InputError("record has no *_solution key")
    return keys[0]


@dataclass(frozen=True)
class ProblemSelection:
    """Which problems the command line asked for: explicit ``ids`` (each must exist: a usage
    error otherwise) or an inclusive range ``first``-``last`` (clamped to the file, with a warning).
    A range is never expanded into a list, so ``--range 0-99999999999999999999`` costs nothing."""

    ids: tuple[int, ...] = ()
    first: int = 0
    last: int | None = None  # None with no ids: every problem
    flag: str = ""  # how it was given, for messages (``--range 0-9``)

    @property
    def is_range(self) -> bool:
        return not self.ids


def parse_problem_selection(problem_id: int | None = None, problem_ids: str | None = None,
                            range_spec: str | None = None) -> ProblemSelection | None:
    """``--problem-id 3``, ``--problem-ids 1,4,7`` or ``--range 0-9`` (inclusive); None means all."""
    if problem_id is not None:
        return ProblemSelection(ids=(problem_id,), flag=f"--problem-id {problem_id}")
    if problem_ids is not None:
        try:
            ids = [int(x) for x in problem_ids.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"--problem-ids expects comma-separated integers, got {problem_ids!r}") from None
        if not ids:
            raise ConfigError(f"--problem-ids names no problem, got {problem_ids!r}")
        return ProblemSelection(ids=tuple(dict.fromkeys(ids)), flag=f"--problem-ids {problem_ids}")
    if range_spec:
        m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", range_spec)
        if not m or int(m.group(1)) > int(m.group(2)):
            raise ConfigError(f"--range expects START-END with START <= END, got {range_spec!r}")
        return ProblemSelection(first=int(m.group(1)), last=int(m.group(2)), flag=f"--range {range_spec.strip()}")
    return None


def _index_span(count: int) -> str:
    return f"the file has {count} problem{'s' if count != 1 else ''}, indices 0-{count - 1}"


def selected_indices(count: int, selection: ProblemSelection | None, path: str | os.PathLike[str]) -> list[int]:
    """The problems to run, for a selection given on the command line.

    Explicit ids that the file does not have are one ``ConfigError`` (a usage error: nothing
    runs). A range is clamped to the file with one ``warning:`` line on stderr; a range that
    misses the file entirely is a ``ConfigError``.
    """
    if count == 0:
        raise InputError(f"{path}: the file has no problems (an empty list)")
    if selection is None:
        return list(range(count))
    if not selection.is_range:
        absent = [i for i in selection.ids if not 0 <= i < count]
        if absent:
            shown = ", ".join(str(i) for i in absent[:10]) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
            noun = "problem" if len(absent) == 1 else "problems"
            raise ConfigError(f"{path}: {noun} {shown} do{'es' if len(absent) == 1 else ''} not exist "
                              f"({_index_span(count)})")
        return list(selection.ids)
    last = count - 1 if selection.last is None else selection.last
    if selection.first >= count:
        raise ConfigError(f"{path}: {selection.flag or 'the range'} selects no problem ({_index_span(count)})")
    if last >= count:
        print(f"warning: {path}: {selection.flag} goes past the end of the file ({_index_span(count)}): "
              f"running {selection.first}-{count - 1}", file=sys.stderr, flush=True)
        last = count - 1
    return list(range(selection.first, last + 1))


def select_problems(count: int, selection: ProblemSelection | Sequence[int] | None, path: str | os.PathLike[str]
                    ) -> tuple[list[int], list[tuple[int, str]]]:
    """(indices to run, (index, message) per selected index that does not exist).

    A ``ProblemSelection`` (the command line) follows ``selected_indices``: ids that do not exist
    are a ``ConfigError``, so the second item is empty. A plain sequence (library callers such as
    ``get_model_feedback``) keeps the per-problem report: an index out of range is an error of that
    problem (``<file>: problem <i>: does not exist ...``) and the others run. Duplicates are dropped
    (first occurrence kept). A file with no problems is an ``InputError``.
    """
    if selection is None or isinstance(selection, ProblemSelection):
        return selected_indices(count, selection, path), []
    if count == 0:
        raise InputError(f"{path}: the file has no problems (an empty list)")
    wanted = list(dict.fromkeys(selection))
    valid = [i for i in wanted if 0 <= i < count]
    missing = [(i, f"{path}: problem {i}: does not exist ({_index_span(count)})")
               for i in wanted if not 0 <= i < count]
    return valid, missing
