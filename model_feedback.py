"""Run every model answer in solution files against its stdin/stdout tests; print feedback and a summary.

    uv run python model_feedback.py                      # the sample files in data/, embedded executor
    uv run python model_feedback.py --solution-file ../shared/data/librarybench/o3mini_search_solutions.json \
        --include-human --extract first --output results.json

Each evaluation (file, problem, model key) is recorded as it finishes in ``<output>.checkpoint.jsonl``
(``results_log.py``); the same command run again resumes from it, and ``--output`` is streamed
from it at the end, so memory does not grow with the results. ``--rejudge`` (a finished results
file judged again, no program run) is ``rejudge.py``'s.

Exit status: 0 when every selected problem was evaluated, 1 when a problem had an input error
(bad record) or an execution error (executor failure), each printed as one line
``error: <file>: problem <i>: <message>``; 2 on a usage error (bad flag, problem ids the file
does not have, missing, unreadable or empty file, ``--executor remote`` without ``CYBER_URL``,
unwritable ``--output``, a results log of another run); 130 when interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tqdm import tqdm

import dataset_jobs
import judges
import librarybench_common as common
import pass_at_k
import problem_limits
import special_judges
from cli import (OneLineParser, add_executor_flags, add_extract_flag, add_logging_flag, add_selection_flags, fraction,
                 non_negative_int, positive_float, positive_int, run_main)
from errors import ExecutionError, InputError, LibraryBenchError
from executors import Executor
from results_log import Recorded, ResultsLog, file_digest, log_path_for
from timing_recheck import DEFAULT_RECHECK_FRACTION, FlipTally, recheck_results

HERE = Path(__file__).resolve().parent
SAMPLE_DIR = HERE / "data"
OUTPUT_SCHEMA = "librarybench.feedback_results/2"
log = logging.getLogger("librarybench.model_feedback")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        description="Evaluate model answers against their stdin/stdout tests and print feedback and a summary.",
    )
    parser.add_argument("--solution-file", action="append", metavar="PATH",
                        help="solution file (JSON list of problem records); repeatable. "
                             "Default: every *.json sample file in data/")
    parser.add_argument("--model-key", action="append", metavar="KEY",
                        help="answer key to evaluate, e.g. o3_mini_solution (or its stem o3_mini); repeatable. "
                             "Default: every *_solution key found except human_solution")
    parser.add_argument("--include-human", action="store_true",
                        help="also evaluate human_solution (run verbatim, no extraction)")
    add_selection_flags(parser, "evaluate")
    add_executor_flags(parser, timeout_help="seconds per test before the run is killed (verdict timeout)",
                       remote_options=True, local_limits=True)
    problem_limits.add_limit_flags(parser)
    add_extract_flag(parser)
    parser.add_argument("--recheck-timeouts", type=non_negative_int, default=0, metavar="K",
                        help="rerun every timeout, and every pass slower than --recheck-fraction of the limit, K more "
                             "times under the same limits: rechecked results get stable: true/false, the summary a "
                             "flip_rate with its interval and the machine's load")
    parser.add_argument("--recheck-fraction", type=fraction, default=DEFAULT_RECHECK_FRACTION,
                        help="passes slower than this fraction of --timeout are rechecked too")
    parser.add_argument("--feedback-budget", type=positive_int, default=common.DEFAULT_FEEDBACK_BUDGET,
                        help="maximum characters of feedback printed per problem and model")
    judges.add_judge_arguments(parser)
    parser.add_argument("--special-judges", metavar="FILE",
                        help="per-problem judges from a special-judge list (JSON/JSONL, e.g. TACO's, by problem "
                             "index or name): case-insensitive, float, or multiple valid outputs (needs a checker: "
                             "judged by --judge and reported); a record's own 'judge' field wins. With --rejudge: "
                             "the listed problems of the results file are judged again by their entries")
    parser.add_argument("--output", metavar="PATH",
                        help="write the results as JSON (atomically; its directory must exist). Finished "
                             "evaluations are logged in PATH.checkpoint.jsonl as they end, and the same "
                             "command run again resumes from that log")
    parser.add_argument("--restart", action="store_true",
                        help="discard the results log of an earlier run of --output and evaluate everything again")
    parser.add_argument("--full-results", action="store_true",
                        help="in --output, give each test result the remote API's full shape (the program "
                             "and the test repeated in every result); default: the program once per problem")
    parser.add_argument("--progress-every", type=positive_float, default=5.0, metavar="SECONDS",
                        help="when stderr is not a terminal, print a progress line this often while tests run "
                             "(on a terminal a progress bar is shown instead)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the summary table: no per-problem feedback, no progress")
    add_logging_flag(parser, help="how much diagnostic logging goes to stderr (errors of problems and usage "
                                  "errors are always printed)")
    dataset_jobs.add_arguments(parser)
    return parser


# --------------------------------------------------------------------------------------------
# Interrupts
# --------------------------------------------------------------------------------------------


class InterruptGuard:
    """SIGINT and SIGTERM: the first stops the run (``KeyboardInterrupt``); later ones are only
    counted, so the clean-up and the final write of ``--output`` are never cut short (``uv run``
    forwards Ctrl-C, and users press it twice). Inside ``deferred()`` even the first one waits
    until the block has ended."""

    def __init__(self) -> None:
        self.signals = 0
        self.raised = False
        self.deferring = False

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (a test calling main() from a worker thread)
                return

    def _handle(self, _signum: int, _frame: Any) -> None:
        self.signals += 1
        if not self.raised and not self.deferring:
            self.raised = True
            raise KeyboardInterrupt

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.signals and not self.raised:
            self.raised = True
            raise KeyboardInterrupt


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


@dataclass
class Job:
    """One (file, problem, model key) evaluation. Only counts are kept here; the results themselves
    go to the results log as soon as the evaluation ends (``recorded`` is where)."""

    solution_file: str
    problem_id: int
    model_key: str | None
    name: str = ""
    record: Any = None
    code: str = ""
    test_count: int = 0
    status: str = "ok"
    error: str | None = None
    passed: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    recorded: Recorded | None = None
    retry: bool = False  # an execution error: the next run with the same log tries it again
    tests: list[Any] | None = None  # given (dataset problems, re-judged files), else parsed from ``record``
    results: list[dict[str, Any]] | None = None  # kept only where needed (--judges audit, --rejudge)
    judge: Any = None  # judges.Judge: the run's, or the record's own
    judge_from_record: bool = False
    limits: problem_limits.ProblemLimits | None = None  # None: the run's --timeout
    special_judge: dict[str, Any] | None = None  # --special-judges: the entry applied (special_judges.apply)

    @property
    def total(self) -> int:
        return len(self.tests) if self.tests is not None else self.test_count

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.solution_file, self.problem_id, self.model_key or "")

    def fail(self, message: str) -> None:
        self.status, self.error, self.passed, self.verdicts = "error", message, 0, {}

    def done(self, recorded: Recorded) -> None:
        self.recorded, self.passed, self.verdicts = recorded, recorded.passed, recorded.verdicts


def default_solution_files() -> list[str]:
    files = sorted(str(p.relative_to(Path.cwd())) if p.is_relative_to(Path.cwd()) else str(p)
                   for p in SAMPLE_DIR.glob("*.json"))
    if not files:
        raise InputError(f"no sample files in {SAMPLE_DIR}: pass --solution-file")
    return files


def load_all(paths: list[str]) -> dict[str, list[Any]]:
    """Every file is read before anything runs: a missing, broken or empty file is a usage error."""
    files = {path: common.load_problems(path) for path in paths}
    for path, records in files.items():
        if not records:
            raise InputError(f"{path}: the file has no problems (an empty list)")
    return files


def keys_for(records: list[Any], args: argparse.Namespace) -> list[str]:
    if args.model_key:
        keys = list(args.model_key)
        if args.include_human and "human_solution" not in keys:
            keys.append("human_solution")
        return keys
    return common.solution_keys(records, include_human=args.include_human)


def plan_jobs(files: dict[str, list[Any]], args: argparse.Namespace,
              selection: common.ProblemSelection | None) -> list[Job]:
    """One job per (file, problem, key); bad records become error jobs with a one-line message.
    Problem ids a file does not have are a usage error (``ConfigError``), raised before any work."""
    jobs: list[Job] = []
    for path, records in files.items():
        keys = keys_for(records, args)
        for index in common.selected_indices(len(records), selection, path):
            jobs.extend(plan_problem(path, records, index, keys, args.extract))
    return jobs


def plan_problem(path: str, records: list[Any], index: int, keys: list[str], rule: str) -> list[Job]:
    """The tests are parsed here only to check and count them; they are parsed again when the job
    runs, so the run never holds every problem's tests at once."""
    record = records[index]
    name = common.problem_name(record, index)
    try:
        count = len(common.problem_tests(record, index, path))
    except InputError as exc:
        job = Job(path, index, None, name)
        job.fail(str(exc))
        return [job]
    if not keys:
        job = Job(path, index, None, name)
        job.fail(f"{path}: problem {index}: no *_solution key to evaluate (use --model-key or --include-human)")
        return [job]
    jobs = []
    for key in keys:
        job = Job(path, index, key, name, record=record, test_count=count)
        try:
            job.model_key = common.resolve_model_key(record, key)
            job.code = common.answer_program(record, job.model_key, rule=rule)
        except InputError as exc:
            job.fail(common.problem_message(path, index, exc))
        jobs.append(job)
    return jobs


