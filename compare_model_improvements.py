"""Did repair help, on which problems, and is the gain real?

Re-runs the original and the improved program of every problem on the same tests, with the same
executor and limits, in one run (numbers stored in the files are never trusted), then reports per
problem and overall figures, a paired significance test over problems, the feedback/held-out split
and the tokens/cost recorded by the repair run's summary (read by ``repair_summary.read_summary``;
each problem becomes one ``ComparisonRow``). Output: a terminal table, a JSON file
(``--output-file``) and a self-contained HTML report with plots (``--report``).

Exit status: 0 on success, 1 when some problems could not be measured (a bad record, a missing or
non-string original answer, a problem id out of range, an executor failure: each printed as one
line ``error: <file>: problem <i>: <message>`` on stderr and left out of every figure), 2 on a user
error (one line ``error: ...`` on stderr), 130 when interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, NotRequired, Sequence, TypedDict

from tqdm import tqdm

import compare_judges
import judges
import librarybench_common as common
import problem_limits
from atomic_io import write_atomic_json
from cli import (OneLineParser, add_executor_flags, add_extract_flag, add_logging_flag, add_selection_flags,
                 non_negative_int, run_async, run_main)
from cli import fraction as fraction_arg
from errors import ConfigError, ExecutionError, InputError, problem_line
from executors import Executor
from improvement_stats import paired_significance
from records import VERDICTS
import special_judges
import strategy_compare
from repair_summary import (  # noqa: F401  (iteration_ratios: the reader's, re-exported)
    IMPROVED_PREFIX,
    RESAMPLED_PREFIX,
    StoredProblem,
    SummaryView,
    improved_key,
    improved_model_keys,
    iteration_ratios,
    parse_summary,
    read_summary,
    resampled_key,
)
from timing_recheck import DEFAULT_RECHECK_FRACTION, FlipTally, recheck_results, unstable_indices

log = logging.getLogger("librarybench.compare")

SCHEMA = "librarybench.comparison/1"
DEFAULT_MODEL_KEY = "claude_solution"
MOST_IMPROVED = 5
LEAKAGE_WARNING = (
    "The repair run scored its iterations on the tests the model was shown (scores_on_shown_tests is true): "
    "this improvement is measured on tests the model saw and may overstate how well the repaired programs "
    "generalise. Re-run the repair with --feedback-tests K to get held-out figures."
)


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProblemPlan:
    """What to run for one problem: its tests and the two programs (``None``: no improved answer)."""

    index: int
    name: str
    tests: list[Any]
    original_code: str
    improved_code: str | None
    no_original_answer: bool = False
    resampled_code: str | None = None  # resampled_<key>: the equal-budget baseline's program
    extra_codes: tuple[str, ...] = ()  # programs kept along the way (pass rate against tokens)
    judge: Any = None  # the record's own judge or its --special-judges entry's (None: the run's)
    judge_from_record: bool = False
    special_judge: dict[str, Any] | None = None  # special_judges.apply's block


@dataclass(frozen=True)
class Measurement:
    """One program's results on a problem's tests, in test order."""

    passed_flags: tuple[bool, ...]
    verdicts: dict[str, int] = field(default_factory=dict)
    unstable: tuple[int, ...] = ()  # 0-based tests a --recheck-timeouts rerun found unstable
    results: tuple[dict[str, Any], ...] = field(default=(), repr=False, compare=False)  # kept for --judges

    @property
    def passed(self) -> int:
        return sum(self.passed_flags)

    @property
    def total(self) -> int:
        return len(self.passed_flags)

    @property
    def ratio(self) -> float:
        return self.passed / self.total if self.total else 0.0


@dataclass(frozen=True)
class Settings:
    """How programs are run: identical for the original and the improved program."""

    executor: Executor
    timeout: float
    source: str = ""  # the original file (named in per-problem error lines)
    judge: Any = None  # judges.Judge of the comparison (None: exact), the same for both programs
    recheck: FlipTally | None = None  # --recheck-timeouts: its counts, added up as programs run
    limits: Mapping[int, Any] = field(default_factory=dict)  # problem_limits.ProblemLimits per problem (--limits)
    memory_mb: int | None = None  # this problem's own memory limit (set per problem from ``limits``)
    keep_results: bool = False  # --judges: keep every result to judge again


class SubsetFigures(TypedDict):
    """A problem's pass counts on its feedback or held-out tests, re-measured by this run."""

    tests: int
    original_passed: int
    original_ratio: float
    improved_passed: int
    improved_ratio: float
    improvement: float


