"""Run every model answer in solution files against its stdin/stdout tests; print feedback and a summary.

    uv run python model_feedback.py                      # the sample files in data/, embedded executor
    uv run python model_feedback.py --solution-file ../shared/data/librarybench/o3mini_search_solutions.json \
        --include-human --extract first --output results.json

Exit status: 0 when every selected problem was evaluated, 1 when a problem had an input error
(bad record, problem id out of range) or an execution error (executor failure), each printed as
one line ``error: <file>: problem <i>: <message>``; 2 on a usage error (bad flag, missing,
unreadable or empty file, ``--executor remote`` without ``CYBER_URL``, unwritable ``--output``);
130 when interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

import dataset_jobs
import judges
import librarybench_common as common
import pass_at_k
from cli import OneLineParser, add_executor_flags, add_logging_flag, add_selection_flags, positive_int, run_async, run_main
from errors import ExecutionError, InputError, LibraryBenchError
from executors import Executor

HERE = Path(__file__).resolve().parent
SAMPLE_DIR = HERE / "data"
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
    parser.add_argument("--extract", choices=common.EXTRACT_RULES, default="best",
                        help="how the program is taken from a model answer: best (last complete program "
                             "among all blocks) or first (the seed's rule: first dashed block, else first "
                             "```python block)")
    parser.add_argument("--feedback-budget", type=positive_int, default=common.DEFAULT_FEEDBACK_BUDGET,
                        help="maximum characters of feedback printed per problem and model")
    judges.add_judge_arguments(parser)
    parser.add_argument("--output", metavar="PATH",
                        help="write per problem and model the result dicts and counts as JSON (atomically)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the summary table: no per-problem feedback, no progress bar")
    add_logging_flag(parser)
    dataset_jobs.add_arguments(parser)
    return parser


@dataclass
class Job:
    """One (file, problem, model key) evaluation and what came of it."""

    solution_file: str
    problem_id: int
    model_key: str | None
    name: str = ""
    code: str = ""
    tests: list[Any] = field(default_factory=list)
    status: str = "ok"
    error: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    feedback: str = ""
    finished: bool = False
    judge: Any = None  # judges.Judge: the run's, or the record's own
    judge_from_record: bool = False

    @property
    def passed(self) -> int:
        return common.count_passed(self.results)

    @property
    def total(self) -> int:
        return len(self.tests)

    def fail(self, message: str) -> None:
        self.status, self.error, self.results = "error", message, []


def default_solution_files() -> list[str]:
    files = sorted(str(p.relative_to(Path.cwd())) if p.is_relative_to(Path.cwd()) else str(p)
                   for p in SAMPLE_DIR.glob("*.json"))
    if not files:
        raise InputError(f"no sample files in {SAMPLE_DIR}: pass --solution-file")
    return files


def load_all(paths: list[str]) -> dict[str, list[Any]]:
    """Every file is read before anything runs: a missing or broken file is a usage error."""
    return {path: common.load_problems(path) for path in paths}


def keys_for(records: list[Any], args: argparse.Namespace) -> list[str]:
    if args.model_key:
        keys = list(args.model_key)
        if args.include_human and "human_solution" not in keys:
            keys.append("human_solution")
        return keys
    return common.solution_keys(records, include_human=args.include_human)


def plan_jobs(files: dict[str, list[Any]], args: argparse.Namespace, selection: list[int] | None) -> list[Job]:
    """One job per (file, problem, key); bad records become error jobs with a one-line message."""
    jobs: list[Job] = []
    for path, records in files.items():
        keys = keys_for(records, args)
        indices, missing = common.select_problems(len(records), selection, path)
        for index in indices:
            jobs.extend(plan_problem(path, records, index, keys, args.extract))
        for index, message in missing:  # an id out of range is an error of that problem only
            job = Job(path, index, None)
            job.fail(message)
            jobs.append(job)
    return jobs


def plan_problem(path: str, records: list[Any], index: int, keys: list[str], rule: str) -> list[Job]:
    record = records[index]
    name = str(record.get("name") or "") if isinstance(record, dict) else ""
    try:
        tests = common.problem_tests(record, index, path)
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
        job = Job(path, index, key, name, tests=tests)
        try:
            job.model_key = common.resolve_model_key(record, key)
            job.code = common.answer_program(record, job.model_key, rule=rule)
        except InputError as exc:
            job.fail(common.problem_message(path, index, exc))
        jobs.append(job)
    return jobs


async def run_job(job: Job, executor: Executor, timeout: float, on_result: Any, fail_fast: bool = False) -> None:
    """Run one job's tests; an executor failure marks the job as an error of the run, not as failed tests."""
    try:
        job.results = await common.run_tests(job.code, job.tests, timeout=timeout, executor=executor,
                                             on_result=on_result, judge=job.judge, fail_fast=fail_fast)
    except ExecutionError as exc:
        job.fail(common.problem_message(job.solution_file, job.problem_id, f"{job.model_key}: {exc}"))
        report_error(job.error or "")
    job.finished = True