def run_fingerprint(args: argparse.Namespace, paths: list[str], executor: Any, judge: Any,
                    specials: special_judges.SpecialJudges | None = None,
                    files: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    """What decides the results: a log written under anything else is refused, never mixed in.
    The selection is not part of it: a wider selection reuses the evaluations already done (so
    the checkers that ``files``' records name are taken from every record, selected or not)."""
    checkers = specials.checker_specs() if specials is not None else []
    record_checkers = [[path, *spec] for path, records in (files or {}).items()
                       for spec in judges.record_checker_specs(records, str(Path(path).resolve().parent))]
    return {
        "files": [[path, file_digest(path)] for path in paths],
        "model_key": args.model_key, "include_human": args.include_human, "extract": args.extract,
        "timeout": args.timeout, "memory_mb": args.memory_mb, "output_limit": args.output_limit,
        "feedback_budget": args.feedback_budget, "full_results": args.full_results,
        "executor": str(getattr(executor, "name", "?")), "url": getattr(executor, "url", None),
        "judge": judge.spec.as_dict(), "fail_fast": getattr(args, "fail_fast", False),
        # added later: only when used, so the logs of earlier runs still match
        **({"recheck": [args.recheck_timeouts, args.recheck_fraction]} if args.recheck_timeouts else {}),
        **({"limits": problem_limits.settings_from_args(args).as_dict()} if args.limits != "global" else {}),
        **({"special_judges": file_digest(args.special_judges)} if getattr(args, "special_judges", None) else {}),
        **({"special_judge_checkers": checkers} if checkers else {}),
        **({"record_checkers": record_checkers} if record_checkers else {}),
    }


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunContext:
    executor: Any
    timeout: float
    budget: int
    full_results: bool
    results_log: ResultsLog
    keep_results: bool = False  # the --judges audit reads every result at the end
    fail_fast: bool = False
    recheck: tuple[int, float] | None = None  # --recheck-timeouts K and --recheck-fraction


class Progress:
    """Tests done: a tqdm bar on a terminal; off a terminal (a log file, CI) a plain line every
    ``every`` seconds, so a long silent run is never mistaken for a hung one."""

    def __init__(self, total_tests: int, total_jobs: int, quiet: bool, every: float) -> None:
        tty = sys.stderr.isatty()
        self.total_tests, self.total_jobs, self.every = total_tests, total_jobs, every
        self.tests = self.jobs = 0
        self.started = time.monotonic()
        self.bar = tqdm(total=total_tests, unit="test", desc="tests", file=sys.stderr, dynamic_ncols=True) \
            if tty and not quiet else None
        self.lines = not tty and not quiet and total_tests > 0

    def tick(self, _result: Any) -> None:
        self.tests += 1
        if self.bar is not None:
            self.bar.update(1)

    def job_done(self) -> None:
        self.jobs += 1

    def line(self) -> str:
        return (f"progress: {self.tests}/{self.total_tests} tests, {self.jobs}/{self.total_jobs} evaluations done, "
                f"{time.monotonic() - self.started:.0f} s")

    async def report(self) -> None:
        while self.lines:
            await asyncio.sleep(self.every)
            print(self.line(), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def compact_result(result: dict[str, Any]) -> dict[str, Any]:
    """A test result without the program (stored once per problem) and the test (in the input file,
    at the same position): the remote API's shape otherwise."""
    return {k: v for k, v in result.items() if k not in ("code", "test")}


def finished_entry(job: Job, results: list[dict[str, Any]], tests: list[Any], ctx: RunContext) -> dict[str, Any]:
    passed = common.count_passed(results)
    feedback = common.format_feedback(results, tests, passed, len(tests), budget=ctx.budget)
    if not job.code.strip():
        feedback = "(no code found in the answer)\n" + feedback
    return {
        "problem_id": job.problem_id, "name": job.name, "model_key": job.model_key, "status": "ok", "error": None,
        "passed": passed, "total": len(tests), "verdicts": common.count_verdicts(results), "code": job.code,
        "feedback": feedback, "judge": job.judge.spec.as_dict() if job.judge is not None else None,
        "judge_from_record": job.judge_from_record,
        "limits": job.limits.as_dict() if job.limits is not None else None,
        **({"special_judge": job.special_judge} if job.special_judge else {}),
        "results": results if ctx.full_results else [compact_result(r) for r in results],
    }


def error_entry(job: Job) -> dict[str, Any]:
    """An error of the run: no test result at all (``passed``/``total`` null), never failed tests."""
    return {"problem_id": job.problem_id, "name": job.name, "model_key": job.model_key, "status": "error",
            "error": job.error, "passed": None, "total": None, "verdicts": {}, "code": job.code, "feedback": None,
            "results": []}


async def run_job(job: Job, ctx: RunContext, progress: Progress) -> None:
    """Run one job's tests and log the outcome at once; an executor failure marks the job as an
    error of the run (not logged: the next run retries it), not as failed tests."""
    tests = job.tests if job.tests is not None else common.problem_tests(job.record, job.problem_id, job.solution_file)
    timeout, memory = (job.limits.timeout, job.limits.call_memory_mb) if job.limits else (ctx.timeout, None)
    try:
        results = await common.run_tests(job.code, tests, timeout=timeout, executor=ctx.executor,
                                         on_result=progress.tick, judge=job.judge, fail_fast=ctx.fail_fast,
                                         memory_mb=memory)
        if ctx.recheck is not None:
            async def rerun(code: str, again: list[Any]) -> list[dict[str, Any]]:
                return await common.run_tests(code, again, timeout=timeout, executor=ctx.executor, judge=job.judge,
                                              memory_mb=memory)

            results = await recheck_results(job.code, tests, results, times=ctx.recheck[0], timeout=timeout,
                                            fraction=ctx.recheck[1], run=rerun)
    except ExecutionError as exc:
        job.fail(common.problem_message(job.solution_file, job.problem_id, f"{job.model_key}: {exc}"))
        job.retry = True
        report_error(job.error or "")
        return
    job.done(ctx.results_log.append(job.key, finished_entry(job, results, tests, ctx)))
    if ctx.keep_results:
        job.results = results
    progress.job_done()


async def run_jobs(jobs: list[Job], ctx: RunContext, quiet: bool, every: float) -> None:
    """The pending jobs, a bounded number at a time: each holds only its own results until logged."""
    pending = [j for j in jobs if j.status == "ok" and j.recorded is None]
    progress = Progress(sum(j.total for j in pending), len(pending), quiet, every)
    slots = asyncio.Semaphore(max(4, common.semaphore_limit("exec")))

    async def one(job: Job) -> None:
        async with slots:
            await run_job(job, ctx, progress)

    reporter = asyncio.create_task(progress.report())
    try:
        await asyncio.gather(*(one(j) for j in pending))
    except asyncio.CancelledError:
        common.stop_executor(ctx.executor)  # Ctrl-C/SIGTERM: kill running tests now, do not wait for them
        raise
    finally:
        reporter.cancel()
        progress.close()
        await common.close_executor(ctx.executor)


def report_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def describe_job(job: Job, entry: dict[str, Any] | None) -> str:
    title = f"=== {job.solution_file} | problem {job.problem_id}"
    if job.name and job.name != f"problem {job.problem_id}":
        title += f" ({job.name})"
    if job.model_key:
        title += f" | {job.model_key}"
    if job.status == "error" or entry is None:
        return f"{title}: ERROR\n{job.error}\n"
    return f"{title}: {job.passed}/{job.total} passed\n{entry['feedback']}"


def ratio(passed: int, total: int) -> str:
    return f"{100.0 * passed / total:5.1f}%" if total else "    -"


def verdict_text(verdicts: dict[str, int]) -> str:
    return ", ".join(f"{v} {n}" for v, n in verdicts.items())


def add_counts(target: dict[str, Any], job: Job) -> None:
    target["passed"] += job.passed
    target["total"] += job.total
    for v, n in job.verdicts.items():
        target["verdicts"][v] = target["verdicts"].get(v, 0) + n


def new_counts() -> dict[str, Any]:
    return {"passed": 0, "total": 0, "verdicts": {}}


def order_verdicts(counts: dict[str, Any]) -> dict[str, Any]:
    counts["verdicts"] = {v: counts["verdicts"][v] for v in common.REPORTED_VERDICTS if v in counts["verdicts"]}
    return counts


def summarize(jobs: list[Job]) -> dict[str, Any]:
    """Totals over the jobs that ran: per file and model, per model, overall; errors counted apart."""
    by_file: dict[str, dict[str, dict[str, Any]]] = {}
    by_model: dict[str, dict[str, Any]] = {}
    overall = new_counts()
    for job in jobs:
        if job.status != "ok":
            continue
        key = job.model_key or ""
        for target in (by_file.setdefault(job.solution_file, {}).setdefault(key, new_counts()),
                       by_model.setdefault(key, new_counts()), overall):
            add_counts(target, job)
    for counts in [*by_model.values(), *(c for models in by_file.values() for c in models.values()), overall]:
        order_verdicts(counts)
    return {
        "evaluated": sum(1 for j in jobs if j.status == "ok"),
        "errors": sum(1 for j in jobs if j.status != "ok"),
        **overall,
        "by_model": by_model,
        "by_file": by_file,
    }


def total_row(label: str, key: str, counts: dict[str, Any]) -> tuple[str, ...]:
    return (label, "", key, f"{counts['passed']}/{counts['total']}", ratio(counts["passed"], counts["total"]),
            verdict_text(counts["verdicts"]))


def format_table(jobs: list[Job], summary: dict[str, Any]) -> str:
    """The summary table: one row per file, problem and model, then totals per file and model,
    per model over all files (when there are several), and overall."""
    rows = [("file", "problem", "model", "passed/total", "ratio", "verdicts")]
    for job in jobs:
        if job.status == "ok":
            rows.append((job.solution_file, str(job.problem_id), job.model_key or "-", f"{job.passed}/{job.total}",
                         ratio(job.passed, job.total), verdict_text(job.verdicts)))
        else:
            rows.append((job.solution_file, str(job.problem_id), job.model_key or "-", "-", "ERROR",
                         (job.error or "")[:100]))
    several = len(summary["by_file"]) > 1
    if several:
        for path, models in summary["by_file"].items():
            rows.extend(total_row(f"TOTAL {path}", key, counts) for key, counts in models.items())
    rows.extend(total_row("TOTAL", key, counts) for key, counts in summary["by_model"].items())
    rows.append(total_row("TOTAL", "all", summary))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths)) + "  " + row[5] for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    footer = f"{summary['evaluated']} evaluated, {summary['errors']} errors"
    return "\n".join(line.rstrip() for line in lines) + "\n" + footer + "\n"


