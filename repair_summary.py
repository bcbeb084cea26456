"""The repair run's files: the contract between ``iterative_repair.py``, which writes them, and
``compare_model_improvements.py``, which reads them (format: ``docs/repair_summary_format.md``).

This module owns the naming rules (``improved_<model key>`` answers of the repair,
``resampled_<model key>`` answers of the equal-budget resampling baseline, ``summary_<output name>``,
``<output>.checkpoint.jsonl``), the typed records of the summary, its problems and iterations,
the builders the writer uses, and the one reader. The reader is defensive: a summary is a file
from another run, perhaps of another version or edited by hand, so every field is checked and a
malformed one reads as absent rather than as a crash.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, NotRequired, Protocol, Sequence, TypedDict

from errors import InputError
from llm_clients import estimate_cost, price_of
from librarybench_common import count_passed, count_verdicts

log = logging.getLogger("librarybench.repair_summary")

SUMMARY_SCHEMA = "librarybench.repair_summary/1"
SUMMARY_SCHEMA_PREFIX = "librarybench.repair_summary/"
IMPROVED_PREFIX = "improved_"
RESAMPLED_PREFIX = "resampled_"
STRATEGIES = ("repair", "resample")
SUMMARY_PREFIX = "summary_"
CHECKPOINT_SUFFIX = ".checkpoint.jsonl"


# --------------------------------------------------------------------------------------------
# Naming rules
# --------------------------------------------------------------------------------------------


def improved_key(model_key: str) -> str:
    """The output record's key holding the repaired program of ``model_key``'s answer."""
    return f"{IMPROVED_PREFIX}{model_key}"


def resampled_key(model_key: str) -> str:
    """The output record's key holding the best resampled program (``--strategy resample``)."""
    return f"{RESAMPLED_PREFIX}{model_key}"


def improved_model_keys(records: Iterable[Any], prefixes: tuple[str, ...] = (IMPROVED_PREFIX,)) -> list[str]:
    """The model keys that have an ``improved_<key>`` (or another prefix's) answer in some record,
    in first-seen order."""
    keys: list[str] = []
    for record in records:
        if isinstance(record, dict):
            for key in record:
                for prefix in prefixes:
                    name = key[len(prefix):]
                    if key.startswith(prefix) and name not in keys:
                        keys.append(name)
    return keys


def default_output_path(solution_file: Path) -> Path:
    """``improved_<input file name>`` in the current directory."""
    return Path(f"{IMPROVED_PREFIX}{solution_file.name}")


def summary_path(output_file: str | Path) -> Path:
    """``summary_<output name>`` beside the output file."""
    path = Path(output_file)
    return path.with_name(f"{SUMMARY_PREFIX}{path.name}")


def checkpoint_path(output_file: str | Path) -> Path:
    path = Path(output_file)
    return path.with_name(f"{path.name}{CHECKPOINT_SUFFIX}")


# --------------------------------------------------------------------------------------------
# Records (the JSON shapes, as written)
# --------------------------------------------------------------------------------------------


class Counts(TypedDict):
    """A program's score on a set of tests."""

    passed: int
    total: int
    ratio: float | None
    verdicts: dict[str, int]


class Subset(TypedDict):
    """Scores on the feedback or held-out tests; ``test_indices`` are 1-based among all tests."""

    initial: Counts
    final: Counts
    test_indices: list[int]


class Iteration(TypedDict):
    """One program of the loop (iteration 0: the starting program), scored on the shown tests."""

    iteration: int
    passed: int | None
    total: int | None
    ratio: float | None
    verdicts: dict[str, int]
    code_sha256: str | None
    code: str
    response: str | None
    stop_reason: str | None
    input_tokens: int
    output_tokens: int
    latency_s: float
    cached: bool
    truncated: bool
    no_code: bool
    regressions: list[int]
    duplicate_of: int | None


