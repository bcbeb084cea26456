"""Benchmark: does the repair loop keep the model busy while tests run?

Starts the scripted model server on 127.0.0.1 answering every call after a fixed delay with a
new wrong program (so no problem reaches its target and every iteration calls the model), runs
a batch of tiny problems through ``iterative_repair`` with real execution, and prints the batch
time next to the lower bound ``calls x delay / LLM concurrency``. Target: ratio <= 1.3.

    uv run python bench/bench_repair.py [--problems 40] [--iterations 3] [--delay 0.5] [--llm 5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import iterative_repair  # noqa: E402
from fake_llm_server import FakeLLMServer, FakeReply, fenced  # noqa: E402


def make_problems(count: int, tests: int) -> list[dict]:
    """``count`` copies of "print a + b" (told apart by a tag), starting from a wrong answer."""
    pairs = [(i, i + 1) for i in range(tests)]
    io = {"inputs": [f"{a} {b}\n" for a, b in pairs], "outputs": [f"{a + b}\n" for a, b in pairs]}
    return [{"problem": f"BENCH-{n}: read two integers, print their sum.", "input_output": io,
             "sample_solution": fenced("a, b = map(int, input().split())\nprint(a - b)")} for n in range(count)]


def wrong_answers():
    """A distinct wrong program per call, so each is executed (no program-hash cache hit)."""
    counter = itertools.count(1)
    return lambda request: FakeReply(fenced(f"a, b = map(int, input().split())\nprint(a * b + 1000 + {next(counter)})"))


class InstantExecutor:
    """Answers every test at once (wrong answer): isolates the loop's own overhead from the
    sandbox's CPU cost, which on a small machine can exceed the model time."""

    name = "instant"
    isolation = "none (no program is run)"

    def close(self) -> None:
        pass

    async def run_tests(self, code, tests, *, timeout=None):
        return [{"code": code, "test": t, "passed": False, "verdict": "wrong_answer", "uncaught_exception": "None",
                 "exec_output": {"run_output": {"stdout": "0\n", "stderr": "", "exit_code": 0,
                                                "timeout_expired": False, "elapsed_time": 0.0},
                                 "compile_output": None}} for t in tests]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--problems", type=int, default=40, help="problems in the batch (default: 40)")
    p.add_argument("--tests", type=int, default=10, help="tests per problem, really executed (default: 10)")
    p.add_argument("--iterations", type=int, default=3, help="--max-iterations; the scripted model never reaches the target, so every iteration calls it (default: 3)")
    p.add_argument("--delay", type=float, default=0.5, help="seconds the model server takes per call (default: 0.5)")
    p.add_argument("--llm", type=int, default=5, help="--llm-semaphore (default: 5)")
    p.add_argument("--concurrent-problems", type=int, default=20, help="--concurrent-problems; at least the LLM concurrency keeps the model busy (default: 20)")
    p.add_argument("--executor", default="local", choices=("local", "remote", "instant"),
                   help="instant: a stub that runs nothing (measures the loop alone)")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"):
        os.environ.pop(name, None)

    with tempfile.TemporaryDirectory(prefix="bench-repair-") as tmp, FakeLLMServer(wrong_answers(), delay=args.delay) as server:
        problems = Path(tmp) / "bench_problems.json"
        problems.write_text(json.dumps(make_problems(args.problems, args.tests)))
        argv = ["--solution-file", str(problems), "--output-file", str(Path(tmp) / "out.json"),
                "--base-url", server.anthropic_base_url, "--max-iterations", str(args.iterations),
                "--llm-semaphore", str(args.llm), "--concurrent-problems", str(args.concurrent_problems),
                "--executor", args.executor, "--no-cache", "--no-progress", "--timeout", "5"]
        if args.executor == "instant":
            argv[argv.index("--executor") + 1] = "local"
            iterative_repair.get_executor = lambda kind=None: InstantExecutor()
        config = iterative_repair.build_config(iterative_repair.build_parser().parse_args(argv))
        start = time.monotonic()
        import anthropic  # noqa: F401  (a one-off process start-up cost, reported apart from the batch)
        imported = time.monotonic()
        code = asyncio.run(iterative_repair.run_repair(config))
        elapsed = time.monotonic() - imported
        import_s = imported - start
        summary = json.loads(config.summary_file.read_text())
        calls = len(server.requests)

    executions = sum(e["executions"] for e in summary["problems"])
    bound = calls * args.delay / args.llm
    print(f"problems={args.problems} tests/problem={args.tests} iterations={args.iterations} "
          f"delay={args.delay}s llm_concurrency={args.llm} concurrent_problems={args.concurrent_problems} "
          f"executor={args.executor} cpus={os.cpu_count()}")
    print(f"model calls: {calls}   test executions: {executions}   exit code: {code}")
    print(f"batch time:  {elapsed:.2f} s  (SDK import before it: {import_s:.2f} s, not counted)")
    print(f"lower bound: {bound:.2f} s  (calls x delay / LLM concurrency)")
    print(f"ratio:       {elapsed / bound:.3f}  (target <= 1.3)")
    return 0 if calls == args.problems * args.iterations and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
