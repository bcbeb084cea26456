"""Did repair help, on which problems, and is the gain real?

Re-runs the original and the improved program of every problem on the same tests, with the same
executor and limits, in one run (numbers stored in the files are never trusted), then reports per
problem and overall figures, a paired significance test over problems, the feedback/held-out split
and the tokens/cost recorded by the repair run's summary. Output: a terminal table, a JSON file
(``--output-file``) and a self-contained HTML report with plots (``--report``).

Exit status: 0 on success, 1 when some problems could not be measured (a bad record, a missing or
non-string original answer, a problem id out of range, an executor failure: each printed as one
line ``error: <file>: problem <i>: <message>`` on stderr and left out of every figure), 2 on a user
error (one line ``error: ...`` on stderr), 130 when interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

import librarybench_common as common
from cli import OneLineParser, positive_float, positive_int
from errors import ConfigError, ExecutionError, InputError, LibraryBenchError
from improvement_stats import paired_significance
from records import VERDICTS

log = logging.getLogger("librarybench.compare")

SCHEMA = "librarybench.comparison/1"
SUMMARY_SCHEMA_PREFIX = "librarybench.repair_summary/"
DEFAULT_MODEL_KEY = "claude_solution"
IMPROVED_PREFIX = "improved_"
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


@dataclass(frozen=True)
class Measurement:
    """One program's results on a problem's tests, in test order."""

    passed_flags: tuple[bool, ...]
    verdicts: dict[str, int] = field(default_factory=dict)

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

    executor: Any
    timeout: float
    source: str = ""  # the original file (named in per-problem error lines)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(
        description="Re-run original and improved programs on the same tests and report whether repair helped.",
    )
    parser.add_argument("--original-file", required=True,
                        help="solution file with the original answers (JSON list of problem records); "
                             "paths are used as given (no data/ prefix is added)")
    parser.add_argument("--improved-file", required=True,
                        help="output of iterative_repair.py: the same records with improved_<model key> answers")
    parser.add_argument("--model-key", default=None,
                        help=f"answer key to compare, e.g. o3_mini_solution (default {DEFAULT_MODEL_KEY} when present, "
                             "else the improved file's single improved_<key>, else the original's single *_solution key)")
    parser.add_argument("--problem-id", type=int, default=None, help="compare only this problem (0-based index)")
    parser.add_argument("--output-file", default=None, help="write the full comparison as JSON to this file")
    parser.add_argument("--report", default=None, metavar="FILE.html",
                        help="write a self-contained HTML report with plots (works offline)")
    summary = parser.add_mutually_exclusive_group()
    summary.add_argument("--summary-file", default=None,
                         help="the repair run's summary JSON (default: summary_<improved file name> beside the "
                              "improved file, when it exists)")
    summary.add_argument("--no-summary", action="store_true", help="ignore the repair summary even when one is found")
    parser.add_argument("--timeout", type=positive_float, default=common.DEFAULT_TIMEOUT,
                        help=f"seconds per test, the same for both programs (default {common.DEFAULT_TIMEOUT:g})")
    parser.add_argument("--exec-semaphore", type=positive_int, default=common.DEFAULT_EXEC_CONCURRENCY,
                        help=f"maximum concurrent test executions (default {common.DEFAULT_EXEC_CONCURRENCY})")
    parser.add_argument("--executor", choices=("local", "remote"), default=None,
                        help="where programs run: remote (the API at CYBER_URL) or local (embedded sandbox); "
                             "default remote when CYBER_URL is set, else local")
    parser.add_argument("--quiet", action="store_true", help="no terminal table and no progress bar")
    parser.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="logging level on stderr (default WARNING)")
    return parser.parse_args(argv)


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


def improved_model_keys(records: list[Any]) -> list[str]:
    keys: list[str] = []
    for record in records:
        if isinstance(record, dict):
            for key in record:
                name = key[len(IMPROVED_PREFIX):]
                if key.startswith(IMPROVED_PREFIX) and name not in keys:
                    keys.append(name)
    return keys


def infer_model_key(original: list[Any], improved: list[Any], requested: str | None) -> str:
    """The answer key to compare; see ``--model-key``. One-line error listing choices when ambiguous."""
    from_improved = improved_model_keys(improved)
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
                 original_path: str) -> ProblemPlan:
    """Tests come from the original file; a missing or empty improved answer means 'no improved answer'.

    The original answer is taken as ``answer_program`` does (``human_solution`` verbatim, model
    answers extracted); a missing or non-string original answer is an ``InputError`` for this
    problem (reported, left out of every figure), never an empty program counted as failing.
    """
    tests = common.problem_tests(original, index, original_path)
    try:
        original_code = common.answer_program(original, model_key)
    except InputError as exc:
        raise InputError(common.problem_message(original_path, index, exc)) from None
    answer = improved.get(IMPROVED_PREFIX + model_key)
    return ProblemPlan(
        index=index,
        name=display_name(original, index),
        tests=tests,
        original_code=original_code,
        improved_code=common.extract_code(answer) if isinstance(answer, str) and answer.strip() else None,
        no_original_answer=not original_code.strip(),
    )


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


async def measure(code: str, tests: list[Any], settings: Settings, on_result: Callable[[Any], None]) -> Measurement:
    results = await common.run_tests(code, tests, timeout=settings.timeout, executor=settings.executor,
                                     on_result=on_result)
    return Measurement(tuple(bool(r.get("passed")) for r in results), common.count_verdicts(results))


async def measure_problem(plan: ProblemPlan, settings: Settings,
                          on_result: Callable[[Any], None]) -> tuple[Measurement, Measurement | None]:
    """Both programs concurrently; an identical program is run once so it cannot differ from itself."""
    if plan.improved_code is None or plan.improved_code == plan.original_code:
        before = await measure(plan.original_code, plan.tests, settings, on_result)
        return before, (None if plan.improved_code is None else before)
    before, after = await asyncio.gather(measure(plan.original_code, plan.tests, settings, on_result),
                                         measure(plan.improved_code, plan.tests, settings, on_result))
    return before, after


def count_runs(plan: ProblemPlan) -> int:
    same = plan.improved_code is None or plan.improved_code == plan.original_code
    return len(plan.tests) * (1 if same else 2)


async def measure_all(plans: list[ProblemPlan], settings: Settings, quiet: bool
                      ) -> list[tuple[Measurement, Measurement | None] | ExecutionError]:
    """All problems at once under the global execution semaphore; infrastructure errors stay per problem."""
    bar = tqdm(total=sum(count_runs(p) for p in plans), unit="test", desc="running tests",
               disable=True if quiet else None, file=sys.stderr)

    async def one(plan: ProblemPlan) -> tuple[Measurement, Measurement | None] | ExecutionError:
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
# The repair summary
# --------------------------------------------------------------------------------------------


def default_summary_path(improved_path: str) -> Path:
    path = Path(improved_path)
    return path.with_name(f"summary_{path.name}")


def load_summary(improved_path: str, explicit: str | None, disabled: bool) -> tuple[dict[str, Any] | None, str | None]:
    """The repair summary, or None. An explicit file must be valid; a found one is skipped with a warning if not."""
    if disabled:
        return None, None
    path = Path(explicit) if explicit else default_summary_path(improved_path)
    if not explicit and not path.exists():
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    except FileNotFoundError:
        raise InputError(f"{path}: summary file not found") from None
    except (OSError, ValueError) as exc:
        if explicit:
            raise InputError(f"{path}: not a usable repair summary: {exc}") from None
        log.warning("%s: ignoring the repair summary found beside the improved file: %s", path, exc)
        return None, None
    schema = data.get("schema")
    if isinstance(schema, str) and not schema.startswith(SUMMARY_SCHEMA_PREFIX):
        log.warning("%s: unexpected summary schema %r; reading what fields it has", path, schema)
    return data, str(path)


def summary_problems(summary: dict[str, Any] | None) -> dict[int, dict[str, Any]]:
    """The summary's per-problem entries by problem id, skipping malformed ones."""
    entries = (summary or {}).get("problems")
    if not isinstance(entries, list):
        return {}
    return {p["problem_id"]: p for p in entries if isinstance(p, dict) and isinstance(p.get("problem_id"), int)}


