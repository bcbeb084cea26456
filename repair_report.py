"""The repair loop's report lines that summarise a run in words (iterative_repair prints them
at the end, the summary keeps ``test_split``): labelled per-iteration lines, the test split named,
and the cost split into what this run spent and what the cached answers had cost.

Owns only the wording and sums; the entries are ``repair_summary.ProblemEntry`` dicts.
"""

from __future__ import annotations

from typing import Any, Sequence

from llm_clients import estimate_cost
from repair_calls import RunStats
from repair_summary import ProblemEntry


def split_note(entries: Sequence[ProblemEntry], *, show_private: bool, public_split: bool,
               feedback_tests: str | None) -> str:
    """The split named in words: ``feedback: public tests (3), scored on all (10)``."""
    done = [e for e in entries if e["status"] == "done" and e.get("final")]
    shown = sum((e.get("feedback") or {}).get("initial", e["final"])["total"] for e in done)  # type: ignore[union-attr]
    total = sum(e["final"]["total"] for e in done)  # type: ignore[index]
    if show_private:
        which = "public and private tests"
    elif public_split:  # records of standard problems (datasets without a split have every test public)
        which = "public tests"
    else:
        which = "all tests"
    if feedback_tests is not None:
        which += f", --feedback-tests {feedback_tests} of them"
    return f"feedback: {which} ({shown}), scored on all ({total})"


def iteration_lines(entries: Sequence[ProblemEntry]) -> list[str]:
    """One labelled line per iteration number over the problems that reached it (shown tests)."""
    numbers = sorted({i["iteration"] for e in entries for i in e.get("iterations") or []})
    lines = []
    for number in numbers:
        steps = [i for e in entries for i in e.get("iterations") or [] if i["iteration"] == number]
        scored = [i for i in steps if i["total"] is not None]
        label = "iteration 0 (original program)" if number == 0 else f"iteration {number}"
        line = (f"{label}: {sum(i['passed'] for i in scored)}/{sum(i['total'] for i in scored)} shown tests passed "
                f"on {len(steps)} problem(s)")
        no_code = len(steps) - len(scored)
        lines.append(line + (f", {no_code} answer(s) without code" if no_code else ""))
    return lines


def cost_line(model: str, agg: Any, stats: RunStats | None) -> str:
    """The estimated cost; with cached answers, what this run spent and what the cached ones cost."""
    cost = agg["estimated_cost_usd"]
    if cost is None:
        return "estimated cost unknown (no price for this model)"
    if stats is None or not stats.cached_calls:
        return f"estimated cost ${cost:.4f}"
    spent = estimate_cost(model, stats.new_input_tokens, stats.new_output_tokens) or 0.0
    cached = estimate_cost(model, stats.input_tokens - stats.new_input_tokens,
                           stats.output_tokens - stats.new_output_tokens) or 0.0
    return f"estimated cost: this run spent ${spent:.4f}; the cached answers cost ${cached:.4f} when made"
