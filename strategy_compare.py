"""The comparison's science figures, from the re-run programs and the repair summary (no model
calls): pass rate against tokens per strategy, repair against resampling at equal tokens, the
memorisation check of every repaired or resampled program, and how many improvements or
regressions rest on unstable (timing-flaky) verdicts.

``compare_model_improvements.py`` plans which programs to run (``programs_to_measure``: every
program a loop kept along the way, so the curves score each on all tests), runs them with the
same executor and limits as the original and improved programs, and passes the measurements
here (``science_figures``). A measurement is anything with ``passed_flags`` (one bool per test)
and ``unstable`` (0-based tests a recheck found unstable). JSON keys: docs/repair_science.md.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

import memorisation
import token_curves
from improvement_stats import paired_significance
from repair_summary import StoredProblem, SummaryView
from token_curves import LoopStep, Step


class Measured(Protocol):
    passed_flags: tuple[bool, ...]
    unstable: tuple[int, ...]


def loop_steps(stored: StoredProblem | None, strategy: str) -> list[LoopStep]:
    """A strategy's stored iterations of a problem (``[]``: it did not run there)."""
    if stored is None:
        return []
    part = stored if strategy == "repair" else stored.resample
    if part is None or not part.iterations:
        return []
    return [LoopStep(i.input_tokens, i.output_tokens, i.passed, i.code) for i in part.iterations]


def run_strategies(summary: SummaryView | None) -> tuple[str, ...]:
    """The strategies with iterations in the summary (repair only when it ran)."""
    if summary is None:
        return ()
    return tuple(s for s in summary.strategies if any(loop_steps(p, s) for p in summary.problems.values()))


def programs_to_measure(stored: StoredProblem | None, strategies: Sequence[str]) -> list[str]:
    """Every program kept along the way by the strategies, in first-seen order."""
    codes: list[str] = []
    for strategy in strategies:
        for _, _, code in token_curves.kept_programs(loop_steps(stored, strategy)):
            if code and code not in codes:
                codes.append(code)
    return codes


def held_indices(stored: StoredProblem | None, total: int) -> list[int] | None:
    """0-based held-out tests (None: no split)."""
    if stored is None or stored.held_out is None or not stored.held_out.test_indices:
        return None
    return [i - 1 for i in stored.held_out.test_indices if 1 <= i <= total]


def shown_indices(stored: StoredProblem | None, total: int) -> list[int]:
    """1-based tests the model was shown: the feedback subset, else all."""
    if stored is not None and stored.held_out is not None and stored.feedback and stored.feedback.test_indices:
        return [i for i in stored.feedback.test_indices if 1 <= i <= total]
    return list(range(1, total + 1))


def strategy_steps(stored: StoredProblem | None, strategy: str, scores: Mapping[str, Measured],
                   original: Measured) -> list[Step]:
    """The problem's steps for the curves, each scored by this run's measurement of the kept program."""
    total = len(original.passed_flags)
    held = held_indices(stored, total)
    steps = []
    for tokens, output, code in token_curves.kept_programs(loop_steps(stored, strategy)):
        m = scores.get(code) if code else original
        if m is None or len(m.passed_flags) != total:
            return []
        steps.append(Step(tokens, output, sum(m.passed_flags), total,
                          sum(m.passed_flags[i] for i in held) if held is not None else None,
                          len(held) if held is not None else None))
    return steps


def repair_vs_resample(problems: Sequence[tuple[int, StoredProblem | None, list[Step], list[Step]]]) -> dict[str, Any]:
    """Paired over problems at each problem's budget: the resample's ``budget_tokens`` (the repair's
    tokens when both ran), each strategy's kept program at that many tokens (a sample past the
    budget does not count)."""
    rows, diffs, strict_diffs, held_diffs = [], [], [], []
    repair_tokens = resample_tokens = 0
    for pid, stored, repair, resample in problems:
        if not repair or not resample:
            continue
        budget = stored.resample.budget_tokens if stored and stored.resample else None
        if budget is None:
            budget = repair[-1].tokens
        r, s = token_curves.state_at(repair, budget), token_curves.state_at(resample, budget)
        repair_tokens += repair[-1].tokens
        resample_tokens += resample[-1].tokens
        diffs.append(r.ratio - s.ratio)
        strict_diffs.append(r.strict - s.strict)
        if r.held_ratio is not None and s.held_ratio is not None:
            held_diffs.append(r.held_ratio - s.held_ratio)
        rows.append({"problem_id": pid, "budget_tokens": budget, "repair_tokens": repair[-1].tokens,
                     "resample_tokens": resample[-1].tokens, "repair_ratio": r.ratio, "resample_ratio": s.ratio,
                     "difference": r.ratio - s.ratio, "repair_strict": r.strict, "resample_strict": s.strict,
                     "over_budget_samples": sum(1 for x in resample[1:] if x.tokens > budget)})
    result = token_curves.paired(diffs)
    result["winner"], result["statement"] = token_curves.verdict_sentence(result, "pass ratio on all tests")
    result["metric"] = "per-problem pass ratio on all tests (repair minus resample) at the problem's token budget"
    result["strict"] = token_curves.paired(strict_diffs)
    result["held_out"] = token_curves.paired(held_diffs) if held_diffs and len(held_diffs) == len(diffs) else None
    if result["held_out"] is not None:
        result["held_out"]["winner"], result["held_out"]["statement"] = token_curves.verdict_sentence(
            result["held_out"], "pass ratio on held-out tests")
    result["tokens"] = {"repair": repair_tokens, "resample": resample_tokens,
                        "resample_over_repair": resample_tokens / repair_tokens if repair_tokens else None}
    result["per_problem"] = rows
    return result