def iteration_ratios(entry: dict[str, Any] | None) -> list[float | None] | None:
    """Pass ratio per iteration, by iteration number (index 0 = the original program); None for an
    iteration without a score (an answer with no code), so later iterations keep their position."""
    iterations = (entry or {}).get("iterations")
    if not isinstance(iterations, list):
        return None
    by_number: dict[int, float | None] = {}
    for position, it in enumerate(iterations):
        if not isinstance(it, dict):
            continue
        number = it.get("iteration") if isinstance(it.get("iteration"), int) and it["iteration"] >= 0 else position
        ratio = it.get("ratio")
        by_number[number] = float(ratio) if isinstance(ratio, (int, float)) and not isinstance(ratio, bool) else None
    if not any(v is not None for v in by_number.values()):
        return None
    return [by_number.get(i) for i in range(max(by_number) + 1)]


def test_indices(entry: dict[str, Any] | None, part: str) -> list[int] | None:
    block = (entry or {}).get(part)
    indices = block.get("test_indices") if isinstance(block, dict) else None
    if isinstance(indices, list) and indices and all(isinstance(i, int) for i in indices):
        return indices
    return None


def ratio_of(block: Any) -> float | None:
    if isinstance(block, dict) and isinstance(block.get("ratio"), (int, float)):
        return float(block["ratio"])
    return None