def harness_counts(jobs: list[Job], results_log: ResultsLog) -> dict[str, int]:
    """Assert tests per harness that judged them (``literal``, ``split``, ``in_process``): only the
    last is a heuristic verdict."""
    counts: dict[str, int] = {}
    for job in jobs:
        for result in entry_of(job, results_log).get("results") or [] if job.status == "ok" else []:
            harness = result.get("harness")
            if isinstance(harness, str):
                counts[harness] = counts.get(harness, 0) + 1
    return counts


def entry_of(job: Job, results_log: ResultsLog) -> dict[str, Any]:
    return results_log.read(job.recorded) if job.status == "ok" and job.recorded else error_entry(job)


def output_chunks(jobs: list[Job], head: dict[str, Any], files: list[str], summary: dict[str, Any],
                  results_log: ResultsLog) -> Iterator[str]:
    """The ``--output`` document, one problem entry per line, read back from the log one at a time."""
    yield json.dumps(head, ensure_ascii=False)[:-1] + ', "files": [\n'
    for n, path in enumerate(files):
        yield ("" if n == 0 else ",\n") + '{"solution_file": ' + json.dumps(path, ensure_ascii=False) + ', "problems": [\n'
        entries = (entry_of(j, results_log) for j in jobs if j.solution_file == path)
        for m, entry in enumerate(entries):
            yield ("" if m == 0 else ",\n") + json.dumps(entry, ensure_ascii=False)
        yield "\n]}"
    yield '\n], "summary": ' + json.dumps(summary, ensure_ascii=False) + "}\n"


