"""The embedded executor: runs untrusted Python programs against tests on this machine.

Owns: process isolation, resource limits, the import header, output comparison and verdicts.
Results have the remote execution API's shape (see ``records.TestResult``).

NOTE: this first version starts one fresh ``python3`` per test (the benchmark's baseline);
the warm forking workers and namespace isolation replace its internals behind the same API.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from records import RunOutput, Test, TestResult, Verdict

IMPORT_HEADER = """from collections import *
from typing import *
import collections
import copy
import functools
import hashlib
import heapq
import itertools
import math
import numpy
import numpy as np
import re
import statistics
import string
import sys
"""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-test limits. ``cpu_time`` defaults to the wall-clock timeout plus one second."""

    timeout: float = 10.0
    cpu_time: float | None = None
    memory_mb: int = 1024
    output_bytes: int = 1_000_000


def normalize_output(text: str) -> str:
    """The remote service's comparison rule: strip trailing whitespace per line and overall."""
    return "\n".join(line.rstrip() for line in text.rstrip().split("\n"))


def outputs_match(actual: str, expected: str) -> bool:
    return normalize_output(actual) == normalize_output(expected)


def with_header(code: str, import_header: bool = True) -> str:
    return IMPORT_HEADER + code if import_header else code


def classify(run: RunOutput, test: Test, output_capped: bool, memory_exceeded: bool) -> Verdict:
    """Map a finished run to a verdict; the order matters (a timeout also has a bad exit code)."""
    if run["timeout_expired"]:
        return "timeout"
    if output_capped:
        return "output_limit"
    if memory_exceeded:
        return "memory_limit"
    if run["exit_code"] != 0:
        return "runtime_error"
    if isinstance(test, str):
        return "passed"
    return "passed" if outputs_match(run["stdout"], test["stdout"]) else "wrong_answer"


def make_result(code: str, test: Test, run: RunOutput, verdict: Verdict) -> TestResult:
    return {
        "code": code,
        "test": test,
        "passed": verdict == "passed",
        "exec_output": {"run_output": run, "compile_output": None},
        "uncaught_exception": "None",
        "verdict": verdict,
    }


def _limit_child(limits: SandboxLimits, timeout: float) -> None:
    os.setsid()
    cpu = int(limits.cpu_time or timeout + 1)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    mem = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))


def run_one_fresh(code: str, test: Test, limits: SandboxLimits, import_header: bool = True,
                  timeout: float | None = None) -> TestResult:
    """Run one test in a fresh interpreter (the baseline: ~250 ms of start-up per test)."""
    timeout = timeout or limits.timeout
    full = with_header(code, import_header)
    program = full + ("\n" + test if isinstance(test, str) else "")
    stdin = "" if isinstance(test, str) else test["stdin"]
    workdir = tempfile.mkdtemp(prefix="lb-")
    try:
        with open(os.path.join(workdir, "main.py"), "w") as fh:
            fh.write(program)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "PYTHONHASHSEED": "0"}
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "main.py"], cwd=workdir, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=lambda: _limit_child(limits, timeout),
        )
        expired = False
        try:
            out, err = proc.communicate(stdin.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            expired = True
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        elapsed = time.monotonic() - start
        capped = len(out) > limits.output_bytes or len(err) > limits.output_bytes
        run: RunOutput = {
            "stdout": out[: limits.output_bytes].decode("utf-8", "replace"),
            "stderr": err[: limits.output_bytes].decode("utf-8", "replace"),
            "exit_code": proc.returncode,
            "timeout_expired": expired,
            "elapsed_time": round(elapsed, 4),
        }
        memory = "MemoryError" in run["stderr"]
        return make_result(full, test, run, classify(run, test, capped, memory))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class LocalExecutor:
    """The embedded executor. Thread-safe; ``run_tests`` is the async entry point."""

    name = "local"

    def __init__(self, *, workers: int | None = None, limits: SandboxLimits = SandboxLimits(),
                 import_header: bool = True) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.limits = limits
        self.import_header = import_header
        self._slots: asyncio.Semaphore | None = None

    @property
    def isolation(self) -> str:
        return "rlimits+setsid (fresh interpreter per test)"

    def run_test(self, code: str, test: Test, *, timeout: float | None = None) -> TestResult:
        return run_one_fresh(code, test, self.limits, self.import_header, timeout)

    async def run_tests(self, code: str, tests: list[Test], *, timeout: float | None = None) -> list[TestResult]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)

        async def one(test: Test) -> TestResult:
            async with self._slots:
                return await asyncio.to_thread(self.run_test, code, test, timeout=timeout)

        return list(await asyncio.gather(*(one(t) for t in tests)))

    def close(self) -> None:
        pass
