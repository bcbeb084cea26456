"""model_feedback.py --special-judges: per-problem judges from a TACO-style special-judge list,
through the real CLI on the real sandbox.

| # | name  | expected   | prints      | listed as                    | verdict                              |
|---|-------|------------|-------------|------------------------------|--------------------------------------|
| 0 | Float | 0.3333333  | 0.33333334  | TACO case 3 (float)          | passed under float, failed by exact  |
| 1 | Yes   | YES        | yes         | TACO case 2 (case-insens.)   | passed                               |
| 2 | Any   | 1 2        | 2 1         | TACO case 1 (several valid)  | needs a checker: judged by exact     |
| 3 | Named | a b        | a  b        | by name, case-insensitive    | the record's own judge (tokens) wins |
| 4 | Plain | 7          | 7           | special_judge: false         | exact                                |
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli

CASES = [("Float", "0.3333333", "0.33333334"), ("Yes", "YES", "yes"), ("Any", "1 2", "2 1"),
         ("Named", "a b", "a  b"), ("Plain", "7", "7")]
TACO_LINES = [{"idx": 0, "special_judge": True, "case": 3}, {"idx": 1, "special_judge": True, "case": 2},
              {"idx": 2, "special_judge": True, "case": 1}, {"idx": 4, "special_judge": False, "case": 0}]
TACO_CASES = {"1": "multiple", "2": "case-insensitive", "3": "float"}


def write_problems(folder: Path) -> Path:
    records = [{"name": name, "problem": f"Print {expected}.",
                "input_output": json.dumps({"inputs": ["\n"], "outputs": [expected + "\n"]}),
                "m_solution": f"```python\nprint({prints!r})\n```"} for name, expected, prints in CASES]
    records[3]["judge"] = "tokens"
    path = folder / "problems.json"
    path.write_text(json.dumps(records))
    return path


def evaluate(folder: Path, specials: Path, *extra: str):
    out = folder / "r.json"
    proc = run_cli("--solution-file", str(write_problems(folder)), "--model-key", "m_solution", "--quiet",
                   "--special-judges", str(specials), "--output", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(out.read_text())
    return proc, document, {p["problem_id"]: p for p in document["files"][0]["problems"]}


def test_taco_cases_with_their_kinds_map_to_judges(tmp_path: Path) -> None:
    specials = tmp_path / "spj.json"
    specials.write_text(json.dumps({"cases": TACO_CASES, "problems": TACO_LINES + [{"name": "Named", "kind": "case-insensitive"}]}))
    proc, document, problems = evaluate(tmp_path, specials)
    assert {i: (p["passed"], p["judge"]["name"]) for i, p in problems.items()} == {
        0: (1, "float"), 1: (1, "case-insensitive"), 2: (0, "exact"), 3: (1, "tokens"), 4: (1, "exact")}
    assert problems[0]["special_judge"] == {"source": str(specials), "key": "0", "kind": "float", "note": "TACO case 3",
                                            "judge": {"name": "float", "abs_tol": 1e-6, "rel_tol": 1e-6},
                                            "needs_checker": False}
    assert problems[2]["special_judge"]["needs_checker"] is True
    assert problems[2]["special_judge"]["message"] == "needs a checker, judged by exact"
    assert "special_judge" not in problems[3] and problems[3]["judge_from_record"] is True  # the record's own wins
    assert "special_judge" not in problems[4]
    block = document["summary"]["special_judges"]
    assert (block["entries"], block["applied"], block["by_kind"]) == (4, 3, {"float": 1, "case-insensitive": 1, "multiple": 1})
    assert [(n["problem_id"], n["kind"]) for n in block["needs_checker"]] == [(2, "multiple")]
    assert "Special judges from" in proc.stdout and "3 evaluation(s) of 4 listed problem(s)" in proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "problem 2" in warnings[0] and "needs a checker, judged by exact" in warnings[0]


def test_taco_lines_without_kinds_are_reported_never_guessed(tmp_path: Path) -> None:
    specials = tmp_path / "output_spj.jsonl"
    specials.write_text("".join(json.dumps(line) + "\n" for line in TACO_LINES))
    proc, document, problems = evaluate(tmp_path, specials, "--judge", "tokens")
    assert {i: p["judge"]["name"] for i, p in problems.items()} == {0: "tokens", 1: "tokens", 2: "tokens", 3: "tokens",
                                                                    4: "tokens"}
    needs = document["summary"]["special_judges"]["needs_checker"]
    assert [(n["problem_id"], n["kind"], n["note"]) for n in needs] == [
        (0, "unknown", "TACO case 3: kind not given in the file's 'cases'"),
        (1, "unknown", "TACO case 2: kind not given in the file's 'cases'"),
        (2, "unknown", "TACO case 1: kind not given in the file's 'cases'")]
    assert all(n["message"] == "needs a checker, judged by tokens" for n in needs)
    assert sum(line.startswith("warning:") for line in proc.stderr.splitlines()) == 3


def test_an_object_by_index_and_name_with_a_tolerance_and_a_judge_name(tmp_path: Path) -> None:
    specials = tmp_path / "spj.json"
    specials.write_text(json.dumps({"0": {"kind": "float", "abs_tol": 1e-9, "rel_tol": 0}, "Yes": "case-insensitive",
                                    "2": {"judge": "apps"}}))
    _, document, problems = evaluate(tmp_path, specials)
    assert problems[0]["passed"] == 0 and problems[0]["special_judge"]["judge"]["abs_tol"] == 1e-9  # too tight
    assert problems[1]["passed"] == 1 and problems[1]["special_judge"]["key"] == "Yes"
    assert problems[2]["passed"] == 1 and problems[2]["judge"]["name"] == "apps"  # apps accepts the permutation
    assert document["summary"]["special_judges"]["needs_checker"] == []


def test_bad_lists_are_one_usage_error(tmp_path: Path) -> None:
    problems = write_problems(tmp_path)
    for content, fragment in (('{"0": "weird"}', "unknown special-judge kind 'weird'"),
                              ('[{"kind": "float"}]', "names no problem"),
                              ('{"0": "float", "00": "float"}', "listed twice"),
                              ("{not json\n", "line 1: not JSON")):
        specials = tmp_path / "bad.json"
        specials.write_text(content)
        proc = run_cli("--solution-file", str(problems), "--special-judges", str(specials))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {specials}: "), proc.stderr
        assert fragment in lines[0], lines[0]
    proc = run_cli("--solution-file", str(problems), "--special-judges", str(tmp_path / "missing.json"))
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_compare_applies_the_list_and_the_records_own_judge(tmp_path: Path) -> None:
    """The comparison's hand-made judge case (tests/test_compare_judges.py): listed problems and a
    record with its own judge change status; the one needing a checker is a warning."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_compare_handmade import run_cli as run_compare
    from test_compare_judges import write_judge_case

    original, improved = write_judge_case(tmp_path)
    for path in (original, improved):
        records = json.loads(path.read_text())
        records[1]["judge"] = "codecontests"
        path.write_text(json.dumps(records))
    specials = tmp_path / "spj.json"
    specials.write_text(json.dumps({"0": "float", "Shout": "case-insensitive", "2": "multiple", "1": "float"}))
    out = tmp_path / "c.json"
    proc = run_compare("--original-file", original, "--improved-file", improved, "--special-judges", specials,
                       "--output-file", out)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(out.read_text())
    rows = {r["problem_id"]: r for r in d["problem_details"]}
    assert {i: (r["status"], r["judge"]["name"]) for i, r in rows.items()} == {
        0: ("unchanged", "float"), 1: ("unchanged", "codecontests"), 2: ("improved", "exact"),
        3: ("unchanged", "case-insensitive"), 4: ("unchanged", "exact")}
    assert rows[1]["judge_from_record"] is True and rows[1]["special_judge"] is None  # the record's own wins
    assert rows[2]["special_judge"]["needs_checker"] is True
    block = d["special_judges"]
    assert (block["applied"], [n["problem_id"] for n in block["needs_checker"]]) == (3, [2])
    expected = f"warning: problem 2: multiple special judge ({specials}): needs a checker, judged by exact"
    assert expected in proc.stderr.splitlines() and expected.removeprefix("warning: ") in d["warnings"]
    assert "Special judges from" in proc.stdout