def write_output(path: str, jobs: list[Job], head: dict[str, Any], files: list[str], results_log: ResultsLog,
                 guard: InterruptGuard, summary: dict[str, Any] | None = None) -> None:
    """Atomic, and not interruptible: a Ctrl-C meanwhile takes effect once the file is complete."""
    with guard.deferred():
        common.write_atomic_chunks(path, output_chunks(jobs, head, files, summary or summarize(jobs), results_log))


def make_executor(args: argparse.Namespace) -> Executor:
    """``get_executor`` decides local or remote; each kind takes the options that apply to it."""
    return common.get_executor(args.executor, memory_mb=args.memory_mb, output_bytes=args.output_limit,
                               retries=args.retries, backoff=args.retry_backoff)


@contextmanager
def open_results_log(args: argparse.Namespace, fingerprint: dict[str, Any]) -> Iterator[ResultsLog]:
    """Beside ``--output`` (kept for a resume); without ``--output`` a temporary one (the results
    still leave memory as they finish)."""
    if args.output:
        results_log = ResultsLog(log_path_for(args.output), fingerprint)
        if args.restart:
            results_log.remove()
        try:
            yield results_log
        finally:
            results_log.close()
        return
    with tempfile.TemporaryDirectory(prefix="librarybench-feedback-") as tmp:
        results_log = ResultsLog(Path(tmp) / "results.checkpoint.jsonl", fingerprint)
        try:
            yield results_log
        finally:
            results_log.close()


