"""Standard problem and samples files: TACO/APPS, LiveCodeBench, HumanEval, MBPP, CodeContests.

Owns: reading ``--problems FILE`` (``.json``, ``.jsonl``, ``.jsonl.gz``, ``.parquet`` with pyarrow),
detecting the format from a record's fields (or ``--format NAME``), turning each record into a
``Problem`` with typed tests (``problem_kinds``) kept as public and private, and reading
``--samples FILE`` (evalplus ``samples.jsonl``, LiveCodeBench custom output, TACO
``generation.json``) into ``Sample`` records. A record or sample that cannot be used becomes one
``InputError`` message naming the file and index; the others are kept.

LiveCodeBench's private tests may be base64 of zlib of a pickle of the JSON text. They are never
given to ``pickle.loads``: ``unpickle_text`` first checks every opcode against an allowlist that
can build nothing but one ``str`` (no globals, no calls, no containers), then unpickles with
``find_class`` refused, then checks that the result is a ``str``.
"""

from __future__ import annotations

import ast
import base64
import binascii
import gzip
import io
import json
import pickle
import pickletools
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import problem_kinds as kinds
from errors import InputError
from problem_limits import LimitError, limit_fields, parse_time_limit, record_memory
from records import StdioTest

FORMATS = ("taco", "livecodebench", "humaneval", "mbpp", "codecontests")
SAMPLE_FORMATS = ("evalplus", "livecodebench", "taco")
CODECONTESTS_SOURCES = {0: "UNKNOWN", 1: "CODECHEF", 2: "CODEFORCES", 3: "HACKEREARTH", 4: "CODEJAM",
                        5: "ATCODER", 6: "AIZU"}
CODECONTESTS_PYTHON3 = 3


@dataclass(frozen=True)
class Problem:
    """One problem of a standard dataset, its tests typed and split.

    ``prompt`` is what an evalplus ``completion`` is appended to (HumanEval's prompt);
    ``reference`` a correct program shipped with the dataset, if any. Datasets without a split
    (HumanEval, MBPP's ``test_list``, TACO) have every test public.
    """

    index: int
    task_id: str
    name: str
    kind: str  # stdio, call or assert
    public_tests: tuple[Any, ...]
    private_tests: tuple[Any, ...] = ()
    prompt: str = ""
    reference: str | None = None
    difficulty: str | None = None
    source: str | None = None  # platform for LiveCodeBench
    date: str | None = None  # ISO date (contest_date)
    time_limit: float | None = None  # seconds
    memory_limit_mb: float | None = None
    answers: dict[str, Any] = field(default_factory=dict)  # *_solution keys of the record
    limit_fields: dict[str, Any] = field(default_factory=dict)  # time/memory limits as written (problem_limits)

    @property
    def tests(self) -> list[Any]:
        return [*self.public_tests, *self.private_tests]


@dataclass(frozen=True)
class Sample:
    """One model sample for a problem: ``code`` is the program to run (prompt already prepended)."""

    task_id: str
    index: int  # position among the samples of this task
    code: str


@dataclass(frozen=True)
class Loaded:
    items: list[Any]
    errors: list[str]


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------


