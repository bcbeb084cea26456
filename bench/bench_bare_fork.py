"""Benchmark: the executor against a bare fork from a warm interpreter (no isolation at all).

The bare side is the least a warm forking runner can do: N interpreters that imported the
header once, each forking one child per test that runs the program on memfd stdio and exits,
with no namespaces, seccomp filter, cgroup, uid switch, limits, work dir or clean-up. Its host
side has the executor's shape (``async run_tests(code, tests)``, one thread per busy worker), so
the ratio measures what isolation and integrity cost per test. Three kinds of work, each timed
alternately on both in ``--rounds`` chunks so that both see the same machine load:
  1. stdin/stdout: the o3-mini answers of the shared data, one ``run_tests`` batch per program;
  2. one test per program (HumanEval-like): every test of the same sample as its own program,
     one ``run_tests(code, [test])`` call each, all at once;
  3. a trivial program (``pass``), one call per test.
It prints, per kind, the time of each and the ratio bare time / executor time (1.0: isolation
is free; the target is 0.8 or better).

    uv run python bench/bench_bare_fork.py [--programs N] [--rounds N] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from bench_executor import DEFAULT_FILE, count, load_jobs  # noqa: E402
from records import StdioTest  # noqa: E402
from sandbox import LocalExecutor, outputs_match, with_header  # noqa: E402
from sandbox_worker import IMPORT_HEADER, WORKER_ENV  # noqa: E402

# The bare worker: import the header, then per job fork a child that runs the program on memfd
# stdio. Jobs and results travel as length-prefixed JSON over its stdin and stdout pipes.
BARE_WORKER = r'''
import gc, io, json, os, struct, sys, types, builtins
exec(compile(sys.argv[1], "<header>", "exec"), {})
channel_in, channel_out = os.dup(0), os.dup(1)
gc.collect(); gc.freeze()

def read_exact(n):
    data = b""
    while len(data) < n:
        chunk = os.read(channel_in, n - len(data))
        if not chunk:
            os._exit(0)
        data += chunk
    return data

def memfd(data=b""):
    fd = os.memfd_create("bare")
    os.write(fd, data)
    os.lseek(fd, 0, 0)
    return fd

while True:
    job = json.loads(read_exact(struct.unpack("<I", read_exact(4))[0]))
    fds = [memfd(job["stdin"].encode()), memfd(), memfd()]
    pid = os.fork()
    if pid == 0:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        sys.stdin = io.TextIOWrapper(io.open(0, "rb", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.open(1, "wb", closefd=False), encoding="utf-8")
        sys.stderr = io.TextIOWrapper(io.open(2, "wb", closefd=False), encoding="utf-8",
                                      line_buffering=True)
        main = types.ModuleType("__main__")
        main.__builtins__ = builtins
        sys.modules["__main__"] = main
        status = 0
        try:
            exec(compile(job["source"], "main.py", "exec"), main.__dict__)
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except BaseException:
            import traceback
            traceback.print_exc()
            status = 1
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(status & 0xFF)
    _, status = os.waitpid(pid, 0)
    out, err = (os.pread(fd, 1 << 20, 0).decode("utf-8", "replace") for fd in fds[1:])
    for fd in fds:
        os.close(fd)
    body = json.dumps({"stdout": out, "stderr": err, "exit_code": os.waitstatus_to_exitcode(status)}).encode()
    os.write(channel_out, struct.pack("<I", len(body)) + body)
'''


class BareForkPool:
    """``workers`` warm interpreters forking a child per test; the executor's async shape."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        env = {**WORKER_ENV, "HOME": "/tmp"}
        self._procs = [subprocess.Popen([sys.executable, "-c", BARE_WORKER, IMPORT_HEADER],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
                       for _ in range(workers)]
        self._idle: queue.Queue[subprocess.Popen[bytes]] = queue.Queue()
        for proc in self._procs:
            self._idle.put(proc)

    def close(self) -> None:
        for proc in self._procs:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait()

    @staticmethod
    def _run(proc: subprocess.Popen[bytes], source: str, stdin: str) -> dict[str, object]:
        assert proc.stdin is not None and proc.stdout is not None
        body = json.dumps({"source": source, "stdin": stdin}).encode()
        proc.stdin.write(struct.pack("<I", len(body)) + body)
        proc.stdin.flush()
        size = struct.unpack("<I", proc.stdout.read(4))[0]
        return json.loads(proc.stdout.read(size))

    async def run_tests(self, code: str, tests: list[StdioTest]) -> list[str]:
        """Verdicts only (passed / wrong_answer / runtime_error), test order kept."""
        verdicts: list[str] = [""] * len(tests)
        indexes = iter(range(len(tests)))
        taking = threading.Lock()
        source = with_header(code)

        def drain() -> None:
            proc = self._idle.get()
            try:
                while True:
                    with taking:
                        index = next(indexes, None)
                    if index is None:
                        return
                    result = self._run(proc, source, tests[index]["stdin"])
                    verdicts[index] = ("runtime_error" if result["exit_code"] != 0 else
                                       "passed" if outputs_match(str(result["stdout"]), tests[index]["stdout"])
                                       else "wrong_answer")
            finally:
                self._idle.put(proc)

        await asyncio.gather(*(asyncio.to_thread(drain) for _ in range(min(self.workers, len(tests)))))
        return verdicts


Job = tuple[str, StdioTest]


def time_batches(runner: LocalExecutor | BareForkPool, batches: list[tuple[str, list[StdioTest]]],
                 timeout: float) -> tuple[float, dict[str, int]]:
    """All batches at once (the workers are the only limit); (seconds, verdict counts)."""
    async def one(code: str, tests: list[StdioTest]) -> list[str]:
        if isinstance(runner, BareForkPool):
            return await runner.run_tests(code, tests)
        return [r["verdict"] for r in await runner.run_tests(code, tests, timeout=timeout)]

    async def run_all() -> list[str]:
        return [v for verdicts in await asyncio.gather(*(one(c, t) for c, t in batches)) for v in verdicts]

    start = time.perf_counter()
    verdicts = asyncio.run(run_all())
    return time.perf_counter() - start, count(verdicts)


def alternate(executor: LocalExecutor, bare: BareForkPool, batches: list[tuple[str, list[StdioTest]]],
              rounds: int, timeout: float) -> tuple[float, float, dict[str, int], dict[str, int]]:
    exec_s = bare_s = 0.0
    exec_v: dict[str, int] = {}
    bare_v: dict[str, int] = {}
    for index in range(rounds):
        chunk = batches[index::rounds]
        if not chunk:
            continue
        for runner, totals in ((executor, exec_v), (bare, bare_v)):
            seconds, verdicts = time_batches(runner, chunk, timeout)
            for key, value in verdicts.items():
                totals[key] = totals.get(key, 0) + value
            if runner is executor:
                exec_s += seconds
            else:
                bare_s += seconds
    return exec_s, bare_s, exec_v, bare_v


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--answer-key", default="o3_mini_solution")
    parser.add_argument("--programs", type=int, default=60, help="programs of the file (default: %(default)s)")
    parser.add_argument("--trivial-tests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    if not args.file.is_file():
        print(f"error: no solutions file at {args.file} (use --file)", file=sys.stderr)
        return 2
    grouped: dict[str, list[StdioTest]] = {}
    for code, test in load_jobs(args.file, args.answer_key):
        grouped.setdefault(code, []).append(test)
    batches = list(grouped.items())[: args.programs]
    singles = [(code + f"\n# program {i}\n", [test]) for i, (code, tests) in enumerate(batches)
               for test in tests]
    trivial = [(f"pass  # {i}", [{"stdin": "", "stdout": ""}]) for i in range(args.trivial_tests)]
    with LocalExecutor(workers=args.workers) as executor:
        bare = BareForkPool(executor.workers)
        try:
            print(f"workers: {executor.workers}; isolation: {executor.isolation}")
            print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
            time_batches(executor, trivial[:20], args.timeout)  # warm-up of both, not measured
            time_batches(bare, trivial[:20], args.timeout)
            for label, work in (("stdin/stdout, one batch per program", batches),
                                ("one test per program (HumanEval-like)", singles),
                                ("trivial 'pass', one call per test", trivial)):
                tests = sum(len(t) for _, t in work)
                exec_s, bare_s, exec_v, bare_v = alternate(executor, bare, work, args.rounds, args.timeout)
                print(f"{label}: {tests} tests; executor {exec_s:.2f} s {exec_v}; bare fork {bare_s:.2f} s "
                      f"{bare_v}; ratio bare/executor {bare_s / exec_s:.2f}")
        finally:
            bare.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