def resume_from(jobs: list[Job], results_log: ResultsLog) -> int:
    """Mark the jobs the log already holds as done; returns how many."""
    recorded = results_log.scan()
    resumed = 0
    for job in jobs:
        if job.status == "ok" and job.key in recorded:
            job.done(recorded[job.key])
            resumed += 1
    return resumed


def evaluate(args: argparse.Namespace, guard: InterruptGuard) -> int:
    """The whole run; raises ``LibraryBenchError`` for usage errors (exit 2), all found before any test runs."""
    common.set_semaphore_limits(exec=args.exec_semaphore)
    selection = common.parse_problem_selection(args.problem_id, args.problem_ids, args.range_spec)
    if args.output:
        common.check_writable(args.output)
        common.check_writable(log_path_for(args.output))
    dataset_jobs.check_arguments(args)
    plan = dataset_jobs.plan(args, Job, selection) if args.problems else None
    if plan is not None:
        paths, files, jobs = list(plan.files), {path: [] for path in plan.files}, plan.jobs
    else:
        paths = args.solution_file or default_solution_files()
        files = load_all(paths)
        jobs = plan_jobs(files, args, selection)
    judge = judges.judge_from_args(args)
    audit_judges = judges.parse_judges(args.judges) if args.judges else None
    specials = special_judges.load(args.special_judges) if args.special_judges else None
    if specials is not None:
        check_special_judges(specials, files, jobs, plan, selection)
    assign_judges(jobs, judge, specials, plan)
    executor = make_executor(args)
    limit_settings = assign_limits(jobs, plan, args, executor)
    executor_info = (executor.name, executor.isolation)
    head = {"schema": OUTPUT_SCHEMA, "executor": executor_info[0], "isolation": executor_info[1],
            "timeout": args.timeout, "extract": args.extract, "results": "full" if args.full_results else "compact",
            "judge": judge.spec.as_dict(), "limits": limit_settings.as_dict()}
    with open_results_log(args, run_fingerprint(args, paths, executor, judge, specials, files)) as results_log:
        resumed = resume_from(jobs, results_log)
        if not args.quiet:
            limits_note = "" if args.limits == "global" else \
                f" (--limits {args.limits}: x{limit_settings.scale:g}, cap {limit_settings.cap:g} s)"
            print(f"Executor: {executor_info[0]} ({executor_info[1]}); timeout {args.timeout:g} s per test{limits_note}; "
                  f"extraction rule: {args.extract}; judge: {judge.spec}\n", flush=True)
        if resumed:
            print(f"resuming from {results_log.path}: {resumed} of {len(jobs)} evaluation(s) already done",
                  file=sys.stderr, flush=True)
        for job in jobs:
            if job.status == "error":
                report_error(job.error or "")
        if resumed and audit_judges:
            raise InputError(f"{results_log.path}: --judges needs every result of the run: rerun with --restart")
        ctx = RunContext(executor, args.timeout, args.feedback_budget, args.full_results, results_log,
                         keep_results=bool(audit_judges), fail_fast=args.fail_fast,
                         recheck=(args.recheck_timeouts, args.recheck_fraction) if args.recheck_timeouts else None)
        try:
            asyncio.run(run_jobs(jobs, ctx, args.quiet, args.progress_every))
        except (KeyboardInterrupt, asyncio.CancelledError):
            common.stop_executor(executor)
            if args.output:  # what finished is kept (and in the log, for a resume); the rest is marked
                for job in jobs:
                    if job.status == "ok" and job.recorded is None:
                        job.fail(common.problem_message(job.solution_file, job.problem_id, "interrupted"))
                write_output(args.output, jobs, head, list(files), results_log, guard)
            raise KeyboardInterrupt from None
        finally:
            if args.memory_mb is not None or args.output_limit is not None:
                executor.close()  # made for this run, not the shared one
        if not args.quiet:
            for job in jobs:
                print(describe_job(job, entry_of(job, results_log) if job.status == "ok" else None))
        summary = summarize(jobs)
        summary["judge"] = judge.spec.as_dict()
        summary["limits"] = limit_settings.as_dict()
        if args.recheck_timeouts:
            summary["flip_rate"] = flip_rate_of(jobs, results_log, args)
        if specials is not None:
            evaluations = ((j.solution_file, j.problem_id, j.model_key, j.special_judge) for j in jobs if j.status == "ok")
            summary["special_judges"] = special_judges.summary_block(evaluations, specials)
        if plan is not None:
            summary.update(dataset_jobs.scores(jobs, plan, args))
        harnesses = harness_counts(jobs, results_log)
        if harnesses:
            summary["assert_harnesses"] = harnesses
        print(format_table(jobs, summary), end="", flush=True)
        if harnesses.get("in_process"):
            common.report_warning_line(
                f"{harnesses['in_process']} assert test(s) judged by the in-process fallback (a value of the test's own "
                f"could not reach the answer's process): heuristic verdicts, see each result's 'harness'")
        if args.recheck_timeouts:
            print(flip_rate_line(summary["flip_rate"]), flush=True)
        if specials is not None:
            print(special_judges.summary_line(summary["special_judges"]), flush=True)
            for line in special_judges.warning_lines(summary["special_judges"]):
                print(line, file=sys.stderr, flush=True)
        if plan is not None:
            print(pass_at_k.format_report(summary["scores"]), end="", flush=True)
        if audit_judges:
            report = judges.audit(audit_items(jobs), audit_judges)
            print("\n" + judges.format_audit(report), end="", flush=True)
            head["audit"] = report.as_dict()
        if args.output:
            write_output(args.output, jobs, head, list(files), results_log, guard, summary)
            if not any(j.retry for j in jobs):
                results_log.remove()  # nothing left to resume (input errors are found again at once)
            if not args.quiet:
                print(f"Results written to {args.output}")
    return 1 if summary["errors"] else 0


