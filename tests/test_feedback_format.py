"""format_feedback: fits a prompt (budget), failing tests first, middle cuts with a marker, the
first differing line, the traceback tail and the verdict name; real problem 0 stays in budget."""

from __future__ import annotations

import json
import re

import pytest

import librarybench_common as common
from conftest import shared_data


def results_for(executor, code: str, tests: list[dict], timeout: float = 2) -> list[dict]:
    [results] = common.run_unit_tests([code], tests, timeout=timeout, executor=executor)
    return results


def feedback(results: list[dict], tests: list[dict], **kwargs) -> str:
    return common.format_feedback(results, tests, common.count_passed(results), len(tests), **kwargs)


def test_cut_middle_keeps_head_and_tail_and_says_how_much() -> None:
    text = "HEAD" + "x" * 10_000 + "TAIL"
    cut = common.cut_middle(text, 200)
    assert len(cut) <= 200
    assert cut.startswith("HEAD") and cut.endswith("TAIL")
    kept = len(cut) - len(re.search(r"\n\.\.\. \[\d+ characters cut\] \.\.\.\n", cut).group(0))
    assert f"[{len(text) - kept} characters cut]" in cut
    assert common.cut_middle("short", 200) == "short"


def test_first_difference_uses_the_services_comparison() -> None:
    assert common.first_difference("1\n2\n3\n", "1  \n2\n3") is None
    assert common.first_difference("1\n2\n3", "1\n5\n3") == "line 2: expected '2', got '5'"
    assert common.first_difference("1\n2", "1") == "line 2: expected '2', got end of output (1 lines, expected 2)"
    assert common.first_difference("1", "1\n2") == "line 2: expected end of output (1 lines), got '2'"


def test_each_verdict_is_named_with_its_evidence(lb_local_executor) -> None:
    tests = [{"stdin": "1\n", "stdout": "2\n"}, {"stdin": "2\n", "stdout": "4\n"},
             {"stdin": "3\n", "stdout": "6\n"}, {"stdin": "0\n", "stdout": "0\n"}]
    code = ("import sys\nn = int(input())\n"
            "if n == 2:\n    print(5)\n"
            "elif n == 3:\n    def deep(k):\n        return {}['missing']\n    deep(1)\n"
            "elif n == 0:\n    while True: pass\n"
            "else:\n    print(2 * n)\n")
    text = feedback(results_for(lb_local_executor, code, tests, timeout=1), tests)
    assert text.startswith("Test Results: 1/4 tests passed (passed: 1, wrong_answer: 1, runtime_error: 1, timeout: 1)")
    assert "Test #2: FAILED (wrong_answer)" in text
    assert "First difference: line 1: expected '4', got '5'" in text
    assert "Test #3: FAILED (runtime_error)" in text
    assert "KeyError: 'missing'" in text and 'File "main.py"' in text
    assert "Test #4: FAILED (timeout)" in text and "did not finish within the time limit" in text
    assert "Test #1:" not in text and "Passed: #1" in text  # passing tests only listed


def test_failing_tests_come_before_the_passing_list(lb_local_executor) -> None:
    tests = [{"stdin": f"{i}\n", "stdout": f"{i}\n"} for i in range(6)]
    # two different failures (a wrong answer, then a crash): each has its own example, in test order
    code = "n = int(input())\nprint(n if n < 4 else -n if n == 4 else 1 // 0)"
    text = feedback(results_for(lb_local_executor, code, tests), tests)
    assert text.index("Test #5: FAILED") < text.index("Test #6: FAILED") < text.index("Passed: #1-#4")


def test_traceback_is_cut_to_its_tail(lb_local_executor) -> None:
    code = "".join(f"def f{i}():\n    return f{i + 1}()\n" for i in range(15)) + "def f15():\n    raise KeyError('deep')\nf0()\n"
    tests = [{"stdin": "", "stdout": "x"}]
    results = results_for(lb_local_executor, code, tests)
    stderr = results[0]["exec_output"]["run_output"]["stderr"]
    assert stderr.count("\n") > 20
    text = feedback(results, tests)
    assert "KeyError: 'deep'" in text
    assert text.count('File "main.py"') < stderr.count('File "main.py"')