async def run_jobs(jobs: list[Job], executor: Executor, timeout: float, quiet: bool, fail_fast: bool = False) -> None:
    runnable = [j for j in jobs if j.status == "ok"]
    total = sum(len(j.tests) for j in runnable)
    with tqdm(total=total, unit="test", desc="tests", file=sys.stderr, disable=True if quiet else None,
              dynamic_ncols=True) as bar:
        def tick(_result: dict[str, Any]) -> None:
            bar.update(1)

        try:
            await asyncio.gather(*(run_job(j, executor, timeout, tick, fail_fast) for j in runnable))
        except asyncio.CancelledError:
            common.stop_executor(executor)  # Ctrl-C/SIGTERM: kill running tests now, do not wait for them
            raise
        finally:
            await common.close_executor(executor)


def report_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def describe_job(job: Job) -> str:
    title = f"=== {job.solution_file} | problem {job.problem_id}"
    if job.name:
        title += f" ({job.name})"
    if job.model_key:
        title += f" | {job.model_key}"
    if job.status == "error":
        return f"{title}: ERROR\n{job.error}\n"
    return f"{title}: {job.passed}/{job.total} passed\n{job.feedback}"


def ratio(passed: int, total: int) -> str:
    return f"{100.0 * passed / total:5.1f}%" if total else "    -"


def verdict_text(verdicts: dict[str, int]) -> str:
    return ", ".join(f"{v} {n}" for v, n in verdicts.items())


def add_counts(target: dict[str, Any], job: Job) -> None:
    target["passed"] += job.passed
    target["total"] += job.total
    for v, n in common.count_verdicts(job.results).items():
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
                         ratio(job.passed, job.total), verdict_text(common.count_verdicts(job.results))))
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


def output_document(jobs: list[Job], executor_info: tuple[str, str], args: argparse.Namespace, files: list[str],
                    summary: dict[str, Any]) -> dict[str, Any]:
    """``executor_info`` is (name, isolation), read before the run (the executor may be closed now)."""
    return {
        "executor": executor_info[0],
        "isolation": executor_info[1],
        "timeout": args.timeout,
        "extract": args.extract,
        "files": [
            {"solution_file": path,
             "problems": [job_document(j) for j in jobs if j.solution_file == path]}
            for path in files
        ],
        "judge": judges.judge_from_args(args).spec.as_dict(),
        "summary": summary,
    }


def job_document(job: Job) -> dict[str, Any]:
    return {
        "problem_id": job.problem_id,
        "name": job.name,
        "model_key": job.model_key,
        "status": job.status,
        "error": job.error,
        "passed": job.passed if job.status == "ok" else None,  # an error is no test result at all
        "total": job.total if job.status == "ok" else None,
        "verdicts": common.count_verdicts(job.results),
        "judge": job.judge.spec.as_dict() if job.judge is not None else None,
        "judge_from_record": job.judge_from_record,
        "code": job.code,
        "results": job.results,
    }