class ComparisonRow(TypedDict):
    """One row of ``problem_details``: the seed's keys plus verdicts, flags and summary figures.
    Counts are null for a problem in error (it is left out of every figure)."""

    problem_id: int
    name: str
    no_improved_answer: bool | None
    no_original_answer: bool | None
    iteration_ratios: list[float | None] | None
    status: str  # improved, unchanged, worse or error
    error: str | None
    original_passed: int | None
    original_total: int | None
    original_ratio: float | None
    improved_passed: int | None
    improved_total: int | None
    improved_ratio: float | None
    improvement: float | None
    original_verdicts: dict[str, int] | None
    improved_verdicts: dict[str, int] | None
    same_program: bool | None
    split: dict[str, Any] | None
    rests_on_unstable: NotRequired[bool | None]  # set by compare(): the change rests on an unstable verdict
    judge: NotRequired[dict[str, Any] | None]  # set by compare(): the judge of both programs
    judge_from_record: NotRequired[bool | None]
    special_judge: NotRequired[dict[str, Any] | None]  # set by compare(): the --special-judges entry applied


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        description="Re-run original and improved programs on the same tests and report whether repair helped.",
    )
    parser.add_argument("--original-file", required=True,
                        help="solution file with the original answers (JSON list of problem records); "
                             "paths are used as given (no data/ prefix is added)")
    parser.add_argument("--improved-file", required=True,
                        help="output of iterative_repair.py: the same records with improved_<model key> answers")
    parser.add_argument("--model-key", default=None,
                        help=f"answer key to compare, e.g. o3_mini_solution (default: {DEFAULT_MODEL_KEY} when present, "
                             "else the improved file's single improved_<key>, else the original's single *_solution key)")
    add_selection_flags(parser, "compare")
    add_extract_flag(parser)
    parser.add_argument("--output-file", default=None, help="write the full comparison as JSON to this file")
    parser.add_argument("--report", default=None, metavar="FILE.html",
                        help="write a self-contained HTML report with plots (works offline)")
    summary = parser.add_mutually_exclusive_group()
    summary.add_argument("--summary-file", default=None,
                         help="the repair run's summary JSON (default: summary_<improved file name> beside the "
                              "improved file, when it exists)")
    summary.add_argument("--no-summary", action="store_true", help="ignore the repair summary even when one is found")
    add_executor_flags(parser, timeout_help="seconds per test, the same for both programs", local_limits=True)
    problem_limits.add_limit_flags(parser)
    parser.add_argument("--recheck-timeouts", type=non_negative_int, default=0, metavar="K",
                        help="rerun every timeout, and every pass slower than --recheck-fraction of the limit, K more "
                             "times: improvements and regressions resting on an unstable verdict are counted")
    parser.add_argument("--recheck-fraction", type=fraction_arg, default=DEFAULT_RECHECK_FRACTION,
                        help="passes slower than this fraction of --timeout are rechecked too")
    parser.add_argument("--quiet", action="store_true", help="no terminal table and no progress bar")
    judges.add_judge_arguments(parser, audit=False)
    judges.add_audit_flag(parser, "tests passed, fully passing and improved/worse problems")
    parser.add_argument("--special-judges", metavar="FILE",
                        help="per-problem judges from a special-judge list, as model_feedback.py --special-judges")
    parser.add_argument("--feedback-audit", metavar="RESULTS.json",
                        help="show in the report the judge audit that a model_feedback.py --judges run "
                             "stored in its --output")
    add_logging_flag(parser, help="logging level on stderr")
    return parser


# --------------------------------------------------------------------------------------------
# Loading and lining up the files
# --------------------------------------------------------------------------------------------


def check_alignment(original: list[Any], improved: list[Any], original_path: str, improved_path: str) -> None:
    """Refuse files whose problems do not line up: a comparison of different problems is meaningless."""
    if len(original) != len(improved):
        raise InputError(f"{original_path} has {len(original)} problems but {improved_path} has {len(improved)}: "
                         "the files do not line up")
    for index, (a, b) in enumerate(zip(original, improved)):
        if not isinstance(a, dict) or not isinstance(b, dict):
            bad = original_path if not isinstance(a, dict) else improved_path
            raise InputError(f"{bad}: problem {index}: record is not a JSON object")
        if a.get("problem") != b.get("problem"):
            raise InputError(f"{original_path} and {improved_path} differ at problem {index}: "
                             "the problem statements are not the same")


def original_model_keys(records: list[Any]) -> list[str]:
    return [k for k in common.solution_keys(records) if not k.startswith(IMPROVED_PREFIX)]


def infer_model_key(original: list[Any], improved: list[Any], requested: str | None) -> str:
    """The answer key to compare; see ``--model-key``. One-line error listing choices when ambiguous."""
    from_improved = improved_model_keys(improved, (IMPROVED_PREFIX, RESAMPLED_PREFIX))
    from_original = original_model_keys(original)
    known = from_improved + [k for k in from_original if k not in from_improved]
    choices = ", ".join(known) or "none"
    if requested:
        key = common.match_model_key(requested, known)
        if key is not None:
            return key
        raise ConfigError(f"--model-key {requested!r} not found in either file (choices: {choices})")
    if DEFAULT_MODEL_KEY in known:
        return DEFAULT_MODEL_KEY
    if len(from_improved) == 1:
        return from_improved[0]
    if not from_improved and len(from_original) == 1:
        return from_original[0]
    raise ConfigError(f"cannot infer the model key (choices: {choices}): pass --model-key")