def read_records(path: str | Path) -> list[Any]:
    """The records of a ``.json`` (a list), ``.jsonl``, ``.jsonl.gz`` or ``.parquet`` file."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".parquet"):
        return _read_parquet(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    if name.endswith((".jsonl", ".jsonl.gz")):
        return _jsonl(path, text)
    from librarybench_common import parse_json_list  # here: librarybench_common imports this module too

    return parse_json_list(path, text)


def _jsonl(path: Path, text: str) -> list[Any]:
    """One record per line; a bad line stays in the list as an error marker (its index is kept)."""
    records: list[Any] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            records.append(_BadLine(f"line {number} is not valid JSON ({exc.msg})"))
    return records


@dataclass(frozen=True)
class _BadLine:
    message: str


def _read_parquet(path: Path) -> list[Any]:
    try:
        import pyarrow.parquet as pq  # optional dependency
    except ImportError:
        raise InputError(f"{path}: reading .parquet needs pyarrow (uv pip install pyarrow), "
                         "or convert the file to .jsonl") from None
    try:
        return pq.read_table(path).to_pylist()
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read parquet: {exc}") from None


# --------------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------------


def detect_format(record: Any) -> str | None:
    """The dataset a record comes from, from its fields."""
    if not isinstance(record, dict):
        return None
    if "question_id" in record and ("public_test_cases" in record or "private_test_cases" in record):
        return "livecodebench"
    if "entry_point" in record and "test" in record and "prompt" in record:
        return "humaneval"
    if "test_list" in record:
        return "mbpp"
    if "public_tests" in record or "private_tests" in record or "generated_tests" in record:
        return "codecontests"
    if "input_output" in record:
        return "taco"
    return None


def load_problems(path: str | Path, fmt: str | None = None, records: list[Any] | None = None) -> tuple[str, Loaded]:
    """(format, problems and per-record errors) of a problems file (``records``: its records, already read)."""
    records = read_records(path) if records is None else records
    if not records:
        raise InputError(f"{path}: the file has no problems")
    if fmt is None:
        fmt = next((f for f in map(detect_format, records[:20]) if f), None)
        if fmt is None:
            raise InputError(f"{path}: cannot tell the dataset format from the fields: use --format "
                             f"({', '.join(FORMATS)})")
    else:
        check_forced_format(path, records, fmt)
    convert = PROBLEM_READERS[fmt]
    problems, errors = [], []
    for index, record in enumerate(records):
        try:
            if isinstance(record, _BadLine):
                raise InputError(record.message)
            if not isinstance(record, dict):
                raise InputError("record is not a JSON object")
            problem = convert(index, record)
            if not problem.tests:
                raise InputError("no tests")
            problems.append(problem)
        except InputError as exc:
            errors.append(f"{path}: problem {index}: {exc}")
    return fmt, Loaded(problems, errors)


def check_forced_format(path: str | Path, records: list[Any], fmt: str) -> None:
    """``--format NAME`` on a file whose records are plainly another format is one usage error,
    not one error per problem (records no format is detected for are still read as NAME)."""
    sample = records[:20]
    found = [f for f in map(detect_format, sample) if f]
    if not found or fmt in found:
        return
    first = next(r for r in sample if detect_format(r))
    fields = ", ".join(sorted(map(str, first))[:12])
    raise InputError(f"{path}: the file's records are not {fmt}: first record has fields {fields} "
                     f"(it looks like {found[0]}: drop --format or pass --format {found[0]})")


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


def _json_field(record: dict[str, Any], key: str, default: Any = None) -> Any:
    value = record.get(key, default)
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputError(f"{key} is not valid JSON ({exc.msg} at position {exc.pos})") from None
    return value


def _limits(record: dict[str, Any]) -> tuple[float | None, float | None]:
    """(``time_limit`` in seconds, ``memory_limit_mb``) as ``problem_limits`` reads them (one parser:
    ``"1000 ms"``, ``"262144 kilobytes"``, ``memory_limit_bytes``); one it cannot read is None here
    (a record's metadata; ``--limits dataset`` warns about it when it would apply)."""
    fields = limit_fields(record)
    return _readable(parse_time_limit, fields.get("time_limit")), _readable(record_memory, fields)


def _readable(parse: Callable[[Any], float | None], value: Any) -> float | None:
    try:
        return parse(value)
    except LimitError:
        return None


def _first(values: Any) -> str | None:
    if isinstance(values, list) and values and isinstance(values[0], str):
        return values[0]
    return None


def taco_tests(input_output: Any) -> tuple[str, list[Any]]:
    """(kind, tests) of a TACO/APPS ``input_output``: call tests when it names ``fn_name``."""
    from librarybench_common import parse_input_output
    io_spec = parse_input_output(input_output)
    inputs, outputs = io_spec.get("inputs"), io_spec.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise InputError("input_output has no inputs/outputs lists")
    if len(inputs) != len(outputs):
        raise InputError(f"input_output has {len(inputs)} inputs but {len(outputs)} outputs")
    fn_name = io_spec.get("fn_name")
    if not fn_name:
        return "stdio", [{"stdin": _text(i), "stdout": _text(o)} for i, o in zip(inputs, outputs)]
    if not isinstance(fn_name, str):
        raise InputError("input_output fn_name is not a string")
    tests = []
    for number, (args, expected) in enumerate(zip(inputs, outputs)):
        if not isinstance(args, list):
            raise InputError(f"call-based input {number} is not a list of arguments")
        tests.append(kinds.call_test(fn_name, args, expected, unwrap_expected=True))
    return "call", tests


def _answers(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k.endswith("_solution")}


def read_taco(index: int, record: dict[str, Any]) -> Problem:
    if record.get("input_output") in (None, "", {}):
        raise InputError("no tests (missing input_output)")
    kind, tests = taco_tests(record["input_output"])
    seconds, memory_mb = _limits(record)
    solutions = _json_field(record, "solutions", [])
    return Problem(index=index, task_id=str(record.get("task_id", record.get("problem_id", index))),
                   name=str(record.get("name") or ""), kind=kind, public_tests=tuple(tests),
                   reference=record.get("human_solution") or _first(solutions),
                   difficulty=_opt(record.get("difficulty")), source=_opt(record.get("source")),
                   date=_opt(record.get("date")), time_limit=seconds, memory_limit_mb=memory_mb,
                   answers=_answers(record), limit_fields=limit_fields(record))


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def read_livecodebench(index: int, record: dict[str, Any]) -> Problem:
    metadata = _json_field(record, "metadata", {}) or {}
    if not isinstance(metadata, dict):
        raise InputError("metadata is not a JSON object")
    starter = str(record.get("starter_code") or "")
    fn_name = metadata.get("func_name")
    class_name = "Solution" if "class Solution" in starter else None
    public = [_lcb_test(t, fn_name, class_name) for t in _lcb_cases(record.get("public_test_cases"), "public")]
    private = [_lcb_test(t, fn_name, class_name) for t in _lcb_cases(record.get("private_test_cases"), "private")]
    kinds_seen = {kinds.test_kind(t) for t in public + private}
    return Problem(index=index, task_id=str(record["question_id"]),
                   name=str(record.get("question_title") or ""), kind="call" if "call" in kinds_seen else "stdio",
                   public_tests=tuple(public), private_tests=tuple(private), prompt=starter,
                   difficulty=_opt(record.get("difficulty")), source=_opt(record.get("platform")),
                   date=_opt(record.get("contest_date")))


def _lcb_cases(value: Any, which: str) -> list[dict[str, Any]]:
    if value in (None, "", []):
        return []
    if isinstance(value, list):
        cases = value
    elif isinstance(value, str):
        try:
            cases = json.loads(value)
        except json.JSONDecodeError:
            cases = json.loads(decode_compressed(value, f"{which}_test_cases"))
    else:
        raise InputError(f"{which}_test_cases is neither a list nor a string")
    if not isinstance(cases, list) or not all(isinstance(c, dict) for c in cases):
        raise InputError(f"{which}_test_cases is not a list of test objects")
    return cases


def decode_compressed(text: str, what: str) -> str:
    """LiveCodeBench's ``base64(zlib(pickle(json_text)))``, decoded without trusting the pickle."""
    try:
        data = zlib.decompress(base64.b64decode(text.encode("ascii"), validate=False))
    except (binascii.Error, zlib.error, UnicodeEncodeError, ValueError) as exc:
        raise InputError(f"{what} is neither JSON nor base64/zlib data ({exc})") from None
    return unpickle_text(data, what)


# Opcodes that can build one str and nothing else: protocol and frame markers, the string
# opcodes, memo bookkeeping, STOP. No GLOBAL/STACK_GLOBAL/REDUCE/BUILD/containers.
_TEXT_OPCODES = frozenset({"PROTO", "FRAME", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
                           "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "STOP"})


class _TextOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")


def unpickle_text(data: bytes, what: str = "data") -> str:
    """The str a pickle holds, or ``InputError`` if it holds (or would do) anything else."""
    try:
        ops = [op.name for op, _arg, _pos in pickletools.genops(data)]
    except (ValueError, EOFError) as exc:
        raise InputError(f"{what}: not a valid pickle ({exc})") from None
    refused = sorted(set(ops) - _TEXT_OPCODES)
    if refused:
        raise InputError(f"{what}: the pickle holds more than a string (opcodes {', '.join(refused[:5])}); refused")
    try:
        value = _TextOnlyUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise InputError(f"{what}: cannot unpickle: {exc}") from None
    if not isinstance(value, str):
        raise InputError(f"{what}: the pickle holds {type(value).__name__}, not a string")
    return value


def _lcb_test(case: dict[str, Any], fn_name: Any, class_name: str | None) -> Any:
    testtype = case.get("testtype", "stdin")
    if testtype == "stdin":
        return {"stdin": str(case.get("input", "")), "stdout": str(case.get("output", ""))}
    if testtype != "functional":
        raise InputError(f"unknown testtype {testtype!r}")
    if not isinstance(fn_name, str) or not fn_name:
        raise InputError("functional test but metadata has no func_name")
    try:
        args = [json.loads(line) for line in str(case.get("input", "")).split("\n") if line.strip()]
        expected = json.loads(str(case.get("output", "")))
    except json.JSONDecodeError as exc:
        raise InputError(f"functional test value is not JSON ({exc.msg})") from None
    return kinds.call_test(fn_name, args, expected, class_name=class_name)


def read_humaneval(index: int, record: dict[str, Any]) -> Problem:
    for key in ("task_id", "prompt", "test", "entry_point"):
        if not isinstance(record.get(key), str):
            raise InputError(f"{key} is missing or not a string")
    test = kinds.assert_test(f"{record['test']}\n\ncheck({record['entry_point']})\n")
    canonical = record.get("canonical_solution")
    return Problem(index=index, task_id=record["task_id"], name=record["entry_point"], kind="assert",
                   public_tests=(test,), prompt=record["prompt"],
                   reference=record["prompt"] + canonical if isinstance(canonical, str) else None)


def read_mbpp(index: int, record: dict[str, Any]) -> Problem:
    tests = record.get("test_list")
    if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
        raise InputError("test_list is not a list of assert strings")
    setup = str(record.get("test_setup_code") or "")
    challenge = record.get("challenge_test_list") or []
    make = (lambda t: kinds.assert_test(f"{setup}\n{t}\n" if setup else f"{t}\n"))
    return Problem(index=index, task_id=str(record.get("task_id", index)), name=str(record.get("task_id", "")),
                   kind="assert", public_tests=tuple(make(t) for t in tests),
                   private_tests=tuple(make(t) for t in challenge if isinstance(t, str)),
                   prompt=str(record.get("prompt") or ""),
                   reference=record.get("code") if isinstance(record.get("code"), str) else None)


def _cc_tests(value: Any, key: str) -> list[StdioTest]:
    if value in (None, {}):
        return []
    if not isinstance(value, dict):
        raise InputError(f"{key} is not an object with input and output lists")
    inputs, outputs = value.get("input") or [], value.get("output") or []
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
        raise InputError(f"{key} input and output are not lists of the same length")
    return [{"stdin": str(i), "stdout": str(o)} for i, o in zip(inputs, outputs)]


def read_codecontests(index: int, record: dict[str, Any]) -> Problem:
    public = _cc_tests(record.get("public_tests"), "public_tests")
    private = _cc_tests(record.get("private_tests"), "private_tests") + \
        _cc_tests(record.get("generated_tests"), "generated_tests")
    solutions = record.get("solutions") or {}
    reference = None
    if isinstance(solutions, dict):
        for language, code in zip(solutions.get("language") or [], solutions.get("solution") or []):
            if language == CODECONTESTS_PYTHON3 and isinstance(code, str):
                reference = code
                break
    source = record.get("source")
    seconds, memory_mb = _limits(record)
    return Problem(index=index, task_id=str(record.get("name") or index), name=str(record.get("name") or ""),
                   kind="stdio", public_tests=tuple(public), private_tests=tuple(private), reference=reference,
                   difficulty=_opt(record.get("difficulty")),
                   source=CODECONTESTS_SOURCES.get(source, _opt(source)) if isinstance(source, int) else _opt(source),
                   time_limit=seconds, memory_limit_mb=memory_mb, limit_fields=limit_fields(record))


PROBLEM_READERS: dict[str, Callable[[int, dict[str, Any]], Problem]] = {
    "taco": read_taco, "livecodebench": read_livecodebench, "humaneval": read_humaneval,
    "mbpp": read_mbpp, "codecontests": read_codecontests,
}


# --------------------------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------------------------


def detect_samples_format(records: list[Any]) -> str | None:
    first = next((r for r in records if isinstance(r, dict)), None)
    if first is None:
        return None
    if "code_list" in first:
        return "livecodebench"
    if "output" in first and isinstance(first.get("output"), list):
        return "taco"
    if "solution" in first or "completion" in first:
        return "evalplus"
    return None


def load_samples(path: str | Path, problems: Iterable[Problem]) -> Loaded:
    """Samples per task id; an unusable sample is one error line with the file and index."""
    by_id = {p.task_id: p for p in problems}
    records = read_records(path)
    fmt = detect_samples_format(records)
    if fmt is None:
        raise InputError(f"{path}: cannot tell the samples format: expected evalplus samples.jsonl "
                         "(task_id + solution/completion), LiveCodeBench [{question_id, code_list}] "
                         "or TACO [{task_id, output}]")
    samples: list[Sample] = []
    errors: list[str] = []
    counts: dict[str, int] = {}
    for index, record in enumerate(records):
        try:
            for task_id, text, append in _sample_texts(fmt, record):
                problem = by_id.get(task_id)
                if problem is None:
                    raise InputError(f"no problem with task id {task_id!r} in the problems file")
                number = counts.get(task_id, 0)
                counts[task_id] = number + 1
                code = sample_program(text, problem.kind)
                samples.append(Sample(task_id, number, problem.prompt + code if append else code))
        except InputError as exc:
            errors.append(f"{path}: sample {index}: {exc}")
    return Loaded(samples, errors)


def _sample_texts(fmt: str, record: Any) -> list[tuple[str, str, bool]]:
    """(task id, text, append to the prompt) of one samples record."""
    if isinstance(record, _BadLine):
        raise InputError(record.message)
    if not isinstance(record, dict):
        raise InputError("sample is not a JSON object")
    if fmt == "evalplus":
        task_id = record.get("task_id")
        if "solution" in record and isinstance(record["solution"], str):
            return [(str(task_id), record["solution"], False)]
        if isinstance(record.get("completion"), str):
            return [(str(task_id), record["completion"], True)]
        raise InputError("no string solution or completion")
    key, list_key = ("question_id", "code_list") if fmt == "livecodebench" else ("task_id", "output")
    codes = record.get(list_key)
    if key not in record or not isinstance(codes, list):
        raise InputError(f"expected {key} and a list {list_key}")
    for number, code in enumerate(codes):
        if not isinstance(code, str):
            raise InputError(f"{list_key}[{number}] is not a string")
    return [(str(record[key]), code, False) for code in codes]


def sample_program(text: str, kind: str, rule: str = "best") -> str:
    """The program in a sample: raw model answers (with fenced blocks) go through extraction;
    plain code is taken as it is. Call and assert answers define functions, so for them the last
    fenced block that parses is taken (``extract_code`` looks for stdin/stdout programs)."""
    from librarybench_common import code_blocks, extract_code
    if "```" not in text:
        return text
    if kind == "stdio":
        return extract_code(text, rule=rule)
    blocks = [b for b in code_blocks(text) if b.strip()]
    parsing = [b for b in blocks if _parses(b)]
    chosen = (parsing or blocks or [""])[-1]
    return chosen.strip("\n") + "\n" if chosen else ""


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True
