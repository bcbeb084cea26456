"""The repair loop on standard datasets (``--problems/--samples/--format``) and their public/private
split: a call-based (LiveCodeBench ``class Solution``, TACO ``fn_name``) and an assert-style (MBPP)
file through the real CLI against the scripted model server, real execution on the embedded
executor, then compare_model_improvements.py on the output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, clean_env
from fake_llm_server import FakeLLMServer, FakeReply, LoggedRequest, fenced

import iterative_repair

pytestmark = pytest.mark.usefixtures("no_provider_env")

TWO_SUM_FIXED = ("class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n"
                 "        for i, x in enumerate(nums):\n            if target - x in seen:\n"
                 "                return [seen[target - x], i]\n            seen[x] = i\n")
# private inputs: numbers that appear nowhere else, so a prompt that holds them saw a private test
PRIVATE_CASES = [([3, 24681357], 24681360, [0, 1]), ([5, 97531, 86420], 183951, [1, 2]),
                 ([13579, 1, 2], 3, [1, 2])]


def lcb_record() -> dict[str, Any]:
    case = lambda args, out: {"input": "\n".join(json.dumps(a) for a in args), "output": json.dumps(out),  # noqa: E731
                              "testtype": "functional"}
    return {"question_title": "Two Sum", "question_content": "TWO-SUM: return the indices of the two numbers "
            "adding up to target.", "platform": "leetcode", "question_id": "1", "contest_date": "2024-03-02",
            "starter_code": "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n",
            "difficulty": "easy", "metadata": json.dumps({"func_name": "twoSum"}),
            "public_test_cases": json.dumps([case([[2, 7, 11, 15], 9], [0, 1]), case([[1, 5, 6], 11], [1, 2])]),
            "private_test_cases": json.dumps([case([n, t], out) for n, t, out in PRIVATE_CASES])}


def write_lcb(tmp_path: Path) -> tuple[Path, Path]:
    problems = tmp_path / "lcb.jsonl"
    problems.write_text(json.dumps(lcb_record()) + "\n")
    samples = tmp_path / "lcb_samples.json"
    wrong = "class Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]\n"
    samples.write_text(json.dumps([{"question_id": "1", "code_list": [wrong, TWO_SUM_FIXED]}]))
    return problems, samples


def write_mbpp(tmp_path: Path) -> tuple[Path, Path]:
    problems = tmp_path / "mbpp.jsonl"
    problems.write_text(json.dumps({"task_id": 11, "text": "SQUARE: write a function to square a number.",
                                    "code": "def square(n):\n    return n * n\n",
                                    "test_list": ["assert square(2) == 4", "assert square(-3) == 9"],
                                    "test_setup_code": "", "challenge_test_list": ["assert square(86420) == 7468416400"]}) + "\n")
    samples = tmp_path / "mbpp_samples.jsonl"
    samples.write_text("\n".join(json.dumps({"task_id": 11, "solution": s}) for s in
                                 ("def square(n):\n    return n * 2\n", "def square(n):\n    return n ** 2\n")) + "\n")
    return problems, samples


def handler(request: LoggedRequest) -> FakeReply:
    text = request.text()
    if "TWO-SUM" in text:
        return FakeReply(fenced(TWO_SUM_FIXED))
    if "SQUARE" in text:
        return FakeReply(fenced("def square(n):\n    return n * n"))
    return FakeReply("I cannot help.")


def run_repair(server: FakeLLMServer, tmp_path: Path, *args: str) -> tuple[int, Path]:
    output = tmp_path / "out" / "improved.json"
    output.parent.mkdir(exist_ok=True)
    code = iterative_repair.main([*args, "--model-name", "claude-sonnet-4-6", "--base-url", server.anthropic_base_url,
                                  "--cache-file", str(tmp_path / "cache.sqlite"), "--no-progress", "--max-retries", "1",
                                  "--executor", "local", "--timeout", "5", "--output-file", str(output)])
    return code, output


def compare(original: Path, improved: Path) -> dict[str, Any]:
    out = improved.parent / "comparison.json"
    proc = subprocess.run([sys.executable, str(ROOT / "compare_model_improvements.py"), "--original-file", str(original),
                           "--improved-file", str(improved), "--executor", "local", "--timeout", "5",
                           "--output-file", str(out), "--quiet"],
                          cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def test_call_based_problem_is_repaired_then_compared(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    problems, samples = write_lcb(tmp_path)
    with FakeLLMServer(handler) as server:
        code, output = run_repair(server, tmp_path, "--problems", str(problems), "--samples", str(samples))
    assert code == 0, capsys.readouterr().err
    [request] = server.requests  # one call: the repaired program passes the public tests
    prompt = request.last_user_text
    # the feedback shows the call, the expected and the returned value
    assert "Call:\nSolution().twoSum([1, 5, 6], 11)\nExpected return value:\n[1, 2]\nReturned:\n[0, 1]\n---" in prompt
    assert "twoSum([2, 7, 11, 15], 9)" not in prompt  # it passes: only listed by number
    assert "Expected return value:\n[1, 2]" in prompt and "Returned:\n[0, 1]" in prompt
    assert "class Solution" in prompt and "TWO-SUM" in prompt  # statement and starter code
    assert "calling it" in request.system  # the call/assert system prompt, not the stdin one
    for numbers, _, _ in PRIVATE_CASES:  # private tests are never shown by default
        assert str(max(numbers)) not in request.text()

    records = json.loads(output.read_text())
    # only the first sample is repaired
    assert records[0]["lcb_samples_solution"] == \
        "```python\nclass Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]\n```"
    assert "seen = {}" in records[0]["improved_lcb_samples_solution"]
    summary = json.loads((output.parent / "summary_improved.json").read_text())
    assert summary["test_split"] == "feedback: public tests (2), scored on all (5)"
    entry = summary["problems"][0]
    assert entry["initial"]["passed"] == 2 and entry["final"]["passed"] == 5  # [0, 1] passes one private test
    assert entry["held_out"]["test_indices"] == [3, 4, 5] and entry["held_out"]["final"]["passed"] == 3
    assert entry["held_out"]["initial"]["passed"] == 1
    assert summary["scores_on_shown_tests"] is False
    out = capsys.readouterr().out
    assert "feedback: public tests (2), scored on all (5)" in out

    # the output carries the problem and both answers: it is compare's original and improved file
    result = compare(output, output)
    [row] = result["problem_details"]
    assert (row["original_passed"], row["improved_passed"], row["original_total"]) == (2, 5, 5)
    assert row["status"] == "improved"


def test_show_private_shows_the_private_tests(tmp_path: Path) -> None:
    problems, samples = write_lcb(tmp_path)
    with FakeLLMServer(handler) as server:
        code, output = run_repair(server, tmp_path, "--problems", str(problems), "--samples", str(samples),
                                  "--show-private")
    assert code == 0
    prompt = server.requests[0].last_user_text
    assert "Solution().twoSum([5, 97531, 86420], 183951)" in prompt  # a failing private test, shown
    summary = json.loads((output.parent / "summary_improved.json").read_text())
    assert summary["test_split"] == "feedback: public and private tests (5), scored on all (5)"
    assert summary["settings"]["show_private"] is True
    assert summary["problems"][0]["held_out"] is None and summary["scores_on_shown_tests"] is True


def test_assert_style_problem_is_repaired_then_compared(tmp_path: Path) -> None:
    problems, samples = write_mbpp(tmp_path)
    with FakeLLMServer(handler) as server:
        code, output = run_repair(server, tmp_path, "--problems", str(problems), "--samples", str(samples),
                                  "--format", "mbpp")
    assert code == 0
    [request] = server.requests
    prompt = request.last_user_text
    # the call and the expected value are in the test code; the returned value comes from the run
    assert "Test code:\nassert square(-3) == 9\nReturned (left side of the failing ==):\n-6\n" \
           "Reason: an assertion of the test failed\nError (last lines):" in prompt
    assert "LB-LEFT" not in prompt and "AssertionError\n" in prompt  # the harness's message is removed
    assert "return n * 2" in prompt and "86420" not in request.text()  # the challenge test is private
    summary = json.loads((output.parent / "summary_improved.json").read_text())
    assert summary["test_split"] == "feedback: public tests (2), scored on all (3)"
    assert summary["problems"][0]["final"]["passed"] == 3
    result = compare(output, output)
    [row] = result["problem_details"]
    assert (row["original_passed"], row["improved_passed"], row["original_total"]) == (1, 3, 3)


def test_taco_fn_name_records_use_their_own_answers(tmp_path: Path) -> None:
    """Without --samples a record's own *_solution answer is repaired; a bare function (no fence) works."""
    problems = tmp_path / "taco.json"
    problems.write_text(json.dumps([{
        "problem": "TWO-SUM as a function", "question": "TWO-SUM: return the indices.",
        "input_output": json.dumps({"fn_name": "twoSum", "inputs": [[[2, 7, 11, 15], 9], [[1, 5, 6], 11]],
                                    "outputs": [[[0, 1]], [[1, 2]]]}),
        "model_solution": "def twoSum(nums, target):\n    return [0, 1]\n"}]))
    fixed = ("def twoSum(nums, target):\n    for i in range(len(nums)):\n        for j in range(i):\n"
             "            if nums[i] + nums[j] == target:\n                return [j, i]")
    with FakeLLMServer(lambda r: FakeReply(fenced(fixed))) as server:
        code, output = run_repair(server, tmp_path, "--problems", str(problems), "--format", "taco")
    assert code == 0
    assert "twoSum([1, 5, 6], 11)" in server.requests[0].last_user_text
    summary = json.loads((output.parent / "summary_improved.json").read_text())
    assert summary["model_key"] == "model_solution"
    assert summary["test_split"] == "feedback: public tests (2), scored on all (2)"
    assert summary["problems"][0]["final"]["passed"] == 2


