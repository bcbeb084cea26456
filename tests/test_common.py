"""librarybench_common: loading and its one-line errors, selection, semaphores, atomic writes,
executor selection, and running tests on the real embedded executor (every verdict)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

import librarybench_common as common
from conftest import SAMPLES
from errors import ConfigError, ExecutionError, InputError

SUM = "a, b = map(int, input().split())\nprint(a + b)\n"
TESTS = [{"stdin": "1 2\n", "stdout": "3\n"}, {"stdin": "5 5\n", "stdout": "10"}]


def write(tmp_path: Path, name: str, content: object) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


# ---- loading --------------------------------------------------------------------------------


def test_load_problems_reads_sample_file() -> None:
    records = common.load_problems(SAMPLES / "sample_problems.json")
    assert len(records) == 6
    assert all("input_output" in r and "sample_solution" in r for r in records)


def test_load_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.json: file not found"):
        common.load_problems(tmp_path / "nope.json")


def test_load_not_json_names_file_and_position(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.json", "[{\"a\": 1},\n oops]")
    with pytest.raises(InputError, match=r"bad\.json: not valid JSON \(line 2"):
        common.load_problems(path)


def test_load_not_a_list(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="expected a JSON list"):
        common.load_problems(write(tmp_path, "obj.json", {"a": 1}))


def test_input_output_as_string_and_as_dict_give_same_tests() -> None:
    io = {"inputs": ["1\n", "2\n"], "outputs": ["a\n", "b\n"]}
    assert common.create_test_cases_from_input_output(json.dumps(io)) == common.create_test_cases_from_input_output(io)
    assert common.create_test_cases_from_input_output(io) == [{"stdin": "1\n", "stdout": "a\n"},
                                                              {"stdin": "2\n", "stdout": "b\n"}]


def test_list_valued_inputs_are_joined_as_lines() -> None:
    tests = common.create_test_cases_from_input_output({"inputs": [["1 2", "3"]], "outputs": [["3"]]})
    assert tests == [{"stdin": "1 2\n3", "stdout": "3"}]


@pytest.mark.parametrize(("record", "message"), [
    ({"problem": "p"}, "problem 3: no tests (missing input_output)"),
    ({"input_output": ""}, "problem 3: no tests"),
    ({"input_output": "{not json"}, "problem 3: input_output is not valid JSON"),
    ({"input_output": json.dumps({"inputs": ["1"], "outputs": ["1", "2"]})}, "problem 3: input_output has 1 inputs but 2 outputs"),
    ({"input_output": json.dumps({"inputs": [], "outputs": []})}, "problem 3: no tests (input_output has empty inputs)"),
    ({"input_output": json.dumps({"fn_name": "f", "inputs": None})}, "input_output has no inputs/outputs lists"),
    ({"input_output": json.dumps([1, 2])}, "input_output must be an object"),
    ("just a string", "problem 3: record is not a JSON object"),
])
def test_problem_tests_bad_records_name_file_and_index(record: object, message: str) -> None:
    with pytest.raises(InputError) as info:
        common.problem_tests(record, 3, "f.json")
    text = str(info.value)
    assert text.startswith("f.json: problem 3: ")
    assert message in text
    assert "\n" not in text


def test_solution_keys_default_excludes_human_and_keeps_order() -> None:
    records = [{"b_solution": "", "human_solution": "", "a_solution": ""}, {"c_solution": ""}]
    assert common.solution_keys(records) == ["b_solution", "a_solution", "c_solution"]
    assert common.solution_keys(records, include_human=True)[-1] == "human_solution"


def test_resolve_model_key_accepts_stem_and_reports_missing_key() -> None:
    record = {"o3_mini_solution": "x", "human_solution": "y"}
    assert common.resolve_model_key(record, "o3_mini") == "o3_mini_solution"
    assert common.resolve_model_key(record, None) == "o3_mini_solution"
    with pytest.raises(InputError, match=r"model key 'claude' not found \(record has o3_mini_solution, human_solution\)"):
        common.resolve_model_key(record, "claude")


def test_answer_program_runs_human_solution_verbatim() -> None:
    record = {"human_solution": "print('```')\n", "m_solution": "```python\nprint(1)\n```"}
    assert common.answer_program(record, "human_solution") == "print('```')\n"
    assert common.answer_program(record, "m_solution") == "print(1)\n"
    assert common.answer_program({"m_solution": "no code here"}, "m_solution") == ""
    with pytest.raises(InputError, match="'m_solution' answer is null, not a string"):
        common.answer_program({"m_solution": None}, "m_solution")
    with pytest.raises(InputError, match="'m_solution' answer is int"):
        common.answer_program({"m_solution": 3}, "m_solution")
    with pytest.raises(InputError, match="no 'm_solution' answer"):
        common.answer_program({}, "m_solution")


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({}, None),
    ({"problem_id": 3}, [3]),
    ({"problem_ids": "1, 4,7"}, [1, 4, 7]),
    ({"range_spec": "2-5"}, [2, 3, 4, 5]),
])
def test_parse_problem_selection(kwargs: dict, expected: list[int] | None) -> None:
    selection = common.parse_problem_selection(**kwargs)
    if expected is None:
        assert selection is None
    else:  # a range is kept as its bounds and expanded only against a file
        assert common.selected_indices(10, selection, "f.json") == expected


@pytest.mark.parametrize("kwargs", [{"problem_ids": "1,x"}, {"range_spec": "5-2"}, {"range_spec": "a-b"}])
def test_parse_problem_selection_rejects_garbage(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        common.parse_problem_selection(**kwargs)


# ---- files ----------------------------------------------------------------------------------


def test_write_atomic_json_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.json"
    common.write_atomic_json(target, {"a": 1})
    common.write_atomic_json(target, {"b": "é"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"b": "é"}
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_write_atomic_text_keeps_old_file_when_serialisation_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    common.write_atomic_text(target, "old")
    with pytest.raises(TypeError):
        common.write_atomic_json(target, {"x": object()})
    assert target.read_text() == "old"


# ---- semaphores -----------------------------------------------------------------------------


async def test_exec_semaphore_bounds_concurrency() -> None:
    common.set_semaphore_limits(exec=3)
    try:
        running = peak = 0

        async def job() -> None:
            nonlocal running, peak
            async with common.exec_semaphore():
                running += 1
                peak = max(peak, running)
                await asyncio.sleep(0.01)
                running -= 1

        await asyncio.gather(*(job() for _ in range(20)))
        assert peak == 3
        assert common.llm_semaphore() is common.llm_semaphore()
    finally:
        common.set_semaphore_limits(exec=common.DEFAULT_EXEC_CONCURRENCY)


def test_semaphore_limit_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="--llm-semaphore must be at least 1"):
        common.set_semaphore_limits(llm=0)


def test_semaphores_work_in_successive_event_loops() -> None:
    async def use() -> int:
        async with common.exec_semaphore():
            return 1

    assert asyncio.run(use()) + asyncio.run(use()) == 2


# ---- executor selection ---------------------------------------------------------------------


def test_get_executor_is_local_without_cyber_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CYBER_URL", raising=False)
    executor = common.get_executor()
    assert executor.name == "local"
    assert executor is common.get_executor("local")


def test_get_executor_is_remote_with_cyber_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYBER_URL", "http://127.0.0.1:9/run")
    executor = common.get_executor()
    assert isinstance(executor, common.RemoteExecutor)
    assert executor.url == "http://127.0.0.1:9/run"
    assert "http://127.0.0.1:9/run" in executor.isolation
    assert common.get_executor("local").name == "local"  # the flag overrides the variable


def test_remote_without_cyber_url_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CYBER_URL", raising=False)
    with pytest.raises(ConfigError, match="CYBER_URL is not set"):
        common.get_executor("remote")


@pytest.mark.parametrize("url", ["localhost:8000", "ftp://x/y", "http://"])
def test_remote_rejects_urls_that_are_not_http(url: str) -> None:
    with pytest.raises(ConfigError, match="http:// or https://"):
        common.RemoteExecutor(url)


def test_unknown_executor_kind() -> None:
    with pytest.raises(ConfigError, match="unknown executor 'gpu'"):
        common.get_executor("gpu")


def test_local_limits_are_rejected_for_remote(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYBER_URL", "http://127.0.0.1:9/")
    with pytest.raises(ConfigError, match="local executor only"):
        common.get_executor("remote", memory_mb=100)


# ---- running tests on the embedded executor -------------------------------------------------


def test_run_unit_tests_gives_api_shape_and_every_verdict(lb_local_executor) -> None:
    programs = [SUM, "print(0)", "raise ValueError('boom')", "while True: pass"]
    results = common.run_unit_tests(programs, TESTS, timeout=1, executor=lb_local_executor)
    assert [[r["verdict"] for r in rs] for rs in results] == [
        ["passed", "passed"], ["wrong_answer", "wrong_answer"],
        ["runtime_error", "runtime_error"], ["timeout", "timeout"],
    ]
    first = results[0][0]
    assert set(first) >= {"code", "test", "passed", "exec_output", "uncaught_exception", "verdict"}
    assert first["code"].endswith(SUM) and first["code"].startswith("from collections import *")
    assert first["test"] == TESTS[0]
    run = first["exec_output"]["run_output"]
    assert run["stdout"] == "3\n" and run["exit_code"] == 0 and run["timeout_expired"] is False
    assert "ValueError: boom" in results[2][0]["exec_output"]["run_output"]["stderr"]
    assert results[3][0]["exec_output"]["run_output"]["timeout_expired"] is True


def test_count_passed_and_verdicts(lb_local_executor) -> None:
    [results] = common.run_unit_tests(["print(3)"], TESTS, executor=lb_local_executor)
    assert common.count_passed(results) == 1
    assert common.count_verdicts(results) == {"passed": 1, "wrong_answer": 1}


async def test_run_tests_reports_each_result_and_keeps_order(lb_local_executor) -> None:
    seen = []
    tests = [{"stdin": f"{i} {i}\n", "stdout": f"{2 * i}\n"} for i in range(12)]
    results = await common.run_tests(SUM, tests, executor=lb_local_executor, on_result=seen.append)
    assert len(seen) == 12
    assert [r["test"] for r in results] == tests
    assert all(r["passed"] for r in results)


async def test_run_unit_tests_async_matches_blocking_version(lb_local_executor) -> None:
    results = await common.run_unit_tests_async([SUM, "print(0)"], TESTS, executor=lb_local_executor)
    assert [common.count_passed(r) for r in results] == [2, 0]


class BrokenExecutor:
    """An executor whose infrastructure fails on the third test (a real object, not a mock)."""

    name = "broken"

    def __init__(self) -> None:
        self.calls = 0
        self.finished = 0

    async def run_tests(self, code, tests, *, timeout=None):
        self.calls += 1
        if self.calls == 3:
            raise OSError("too many open files")
        await asyncio.sleep(0.2)
        self.finished += 1
        return [{"passed": True, "verdict": "passed"}]


async def test_executor_failure_is_an_execution_error_and_cancels_the_rest() -> None:
    executor = BrokenExecutor()
    started = time.monotonic()
    with pytest.raises(ExecutionError, match="broken executor failed: OSError: too many open files"):
        await common.run_tests("x", [{"stdin": "", "stdout": ""}] * 10, executor=executor)
    await asyncio.sleep(0.3)
    assert executor.finished == 0  # the other tests were cancelled, not left running
    assert time.monotonic() - started < 2


def test_verdict_of_remote_results_without_verdict() -> None:
    def result(passed: bool, **run) -> dict:
        return {"passed": passed, "exec_output": {"run_output": run}}

    assert common.verdict_of(result(True, exit_code=0)) == "passed"
    assert common.verdict_of(result(False, exit_code=0)) == "wrong_answer"
    assert common.verdict_of(result(False, exit_code=1, stderr="Traceback\nKeyError")) == "runtime_error"
    assert common.verdict_of(result(False, exit_code=-9, timeout_expired=True)) == "timeout"
    assert common.verdict_of(result(False, exit_code=1, stderr="MemoryError")) == "memory_limit"
    assert common.verdict_of({"passed": False, "verdict": "output_limit"}) == "output_limit"


def test_get_model_feedback_runs_the_seed_signature(lb_local_executor) -> None:
    feedback, results = common.get_model_feedback(str(SAMPLES / "sample_problems.json"), 1, "sample",
                                                  executor=lb_local_executor)
    assert [common.count_passed(r) for r in results] == [2]
    assert feedback.startswith("Test Results: 2/4 tests passed (passed: 2, wrong_answer: 2)")
    assert "First difference: line 1: expected '-1', got '0'" in feedback


def test_get_model_feedback_skips_bad_records(tmp_path: Path, lb_local_executor, caplog) -> None:
    good = {"input_output": json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]}), "m_solution": f"```python\n{SUM}```"}
    path = write(tmp_path, "mixed.json", [{"m_solution": "x"}, good])
    feedback, results = common.get_model_feedback(str(path), None, "m", executor=lb_local_executor)
    assert len(results) == 1 and results[0][0]["passed"]
    assert any(f"{path}: problem 0: no tests" in r.getMessage() for r in caplog.records)
    caplog.clear()
    feedback, results = common.get_model_feedback(str(path), 7, "m", executor=lb_local_executor)
    assert (feedback, results) == ("", [])
    assert any(f"{path}: problem 7: does not exist" in r.getMessage() for r in caplog.records)


def test_get_model_feedback_goes_on_after_an_execution_error(tmp_path: Path, caplog) -> None:
    """An executor failure on one problem is logged; the others are evaluated (one event loop)."""
    good = {"input_output": json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]}), "m_solution": f"```python\n{SUM}```"}
    bad = {**good, "m_solution": "```python\nprint('boom')\n```"}
    path = write(tmp_path, "two.json", [bad, good])
    loops: set[int] = set()

    class Flaky:
        name = "flaky"

        async def run_tests(self, code, tests, *, timeout=None):
            import asyncio
            loops.add(id(asyncio.get_running_loop()))
            if "boom" in code:
                raise ExecutionError("executor exploded")
            return [{"passed": True, "verdict": "passed", "exec_output": {"run_output": {}}} for _ in tests]

    feedback, results = common.get_model_feedback(str(path), None, "m", executor=Flaky())
    assert len(results) == 1 and results[0][0]["passed"]
    assert any(f"{path}: problem 0: executor exploded" in r.getMessage() for r in caplog.records)
    assert len(loops) == 1


def test_select_problems_drops_duplicates_and_reports_missing() -> None:
    assert common.select_problems(3, None, "f.json") == ([0, 1, 2], [])
    assert common.select_problems(3, [1, 1, 2], "f.json") == ([1, 2], [])
    valid, missing = common.select_problems(3, [5, 0], "f.json")
    assert valid == [0] and missing == [(5, "f.json: problem 5: does not exist (the file has 3 problems, indices 0-2)")]
    with pytest.raises(InputError, match="f.json: the file has no problems"):
        common.select_problems(0, None, "f.json")
    with pytest.raises(ConfigError, match="--problem-ids names no problem"):
        common.parse_problem_selection(problem_ids=",")
    assert common.parse_problem_selection(problem_ids="1,1,2").ids == (1, 2)


def test_model_key_helper() -> None:
    assert common.match_model_key("o3_mini", ["o3_mini_solution"]) == "o3_mini_solution"
    assert common.match_model_key("o3_mini_solution", {"o3_mini_solution": 1}) == "o3_mini_solution"
    assert common.match_model_key("x", ["y_solution"]) is None
    assert common.average([]) is None and common.average([None, 1.0, 0.0]) == 0.5


def test_write_atomic_text_turns_os_errors_into_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^/dev/null/x.json: cannot write: "):
        common.write_atomic_json("/dev/null/x.json", {"a": 1})
    blocker = tmp_path / "dir"
    blocker.mkdir()
    with pytest.raises(InputError, match="cannot write"):
        common.write_atomic_text(blocker, "x")  # a directory is in the way
    assert list(tmp_path.iterdir()) == [blocker]  # no temporary file left behind


def test_verdict_of_memory_error_needs_a_failed_exit() -> None:
    def result(exit_code, stderr):
        return {"passed": False, "exec_output": {"run_output": {"exit_code": exit_code, "stderr": stderr,
                                                                "timeout_expired": False}}}
    tb = "Traceback (most recent call last):\n  File \"main.py\", line 16, in <module>\nMemoryError\n"
    assert common.verdict_of(result(1, tb)) == "memory_limit"
    assert common.verdict_of(result(1, tb.replace("MemoryError", "numpy.core._exceptions._ArrayMemoryError: x"))) == "memory_limit"
    assert common.verdict_of(result(0, "warning: MemoryError avoided\n")) == "wrong_answer"
    assert common.verdict_of(result(1, "caught MemoryError earlier\nValueError: bad\n")) == "runtime_error"