@pytest.mark.parametrize("budget", [300, 1000, 6000])
def test_long_inputs_are_cut_and_budget_is_respected(lb_local_executor, budget: int) -> None:
    big = "\n".join(str(i) for i in range(20_000))
    tests = [{"stdin": big, "stdout": big}] * 5
    results = results_for(lb_local_executor, "import sys\nsys.stdin.read()\nprint('nope')", tests)
    text = feedback(results, tests, budget=budget)
    assert len(text) <= budget
    assert "Test #1: FAILED (wrong_answer)" in text
    assert "characters cut]" in text or budget < 500
    # the five tests fail alike: one example, and the others named (the old form repeated them)
    assert "4 more tests fail the same way: #2-#5" in text


def test_real_problem_0_feedback_fits_the_default_budget(lb_local_executor) -> None:
    record = json.loads(shared_data("o3mini_search_solutions.json").read_text())[0]
    tests = common.problem_tests(record, 0)
    assert sum(len(t["stdin"]) for t in tests) > 70_000
    for code in (common.extract_code(record["o3_mini_solution"], rule="first"), "print('NO')"):
        results = results_for(lb_local_executor, code, tests)
        text = feedback(results, tests)
        assert len(text) <= common.DEFAULT_FEEDBACK_BUDGET
        assert text.startswith(f"Test Results: {common.count_passed(results)}/87 tests passed")
        assert "FAILED (wrong_answer)" in text and "First difference: line" in text


def test_seed_positional_signature_still_works() -> None:
    results = [{"passed": True, "verdict": "passed"}, {"passed": False, "verdict": "wrong_answer",
                "exec_output": {"run_output": {"stdout": "1", "stderr": "", "exit_code": 0}}}]
    tests = [{"stdin": "a", "stdout": "0"}, {"stdin": "b", "stdout": "2"}]
    text = common.format_feedback(results, tests, 1, 2)
    assert "Test Results: 1/2 tests passed" in text and "Test #2: FAILED (wrong_answer)" in text


def test_timeout_feedback_is_deterministic(lb_local_executor) -> None:
    """The feedback is part of the prompt, hence of the response cache key: the same program must
    give the same text on every run (no elapsed time, no output captured up to the kill)."""
    tests = [{"stdin": "", "stdout": "1\n"}]
    # Output that keeps coming but stays far below the output cap whatever the machine's speed.
    code = "import time\nwhile True:\n    print('x', flush=True)\n    time.sleep(0.001)\n"
    texts = {feedback(results_for(lb_local_executor, code, tests, timeout=0.5), tests) for _ in range(2)}
    assert len(texts) == 1
    [text] = texts
    assert "FAILED (timeout)" in text and "did not finish within the time limit" in text
    assert "elapsed" not in text and "xxx" not in text.replace("\n", "")


def test_feedback_removes_addresses_and_temp_paths() -> None:
    tests = [{"stdin": "", "stdout": "1\n"}]
    stderr = ('Traceback (most recent call last):\n  File "/tmp/tmpab12cd/main.py", line 17, in <module>\n'
              "TypeError: <__main__.Foo object at 0x7f3a2b1c9d00> is not callable\n")
    results = [{"passed": False, "exec_output": {"run_output": {"stdout": "<object at 0x7ffde1234567>", "stderr": stderr,
                                                               "exit_code": 1, "timeout_expired": False}}}]
    text = feedback(results, tests)
    assert "0x7f3a2b1c9d00" not in text and "0x7ffde1234567" not in text and "/tmp/tmpab12cd" not in text
    assert 'File "main.py", line 2, in <module>' in text


def test_traceback_lines_are_the_programs_own(lb_local_executor) -> None:
    """The executors put the 15-line import header before the program; the feedback does not."""
    tests = [{"stdin": "", "stdout": "1\n"}]
    code = "x = 1\ny = 2\nprint(1 / 0)\n"
    results = results_for(lb_local_executor, code, tests)
    raw = results[0]["exec_output"]["run_output"]["stderr"]
    assert 'File "main.py", line 18' in raw  # the raw result keeps the executor's numbering
    text = feedback(results, tests)
    assert 'File "main.py", line 3' in text and "line 18" not in text
    assert 'line 18' in common.format_feedback(results, tests, 0, 1, header_lines=0)


