"""model_feedback's ``--problems``/``--samples`` path: standard datasets in, jobs and pass@k out.

Owns the glue between ``dataset_formats`` (problems and samples), model_feedback's ``Job`` (one
sample of one problem) and ``pass_at_k`` (the scores in the summary). It is kept apart from
model_feedback.py so that the seed's ``--solution-file`` path stays exactly as it was.

Which programs run for a problem: with ``--samples``, that file's samples (label: the file's
stem); without it, the record's ``*_solution`` answers (as ``--solution-file`` does), else the
dataset's own reference solution (label ``reference``), run as written.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import dataset_formats as formats
import librarybench_common as common
import pass_at_k
from errors import InputError


@dataclass(frozen=True)
class Plan:
    jobs: list[Any]
    files: list[str]
    problems: dict[tuple[str, int], formats.Problem]
    without_samples: int
    fmt: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("standard datasets (see README: problem and samples files)")
    group.add_argument("--problems", metavar="FILE",
                       help="problems file (.json, .jsonl, .jsonl.gz, .parquet) of TACO/APPS, LiveCodeBench, "
                            "HumanEval, MBPP or CodeContests; replaces --solution-file")
    group.add_argument("--samples", metavar="FILE",
                       help="samples for --problems: evalplus samples.jsonl, LiveCodeBench [{question_id, "
                            "code_list}] or TACO generation.json [{task_id, output}]")
    group.add_argument("--format", dest="dataset_format", choices=formats.FORMATS,
                       help="the problems file's format (default: detected from its fields)")
    group.add_argument("--k", dest="ks", default="1,10,100", metavar="K,K,...",
                       help="pass@k values to report (those with k <= samples per problem)")
    group.add_argument("--start-date", metavar="YYYY-MM-DD", help="pass@k only over problems dated on or after")
    group.add_argument("--end-date", metavar="YYYY-MM-DD", help="pass@k only over problems dated on or before")
    group.add_argument("--fail-fast", action="store_true",
                       help="scoring runs: a sample's tests not yet started are skipped after its first failure "
                            "(verdict skipped, never counted as a failure); pass@k needs only whether all pass")


def check_arguments(args: argparse.Namespace) -> None:
    if getattr(args, "problems", None) is None:
        for flag, value in (("--samples", args.samples), ("--format", args.dataset_format),
                            ("--start-date", args.start_date), ("--end-date", args.end_date)):
            if value is not None:
                raise InputError(f"{flag} needs --problems")
        return
    if args.solution_file:
        raise InputError("--problems and --solution-file cannot be combined")
    try:
        args.k_values = pass_at_k.parse_ks(args.ks)
    except ValueError:
        raise InputError(f"--k needs positive integers separated by commas, got {args.ks!r}") from None


def plan(args: argparse.Namespace, make_job: Callable[..., Any],
         selection: list[int] | None) -> Plan:
    """Jobs for every selected problem and sample; unusable records and samples are error jobs."""
    path = args.problems
    fmt, loaded = formats.load_problems(path, args.dataset_format)
    jobs: list[Any] = [_error_job(make_job, message) for message in loaded.errors]
    total = len(loaded.items) + len(loaded.errors)
    indices, missing = common.select_problems(total, selection, path)
    chosen = set(indices)
    problems = [p for p in loaded.items if p.index in chosen]
    jobs = [j for j in jobs if j.problem_id in chosen]
    for index, message in missing:
        job = make_job(path, index, None)
        job.fail(message)
        jobs.append(job)
    files = [path]
    without = 0
    if args.samples:
        samples = formats.load_samples(args.samples, loaded.items)  # ids checked against every problem
        label = Path(args.samples).name.split(".")[0]
        by_task: dict[str, list[formats.Sample]] = {}
        for sample in samples.items:
            by_task.setdefault(sample.task_id, []).append(sample)
        for problem in problems:
            own = by_task.get(problem.task_id, [])
            without += not own
            jobs.extend(_sample_job(make_job, path, problem, label, s.index, s.code, len(own)) for s in own)
        if samples.errors:
            files.append(args.samples)
            jobs.extend(_error_job(make_job, message, args.samples) for message in samples.errors)
    else:
        for problem in problems:
            jobs.extend(_own_answer_jobs(make_job, path, problem, args.extract))
    jobs.sort(key=lambda j: (files.index(j.solution_file), j.problem_id))
    return Plan(jobs, files, {(path, p.index): p for p in problems}, without, fmt)


def _error_job(make_job: Callable[..., Any], message: str, path: str | None = None) -> Any:
    """``"<file>: problem 3: ..."`` or ``"<file>: sample 3: ..."`` -> an error job at that index."""
    head, _, rest = message.partition(": ")
    number = rest.split(":", 1)[0].split(" ")[-1]
    job = make_job(path or head, int(number) if number.isdigit() else -1, None)
    job.fail(message)
    return job


def _sample_job(make_job: Callable[..., Any], path: str, problem: formats.Problem, label: str, number: int,
                code: str, count: int) -> Any:
    name = problem.task_id if count == 1 else f"{problem.task_id} sample {number}"
    return make_job(path, problem.index, label, name, code=code, tests=problem.tests)


def _own_answer_jobs(make_job: Callable[..., Any], path: str, problem: formats.Problem, rule: str) -> list[Any]:
    jobs = []
    for key, answer in problem.answers.items():
        if key == "human_solution":
            continue
        job = make_job(path, problem.index, key, problem.task_id, tests=problem.tests)
        if isinstance(answer, str):
            job.code = formats.sample_program(answer, problem.kind, rule) if "```" in answer or \
                problem.kind != "stdio" else common.extract_code(answer, rule=rule)
        else:
            job.fail(common.problem_message(path, problem.index, f"the {key!r} answer is not a string"))
        jobs.append(job)
    if jobs:
        return jobs
    job = make_job(path, problem.index, "reference", problem.task_id, tests=problem.tests)
    if problem.reference is None:
        job.fail(common.problem_message(path, problem.index, "no samples (pass --samples) and no reference "
                                                             "solution in the record"))
    else:
        job.code = problem.reference
    return [job]


def problem_scores(jobs: list[Any], plan_: Plan, unscored_fail: bool = False) -> dict[str, list[pass_at_k.ProblemScore]]:
    """Per model label, one score per problem from its samples that ran (``unscored_fail``: the
    samples that ended in an error of the run count too, as failing every test)."""
    groups: dict[tuple[str, int, str], list[Any]] = {}
    for job in jobs:
        if (job.status == "ok" or unscored_fail) and (job.solution_file, job.problem_id) in plan_.problems:
            groups.setdefault((job.solution_file, job.problem_id, job.model_key or ""), []).append(job)
    per_label: dict[str, list[pass_at_k.ProblemScore]] = {}
    for (path, index, label), members in groups.items():
        problem = plan_.problems[(path, index)]
        scored = [j for j in members if j.status == "ok"]
        ratios = tuple(j.passed / j.total if j.total else 0.0 for j in scored) + (0.0,) * (len(members) - len(scored))
        per_label.setdefault(label, []).append(pass_at_k.ProblemScore(
            key=problem.task_id, n=len(members), c=sum(1 for j in scored if j.total and j.passed == j.total),
            ratios=ratios, difficulty=problem.difficulty, source=problem.source, date=problem.date))
    return per_label


def scores(jobs: list[Any], plan_: Plan, args: argparse.Namespace) -> dict[str, Any]:
    """The summary's pass@k section: overall, per model label when there are several."""
    per_label = problem_scores(jobs, plan_)
    every = [s for group in per_label.values() for s in group]
    overall = pass_at_k.report(every, args.k_values, args.start_date, args.end_date)
    unscored = [j for j in jobs if j.status != "ok" and (j.solution_file, j.problem_id) in plan_.problems]
    if unscored:  # errors of the run are no verdicts, but leaving them out may raise pass@k: say by how much
        overall["unscored_samples"] = len(unscored)
        as_failures = [s for group in problem_scores(jobs, plan_, unscored_fail=True).values() for s in group]
        overall["pass_at_k_unscored_as_failures"] = pass_at_k.report(
            as_failures, args.k_values, args.start_date, args.end_date)["pass_at_k"]
    section = {
        "format": plan_.fmt,
        "pass_at_k": overall["pass_at_k"],
        "strict_accuracy": overall["strict_accuracy"],
        "average_pass_ratio": overall["average_pass_ratio"],
        "problems_without_samples": plan_.without_samples,
        "split": {"public_tests": sum(len(p.public_tests) for p in plan_.problems.values()),
                  "private_tests": sum(len(p.private_tests) for p in plan_.problems.values()),
                  "scored_on": "public+private"},
        "scores": overall,
    }
    if unscored:
        section["unscored_samples"] = overall["unscored_samples"]
        section["pass_at_k_unscored_as_failures"] = overall["pass_at_k_unscored_as_failures"]
    if len(per_label) > 1:
        section["scores"]["by_model"] = {label: pass_at_k.report(s, args.k_values, args.start_date, args.end_date)
                                         for label, s in per_label.items()}
    return section