def test_a_problem_listed_by_index_and_by_name_is_a_usage_error(tmp_path: Path) -> None:
    """Problem 1 is "Yes": naming it once by index and once by name is the README's "listed twice"."""
    problems = write_problems(tmp_path)
    specials = tmp_path / "twice.json"
    specials.write_text(json.dumps({"1": "float", "Yes": "case-insensitive"}))
    proc = run_cli("--solution-file", str(problems), "--model-key", "m_solution", "--special-judges", str(specials))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0] == f"error: {specials}: {problems}: problem 1 is listed twice (1 and 'Yes')"
    assert proc.stdout == ""  # nothing ran


def test_entries_matching_no_problem_are_one_warning_when_the_run_covers_all(tmp_path: Path) -> None:
    specials = tmp_path / "spj.json"
    specials.write_text(json.dumps({"77": "float", "No Such Name": "float", "1": "case-insensitive"}))
    proc, _, problems = evaluate(tmp_path, specials)
    assert problems[1]["special_judge"]["kind"] == "case-insensitive"
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {specials}: 2 entries with no matching problem: 77, 'No Such Name'"]
    proc, _, _ = evaluate(tmp_path, specials, "--problem-ids", "0,1")  # a narrower selection: nothing said
    assert "warning:" not in proc.stderr