def assign_limits(jobs: list[Job], plan: Any, args: argparse.Namespace, executor: Executor
                  ) -> problem_limits.LimitSettings:
    """Each job's timeout and memory limit (``--limits``): from its record's fields, read once per problem."""
    settings = problem_limits.settings_from_args(args)

    def fields(job: Job) -> dict[str, Any]:
        problem = plan.problems.get((job.solution_file, job.problem_id)) if plan is not None else None
        return problem.limit_fields if problem is not None else problem_limits.limit_fields(job.record)

    ok = [j for j in jobs if j.status == "ok"]
    limits = problem_limits.resolve(((j.solution_file, j.problem_id, fields(j)) for j in ok), settings, executor)
    for job in ok:
        job.limits = limits[(job.solution_file, job.problem_id)]
    return settings


def flip_rate_of(jobs: list[Job], results_log: ResultsLog, args: argparse.Namespace) -> dict[str, Any]:
    """The ``flip_rate`` block over every rechecked result of the run (read back from the log, one
    evaluation at a time, so resumed evaluations count too)."""
    tally = FlipTally(args.recheck_timeouts, args.recheck_fraction)
    for job in jobs:
        if job.status == "ok" and job.recorded is not None:
            tally.add(results_log.read(job.recorded).get("results") or [])
    return tally.block()


