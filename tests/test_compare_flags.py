"""compare_model_improvements.py's selection, extraction and warning flags, through the real CLI on
the hand-made case of ``test_compare_handmade`` (the same flags and messages as model_feedback)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the hand-made case

from test_compare_handmade import fenced, io, run_cli, split_summary, write_case

import compare_model_improvements as cmi


def stderr_lines(proc) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr
    return [line for line in proc.stderr.splitlines() if line.strip()]


def test_a_range_past_the_file_is_clamped_with_one_warning(tmp_path: Path) -> None:
    original, improved = write_case(tmp_path)
    out = tmp_path / "c.json"
    proc = run_cli("--original-file", original, "--improved-file", improved, "--range", "3-9", "--quiet",
                   "--output-file", out)
    assert proc.returncode == 0, proc.stderr
    clamp = [line for line in stderr_lines(proc) if "goes past the end" in line]
    assert clamp == [f"warning: {original}: --range 3-9 goes past the end of the file "
                     "(the file has 4 problems, indices 0-3): running 3-3"]
    d = json.loads(out.read_text())
    assert [r["problem_id"] for r in d["problem_details"]] == [3]
    assert (d["range"], d["problem_ids"], d["problem_id"]) == ("3-9", None, None)


def test_problem_ids_are_compared_in_the_order_given(tmp_path: Path) -> None:
    original, improved = write_case(tmp_path)
    out = tmp_path / "c.json"
    proc = run_cli("--original-file", original, "--improved-file", improved, "--problem-ids", "1,0,1", "--quiet",
                   "--output-file", out)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(out.read_text())
    assert [(r["problem_id"], r["status"]) for r in d["problem_details"]] == [(1, "unchanged"), (0, "improved")]
    assert d["problem_ids"] == "1,0,1"


def test_unknown_ids_and_a_range_outside_the_file_are_one_usage_error(tmp_path: Path) -> None:
    original, improved = write_case(tmp_path)
    proc = run_cli("--original-file", original, "--improved-file", improved, "--problem-ids", "1,9,12")
    assert proc.returncode == 2
    assert stderr_lines(proc) == [f"error: {original}: problems 9, 12 do not exist (the file has 4 problems, indices 0-3)"]
    proc = run_cli("--original-file", original, "--improved-file", improved, "--range", "7-9")
    assert proc.returncode == 2
    assert stderr_lines(proc) == [f"error: {original}: --range 7-9 selects no problem (the file has 4 problems, indices 0-3)"]
    proc = run_cli("--original-file", original, "--improved-file", improved, "--range", "0-1", "--problem-id", "0")
    assert proc.returncode == 2 and "not allowed with" in proc.stderr


def write_two_block_case(folder: Path) -> tuple[Path, Path]:
    """One problem whose original answer has a wrong draft first and the right program last."""
    record = {"name": "Double", "problem": "Print 2n.", "input_output": io([("3\n", "6\n"), ("5\n", "10\n")]),
              "m_solution": "Draft:\n```python\nprint(0)\n```\nFixed:\n```python\nprint(int(input()) * 2)\n```\n"}
    original, improved = folder / "o.json", folder / "i.json"
    original.write_text(json.dumps([record]))
    improved.write_text(json.dumps([{**record, "improved_m_solution": fenced("n = int(input())\nprint(n + n)")}]))
    return original, improved


def test_extract_first_compares_against_the_seeds_first_block_baseline(tmp_path: Path) -> None:
    original, improved = write_two_block_case(tmp_path)
    results = {}
    for rule in ("best", "first"):
        out = tmp_path / f"{rule}.json"
        proc = run_cli("--original-file", original, "--improved-file", improved, "--extract", rule, "--quiet",
                       "--output-file", out)
        assert proc.returncode == 0, proc.stderr
        results[rule] = json.loads(out.read_text())
    best, first = results["best"]["problem_details"][0], results["first"]["problem_details"][0]
    assert (best["original_passed"], best["improved_passed"], best["status"]) == (2, 2, "unchanged")
    assert (first["original_passed"], first["improved_passed"], first["status"]) == (0, 2, "improved")
    assert (results["best"]["extract"], results["first"]["extract"]) == ("best", "first")
    assert run_cli("--original-file", original, "--improved-file", improved, "--extract", "last").returncode == 2


def test_help_lists_the_selection_extraction_and_judge_flags() -> None:
    out = run_cli("--help").stdout
    for flag in ("--problem-ids", "--range", "--extract", "--judges", "--special-judges", "--feedback-audit"):
        assert flag in out


def test_warnings_go_to_stderr_in_one_format_with_or_without_quiet(tmp_path: Path) -> None:
    """The leakage warning, the JSON's other warnings and a logged one (an unreadable summary found
    beside the improved file) are the same ``warning: ...`` lines on stderr in both modes."""
    summary = split_summary()
    summary["scores_on_shown_tests"] = True
    original, improved = write_case(tmp_path / "leak", summary)
    broken_original, broken_improved = write_case(tmp_path / "broken")
    (broken_improved.parent / f"summary_{broken_improved.name}").write_text("{not json")
    for quiet in ((), ("--quiet",)):
        out = tmp_path / "c.json"
        proc = run_cli("--original-file", original, "--improved-file", improved, "--problem-ids", "1,3",
                       "--output-file", out, *quiet)
        assert proc.returncode == 0, proc.stderr
        d = json.loads(out.read_text())
        assert d["warnings"][0] == cmi.LEAKAGE_WARNING and len(d["warnings"]) == 2
        assert stderr_lines(proc)[-2:] == [f"warning: {w}" for w in d["warnings"]]
        assert "warning:" not in proc.stdout.lower()
        assert (proc.stdout == "") == bool(quiet)
        proc = run_cli("--original-file", broken_original, "--improved-file", broken_improved, "--problem-id", "1",
                       *quiet)
        assert proc.returncode == 0, proc.stderr
        lines = stderr_lines(proc)
        assert len(lines) == 1 and lines[0].startswith(f"warning: {broken_improved.parent}"), lines
        assert "ignoring the repair summary" in lines[0] and "WARNING" not in proc.stderr