def make_executor(args: argparse.Namespace) -> Executor:
    """``get_executor`` decides local or remote; each kind takes the options that apply to it."""
    return common.get_executor(args.executor, memory_mb=args.memory_mb, output_bytes=args.output_limit,
                               retries=args.retries, backoff=args.retry_backoff)


def evaluate(args: argparse.Namespace) -> int:
    """The whole run; raises ``LibraryBenchError`` for usage errors (exit 2)."""
    common.set_semaphore_limits(exec=args.exec_semaphore)
    selection = common.parse_problem_selection(args.problem_id, args.problem_ids, args.range_spec)
    dataset_jobs.check_arguments(args)
    plan = dataset_jobs.plan(args, Job, selection) if args.problems else None
    files: Any = plan.files if plan else load_all(args.solution_file or default_solution_files())
    for path, records in (files.items() if plan is None else ()):
        if not records:
            raise InputError(f"{path}: the file has no problems (an empty list)")
    judge = judges.judge_from_args(args)
    audit_judges = judges.parse_judges(args.judges) if args.judges else None
    executor = make_executor(args)
    executor_info = (executor.name, executor.isolation)
    if not args.quiet:
        print(f"Executor: {executor_info[0]} ({executor_info[1]}); timeout {args.timeout:g} s per test; "
              f"extraction rule: {args.extract}; judge: {judge.spec}\n", flush=True)
    jobs = plan.jobs if plan else plan_jobs(files, args, selection)
    assign_judges(jobs, files if plan is None else {}, judge)  # dataset problems take the run's judge
    for job in jobs:
        if job.status == "error":
            report_error(job.error or "")
    try:
        run_async(run_jobs(jobs, executor, args.timeout, args.quiet, args.fail_fast))
    except (KeyboardInterrupt, asyncio.CancelledError):
        common.stop_executor(executor)
        if args.output:  # what finished is kept; the rest is marked as interrupted
            for job in jobs:
                if job.status == "ok" and not job.finished:
                    job.fail(common.problem_message(job.solution_file, job.problem_id, "interrupted"))
            try:
                common.write_atomic_json(args.output, output_document(jobs, executor_info, args, list(files),
                                                                      summarize(jobs)))
            except LibraryBenchError as exc:
                report_error(str(exc))
        raise KeyboardInterrupt from None
    finally:
        if args.memory_mb is not None or args.output_limit is not None:
            executor.close()  # made for this run, not the shared one
    for job in jobs:
        if job.status == "ok":
            job.feedback = common.format_feedback(job.results, job.tests, job.passed, job.total,
                                                  budget=args.feedback_budget)
            if not job.code.strip():
                job.feedback = "(no code found in the answer)\n" + job.feedback
        if not args.quiet:
            print(describe_job(job))
    return finish(jobs, args, executor_info, list(files), audit_judges, plan)


def finish(jobs: list[Job], args: argparse.Namespace, executor_info: tuple[str, str], files: list[str],
           audit_judges: list[Any] | None, plan: Any = None) -> int:
    """The summary table, the audit when asked for, and the JSON output (a fresh run or a re-judged file)."""
    summary = summarize(jobs)
    summary["judge"] = judges.judge_from_args(args).spec.as_dict()
    if plan:
        summary.update(dataset_jobs.scores(jobs, plan, args))
    print(format_table(jobs, summary), end="", flush=True)
    if plan:
        print(pass_at_k.format_report(summary["scores"]), end="", flush=True)
    document = output_document(jobs, executor_info, args, files, summary)
    if audit_judges:
        report = judges.audit(audit_items(jobs), audit_judges)
        print("\n" + judges.format_audit(report), end="", flush=True)
        document["audit"] = report.as_dict()
    if args.output:
        common.write_atomic_json(args.output, document)
        if not args.quiet:
            print(f"Results written to {args.output}")
    return 1 if summary["errors"] else 0