class ProblemEntry(TypedDict):
    """One problem of the summary (also the checkpoint's entry). ``stopped`` and ``executions``
    exist when ``status`` is ``done``. ``resample``: the same record for the resampling baseline
    (``strategy`` "resample", ``budget_tokens``); ``recheck``: the problem's ``--recheck-timeouts``
    counts (``tests_rechecked``, ``unstable_tests``, ``reruns``, ``flips``)."""

    problem_id: int
    status: str  # "done" or "error"
    error: str | None
    initial: Counts | None
    final: Counts | None
    feedback: Subset | None
    held_out: Subset | None
    best_iteration: int | None
    best_code: str
    iterations: list[Iteration]
    model_calls: int
    cached_calls: int
    input_tokens: int
    output_tokens: int
    new_input_tokens: int
    new_output_tokens: int
    cost_usd: float | None
    new_cost_usd: float | None
    stopped: NotRequired[str]
    executions: NotRequired[int]
    strategy: NotRequired[str]
    budget_tokens: NotRequired[int | None]
    resample: NotRequired["ProblemEntry"]
    recheck: NotRequired[dict[str, int]]
    limits: NotRequired[dict[str, Any]]  # problem_limits: the timeout and memory limit it ran under


class HeldOutAggregate(TypedDict):
    avg_initial_ratio: float | None
    avg_final_ratio: float | None
    feedback_avg_initial_ratio: float | None
    feedback_avg_final_ratio: float | None


class Aggregate(TypedDict):
    problems: int
    errors: int
    avg_initial_ratio: float | None
    avg_final_ratio: float | None
    avg_improvement: float | None
    fully_passing_before: int
    fully_passing_after: int
    model_calls: int
    cached_calls: int
    input_tokens: int
    output_tokens: int
    new_input_tokens: int
    new_output_tokens: int
    estimated_cost_usd: float | None
    new_estimated_cost_usd: float | None
    price_per_mtok_usd: list[float] | None
    cost_note: str
    held_out: HeldOutAggregate | None


class RepairSummary(TypedDict):
    schema: str
    solution_file: str
    output_file: str
    model: str
    provider: str
    base_url: str | None
    model_key: str
    settings: dict[str, Any]
    scores_on_shown_tests: bool
    scores_note: str
    complete: bool
    pending: list[int]
    problems: list[ProblemEntry]
    aggregate: Aggregate
    this_run: dict[str, Any]


class ModelAnswer(Protocol):
    """What an iteration records of a model's answer (``llm_clients.Completion``)."""

    text: str
    stop_reason: str | None
    truncated: bool
    input_tokens: int
    output_tokens: int
    latency_s: float
    cached: bool


# --------------------------------------------------------------------------------------------
# Builders (the writer: iterative_repair.py)
# --------------------------------------------------------------------------------------------


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def counts_block(results: Sequence[Mapping[str, Any]], indices: Sequence[int] | None = None) -> Counts:
    """A program's score; with ``--recheck-timeouts`` also ``rechecked``: its rechecked tests
    (1-based among all tests: ``indices[i]`` is the 0-based test index of ``results[i]``) with ``stable``."""
    passed, total = count_passed(results), len(results)
    block: Counts = {"passed": passed, "total": total, "ratio": round(passed / total, 6) if total else None,
                     "verdicts": count_verdicts(results)}
    if any("stable" in r for r in results):
        from timing_recheck import rechecked_records

        block["rechecked"] = rechecked_records(results, indices)  # type: ignore[typeddict-unknown-key]
    return block


def iteration_record(number: int, code: str, shown_results: Sequence[Mapping[str, Any]] | None,
                     answer: ModelAnswer | None, regressions: list[int], duplicate_of: int | None,
                     indices: Sequence[int] | None = None) -> Iteration:
    """``shown_results`` None: the answer had no code, so nothing was run (counts are null).
    ``indices``: the 0-based test index of each shown result (for ``rechecked``)."""
    block = counts_block(shown_results, indices) if shown_results is not None else None
    record: Iteration = {
        "iteration": number,
        "passed": block["passed"] if block else None, "total": block["total"] if block else None,
        "ratio": block["ratio"] if block else None, "verdicts": block["verdicts"] if block else {},
        "code_sha256": code_hash(code) if code else None, "code": code,
        "response": answer.text if answer else None,
        "stop_reason": answer.stop_reason if answer else None,
        "input_tokens": answer.input_tokens if answer else 0,
        "output_tokens": answer.output_tokens if answer else 0,
        "latency_s": answer.latency_s if answer else 0.0,
        "cached": bool(answer and answer.cached),
        "truncated": bool(answer and answer.truncated),
        "no_code": answer is not None and not code,
        "regressions": regressions, "duplicate_of": duplicate_of,
    }
    if block is not None and "rechecked" in block:
        record["rechecked"] = block["rechecked"]  # type: ignore[typeddict-unknown-key]
    return record