def display_name(record: dict[str, Any], index: int) -> str:
    """A short printable label: the record's name or the statement's first line that is not boilerplate."""
    return common.problem_name(record, index)  # skips CodeChef's "Read problems statements..." line


def plan_problem(index: int, original: dict[str, Any], improved: dict[str, Any], model_key: str,
                 original_path: str, stored: StoredProblem | None = None, strategies: Sequence[str] = (),
                 rule: str = "best") -> ProblemPlan:
    """Tests come from the original file; a missing or empty improved answer means 'no improved answer'.

    The original answer is taken as ``answer_program`` does (``human_solution`` verbatim, model
    answers extracted by ``rule``, as are the improved and resampled answers); a missing or
    non-string original answer is an ``InputError`` for this problem (reported, left out of every
    figure), never an empty program counted as failing.
    """
    tests = common.problem_tests(original, index, original_path)
    try:
        original_code = common.answer_program(original, model_key, rule=rule)
    except InputError as exc:
        raise exc.at(original_path, index) from None
    answer = improved.get(improved_key(model_key))
    resampled = improved.get(resampled_key(model_key))
    return ProblemPlan(
        index=index,
        name=display_name(original, index),
        tests=tests,
        original_code=original_code,
        improved_code=common.extract_code(answer, rule=rule) if isinstance(answer, str) and answer.strip() else None,
        no_original_answer=not original_code.strip(),
        resampled_code=(common.extract_code(resampled, rule=rule)
                        if isinstance(resampled, str) and resampled.strip() else None),
        extra_codes=tuple(strategy_compare.programs_to_measure(stored, strategies)),
    )


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


async def measure(code: str, tests: list[Any], settings: Settings, on_result: Callable[[Any], None]) -> Measurement:
    results = await common.run_tests(code, tests, timeout=settings.timeout, executor=settings.executor,
                                     on_result=on_result, judge=settings.judge, memory_mb=settings.memory_mb)
    if settings.recheck is not None:
        async def rerun(program: str, again: list[Any]) -> list[dict[str, Any]]:
            return await common.run_tests(program, again, timeout=settings.timeout, executor=settings.executor,
                                          judge=settings.judge, memory_mb=settings.memory_mb)

        results = await recheck_results(code, tests, results, times=settings.recheck.times, timeout=settings.timeout,
                                        fraction=settings.recheck.fraction, run=rerun)
        settings.recheck.add(results)
    return Measurement(tuple(bool(r.get("passed")) for r in results), common.count_verdicts(results),
                       tuple(unstable_indices(results)), tuple(results) if settings.keep_results else ())


Outcome = tuple[Measurement, Measurement | None, dict[str, Measurement]]


def other_programs(plan: ProblemPlan) -> list[str]:
    """The resampled program and the programs kept along the way, each once, not the two compared."""
    codes = [c for c in (plan.resampled_code, *plan.extra_codes) if c]
    return [c for c in dict.fromkeys(codes) if c not in (plan.original_code, plan.improved_code)]


async def measure_problem(plan: ProblemPlan, settings: Settings, on_result: Callable[[Any], None]) -> Outcome:
    """All programs concurrently; an identical program is run once so it cannot differ from itself.
    Returns (original, improved or None, every program measured by its code)."""
    if plan.index in settings.limits:  # --limits: both programs under the problem's own limits
        own = settings.limits[plan.index]
        settings = replace(settings, timeout=own.timeout, memory_mb=own.call_memory_mb)
    if plan.judge is not None:
        settings = replace(settings, judge=plan.judge)
    others = other_programs(plan)
    same = plan.improved_code is None or plan.improved_code == plan.original_code
    codes = [plan.original_code] + ([] if same else [plan.improved_code]) + others
    measured = await asyncio.gather(*(measure(c, plan.tests, settings, on_result) for c in codes))  # type: ignore[arg-type]
    by_code = dict(zip(codes, measured))
    before = measured[0]
    after = None if plan.improved_code is None else by_code[plan.improved_code]
    return before, after, by_code  # type: ignore[return-value]


def count_runs(plan: ProblemPlan) -> int:
    same = plan.improved_code is None or plan.improved_code == plan.original_code
    return len(plan.tests) * ((1 if same else 2) + len(other_programs(plan)))


