"""Benchmark: a scoring run with ``--fail-fast`` against the same run without it.

Runs ``model_feedback.py`` as a user would (a fresh process each time, ``--restart`` so no results
log is reused) on the shared LibraryBench files, every model answer, alternating the two modes in
rounds so that both see the same machine load, and prints the wall time of each, their ratio and
a check that both modes agree on which programs pass every test (the only thing pass@k needs).

    uv run python bench/bench_fail_fast.py [--rounds N] [--file PATH ...] [--executor local]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_DIR.parent / "shared" / "data" / "librarybench"
DEFAULT_FILES = sorted(DATA_DIR.glob("*_solutions.json"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", dest="files", type=Path, action="append",
                        help="solutions JSON, repeatable (default: every *_solutions.json in ../shared)")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two modes (default: %(default)s)")
    parser.add_argument("--executor", default="local", help="model_feedback's --executor (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=6.0, help="model_feedback's --timeout (default: %(default)s)")
    return parser.parse_args(argv)


def run_once(files: list[Path], fail_fast: bool, args: argparse.Namespace, out: Path) -> tuple[float, dict]:
    """Wall time of one model_feedback run, and its per-program "every test passed" verdicts."""
    command = [sys.executable, str(PROJECT_DIR / "model_feedback.py"), "--quiet", "--restart",
               "--executor", args.executor, "--timeout", str(args.timeout), "--output", str(out)]
    for path in files:
        command += ["--solution-file", str(path)]
    if fail_fast:
        command.append("--fail-fast")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1) or not out.exists():
        raise SystemExit(f"model_feedback failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed, all_pass_verdicts(json.loads(out.read_text()))


def all_pass_verdicts(output: dict) -> dict:
    verdicts = {}
    for entry in output["files"]:
        for problem in entry["problems"]:
            key = (entry["solution_file"], problem["problem_id"], problem["model_key"])
            verdicts[key] = problem["status"] == "ok" and problem["passed"] == problem["total"]
    return verdicts


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    files = args.files or DEFAULT_FILES
    if not files:
        raise SystemExit(f"no solutions files (looked in {DATA_DIR}); pass --file")
    times: dict[bool, list[float]] = {False: [], True: []}
    verdicts: dict[bool, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            order = (False, True) if round_index % 2 == 0 else (True, False)
            for fail_fast in order:
                elapsed, seen = run_once(files, fail_fast, args, Path(tmp) / f"out_{fail_fast}.json")
                times[fail_fast].append(elapsed)
                verdicts[fail_fast] = seen
                print(f"round {round_index + 1} {'--fail-fast' if fail_fast else 'all tests  '}: {elapsed:6.2f} s",
                      flush=True)
    full, fast = statistics.median(times[False]), statistics.median(times[True])
    programs = len(verdicts[False])
    agree = sum(verdicts[False][k] == verdicts[True].get(k) for k in verdicts[False])
    passing = sum(verdicts[False].values())
    print(f"\n{len(files)} file(s), {programs} programs ({passing} pass every test), "
          f"executor {args.executor}, median of {args.rounds} rounds")
    print(f"all tests    {full:7.2f} s")
    print(f"--fail-fast  {fast:7.2f} s")
    print(f"speed-up     {full / fast:7.2f}x")
    print(f"programs with the same all-pass verdict: {agree}/{programs}")
    if agree != programs:
        raise SystemExit("the two modes disagree on which programs pass every test")


if __name__ == "__main__":
    main()
