"""Benchmark: the ways out of one process, against the local executor, on the shared real data.

One run times the same work through each *path*, an executor the toolkit can be given:
  - ``local``: the embedded executor in this process (the baseline);
  - ``server, one request per test``: ``execution_server.py`` on this machine (same number of
    workers), the client forced to the original contract (``RemoteExecutor(batch=False)``), its
    requests in flight bounded by its AIMD window (``request_window.py``);
  - ``server, per test, no window``: the same without the window (``window=False``): every
    request the execution semaphore allows is sent, the ones beyond the server's admission
    limit drawing 429s (the baseline of the window);
  - ``server, batched``: the same server, the client using the batch extension it advertises.
A path is one entry of ``PATHS`` (a name and an async context manager yielding an executor), so
a Ray path is one more entry. The work: every program of a fixed subset of the shared data with
all its tests, all programs at once through ``librarybench_common.run_tests`` (the CLIs' path,
under the global execution semaphore), repeated in ``--rounds`` rounds whose path order
alternates, so every path sees the same machine load. It checks that every path gives the local
verdicts test for test, and prints tests/s per path, each path's time relative to local and, for
the server paths, the 429 answers the client received (all rounds).

    uv run python bench/bench_scale.py [--files o3mini_search_solutions.json,...] [--rounds 2] [--workers N]
                                       [--paths local,per-test,per-test-no-window,batched,ray]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

import librarybench_common as common  # noqa: E402
from records import Test  # noqa: E402

SHARED = PROJECT_DIR.parent / "shared" / "data" / "librarybench"
DEFAULT_FILES = "o3mini_search_solutions.json"
Program = tuple[str, list[Test]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", default=DEFAULT_FILES,
                        help="comma-separated files of the shared data (default: %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=SHARED, help="the shared data (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over all paths, order alternating (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="sandbox workers of the local executor and of the server (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-test timeout in seconds (default: %(default)s)")
    parser.add_argument("--paths", help="comma-separated path keys to run: " + ",".join(p.key for p in PATHS)
                        + " (default: all)")
    return parser.parse_args(argv)


def load_programs(files: list[Path]) -> list[Program]:
    """Every model answer (first extraction rule of the seed) and human solution with its tests."""
    programs: list[Program] = []
    for path in files:
        for index, record in enumerate(common.load_problems(path)):
            tests = common.problem_tests(record, index, path)
            for key in sorted(k for k in record if k.endswith("_solution")):
                code = common.answer_program(record, key, rule="first")
                if isinstance(code, str) and code.strip():
                    programs.append((code, tests))
    return programs


# ---- the paths ------------------------------------------------------------------------------


@asynccontextmanager
async def local_path(args: argparse.Namespace) -> AsyncIterator[Any]:
    from sandbox import LocalExecutor

    executor = LocalExecutor(workers=args.workers)
    await asyncio.to_thread(lambda: executor.isolation)  # warm the workers before timing
    try:
        yield executor
    finally:
        executor.close()


class ServerProcess:
    """``execution_server.py`` on 127.0.0.1 with the same workers, shared by the server paths."""

    url: str | None = None
    proc: subprocess.Popen[str] | None = None

    @classmethod
    def start(cls, workers: int) -> str:
        if cls.url is None:
            proc = subprocess.Popen([sys.executable, "execution_server.py", "--port", "0", "--workers", str(workers)],
                                    cwd=PROJECT_DIR, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
            assert proc.stderr is not None
            for line in proc.stderr:
                match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
                if match:
                    cls.url, cls.proc = match.group(1), proc
                    break
            else:
                raise SystemExit(f"execution_server.py did not start (exit {proc.wait()})")
            threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()  # type: ignore[union-attr]
        return cls.url

    @classmethod
    def stop(cls) -> None:
        if cls.proc is not None:
            cls.proc.terminate()
            cls.proc.wait(timeout=60)
            cls.proc, cls.url = None, None


def server_path(batch: bool, window: bool = True) -> Callable[[argparse.Namespace], Any]:
    @asynccontextmanager
    async def path(args: argparse.Namespace) -> AsyncIterator[Any]:
        url = await asyncio.to_thread(ServerProcess.start, args.workers)
        executor = common.RemoteExecutor(url, batch=None if batch else False, window=window)
        await executor.health()
        try:
            yield executor
        finally:
            await executor.aclose()

    return path


class RayCluster:
    """One ``RayExecutor`` on a local Ray (or ``RAY_ADDRESS``) for every round: its start-up is not timed."""

    executor: Any = None

    @classmethod
    def get(cls, workers: int) -> Any:
        if cls.executor is None:
            from ray_executor import RayExecutor

            cls.executor = RayExecutor(num_cpus=workers)
            cls.executor.isolation  # noqa: B018 - starts Ray and the actors
        return cls.executor

    @classmethod
    def stop(cls) -> None:
        if cls.executor is not None:
            cls.executor.close()
            cls.executor = None


@asynccontextmanager
async def ray_path(args: argparse.Namespace) -> AsyncIterator[Any]:
    yield await asyncio.to_thread(RayCluster.get, args.workers)


def ray_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


@dataclass(frozen=True)
class BenchPath:
    key: str  # what --paths names
    name: str
    executor: Callable[[argparse.Namespace], Any]  # args -> async context manager yielding an executor


PATHS = [
    BenchPath("local", "local", local_path),
    BenchPath("per-test", "server, one request per test", server_path(batch=False)),
    BenchPath("per-test-no-window", "server, per test, no window", server_path(batch=False, window=False)),
    BenchPath("batched", "server, batched", server_path(batch=True)),
    BenchPath("ray", "ray (local cluster)", ray_path),  # needs the optional group: uv run --group ray
]


# ---- timing ---------------------------------------------------------------------------------


async def run_all(executor: Any, programs: list[Program], timeout: float) -> tuple[float, list[list[str]]]:
    started = time.perf_counter()
    results = await common.gather_all(
        [common.run_tests(code, tests, timeout=timeout, executor=executor) for code, tests in programs])
    return time.perf_counter() - started, [[r["verdict"] for r in rs] for rs in results]


async def main_async(args: argparse.Namespace) -> int:
    files = [args.data_dir / name.strip() for name in args.files.split(",") if name.strip()]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(f"error: shared data not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    wanted = {n.strip() for n in (args.paths or "").split(",") if n.strip()}
    unknown = wanted - {p.key for p in PATHS}
    if unknown:
        print(f"error: unknown path {', '.join(sorted(unknown))}: use {', '.join(p.key for p in PATHS)}", file=sys.stderr)
        return 2
    paths = [p for p in PATHS if not wanted or p.key in wanted]
    if not ray_available() and any(p.executor is ray_path for p in paths):
        print("note: ray is not installed (uv sync --group ray): the ray path is left out", file=sys.stderr)
        paths = [p for p in paths if p.executor is not ray_path]
    programs = load_programs(files)
    n_tests = sum(len(tests) for _, tests in programs)
    print(f"{len(programs)} programs, {n_tests} tests ({', '.join(f.name for f in files)}); workers={args.workers} "
          f"cpus={os.cpu_count()} exec_semaphore={common.semaphore_limit('exec')} rounds={args.rounds} "
          f"load average before: {os.getloadavg()[0]:.1f}")
    seconds = {p.name: 0.0 for p in paths}
    busy: dict[str, int] = {}  # path -> 429 answers its client received, all rounds
    reference: list[list[str]] | None = None
    try:
        for round_index in range(args.rounds):
            order = paths if round_index % 2 == 0 else list(reversed(paths))
            for path in order:
                async with path.executor(args) as executor:
                    took, verdicts = await run_all(executor, programs, args.timeout)
                seconds[path.name] += took
                refused = ""
                if hasattr(executor, "busy_answers"):
                    busy[path.name] = busy.get(path.name, 0) + executor.busy_answers
                    refused = f" ({executor.busy_answers} answers 429)"
                if reference is None:
                    reference = verdicts
                elif verdicts != reference:
                    diffs = sum(a != b for x, y in zip(verdicts, reference) for a, b in zip(x, y))
                    print(f"MISMATCH: {path.name} differs from {paths[0].name} on {diffs} tests")
                print(f"  round {round_index + 1}: {path.name}: {took:.2f} s{refused}", flush=True)
    finally:
        ServerProcess.stop()
        RayCluster.stop()
    base = seconds[paths[0].name]
    total = n_tests * args.rounds
    print(f"{'path':<32} {'tests/s':>8} {'time vs ' + paths[0].name:>14} {'429s':>7}")
    for path in paths:
        refused = f"{busy[path.name]:>7}" if path.name in busy else f"{'':>7}"
        print(f"{path.name:<32} {total / seconds[path.name]:>8.1f} {seconds[path.name] / base:>13.2f}x {refused}".rstrip())
    counts = common.count_verdicts({"verdict": v} for vs in (reference or []) for v in vs)
    print(f"verdicts (same on every path): {counts}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