def flip_rate_line(block: dict[str, Any]) -> str:
    machine = block.get("machine") or {}
    where = f"load average {machine.get('load_average')}, {machine.get('cpu_count')} CPUs"
    if block["rate"] is None:
        return f"Timing rechecks: no test needed a recheck ({where})"
    lo, hi = block["ci"]
    return (f"Timing rechecks: {block['tests_rechecked']} test(s) rerun {block['recheck_times']} more time(s), "
            f"{block['unstable_tests']} unstable; flip rate {block['rate']:.3f} (95% interval {lo:.3f}-{hi:.3f}, "
            f"{block['flips']}/{block['reruns']} reruns) ({where})")


def check_special_judges(specials: special_judges.SpecialJudges, files: dict[str, list[Any]], jobs: list[Job],
                         plan: Any, selection: common.ProblemSelection | None) -> None:
    """A problem listed twice is a usage error; entries matching no problem are one warning line
    when the run covers every problem (with samples: every problem has some)."""
    if plan is None:
        problems = [(path, i, records[i]) for path, records in files.items()
                    for i in common.selected_indices(len(records), selection, path)]
    else:
        problems = [(path, index, identity_record(problem)) for (path, index), problem in plan.problems.items()]
    covers_all = selection is None and (plan is None or plan.without_samples == 0)
    for line in specials.check_problems(problems, covers_all):
        common.report_warning_line(line)


