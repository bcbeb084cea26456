"""compare_model_improvements.py end to end on hand-made files, every figure computed by hand.

The hand-made case: four problems with tiny programs (key ``sample_solution``).

| # | tests | original                          | improved                           | status     |
|---|-------|-----------------------------------|------------------------------------|------------|
| 0 | 4     | 1 passed, 1 wrong, 2 runtime err  | 4 passed                           | improved   |
| 1 | 2     | 2 passed                          | 2 passed (a different program)     | unchanged  |
| 2 | 2     | 2 passed                          | 1 passed, 1 timeout                | worse      |
| 3 | 3     | 1 passed, 2 wrong                 | (no improved answer)               | unchanged  |

Helpers here are imported by the other compare/report tests.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project's modules

import pytest

import compare_model_improvements as cmi

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "compare_model_improvements.py"
KEY = "sample_solution"
TIMEOUT = "1"  # problem 2's improved program loops forever on one test


def fenced(code: str) -> str:
    return f"Here is the program.\n```python\n{code}\n```\n"


def io(pairs: list[tuple[str, str]]) -> str:
    return json.dumps({"inputs": [i for i, _ in pairs], "outputs": [o for _, o in pairs]})


ORIGINAL = [
    {"name": "Sum <b>bold</b>", "problem": "Print a+b.",
     "input_output": io([("1 1\n", "2\n"), ("2 3\n", "5\n"), ("4 4\n", "8\n"), ("5 5\n", "10\n")]),
     KEY: fenced("a, b = map(int, input().split())\nif a > 3:\n    raise ValueError('too big')\nprint(a * 2)")},
    {"name": "Double", "problem": "Print 2n.", "input_output": io([("3\n", "6\n"), ("4\n", "8\n")]),
     KEY: fenced("print(int(input()) * 2)")},
    {"name": "Upper", "problem": "Print s in upper case.", "input_output": io([("ab\n", "AB\n"), ("cd\n", "CD\n")]),
     KEY: fenced("print(input().upper())")},
    {"name": "Square", "problem": "Print n squared.", "input_output": io([("2\n", "4\n"), ("3\n", "9\n"), ("4\n", "16\n")]),
     KEY: fenced("n = int(input())\nprint(n * 2)")},
]
IMPROVED_ANSWERS = {
    0: fenced("a, b = map(int, input().split())\nprint(a + b)"),
    1: fenced("n = int(input())\nprint(n + n)"),
    2: fenced("s = input()\nif s == 'cd':\n    while True:\n        pass\nprint(s.upper())"),
}


def count_block(passed: int, total: int) -> dict[str, Any]:
    return {"passed": passed, "total": total, "ratio": passed / total, "verdicts": {}}


def iteration(i: int, passed: int, total: int) -> dict[str, Any]:
    return {"iteration": i, "passed": passed, "total": total, "ratio": passed / total, "verdicts": {},
            "code_sha256": "0" * 64, "code": "", "response": None, "input_tokens": 0, "output_tokens": 0,
            "latency_s": 0.0, "cached": False, "truncated": False, "no_code": False, "regressions": []}


def split_summary() -> dict[str, Any]:
    """A repair summary with --feedback-tests (docs/repair_summary_format.md): problems 0-2, not 3."""

    def problem(pid, initial, final, fb, ho, iters, tokens_in, tokens_out, cost):
        return {"problem_id": pid, "status": "done", "error": None, "initial": initial, "final": final,
                "feedback": {"initial": count_block(*fb[0]), "final": count_block(*fb[1]), "test_indices": fb[2]},
                "held_out": {"initial": count_block(*ho[0]), "final": count_block(*ho[1]), "test_indices": ho[2]},
                "best_iteration": len(iters) - 1, "iterations": [iteration(i, *x) for i, x in enumerate(iters)],
                "input_tokens": tokens_in, "output_tokens": tokens_out, "cost_usd": cost}

    return {
        "schema": "librarybench.repair_summary/1", "solution_file": "original.json", "output_file": "improved_original.json",
        "model": "fake-model", "provider": "openai", "model_key": KEY,
        "settings": {"max_iterations": 2, "feedback_tests": 2, "seed": 0},
        "scores_on_shown_tests": False,
        "problems": [
            problem(0, count_block(1, 4), count_block(4, 4), ((1, 2), (2, 2), [1, 2]), ((0, 2), (2, 2), [3, 4]),
                    [(1, 2), (1, 2), (2, 2)], 2000, 600, 0.015),
            problem(1, count_block(2, 2), count_block(2, 2), ((1, 1), (1, 1), [1]), ((1, 1), (1, 1), [2]),
                    [(1, 1)], 0, 0, 0.0),
            # stored figures deliberately wrong: the comparison must use its own re-run
            problem(2, count_block(2, 2), count_block(2, 2), ((0, 1), (1, 1), [1]), ((1, 1), (1, 1), [2]),
                    [(0, 1), (1, 1)], 1000, 300, 0.0075),
        ],
        "aggregate": {"problems": 3, "errors": 0, "input_tokens": 3000, "output_tokens": 900, "estimated_cost_usd": 0.0225,
                      "held_out": {"avg_initial_ratio": 0.6667, "avg_final_ratio": 1.0,
                                   "feedback_avg_initial_ratio": 0.5, "feedback_avg_final_ratio": 1.0}},
    }


def write_case(folder: Path, summary: dict[str, Any] | None = None, *, improved_key: str = KEY) -> tuple[Path, Path]:
    """The hand-made original file and its improved file (plus the summary beside it, when given)."""
    folder.mkdir(parents=True, exist_ok=True)
    original, improved = folder / "original.json", folder / "improved_original.json"
    original.write_text(json.dumps(ORIGINAL, indent=1))
    records = [dict(r) for r in ORIGINAL]
    for index, answer in IMPROVED_ANSWERS.items():
        records[index][f"improved_{improved_key}"] = answer
    improved.write_text(json.dumps(records, indent=1))
    if summary is not None:
        (folder / f"summary_{improved.name}").write_text(json.dumps(summary, indent=1))
    return original, improved


def run_cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def split_run(tmp_path_factory):
    """One CLI run on the hand-made case with a split summary: JSON, HTML report and terminal output."""
    folder = tmp_path_factory.mktemp("handmade")
    original, improved = write_case(folder, split_summary())
    out, report = folder / "comparison.json", folder / "report.html"
    proc = run_cli("--original-file", original, "--improved-file", improved, "--timeout", TIMEOUT,
                   "--output-file", out, "--report", report)
    assert proc.returncode == 0, proc.stderr
    return {"proc": proc, "json": json.loads(out.read_text()), "report": report, "folder": folder}


# --------------------------------------------------------------------------------------------
# Every figure, by hand
# --------------------------------------------------------------------------------------------


def test_per_problem_figures(split_run):
    rows = {r["problem_id"]: r for r in split_run["json"]["problem_details"]}
    expected = {  # (orig passed, total, improved passed, status, orig verdicts, improved verdicts)
        0: (1, 4, 4, "improved", {"passed": 1, "wrong_answer": 1, "runtime_error": 2}, {"passed": 4}),
        1: (2, 2, 2, "unchanged", {"passed": 2}, {"passed": 2}),
        2: (2, 2, 1, "worse", {"passed": 2}, {"passed": 1, "timeout": 1}),
        3: (1, 3, 1, "unchanged", {"passed": 1, "wrong_answer": 2}, {"passed": 1, "wrong_answer": 2}),
    }
    for pid, (op, total, ip, status, ov, iv) in expected.items():
        r = rows[pid]
        assert (r["original_passed"], r["original_total"], r["improved_passed"], r["improved_total"]) == (op, total, ip, total)
        assert r["status"] == status
        assert math.isclose(r["original_ratio"], op / total) and math.isclose(r["improved_ratio"], ip / total)
        assert math.isclose(r["improvement"], (ip - op) / total)
        assert r["original_verdicts"] == ov and r["improved_verdicts"] == iv
        assert r["no_improved_answer"] is (pid == 3)
        assert r["error"] is None
    assert rows[0]["iteration_ratios"] == [0.5, 0.5, 1.0]
    assert rows[3]["iteration_ratios"] is None


def test_overall_figures(split_run):
    d = split_run["json"]
    assert (d["total_problems"], d["improved_problems"], d["unchanged_problems"], d["worse_problems"]) == (4, 1, 2, 1)
    assert (d["error_problems"], d["no_improved_answer_problems"], d["no_improved_answer"]) == (0, 1, [3])
    # tests: 4 + 2 + 2 + 3 = 11; passed before 1 + 2 + 2 + 1 = 6, after 4 + 2 + 1 + 1 = 8
    assert (d["original_total_passed"], d["original_total_tests"]) == (6, 11)
    assert (d["improved_total_passed"], d["improved_total_tests"]) == (8, 11)
    assert math.isclose(d["original_overall_ratio"], 6 / 11)
    assert math.isclose(d["improved_overall_ratio"], 8 / 11)
    assert math.isclose(d["overall_ratio_change"], 2 / 11)
    # per-problem improvements +0.75, 0, -0.5, 0: mean 0.0625
    assert math.isclose(d["overall_improvement"], 0.0625)
    assert math.isclose(d["original_mean_ratio"], (0.25 + 1 + 1 + 1 / 3) / 4)
    assert math.isclose(d["improved_mean_ratio"], (1 + 1 + 0.5 + 1 / 3) / 4)
    assert (d["original_fully_passing"], d["improved_fully_passing"]) == (2, 2)  # {1, 2} -> {0, 1}
    assert d["original_verdicts"] == {"passed": 6, "wrong_answer": 3, "runtime_error": 2}
    assert d["improved_verdicts"] == {"passed": 8, "wrong_answer": 2, "timeout": 1}
    assert [m["problem_id"] for m in d["most_improved"]] == [0]
    assert d["worse"] == [{"problem_id": 2, "name": "Upper", "original_ratio": 1.0, "improved_ratio": 0.5, "improvement": -0.5}]


def test_significance_figures(split_run):
    sig = split_run["json"]["significance"]
    # nonzero differences: +0.75 and -0.5 -> 1 up, 1 down, 2 ties; p = min(1, 2 * P(X <= 1 | n=2)) = 1
    assert sig["n"] == 4
    assert sig["sign_test"] == {"positive": 1, "negative": 1, "ties": 2, "n_nonzero": 2, "p_value": 1.0}
    assert sig["significant"] is False
    assert "is not distinguishable from noise at the 5% level" in sig["statement"]
    boot = sig["bootstrap"]
    assert math.isclose(boot["mean"], 0.0625)
    assert -0.5 <= boot["low"] <= 0.0625 <= boot["high"] <= 0.75
    assert (boot["resamples"], boot["seed"], boot["level"]) == (10_000, 0, 0.95)


def test_split_cost_and_summary_checks(split_run):
    d = split_run["json"]
    split = d["split"]
    # re-measured on the summary's test indices (problem 3 has no summary entry):
    # feedback: p0 1/2 -> 2/2, p1 1/1 -> 1/1, p2 1/1 -> 1/1; held-out: p0 0/2 -> 2/2, p1 1/1 -> 1/1, p2 1/1 -> 0/1
    assert (split["problems"], split["source"]) == (3, "re-run")
    assert math.isclose(split["feedback"]["original_mean_ratio"], 2.5 / 3)
    assert math.isclose(split["feedback"]["improved_mean_ratio"], 1.0)
    assert math.isclose(split["held_out"]["original_mean_ratio"], 2 / 3)
    assert math.isclose(split["held_out"]["improved_mean_ratio"], 2 / 3)
    assert split["summary_reported"]["feedback_avg_final_ratio"] == 1.0
    p2 = next(r for r in d["problem_details"] if r["problem_id"] == 2)["split"]
    assert p2["held_out"] == {"tests": 1, "original_passed": 1, "original_ratio": 1.0, "improved_passed": 0,
                              "improved_ratio": 0.0, "improvement": -1.0}
    assert d["cost"] == {"input_tokens": 3000, "output_tokens": 900, "estimated_cost_usd": 0.0225,
                         "model": "fake-model", "provider": "openai", "source": "summary aggregate"}
    assert d["scores_on_shown_tests"] is False
    assert not any("shown" in w for w in d["warnings"])
    # the summary claims problem 2 ended at 2/2; the re-run measures 1/2
    assert d["summary_disagreements"] == [{"problem_id": 2, "which": "final", "summary_passed": 2, "rerun_passed": 1, "total": 2}]
    assert d["summary_file"].endswith("summary_improved_original.json")
    assert d["iterations_available"] is True
    for key in ("original_file", "improved_file", "model_key", "executor", "timeout", "exec_semaphore"):
        assert key in d
    assert d["model_key"] == KEY and d["timeout"] == 1.0
    assert (split_run["folder"] / "comparison.json").stat().st_mode & 0o044  # readable by others


def test_terminal_table(split_run):
    out = split_run["proc"].stdout
    assert "Comparing sample_solution" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line[:7].strip().isdigit()}
    assert "1/4 0.250" in lines["0"] and "4/4 1.000" in lines["0"] and "+0.750" in lines["0"] and "improved" in lines["0"]
    assert "-0.500" in lines["2"] and "worse" in lines["2"]
    assert "unchanged (no improved answer)" in lines["3"]
    assert "1 improved, 2 unchanged (1 without an improved answer), 1 worse; 0 errors" in out
    assert "6/11 = 0.545 -> 8/11 = 0.727 (+0.182)" in out
    assert "Mean per-problem improvement: +0.062" in out
    assert "Fully passing: 2 -> 2 of 4" in out
    assert "Worse: 2 (1.000 -> 0.500)" in out
    assert "Significance: The gain is not distinguishable from noise at the 5% level" in out
    assert "Feedback tests (3 problems, re-run): 0.833 -> 1.000; held-out tests: 0.667 -> 0.667" in out
    assert "Tokens: 3,000 in, 900 out, estimated cost $0.0225" in out
    assert "warning:" not in out  # warnings go to stderr
    assert [line for line in split_run["proc"].stderr.splitlines() if "warning:" in line] == [
        f"warning: {w}" for w in split_run["json"]["warnings"]]


def test_report_written(split_run):
    html = split_run["report"].read_text()
    for fig in ("fig-per-problem", "fig-iterations", "fig-verdicts", "fig-split"):
        assert f'id="{fig}"' in html
    assert "Sum &lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html


# --------------------------------------------------------------------------------------------
# Leakage, quiet mode, one problem, no summary
# --------------------------------------------------------------------------------------------


def test_leakage_warning_and_single_problem(tmp_path):
    summary = split_summary()
    summary["scores_on_shown_tests"] = True
    for p in summary["problems"]:
        p["feedback"] = p["held_out"] = None
    summary["aggregate"] = {"input_tokens": 10}  # degraded summary: only one figure
    original, improved = write_case(tmp_path, summary)
    out = tmp_path / "c.json"
    proc = run_cli("--original-file", original, "--improved-file", improved, "--problem-id", "1", "--output-file", out)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(out.read_text())
    assert d["total_problems"] == 1 and [r["problem_id"] for r in d["problem_details"]] == [1]
    assert d["scores_on_shown_tests"] is True
    assert d["warnings"][0] == cmi.LEAKAGE_WARNING
    assert f"warning: {cmi.LEAKAGE_WARNING}" in proc.stderr.splitlines() and "model saw" not in proc.stdout
    assert d["split"] is None
    assert d["cost"]["input_tokens"] == 10 and d["cost"]["estimated_cost_usd"] is None


def test_quiet_without_summary(tmp_path):
    original, improved = write_case(tmp_path)
    out = tmp_path / "c.json"
    proc = run_cli("--original-file", original, "--improved-file", improved, "--problem-id", "3", "--quiet", "--output-file", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "warning: 1 problem(s) have no improved answer" in proc.stderr  # warnings still reach the user
    assert "WARNING" not in proc.stderr
    d = json.loads(out.read_text())
    assert d["summary_file"] is None and d["cost"] is None and d["split"] is None and d["iterations_available"] is False
    assert d["problem_details"][0]["status"] == "unchanged" and d["problem_details"][0]["no_improved_answer"] is True


# --------------------------------------------------------------------------------------------
# User errors: one line on stderr, exit 2, no programs run
# --------------------------------------------------------------------------------------------


def assert_user_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_files_of_different_lengths(tmp_path):
    original, improved = write_case(tmp_path)
    improved.write_text(json.dumps(json.loads(improved.read_text())[:3]))
    proc = run_cli("--original-file", original, "--improved-file", improved)
    assert_user_error(proc, str(original), str(improved), "4 problems", "has 3")


def test_files_with_different_statements(tmp_path):
    original, improved = write_case(tmp_path)
    records = json.loads(improved.read_text())
    records[2]["problem"] = "Something else."
    improved.write_text(json.dumps(records))
    proc = run_cli("--original-file", original, "--improved-file", improved)
    assert_user_error(proc, str(original), str(improved), "problem 2", "statements")


def test_missing_file_and_bad_problem_id(tmp_path):
    original, improved = write_case(tmp_path)
    assert_user_error(run_cli("--original-file", tmp_path / "nope.json", "--improved-file", improved), "nope.json", "not found")
    proc = run_cli("--original-file", original, "--improved-file", improved, "--problem-id", "9")
    assert proc.returncode == 2  # an id the file does not have is a usage error, as in the other scripts
    assert proc.stderr.strip().splitlines() == [
        f"error: {original}: problem 9 does not exist (the file has 4 problems, indices 0-3)"]
    assert_user_error(run_cli("--original-file", original, "--improved-file", improved, "--summary-file", tmp_path / "s.json"),
                      "s.json")


def test_unknown_and_ambiguous_model_key(tmp_path):
    original, improved = write_case(tmp_path)
    assert_user_error(run_cli("--original-file", original, "--improved-file", improved, "--model-key", "gpt"),
                      "'gpt'", "sample_solution")
    records = json.loads(improved.read_text())
    records[0]["improved_other_solution"] = records[0]["improved_sample_solution"]
    improved.write_text(json.dumps(records))
    assert_user_error(run_cli("--original-file", original, "--improved-file", improved),
                      "cannot infer the model key", "sample_solution", "other_solution")


def test_help_documents_every_flag():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for flag in ("--original-file", "--improved-file", "--model-key", "--problem-id", "--output-file", "--timeout",
                 "--exec-semaphore", "--executor", "--report", "--summary-file", "--no-summary", "--quiet", "--log-level"):
        assert flag in proc.stdout


# --------------------------------------------------------------------------------------------
# In-process: model key inference, errors of the run
# --------------------------------------------------------------------------------------------


def test_infer_model_key_rules():
    orig = [{"o3_mini_solution": "x", "claude_solution": "y", "human_solution": "z"}]
    assert cmi.infer_model_key(orig, [{}], None) == "claude_solution"  # the default, when present
    orig = [{"o3_mini_solution": "x", "human_solution": "z"}]
    assert cmi.infer_model_key(orig, [{"improved_o3_mini_solution": "a"}], None) == "o3_mini_solution"
    assert cmi.infer_model_key(orig, [{}], None) == "o3_mini_solution"  # the original's single model key
    assert cmi.infer_model_key(orig, [{}], "o3_mini") == "o3_mini_solution"  # seed-style short name
    with pytest.raises(cmi.ConfigError, match="cannot infer"):
        cmi.infer_model_key([{"a_solution": 1, "b_solution": 2}], [{}], None)


class FailingExecutor:
    """Raises an infrastructure error for one program: the problem is an error of the run, not a failure."""

    name = "fake"
    isolation = "none"

    async def run_tests(self, code, tests, *, timeout=None):
        if "n + n" in code:
            raise cmi.ExecutionError("execution API at http://x failed after 5 attempts: HTTP 503")
        return [{"passed": True, "verdict": "passed", "exec_output": {"run_output": {}}} for _ in tests]


def test_execution_error_is_an_error_of_the_run(tmp_path, monkeypatch, capsys):
    original, improved = write_case(tmp_path)
    monkeypatch.setattr(cmi.common, "get_executor", lambda kind=None: FailingExecutor())
    out = tmp_path / "c.json"
    code = cmi.main(["--original-file", str(original), "--improved-file", str(improved), "--output-file", str(out)])
    assert code == 1  # results written, but incomplete
    d = json.loads(out.read_text())
    assert d["error_problems"] == 1 and d["errors"][0]["problem_id"] == 1 and "HTTP 503" in d["errors"][0]["error"]
    assert d["total_problems"] == 3 and d["worse_problems"] == 0  # never counted as failed or worse
    row = d["problem_details"][1]
    assert row["status"] == "error" and row["improvement"] is None
    assert "could not be measured" in capsys.readouterr().err


def test_problem_without_tests_is_reported(tmp_path, monkeypatch):
    original, improved = write_case(tmp_path)
    for path in (original, improved):
        records = json.loads(path.read_text())
        records[0]["input_output"] = ""
        path.write_text(json.dumps(records))
    monkeypatch.setattr(cmi.common, "get_executor", lambda kind=None: FailingExecutor())
    out = tmp_path / "c.json"
    assert cmi.main(["--original-file", str(original), "--improved-file", str(improved), "--problem-id", "0",
                     "--quiet", "--output-file", str(out)]) == 1
    d = json.loads(out.read_text())
    assert d["errors"][0]["problem_id"] == 0 and "no tests" in d["errors"][0]["error"]
    assert d["total_problems"] == 0 and "no problem could be compared" in d["warnings"]


class EchoExecutor:
    """Passes every test of a non-empty program, fails the empty one (no programs run)."""

    name = "fake"
    isolation = "none"

    async def run_tests(self, code, tests, *, timeout=None):
        ok = bool(code.strip())
        return [{"passed": ok, "verdict": "passed" if ok else "wrong_answer", "exec_output": {"run_output": {}}} for _ in tests]


def test_missing_original_answer_is_a_problem_error_and_an_answer_without_code_is_said(tmp_path, monkeypatch, capsys):
    original, improved = write_case(tmp_path)
    records = json.loads(original.read_text())
    del records[1][KEY]
    records[2][KEY] = "I do not know how to solve this."
    original.write_text(json.dumps(records))
    monkeypatch.setattr(cmi.common, "get_executor", lambda kind=None: EchoExecutor())
    out = tmp_path / "c.json"
    assert cmi.main(["--original-file", str(original), "--improved-file", str(improved),
                     "--output-file", str(out)]) == 1
    captured = capsys.readouterr()
    assert f"error: {original}: problem 1: no '{KEY}' answer" in captured.err.splitlines()
    d = json.loads(out.read_text())
    rows = {r["problem_id"]: r for r in d["problem_details"]}
    assert rows[1]["status"] == "error" and rows[1]["original_passed"] is None
    assert rows[2]["no_original_answer"] is True and rows[2]["original_passed"] == 0
    assert any("original answer without code" in w for w in d["warnings"])
    assert "(no original answer)" in captured.out
    assert f"error: no '{KEY}' answer" in captured.out  # the table shows the message, not the file again


def test_bad_original_answers_are_problem_errors_and_human_solution_runs_verbatim(tmp_path):
    """A missing or non-string original answer is a per-problem error left out of every figure;
    human_solution is run as written (not passed through extract_code)."""
    io = json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]})
    human = "a, b = map(int, input().split())\nprint(a + b)  # ```python is just a comment\n"
    records = [
        {"problem": "A", "input_output": io, "human_solution": human},
        {"problem": "B", "input_output": io, "human_solution": 17},
        {"problem": "C", "input_output": io},
    ]
    original = tmp_path / "o.json"
    original.write_text(json.dumps(records))
    improved = tmp_path / "i.json"
    improved.write_text(json.dumps([{**r, "improved_human_solution": "```python\nprint(3)\n```"} for r in records]))
    out = tmp_path / "c.json"
    proc = run_cli("--original-file", original, "--improved-file", improved, "--model-key", "human_solution",
                   "--output-file", out, "--log-level", "ERROR")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert [l for l in proc.stderr.splitlines() if l.startswith("error: ")] == [
        f"error: {original}: problem 1: the 'human_solution' answer is int, not a string",
        f"error: {original}: problem 2: no 'human_solution' answer",
    ]
    d = json.loads(out.read_text())
    assert d["total_problems"] == 1 and d["error_problems"] == 2
    assert d["original_total_passed"] == 1 and d["original_total_tests"] == 1  # human program ran verbatim
    assert [r["status"] for r in d["problem_details"]] == ["unchanged", "error", "error"]
    assert all(r["original_total"] is None for r in d["problem_details"][1:])


def test_iteration_ratios_keep_their_iteration_number() -> None:
    import compare_model_improvements as cmp
    from report_html import best_so_far, mean_best_so_far

    entry = {"iterations": [{"iteration": 0, "ratio": 0.5}, {"iteration": 1, "ratio": None, "passed": None},
                            {"iteration": 2, "ratio": 0.25}, {"iteration": 3, "ratio": 1.0}]}
    ratios = cmp.iteration_ratios(entry)
    assert ratios == [0.5, None, 0.25, 1.0]
    assert best_so_far(ratios, 5) == [0.5, 0.5, 0.5, 1.0, 1.0]
    assert mean_best_so_far([ratios, [0.0, 0.5]], 4) == [0.25, 0.5, 0.5, 0.75]
    assert cmp.iteration_ratios({"iterations": [{"iteration": 0, "ratio": None}]}) is None


def test_split_plot_legend_does_not_cover_the_bars(monkeypatch) -> None:
    import report_html

    figures = []
    monkeypatch.setattr(report_html, "png_data_url", lambda fig: figures.append(fig) or "data:")
    split = {"feedback": {"original_mean_ratio": 0.5, "improved_mean_ratio": 1.0},
             "held_out": {"original_mean_ratio": 0.5, "improved_mean_ratio": 1.0}}
    report_html.plot_split(split)
    [fig] = figures
    assert fig.axes[0].get_legend() is None and len(fig.legends) == 1  # outside the axes, above the plot


def test_sigterm_stops_the_comparison_at_once(tmp_path) -> None:
    import signal
    import time

    io = json.dumps({"inputs": ["1\n"], "outputs": ["1\n"]})
    records = [{"problem": "slow", "input_output": io, KEY: "```python\nimport time\ntime.sleep(60)\n```"}]
    original = tmp_path / "o.json"
    original.write_text(json.dumps(records))
    improved = tmp_path / "i.json"
    improved.write_text(json.dumps(records))
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--original-file", str(original), "--improved-file",
                             str(improved), "--timeout", "40", "--executor", "local"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 130 and stderr.strip().splitlines()[-1] == "error: interrupted"


def test_dotenv_cyber_url_applies_to_the_comparison(tmp_path) -> None:
    original, improved = write_case(tmp_path)
    (tmp_path / ".env").write_text("CYBER_URL=http://127.0.0.1:9/\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "CYBER_URL"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--original-file", str(original), "--improved-file",
                           str(improved), "--problem-id", "0"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert "executor remote" in proc.stdout  # the remote executor named by .env was used
    assert proc.returncode == 1 and "http://127.0.0.1:9/" in proc.stderr