def subset_figures(before: Measurement, after: Measurement, indices: list[int]) -> dict[str, Any] | None:
    """Pass counts on a subset of tests (1-based indices), re-measured from this run."""
    picked = [i - 1 for i in indices if 1 <= i <= before.total]
    if not picked:
        return None
    b = sum(before.passed_flags[i] for i in picked)
    a = sum(after.passed_flags[i] for i in picked)
    n = len(picked)
    return {"tests": n, "original_passed": b, "original_ratio": b / n, "improved_passed": a,
            "improved_ratio": a / n, "improvement": (a - b) / n}


def problem_split(entry: dict[str, Any] | None, before: Measurement, after: Measurement) -> dict[str, Any] | None:
    """Feedback/held-out figures: re-measured when the summary names the test indices, else as the summary stored them."""
    if not isinstance(entry, dict) or not isinstance(entry.get("held_out"), dict):
        return None
    split: dict[str, Any] = {}
    fb_idx, ho_idx = test_indices(entry, "feedback"), test_indices(entry, "held_out")
    if fb_idx and ho_idx:
        feedback, held_out = subset_figures(before, after, fb_idx), subset_figures(before, after, ho_idx)
        if feedback and held_out:
            return {"source": "re-run", "feedback": feedback, "held_out": held_out}
    for part in ("feedback", "held_out"):
        block = entry.get(part) or {}
        b, a = ratio_of(block.get("initial")), ratio_of(block.get("final"))
        if b is None or a is None:
            return None
        split[part] = {"original_ratio": b, "improved_ratio": a, "improvement": a - b}
    return {"source": "summary", **split}


def summary_disagreements(entry: dict[str, Any] | None, before: Measurement, after: Measurement | None,
                          problem_id: int) -> list[dict[str, Any]]:
    """Where the summary's stored counts differ from this re-run on the same number of tests."""
    found = []
    for which, measured in (("initial", before), ("final", after)):
        block = (entry or {}).get(which)
        if measured is None or not isinstance(block, dict):
            continue
        if block.get("total") == measured.total and isinstance(block.get("passed"), int) and block["passed"] != measured.passed:
            found.append({"problem_id": problem_id, "which": which, "summary_passed": block["passed"],
                          "rerun_passed": measured.passed, "total": measured.total})
    return found


