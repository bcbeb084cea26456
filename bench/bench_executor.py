"""Benchmark: the warm forking executor against one fresh ``python3`` per test (the baseline).

Runs, in one process, on real LibraryBench data (o3-mini answers, first dashed block):
  1. LocalExecutor on every test of the file, twice: one ``run_tests`` batch per program, and
     through ``librarybench_common.run_tests``, the path the CLIs use (one executor call per
     test, each under the global execution semaphore);
  2. both executors on a sample of those tests (the baseline, ``run_one_fresh``, with the same
     parallelism), alternating in rounds so that both see the same machine load;
  3. a trivial program (``pass``) through both, to show the per-test overhead alone;
  4. call-based and assert-style tests (``problem_kinds``' harness, made-up answers; asserts against
     literals, judged outside, and against computed values, run by the split harness) through
     ``librarybench_common.run_tests`` against the same harness programs in a fresh ``python3``
     per test, alternating in rounds as in 2.
and prints tests/s for each, their ratio and the per-test overhead.

    uv run python bench/bench_executor.py [--file PATH] [--baseline-tests N] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

import librarybench_common  # noqa: E402
import problem_kinds  # noqa: E402
from librarybench_common import extract_code, load_problems, problem_tests  # noqa: E402
from records import StdioTest  # noqa: E402
from sandbox import LocalExecutor, SandboxLimits, run_one_fresh  # noqa: E402

DEFAULT_FILE = PROJECT_DIR.parent / "shared" / "data" / "librarybench" / "o3mini_search_solutions.json"

Job = tuple[str, StdioTest]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE,
                        help="solutions JSON (default: %(default)s)")
    parser.add_argument("--answer-key", default="o3_mini_solution",
                        help="record field with the model answer (code = first dashed block, "
                             "else first fenced block; default: %(default)s)")
    parser.add_argument("--baseline-tests", type=int, default=120,
                        help="how many tests (evenly spread) the slow baseline runs (default: %(default)s)")
    parser.add_argument("--trivial-tests", type=int, default=400,
                        help="runs of the trivial program through the executor (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallelism of both executors (default: CPU count)")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-test timeout in seconds")
    parser.add_argument("--kind-tests", type=int, default=60,
                        help="call-based and assert-style tests each, through both executors")
    parser.add_argument("--rounds", type=int, default=4,
                        help="alternations between the two executors on the sample (default: %(default)s)")
    return parser.parse_args(argv)


def load_jobs(path: Path, answer_key: str) -> list[Job]:
    """Every (program, test) pair of the file, in file order; programs as the seed extracted them."""
    jobs: list[Job] = []
    for index, record in enumerate(load_problems(path)):
        code = extract_code(record.get(answer_key) or "", rule="first")
        jobs += [(code, test) for test in problem_tests(record, index, path)]
    return jobs


def sample(jobs: list[Job], count: int) -> list[Job]:
    """``count`` jobs spread evenly over the file, so every problem is represented."""
    if count >= len(jobs):
        return jobs
    step = len(jobs) / count
    return [jobs[int(i * step)] for i in range(count)]


def time_executor(executor: LocalExecutor, jobs: list[Job], timeout: float) -> tuple[float, dict[str, int]]:
    """Run the jobs as one batch per program, all batches at once (the executor's workers are
    the only limit, like the baseline's pool); returns (seconds, verdict counts)."""
    batches: dict[str, list[StdioTest]] = {}
    for code, test in jobs:
        batches.setdefault(code, []).append(test)

    async def run_all() -> list[str]:
        runs = [executor.run_tests(code, tests, timeout=timeout) for code, tests in batches.items()]
        return [result["verdict"] for results in await asyncio.gather(*runs) for result in results]

    start = time.perf_counter()
    verdicts = asyncio.run(run_all())
    return time.perf_counter() - start, count(verdicts)


def time_common_path(executor: LocalExecutor, jobs: list[Job],
                     timeout: float) -> tuple[float, dict[str, int]]:
    """The path users get: ``librarybench_common.run_tests`` per program, all programs at once,
    as the CLIs call it (it runs each test as its own ``executor.run_tests(code, [test])`` under
    the global execution semaphore); returns (seconds, verdict counts)."""
    batches: dict[str, list[StdioTest]] = {}
    for code, test in jobs:
        batches.setdefault(code, []).append(test)

    async def run_all() -> list[str]:
        runs = [librarybench_common.run_tests(code, tests, timeout=timeout, executor=executor)
                for code, tests in batches.items()]
        return [result["verdict"] for results in await asyncio.gather(*runs) for result in results]

    start = time.perf_counter()
    verdicts = asyncio.run(run_all())
    return time.perf_counter() - start, count(verdicts)


def time_baseline(jobs: list[Job], workers: int, timeout: float) -> tuple[float, dict[str, int]]:
    """The baseline with the same parallelism: ``workers`` fresh interpreters at a time."""
    limits = SandboxLimits(timeout=timeout)
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda job: run_one_fresh(job[0], job[1], limits), jobs))
    return time.perf_counter() - start, count([r["verdict"] for r in results])


