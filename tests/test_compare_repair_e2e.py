"""iterative_repair.py (against the scripted model server) then compare_model_improvements.py on its
files: both as subprocesses, real execution on the embedded executor, real files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

from conftest import clean_env  # noqa: E402
from fake_llm_server import FakeLLMServer, FakeReply, fenced, repairing_handler, write_problems  # noqa: E402



def repair(problems: Path, server: FakeLLMServer, *extra: str) -> Path:
    """Run the repair CLI; returns its output file (the summary is written beside it)."""
    output = problems.parent / f"improved_{problems.name}"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "iterative_repair.py"), "--solution-file", str(problems),
         "--model-name", "claude-sonnet-4-6", "--base-url", server.anthropic_base_url,
         "--cache-file", str(problems.parent / "cache.sqlite"), "--no-progress", "--max-retries", "1",
         "--executor", "local", "--timeout", "5", "--output-file", str(output), *extra],
        cwd=problems.parent, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return output


def compare(problems: Path, improved: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = problems.parent / "comparison.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "compare_model_improvements.py"), "--original-file", str(problems),
         "--improved-file", str(improved), "--executor", "local", "--timeout", "5", "--output-file", str(out), *extra],
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads(out.read_text())


def test_compare_a_repair_run_on_all_tests(tmp_path: Path) -> None:
    """Sample problems: SUM repaired 1/3 -> 3/3, MAX not selected (no improved answer), ECHO already passing."""
    problems = write_problems(tmp_path / "problems.json")
    with FakeLLMServer(repairing_handler) as server:
        improved = repair(problems, server, "--problem-ids", "0,2")
    report = tmp_path / "report.html"
    proc, d = compare(problems, improved, "--report", str(report))

    assert d["model_key"] == "sample_solution"  # inferred: the improved file's only improved_ key
    assert d["summary_file"] == str(tmp_path / "summary_improved_problems.json")  # found beside the output
    rows = d["problem_details"]
    assert [(r["original_passed"], r["improved_passed"], r["original_total"]) for r in rows] == [(1, 3, 3), (0, 0, 2), (1, 1, 1)]
    assert [r["status"] for r in rows] == ["improved", "unchanged", "unchanged"]
    assert [r["no_improved_answer"] for r in rows] == [False, True, False]
    assert rows[2]["same_program"] is True
    assert (d["improved_problems"], d["unchanged_problems"], d["worse_problems"]) == (1, 2, 0)
    assert (d["original_total_passed"], d["improved_total_passed"], d["original_total_tests"]) == (2, 4, 6)
    assert math.isclose(d["overall_improvement"], (2 / 3) / 3)
    assert (d["original_fully_passing"], d["improved_fully_passing"]) == (1, 2)
    assert d["original_verdicts"] == {"passed": 2, "wrong_answer": 4}
    assert d["improved_verdicts"] == {"passed": 4, "wrong_answer": 2}
    # the repair run showed the model every test: the leakage warning is stated
    assert d["scores_on_shown_tests"] is True and "measured on tests the model saw" in d["warnings"][0]
    assert "measured on tests the model saw" in proc.stderr
    assert rows[0]["iteration_ratios"] == pytest.approx([1 / 3, 1.0], abs=1e-6)
    assert d["cost"]["input_tokens"] > 0 and d["cost"]["output_tokens"] > 0 and d["cost"]["estimated_cost_usd"] > 0
    assert d["summary_disagreements"] == []  # the repair run's stored counts agree with the re-run
    page = report.read_text()
    for fig in ("fig-per-problem", "fig-iterations", "fig-verdicts"):
        assert f'id="{fig}"' in page


def test_compare_a_repair_run_with_held_out_tests(tmp_path: Path) -> None:
    """A model that hard-codes the shown tests: the gain is on feedback tests only, held-out stays at 0."""
    inputs = ["1 2\n", "2 3\n", "10 20\n", "7 7\n", "4 0\n", "9 1\n"]
    problem = {"problem": "PROBLEM-SUM: print a + b",
               "input_output": {"inputs": inputs, "outputs": [f"{sum(map(int, i.split()))}\n" for i in inputs]},
               "sample_solution": "```python\nprint(0)\n```"}
    problems = write_problems(tmp_path / "problems.json", [problem])

    def overfit(request):
        shown = [line for line in inputs if f"Input:\n{line}" in request.text()]
        cases = "\n".join(f"    {line.strip()!r}: {sum(map(int, line.split()))}," for line in shown)
        return FakeReply(fenced(f"s = input().strip()\nprint({{\n{cases}\n}}.get(s, -1))"))

    with FakeLLMServer(overfit) as server:
        improved = repair(problems, server, "--feedback-tests", "0.5", "--seed", "7")
    proc, d = compare(problems, improved)
    summary = json.loads((tmp_path / "summary_improved_problems.json").read_text())
    entry = summary["problems"][0]
    row = d["problem_details"][0]
    assert row["status"] == "improved" and row["original_passed"] == 0
    assert row["improved_passed"] == entry["final"]["passed"]
    split = d["split"]
    assert split["source"] == "re-run" and split["problems"] == 1
    assert split["feedback"]["improved_mean_ratio"] == entry["feedback"]["final"]["ratio"]
    assert split["held_out"]["original_mean_ratio"] == 0.0
    assert split["held_out"]["improved_mean_ratio"] == entry["held_out"]["final"]["ratio"]
    assert d["scores_on_shown_tests"] is False and not any("model saw" in w for w in d["warnings"])
    assert d["summary_disagreements"] == []
    assert "held-out tests:" in proc.stdout


def test_repair_and_compare_a_call_based_problem(tmp_path: Path) -> None:
    """A TACO fn_name problem: the model is shown the call, the expected and the returned value,
    its repaired function is run through the call harness, and the comparison re-runs both."""
    io = {"fn_name": "min_max", "inputs": [[[3, 1, 2]], [[5]], [[-1, 4]]], "outputs": [[[1, 3]], [[5, 5]], [[-1, 4]]]}
    problem = {"problem": "PROBLEM-MINMAX: min_max(xs) returns (smallest, largest)", "input_output": json.dumps(io),
               "sample_solution": "```python\ndef min_max(xs):\n    return (max(xs), min(xs))\n```"}
    problems = write_problems(tmp_path / "problems.json", [problem])
    prompts: list[str] = []

    def fix(request):
        prompts.append(request.text())
        return FakeReply(fenced("def min_max(xs):\n    return min(xs), max(xs)\n"))

    with FakeLLMServer(fix) as server:
        improved = repair(problems, server)
    assert "Call:\nmin_max([3, 1, 2])" in prompts[0]
    assert "Expected return value:\n[[1, 3]]" in prompts[0] and "Returned:\n[3, 1]" in prompts[0]
    _, d = compare(problems, improved)
    [row] = d["problem_details"]
    assert (row["original_passed"], row["improved_passed"], row["original_total"]) == (1, 3, 3)
    assert row["status"] == "improved"
