"""A checker program named by a record's own ``judge`` field is part of the resume fingerprints.

The solution file's digest covers the record (``{"name": "checker", "path": "chk.py"}``) but not
``chk.py``: editing the checker and running the same command again must not reuse the old
checker's verdicts. Real runs on the real sandbox: ``model_feedback.py`` (its results log beside
``--output``) and ``iterative_repair.py`` (its checkpoint), each first resumed with the checker
unchanged, then refused with the message a changed fingerprint gives, then restarted: the
verdict is the new checker's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli

ACCEPT = "import sys\nsys.exit(0)\n"
REJECT = "import sys\nprint('edited checker rejects', file=sys.stderr)\nsys.exit(1)\n"
CRASH = "raise RuntimeError('checker bug')\n"
ECHO = "```python\nprint(input())\n```"


def record(name: str, checker: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "problem": "Echo the line.",
                             "input_output": json.dumps({"inputs": ["5\n"], "outputs": ["5\n"]}), "m_solution": ECHO}
    if checker is not None:
        entry["judge"] = {"name": "checker", "path": checker}
    return entry


def problems_of(out: Path) -> dict[int, dict[str, Any]]:
    return {p["problem_id"]: p for p in json.loads(out.read_text())["files"][0]["problems"]}


def test_model_feedback_refuses_a_results_log_of_an_edited_record_checker(tmp_path: Path) -> None:
    """Problem 1's checker crashes (an error of the run, retried by the next run), so the results
    log is kept after the first run and the next run would resume from it."""
    (tmp_path / "chk.py").write_text(ACCEPT)
    (tmp_path / "crash.py").write_text(CRASH)
    problems = tmp_path / "problems.json"
    problems.write_text(json.dumps([record("own checker", "chk.py"), record("crashing checker", "crash.py")]))
    out = tmp_path / "r.json"
    command = ("--solution-file", str(problems), "--model-key", "m_solution", "--quiet", "--output", str(out))

    first = run_cli(*command)
    assert first.returncode == 1, first.stderr
    assert problems_of(out)[0]["passed"] == 1 and problems_of(out)[1]["status"] == "error"
    log = tmp_path / "r.json.checkpoint.jsonl"
    assert log.exists()
    again = run_cli(*command)  # the checker unchanged: resumed
    assert f"resuming from {log}: 1 of 2 evaluation(s) already done" in again.stderr

    (tmp_path / "chk.py").write_text(REJECT)
    refused = run_cli(*command)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip() == (f"error: {log} holds results of a run with other inputs or limits: "
                                      "run the same command to resume it, or add --restart to discard it")
    restarted = run_cli(*command, "--restart")
    assert restarted.returncode == 1, restarted.stderr
    problem = problems_of(out)[0]
    assert (problem["passed"], problem["verdicts"]) == (0, {"wrong_answer": 1})
    assert "edited checker rejects" in problem["results"][0]["judge_reason"]


def test_records_without_a_checker_file_keep_the_fingerprint_of_earlier_runs(tmp_path: Path) -> None:
    """Only records naming a checker by path add ``record_checkers``; their key is the file, the
    problem index and the checker's spec (its ``source_sha256``)."""
    import model_feedback

    (tmp_path / "chk.py").write_text(ACCEPT)
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps([record("a", None), {**record("b", None), "judge": "tokens"},
                                 {**record("c", None), "judge": {"name": "checker", "source": ACCEPT}}]))
    args = model_feedback.build_parser().parse_args(["--solution-file", str(plain)])
    judge = model_feedback.judges.judge_from_args(args)
    files = model_feedback.load_all([str(plain)])
    assert model_feedback.run_fingerprint(args, [str(plain)], None, judge, None, files) == \
        model_feedback.run_fingerprint(args, [str(plain)], None, judge)
    named = tmp_path / "named.json"
    named.write_text(json.dumps([record("a", None), record("b", "chk.py")]))
    fingerprint = model_feedback.run_fingerprint(args, [str(named)], None, judge, None,
                                                 model_feedback.load_all([str(named)]))
    [[path, index, spec]] = fingerprint["record_checkers"]
    assert (path, index, spec["name"], spec["path"]) == (str(named), 1, "checker", "chk.py")
    assert len(spec["source_sha256"]) == 16


def test_iterative_repair_refuses_a_checkpoint_of_an_edited_record_checker(
        tmp_path: Path, no_provider_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    """``--max-iterations 0``: no model call, the starting program is only scored (by the checker)."""
    import iterative_repair

    (tmp_path / "chk.py").write_text(ACCEPT)
    problems = tmp_path / "problems.json"
    problems.write_text(json.dumps([record("own checker", "chk.py")]))
    command = ["--solution-file", str(problems), "--model-key", "m_solution", "--max-iterations", "0", "--no-cache",
               "--no-progress", "--executor", "local", "--base-url", "http://127.0.0.1:9/v1",
               "--model-name", "local-model"]
    summary = tmp_path / "summary_improved_problems.json"

    def initial() -> dict[str, Any]:
        return json.loads(summary.read_text())["problems"][0]["initial"]

    assert iterative_repair.main(command) == 0
    assert initial()["passed"] == 1
    assert iterative_repair.main(command) == 0
    assert "1 problem(s) already done" in capsys.readouterr().err  # the checker unchanged: resumed

    (tmp_path / "chk.py").write_text(REJECT)
    assert iterative_repair.main(command) == 2
    assert "was written by a run with other settings" in capsys.readouterr().err
    assert iterative_repair.main([*command, "--restart"]) == 0
    assert initial()["passed"] == 0
