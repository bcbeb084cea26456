"""model_feedback.py end to end (subprocess, real embedded executor): the README command, the
output JSON, every flag that changes what runs, and every bad-input case with its exit status."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import clean_env, run_cli

BAD_IO = {"inputs": ["1\n"], "outputs": ["1\n"]}
GOOD = {"name": "echo", "input_output": json.dumps(BAD_IO), "m_solution": "```python\nprint(input())\n```"}


def table(stdout: str) -> dict[tuple[str, str, str], tuple[str, str]]:
    """The summary table as {(file, problem, model): (passed/total, verdicts)}."""
    rows = {}
    start = stdout.index("file  ") if stdout.startswith("file  ") else stdout.index("\nfile  ") + 1
    lines = stdout[start:].splitlines()
    for line in lines[2:]:
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == "TOTAL":
            rows[("TOTAL", "", cells[1])] = (cells[2], cells[4] if len(cells) > 4 else "")
        elif len(cells) >= 5:
            rows[(cells[0], cells[1], cells[2])] = (cells[3], cells[5] if len(cells) > 5 else "")
    return rows


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in stderr
    return lines[0]


def test_readme_command_without_arguments_evaluates_the_samples() -> None:
    proc = run_cli()
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("Executor: local (")
    assert "data/sample_problems.json | problem 1 (Largest Number) | sample_solution: 2/4 passed" in out
    for verdict in ("wrong_answer", "runtime_error", "timeout", "memory_limit", "output_limit"):
        assert f"FAILED ({verdict})" in out  # every verdict appears in the sample run
    rows = table(out)
    assert rows[("data/sample_problems.json", "1", "sample_solution")] == ("2/4", "passed 2, wrong_answer 2")
    assert rows[("data/sample_problems.json", "2", "sample_solution")] == ("2/3", "passed 2, runtime_error 1")
    assert rows[("data/sample_problems.json", "3", "sample_solution")] == ("3/4", "passed 3, timeout 1")
    assert rows[("data/sample_problems.json", "4", "sample_solution")] == ("2/3", "passed 2, memory_limit 1")
    assert rows[("data/sample_problems.json", "5", "sample_solution")] == ("2/3", "passed 2, output_limit 1")
    assert rows[("TOTAL", "", "sample_solution")] == (
        "14/20", "passed 14, wrong_answer 2, runtime_error 1, timeout 1, memory_limit 1, output_limit 1")
    assert rows[("TOTAL", "", "o3_mini_solution")] == ("7/7", "passed 7")
    assert not any(key[2] == "human_solution" for key in rows)
    assert "8 evaluated, 0 errors" in out


def test_output_json_has_results_and_counts(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()  # the directory must exist: --output creates none
    target = tmp_path / "out" / "results.json"
    proc = run_cli("--solution-file", "data/sample_problems.json", "--problem-ids", "0,2", "--include-human",
                   "--output", str(target), "--quiet")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(target.read_text())
    assert doc["executor"] == "local" and doc["isolation"] and doc["timeout"] == 10.0 and doc["extract"] == "best"
    [entry] = doc["files"]
    assert entry["solution_file"] == "data/sample_problems.json"
    rows = {(p["problem_id"], p["model_key"]): p for p in entry["problems"]}
    assert set(rows) == {(0, "sample_solution"), (0, "human_solution"), (2, "sample_solution"), (2, "human_solution")}
    kth = rows[(2, "sample_solution")]
    assert (kth["status"], kth["error"], kth["passed"], kth["total"]) == ("ok", None, 2, 3)
    assert kth["verdicts"] == {"passed": 2, "runtime_error": 1}
    assert [r["verdict"] for r in kth["results"]] == ["passed", "passed", "runtime_error"]
    assert kth["results"][2]["exec_output"]["run_output"]["exit_code"] != 0
    # the program once per problem, not in every result; the feedback the model would see
    assert "print" in kth["code"] and all("code" not in r and "test" not in r for r in kth["results"])
    assert kth["feedback"].startswith("Test Results: 2/3 tests passed") and "Test #3: FAILED (runtime_error)" in kth["feedback"]
    assert doc["results"] == "compact"
    assert rows[(2, "human_solution")]["passed"] == 3
    assert doc["summary"]["passed"] == 3 + 3 + 2 + 3 and doc["summary"]["total"] == 12
    assert doc["summary"]["by_model"]["human_solution"] == {"passed": 6, "total": 6, "verdicts": {"passed": 6}}
    assert doc["summary"]["errors"] == 0
    assert "Test #" not in proc.stdout  # --quiet: table only


def test_extract_first_reproduces_the_seed_choice_on_dashed_answers() -> None:
    best = run_cli("--solution-file", "data/sample_o3mini_style.json", "--problem-id", "0", "--quiet")
    first = run_cli("--solution-file", "data/sample_o3mini_style.json", "--problem-id", "0", "--quiet",
                    "--extract", "first")
    assert best.returncode == first.returncode == 0
    key = ("data/sample_o3mini_style.json", "0", "o3_mini_solution")
    assert table(best.stdout)[key] == ("3/3", "passed 3")
    assert table(first.stdout)[key] == ("0/3", "wrong_answer 3")


def test_model_key_and_range_select_what_runs() -> None:
    proc = run_cli("--solution-file", "data/sample_problems.json", "--model-key", "human", "--range", "0-1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = table(proc.stdout)
    assert rows[("data/sample_problems.json", "0", "human_solution")] == ("3/3", "passed 3")
    assert rows[("data/sample_problems.json", "1", "human_solution")] == ("4/4", "passed 4")
    assert len(rows) == 4  # two problems, the model total and the overall total


def test_timeout_flag_bounds_a_looping_answer() -> None:
    proc = run_cli("--solution-file", "data/sample_problems.json", "--problem-id", "3", "--timeout", "0.5", "--quiet")
    assert proc.returncode == 0
    assert table(proc.stdout)[("data/sample_problems.json", "3", "sample_solution")] == ("3/4", "passed 3, timeout 1")


def test_several_solution_files_in_one_run() -> None:
    proc = run_cli("--solution-file", "data/sample_o3mini_style.json", "--solution-file", "data/sample_problems.json",
                   "--problem-id", "0", "--quiet")
    assert proc.returncode == 0
    rows = table(proc.stdout)
    assert ("data/sample_o3mini_style.json", "0", "o3_mini_solution") in rows
    assert ("data/sample_problems.json", "0", "sample_solution") in rows


def test_feedback_budget_flag_limits_each_feedback() -> None:
    proc = run_cli("--solution-file", "data/sample_problems.json", "--problem-id", "1", "--feedback-budget", "200")
    assert proc.returncode == 0
    body = proc.stdout.split("sample_solution: 2/4 passed\n", 1)[1].split("\nfile  ")[0]
    assert len(body.strip("\n")) <= 200


# ---- bad input: one line naming file and problem, the others still evaluated ---------------


def test_bad_records_are_reported_one_line_each_and_others_still_run(tmp_path: Path) -> None:
    records = [
        GOOD,
        {"name": "no tests", "m_solution": "x"},
        {"name": "broken io", "input_output": "{'inputs': [", "m_solution": "x"},
        {"name": "lengths", "input_output": json.dumps({"inputs": ["1", "2"], "outputs": ["1"]}), "m_solution": "x"},
        {"name": "other key", "input_output": json.dumps(BAD_IO), "z_solution": "x"},
        GOOD,
    ]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(records))
    out = tmp_path / "o.json"
    proc = run_cli("--solution-file", str(path), "--model-key", "m_solution", "--problem-ids", "0,1,2,3,4,5",
                   "--output", str(out))
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {path}: problem 1: no tests (missing input_output)",
        f"error: {path}: problem 2: input_output is not valid JSON (Expecting property name enclosed in double quotes at position 1)",
        f"error: {path}: problem 3: input_output has 2 inputs but 1 outputs",
        f"error: {path}: problem 4: model key 'm_solution' not found (record has z_solution)",
    ]  # a problem id the file does not have is a usage error now: tests/test_first_hour.py
    assert "Traceback" not in proc.stderr
    rows = table(proc.stdout)
    assert rows[(str(path), "0", "m_solution")] == ("1/1", "passed 1")
    assert rows[(str(path), "1", "-")][0] == "-"
    assert "2 evaluated, 4 errors" in proc.stdout
    doc = json.loads(out.read_text())
    statuses = [(p["problem_id"], p["status"]) for p in doc["files"][0]["problems"]]
    assert statuses == [(0, "ok"), (1, "error"), (2, "error"), (3, "error"), (4, "error"), (5, "ok")]
    assert doc["summary"]["errors"] == 4 and doc["summary"]["passed"] == 2


def test_missing_file_is_a_usage_error() -> None:
    proc = run_cli("--solution-file", "data/does_not_exist.json")
    assert proc.returncode == 2
    assert one_line_error(proc.stderr) == "error: data/does_not_exist.json: file not found"


def test_file_that_is_not_json_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("this is not json")
    proc = run_cli("--solution-file", str(path))
    assert proc.returncode == 2
    assert one_line_error(proc.stderr).startswith(f"error: {path}: not valid JSON (line 1, column 1")


@pytest.mark.parametrize(("args", "message"), [
    (["--timeout", "0"], "argument --timeout: must be > 0"),
    (["--timeout", "abc"], "argument --timeout: expected a number"),
    (["--exec-semaphore", "0"], "argument --exec-semaphore: must be >= 1"),
    (["--executor", "gpu"], "argument --executor: invalid choice"),
    (["--extract", "last"], "argument --extract: invalid choice"),
    (["--range", "5-2"], "--range expects START-END with START <= END"),
    (["--problem-ids", "1,a"], "--problem-ids expects comma-separated integers"),
    (["--problem-id", "1", "--range", "0-2"], "not allowed with argument"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_flags_are_one_line_usage_errors(args: list[str], message: str) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert message in one_line_error(proc.stderr)


def test_remote_executor_without_cyber_url_is_a_usage_error() -> None:
    proc = run_cli("--executor", "remote")
    assert proc.returncode == 2
    assert one_line_error(proc.stderr).startswith("error: CYBER_URL is not set")


def test_local_limits_with_remote_executor_are_rejected() -> None:
    proc = run_cli("--executor", "remote", "--memory-mb", "256", env=clean_env(CYBER_URL="http://127.0.0.1:9/"))
    assert proc.returncode == 2
    assert "local executor only" in one_line_error(proc.stderr)


def test_memory_limit_flag_reaches_the_sandbox(tmp_path: Path) -> None:
    hog = {"name": "hog", "input_output": json.dumps({"inputs": [""], "outputs": ["done"]}),
           "m_solution": "```python\nx = bytearray(600 * 1024 * 1024)\nprint('done')\n```"}
    path = tmp_path / "hog.json"
    path.write_text(json.dumps([hog]))
    low = run_cli("--solution-file", str(path), "--memory-mb", "256", "--quiet")
    high = run_cli("--solution-file", str(path), "--memory-mb", "2048", "--quiet")
    assert table(low.stdout)[(str(path), "0", "m_solution")] == ("0/1", "memory_limit 1")
    assert table(high.stdout)[(str(path), "0", "m_solution")] == ("1/1", "passed 1")


def test_help_documents_every_flag() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for flag in ("--solution-file", "--model-key", "--include-human", "--problem-id", "--problem-ids", "--range",
                 "--timeout", "--exec-semaphore", "--executor", "--retries", "--retry-backoff", "--memory-mb",
                 "--output-limit", "--extract", "--feedback-budget", "--output", "--quiet", "--log-level"):
        assert flag in proc.stdout


SUM_IO = json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]})


def write_records(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records))
    return path


def test_memory_limit_with_output_writes_the_results_file(tmp_path: Path) -> None:
    """The run's own executor is closed before the file is written: its isolation was read before."""
    out = tmp_path / "r.json"
    proc = run_cli("--solution-file", "data/sample_problems.json", "--problem-id", "0", "--memory-mb", "512",
                   "--output-limit", "100000", "--output", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["executor"] == "local" and data["isolation"] not in ("?", "")


def test_error_problems_have_null_counts_and_bad_answers_are_input_errors(tmp_path: Path) -> None:
    path = write_records(tmp_path / "p.json", [
        {"input_output": SUM_IO, "m_solution": "```python\nprint(3)\n```"},
        {"input_output": SUM_IO, "m_solution": None},
        {"input_output": SUM_IO, "m_solution": 42},
    ])
    out = tmp_path / "r.json"
    proc = run_cli("--solution-file", str(path), "--problem-ids", "0,1,1,2", "--output", str(out), "--quiet")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: {path}: problem 1: the 'm_solution' answer is null, not a string",
        f"error: {path}: problem 2: the 'm_solution' answer is int, not a string",
    ]
    problems = json.loads(out.read_text())["files"][0]["problems"]
    assert [p["problem_id"] for p in problems] == [0, 1, 2]  # 1 counted once
    assert [(p["passed"], p["total"]) for p in problems] == [(1, 1), (None, None), (None, None)]
    summary = json.loads(out.read_text())["summary"]
    assert (summary["passed"], summary["total"], summary["errors"]) == (1, 1, 2)