def cost_figures(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """Tokens and cost: the summary's aggregate, else the sum of its problems; None when it records none."""
    if not summary:
        return None
    aggregate = summary.get("aggregate") if isinstance(summary.get("aggregate"), dict) else {}
    keys = {"input_tokens": "input_tokens", "output_tokens": "output_tokens", "estimated_cost_usd": "estimated_cost_usd"}
    figures = {k: aggregate.get(src) for k, src in keys.items() if isinstance(aggregate.get(src), (int, float))}
    source = "summary aggregate"
    if not figures:
        problems = summary_problems(summary).values()
        per_problem = {"input_tokens": "input_tokens", "output_tokens": "output_tokens", "estimated_cost_usd": "cost_usd"}
        for k, src in per_problem.items():
            values = [p[src] for p in problems if isinstance(p.get(src), (int, float))]
            if values:
                figures[k] = sum(values)
        source = "sum of the summary's problems"
    if not figures:
        return None
    return {**{k: figures.get(k) for k in keys}, "model": summary.get("model"), "provider": summary.get("provider"),
            "source": source}


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def status_of(before: Measurement, after: Measurement) -> str:
    # Same tests on both sides, so comparing pass counts avoids float ties.
    return "improved" if after.passed > before.passed else "worse" if after.passed < before.passed else "unchanged"


def problem_detail(plan: ProblemPlan, outcome: tuple[Measurement, Measurement | None] | ExecutionError,
                   entry: dict[str, Any] | None) -> dict[str, Any]:
    """One problem's row of ``problem_details`` (the seed's keys plus verdicts, flags and summary figures)."""
    base = {"problem_id": plan.index, "name": plan.name, "no_improved_answer": plan.improved_code is None,
            "no_original_answer": plan.no_original_answer, "iteration_ratios": iteration_ratios(entry)}
    if isinstance(outcome, ExecutionError):
        return {**base, "status": "error", "error": str(outcome), "original_passed": None, "original_total": None,
                "original_ratio": None, "improved_passed": None, "improved_total": None,
                "improved_ratio": None, "improvement": None, "original_verdicts": None, "improved_verdicts": None,
                "same_program": None, "split": None}
    before, measured_after = outcome
    after = measured_after or before
    return {
        **base,
        "status": status_of(before, after),
        "error": None,
        "original_passed": before.passed, "original_total": before.total, "original_ratio": before.ratio,
        "improved_passed": after.passed, "improved_total": after.total, "improved_ratio": after.ratio,
        "improvement": after.ratio - before.ratio,
        "original_verdicts": before.verdicts, "improved_verdicts": after.verdicts,
        "same_program": plan.improved_code is not None and plan.improved_code == plan.original_code,
        "split": problem_split(entry, before, after) if measured_after is not None else None,
    }


def error_detail(index: int, record: Any, message: str) -> dict[str, Any]:
    """A problem that could not be set up (e.g. no tests): reported, excluded from every figure."""
    name = display_name(record, index) if isinstance(record, dict) else f"problem {index}"
    return {"problem_id": index, "name": name, "status": "error", "error": message, "no_improved_answer": None,
            "no_original_answer": None, "iteration_ratios": None, "original_passed": None, "original_total": None,
            "original_ratio": None, "improved_passed": None, "improved_total": None, "improved_ratio": None,
            "improvement": None, "original_verdicts": None, "improved_verdicts": None, "same_program": None, "split": None}


def add_verdicts(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
    totals = {v: sum((r[key] or {}).get(v, 0) for r in rows) for v in VERDICTS}
    return {v: n for v, n in totals.items() if n}


def mean(values: Sequence[float]) -> float | None:
    """The mean, or None when there is nothing to average (no problem compared): never a made-up 0."""
    return common.average(values)


def split_aggregate(rows: list[dict[str, Any]], summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """Average feedback and held-out ratios over the problems that have a split."""
    with_split = [r for r in rows if r.get("split")]
    reported = ((summary or {}).get("aggregate") or {}).get("held_out") if isinstance((summary or {}).get("aggregate"), dict) else None
    if not with_split:
        return {"problems": 0, "source": None, "summary_reported": reported} if isinstance(reported, dict) else None
    sources = {r["split"]["source"] for r in with_split}
    result: dict[str, Any] = {"problems": len(with_split), "source": sources.pop() if len(sources) == 1 else "mixed"}
    for part in ("feedback", "held_out"):
        b = mean([r["split"][part]["original_ratio"] for r in with_split])
        a = mean([r["split"][part]["improved_ratio"] for r in with_split])
        result[part] = {"original_mean_ratio": b, "improved_mean_ratio": a, "mean_improvement": a - b}
    result["summary_reported"] = reported if isinstance(reported, dict) else None
    return result


def build_comparison(rows: list[dict[str, Any]], summary: dict[str, Any] | None, context: dict[str, Any]) -> dict[str, Any]:
    """Every overall figure, computed from the re-run rows only (the summary adds iterations, split and cost)."""
    ok = [r for r in rows if r["status"] != "error"]
    diffs = [r["improvement"] for r in ok]
    orig_passed, impr_passed = sum(r["original_passed"] for r in ok), sum(r["improved_passed"] for r in ok)
    total = sum(r["original_total"] for r in ok)
    orig_ratio = orig_passed / total if total else 0.0
    impr_ratio = impr_passed / total if total else 0.0
    improved = sorted((r for r in ok if r["status"] == "improved"), key=lambda r: (-r["improvement"], r["problem_id"]))
    worse = sorted((r for r in ok if r["status"] == "worse"), key=lambda r: (r["improvement"], r["problem_id"]))

    def brief(r: dict[str, Any]) -> dict[str, Any]:
        return {k: r[k] for k in ("problem_id", "name", "original_ratio", "improved_ratio", "improvement")}

    shown = summary.get("scores_on_shown_tests") if summary else None
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
        "scores_on_shown_tests": shown if isinstance(shown, bool) else None,
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
        "cost": cost_figures(summary),
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
    """The default terminal report: one row per problem, then the overall figures and warnings."""
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
            message = r["error"].split(f"problem {r['problem_id']}: ", 1)[-1]
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
    lines += [f"warning: {w}" for w in result["warnings"]]
    return "\n".join(lines) + "\n"


def format_cost(cost: dict[str, Any]) -> str:
    parts = []
    if cost.get("input_tokens") is not None:
        parts.append(f"{cost['input_tokens']:,} in")
    if cost.get("output_tokens") is not None:
        parts.append(f"{cost['output_tokens']:,} out")
    if cost.get("estimated_cost_usd") is not None:
        parts.append(f"estimated cost ${cost['estimated_cost_usd']:.4f}")
    return ", ".join(parts) or "not recorded"


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """Load, line up, re-run both programs of every selected problem and build the comparison."""
    original = common.load_problems(args.original_file)
    improved = common.load_problems(args.improved_file)
    check_alignment(original, improved, args.original_file, args.improved_file)
    model_key = infer_model_key(original, improved, args.model_key)
    indices, missing = common.select_problems(len(original), common.parse_problem_selection(args.problem_id),
                                              args.original_file)
    summary, summary_path = load_summary(args.improved_file, args.summary_file, args.no_summary)
    warnings = []
    if summary and summary.get("model_key") not in (None, model_key):
        warnings.append(f"the repair summary is for {summary.get('model_key')!r}, this comparison for {model_key!r}")
    common.set_semaphore_limits(exec=args.exec_semaphore)
    executor = common.get_executor(args.executor)

    plans: list[ProblemPlan] = []
    setup_errors: dict[int, dict[str, Any]] = {}
    for i, message in missing:  # a problem id out of range: an error of that problem (exit 1)
        common.report_problem_error(args.original_file, i, message)
        setup_errors[i] = error_detail(i, None, common.problem_message(args.original_file, i, message))
    for i in indices:
        try:
            plans.append(plan_problem(i, original[i], improved[i], model_key, args.original_file))
        except InputError as exc:
            common.report_problem_error(args.original_file, i, exc)
            setup_errors[i] = error_detail(i, original[i], common.problem_message(args.original_file, i, exc))
    outcomes = asyncio.run(measure_all(plans, Settings(executor, args.timeout, args.original_file), args.quiet))

    entries = summary_problems(summary)
    by_index = dict(setup_errors)
    disagreements: list[dict[str, Any]] = []
    for plan, outcome in zip(plans, outcomes):
        if isinstance(outcome, ExecutionError):
            outcome = ExecutionError(common.problem_message(args.original_file, plan.index, outcome))
        by_index[plan.index] = problem_detail(plan, outcome, entries.get(plan.index))
        if not isinstance(outcome, ExecutionError):
            disagreements += summary_disagreements(entries.get(plan.index), outcome[0], outcome[1], plan.index)
    context = {
        "original_file": args.original_file, "improved_file": args.improved_file, "summary_file": summary_path,
        "model_key": model_key, "executor": getattr(executor, "name", str(executor)),
        "isolation": getattr(executor, "isolation", None), "timeout": args.timeout,
        "exec_semaphore": args.exec_semaphore, "problem_id": args.problem_id,
        "repair_model": (summary or {}).get("model"), "warnings": warnings, "summary_disagreements": disagreements,
    }
    return build_comparison([by_index[i] for i in [*indices, *(i for i, _ in missing)]], summary, context)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s: %(message)s", stream=sys.stderr)
    common.load_env()
    common.install_sigterm_as_interrupt()
    try:
        result = compare(args)
        if args.output_file:
            common.write_atomic_json(args.output_file, result)
        if args.report:
            from report_html import write_report

            write_report(args.report, result)
    except LibraryBenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("error: interrupted", file=sys.stderr)
        return 130
    if args.quiet:
        for warning in result["warnings"]:
            log.warning("%s", warning)
    else:
        sys.stdout.write(format_table(result))
    return 1 if result["error_problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