def count(verdicts: list[str]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for verdict in verdicts:
        totals[verdict] = totals.get(verdict, 0) + 1
    return totals


def interleaved(executor: LocalExecutor, jobs: list[Job], workers: int, timeout: float,
                rounds: int) -> tuple[float, float, dict[str, int], dict[str, int]]:
    """Time both executors on the same jobs, alternating in ``rounds`` chunks.

    On a shared machine the load changes from second to second; alternating exposes both
    executors to the same conditions instead of favouring whichever ran in a quiet moment.
    """
    fast_s = base_s = 0.0
    fast_verdicts: dict[str, int] = {}
    base_verdicts: dict[str, int] = {}
    for index in range(rounds):
        chunk = jobs[index::rounds]
        if not chunk:
            continue
        seconds, verdicts = time_executor(executor, chunk, timeout)
        fast_s += seconds
        merge(fast_verdicts, verdicts)
        seconds, verdicts = time_baseline(chunk, workers, timeout)
        base_s += seconds
        merge(base_verdicts, verdicts)
    return fast_s, base_s, fast_verdicts, base_verdicts


KIND_ANSWER = "def f(xs, k):\n    return sorted(x * k for x in xs)[:5]\n"


def kind_jobs(count: int) -> dict[str, list[tuple[str, object]]]:
    """``count`` call tests and ``count`` assert tests of one small answer (every one passes)."""
    calls = [(KIND_ANSWER, problem_kinds.call_test("f", [list(range(i, i + 50)), 2],
                                                   [2 * x for x in range(i, i + 5)])) for i in range(count)]
    asserts = [(KIND_ANSWER, problem_kinds.assert_test(f"assert f(list(range({i}, {i + 50})), 2) == "
                                                      f"{[2 * x for x in range(i, i + 5)]}\n")) for i in range(count)]
    computed = [(KIND_ANSWER, problem_kinds.assert_test(f"assert f(list(range({i}, {i + 50})), 2) == "
                                                        f"[2 * x for x in range({i}, {i + 5})]\n")) for i in range(count)]
    return {"call": calls, "assert": asserts, "computed assert (split harness)": computed}


def time_kind_warm(executor: LocalExecutor, jobs: list[tuple[str, object]],
                   timeout: float) -> tuple[float, dict[str, int]]:
    async def run_all() -> list[str]:
        results = await librarybench_common.run_tests(jobs[0][0], [t for _, t in jobs], timeout=timeout,
                                                      executor=executor)
        return [r["verdict"] for r in results]

    start = time.perf_counter()
    verdicts = asyncio.run(run_all())
    return time.perf_counter() - start, count(verdicts)


def time_kind_fresh(jobs: list[tuple[str, object]], workers: int, timeout: float) -> tuple[float, dict[str, int]]:
    """The same harness programs, each in a fresh interpreter, judged the same way."""
    limits = SandboxLimits(timeout=timeout)

    def one(job: tuple[str, object]) -> str:
        lowered = problem_kinds.lower(job[0], job[1])
        raw = run_one_fresh(lowered.program, lowered.stdio, limits)
        return problem_kinds.judge(job[0], job[1], lowered, raw)["verdict"]

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        verdicts = list(pool.map(one, jobs))
    return time.perf_counter() - start, count(verdicts)


def kinds_report(executor: LocalExecutor, workers: int, timeout: float, tests: int, rounds: int) -> list[str]:
    lines: list[str] = []
    if tests <= 0:  # --kind-tests 0: stdin/stdout work only
        return lines
    for kind, jobs in kind_jobs(tests).items():
        time_kind_warm(executor, jobs[:2], timeout)  # warm-up (workers started), not measured
        warm_s = fresh_s = 0.0
        warm_v: dict[str, int] = {}
        fresh_v: dict[str, int] = {}
        for index in range(rounds):
            chunk = jobs[index::rounds]
            seconds, verdicts = time_kind_warm(executor, chunk, timeout)
            warm_s += seconds
            merge(warm_v, verdicts)
            seconds, verdicts = time_kind_fresh(chunk, workers, timeout)
            fresh_s += seconds
            merge(fresh_v, verdicts)
        warm_rate, fresh_rate = len(jobs) / warm_s, len(jobs) / fresh_s
        lines.append(f"{kind} tests through the harness: run_tests on LocalExecutor {warm_rate:.1f} tests/s "
                     f"{warm_v}; fresh python3 per test {fresh_rate:.1f} tests/s {fresh_v}; "
                     f"{warm_rate / fresh_rate:.1f}x ({len(jobs)} tests each, alternating in {rounds} rounds)")
    return lines


def merge(totals: dict[str, int], more: dict[str, int]) -> None:
    for verdict, number in more.items():
        totals[verdict] = totals.get(verdict, 0) + number


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.file.is_file():
        print(f"error: no solutions file at {args.file} (use --file)", file=sys.stderr)
        return 2
    jobs = load_jobs(args.file, args.answer_key)
    base_jobs = sample(jobs, args.baseline_tests)
    trivial: list[Job] = [("pass", {"stdin": "", "stdout": ""})]
    base_trivial = max(20, min(args.trivial_tests, 40))
    with LocalExecutor(workers=args.workers) as executor:
        workers = executor.workers
        print(f"file: {args.file} ({len(jobs)} tests)")
        print(f"workers: {workers}; isolation: {executor.isolation}")
        print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
              f"(the machine's other processes slow both executors)")
        time_executor(executor, trivial * 20, args.timeout)  # warm-up, not measured
        fast_s, fast_verdicts = time_executor(executor, jobs, args.timeout)
        common_s, common_verdicts = time_common_path(executor, jobs, args.timeout)
        fast_base_s, base_s, _, base_verdicts = interleaved(
            executor, base_jobs, workers, args.timeout, args.rounds)
        trivial_s, base_trivial_s, _, _ = interleaved(
            executor, trivial * base_trivial, workers, args.timeout, args.rounds)
        trivial_s, _ = time_executor(executor, trivial * args.trivial_tests, args.timeout)
        kind_lines = kinds_report(executor, workers, args.timeout, args.kind_tests, args.rounds)

    fast_rate, base_rate = len(jobs) / fast_s, len(base_jobs) / base_s
    same_sample_rate = len(base_jobs) / fast_base_s
    common_rate = len(jobs) / common_s
    print(f"LocalExecutor, all tests: {len(jobs)} tests in {fast_s:.2f} s = {fast_rate:.1f} tests/s  "
          f"{fast_verdicts}")
    print(f"librarybench_common.run_tests (the CLIs' path: one call per test, exec semaphore "
          f"{librarybench_common.semaphore_limit('exec')}), all tests: {len(jobs)} tests in "
          f"{common_s:.2f} s = {common_rate:.1f} tests/s  {common_verdicts}")
    print(f"LocalExecutor, baseline sample: {len(base_jobs)} tests in {fast_base_s:.2f} s = "
          f"{same_sample_rate:.1f} tests/s")
    print(f"baseline (fresh python3 per test, {workers} at a time), same sample: {len(base_jobs)} tests "
          f"in {base_s:.2f} s = {base_rate:.1f} tests/s  {base_verdicts}")
    print(f"throughput ratio on the same {len(base_jobs)} tests (measured alternately): "
          f"{same_sample_rate / base_rate:.1f}x "
          f"(all {len(jobs)} tests vs the baseline sample: {fast_rate / base_rate:.1f}x)")
    print(f"CLIs' path (librarybench_common.run_tests), all {len(jobs)} tests vs the baseline sample: "
          f"{common_rate / base_rate:.1f}x ({common_rate / fast_rate:.2f} of the batch rate)")
    # Wall time per test times the parallelism = what one test costs one worker.
    fast_overhead = trivial_s / args.trivial_tests * workers * 1000
    base_overhead = base_trivial_s / base_trivial * workers * 1000
    print(f"per-test overhead of a trivial program ('pass'): LocalExecutor {fast_overhead:.1f} ms, "
          f"baseline {base_overhead:.1f} ms ({base_overhead / fast_overhead:.0f}x)")
    for line in kind_lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