def assign_judges(jobs: list[Job], files: dict[str, list[Any]], default: Any) -> None:
    """Each job's judge: the record's own ``judge`` field, else the run's; a bad one is that problem's error."""
    for job in jobs:
        records = files.get(job.solution_file) or []
        record = records[job.problem_id] if 0 <= job.problem_id < len(records) else None
        try:
            job.judge, job.judge_from_record = judges.judge_from_record(
                record, default, str(Path(job.solution_file).resolve().parent))
        except LibraryBenchError as exc:
            if job.status == "ok":
                job.fail(common.problem_message(job.solution_file, job.problem_id, f"judge: {exc}"))
                report_error(job.error or "")


def audit_items(jobs: list[Job]) -> list[judges.AuditItem]:
    return [judges.AuditItem(f"{j.solution_file} | problem {j.problem_id} | {j.model_key}", tuple(j.results))
            for j in jobs if j.status == "ok"]


def jobs_from_document(document: Any, path: str) -> tuple[list[Job], list[str]]:
    """The jobs of a finished ``--output`` file (results kept as they were), and its solution files."""
    try:
        file_docs = document["files"]
        jobs = [Job(f["solution_file"], int(p["problem_id"]), p.get("model_key"), p.get("name") or "",
                    code=p.get("code") or "", tests=[r["test"] for r in p.get("results") or []],
                    status=p.get("status", "ok"), error=p.get("error"), results=list(p.get("results") or []),
                    finished=True, judge_from_record=bool(p.get("judge_from_record")),
                    judge=recorded_judge(p, f["solution_file"]))
                for f in file_docs for p in f["problems"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a results file of model_feedback.py --output ({type(exc).__name__}: {exc})") from None
    return jobs, [f["solution_file"] for f in file_docs]


def recorded_judge(problem: dict[str, Any], solution_file: str) -> Any:
    """A judge the record itself chose keeps deciding that problem when it is re-judged."""
    if not problem.get("judge_from_record") or problem.get("status", "ok") != "ok":
        return None
    return judges.judge_from_record({"judge": problem.get("judge")}, None,
                                    str(Path(solution_file).resolve().parent))[0]


def rejudge_file(args: argparse.Namespace) -> int:
    """``--rejudge FILE``: judge a finished results file again; no program runs (a checker does)."""
    path = args.rejudge
    document = read_results(path)
    judge = judges.judge_from_args(args)
    audit_judges = judges.parse_judges(args.judges) if args.judges else None
    jobs, files = jobs_from_document(document, path)
    executor = make_executor(args) if judge.needs_execution or any(j.judge and j.judge.needs_execution for j in jobs) else None
    if not args.quiet:
        print(f"Re-judging {path} (executor of the run: {document.get('executor')}); judge: {judge.spec}\n", flush=True)

    async def rejudge_job(job: Job) -> None:
        job.judge = job.judge if job.judge_from_record and job.judge is not None else judge
        try:
            job.results = await judges.rejudge_async(job.results, job.judge, executor=executor,
                                                     semaphore=common.exec_semaphore())
        except ExecutionError as exc:  # a checker failed: an error of the run
            job.fail(common.problem_message(job.solution_file, job.problem_id, f"{job.model_key}: {exc}"))
            report_error(job.error or "")

    async def rejudge_all() -> None:
        try:
            await asyncio.gather(*(rejudge_job(j) for j in jobs if j.status == "ok"))
        finally:
            if executor is not None:
                await common.close_executor(executor)

    asyncio.run(rejudge_all())
    for job in jobs:
        if job.status == "ok":
            job.feedback = common.format_feedback(job.results, job.tests, job.passed, job.total,
                                                  budget=args.feedback_budget)
        if not args.quiet:
            print(describe_job(job))
    info = (str(document.get("executor", "?")), str(document.get("isolation", "?")))
    args.timeout, args.extract = document.get("timeout", args.timeout), document.get("extract", args.extract)
    return finish(jobs, args, info, files, audit_judges)


def read_results(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as exc:
        raise InputError(f"cannot read results file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise InputError(f"{path}: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise InputError(f"{path}: not a results file of model_feedback.py --output (not a JSON object)")
    return document


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv, lambda args: rejudge_file(args) if args.rejudge else evaluate(args))


if __name__ == "__main__":
    sys.exit(main())