def test_samples_and_solution_file_are_exclusive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    problems, samples = write_lcb(tmp_path)
    assert iterative_repair.main(["--problems", str(problems), "--solution-file", str(problems)]) == 2
    assert "not allowed with" in capsys.readouterr().err
    assert iterative_repair.main(["--solution-file", str(problems), "--samples", str(samples)]) == 2
    assert "--samples needs --problems" in capsys.readouterr().err


def test_help_says_only_the_first_sample_is_repaired(capsys: pytest.CaptureFixture[str]) -> None:
    assert iterative_repair.main(["--help"]) == 0
    assert "only the FIRST sample of each problem" in " ".join(capsys.readouterr().out.split())


def test_default_output_of_a_jsonl_problems_file_is_json(tmp_path: Path) -> None:
    problems, samples = write_mbpp(tmp_path)  # the run's directory is tmp_path (no_provider_env)
    with FakeLLMServer(handler) as server:
        code = iterative_repair.main(["--problems", str(problems), "--samples", str(samples), "--model-name",
                                      "claude-sonnet-4-6", "--base-url", server.anthropic_base_url, "--no-cache",
                                      "--no-progress", "--executor", "local", "--timeout", "5"])
    assert code == 0
    records = json.loads((tmp_path / "improved_mbpp.json").read_text())
    assert records[0]["improved_mbpp_samples_solution"].startswith("```python\ndef square")
    assert json.loads((tmp_path / "summary_improved_mbpp.json").read_text())["samples_file"] == str(samples)


