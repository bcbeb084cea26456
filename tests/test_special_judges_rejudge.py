"""``model_feedback.py --rejudge RESULTS.json --special-judges LIST``: a finished run judged again
with a special-judge list, through the real CLI, on a results file of a real run (the problems of
``test_special_judges.py``: its table says what each prints). No program runs again; the outcome
is a fresh run's with the same list, and the list is checked as a run checks it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import run_cli
from test_special_judges import write_problems

# 0 "Float" by index, 1 "Yes" by name, 2 "Any" needs a checker, 3 "Named" has its own judge (tokens)
LIST = {"0": "float", "Yes": "case-insensitive", "2": "multiple", "Named": "float"}


def run(folder: Path, out: Path, *extra: str) -> Any:
    proc = run_cli("--solution-file", str(folder / "problems.json"), "--model-key", "m_solution", "--quiet",
                   "--output", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    return proc


def rejudge(results: Path, specials: Path, out: Path) -> Any:
    return run_cli("--rejudge", str(results), "--special-judges", str(specials), "--quiet", "--output", str(out))


def problems_of(path: Path) -> dict[int, dict[str, Any]]:
    return {p["problem_id"]: p for p in json.loads(path.read_text())["files"][0]["problems"]}


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_rejudge_with_a_list_flips_the_listed_problems_as_a_fresh_run_would(tmp_path: Path) -> None:
    write_problems(tmp_path)
    specials = tmp_path / "spj.json"
    specials.write_text(json.dumps(LIST))
    plain = tmp_path / "plain.json"
    run(tmp_path, plain)
    assert {i: p["passed"] for i, p in problems_of(plain).items()} == {0: 0, 1: 0, 2: 0, 3: 1, 4: 1}

    out = tmp_path / "rejudged.json"
    proc = rejudge(plain, specials, out)
    assert proc.returncode == 0, proc.stderr
    rejudged = problems_of(out)
    assert {i: p["passed"] for i, p in rejudged.items()} == {0: 1, 1: 1, 2: 0, 3: 1, 4: 1}  # 0 and 1 flipped
    assert {i: p["judge"]["name"] for i, p in rejudged.items()} == {
        0: "float", 1: "case-insensitive", 2: "exact", 3: "tokens", 4: "exact"}
    assert "special_judge" not in rejudged[3] and rejudged[3]["judge_from_record"] is True  # the record's own wins
    assert "special_judge" not in rejudged[4]
    for i, problem in rejudged.items():  # nothing ran again: the programs' outputs are the run's
        assert [r["exec_output"] for r in problem["results"]] == [r["exec_output"] for r in problems_of(plain)[i]["results"]]

    fresh = tmp_path / "fresh.json"
    fresh_proc = run(tmp_path, fresh, "--special-judges", str(specials))
    for i, problem in problems_of(fresh).items():
        assert {k: rejudged[i].get(k) for k in ("passed", "verdicts", "judge", "judge_from_record", "special_judge")} == \
            {k: problem.get(k) for k in ("passed", "verdicts", "judge", "judge_from_record", "special_judge")}, i
    block = json.loads(out.read_text())["summary"]["special_judges"]
    assert block == json.loads(fresh.read_text())["summary"]["special_judges"]
    assert (block["applied"], block["by_kind"]) == (3, {"float": 1, "case-insensitive": 1, "multiple": 1})
    assert warnings_of(proc.stderr) == warnings_of(fresh_proc.stderr) == [
        f"warning: {tmp_path / 'problems.json'}: problem 2 (m_solution): multiple special judge ({specials}): "
        "needs a checker, judged by exact"]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("Special judges from"))
    assert line in fresh_proc.stdout.splitlines()


def test_rejudge_checks_the_list_as_a_run_does(tmp_path: Path) -> None:
    """Entries matching no problem of the file: the run's one warning line (only when the file
    holds every problem, as after a run without a selection); a problem listed twice: the run's
    one error line, exit 2, nothing written."""
    problems = write_problems(tmp_path)
    results, narrow, out = tmp_path / "plain.json", tmp_path / "narrow.json", tmp_path / "out.json"
    run(tmp_path, results)
    run(tmp_path, narrow, "--problem-ids", "0,1")
    specials = tmp_path / "spj.json"

    specials.write_text(json.dumps({"77": "float", "0": "float"}))
    proc = rejudge(results, specials, out)
    assert proc.returncode == 0, proc.stderr
    assert warnings_of(proc.stderr) == [f"warning: {specials}: 1 entry with no matching problem: 77"]
    assert problems_of(out)[0]["passed"] == 1
    proc = rejudge(narrow, specials, out)
    assert proc.returncode == 0 and warnings_of(proc.stderr) == [], proc.stderr

    out.unlink()
    specials.write_text(json.dumps({"1": "float", "Yes": "case-insensitive"}))
    proc = rejudge(results, specials, out)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {specials}: {problems}: problem 1 is listed twice (1 and 'Yes')"]
    assert proc.stdout == "" and not out.exists()
    specials.write_text(json.dumps({"0": "fuzzy"}))
    proc = rejudge(results, specials, out)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {specials}: unknown special-judge kind 'fuzzy'")