async def measure_all(plans: list[ProblemPlan], settings: Settings, quiet: bool
                      ) -> list[Outcome | ExecutionError]:
    """All problems at once under the global execution semaphore; infrastructure errors stay per problem."""
    bar = tqdm(total=sum(count_runs(p) for p in plans), unit="test", desc="running tests",
               disable=True if quiet else None, file=sys.stderr)

    async def one(plan: ProblemPlan) -> Outcome | ExecutionError:
        try:
            return await measure_problem(plan, settings, lambda _result: bar.update(1))
        except ExecutionError as exc:
            common.report_problem_error(settings.source, plan.index, exc)
            return exc

    try:
        return list(await asyncio.gather(*(one(p) for p in plans)))
    except asyncio.CancelledError:
        common.stop_executor(settings.executor)  # Ctrl-C/SIGTERM: kill running tests now
        raise
    finally:
        bar.close()
        await common.close_executor(settings.executor)


# --------------------------------------------------------------------------------------------
# Figures from the repair summary (read by repair_summary.read_summary)
# --------------------------------------------------------------------------------------------


def subset_figures(before: Measurement, after: Measurement, indices: Sequence[int]) -> SubsetFigures | None:
    """Pass counts on a subset of tests (1-based indices), re-measured from this run."""
    picked = [i - 1 for i in indices if 1 <= i <= before.total]
    if not picked:
        return None
    b = sum(before.passed_flags[i] for i in picked)
    a = sum(after.passed_flags[i] for i in picked)
    n = len(picked)
    return {"tests": n, "original_passed": b, "original_ratio": b / n, "improved_passed": a,
            "improved_ratio": a / n, "improvement": (a - b) / n}


def problem_split(stored: StoredProblem | None, before: Measurement, after: Measurement) -> dict[str, Any] | None:
    """Feedback/held-out figures: re-measured when the summary names the test indices, else as the summary stored them."""
    if stored is None or stored.held_out is None:
        return None
    feedback_part, held_part = stored.feedback, stored.held_out
    if feedback_part and feedback_part.test_indices and held_part.test_indices:
        feedback = subset_figures(before, after, feedback_part.test_indices)
        held_out = subset_figures(before, after, held_part.test_indices)
        if feedback and held_out:
            return {"source": "re-run", "feedback": feedback, "held_out": held_out}
    split: dict[str, Any] = {"source": "summary"}
    for name, part in (("feedback", feedback_part), ("held_out", held_part)):
        if part is None or part.initial_ratio is None or part.final_ratio is None:
            return None
        split[name] = {"original_ratio": part.initial_ratio, "improved_ratio": part.final_ratio,
                       "improvement": part.final_ratio - part.initial_ratio}
    return split


def summary_disagreements(stored: StoredProblem | None, before: Measurement, after: Measurement | None,
                          problem_id: int) -> list[dict[str, Any]]:
    """Where the summary's stored counts differ from this re-run on the same number of tests."""
    found = []
    for which, measured in (("initial", before), ("final", after)):
        block = None if stored is None else stored.initial if which == "initial" else stored.final
        if measured is None or block is None:
            continue
        if block.total == measured.total and block.passed is not None and block.passed != measured.passed:
            found.append({"problem_id": problem_id, "which": which, "summary_passed": block.passed,
                          "rerun_passed": measured.passed, "total": measured.total})
    return found


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def status_of(before: Measurement, after: Measurement) -> str:
    # Same tests on both sides, so comparing pass counts avoids float ties.
    return "improved" if after.passed > before.passed else "worse" if after.passed < before.passed else "unchanged"


def problem_row(problem_id: int, name: str, *, status: str, error: str | None = None,
                no_improved_answer: bool | None = None, no_original_answer: bool | None = None,
                iteration_ratios: list[float | None] | None = None, before: Measurement | None = None,
                after: Measurement | None = None, same_program: bool | None = None,
                split: dict[str, Any] | None = None) -> ComparisonRow:
    """The one constructor of a ``problem_details`` row; without measurements every count is null."""
    measured = before is not None and after is not None
    return {
        "problem_id": problem_id, "name": name, "no_improved_answer": no_improved_answer,
        "no_original_answer": no_original_answer, "iteration_ratios": iteration_ratios,
        "status": status, "error": error,
        "original_passed": before.passed if measured else None, "original_total": before.total if measured else None,
        "original_ratio": before.ratio if measured else None,
        "improved_passed": after.passed if measured else None, "improved_total": after.total if measured else None,
        "improved_ratio": after.ratio if measured else None,
        "improvement": after.ratio - before.ratio if measured else None,  # type: ignore[union-attr]
        "original_verdicts": before.verdicts if measured else None,
        "improved_verdicts": after.verdicts if measured else None,
        "same_program": same_program, "split": split,
    }