def test_compare_checks_the_list_against_its_problems(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_compare_handmade import run_cli as run_compare
    from test_compare_judges import write_judge_case

    original, improved = write_judge_case(tmp_path)
    specials = tmp_path / "spj.json"
    specials.write_text(json.dumps({"0": "float", "Shout": "case-insensitive", "3": "float"}))  # 3 is "Shout"
    proc = run_compare("--original-file", original, "--improved-file", improved, "--special-judges", specials)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f"error: {specials}: {original}: problem 3 is listed twice (3 and 'Shout')")
    specials.write_text(json.dumps({"0": "float", "99": "float"}))
    out = tmp_path / "c.json"
    proc = run_compare("--original-file", original, "--improved-file", improved, "--special-judges", specials,
                       "--output-file", out)
    assert proc.returncode == 0, proc.stderr
    assert f"warning: {specials}: 1 entry with no matching problem: 99" in proc.stderr.splitlines()
    assert f"{specials}: 1 entry with no matching problem: 99" in json.loads(out.read_text())["warnings"]


TACO_DATA = Path(__file__).resolve().parent.parent / "data" / "formats"


def test_a_problems_run_applies_entries_by_index_and_by_name(tmp_path: Path) -> None:
    """``--problems``: problem 0 of taco_problems.json listed by index, problem 1 by its ``name``;
    both apply and no entry is called unmatched."""
    specials = tmp_path / "spj.json"
    specials.write_text(json.dumps({"0": "case-insensitive", "Min Max": "tokens"}))
    out = tmp_path / "r.json"
    proc = run_cli("--problems", str(TACO_DATA / "taco_problems.json"), "--samples",
                   str(TACO_DATA / "taco_generation.json"), "--quiet", "--special-judges", str(specials),
                   "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "no matching problem" not in proc.stderr
    rows = [p for f in json.loads(out.read_text())["files"] for p in f["problems"]]
    judged = {(p["problem_id"], p["judge"]["name"], (p.get("special_judge") or {}).get("key")) for p in rows}
    assert judged == {(0, "case-insensitive", "0"), (1, "tokens", "Min Max"), (2, "exact", None)}
    block = json.loads(out.read_text())["summary"]["special_judges"]
    assert block["applied"] == sum(p["problem_id"] in (0, 1) for p in rows) and block["applied"] >= 2
    specials.write_text(json.dumps({"Add Two": "float", "No Such": "float"}))
    proc = run_cli("--problems", str(TACO_DATA / "taco_problems.json"), "--samples",
                   str(TACO_DATA / "taco_generation.json"), "--quiet", "--special-judges", str(specials))
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stderr.splitlines() if "no matching problem" in line] == [
        f"warning: {specials}: 1 entry with no matching problem: 'No Such'"]


