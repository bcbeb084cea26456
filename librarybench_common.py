"""What the toolkit's scripts and notebooks share: loading problems, code extraction, the
execution calls (running tests on an executor: the remote API at ``CYBER_URL`` or the embedded
sandbox, chosen by ``executors.get_executor``), feedback formatting, the two global semaphores
(LLM calls, executions) and the seed's helpers. The executors themselves are in ``executors.py``,
atomic writes in ``atomic_io.py`` and reading problem records / selecting problems in
``problem_records.py``; their names are re-exported here for old imports.

The seed's helpers keep their names and positional signatures so existing notebooks work:
``extract_code``, ``create_test_cases_from_input_output``, ``run_unit_tests``,
``run_unit_tests_async``, ``format_feedback``, ``get_model_feedback``.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import os
import re
import threading
import warnings
from collections import Counter
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Sequence, TypeVar

from atomic_io import (  # noqa: F401  (the old names, kept importable)
    check_writable,
    current_umask,
    write_atomic_chunks,
    write_atomic_json,
    write_atomic_text,
)
import problem_kinds
from errors import ConfigError, ExecutionError, InputError, LibraryBenchError, problem_line
from executors import (  # noqa: F401  (re-exported: the toolkit's and notebooks' old names)
    DEFAULT_RETRIES,
    DEFAULT_RETRY_BACKOFF,
    DEFAULT_TIMEOUT,
    Executor,
    RemoteExecutor,
    close_executor,
    _last_exception_line,
    gather_all,
    get_executor,
    run_batched,
    local_executor,
    stop_executor,
    verdict_of,
)
from problem_records import (  # noqa: F401  (re-exported: reading records and selecting problems)
    ProblemSelection,
    create_test_cases_from_input_output,
    load_problems,
    match_model_key,
    model_key_candidates,
    parse_input_output,
    parse_json_list,
    parse_problem_selection,
    problem_name,
    problem_tests,
    resolve_model_key,
    select_problems,
    selected_indices,
    solution_keys,
)
from records import VERDICTS, Test, TestResult

log = logging.getLogger("librarybench")
T = TypeVar("T")
OnResult = Callable[[TestResult], None]  # called as each test finishes (progress bars)

DEFAULT_FEEDBACK_BUDGET = 6000  # characters of feedback shown to a model
DEFAULT_LLM_CONCURRENCY = 5
DEFAULT_EXEC_CONCURRENCY = 50

# --------------------------------------------------------------------------------------------
# The two global semaphores. asyncio primitives belong to one event loop, so each is created
# lazily for the running loop; the limits are process-wide and resizable from the CLI.
# --------------------------------------------------------------------------------------------

_limits = {"llm": DEFAULT_LLM_CONCURRENCY, "exec": DEFAULT_EXEC_CONCURRENCY}
_semaphores: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Semaphore]] = {}


def set_semaphore_limits(*, llm: int | None = None, exec: int | None = None) -> None:
    """Resize the global semaphores (takes effect for semaphores created afterwards)."""
    for name, value in (("llm", llm), ("exec", exec)):
        if value is not None:
            if value < 1:
                raise ConfigError(f"--{name}-semaphore must be at least 1, got {value}")
            _limits[name] = value
            _semaphores.pop(name, None)


def semaphore_limit(name: str) -> int:
    return _limits[name]


def _semaphore(name: str) -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    current = _semaphores.get(name)
    if current is None or current[0] is not loop:
        current = (loop, asyncio.Semaphore(_limits[name]))
        _semaphores[name] = current
    return current[1]


def llm_semaphore() -> asyncio.Semaphore:
    """Bounds concurrent model calls across all problems of a run."""
    return _semaphore("llm")


def exec_semaphore() -> asyncio.Semaphore:
    """Bounds concurrent test executions across all problems of a run."""
    return _semaphore("exec")


_permit_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}


@asynccontextmanager
async def exec_permits(n: int) -> AsyncIterator[None]:
    """``n`` permits of the execution semaphore at once (a batch of ``n`` tests in one request).

    Takers of several permits line up behind one lock, so two batches never hold part of what
    each needs (no deadlock); ``n`` must not exceed the semaphore's limit."""
    sem = exec_semaphore()
    loop = asyncio.get_running_loop()
    lock = _permit_locks.get(loop)
    if lock is None:
        _permit_locks.clear()  # one loop at a time: a finished loop's lock is garbage
        lock = _permit_locks[loop] = asyncio.Lock()
    held = 0
    try:
        async with lock:
            while held < n:
                await sem.acquire()
                held += 1
        yield
    finally:
        for _ in range(held):
            sem.release()