def problem_detail(plan: ProblemPlan, outcome: Outcome | ExecutionError,
                   stored: StoredProblem | None) -> ComparisonRow:
    """One problem's row of ``problem_details`` (the seed's keys plus verdicts, flags and summary figures)."""
    flags = {"no_improved_answer": plan.improved_code is None, "no_original_answer": plan.no_original_answer,
             "iteration_ratios": stored.iteration_ratios if stored else None}
    if isinstance(outcome, ExecutionError):
        return problem_row(plan.index, plan.name, status="error", error=str(outcome), **flags)
    before, measured_after, _ = outcome
    after = measured_after or before
    return problem_row(plan.index, plan.name, status=status_of(before, after), before=before, after=after,
                       same_program=plan.improved_code is not None and plan.improved_code == plan.original_code,
                       split=problem_split(stored, before, after) if measured_after is not None else None, **flags)


def error_detail(index: int, record: Any, message: str) -> ComparisonRow:
    """A problem that could not be set up (e.g. no tests): reported, excluded from every figure."""
    name = display_name(record, index) if isinstance(record, dict) else f"problem {index}"
    return problem_row(index, name, status="error", error=message)


def add_verdicts(rows: Sequence[ComparisonRow], key: str) -> dict[str, int]:
    totals = {v: sum((r[key] or {}).get(v, 0) for r in rows) for v in VERDICTS}  # type: ignore[literal-required]
    return {v: n for v, n in totals.items() if n}


def mean(values: Sequence[float]) -> float | None:
    """The mean, or None when there is nothing to average (no problem compared): never a made-up 0."""
    return common.average(values)


def split_aggregate(rows: Sequence[ComparisonRow], summary: SummaryView | None) -> dict[str, Any] | None:
    """Average feedback and held-out ratios over the problems that have a split."""
    with_split = [r for r in rows if r.get("split")]
    reported = summary.held_out_reported if summary else None
    if not with_split:
        return {"problems": 0, "source": None, "summary_reported": reported} if reported is not None else None
    sources = {r["split"]["source"] for r in with_split}
    result: dict[str, Any] = {"problems": len(with_split), "source": sources.pop() if len(sources) == 1 else "mixed"}
    for part in ("feedback", "held_out"):
        b = mean([r["split"][part]["original_ratio"] for r in with_split])
        a = mean([r["split"][part]["improved_ratio"] for r in with_split])
        result[part] = {"original_mean_ratio": b, "improved_mean_ratio": a, "mean_improvement": a - b}
    result["summary_reported"] = reported
    return result


def build_comparison(rows: Sequence[ComparisonRow], summary: SummaryView | Mapping[str, Any] | None,
                     context: dict[str, Any]) -> dict[str, Any]:
    """Every overall figure, computed from the re-run rows only (the summary adds iterations, split and cost).

    ``summary`` is the reader's view, or a summary document as loaded from JSON (read here)."""
    if summary is not None and not isinstance(summary, SummaryView):
        summary = parse_summary(summary)
    ok = [r for r in rows if r["status"] != "error"]
    diffs = [r["improvement"] for r in ok]
    orig_passed, impr_passed = sum(r["original_passed"] for r in ok), sum(r["improved_passed"] for r in ok)
    total = sum(r["original_total"] for r in ok)
    orig_ratio = orig_passed / total if total else 0.0
    impr_ratio = impr_passed / total if total else 0.0
    improved = sorted((r for r in ok if r["status"] == "improved"), key=lambda r: (-r["improvement"], r["problem_id"]))
    worse = sorted((r for r in ok if r["status"] == "worse"), key=lambda r: (r["improvement"], r["problem_id"]))

    def brief(r: ComparisonRow) -> dict[str, Any]:
        return {k: r[k] for k in ("problem_id", "name", "original_ratio", "improved_ratio", "improvement")}

    shown = summary.scores_on_shown_tests if summary else None
    warnings = list(context.pop("warnings", []))
    if shown is True:
        warnings.insert(0, LEAKAGE_WARNING)
    no_answer = [r["problem_id"] for r in ok if r["no_improved_answer"]]
    if no_answer:
        warnings.append(f"{len(no_answer)} problem(s) have no improved answer and are counted as unchanged "
                        f"(problem {', '.join(map(str, no_answer))})")
    no_original = [r["problem_id"] for r in ok if r["no_original_answer"]]
    if no_original:
        warnings.append(f"{len(no_original)} problem(s) have an original answer without code (run as an empty program): "
                        + ", ".join(map(str, no_original)))
    errors = [{"problem_id": r["problem_id"], "error": r["error"]} for r in rows if r["status"] == "error"]
    if errors:
        warnings.append(f"{len(errors)} problem(s) could not be measured and are left out of every figure: "
                        + ", ".join(str(e["problem_id"]) for e in errors))
    if not ok:
        warnings.append("no problem could be compared")
    disagreements = context.pop("summary_disagreements", [])
    if disagreements:
        warnings.append(f"{len(disagreements)} pass count(s) stored in the repair summary differ from this re-run "
                        "(flaky programs, or another executor or timeout); every figure here comes from the re-run")
    return {
        "schema": SCHEMA,
        **context,
        "scores_on_shown_tests": shown,
        "total_problems": len(ok),
        "improved_problems": len(improved),
        "unchanged_problems": sum(1 for r in ok if r["status"] == "unchanged"),
        "worse_problems": len(worse),
        "error_problems": len(errors),
        "no_improved_answer_problems": len(no_answer),
        "original_total_passed": orig_passed,
        "original_total_tests": total,
        "improved_total_passed": impr_passed,
        "improved_total_tests": total,
        "original_overall_ratio": orig_ratio,
        "improved_overall_ratio": impr_ratio,
        "overall_ratio_change": impr_ratio - orig_ratio,
        "overall_improvement": mean(diffs),
        "original_mean_ratio": mean([r["original_ratio"] for r in ok]),
        "improved_mean_ratio": mean([r["improved_ratio"] for r in ok]),
        "original_fully_passing": sum(1 for r in ok if r["original_passed"] == r["original_total"]),
        "improved_fully_passing": sum(1 for r in ok if r["improved_passed"] == r["improved_total"]),
        "original_verdicts": add_verdicts(ok, "original_verdicts"),
        "improved_verdicts": add_verdicts(ok, "improved_verdicts"),
        "most_improved": [brief(r) for r in improved[:MOST_IMPROVED]],
        "worse": [brief(r) for r in worse],
        "no_improved_answer": no_answer,
        "errors": errors,
        "significance": paired_significance(diffs),
        "split": split_aggregate(ok, summary),
        "cost": summary.cost if summary else None,
        "iterations_available": any(r["iteration_ratios"] for r in ok),
        "summary_disagreements": disagreements,
        "warnings": warnings,
        "problem_details": rows,
    }


