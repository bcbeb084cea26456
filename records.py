"""Typed records shared by the scripts: tests, per-test results (the remote API's shape) and verdicts."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

Verdict = Literal["passed", "wrong_answer", "runtime_error", "timeout", "memory_limit", "output_limit"]
VERDICTS: tuple[Verdict, ...] = (
    "passed",
    "wrong_answer",
    "runtime_error",
    "timeout",
    "memory_limit",
    "output_limit",
)


class StdioTest(TypedDict):
    """One stdin/stdout test; assert-style tests are plain strings instead."""

    stdin: str
    stdout: str


Test = StdioTest | str


class RunOutput(TypedDict):
    stdout: str
    stderr: str
    exit_code: int | None
    timeout_expired: bool
    elapsed_time: float


class ExecOutput(TypedDict):
    run_output: RunOutput
    compile_output: None


class TestResult(TypedDict):
    """One test's result in the remote execution API's shape, plus the toolkit's ``verdict``, the
    judge that decided it (``judges.JudgeSpec.as_dict()``) and, for a judged run, its reason."""

    code: str
    test: Test
    passed: bool
    exec_output: ExecOutput
    uncaught_exception: str
    verdict: Verdict
    judge: NotRequired[dict[str, Any]]
    judge_reason: NotRequired[str]