@pytest.mark.parametrize(("args", "message"), [
    (["--problem-ids", ","], "error: --problem-ids names no problem, got ','"),
    (["--output", "/dev/null/x.json"], "error: /dev/null/x.json: cannot write: /dev/null is not a directory"),
])
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    proc = run_cli("--solution-file", "data/sample_problems.json", "--problem-id", "0", "--quiet", *args) \
        if "--problem-ids" not in args else run_cli("--solution-file", "data/sample_problems.json", *args)
    assert proc.returncode == 2
    assert proc.stderr.strip() == message


def test_empty_solution_file_is_a_one_line_error(tmp_path: Path) -> None:
    path = write_records(tmp_path / "empty.json", [])
    proc = run_cli("--solution-file", str(path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {path}: the file has no problems (an empty list)"


def test_call_based_problems_run_through_solution_file(tmp_path: Path) -> None:
    """TACO fn_name records were rejected; now they run as call tests (expected value wrapped or not)."""
    io = json.dumps({"fn_name": "f", "inputs": [[1], [2]], "outputs": [[2], 5]})
    answer = "```python\ndef f(x):\n    return x * 2\n```"
    path = write_records(tmp_path / "call.json", [{"input_output": io, "m_solution": answer}])
    out = tmp_path / "out.json"
    proc = run_cli("--solution-file", str(path), "--quiet", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    [problem] = json.loads(out.read_text())["files"][0]["problems"]
    assert (problem["passed"], problem["total"]) == (1, 2)
    assert [r["verdict"] for r in problem["results"]] == ["passed", "wrong_answer"]
    assert problem["results"][1]["returned"] == "4"


def test_cyber_url_from_dotenv_is_used(tmp_path: Path) -> None:
    """.env is read by every CLI: a CYBER_URL there selects the remote executor here too."""
    from conftest import ROOT
    import subprocess
    import sys

    (tmp_path / ".env").write_text("CYBER_URL=http://127.0.0.1:9/\n")
    proc = subprocess.run([sys.executable, str(ROOT / "model_feedback.py"), "--solution-file",
                           str(ROOT / "data" / "sample_problems.json"), "--problem-id", "0", "--retries", "0"],
                          cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert "Executor: remote (remote execution API at http://127.0.0.1:9/)" in proc.stdout
    assert proc.returncode == 1


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_interrupt_stops_running_tests_at_once(tmp_path: Path, signame: str) -> None:
    import signal
    import subprocess
    import sys
    import time
    from conftest import ROOT

    path = write_records(tmp_path / "slow.json", [
        {"input_output": SUM_IO, "m_solution": "```python\nprint(3)\n```"},
        {"input_output": SUM_IO, "m_solution": "```python\nimport time\ntime.sleep(60)\n```"},
    ])
    out = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "model_feedback.py", "--solution-file", str(path), "--timeout", "40",
                             "--output", str(out)], cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # the header: the run has started
    time.sleep(2)
    started = time.monotonic()
    proc.send_signal(getattr(signal, signame))
    stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1] == "error: interrupted"
    problems = json.loads(out.read_text())["files"][0]["problems"]
    assert problems[0]["status"] == "ok" and problems[0]["passed"] == 1
    assert problems[1]["status"] == "error" and problems[1]["passed"] is None
