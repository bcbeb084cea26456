"""The memorisation check on the real answers of the shared data: programs nobody tuned to their
tests must not be flagged, even when every test counts as shown (the check's false positives)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import librarybench_common as common  # noqa: E402
import memorisation  # noqa: E402
from conftest import shared_data  # noqa: E402


@pytest.mark.parametrize("name,key", [("o3mini_search_solutions.json", "o3_mini_solution"),
                                      ("claude_search_solutions.json", "claude_solution"),
                                      ("o3mini_chess_solutions.json", "o3_mini_solution")])
def test_real_answers_and_human_solutions_are_not_flagged(name: str, key: str) -> None:
    path = shared_data(name)
    records = common.load_problems(path)
    for index, record in enumerate(records):
        tests = common.problem_tests(record, index, path)
        assert len(tests) > 10
        for answer in (key, "human_solution"):
            code = common.answer_program(record, answer)
            flags = memorisation.check_program(code, tests, range(1, len(tests) + 1))
            assert flags == [], (name, index, answer, memorisation.flags_summary(flags))
