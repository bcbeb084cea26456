"""The equal-budget baseline of repair (``iterative_repair.py --strategy resample``): spend the
same tokens on fresh answers to the original problem instead of repairs, and keep the best by the
shown tests exactly as the repair loop does.

Per problem: iteration 0 is the starting program (the same as the repair's); sample ``n`` asks the
model the stated prompt below (the problem statement, no program, no feedback: the original
answer's own prompt is not in the files), extracts the program and runs it on the shown tests; a
sample replaces the best only when it passes strictly more shown tests. Sampling stops when the
target ratio is reached, when the budget is spent, when the next sample would (by the cost of the
last one) go past the budget, or after ``MAX_SAMPLES``. The budget is in recorded tokens (input +
output): the repair's tokens on the same problem when both strategies run, else ``--token-budget``.
Every sample has its own cache entry (``sample`` is part of the response cache key).
"""

from __future__ import annotations

from typing import Any, Callable

from librarybench_common import count_passed, cut_middle, extract_code
from repair_calls import ModelCaller, ProgramRunner
from repair_summary import Counts, Iteration, ProblemEntry, code_hash, counts_block, finished_entry, iteration_record, \
    problem_entry, subset_block

MAX_SAMPLES = 100  # a safety stop: a server that reports no tokens would otherwise never spend its budget
STATEMENT_LIMIT = 20_000
RESAMPLE_SYSTEM_PROMPT = (
    "You are an expert competitive programmer who writes Python 3 programs. A program reads its input from "
    "standard input and writes its answer to standard output; it is judged by comparing its output with the "
    "expected output of each test. Reply with the complete program in a single ```python code block "
    "(no partial snippets, no example usage, no tests)."
)
KIND_RESAMPLE_SYSTEM_PROMPT = (  # call and assert problems (standard datasets): judged by calling the code
    "You are an expert Python programmer who writes Python 3 code. The code defines a function (or a class "
    "Solution with a method) and is judged by calling it on the tests' arguments and comparing the returned value "
    "with the expected one, or by running the tests' assert statements after it. Reply with the complete code in "
    "a single ```python code block (no reading of input, no example usage, no tests)."
)
RESAMPLE_PROMPT_NOTE = ("the problem statement with a stated instruction (RESAMPLE_SYSTEM_PROMPT and resample_prompt "
                        "in resample.py); no program and no test feedback")


def resample_prompt(statement: str) -> str:
    return (f"## Problem\n{cut_middle(statement.strip(), STATEMENT_LIMIT)}\n\n"
            "Write a Python 3 program that solves this problem. Reply with the complete program in a single "
            "```python code block.")


async def resample_problem(*, caller: ModelCaller, runner: ProgramRunner, problem_id: int, model: str, statement: str,
                           original_code: str, shown: list[int], held: list[int] | None, initial_all: list[dict[str, Any]],
                           budget: int, target_ratio: float, on_iteration: Any = None,
                           system: str = RESAMPLE_SYSTEM_PROMPT, extract: Callable[[str | None], str] = extract_code,
                           ) -> ProblemEntry:
    """The resample loop for one problem; returns its entry (``strategy: resample``, ``budget_tokens``).
    ``system`` and ``extract``: call and assert problems have their own (see iterative_repair.program_of)."""
    everything = list(range(len(runner.tests)))
    results = await runner.results(original_code, shown)
    iterations: list[Iteration] = [iteration_record(0, original_code, results, None, [], None, indices=shown)]
    best = {"iteration": 0, "code": original_code, "passed": count_passed(results)}
    seen = {code_hash(original_code): 0}
    messages = [{"role": "user", "content": resample_prompt(statement)}]
    spent, last_cost, stopped = 0, 0, "max_samples"
    for number in range(1, MAX_SAMPLES + 1):
        if best["passed"] / len(shown) >= target_ratio:
            stopped = "target"
            break
        if spent >= budget or (number > 1 and spent + last_cost > budget):
            stopped = "budget"
            break
        completion = await caller.ask(messages, system=system, sample=number)
        last_cost = completion.input_tokens + completion.output_tokens
        spent += last_cost
        code = extract(completion.text)
        if not code:
            iterations.append(iteration_record(number, "", None, completion, [], None))
        else:
            duplicate_of = seen.setdefault(code_hash(code), number)
            results = await runner.results(code, shown)
            passed = count_passed(results)
            iterations.append(iteration_record(number, code, results, completion, [],
                                               duplicate_of if duplicate_of != number else None, indices=shown))
            if passed > best["passed"]:
                best = {"iteration": number, "code": code, "passed": passed}
        if on_iteration is not None:
            on_iteration()
        if last_cost <= 0:
            stopped = "no_token_counts"
            break
    else:
        stopped = "target" if best["passed"] / len(shown) >= target_ratio else "max_samples"
    final_all = await runner.results(best["code"], everything)
    initial: Counts = counts_block(initial_all)
    split = None if held is None else (subset_block(initial_all, final_all, shown), subset_block(initial_all, final_all, held))
    entry = problem_entry(problem_id, model, status="done", error=None, initial=initial, iterations=iterations,
                          original_code=original_code)
    done = finished_entry(entry, initial=initial, final=counts_block(final_all), best_iteration=best["iteration"],
                          best_code=best["code"], stopped=stopped, executions=0, split=split)
    done["strategy"] = "resample"
    done["budget_tokens"] = budget
    return done