# --------------------------------------------------------------------------------------------
# Terminal output
# --------------------------------------------------------------------------------------------


def fraction(passed: int | None, total: int | None) -> str:
    if passed is None or not total:
        return "-"
    return f"{passed}/{total} {passed / total:.3f}"


def number(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def format_table(result: dict[str, Any]) -> str:
    """The default terminal report: one row per problem, then the overall figures (warnings go to stderr)."""
    lines = [f"Comparing {result['model_key']}: {result['original_file']} -> {result['improved_file']} "
             f"(executor {result['executor']}, timeout {result['timeout']:g} s)", ""]
    rows = result["problem_details"]
    width = max([len(fraction(r["original_passed"], r["original_total"])) for r in rows] + [len("before")])
    lines.append(f"{'problem':>7}  {'name':<28}  {'before':>{width}}  {'after':>{width}}  {'change':>7}  status")
    for r in rows:
        change = "-" if r["improvement"] is None else f"{r['improvement']:+.3f}"
        note = r["status"]
        if r["no_improved_answer"]:
            note += " (no improved answer)"
        if r["no_original_answer"]:
            note += " (no original answer)"
        if r["error"]:
            message = r["error"].removeprefix(problem_line(result["original_file"], r["problem_id"], ""))
            note += f": {message[:60]}"
        lines.append(f"{r['problem_id']:>7}  {r['name'][:28]:<28}  "
                     f"{fraction(r['original_passed'], r['original_total']):>{width}}  "
                     f"{fraction(r['improved_passed'], r['improved_total']):>{width}}  {change:>7}  {note}")
    n = result["total_problems"]
    lines += [
        "",
        f"Problems: {n} compared: {result['improved_problems']} improved, {result['unchanged_problems']} unchanged "
        f"({result['no_improved_answer_problems']} without an improved answer), {result['worse_problems']} worse; "
        f"{result['error_problems']} errors",
        f"Total pass ratio: {result['original_total_passed']}/{result['original_total_tests']} = "
        f"{result['original_overall_ratio']:.3f} -> {result['improved_total_passed']}/{result['improved_total_tests']} = "
        f"{result['improved_overall_ratio']:.3f} ({result['overall_ratio_change']:+.3f})",
        f"Mean per-problem improvement: {number(result['overall_improvement'], '+.3f')} "
        f"({number(result['original_mean_ratio'])} -> {number(result['improved_mean_ratio'])})",
        f"Fully passing: {result['original_fully_passing']} -> {result['improved_fully_passing']} of {n}",
    ]
    if result["most_improved"]:
        lines.append("Most improved: " + ", ".join(f"{r['problem_id']} ({r['improvement']:+.3f})" for r in result["most_improved"]))
    lines.append("Worse: " + (", ".join(f"{r['problem_id']} ({r['original_ratio']:.3f} -> {r['improved_ratio']:.3f})"
                                        for r in result["worse"]) or "none"))
    lines.append(f"Significance: {result['significance']['statement']}")
    split = result.get("split")
    if split and split.get("feedback"):
        fb, ho = split["feedback"], split["held_out"]
        lines.append(f"Feedback tests ({split['problems']} problems, {split['source']}): {fb['original_mean_ratio']:.3f} -> "
                     f"{fb['improved_mean_ratio']:.3f}; held-out tests: {ho['original_mean_ratio']:.3f} -> {ho['improved_mean_ratio']:.3f}")
    cost = result.get("cost")
    if cost:
        lines.append("Tokens: " + format_cost(cost))
    lines += strategy_compare.terminal_lines(result)
    if result.get("special_judges"):
        lines.append(special_judges.summary_line(result["special_judges"]))
    lines += compare_judges.terminal_lines(result.get("judge_audit"))
    return "\n".join(lines) + "\n"


def format_cost(cost: dict[str, Any]) -> str:
    parts = []
    if cost.get("input_tokens") is not None:
        parts.append(f"{cost['input_tokens']:,} in")
    if cost.get("output_tokens") is not None:
        parts.append(f"{cost['output_tokens']:,} out")
    if cost.get("estimated_cost_usd") is not None:
        parts.append(f"estimated cost ${cost['estimated_cost_usd']:.4f}")
    text = ", ".join(parts) or "not recorded"
    if cost.get("resample"):
        text = f"repair {text}; resample {format_cost(cost['resample'])}"
    return text


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """Load, line up, re-run both programs of every selected problem and build the comparison."""
    original = common.load_problems(args.original_file)
    improved = common.load_problems(args.improved_file)
    check_alignment(original, improved, args.original_file, args.improved_file)
    model_key = infer_model_key(original, improved, args.model_key)
    selection = common.parse_problem_selection(args.problem_id, args.problem_ids, args.range_spec)
    indices, missing = common.select_problems(len(original), selection, args.original_file)
    summary = read_summary(args.improved_file, args.summary_file, args.no_summary)
    warnings = []
    if summary and summary.model_key not in (None, model_key):
        warnings.append(f"the repair summary is for {summary.model_key!r}, this comparison for {model_key!r}")
    common.set_semaphore_limits(exec=args.exec_semaphore)
    judge = judges.judge_from_args(args)
    local = {k: v for k, v in (("memory_mb", args.memory_mb), ("output_bytes", args.output_limit)) if v is not None}
    audit_judges = judges.parse_judges(args.judges) if args.judges else None
    feedback_audit = compare_judges.read_feedback_audit(args.feedback_audit) if args.feedback_audit else None
    specials = special_judges.load(args.special_judges) if args.special_judges else None
    if specials is not None:
        warnings += specials.check_problems(((args.original_file, i, original[i]) for i in indices), selection is None)
    executor = common.get_executor(args.executor, **local)
    limit_settings = problem_limits.settings_from_args(args)
    limits = problem_limits.resolve_records(args.original_file, original, indices, limit_settings, executor)

    stored = summary.problems if summary else {}
    strategies = strategy_compare.run_strategies(summary)
    plans: list[ProblemPlan] = []
    setup_errors: dict[int, ComparisonRow] = {}
    for i, message in missing:  # a problem id out of range: an error of that problem (exit 1)
        common.report_error_line(message)
        setup_errors[i] = error_detail(i, None, message)
    for i in indices:
        try:
            plan = plan_problem(i, original[i], improved[i], model_key, args.original_file, stored.get(i),
                                strategies, args.extract)
            plans.append(with_problem_judge(plan, original[i], judge, specials, args.original_file))
        except (InputError, ConfigError) as exc:
            located = exc.at(args.original_file, i)
            common.report_error_line(str(located))
            setup_errors[i] = error_detail(i, original[i], str(located))
    tally = FlipTally(args.recheck_timeouts, args.recheck_fraction) if args.recheck_timeouts else None
    settings = Settings(executor, args.timeout, args.original_file, judge, tally, limits,
                        keep_results=audit_judges is not None)
    outcomes = run_async(measure_all(plans, settings, args.quiet))

    by_index = dict(setup_errors)
    disagreements: list[dict[str, Any]] = []
    for plan, outcome in zip(plans, outcomes):
        if isinstance(outcome, ExecutionError):
            outcome.at(args.original_file, plan.index)
        by_index[plan.index] = problem_detail(plan, outcome, stored.get(plan.index))
        if not isinstance(outcome, ExecutionError):
            disagreements += summary_disagreements(stored.get(plan.index), outcome[0], outcome[1], plan.index)
    context = {
        "original_file": args.original_file, "improved_file": args.improved_file, "summary_file": summary.path if summary else None,
        "model_key": model_key, "executor": executor.name,
        "isolation": executor.isolation, "timeout": args.timeout,
        "judge": judge.spec.as_dict(),
        "exec_semaphore": args.exec_semaphore, "problem_id": args.problem_id,
        "problem_ids": args.problem_ids, "range": args.range_spec, "extract": args.extract,
        "repair_model": summary.model if summary else None, "warnings": warnings, "summary_disagreements": disagreements,
    }
    specials_block = special_judges.summary_block(
        ((args.original_file, p.index, model_key, p.special_judge) for p in plans), specials) if specials else None
    for need in (specials_block or {}).get("needs_checker", []):
        warnings.append(f"problem {need['problem_id']}: {need['kind']} special judge "
                        f"({need.get('note') or specials_block['file']}): {need['message']}")
    rows = [by_index[i] for i in [*indices, *(i for i, _ in missing)]]
    result = build_comparison(rows, summary, context)
    result["limits"] = {**limit_settings.as_dict(), "memory_mb": args.memory_mb,
                        "problems": {str(i): own.as_dict() for i, own in limits.items()}}
    measured = {p.index: (o[0], o[1] or o[0]) for p, o in zip(plans, outcomes) if not isinstance(o, ExecutionError)}
    scores = {p.index: o[2] for p, o in zip(plans, outcomes) if not isinstance(o, ExecutionError)}
    science = strategy_compare.science_figures(rows=result["problem_details"], plans=plans, measured=measured,
                                               scores=scores, summary=summary, rechecked=tally is not None)
    resting = {p["problem_id"] for p in (science["unstable_verdicts"] or {}).get("problems", [])}
    by_plan = {p.index: p for p in plans}
    for row in result["problem_details"]:
        row["rests_on_unstable"] = row["problem_id"] in resting if science["unstable_verdicts"] else None
        plan = by_plan.get(row["problem_id"])
        row["judge"] = (plan.judge or judge).spec.as_dict() if plan else None
        row["judge_from_record"] = plan.judge_from_record if plan else None
        row["special_judge"] = plan.special_judge if plan else None
    result["special_judges"] = specials_block
    result.update(science)
    result["flip_rate"] = tally.block() if tally is not None else (summary.flip_rate if summary else None)
    result["flip_rate_source"] = "this run" if tally is not None else "repair summary" if result["flip_rate"] else None
    result["judge_audit"] = compare_judges.build_audit(audited_problems(plans, outcomes), audit_judges, judge) \
        if audit_judges else None
    result["feedback_audit"], result["feedback_audit_file"] = feedback_audit, args.feedback_audit
    return result


def with_problem_judge(plan: ProblemPlan, record: dict[str, Any], default: Any,
                       specials: special_judges.SpecialJudges | None, path: str) -> ProblemPlan:
    """The record's own ``judge``, else its ``--special-judges`` entry's, else the run's (as model_feedback)."""
    own, from_record = judges.judge_from_record(record, default, str(Path(path).resolve().parent))
    if from_record:
        return replace(plan, judge=own, judge_from_record=True)
    entry = specials.lookup(plan.index, record) if specials else None
    if entry is None:
        return plan
    judge, block = special_judges.apply(entry, default, specials.path)  # type: ignore[union-attr]
    return replace(plan, judge=judge, special_judge=block)


def audited_problems(plans: Sequence[ProblemPlan], outcomes: Sequence[Outcome | ExecutionError]
                     ) -> list[compare_judges.AuditedProblem]:
    """Both programs' kept results per measured problem (the original's twice without an improved program)."""
    return [compare_judges.AuditedProblem(p.index, p.name, o[0].results, (o[1] or o[0]).results)
            for p, o in zip(plans, outcomes) if not isinstance(o, ExecutionError)]


class LowercaseLevelFormatter(logging.Formatter):
    """``warning: ...`` for a logged warning too, the format of every other warning line."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(logging.makeLogRecord({**record.__dict__, "levelname": record.levelname.lower()}))


def use_warning_format() -> None:
    """Log lines on stderr as ``<level>: <message>`` (the handler ``run_main`` installed, not a test's)."""
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.setFormatter(LowercaseLevelFormatter("%(levelname)s: %(message)s"))


def print_warnings(warnings: Sequence[str]) -> None:
    """Every warning of the comparison as one ``warning: ...`` line on stderr, with or without --quiet."""
    for warning in warnings:
        common.report_warning_line(warning)


def run(args: argparse.Namespace) -> int:
    """Compare, write the JSON and the report, print the table; 1 when some problem could not be measured."""
    use_warning_format()
    for path in (args.output_file, args.report):  # before any program runs; no folder is created
        if path:
            common.check_writable(path)
    result = compare(args)
    if args.output_file:
        write_atomic_json(args.output_file, result)
    if args.report:
        from report_html import write_report

        write_report(args.report, result)
    if not args.quiet:
        sys.stdout.write(format_table(result))
        sys.stdout.flush()
    print_warnings(result["warnings"])
    return 1 if result["error_problems"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(build_parser(), argv, run, log_format="%(levelname)s: %(message)s")


if __name__ == "__main__":
    sys.exit(main())
