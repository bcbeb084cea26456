"""``model_feedback.py --problems P --samples S`` end to end for every format (subprocess, real
embedded executor), with counts and pass@k worked out by hand from the sample files in data/formats.

How the numbers come about is written next to each case; "c/n" is samples passing every test out
of samples run, per problem; pass@k = mean over problems with n >= k of 1 - C(n-c, k) / C(n, k).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli

D = "data/formats/"


def run(tmp_path: Path, problems: str, samples: str | None, *extra: str) -> tuple[Any, dict[str, Any]]:
    out = tmp_path / "out.json"
    args = ["--problems", D + problems, "--quiet", "--output", str(out), "--k", "1,2,3", *extra]
    if samples:
        args += ["--samples", D + samples]
    proc = run_cli(*args)
    assert proc.returncode in (0, 1), proc.stderr
    return proc, json.loads(out.read_text())


def per_sample(doc: dict[str, Any]) -> list[tuple[int, int | None, int | None, dict[str, int]]]:
    return [(p["problem_id"], p["passed"], p["total"], p["verdicts"]) for f in doc["files"] for p in f["problems"]]


def test_taco_call_based_and_stdio(tmp_path: Path) -> None:
    proc, doc = run(tmp_path, "taco_problems.json", "taco_generation.json")
    assert proc.returncode == 0 and proc.stderr == ""
    assert per_sample(doc) == [
        (0, 3, 3, {"passed": 3}), (0, 0, 3, {"wrong_answer": 3}), (0, 0, 3, {"runtime_error": 3}),
        (1, 2, 2, {"passed": 2}),  # tuple return; its __main__ block (sys.exit) did not run
        (1, 0, 2, {"wrong_answer": 2}),  # an object equal to everything is not serialisable
        (1, 2, 2, {"passed": 2}),
        (2, 2, 2, {"passed": 2}), (2, 0, 2, {"wrong_answer": 2}), (2, 0, 2, {"wrong_answer": 2}),
    ]
    s = doc["summary"]
    assert (s["passed"], s["total"]) == (9, 21)
    # c/n = 1/3, 2/3, 1/3. pass@1 = 4/9; pass@2 = (2/3 + 1 + 2/3) / 3 = 7/9; pass@3 = 1
    assert s["pass_at_k"] == pytest.approx({"1": 4 / 9, "2": 7 / 9, "3": 1.0})
    assert s["strict_accuracy"] == pytest.approx(4 / 9)
    assert s["scores"]["by_difficulty"]["MEDIUM"]["pass_at_k"]["1"] == pytest.approx(2 / 3)
    reason = doc["files"][0]["problems"][4]["results"][0]["reason"]
    assert reason.startswith("the returned value cannot be serialised as JSON (Everything")


def test_livecodebench_functional_stdin_and_hostile_record(tmp_path: Path) -> None:
    proc, doc = run(tmp_path, "livecodebench_problems.jsonl", "livecodebench_samples.json")
    assert proc.returncode == 1  # the hostile record is an error of the run, the rest ran
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"error: {D}livecodebench_problems.jsonl: problem 2: private_test_cases: the pickle "
                           "holds more than a string")
    assert per_sample(doc)[:6] == [
        (0, 3, 3, {"passed": 3}), (0, 2, 3, {"passed": 2, "wrong_answer": 1}), (0, 0, 3, {"runtime_error": 3}),
        (0, 3, 3, {"passed": 3}),  # a raw answer in a fence, returning a tuple
        (1, 3, 3, {"passed": 3}), (1, 0, 3, {"wrong_answer": 3}),
    ]
    s = doc["summary"]
    # c/n = 2/4 and 1/2. pass@1 = 1/2; pass@2 = (1 - 1/6 + 1) / 2 = 11/12; pass@3 only problem 0: 1
    assert s["pass_at_k"] == pytest.approx({"1": 0.5, "2": 11 / 12, "3": 1.0})
    assert s["scores"]["problems_per_k"] == {"1": 2, "2": 2, "3": 1}
    assert set(s["scores"]["by_source"]) == {"leetcode", "atcoder"}
    assert s["split"] == {"public_tests": 2, "private_tests": 4, "scored_on": "public+private"}


def test_livecodebench_date_window(tmp_path: Path) -> None:
    _, doc = run(tmp_path, "livecodebench_problems.jsonl", "livecodebench_samples.json",
                 "--start-date", "2024-05-01", "--end-date", "2024-12-31")
    s = doc["summary"]
    assert s["scores"]["problems"] == 1 and s["scores"]["window"]["excluded"] == 1
    assert s["pass_at_k"] == pytest.approx({"1": 0.5, "2": 1.0})  # only abc300_a: c/n = 1/2


def test_humaneval_check_styles_and_early_exits(tmp_path: Path) -> None:
    proc, doc = run(tmp_path, "humaneval_problems.jsonl", "humaneval_samples.jsonl")
    assert proc.returncode == 0, proc.stderr
    problems = doc["files"][0]["problems"]
    verdicts = [(p["problem_id"], p["results"][0]["verdict"], p["results"][0]["reason"]) for p in problems]
    assert verdicts == [
        (0, "passed", None),
        (0, "wrong_answer", "an assertion of the test failed"),
        (0, "runtime_error", "the program exited before its tests ran"),  # main block, then sys.exit(0)
        (1, "passed", None),  # loop-of-asserts check style
        (1, "runtime_error", "the program exited before its tests ran"),  # os._exit(0)
        (1, "runtime_error", None),  # ZeroDivisionError inside check
    ]
    assert doc["summary"]["pass_at_k"] == pytest.approx({"1": 1 / 3, "2": 2 / 3, "3": 1.0})
    # problem 0's check compares with literals (judged outside); problem 1's loop runs split
    assert doc["summary"]["assert_harnesses"] == {"literal": 3, "split": 3}
    assert "in-process fallback" not in proc.stderr


def test_verdicts_of_the_in_process_fallback_are_counted_and_named(tmp_path: Path) -> None:
    """A test that hands the answer a lambda of its own runs in one process (a heuristic verdict):
    the summary counts it and one warning line says so."""
    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps({
        "task_id": "T/0", "entry_point": "apply", "prompt": "def apply(g, x):\n",
        "canonical_solution": "    return g(x)\n",
        "test": "def check(candidate):\n    assert candidate(lambda v: v * 2, 4) == int('8')\n"}) + "\n")
    out = tmp_path / "out.json"
    proc = run_cli("--problems", str(problems), "--quiet", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["summary"]["assert_harnesses"] == {"in_process": 1}
    assert doc["files"][0]["problems"][0]["results"][0]["harness"] == "in_process"
    assert proc.stderr.strip() == ("warning: 1 assert test(s) judged by the in-process fallback (a value of the "
                                   "test's own could not reach the answer's process): heuristic verdicts, see each "
                                   "result's 'harness'")


def test_mbpp_through_the_cli(tmp_path: Path) -> None:
    proc, doc = run(tmp_path, "mbpp_problems.jsonl.gz", "mbpp_samples.jsonl")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"error: {D}mbpp_samples.jsonl: sample 5: no problem with task id '99' "
                                   "in the problems file")
    assert per_sample(doc) == [
        (0, 3, 3, {"passed": 3}), (0, 2, 3, {"passed": 2, "wrong_answer": 1}),
        (0, 0, 3, {"runtime_error": 3}),  # os._exit(0) before the asserts
        (1, 3, 3, {"passed": 3}),  # setup code (WORD) and the challenge test
        (1, 0, 3, {"runtime_error": 3}),  # syntax error
        (5, None, None, {}),  # the bad sample, an error of the run
    ]
    # c/n = 1/3 and 1/2. pass@1 = 5/12, pass@2 = (2/3 + 1) / 2 = 5/6; strict = 2/5
    assert doc["summary"]["pass_at_k"] == pytest.approx({"1": 5 / 12, "2": 5 / 6, "3": 1.0})
    assert doc["summary"]["strict_accuracy"] == pytest.approx(2 / 5)
    early = doc["files"][0]["problems"][2]["results"][0]
    assert early["reason"] == "the program exited before its tests ran"


def test_codecontests_private_and_generated_tests_count(tmp_path: Path) -> None:
    _, doc = run(tmp_path, "codecontests_problems.jsonl", "codecontests_samples.jsonl")
    assert per_sample(doc) == [(0, 4, 4, {"passed": 4}), (0, 2, 4, {"passed": 2, "wrong_answer": 2}),
                               (1, 1, 2, {"passed": 1, "wrong_answer": 1})]
    s = doc["summary"]
    # c/n = 1/2 and 0/1. pass@1 = (1/2 + 0) / 2; pass@2 only problem 0: 1; average ratio (1+.5+.5)/3
    assert s["pass_at_k"] == pytest.approx({"1": 0.25, "2": 1.0})
    assert s["average_pass_ratio"] == pytest.approx(2 / 3)


def test_reference_solutions_run_without_samples(tmp_path: Path) -> None:
    _, doc = run(tmp_path, "humaneval_problems.jsonl", None)
    assert [(p["model_key"], p["passed"], p["total"]) for p in doc["files"][0]["problems"]] == \
        [("reference", 1, 1), ("reference", 1, 1)]
    assert doc["summary"]["pass_at_k"] == {"1": 1.0}


def test_problem_selection_ignores_other_problems_samples(tmp_path: Path) -> None:
    proc, doc = run(tmp_path, "taco_problems.json", "taco_generation.json", "--problem-id", "1")
    assert proc.returncode == 0 and proc.stderr == ""
    assert {p["problem_id"] for p in doc["files"][0]["problems"]} == {1}


@pytest.mark.parametrize("args, message", [
    (["--samples", D + "mbpp_samples.jsonl"], "error: --samples needs --problems"),
    (["--problems", D + "mbpp_problems.jsonl", "--k", "0"], "error: --k needs positive integers separated by "
                                                            "commas, got '0'"),
    (["--problems", D + "nope.jsonl"], f"error: {D}nope.jsonl: file not found"),
    (["--problems", D + "taco_problems.json", "--format", "mbpp"],  # one line, not one error per problem
     f"error: {D}taco_problems.json: the file's records are not mbpp: first record has fields difficulty, "
     "input_output, name, question, solutions, source (it looks like taco: drop --format or pass --format taco)"),
])
def test_usage_errors(args: list[str], message: str) -> None:
    proc = run_cli(*args, "--quiet")
    assert proc.returncode == 2 and proc.stderr.strip() == message


def test_fail_fast_skips_the_rest_and_keeps_pass_at_k(tmp_path: Path) -> None:
    inputs = [f"{i}\n" for i in range(24)]
    problem = {"name": "echo", "input_output": {"inputs": inputs, "outputs": inputs}}
    (tmp_path / "p.json").write_text(json.dumps([problem]))
    (tmp_path / "s.json").write_text(json.dumps([{"task_id": 0, "output": ["print(input())\n", "print(-1)\n"]}]))
    docs = {}
    for mode in ("all", "fail-fast"):
        out = tmp_path / f"{mode}.json"
        args = ["--problems", str(tmp_path / "p.json"), "--samples", str(tmp_path / "s.json"), "--quiet",
                "--output", str(out), "--k", "1,2", "--exec-semaphore", "2"]
        proc = run_cli(*args, *(["--fail-fast"] if mode == "fail-fast" else []))
        assert proc.returncode == 0, proc.stderr
        docs[mode] = json.loads(out.read_text())
    good, bad = docs["fail-fast"]["files"][0]["problems"]
    assert good["verdicts"] == {"passed": 24}  # a passing sample runs every test
    assert bad["passed"] == 0 and bad["total"] == 24
    assert bad["verdicts"]["skipped"] >= 12 and sum(bad["verdicts"].values()) == 24
    assert docs["all"]["files"][0]["problems"][1]["verdicts"] == {"wrong_answer": 24}
    assert docs["fail-fast"]["summary"]["pass_at_k"] == docs["all"]["summary"]["pass_at_k"] == \
        pytest.approx({"1": 0.5, "2": 1.0})


def test_samples_ending_in_errors_of_the_run_are_reported_next_to_pass_at_k(tmp_path: Path) -> None:
    """A checker that crashes on a wrong sample's output is an error of the run, not a verdict; the
    sample is left out of pass@k, and the summary says so with pass@k counting it as a failure."""
    problem = {"name": "echo", "input_output": {"inputs": ["3\n"], "outputs": ["3\n"]}}
    (tmp_path / "p.json").write_text(json.dumps([problem]))
    (tmp_path / "s.json").write_text(json.dumps([{"task_id": 0, "output": ["print(input())\n", "print('x')\n"]}]))
    checker = tmp_path / "check.py"  # testlib order: input output answer; crashes on non-numbers
    checker.write_text("import sys\nwant, got = (open(p).read() for p in sys.argv[2:4])\n"
                       "sys.exit(0 if int(got) == int(want) else 1)\n")
    out = tmp_path / "out.json"
    proc = run_cli("--problems", str(tmp_path / "p.json"), "--samples", str(tmp_path / "s.json"), "--output", str(out),
                   "--k", "1,2", "--judge", "checker", "--checker", str(checker))
    assert proc.returncode == 1, proc.stderr  # the error of the run is reported
    summary = json.loads(out.read_text())["summary"]
    assert summary["pass_at_k"] == pytest.approx({"1": 1.0})  # one scored sample, and it passes
    assert summary["unscored_samples"] == 1
    assert summary["pass_at_k_unscored_as_failures"] == pytest.approx({"1": 0.5, "2": 1.0})
    assert "1 sample(s) ended in an error of the run and are not scored; counted as failures: pass@1 50.0%" \
        in proc.stdout
