"""Benchmark: the Ray executor on a local Ray cluster against the local executor, same machine, same run.

Runs real LibraryBench answers (o3-mini, first dashed block; every test of the chosen problems)
through ``librarybench_common.run_tests``, the path the CLIs use (one call per test under the
global execution semaphore; the Ray executor gathers them into per-program chunks), all programs
at once, alternating local and Ray in rounds so both see the same machine load. Prints tests/s of
each, the time ratio Ray / local (target: within 1.3x) and checks that the verdicts are the same
test for test. The Ray cluster's start-up is reported apart (it is paid once per run).

    uv run --group ray python bench/bench_ray.py [--file PATH] [--problems 0,1,2] [--rounds N]

``measure_ray(batches)`` and ``measure_local(batches)`` are importable (``bench/bench_scale.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

import librarybench_common as common  # noqa: E402
from records import Test  # noqa: E402

DEFAULT_FILE = PROJECT_DIR.parent / "shared" / "data" / "librarybench" / "o3mini_search_solutions.json"
Batch = tuple[str, list[Test]]  # one program and its tests


def load_batches(path: Path = DEFAULT_FILE, answer_key: str = "o3_mini_solution",
                 problems: list[int] | None = None) -> list[Batch]:
    """(program, tests) per problem of the file (or of the chosen problem indexes)."""
    records = common.load_problems(path)
    chosen = range(len(records)) if problems is None else problems
    return [(common.extract_code(records[i].get(answer_key) or "", rule="first"),
             list(common.problem_tests(records[i], i, path))) for i in chosen]


async def _run_all(batches: list[Batch], executor: Any, timeout: float) -> list[list[str]]:
    runs = [common.run_tests(code, tests, timeout=timeout, executor=executor) for code, tests in batches]
    return [[r["verdict"] for r in results] for results in await asyncio.gather(*runs)]


def time_path(batches: list[Batch], executor: Any, timeout: float = 10.0) -> dict[str, Any]:
    """Run every batch through ``librarybench_common.run_tests`` on ``executor``, all at once."""
    start = time.perf_counter()
    verdicts = asyncio.run(_run_all(batches, executor, timeout))
    seconds = time.perf_counter() - start
    tests = sum(len(v) for v in verdicts)
    return {"tests": tests, "seconds": seconds, "tests_per_s": tests / seconds, "verdicts": verdicts}


def measure_local(batches: list[Batch], timeout: float = 10.0, executor: Any = None) -> dict[str, Any]:
    """The local executor's figures on ``batches`` (its workers warmed first, not timed)."""
    executor = executor or common.get_executor("local")
    executor.isolation  # noqa: B018 - starts the workers
    return {"path": "local executor", **time_path(batches, executor, timeout)}


def measure_ray(batches: list[Batch], timeout: float = 10.0, executor: Any = None,
                num_cpus: int | None = None) -> dict[str, Any]:
    """The Ray executor's figures on ``batches``: a local Ray cluster started here (or the cluster
    at ``RAY_ADDRESS``, or ``executor``), its start-up timed apart, then closed if made here."""
    from ray_executor import RayExecutor

    made = executor is None
    start = time.perf_counter()
    executor = executor or RayExecutor(num_cpus=num_cpus)
    try:
        isolation = executor.isolation  # starts Ray and the actors
        started = time.perf_counter() - start
        return {"path": "ray executor", "start_seconds": started, "isolation": isolation,
                **time_path(batches, executor, timeout)}
    finally:
        if made:
            executor.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="solutions JSON (default: %(default)s)")
    parser.add_argument("--answer-key", default="o3_mini_solution", help="answer field (default: %(default)s)")
    parser.add_argument("--problems", default=None, help="problem indexes, comma-separated (default: all)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations local / ray (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-test timeout in seconds")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from ray_executor import RayExecutor

    args = parse_args(argv)
    problems = None if args.problems is None else [int(p) for p in args.problems.split(",")]
    batches = load_batches(args.file, args.answer_key, problems)
    tests = sum(len(t) for _, t in batches)
    print(f"{args.file.name}: {len(batches)} programs, {tests} tests; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    local = common.get_executor("local")
    print(f"local: {local.isolation}", flush=True)
    start = time.perf_counter()
    ray = RayExecutor(num_cpus=args.num_cpus)
    try:
        print(f"ray: {ray.isolation}\nray start-up (cluster and actors, once per run): "
              f"{time.perf_counter() - start:.1f} s", flush=True)
        totals = {"local": 0.0, "ray": 0.0}
        same = True
        for round_ in range(args.rounds):
            for name, executor in (("local", local), ("ray", ray)) if round_ % 2 == 0 else (("ray", ray), ("local", local)):
                figures = time_path(batches, executor, args.timeout)
                totals[name] += figures["seconds"]
                if name == "local":
                    reference = figures["verdicts"]
                else:
                    ray_verdicts = figures["verdicts"]
                print(f"  round {round_ + 1} {name:5}: {figures['tests']} tests in {figures['seconds']:.2f} s = "
                      f"{figures['tests_per_s']:.1f} tests/s  {common.count_verdicts({'verdict': v} for b in figures['verdicts'] for v in b)}",
                      flush=True)
            same = same and reference == ray_verdicts
    finally:
        ray.close()
    n = tests * args.rounds
    print(f"local executor: {n} tests in {totals['local']:.2f} s = {n / totals['local']:.1f} tests/s")
    print(f"ray executor (local cluster): {n} tests in {totals['ray']:.2f} s = {n / totals['ray']:.1f} tests/s")
    print(f"ray / local time: {totals['ray'] / totals['local']:.2f}x (target: at most 1.3x); "
          f"verdicts test for test: {'same' if same else 'DIFFERENT'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
