"""model_feedback's ``--rejudge RESULTS.json``: judge a finished ``--output`` file again, running no program.

Owns reading a results file back into model_feedback's jobs (results as they were, the tests put
back from the solution file for a compact file), choosing each problem's judge again (the record's
own, else its ``--special-judges`` entry, else ``--judge``: a run's precedence) and writing the
re-judged document. A checker judge runs its checker, never the judged program. The table,
feedback, summary and ``--output`` are model_feedback's, so a re-judged file reads like a fresh
run with those judges. Kept apart from model_feedback.py, which only dispatches here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import judges
import librarybench_common as common
import model_feedback as feedback
import special_judges
from errors import ExecutionError, InputError

Job = feedback.Job
ProblemKey = tuple[str, int]  # (solution file as given, problem id)


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


def jobs_from_document(document: Any, path: str) -> tuple[list[Job], list[str]]:
    """The jobs of a finished ``--output`` file (results kept as they were), and its solution files."""
    try:
        file_docs = document["files"]
        jobs = [Job(f["solution_file"], int(p["problem_id"]), p.get("model_key"), p.get("name") or "",
                    code=p.get("code") or "", status=p.get("status", "ok"), error=p.get("error"),
                    results=with_tests(list(p.get("results") or []), p.get("code") or "", f["solution_file"],
                                       int(p["problem_id"])) if p.get("status", "ok") == "ok" else [],
                    judge_from_record=bool(p.get("judge_from_record")),
                    judge=recorded_judge(p, f["solution_file"]))
                for f in file_docs for p in f["problems"]]
        for job in jobs:
            job.tests = [r["test"] for r in job.results or []]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a results file of model_feedback.py --output ({type(exc).__name__}: {exc})") from None
    return jobs, [f["solution_file"] for f in file_docs]


def with_tests(results: list[dict[str, Any]], code: str, solution_file: str, index: int) -> list[dict[str, Any]]:
    """Results in the remote API's full shape: a compact ``--output`` keeps the program once per
    problem and the tests in the solution file, so they are put back from there."""
    if all("test" in r for r in results):
        return results
    tests = common.problem_tests(common.load_problems(solution_file)[index], index, solution_file)
    if len(tests) != len(results):
        raise InputError(f"{solution_file}: problem {index}: {len(tests)} tests, but the results file has "
                         f"{len(results)} results for it (was the file changed?)")
    return [{"code": code, "test": test, **r} for r, test in zip(results, tests)]


def recorded_judge(problem: dict[str, Any], solution_file: str) -> Any:
    """A judge the record itself chose keeps deciding that problem when it is re-judged."""
    if not problem.get("judge_from_record") or problem.get("status", "ok") != "ok":
        return None
    return judges.judge_from_record({"judge": problem.get("judge")}, None,
                                    str(Path(solution_file).resolve().parent))[0]


# --------------------------------------------------------------------------------------------
# --special-judges on a results file
# --------------------------------------------------------------------------------------------


def listed_records(jobs: list[Job], files: list[str]) -> tuple[dict[ProblemKey, Any], bool]:
    """What the list matches each problem of the results file on: its record in the solution file
    (a run matches a record's ``name`` or ``id``, which the results file does not keep), and
    whether the file holds every problem of its solution files (then unmatched entries are said,
    as after a run without a selection)."""
    identities: dict[ProblemKey, Any] = {}
    covers_all = True
    for path in files:
        records = common.load_problems(path)
        ids = {j.problem_id for j in jobs if j.solution_file == path}
        identities.update({(path, i): records[i] if 0 <= i < len(records) else {} for i in ids})
        covers_all = covers_all and ids == set(range(len(records)))
    return identities, covers_all


def check_special_judges(specials: special_judges.SpecialJudges, jobs: list[Job], files: list[str]
                         ) -> dict[ProblemKey, Any]:
    """A run's checks, before anything is judged: a problem listed twice is a usage error; entries
    matching no problem of the file are one warning line. Returns each problem's record."""
    identities, covers_all = listed_records(jobs, files)
    for line in specials.check_problems(((path, i, record) for (path, i), record in identities.items()), covers_all):
        common.report_warning_line(line)
    return identities


def assign_judges(jobs: list[Job], default: judges.Judge, specials: special_judges.SpecialJudges | None,
                  identities: dict[ProblemKey, Any]) -> None:
    """A run's precedence: the record's own judge (kept from the results file), else the
    problem's ``--special-judges`` entry, else ``--judge``."""
    for job in jobs:
        if job.status != "ok" or (job.judge_from_record and job.judge is not None):
            continue
        job.judge = default
        if specials is None:
            continue
        entry = specials.lookup(job.problem_id, identities.get((job.solution_file, job.problem_id)))
        if entry is not None:
            job.judge, job.special_judge = special_judges.apply(entry, default, specials.path)


# --------------------------------------------------------------------------------------------
# Re-judging
# --------------------------------------------------------------------------------------------


def rejudge_file(args: argparse.Namespace) -> int:
    """``--rejudge FILE``: judge a finished results file again; no program runs (a checker does)."""
    path = args.rejudge
    document = read_results(path)
    judge = judges.judge_from_args(args)
    audit_judges = judges.parse_judges(args.judges) if args.judges else None
    specials = special_judges.load(args.special_judges) if args.special_judges else None
    jobs, files = jobs_from_document(document, path)
    identities = check_special_judges(specials, jobs, files) if specials is not None else {}
    assign_judges(jobs, judge, specials, identities)
    executor = feedback.make_executor(args) if any(j.judge and j.judge.needs_execution for j in jobs) else None
    if not args.quiet:
        print(f"Re-judging {path} (executor of the run: {document.get('executor')}); judge: {judge.spec}\n", flush=True)
    asyncio.run(rejudge_all(jobs, executor))
    entries = {job.key: finished_entry(job, args.feedback_budget) for job in jobs if job.status == "ok"}
    if not args.quiet:
        for job in jobs:
            print(feedback.describe_job(job, entries.get(job.key)))
    summary = feedback.summarize(jobs)
    summary["judge"] = judge.spec.as_dict()
    if specials is not None:
        evaluations = ((j.solution_file, j.problem_id, j.model_key, j.special_judge) for j in jobs if j.status == "ok")
        summary["special_judges"] = special_judges.summary_block(evaluations, specials)
    print(feedback.format_table(jobs, summary), end="", flush=True)
    if specials is not None:
        print(special_judges.summary_line(summary["special_judges"]), flush=True)
        for line in special_judges.warning_lines(summary["special_judges"]):
            print(line, file=sys.stderr, flush=True)
    document = {key: value for key, value in document.items() if key not in ("files", "summary", "audit")}
    document["judge"] = judge.spec.as_dict()
    if audit_judges:
        report = judges.audit(feedback.audit_items(jobs), audit_judges)
        print("\n" + judges.format_audit(report), end="", flush=True)
        document["audit"] = report.as_dict()
    if args.output:
        document["files"] = [{"solution_file": f, "problems": [entries.get(j.key) or feedback.error_entry(j)
                                                             for j in jobs if j.solution_file == f]}
                             for f in files]
        document["summary"] = summary
        document["results"] = "full"
        common.write_atomic_json(args.output, document)
        if not args.quiet:
            print(f"Results written to {args.output}")
    return 1 if summary["errors"] else 0


async def rejudge_all(jobs: list[Job], executor: Any) -> None:
    """Every evaluated job under its judge; a failing checker is that problem's error of the run."""
    async def one(job: Job) -> None:
        try:
            job.results = await judges.rejudge_async(job.results or [], job.judge, executor=executor,
                                                     semaphore=common.exec_semaphore())
        except ExecutionError as exc:
            job.fail(common.problem_message(job.solution_file, job.problem_id, f"{job.model_key}: {exc}"))
            feedback.report_error(job.error or "")

    try:
        await asyncio.gather(*(one(j) for j in jobs if j.status == "ok"))
    finally:
        if executor is not None:
            await common.close_executor(executor)


def finished_entry(job: Job, budget: int) -> dict[str, Any]:
    """A re-judged problem's entry of ``--output`` (every result in the full shape)."""
    results = job.results or []
    job.passed, job.verdicts = common.count_passed(results), common.count_verdicts(results)
    return {"problem_id": job.problem_id, "name": job.name, "model_key": job.model_key, "status": "ok",
            "error": None, "passed": job.passed, "total": job.total, "verdicts": job.verdicts, "code": job.code,
            "feedback": common.format_feedback(results, job.tests or [], job.passed, job.total, budget=budget),
            "judge": job.judge.spec.as_dict() if job.judge is not None else None,
            "judge_from_record": job.judge_from_record,
            **({"special_judge": job.special_judge} if job.special_judge else {}), "results": results}