def subset_block(initial: Sequence[Mapping[str, Any]], final: Sequence[Mapping[str, Any]],
                 indices: list[int]) -> Subset:
    return {"initial": counts_block([initial[i] for i in indices], indices),
            "final": counts_block([final[i] for i in indices], indices), "test_indices": [i + 1 for i in indices]}


def problem_entry(problem_id: int, model: str, *, status: str, error: str | None, initial: Counts | None,
                  iterations: list[Iteration], original_code: str) -> ProblemEntry:
    """Fields every entry has, done or error; token totals and costs come from the iterations."""
    tokens_in = sum(i["input_tokens"] for i in iterations)
    tokens_out = sum(i["output_tokens"] for i in iterations)
    new_in = sum(i["input_tokens"] for i in iterations if not i["cached"])
    new_out = sum(i["output_tokens"] for i in iterations if not i["cached"])
    return {
        "problem_id": problem_id, "status": status, "error": error,
        "initial": initial, "final": None, "feedback": None, "held_out": None,
        "best_iteration": None, "best_code": original_code, "iterations": iterations,
        "model_calls": sum(1 for i in iterations if i["response"] is not None),
        "cached_calls": sum(1 for i in iterations if i["cached"]),
        "input_tokens": tokens_in, "output_tokens": tokens_out,
        "new_input_tokens": new_in, "new_output_tokens": new_out,
        "cost_usd": estimate_cost(model, tokens_in, tokens_out),
        "new_cost_usd": estimate_cost(model, new_in, new_out),
    }


def finished_entry(entry: ProblemEntry, *, initial: Counts, final: Counts, best_iteration: int, best_code: str,
                   stopped: str, executions: int, split: tuple[Subset, Subset] | None) -> ProblemEntry:
    """A ``done`` entry: the base entry plus the final score, the best program and the split."""
    done: ProblemEntry = {**entry, "initial": initial, "final": final, "best_iteration": best_iteration,
                          "best_code": best_code, "stopped": stopped, "executions": executions}
    if split is not None:
        done["feedback"], done["held_out"] = split
    return done