# --------------------------------------------------------------------------------------------
# Code extraction
# --------------------------------------------------------------------------------------------

EXTRACT_RULES = ("best", "first")
_DASH_LINE = re.compile(r"^[ \t]*-{5,}[ \t]*$")
_FENCE_OPEN = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+.-]*)[^\n`]*$")
_FENCE_CLOSE = re.compile(r"^[ \t]*```[ \t]*$")
_PY_TAGS = {"python", "py", "python3", "py3", ""}
_READS_INPUT = re.compile(r"\binput\s*\(|sys\.stdin|open\(\s*0|\bstdin\b")
_WRITES_OUTPUT = re.compile(r"\bprint\s*\(|sys\.stdout|\bstdout\b|\.write\s*\(")
# The seed's rule, kept to reproduce its recorded counts.
_SEED_DASHED = re.compile(r"-{5,}\n(.*?)-{5,}", re.DOTALL)
_SEED_FENCE = re.compile(r"```python\n(.*?)\n```", re.DOTALL)
_SEED_DEF = re.compile(r"class .*?:|def .*?:")


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _runs_something(tree: ast.Module) -> bool:
    """A top-level statement other than definitions, imports and docstrings: the module does work."""
    passive = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    for node in tree.body:
        if isinstance(node, passive):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        return True
    return False


def is_complete_program(code: str) -> bool:
    """A whole stdin/stdout program, not a fragment: it parses, reads stdin, prints and runs something."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return bool(_READS_INPUT.search(code)) and bool(_WRITES_OUTPUT.search(code)) and _runs_something(tree)


def fenced_blocks(solution: str) -> list[str]:
    """Bodies of fenced blocks tagged python/py/python3 or untagged, in order (unclosed: to the end)."""
    blocks: list[str] = []
    lines = solution.split("\n")
    i = 0
    while i < len(lines):
        opening = _FENCE_OPEN.match(lines[i])
        if not opening:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not _FENCE_CLOSE.match(lines[j]):
            j += 1
        if opening.group(1).lower() in _PY_TAGS:
            blocks.append("\n".join(lines[i + 1 : j]))
        i = j + 1
    return blocks


def dashed_segments(solution: str) -> list[str]:
    """Text between every pair of consecutive lines made of five or more dashes (o3-mini's style)."""
    lines = solution.split("\n")
    marks = [i for i, line in enumerate(lines) if _DASH_LINE.match(line)]
    return ["\n".join(lines[a + 1 : b]) for a, b in zip(marks, marks[1:])]


def code_blocks(solution: str) -> list[str]:
    """Candidate code blocks of an answer in order: fenced blocks, else the dashed segments."""
    return fenced_blocks(solution) or dashed_segments(solution)


def _extract_first(solution: str) -> str:
    """The seed's choice: first dashed block, else first ```python block, else from the first def/class."""
    for pattern in (_SEED_DASHED, _SEED_FENCE):
        match = pattern.search(solution)
        if match:
            return match.group(1)
    match = _SEED_DEF.search(solution)
    return solution[match.start() :] if match else solution


def _extract_best(solution: str) -> str:
    blocks = [b.strip("\n") for b in code_blocks(solution)]
    blocks = [b for b in blocks if b.strip()]
    if not blocks:
        bare = solution.strip()
        return bare + "\n" if is_complete_program(bare) else ""
    complete = [b for b in blocks if is_complete_program(b)]
    if complete:
        return complete[-1] + "\n"
    parseable = [b for b in blocks if _parses(b)]
    return max(parseable or blocks, key=len) + "\n"


def extract_code(solution: str | None, *, rule: str = "best") -> str:
    """Extract the program from a model's answer.

    ``rule="best"`` (default): the candidates are the fenced blocks (```python, ```py,
    ```python3 or bare ```), or, when there are none, every segment between two consecutive
    lines of five or more dashes (o3-mini's style, where a title such as "# Python solution"
    may sit between the first two dashed lines and the program between the next two). Among
    the candidates that are complete programs (they parse, read stdin, print, and run
    something at top level rather than only defining functions), take the *last*: models put
    their revised program last, while fragments (a helper, a usage example) are not complete.
    If no candidate is complete, take the longest one that parses, else the longest. An
    answer without blocks is returned whole when it is itself a complete program, else ``""``
    (no code: the answer then fails every test that expects output).

    ``rule="first"`` reproduces the seed's extraction, for comparison with its recorded counts:
    the first match of ``-{5,}\\n(.*?)-{5,}``, else the first ```python block, else the text
    from the first ``def``/``class``, else the whole answer.

    Measured on the shared real data (tests passed, embedded executor, 10 s timeout;
    ``tests/test_common_real_data.py`` checks them):

    =============================  =============  ============  ================
    file (answer key)              ``first``      ``best``      human_solution
    =============================  =============  ============  ================
    o3mini_search (o3_mini)        627 / 915      851 / 915     892 / 915
    claude_search (claude)         385 / 915      666 / 915     892 / 915
    o3mini_chess (o3_mini)         794 / 1082     988 / 1082    1034 / 1082
    =============================  =============  ============  ================

    The gains come from o3-mini answers whose first dashed block is a title or a comment-only
    explanation (search problem 2, chess problems 2 and 3) and from a Claude answer whose first
    program is a discarded draft (search problem 4). On every answer of these files "best"
    yields a complete program.
    """
    if not solution:
        return ""
    if rule == "first":
        return _extract_first(solution)
    if rule == "best":
        return _extract_best(solution)
    raise ConfigError(f"unknown extraction rule {rule!r}: use {' or '.join(EXTRACT_RULES)}")


def answer_program(record: dict[str, Any], key: str, *, rule: str = "best") -> str:
    """The program to run for ``record[key]``: human solutions are code already, model answers are extracted.

    A missing key or an answer that is not a string (``null``, a number, a list) raises
    ``InputError``: that is a bad record, not an empty program to be counted as failing.
    An answer that is a string without code gives ``""`` (the model wrote no program).
    """
    if not isinstance(record, dict) or key not in record:
        raise InputError(f"no {key!r} answer")
    answer = record[key]
    if not isinstance(answer, str):
        kind = "null" if answer is None else type(answer).__name__
        raise InputError(f"the {key!r} answer is {kind}, not a string")
    return answer if key == "human_solution" else extract_code(answer, rule=rule)


# --------------------------------------------------------------------------------------------
# Execution calls (the executors themselves: executors.py)
# --------------------------------------------------------------------------------------------


async def run_tests(code: str, tests: Sequence[Test], *, timeout: float | None = None, executor: Executor | None = None,
                    on_result: OnResult | None = None, judge: Any = None, fail_fast: bool = False,
                    memory_mb: int | None = None) -> list[TestResult]:
    """Run one program on its tests, each execution under the global execution semaphore.

    ``on_result(result)`` is called as each test finishes (progress bars). Raises
    ``ExecutionError`` when the executor fails (not a verdict about the program), or when a
    checker judge's program fails. ``judge`` (a ``judges.Judge``, default ``exact``) re-decides
    each stdin/stdout run that ended normally and is recorded in every result; call and assert
    tests are decided by ``problem_kinds``. ``fail_fast``: after the first test that does not
    pass, the tests not yet started get the verdict ``skipped`` (scoring runs need only whether
    all pass); at most as many tests as the executor has workers run at once then. ``memory_mb``:
    this program's memory limit (``problem_limits``), only for an executor with ``per_call_memory``.
    """
    import judges  # here, not at the top: it imports the sandbox, which remote-only use never needs

    executor = executor or get_executor()
    sem = exec_semaphore()
    timeout = timeout or DEFAULT_TIMEOUT
    judge = judge or judges.get_judge(judges.DEFAULT_JUDGE)
    failed = asyncio.Event()
    width = getattr(executor, "workers", None) or min(8, semaphore_limit("exec"))  # remote: 8 at a time
    turns = asyncio.Semaphore(width) if fail_fast else None
    memory = {"memory_mb": memory_mb} if memory_mb is not None else {}  # executors without it never see it

    async def one(test: Test) -> TestResult:
        if turns is None:
            return await run_one(test)
        async with turns:
            if failed.is_set():
                result = skipped_result(code, test)
                if on_result is not None:
                    on_result(result)
                return result
            result = await run_one(test)
            if not result.get("passed"):
                failed.set()
            return result

    limit = getattr(executor, "batch_limit", None)
    if limit is not None and len(tests) > 1 and not any(problem_kinds.is_kind_test(t) for t in tests):
        limit = await limit()
        if limit > 1:
            return await run_batched(code, list(tests), executor, timeout, judge, on_result, fail_fast, limit, memory_mb)

    async def run_one(test: Test) -> TestResult:
        async with sem:
            if problem_kinds.is_kind_test(test):  # call and assert tests run through their harness
                result = await problem_kinds.run_kind_test(executor, code, test, timeout, **memory)
            else:
                [result] = await executor.run_tests(code, [test], timeout=timeout, **memory)  # type: ignore[call-arg]
        if not problem_kinds.is_kind_test(test):
            result = await judges.judge_result(judge, result, executor=executor, semaphore=sem)  # type: ignore[assignment]
        if on_result is not None:
            on_result(result)
        return result

    return await gather_all([one(t) for t in tests], executor.name)


async def run_unit_tests_async(generations: list[str], stdin_stdout_tests: list[Test], *,
                               timeout: float | None = None, executor: Executor | None = None,
                               on_result: OnResult | None = None) -> list[list[TestResult]]:
    """Per generation, one result dict per test (the remote API's shape plus ``verdict``)."""
    executor = executor or get_executor()
    return await gather_all(
        [run_tests(g, stdin_stdout_tests, timeout=timeout, executor=executor, on_result=on_result) for g in generations],
        executor.name,
    )


def run_blocking(make: Callable[[], Awaitable[T]]) -> T:
    """Run ``make()`` to completion from synchronous code, whether or not this thread runs a loop.

    Without a running loop this is ``asyncio.run``. With one (a Jupyter cell, an async
    application) a running loop cannot be entered again, so the coroutine runs under
    ``asyncio.run`` in a private thread while the caller waits; an interrupt while waiting
    (Ctrl-C, the notebook's stop button) cancels it there and is raised here.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_awaited(make))
    return _run_in_private_loop(make)


async def _awaited(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def _run_in_private_loop(make: Callable[[], Awaitable[T]]) -> T:
    box: dict[str, Any] = {}
    started = threading.Event()

    async def main() -> T:
        box["loop"], box["task"] = asyncio.get_running_loop(), asyncio.current_task()
        started.set()
        return await make()

    def target() -> None:
        try:
            box["result"] = asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc
        finally:
            started.set()

    thread = threading.Thread(target=target, name="librarybench-blocking-call", daemon=True)
    thread.start()
    try:
        thread.join()
    except BaseException:
        started.wait()
        loop, task = box.get("loop"), box.get("task")
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
        thread.join()
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]


def run_unit_tests(generations: list[str], stdin_stdout_tests: list[Test], *, timeout: float | None = None,
                   executor: Executor | None = None, on_result: OnResult | None = None) -> list[list[TestResult]]:
    """Blocking wrapper of ``run_unit_tests_async`` for scripts and notebooks.

    It works whether or not an event loop is running in the calling thread: in Jupyter, where
    one always is, the tests run on a private loop in a helper thread (``run_blocking``). In a
    notebook cell ``await run_unit_tests_async(...)`` does the same on the notebook's own loop.
    """
    executor = executor or get_executor()
    return run_blocking(lambda: run_unit_tests_async(generations, stdin_stdout_tests, timeout=timeout,
                                                     executor=executor, on_result=on_result))


def count_passed(results: Iterable[dict[str, Any]]) -> int:
    return sum(1 for r in results if r.get("passed"))


SKIPPED = "skipped"  # not run (``--fail-fast`` after a failure): never counted as a failure
REPORTED_VERDICTS = (*VERDICTS, SKIPPED)


def skipped_result(code: str, test: Test) -> TestResult:
    """The result of a test that was not run, in the remote API's shape."""
    run = {"stdout": "", "stderr": "", "exit_code": None, "timeout_expired": False, "elapsed_time": 0.0}
    return {"code": code, "test": test, "passed": False, "exec_output": {"run_output": run, "compile_output": None},
            "uncaught_exception": "None", "verdict": SKIPPED}  # type: ignore[typeddict-item]


def count_verdicts(results: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Verdict -> count, in ``records.VERDICTS`` order (then ``skipped``), zero counts omitted."""
    counts = Counter(SKIPPED if r.get("verdict") == SKIPPED else verdict_of(r) for r in results)
    return {v: counts[v] for v in REPORTED_VERDICTS if counts[v]}


# --------------------------------------------------------------------------------------------
# Feedback for a model's prompt
# --------------------------------------------------------------------------------------------


def cut_middle(text: str, limit: int) -> str:
    """Keep the head and tail of ``text`` within ``limit`` characters, with a marker saying how much was cut.

    The result is never longer than ``limit`` unless ``limit`` is too small to hold the marker itself.
    """
    if len(text) <= limit:
        return text
    marker_len = len(f"\n... [{len(text)} characters cut] ...\n")
    keep = max(limit - marker_len, 0)
    head, tail = text[: (keep + 1) // 2], text[len(text) - keep // 2 :] if keep // 2 else ""
    return f"{head}\n... [{len(text) - len(head) - len(tail)} characters cut] ...\n{tail}"


def first_difference(expected: str, actual: str) -> str | None:
    """Where actual stdout first departs from expected, by the service's comparison rule (None: no difference)."""
    exp = [line.rstrip() for line in expected.rstrip().split("\n")]
    act = [line.rstrip() for line in actual.rstrip().split("\n")]
    for i, (e, a) in enumerate(zip(exp, act), 1):
        if e != a:
            return f"line {i}: expected {cut_middle(e, 200)!r}, got {cut_middle(a, 200)!r}"
    if len(exp) != len(act):
        n = min(len(exp), len(act)) + 1
        if len(exp) > len(act):
            return f"line {n}: expected {cut_middle(exp[n - 1], 200)!r}, got end of output ({len(act)} lines, expected {len(exp)})"
        return f"line {n}: expected end of output ({len(exp)} lines), got {cut_middle(act[n - 1], 200)!r}"
    return None


def traceback_tail(stderr: str, lines: int = 8) -> str:
    """The last lines of a traceback: where it failed and the exception, which is what a model needs."""
    return "\n".join(stderr.rstrip().split("\n")[-lines:])


# Lines of the import header both executors put before the program (the remote API with
# ``fill_missing_imports=true``, the embedded sandbox by default): tracebacks count them.
HEADER_LINES = 15
# At most 9 digits: a traceback is the program's own text, and int() refuses more than 4300 digits
# (a program printing such a line crashed the feedback of the whole run).
_MAIN_LINE = re.compile(r'File "(?:[^"]*/)?main\.py", line (\d{1,9})(?!\d)')
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
_TEMP_PATH = re.compile(r'File "(?:/tmp|/var/folders|/private/var)/[^"]*?/([^"/]+\.py)"')


def _header_lines() -> int:
    try:
        from sandbox import IMPORT_HEADER
    except ImportError:  # pragma: no cover - sandbox is part of the project
        return HEADER_LINES
    return IMPORT_HEADER.count("\n")


def program_line_numbers(stderr: str, header_lines: int | None = None) -> str:
    """``File "main.py", line N`` in a traceback counts the import header the executor put before
    the program; give the program's own line number instead (lines inside the header are kept)."""
    offset = _header_lines() if header_lines is None else header_lines
    if offset <= 0:
        return stderr

    def own(match: re.Match[str]) -> str:
        number = int(match.group(1))
        return f'File "main.py", line {number - offset}' if number > offset else match.group(0)

    return _MAIN_LINE.sub(own, stderr)


def deterministic_text(text: str) -> str:
    """Text shown to a model must not vary between identical runs (it is part of the cache key):
    memory addresses and temporary paths are replaced by fixed placeholders."""
    text = _TEMP_PATH.sub(lambda m: f'File "{m.group(1)}"', text)
    return _ADDRESS.sub("0x…", text)


def cut_head(text: str, limit: int) -> str:
    """Keep the end of ``text`` (a traceback's exception line) within ``limit`` characters, with a marker."""
    if len(text) <= limit:
        return text
    keep = max(limit - len(f"... [{len(text)} characters cut] ...\n"), 0)
    return f"... [{len(text) - keep} characters cut] ...\n{text[len(text) - keep:] if keep else ''}"


def _field(label: str, text: str, limit: int, keep_end: bool = False) -> str:
    """``label:`` on its own line, then the text ending in exactly one newline; nothing is ``(empty)``."""
    if not text:
        return f"{label}: (empty)\n"
    body = cut_head(text, limit) if keep_end else cut_middle(text, limit)
    return f"{label}:\n{body}" + ("" if body.endswith("\n") else "\n")


def _describe_test(index: int, test: Test, result: dict[str, Any], field_limit: int,
                   header_lines: int | None = None, alike: list[int] | None = None) -> str:
    verdict = verdict_of(result)
    run = (result.get("exec_output") or {}).get("run_output") or {}
    stdout = deterministic_text(run.get("stdout") or "")
    stderr = deterministic_text(program_line_numbers(run.get("stderr") or "", header_lines))
    title = f"Test #{index}: FAILED ({verdict})"
    if alike:
        title += f"; {len(alike)} more test{'s' if len(alike) > 1 else ''} fail{'' if len(alike) > 1 else 's'} " \
                 f"the same way: {cut_middle(_index_ranges(alike), max(40, field_limit // 2))}"
    parts = [title + "\n"]
    kind_parts = problem_kinds.feedback_parts(test, result, cut_middle, field_limit)
    if kind_parts is not None:
        parts.extend(kind_parts)
        if verdict not in ("timeout", "wrong_answer") and stdout.strip():
            parts.append(_field("Program output", stdout, field_limit))
    elif isinstance(test, str):
        parts.append(_field("Test code", test, field_limit))
    else:
        parts.append(_field("Input", test["stdin"], field_limit))
        parts.append(_field("Expected output", test["stdout"], field_limit))
        if verdict == "timeout":
            # What a killed program printed depends on when it was killed: not shown, so that the
            # same program always gets the same feedback (and the same cached model response).
            parts.append("Actual output: (not shown: the program was stopped at the time limit)\n")
        else:
            parts.append(_field("Actual output", stdout, field_limit))
        if verdict == "wrong_answer":
            name = (result.get("judge") or {}).get("name", "exact")
            judged = name != "exact" and result.get("judge_reason")
            if judged:  # the judge's own reason, under its own label (it is not a differing line)
                parts.append(f"Judge ({name}): {deterministic_text(str(judged))}\n")
            elif diff := first_difference(test["stdout"], stdout):
                parts.append(f"First difference: {diff}\n")
    if verdict == "timeout":
        parts.append("The program did not finish within the time limit.\n")
    elif stderr.strip():
        parts.append(_field("Error (last lines)", traceback_tail(stderr), field_limit, keep_end=True))
    return "".join(parts) + "-" * 40 + "\n"


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _shape(line: str) -> str:
    """A line with its numbers abstracted: ``-1`` and ``-10`` have the same shape, ``YES`` and ``NO`` do not."""
    return _NUMBER.sub("N", line.strip())[:60]


def failure_signature(test: Test, result: dict[str, Any], header_lines: int | None = None) -> tuple[str, str]:
    """(verdict, detail): tests with the same signature fail the same way, so one example shows them all.

    A crash is its verdict and the last traceback line (the exception); a wrong answer is the
    pattern of its first difference (missing output, output ending early or running long, or the
    shapes of the expected and actual line, numbers abstracted); a timeout or a limit is its verdict.
    """
    verdict = verdict_of(result)
    run = (result.get("exec_output") or {}).get("run_output") or {}
    if verdict in ("runtime_error", "memory_limit"):
        stderr = deterministic_text(program_line_numbers(run.get("stderr") or "", header_lines))
        return verdict, cut_middle(_last_exception_line(stderr), 200)
    if problem_kinds.is_kind_test(test):  # call and assert tests: each shown on its own
        return verdict, json.dumps(test, sort_keys=True, default=str)[:300]
    if verdict != "wrong_answer" or isinstance(test, str):
        return verdict, ""
    expected = [line.rstrip() for line in test["stdout"].rstrip().split("\n")]
    actual_text = (run.get("stdout") or "").rstrip()
    if not actual_text:
        return verdict, "no output"
    actual = [line.rstrip() for line in actual_text.split("\n")]
    for e, a in zip(expected, actual):
        if e != a:
            return verdict, f"expected a line like {_shape(e)!r}, got one like {_shape(a)!r}"
    return verdict, "output ends early" if len(actual) < len(expected) else "output runs past the expected end"


def _group_line(members: list[tuple[int, Test, dict[str, Any]]], signature: tuple[str, str], limit: int) -> str:
    numbers = cut_middle(_index_ranges([i for i, _, _ in members]), max(40, limit // 2))
    detail = f": {signature[1]}" if signature[1] else ""
    return f"- {len(members)} test{'s' if len(members) > 1 else ''} ({numbers}) FAILED ({signature[0]}){detail}\n"


def _index_ranges(indices: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``#1-#3, #7``: compact lists of test numbers."""
    spans: list[str] = []
    start = prev = None
    for i in indices + [None]:  # type: ignore[list-item]
        if start is not None and (i is None or i != prev + 1):
            spans.append(f"#{start}" if start == prev else f"#{start}-#{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(spans)


def format_feedback(test_results: list[dict[str, Any]], test_cases: list[Test], passed_count: int,
                    total_count: int, *, budget: int = DEFAULT_FEEDBACK_BUDGET, header_lines: int | None = None) -> str:
    """Feedback that fits a prompt, at most ``budget`` characters.

    A header with the counts per verdict, then the failing tests grouped by how they fail
    (``failure_signature``: the verdict and the exception, or the pattern of the first
    difference): one example per group, in the order the groups first fail, with the numbers of
    the other tests that fail the same way. So the budget goes to distinct failures rather than
    repeats. Each example gives the input, expected and actual output (each cut in the middle
    with a marker; empty ones shown as ``(empty)``), the first differing line and the tail of
    the traceback. Groups whose example does not fit are still listed, one line each, while room
    remains; the rest are counted. The first example is always shown, squeezed if need be. The
    passing tests are only listed by number.

    The text is deterministic (the same results give the same text): no elapsed times, no output
    of a timed-out run, memory addresses and temporary paths replaced. Traceback lines
    ``File "main.py", line N`` are given in the program's own numbering: the executors run the
    import header (``header_lines`` lines, default that of ``sandbox.IMPORT_HEADER``) before it;
    pass ``header_lines=0`` for results of an executor run without the header.
    """
    budget = max(budget, 200)
    verdicts = count_verdicts(test_results)
    summary = ", ".join(f"{v}: {n}" for v, n in verdicts.items())
    out = f"Test Results: {passed_count}/{total_count} tests passed ({summary})\n\n"
    failing = [(i, t, r) for i, (t, r) in enumerate(zip(test_cases, test_results), 1) if not r.get("passed")]
    groups: dict[tuple[str, str], list[tuple[int, Test, dict[str, Any]]]] = {}
    for item in failing:
        groups.setdefault(failure_signature(item[1], item[2], header_lines), []).append(item)
    if len(groups) < len(failing):
        out += (f"{len(failing)} failing tests, {len(groups)} distinct failures: one example of each.\n\n"
                if len(groups) > 1 else f"{len(failing)} failing tests, all failing the same way: one example.\n\n")
    per_group = (budget - len(out)) // max(1, min(len(groups), 6))
    field_limit = max(80, min(600, per_group // 5))
    shown = 0
    listed: list[str] = []
    ordered = list(groups.items())
    for n, (signature, members) in enumerate(ordered):
        i, test, result = members[0]
        alike = [m[0] for m in members[1:]]
        rest = len(ordered) - n - 1
        reserve = min(rest, 3) * 90 + (60 if rest else 0)  # room to at least list a few of the next groups
        section = _describe_test(i, test, result, field_limit, header_lines, alike)
        if len(out) + len(section) + reserve <= budget:
            out += section
            shown += 1
            continue
        if shown == 0:  # always show one failure, squeezed into the budget
            room = budget - len(out) - reserve
            section = _describe_test(i, test, result, max(40, room // 6), header_lines, alike)
            out += section if len(section) <= room else section[: max(0, room - 4)] + "...\n"
            shown = 1
            continue
        line = _group_line(members, signature, field_limit)
        if len(out) + sum(map(len, listed)) + len(line) + 60 > budget:
            break
        listed.append(line)
    if listed:
        out += "Also failing:\n" + "".join(listed)
    hidden = len(ordered) - shown - len(listed)
    if hidden > 0:
        tests_hidden = sum(len(m) for _, m in ordered[shown + len(listed):])
        out += (f"... {hidden} more way{'s' if hidden > 1 else ''} of failing ({tests_hidden} tests) not shown "
                f"(feedback budget {budget} characters)\n")
    passing = [i for i, r in enumerate(test_results, 1) if r.get("passed")]
    if passing and len(out) < budget - 40:
        out += f"Passed: {cut_middle(_index_ranges(passing), budget - len(out) - 10)}\n"
    return out[:budget]


def get_model_feedback(solution_file: str, problem_id: int | None = None, model_name: str | None = None, *,
                       timeout: float | None = None, executor: Executor | None = None, budget: int = DEFAULT_FEEDBACK_BUDGET,
                       rule: str = "best") -> tuple[str, list[list[TestResult]]]:
    """Run a model's answers in a solution file: (feedback text, results per evaluated problem).

    ``problem_id`` None means every problem; ``model_name`` is a key (``o3_mini_solution``) or
    its stem (``o3_mini``), default the record's first ``*_solution`` key other than the human one.
    A bad record, a problem id out of range or an executor failure is logged as one line (file
    and index) and that problem skipped; the other problems are still evaluated, all in one
    event loop.
    """
    records = load_problems(solution_file)
    indices, problems = select_problems(len(records), None if problem_id is None else [problem_id], solution_file)
    for _index, error in problems:
        log.error("%s", error)
    executor = executor or get_executor()

    async def one(index: int) -> tuple[str, list[TestResult]] | None:
        record = records[index]
        try:
            tests = problem_tests(record, index, solution_file)
            key = resolve_model_key(record, model_name)
            code = answer_program(record, key, rule=rule)
            results = await run_tests(code, tests, timeout=timeout, executor=executor)
        except (InputError, ExecutionError) as exc:
            log.error("%s", problem_message(solution_file, index, exc))
            return None
        passed = count_passed(results)
        return format_feedback(results, tests, passed, len(tests), budget=budget), results

    async def run_all() -> list[tuple[str, list[TestResult]] | None]:
        return list(await asyncio.gather(*(one(i) for i in indices)))

    done = [item for item in run_blocking(run_all) if item is not None]
    return "\n".join(f for f, _ in done), [r for _, r in done]


def problem_message(path: str | os.PathLike[str], index: int, error: Any) -> str:
    """``<file>: problem <i>: <message>`` (``errors.problem_line``). An error that is already
    located (its ``file``/``index`` fields are set) keeps its own place."""
    if isinstance(error, LibraryBenchError):
        return str(error.at(path, index))
    return problem_line(path, index, error)


def report_problem_error(path: str | os.PathLike[str], index: int, error: Any) -> None:
    """The one line every CLI prints for a problem that ended in error (stderr, whatever the log level)."""
    report_error_line(problem_message(path, index, error))


def report_error_line(line: str) -> None:
    """Print ``error: <line>`` on stderr, e.g. a line of ``select_problems`` (already located)."""
    import sys

    print(f"error: {line}", file=sys.stderr, flush=True)


def report_warning_line(line: str) -> None:
    """Print ``warning: <line>`` on stderr: the one format of every script's warnings."""
    import sys

    print(f"warning: {line}", file=sys.stderr, flush=True)


def average(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none (never a made-up 0.0)."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def load_env() -> str | None:
    """Read ``.env`` from the current directory or a parent into the environment (the environment
    wins over the file). Every CLI calls this first, so ``CYBER_URL``, keys and base URLs set in
    ``.env`` apply to model_feedback, iterative_repair and the comparison alike. Returns the path."""
    from dotenv import dotenv_values, find_dotenv

    path = find_dotenv(usecwd=True)
    if not path:
        return None
    own = os.path.dirname(os.path.abspath(path)) == os.path.dirname(os.path.abspath(__file__))
    for name, value in dotenv_values(path).items():
        if name in os.environ or value is None:
            continue
        if name in WEAKENING_SETTINGS and not own:
            # A .env the project does not own (a parent directory's, a shared checkout's) may not
            # weaken the sandbox: only the command line, the environment or the project's .env can.
            warnings.warn(f"{path}: {name} ignored: settings that weaken isolation are read only "
                          f"from the environment or the project's own .env", RuntimeWarning,
                          stacklevel=2)
            continue
        os.environ[name] = value
    return path


# Settings that weaken what the sandbox guarantees.
WEAKENING_SETTINGS = frozenset({"LIBRARYBENCH_ISOLATION"})