def identity_record(problem: Any) -> dict[str, Any]:
    """What a special-judge list matches a dataset problem on (``--problems`` jobs carry no record)."""
    return {"name": problem.name, "id": problem.task_id}


def assign_judges(jobs: list[Job], default: Any, specials: special_judges.SpecialJudges | None = None,
                  plan: Any = None) -> None:
    """Each job's judge: the record's own ``judge`` field, else its ``--special-judges`` entry, else the
    run's; a bad one is that problem's error."""
    for job in jobs:
        record = job.record
        problem = plan.problems.get((job.solution_file, job.problem_id)) if plan is not None else None
        try:
            job.judge, job.judge_from_record = judges.judge_from_record(
                record, default, str(Path(job.solution_file).resolve().parent))
            listed = identity_record(problem) if problem is not None else record
            entry = specials.lookup(job.problem_id, listed) if specials and not job.judge_from_record else None
            if entry is not None:
                job.judge, job.special_judge = special_judges.apply(entry, default, specials.path)
        except LibraryBenchError as exc:
            if job.status == "ok":
                job.fail(common.problem_message(job.solution_file, job.problem_id, f"judge: {exc}"))
                report_error(job.error or "")


def audit_items(jobs: list[Job]) -> list[judges.AuditItem]:
    return [judges.AuditItem(f"{j.solution_file} | problem {j.problem_id} | {j.model_key}", tuple(j.results or ()))
            for j in jobs if j.status == "ok"]


def main(argv: list[str] | None = None) -> int:
    guard = InterruptGuard()
    guard.install()
    import rejudge  # it imports this module (model_feedback's jobs and reports): loaded when used

    return run_main(build_parser(), argv, lambda args: rejudge.rejudge_file(args) if args.rejudge else evaluate(args, guard))


if __name__ == "__main__":
    sys.exit(main())