def fence(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```" if code.strip() else "```python\n```"


def output_records(records: list[Any], entries: Mapping[int, ProblemEntry], model_key: str,
                   strategies: Sequence[str] = ("repair",)) -> list[Any]:
    """The input records with ``improved_<model_key>`` (the repair) and ``resampled_<model_key>``
    (the resampling baseline) on every finished problem, for the strategies that ran."""
    out = []
    for index, record in enumerate(records):
        entry = entries.get(index)
        if entry is not None and isinstance(record, dict):
            record = dict(record)
            if "repair" in strategies:
                record[improved_key(model_key)] = fence(entry.get("best_code") or "")
            if "resample" in strategies:
                resampled = entry.get("resample")
                record[resampled_key(model_key)] = fence((resampled or entry).get("best_code") or "")
        out.append(record)
    return out


def _average(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 6) if present else None


def exact_ratio(block: Counts | None) -> float | None:
    """passed/total unrounded, so averages and differences do not carry rounding noise."""
    if not block or not block.get("total"):
        return None
    return block["passed"] / block["total"]


def _sum_costs(values: Sequence[float | None]) -> float | None:
    return None if any(v is None for v in values) else round(sum(v for v in values if v is not None), 6)


def aggregate(entries: Sequence[ProblemEntry], model: str, held_out: bool) -> Aggregate:
    done = [e for e in entries if e["status"] == "done"]
    initial = [exact_ratio(e["initial"]) for e in done]
    final = [exact_ratio(e["final"]) for e in done]
    price = price_of(model)
    result: Aggregate = {
        "problems": len(entries), "errors": len(entries) - len(done),
        "avg_initial_ratio": _average(initial), "avg_final_ratio": _average(final),
        "avg_improvement": _average([f - i for i, f in zip(initial, final)]),  # type: ignore[operator]
        "fully_passing_before": sum(1 for e in done if e["initial"]["passed"] == e["initial"]["total"]),  # type: ignore[index]
        "fully_passing_after": sum(1 for e in done if e["final"]["passed"] == e["final"]["total"]),  # type: ignore[index]
        "model_calls": sum(e["model_calls"] for e in entries), "cached_calls": sum(e["cached_calls"] for e in entries),
        "input_tokens": sum(e["input_tokens"] for e in entries), "output_tokens": sum(e["output_tokens"] for e in entries),
        "new_input_tokens": sum(e["new_input_tokens"] for e in entries),
        "new_output_tokens": sum(e["new_output_tokens"] for e in entries),
        "estimated_cost_usd": _sum_costs([e["cost_usd"] for e in entries]),
        "new_estimated_cost_usd": _sum_costs([e["new_cost_usd"] for e in entries]),
        "price_per_mtok_usd": list(price) if price else None,
        "cost_note": ("estimate from a built-in list-price table (USD per million input/output tokens); "
                      "cost_usd counts all tokens, new_cost_usd only calls not served from the cache")
        if price else f"no price known for model {model!r}: cost is null",
        "held_out": None,
    }
    if held_out:
        done = [e for e in done if e.get("held_out")]  # problems with every test shown have no split
        result["held_out"] = {
            "avg_initial_ratio": _average([exact_ratio(e["held_out"]["initial"]) for e in done]),  # type: ignore[index]
            "avg_final_ratio": _average([exact_ratio(e["held_out"]["final"]) for e in done]),  # type: ignore[index]
            "feedback_avg_initial_ratio": _average([exact_ratio(e["feedback"]["initial"]) for e in done]),  # type: ignore[index]
            "feedback_avg_final_ratio": _average([exact_ratio(e["feedback"]["final"]) for e in done]),  # type: ignore[index]
        }
    return result


def strategy_totals(entries: Sequence[ProblemEntry], strategies: Sequence[str]) -> dict[str, dict[str, int]]:
    """Each strategy's model iterations (calls) and recorded tokens, summed over problems."""
    totals: dict[str, dict[str, int]] = {}
    for strategy in strategies:
        parts = [e if strategy == "repair" else e.get("resample") for e in entries]
        present = [p for p in parts if p]
        totals[strategy] = {
            "problems": len(present),
            "iterations": sum(max(0, len(p["iterations"]) - 1) for p in present),
            "model_calls": sum(p["model_calls"] for p in present),
            "input_tokens": sum(p["input_tokens"] for p in present),
            "output_tokens": sum(p["output_tokens"] for p in present),
        }
    return totals


def flip_rate_block(entries: Sequence[ProblemEntry], times: int, fraction: float) -> dict[str, Any]:
    from timing_recheck import FlipTally

    tally = FlipTally(times, fraction)
    for e in entries:
        counts = e.get("recheck") or {}
        for name in ("tests_rechecked", "unstable_tests", "reruns", "flips"):
            setattr(tally, name, getattr(tally, name) + int(counts.get(name, 0)))
    return tally.block()


def build_summary(*, solution_file: str, output_file: str, model: str, provider: str, base_url: str | None,
                  model_key: str, settings: dict[str, Any], held_out_split: bool, selected: Sequence[int],
                  entries: Mapping[int, ProblemEntry], complete: bool, this_run: dict[str, Any],
                  strategies: Sequence[str] = ("repair",), recheck: tuple[int, float] | None = None) -> RepairSummary:
    """The summary file's document; ``held_out_split``: the run used ``--feedback-tests``;
    ``recheck``: (times, fraction) of ``--recheck-timeouts``."""
    listed = [entries[i] for i in selected if i in entries]
    extra: dict[str, Any] = {}
    if list(strategies) != ["repair"]:
        extra["strategies"] = list(strategies)
        extra["strategy_totals"] = strategy_totals(listed, strategies)
        resampled = [e["resample"] for e in listed if e.get("resample")]
        if resampled:
            extra["resample_aggregate"] = aggregate(resampled, model, held_out_split)
    if recheck is not None:
        extra["flip_rate"] = flip_rate_block(listed, *recheck)
    return {  # type: ignore[return-value]
        "schema": SUMMARY_SCHEMA,
        "solution_file": solution_file, "output_file": output_file,
        "model": model, "provider": provider, "base_url": base_url, "model_key": model_key,
        "settings": settings,
        "scores_on_shown_tests": not held_out_split,
        "scores_note": ("iterations are scored on the feedback tests; held_out scores the final program on tests the model never saw"
                        if held_out_split else
                        "every test was shown to the model: the scores are on tests the model saw"),
        "complete": complete,
        "pending": [i for i in selected if i not in entries],
        "problems": listed,
        "aggregate": aggregate(listed, model, held_out_split),
        **extra,
        "this_run": this_run,
    }


# --------------------------------------------------------------------------------------------
# The reader (compare_model_improvements.py)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredCounts:
    """A score as the summary stored it (``passed`` None: not an integer there)."""

    passed: int | None
    total: int | None


@dataclass(frozen=True)
class StoredSubset:
    """A feedback or held-out block: its test indices (1-based) and stored initial/final ratios."""

    test_indices: tuple[int, ...] | None
    initial_ratio: float | None
    final_ratio: float | None


@dataclass(frozen=True)
class StoredIteration:
    """One program of a loop as stored: its shown-test score, program and recorded tokens."""

    iteration: int
    passed: int | None  # on the shown tests; None: no code (nothing ran)
    code: str
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class StoredProblem:
    problem_id: int
    iteration_ratios: list[float | None] | None
    initial: StoredCounts | None
    final: StoredCounts | None
    feedback: StoredSubset | None
    held_out: StoredSubset | None  # None: the problem had no held-out split
    iterations: tuple[StoredIteration, ...] = ()
    budget_tokens: int | None = None  # the resample's token budget
    resample: "StoredProblem | None" = None
    unstable_tests: tuple[int, ...] = ()  # 1-based tests a recheck found unstable (initial or final program)


@dataclass(frozen=True)
class SummaryView:
    """What the comparison uses of a repair summary, every field checked."""

    path: str | None
    model: str | None
    provider: str | None
    model_key: str | None
    scores_on_shown_tests: bool | None
    problems: Mapping[int, StoredProblem]
    held_out_reported: dict[str, Any] | None  # the summary's ``aggregate.held_out``
    cost: dict[str, Any] | None  # tokens and cost: the aggregate's, else the sum of the problems'
    strategies: tuple[str, ...] = ("repair",)
    flip_rate: dict[str, Any] | None = None
    strategy_totals: dict[str, Any] | None = None


def read_summary(improved_file: str, explicit: str | None = None, disabled: bool = False) -> SummaryView | None:
    """The repair summary of ``improved_file`` (``summary_<name>`` beside it) or ``explicit``.

    An explicit file must exist and be a JSON object (else ``InputError``); one found beside the
    improved file is skipped with a warning when it is not; None when there is none or
    ``disabled``.
    """
    if disabled:
        return None
    path = Path(explicit) if explicit else summary_path(improved_file)
    if not explicit and not path.exists():
        return None
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
        return None
    schema = data.get("schema")
    if isinstance(schema, str) and not schema.startswith(SUMMARY_SCHEMA_PREFIX):
        log.warning("%s: unexpected summary schema %r; reading what fields it has", path, schema)
    return parse_summary(data, str(path))


def parse_summary(data: Mapping[str, Any], path: str | None = None) -> SummaryView:
    """A summary document (as loaded from JSON) read into its checked view."""
    entries = _problem_entries(data)
    aggregate_block = data.get("aggregate")
    reported = aggregate_block.get("held_out") if isinstance(aggregate_block, dict) else None
    shown = data.get("scores_on_shown_tests")
    return SummaryView(
        path=path, model=_text(data.get("model")), provider=_text(data.get("provider")),
        model_key=_text(data.get("model_key")), scores_on_shown_tests=shown if isinstance(shown, bool) else None,
        problems={pid: _stored_problem(pid, entry) for pid, entry in entries.items()},
        held_out_reported=reported if isinstance(reported, dict) else None,
        cost=_cost_figures(data, entries),
        strategies=tuple(x for x in data.get("strategies", ["repair"]) if x in STRATEGIES)
        if isinstance(data.get("strategies"), list) else ("repair",),
        flip_rate=data["flip_rate"] if isinstance(data.get("flip_rate"), dict) else None,
        strategy_totals=data["strategy_totals"] if isinstance(data.get("strategy_totals"), dict) else None,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _problem_entries(data: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """The per-problem entries by problem id, skipping malformed ones."""
    entries = data.get("problems")
    if not isinstance(entries, list):
        return {}
    return {p["problem_id"]: p for p in entries if isinstance(p, dict) and isinstance(p.get("problem_id"), int)}


def _stored_problem(problem_id: int, entry: dict[str, Any], nested: bool = False) -> StoredProblem:
    held_out = entry.get("held_out")
    resample = entry.get("resample")
    budget = entry.get("budget_tokens")
    unstable: set[int] = set()
    for which in ("initial", "final"):
        block = entry.get(which)
        for r in (block.get("rechecked") if isinstance(block, dict) else None) or []:
            if isinstance(r, dict) and r.get("stable") is False and isinstance(r.get("test"), int):
                unstable.add(r["test"])
    return StoredProblem(
        problem_id=problem_id, iteration_ratios=iteration_ratios(entry),
        initial=_stored_counts(entry.get("initial")), final=_stored_counts(entry.get("final")),
        feedback=_stored_subset(entry.get("feedback")) if isinstance(held_out, dict) else None,
        held_out=_stored_subset(held_out) if isinstance(held_out, dict) else None,
        iterations=_stored_iterations(entry),
        budget_tokens=budget if isinstance(budget, int) and not isinstance(budget, bool) else None,
        resample=_stored_problem(problem_id, resample, True) if isinstance(resample, dict) and not nested else None,
        unstable_tests=tuple(sorted(unstable)),
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _stored_iterations(entry: Mapping[str, Any]) -> tuple[StoredIteration, ...]:
    """The loop's programs in iteration order (malformed ones skipped)."""
    iterations = entry.get("iterations")
    if not isinstance(iterations, list):
        return ()
    out = []
    for position, it in enumerate(iterations):
        if not isinstance(it, dict):
            continue
        number = it["iteration"] if isinstance(it.get("iteration"), int) and it["iteration"] >= 0 else position
        passed = it.get("passed") if isinstance(it.get("passed"), int) and not isinstance(it.get("passed"), bool) else None
        code = it.get("code") if isinstance(it.get("code"), str) else ""
        out.append(StoredIteration(number, passed if code else None, code, _count(it.get("input_tokens")),
                                   _count(it.get("output_tokens"))))
    return tuple(sorted(out, key=lambda x: x.iteration))


def _stored_counts(block: Any) -> StoredCounts | None:
    if not isinstance(block, dict):
        return None
    passed, total = block.get("passed"), block.get("total")
    return StoredCounts(passed if isinstance(passed, int) else None, total if isinstance(total, int) else None)


def _stored_subset(block: Any) -> StoredSubset | None:
    if not isinstance(block, dict):
        return None
    indices = block.get("test_indices")
    valid = isinstance(indices, list) and indices and all(isinstance(i, int) for i in indices)
    return StoredSubset(tuple(indices) if valid else None, _ratio_of(block.get("initial")),  # type: ignore[arg-type]
                        _ratio_of(block.get("final")))


def _ratio_of(block: Any) -> float | None:
    if isinstance(block, dict) and isinstance(block.get("ratio"), (int, float)):
        return float(block["ratio"])
    return None


def iteration_ratios(entry: Mapping[str, Any] | None) -> list[float | None] | None:
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


def _cost_figures(data: Mapping[str, Any], entries: Mapping[int, dict[str, Any]]) -> dict[str, Any] | None:
    """Tokens and cost: the summary's aggregate, else the sum of its problems; None when it records none."""
    aggregate_block = data.get("aggregate") if isinstance(data.get("aggregate"), dict) else {}
    keys = ("input_tokens", "output_tokens", "estimated_cost_usd")
    figures = {k: aggregate_block.get(k) for k in keys if isinstance(aggregate_block.get(k), (int, float))}
    source = "summary aggregate"
    if not figures:
        per_problem = {"input_tokens": "input_tokens", "output_tokens": "output_tokens", "estimated_cost_usd": "cost_usd"}
        for k, src in per_problem.items():
            values = [p[src] for p in entries.values() if isinstance(p.get(src), (int, float))]
            if values:
                figures[k] = sum(values)
        source = "sum of the summary's problems"
    if not figures:
        return None
    cost = {**{k: figures.get(k) for k in keys}, "model": data.get("model"), "provider": data.get("provider"),
            "source": source}
    resample = data.get("resample_aggregate")
    if isinstance(resample, dict):  # the resampling baseline's tokens, apart from the repair's
        cost["resample"] = {k: resample.get(k) for k in keys if isinstance(resample.get(k), (int, float))}
    return cost