def test_failures_are_grouped_so_every_distinct_one_is_seen(lb_local_executor) -> None:
    """20 tests crash alike on a long input, then 3 divide by zero, then 1 wrong answer: within a
    budget that the repeated form spent on the first group, each way of failing has its example."""
    long_input = "\n".join(["1"] * 400) + "\n"
    tests = ([{"stdin": f"0\n{long_input}", "stdout": "x\n"}] * 20 + [{"stdin": "1\n", "stdout": "x\n"}] * 3
             + [{"stdin": "2\n", "stdout": "7\n"}, {"stdin": "3\n", "stdout": "3\n"}])
    code = ("import sys\nn = int(sys.stdin.readline())\n"
            "if n == 0:\n    [][5]\nelif n == 1:\n    print(1 // 0)\nelif n == 2:\n    print(8)\nelse:\n    print(3)\n")
    results = results_for(lb_local_executor, code, tests)
    text = feedback(results, tests, budget=2500)
    assert len(text) <= 2500
    assert "24 failing tests, 3 distinct failures: one example of each." in text
    assert "Test #1: FAILED (runtime_error); 19 more tests fail the same way: #2-#20" in text
    assert "IndexError: list index out of range" in text
    assert "Test #21: FAILED (runtime_error); 2 more tests fail the same way: #22-#23" in text
    assert "ZeroDivisionError" in text
    assert "Test #24: FAILED (wrong_answer)" in text and "First difference: line 1: expected '7', got '8'" in text
    assert text.count("Input:") == 3 and "Passed: #25" in text
    assert feedback(results, tests, budget=2500) == text  # deterministic


def test_groups_beyond_the_budget_are_listed_then_counted() -> None:
    """40 different exceptions: as many examples as fit, the next groups one line each, the rest counted."""
    tests = [{"stdin": f"{i}\n", "stdout": "ok\n"} for i in range(40)]
    results = [{"passed": False, "exec_output": {"run_output": {
        "stdout": "", "exit_code": 1, "timeout_expired": False,
        "stderr": f'Traceback (most recent call last):\n  File "main.py", line 16, in <module>\nValueError: bad value {i}\n'}}}
        for i in range(40)]
    text = feedback(results, tests, budget=2000)
    assert len(text) <= 2000
    assert "Test #1: FAILED (runtime_error)" in text and "ValueError: bad value 0" in text
    assert "Also failing:\n- 1 test (#" in text
    listed = text.count("\n- 1 test (#")
    examples = text.count("Input:")
    hidden = int(re.search(r"\.\.\. (\d+) more ways of failing \((\d+) tests\) not shown", text).group(1))
    assert examples >= 1 and listed >= 1 and examples + listed + hidden == 40


def test_a_real_answer_shows_every_distinct_failure(lb_local_executor) -> None:
    """claude_search problem 2 (first block): the repeated form showed 9 of its failing tests, all
    with the same traceback; grouped, each distinct failure appears."""
    record = json.loads(shared_data("claude_search_solutions.json").read_text())[2]
    tests = common.problem_tests(record, 2)
    code = common.extract_code(record["claude_solution"], rule="first")
    results = results_for(lb_local_executor, code, tests, timeout=10)
    text = feedback(results, tests)
    assert len(text) <= common.DEFAULT_FEEDBACK_BUDGET
    signatures = {common.failure_signature(t, r) for t, r in zip(tests, results) if not r.get("passed")}
    failing = sum(1 for r in results if not r.get("passed"))
    assert failing > 100
    for verdict, detail in signatures:
        assert f"({verdict})" in text and detail in text
    if len(signatures) > 1:
        assert f"{failing} failing tests, {len(signatures)} distinct failures" in text


def test_each_field_is_on_its_own_lines_and_empty_output_is_named(lb_local_executor) -> None:
    """A header never runs into the text before it, whether or not that text ends in a newline, and
    a program that printed nothing is shown as such rather than as a blank."""
    for stdin, stdout in (("1 2", "3\n"), ("4 5\n", "9")):
        tests = [{"stdin": stdin, "stdout": stdout}]
        text = feedback(results_for(lb_local_executor, "import sys\nsys.stdin.read()\n", tests), tests)
        assert f"Input:\n{stdin.strip()}\nExpected output:\n{stdout.strip()}\nActual output: (empty)\n" in text