def test_resample_baseline_on_an_assert_problem(tmp_path: Path) -> None:
    problems, samples = write_mbpp(tmp_path)
    with FakeLLMServer(handler) as server:
        code, output = run_repair(server, tmp_path, "--problems", str(problems), "--samples", str(samples),
                                  "--strategy", "repair,resample")
    assert code == 0
    assert len(server.requests) == 2 and all("calling it" in r.system for r in server.requests)
    entry = json.loads((output.parent / "summary_improved.json").read_text())["problems"][0]
    assert entry["resample"]["final"]["passed"] == 3  # the bare function was extracted and run
    assert json.loads(output.read_text())[0]["resampled_mbpp_samples_solution"].startswith("```python\ndef square")


def test_unusable_records_and_samples_are_errors_the_rest_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    problems, samples = write_lcb(tmp_path)
    broken = {**lcb_record(), "question_id": "2", "metadata": "[1]"}  # metadata is not an object
    problems.write_text(json.dumps(lcb_record()) + "\n" + json.dumps(broken) + "\n")
    good = json.loads(samples.read_text())
    samples.write_text(json.dumps(good + [{"question_id": "404", "code_list": ["x = 1\n"]}]))
    with FakeLLMServer(handler) as server:
        code, output = run_repair(server, tmp_path, "--problems", str(problems), "--samples", str(samples))
    assert code == 1
    err = capsys.readouterr().err
    assert f"error: {samples}: sample 1: no problem with task id '404' in the problems file" in err
    assert f"error: {problems}: problem 1: metadata is not a JSON object" in err
    summary = json.loads((output.parent / "summary_improved.json").read_text())
    assert [p["status"] for p in summary["problems"]] == ["done", "error"]
    assert summary["sample_errors"] == [f"{samples}: sample 1: no problem with task id '404' in the problems file"]
    proc = subprocess.run([sys.executable, str(ROOT / "compare_model_improvements.py"), "--original-file", str(output),
                           "--improved-file", str(output), "--executor", "local", "--quiet"],
                          cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1  # the unusable problem is named with its reason, the other compared
    assert f"error: {output}: problem 1: metadata is not a JSON object" in proc.stderr


def test_output_of_a_dataset_run_repairs_again_as_a_solution_file(tmp_path: Path) -> None:
    """The records keep their split: given back with --solution-file, private tests stay hidden."""
    problems, samples = write_lcb(tmp_path)
    with FakeLLMServer(handler) as server:
        code, output = run_repair(server, tmp_path, "--problems", str(problems), "--samples", str(samples),
                                  "--max-iterations", "0")
        assert code == 0
        again = tmp_path / "again.json"
        again.write_text(output.read_text())
        code, second = run_repair(server, tmp_path, "--solution-file", str(again), "--model-key", "lcb_samples",
                                  "--restart")
    assert code == 0
    assert all(str(max(n)) not in r.text() for r in server.requests for n, _, _ in PRIVATE_CASES)
    summary = json.loads((second.parent / "summary_improved.json").read_text())
    assert summary["test_split"] == "feedback: public tests (2), scored on all (5)"
    assert summary["problems"][0]["final"]["passed"] == 5


def test_humaneval_completion_is_repaired_inside_check(tmp_path: Path) -> None:
    """HumanEval: the completion is appended to the prompt; the failing assert inside check() shows
    what the candidate returned; the repaired function passes."""
    problems = ROOT / "data" / "formats" / "humaneval_problems.jsonl"
    samples = tmp_path / "he_samples.jsonl"
    samples.write_text(json.dumps({"task_id": "HumanEval/0", "completion": "    return x * y\n"}) + "\n")
    reply = FakeReply(fenced("def add(x: int, y: int) -> int:\n    return x + y"))
    with FakeLLMServer(lambda r: reply) as server:
        code, output = run_repair(server, tmp_path, "--problems", str(problems), "--samples", str(samples),
                                  "--problem-id", "0")
    assert code == 0
    prompt = server.requests[0].last_user_text
    assert "def add(x: int, y: int) -> int:\n    \"\"\"Add two numbers.\"\"\"\n    return x * y" in prompt
    assert "Returned (left side of the failing ==):\n6\n" in prompt  # candidate(2, 3) in check()
    summary = json.loads((output.parent / "summary_improved.json").read_text())
    assert summary["problems"][0]["final"]["passed"] == 1 and summary["test_split"] == \
        "feedback: public tests (1), scored on all (1)"


def test_dataset_records_keep_their_limits_for_limits_dataset(tmp_path: Path) -> None:
    """A CodeContests record's own time limit reaches the repair loop's --limits dataset."""
    problems = tmp_path / "cc.jsonl"
    problems.write_text(json.dumps({"name": "ECHO", "description": "ECHO: print the input.",
                                    "public_tests": {"input": ["hi\n"], "output": ["hi\n"]},
                                    "private_tests": {"input": ["yo\n"], "output": ["yo\n"]},
                                    "time_limit": {"seconds": 2, "nanos": 0}, "memory_limit_bytes": 268435456,
                                    "cc_solution": "```python\nprint(input())\n```"}) + "\n")
    with FakeLLMServer(handler) as server:
        code, output = run_repair(server, tmp_path, "--problems", str(problems), "--limits", "dataset")
    assert code == 0
    record = json.loads(output.read_text())[0]
    assert record["time_limit"] == {"seconds": 2, "nanos": 0} and record["memory_limit_bytes"] == 268435456
    entry = json.loads((output.parent / "summary_improved.json").read_text())["problems"][0]
    assert entry["limits"]["timeout"] == 2 and entry["final"]["passed"] == 2


def test_a_problems_run_does_not_resume_a_solution_file_checkpoint_and_warns_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same file read by --solution-file and by --problems gives other tests and prompts: the
    second run refuses the first run's checkpoint (as for any other change of settings) rather than
    taking its problems as done. Inputs are read
    once: a clamped --range warns once."""
    problems = tmp_path / "taco.json"
    problems.write_text(json.dumps([{
        "problem": "TWO-SUM as a function", "question": "TWO-SUM: return the indices.",
        "input_output": json.dumps({"fn_name": "twoSum", "inputs": [[[2, 7, 11, 15], 9]], "outputs": [[[0, 1]]]}),
        "model_solution": "def twoSum(nums, target):\n    return [0, 1]\n"}]))
    with FakeLLMServer(lambda r: FakeReply("no")) as server:
        code, _ = run_repair(server, tmp_path, "--solution-file", str(problems), "--range", "0-5")
        assert code == 0
        first = capsys.readouterr().err
        assert first.count("goes past the end of the file") == 1, first
        code, _ = run_repair(server, tmp_path, "--problems", str(problems), "--format", "taco")
        second = capsys.readouterr().err
    assert code == 2 and "was written by a run with other settings" in second, second
    assert "already done" not in second
