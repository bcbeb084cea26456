"""extract_code: every answer format seen in the data, the documented "best" rule, and the
seed's "first" rule (which the recorded counts were made with)."""

from __future__ import annotations

import ast
import json
import re

import pytest

import librarybench_common as common
from conftest import SAMPLES, shared_data
from errors import ConfigError

F = "```"
PROGRAM = "n = int(input())\nprint(n * 2)"
DASH = "-" * 30


@pytest.mark.parametrize("tag", ["python", "py", "python3", "Python", ""])
def test_fenced_blocks_with_each_tag(tag: str) -> None:
    answer = f"Here it is:\n\n{F}{tag}\n{PROGRAM}\n{F}\n\nDone."
    assert common.extract_code(answer) == PROGRAM + "\n"


def test_non_python_fences_are_ignored() -> None:
    answer = f"Input:\n{F}text\n3\n{F}\nOutput:\n{F}\n6\n{F}\nCode:\n{F}python\n{PROGRAM}\n{F}"
    assert common.extract_code(answer) == PROGRAM + "\n"


def test_o3_mini_dashed_block() -> None:
    answer = f"We double it.\n\n{DASH}\n{PROGRAM}\n{DASH}\n\nExplanation."
    assert common.extract_code(answer) == PROGRAM + "\n"


def test_title_between_dashed_lines_is_skipped_by_best_rule_but_taken_by_first() -> None:
    answer = f"Solution below.\n{DASH}\n# Python solution\n{DASH}\n\n{PROGRAM}\n\n{DASH}\nWhy it works."
    assert common.extract_code(answer) == PROGRAM + "\n"
    assert common.extract_code(answer, rule="first") == "# Python solution\n"


def test_fragment_then_complete_program_picks_the_program() -> None:
    answer = (f"A helper:\n{F}python\ndef double(n):\n    return n * 2\n{F}\n"
              f"Full program:\n{F}python\n{PROGRAM}\n{F}\nUsage:\n{F}python\ndouble(3)\n{F}")
    assert common.extract_code(answer) == PROGRAM + "\n"


def test_revised_program_after_first_attempt_wins() -> None:
    first = "n = int(input())\nprint(n + n + 1)"
    answer = f"{F}python\n{first}\n{F}\nWait, off by one. Corrected:\n{F}python\n{PROGRAM}\n{F}\n"
    assert common.extract_code(answer) == PROGRAM + "\n"
    assert common.extract_code(answer, rule="first") == first


def test_functions_only_block_is_not_a_complete_program() -> None:
    only_defs = "import sys\ndef main():\n    print(sys.stdin.read())"
    assert not common.is_complete_program(only_defs)
    assert common.is_complete_program(only_defs + "\nmain()")
    assert common.is_complete_program(only_defs + "\nif __name__ == '__main__':\n    main()")


def test_no_complete_block_falls_back_to_longest_parseable() -> None:
    answer = f"{F}python\ndef f(x):\n    return x\n{F}\n{F}python\ndef g(x):\n    y = x * 2\n    return y\n{F}\n{F}python\ndef broken(:\n{F}"
    assert common.extract_code(answer) == "def g(x):\n    y = x * 2\n    return y\n"


@pytest.mark.parametrize("answer", ["", None, "I could not solve this problem.", "Use a heap; O(n log n)."])
def test_answers_without_code_give_empty_program(answer: str | None) -> None:
    assert common.extract_code(answer) == ""


def test_bare_program_without_markers_is_returned_whole() -> None:
    assert common.extract_code(PROGRAM) == PROGRAM + "\n"


def test_unclosed_fence_runs_to_the_end() -> None:
    assert common.extract_code(f"Code:\n{F}python\n{PROGRAM}\n") == PROGRAM + "\n"


def test_first_rule_reproduces_the_seed_fallbacks() -> None:
    assert common.extract_code(f"{F}python\n{PROGRAM}\n{F}", rule="first") == PROGRAM
    assert common.extract_code("Try this: def f(x): return x", rule="first") == "def f(x): return x"
    assert common.extract_code("no code here", rule="first") == "no code here"


def test_unknown_rule_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown extraction rule 'last'"):
        common.extract_code("x", rule="last")


def test_code_blocks_lists_every_dashed_segment() -> None:
    answer = f"{DASH}\ntitle\n{DASH}\ncode\n{DASH}\n"
    assert common.code_blocks(answer) == ["title", "code"]


def test_sample_answers_extract_to_runnable_programs() -> None:
    for name, key in (("sample_problems.json", "sample_solution"), ("sample_o3mini_style.json", "o3_mini_solution")):
        for record in json.loads((SAMPLES / name).read_text()):
            code = common.extract_code(record[key])
            assert common.is_complete_program(code), (name, record["name"])


# ---- the shared real answers ----------------------------------------------------------------


def load_real(name: str) -> list[dict]:
    return json.loads(shared_data(name).read_text())


def test_real_o3_mini_problem_2_best_rule_finds_the_program_after_the_title() -> None:
    answer = load_real("o3mini_search_solutions.json")[2]["o3_mini_solution"]
    assert common.extract_code(answer, rule="first").strip() == "# Python solution"
    best = common.extract_code(answer)
    assert best.lstrip().startswith("def solve():") and "solve()" in best.rstrip().splitlines()[-1]


@pytest.mark.parametrize(("name", "key"), [
    ("o3mini_search_solutions.json", "o3_mini_solution"),
    ("claude_search_solutions.json", "claude_solution"),
    ("o3mini_chess_solutions.json", "o3_mini_solution"),
])
def test_real_answers_best_rule_always_gives_a_complete_program(name: str, key: str) -> None:
    for index, record in enumerate(load_real(name)):
        code = common.extract_code(record[key])
        assert common.is_complete_program(code), (name, index)
        ast.parse(code)


def test_real_claude_answers_best_rule_takes_the_last_of_several_programs() -> None:
    answer = load_real("claude_search_solutions.json")[4]["claude_solution"]
    blocks = [b.strip("\n") for b in common.fenced_blocks(answer)]
    assert len(blocks) == 5
    assert common.extract_code(answer) == blocks[-1] + "\n"
    assert common.extract_code(answer, rule="first") == re.search(r"```python\n(.*?)\n```", answer, re.S).group(1)