def test_a_one_line_jsonl_list_is_one_entry(tmp_path: Path) -> None:
    """A ``.jsonl`` file is read as lines even when its one line is a whole JSON object."""
    import gzip

    line = json.dumps({"idx": 0, "kind": "float"}) + "\n"
    plain = tmp_path / "spj.jsonl"
    plain.write_text(line)
    packed = tmp_path / "spj.jsonl.gz"
    packed.write_bytes(gzip.compress(line.encode()))
    for specials in (plain, packed):
        _, document, problems = evaluate(tmp_path, specials)
        assert (problems[0]["passed"], problems[0]["judge"]["name"], problems[0]["special_judge"]["key"]) == (
            1, "float", "0"), specials
        assert document["summary"]["special_judges"]["entries"] == 1


def test_every_wrong_shape_is_one_usage_error_naming_the_file(tmp_path: Path) -> None:
    problems = write_problems(tmp_path)
    taco = [{"idx": 0, "special_judge": True, "case": 1}]
    for content, fragment in (
            ([1], "an entry is not an object: 1"), (3, "expected an object or a list"),
            (None, "expected an object or a list"), ([None], "an entry is not an object: None"),
            ({"cases": [1], "problems": taco}, "'cases' must be an object {case: kind}"),
            ({"cases": 5, "problems": []}, "'cases' must be an object"),
            ({"cases": {"1": "float"}, "problems": {"0": "float"}}, "'problems' must be a list of entries"),
            ({"cases": {"1": [1]}, "problems": taco}, "unknown special-judge kind '[1]'"),
            ([{"idx": [1], "kind": "float"}], "'idx' must be a problem index (0 or more) or a name"),
            ([{"name": None, "kind": "float"}], "'name' must be a problem index"),
            ([{"idx": True, "kind": "float"}], "'idx' must be a problem index"),
            ([{"idx": -1, "kind": "float"}], "'idx' must be a problem index"),
            ({"0": [1]}, "entry '0' needs a 'kind'"), ({"0": {"kind": ["float"]}}, "entry '0' needs a 'kind'"),
            ({"0": {"judge": None}}, "entry '0' needs a 'kind'"),
            ({"0": {"kind": "float", "abs_tol": "x"}}, "abs_tol must be a number"),
            ({"0": {"judge": [1]}}, "'judge' must be a name or an object")):
        specials = tmp_path / "bad.json"
        specials.write_text(json.dumps(content))
        proc = run_cli("--solution-file", str(problems), "--special-judges", str(specials))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {specials}: "), (
            content, proc.stderr)
        assert fragment in lines[0], (content, lines[0])


def test_an_edited_checker_named_by_the_list_changes_the_results_log_fingerprint(tmp_path: Path) -> None:
    """The list names ``chk.py``; editing it (not the list) must refuse the old log, as an edited
    ``--checker`` does. A list naming no checker keeps the fingerprint of earlier runs."""
    import sys

    import pytest

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import model_feedback
    import special_judges
    from errors import ConfigError
    from results_log import ResultsLog

    problems = write_problems(tmp_path)
    checker = tmp_path / "chk.py"
    checker.write_text("import sys\nsys.exit(0)\n")
    specials_path = tmp_path / "spj.json"
    specials_path.write_text(json.dumps({"2": {"judge": {"name": "checker", "path": "chk.py"}}, "1": "float"}))
    args = model_feedback.build_parser().parse_args(
        ["--solution-file", str(problems), "--special-judges", str(specials_path)])
    judge = model_feedback.judges.judge_from_args(args)

    def fingerprint() -> dict:
        specials = special_judges.load(str(specials_path))
        return model_feedback.run_fingerprint(args, [str(problems)], None, judge, specials)

    before = fingerprint()
    assert [key for key, _ in before["special_judge_checkers"]] == ["2"]
    log = ResultsLog(tmp_path / "r.json.checkpoint.jsonl", before)
    log.append((str(problems), 2, "m_solution"), {"passed": 1, "total": 1, "verdicts": {"passed": 1}})
    log.close()
    assert len(ResultsLog(log.path, before).scan()) == 1  # same inputs: resumed
    checker.write_text("import sys\nsys.exit(1)\n")
    after = fingerprint()
    assert after != before
    with pytest.raises(ConfigError, match="other inputs or limits"):
        ResultsLog(log.path, after).scan()
    specials_path.write_text(json.dumps({"1": "float"}))
    assert "special_judge_checkers" not in fingerprint()