def memorisation_flags(plans: Sequence[Any], stored: Mapping[int, StoredProblem], names: Mapping[int, str]
                       ) -> tuple[int, list[dict[str, Any]]]:
    """(programs checked, flagged programs) over the repaired and resampled programs that differ
    from the original. ``plans`` have ``index``, ``tests``, ``original_code``, ``improved_code``,
    ``resampled_code``."""
    checked, flagged = 0, []
    for plan in plans:
        shown = shown_indices(stored.get(plan.index), len(plan.tests))
        for strategy, code in (("repair", plan.improved_code), ("resample", getattr(plan, "resampled_code", None))):
            if not code or code == plan.original_code:
                continue
            checked += 1
            flags = memorisation.check_program(code, plan.tests, shown, plan.original_code)
            if flags:
                flagged.append({"problem_id": plan.index, "name": names.get(plan.index, ""), "strategy": strategy,
                                "reasons": [f.as_dict() for f in flags], "summary": memorisation.flags_summary(flags)})
    return checked, flagged


def headline(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The headline figures over ``rows`` (problems measured without error)."""
    ok = [r for r in rows if r["status"] != "error"]
    diffs = [r["improvement"] for r in ok]
    n = len(ok)
    split = [r["split"] for r in ok if r.get("split")]

    def mean(values: Sequence[float]) -> float | None:
        return sum(values) / len(values) if values else None

    return {
        "total_problems": n,
        "improved_problems": sum(1 for r in ok if r["status"] == "improved"),
        "unchanged_problems": sum(1 for r in ok if r["status"] == "unchanged"),
        "worse_problems": sum(1 for r in ok if r["status"] == "worse"),
        "overall_improvement": mean(diffs),
        "original_mean_ratio": mean([r["original_ratio"] for r in ok]),
        "improved_mean_ratio": mean([r["improved_ratio"] for r in ok]),
        "original_fully_passing": sum(1 for r in ok if r["original_passed"] == r["original_total"]),
        "improved_fully_passing": sum(1 for r in ok if r["improved_passed"] == r["improved_total"]),
        "held_out_original_mean_ratio": mean([s["held_out"]["original_ratio"] for s in split]) if split else None,
        "held_out_improved_mean_ratio": mean([s["held_out"]["improved_ratio"] for s in split]) if split else None,
        "significance": paired_significance(diffs),
    }


def unstable_verdicts(rows: Sequence[Mapping[str, Any]], measured: Mapping[int, tuple[Measured, Measured]],
                      stored: Mapping[int, StoredProblem], rechecked: bool) -> dict[str, Any] | None:
    """How many improvements and regressions rest on a test whose verdict a recheck found unstable:
    this run's rechecks (``--recheck-timeouts``), else those the repair summary recorded."""
    source = "re-run rechecks" if rechecked else "repair summary" if any(p.unstable_tests for p in stored.values()) else None
    if source is None:
        return None
    problems = []
    counts = {"improved": 0, "worse": 0}
    on_unstable = {"improved": 0, "worse": 0}
    for r in rows:
        if r["status"] not in counts or r["problem_id"] not in measured:
            continue
        counts[r["status"]] += 1
        before, after = measured[r["problem_id"]]
        if rechecked:
            unstable = set(before.unstable) | set(after.unstable)
        else:
            entry = stored.get(r["problem_id"])
            unstable = {i - 1 for i in entry.unstable_tests} if entry else set()
        changed = [i for i, (a, b) in enumerate(zip(before.passed_flags, after.passed_flags)) if a != b]
        resting = sorted(i + 1 for i in changed if i in unstable)
        if resting:
            on_unstable[r["status"]] += 1
            problems.append({"problem_id": r["problem_id"], "status": r["status"], "tests": resting})
    return {"source": source, "improvements": counts["improved"], "regressions": counts["worse"],
            "improvements_on_unstable": on_unstable["improved"], "regressions_on_unstable": on_unstable["worse"],
            "problems": problems}


def science_figures(*, rows: Sequence[dict[str, Any]], plans: Sequence[Any], measured: Mapping[int, tuple[Measured, Measured]],
                    scores: Mapping[int, Mapping[str, Measured]], summary: SummaryView | None,
                    rechecked: bool) -> dict[str, Any]:
    """Every figure of this module as the comparison's JSON keys."""
    stored = dict(summary.problems) if summary else {}
    strategies = run_strategies(summary)
    names = {r["problem_id"]: r.get("name") or "" for r in rows}
    per_problem: dict[str, dict[str, list[dict[str, Any]]]] = {s: {} for s in strategies}
    runs: dict[str, list[list[Step]]] = {s: [] for s in strategies}
    paired_input = []
    for plan in plans:
        if plan.index not in measured:
            continue
        original = measured[plan.index][0]
        steps = {s: strategy_steps(stored.get(plan.index), s, scores.get(plan.index, {}), original) for s in strategies}
        for s, st in steps.items():
            if st:
                runs[s].append(st)
                per_problem[s][str(plan.index)] = token_curves.step_dicts(st)
        paired_input.append((plan.index, stored.get(plan.index), steps.get("repair", []), steps.get("resample", [])))
    checked, flagged = memorisation_flags([p for p in plans if p.index in measured], stored, names)
    flagged_ids = {f["problem_id"] for f in flagged if f["strategy"] == "repair"}
    figures: dict[str, Any] = {
        "strategies": list(strategies),
        "pass_vs_tokens": {s: token_curves.curve(runs[s]) for s in strategies} if strategies else None,
        "pass_vs_output_tokens": {s: token_curves.curve(runs[s], "output_tokens") for s in strategies}
        if strategies else None,
        "pass_vs_tokens_per_problem": per_problem if strategies else None,
        "repair_vs_resample": None,
        "memorisation": {
            "method": "AST check of each repaired or resampled program against the tests the model was shown "
                      "(memorisation.py): literal expected outputs or inputs, branches on shown inputs, "
                      "special-cased shown tests; literals of the original program are ignored",
            "checked": checked, "flagged_count": len(flagged), "flagged": flagged,
            "without_flagged": headline([r for r in rows if r["problem_id"] not in flagged_ids]),
        },
        "unstable_verdicts": unstable_verdicts(rows, measured, stored, rechecked),
    }
    if "repair" in strategies and "resample" in strategies:
        result = repair_vs_resample(paired_input)
        any_flag = {f["problem_id"] for f in flagged}
        result["without_flagged"] = repair_vs_resample([p for p in paired_input if p[0] not in any_flag])
        result["without_flagged"].pop("per_problem", None)
        figures["repair_vs_resample"] = result
    return figures


def terminal_lines(result: Mapping[str, Any]) -> list[str]:
    """The comparison table's lines for these figures (none when there is nothing to say)."""
    lines = []
    for strategy, points in (result.get("pass_vs_tokens") or {}).items():
        if points:
            last = points[-1]
            lines.append(f"Pass rate against tokens ({strategy}): strict {points[0]['strict']:.3f} -> {last['strict']:.3f}, "
                         f"average {points[0]['average']:.3f} -> {last['average']:.3f} at {last['tokens']:,} tokens "
                         f"({last['problems']} problems)")
    versus = result.get("repair_vs_resample")
    if versus:
        lines.append(f"Repair vs resample: {versus['statement']}")
    mem = result.get("memorisation")
    if mem and mem.get("checked"):
        lines.append(f"Memorisation check: {mem['flagged_count']} of {mem['checked']} program(s) flagged"
                     + "".join(f"\n  #{f['problem_id']} ({f['strategy']}): {f['summary']}" for f in mem["flagged"]))
        if mem["flagged_count"]:
            w = mem["without_flagged"]
            improvement = w["overall_improvement"]
            lines.append(f"Without flagged programs: {w['total_problems']} problems, {w['improved_problems']} improved, "
                         f"{w['worse_problems']} worse, mean improvement "
                         f"{'-' if improvement is None else format(improvement, '+.3f')}")
    unstable = result.get("unstable_verdicts")
    if unstable:
        lines.append(f"Unstable verdicts ({unstable['source']}): {unstable['improvements_on_unstable']} of "
                     f"{unstable['improvements']} improvement(s) and {unstable['regressions_on_unstable']} of "
                     f"{unstable['regressions']} regression(s) rest on a test whose verdict changed on a rerun")
    flips = result.get("flip_rate")
    if flips and flips.get("rate") is not None:
        lo, hi = flips["ci"]
        machine = flips.get("machine") or {}
        lines.append(f"Flip rate: {flips['rate']:.3f} [{lo:.3f}, {hi:.3f}] ({flips['flips']}/{flips['reruns']} reruns, "
                     f"{flips['unstable_tests']} of {flips['tests_rechecked']} tests unstable; load average "
                     f"{machine.get('load_average')}, {machine.get('cpu_count')} CPUs)")
    return lines
