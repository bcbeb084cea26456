"""The counts on the shared real data, on the embedded executor (default timeout).

The same programs must give the counts the remote service recorded: o3-mini answers with the
seed's extraction 627/915, human solutions 892/915, Claude answers with the seed's extraction
385/915. The "best" extraction rule keeps the figures documented in ``extract_code``.
"""

from __future__ import annotations

import asyncio
from functools import cache

import pytest

import librarybench_common as common
from conftest import shared_data

_counts: dict[tuple[str, int, str], int] = {}


@cache
def records(name: str) -> list[dict]:
    return common.load_problems(shared_data(name))


def count(executor, name: str, key: str, rule: str) -> tuple[int, int]:
    """(passed, total) over the file for one answer key and extraction rule (same program: run once)."""

    async def run() -> tuple[int, int]:
        passed = total = 0
        for index, record in enumerate(records(name)):
            tests = common.problem_tests(record, index, name)
            code = common.answer_program(record, key, rule=rule)
            if (name, index, code) not in _counts:
                results = await common.run_tests(code, tests, timeout=common.DEFAULT_TIMEOUT, executor=executor)
                _counts[(name, index, code)] = common.count_passed(results)
            passed += _counts[(name, index, code)]
            total += len(tests)
        return passed, total

    return asyncio.run(run())


def test_o3_mini_seed_extraction_passes_627_of_915(lb_local_executor) -> None:
    assert count(lb_local_executor, "o3mini_search_solutions.json", "o3_mini_solution", "first") == (627, 915)


def test_human_solutions_pass_892_of_915(lb_local_executor) -> None:
    assert count(lb_local_executor, "o3mini_search_solutions.json", "human_solution", "first") == (892, 915)


def test_claude_seed_extraction_passes_385_of_915(lb_local_executor) -> None:
    assert count(lb_local_executor, "claude_search_solutions.json", "claude_solution", "first") == (385, 915)


@pytest.mark.parametrize(("name", "key", "rule", "expected"), [
    ("o3mini_search_solutions.json", "o3_mini_solution", "best", (851, 915)),
    ("claude_search_solutions.json", "claude_solution", "best", (666, 915)),
    ("claude_search_solutions.json", "human_solution", "best", (892, 915)),
    ("o3mini_chess_solutions.json", "o3_mini_solution", "first", (794, 1082)),
    ("o3mini_chess_solutions.json", "o3_mini_solution", "best", (988, 1082)),
    ("o3mini_chess_solutions.json", "human_solution", "best", (1034, 1082)),
])
def test_documented_figures(lb_local_executor, name: str, key: str, rule: str, expected: tuple[int, int]) -> None:
    assert count(lb_local_executor, name, key, rule) == expected
