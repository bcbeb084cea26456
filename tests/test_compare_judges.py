"""compare_model_improvements.py --judges: the judge-sensitivity audit of a comparison, on a
hand-made case where the judges disagree, through the real CLI on the real sandbox.

| # | expected | original | improved       | exact     | livecodebench | apps      | codecontests |
|---|----------|----------|----------------|-----------|---------------|-----------|--------------|
| 0 | 1.00     | 1.0      | 1.00           | improved  | unchanged     | unchanged | unchanged    |
| 1 | YES      | yes      | YES            | improved  | improved      | improved  | unchanged    |
| 2 | 1 2 3    | 3 2 1    | 1 2 3          | improved  | improved      | unchanged | improved     |
| 3 | YES      | YES      | yes            | worse     | worse         | worse     | unchanged    |
| 4 | 0.5      | 0.50     | (no improved)  | unchanged | unchanged     | unchanged | unchanged    |

(apps accepts a permuted line as the same set of tokens; livecodebench compares 1.0 and 1.00 as
decimals; codecontests lowercases and allows 1e-5.)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the hand-made cases

from conftest import ROOT, clean_env, require_chromium
from test_compare_handmade import fenced, io, run_cli
from test_report_html import run_chromium

import subprocess

JUDGES = "exact,livecodebench,apps,codecontests"


def printing(text: str) -> str:
    return fenced(f"input()\nprint({text!r})")


CASES = [  # (name, expected, original prints, improved prints or None)
    ("Float", "1.00", "1.0", "1.00"),
    ("Yes", "YES", "yes", "YES"),
    ("Sort", "1 2 3", "3 2 1", "1 2 3"),
    ("Shout", "YES", "YES", "yes"),
    ("Half", "0.5", "0.50", None),
]


def write_judge_case(folder: Path) -> tuple[Path, Path]:
    original = [{"name": name, "problem": f"Problem {name}.", "input_output": io([("x\n", expected + "\n")]),
                 "m_solution": printing(before)} for name, expected, before, _ in CASES]
    improved = [dict(r, **({"improved_m_solution": printing(after)} if after is not None else {}))
                for r, (_, _, _, after) in zip(original, CASES)]
    paths = folder / "original.json", folder / "improved.json"
    for path, records in zip(paths, (original, improved)):
        path.write_text(json.dumps(records))
    return paths


@pytest.fixture(scope="module")
def audit_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("judges")
    original, improved = write_judge_case(folder)
    feedback = folder / "feedback.json"
    proc = subprocess.run([sys.executable, "model_feedback.py", "--solution-file", str(original), "--model-key", "m_solution",
                           "--judges", JUDGES, "--quiet", "--output", str(feedback)], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out, report = folder / "c.json", folder / "report.html"
    proc = run_cli("--original-file", original, "--improved-file", improved, "--judges", JUDGES,
                   "--feedback-audit", feedback, "--output-file", out, "--report", report)
    assert proc.returncode == 0, proc.stderr
    return {"proc": proc, "json": json.loads(out.read_text()), "report": report, "folder": folder}


def test_per_judge_counts_by_hand(audit_run):
    audit = audit_run["json"]["judge_audit"]
    assert audit["judges"] == JUDGES.split(",") and audit["run_judge"] == {"name": "exact"}
    assert (audit["problems"], audit["tests"]) == (5, 5)
    figures = {name: (j["original_passed"], j["improved_passed"], j["original_fully_passing"], j["improved_fully_passing"],
                      j["improved_problems"], j["unchanged_problems"], j["worse_problems"])
               for name, j in audit["per_judge"].items()}
    assert figures == {"exact": (1, 3, 1, 3, 3, 1, 1), "livecodebench": (3, 4, 3, 4, 2, 2, 1),
                       "apps": (4, 4, 4, 4, 1, 3, 1), "codecontests": (4, 5, 4, 5, 1, 4, 0)}
    d = audit_run["json"]  # the comparison itself is the run judge's (exact)
    assert (d["improved_problems"], d["unchanged_problems"], d["worse_problems"]) == (3, 1, 1)


def test_status_changes_and_flips(audit_run):
    audit = audit_run["json"]["judge_audit"]
    changes = {c["problem_id"]: c["status"] for c in audit["status_changes"]}
    assert changes == {
        0: {"exact": "improved", "livecodebench": "unchanged", "apps": "unchanged", "codecontests": "unchanged"},
        1: {"exact": "improved", "livecodebench": "improved", "apps": "improved", "codecontests": "unchanged"},
        2: {"exact": "improved", "livecodebench": "improved", "apps": "unchanged", "codecontests": "improved"},
        3: {"exact": "worse", "livecodebench": "worse", "apps": "worse", "codecontests": "unchanged"},
    }
    first = audit["status_changes"][0]
    assert first["original_passed"]["exact"] == 0 and first["original_passed"]["livecodebench"] == 1
    pairs = {(p["first"], p["second"]): p for p in audit["original"]["pairs"]}
    # the original programs: exact fails 0 (1.0), 1 (yes), 2 (permuted), 4 (0.50); apps accepts 0, 2, 4
    assert [(f["problem"], f["test"], f["exact"], f["apps"]) for f in pairs["exact", "apps"]["flips"]] == [
        ("problem 0", 1, "wrong_answer", "passed"), ("problem 2", 1, "wrong_answer", "passed"),
        ("problem 4", 1, "wrong_answer", "passed")]
    assert audit["original"]["passed"] == {"exact": 1, "livecodebench": 3, "apps": 4, "codecontests": 4}
    improved_pairs = {(p["first"], p["second"]): p["verdicts_changed"] for p in audit["improved"]["pairs"]}
    assert improved_pairs["exact", "codecontests"] == 2  # problem 3's "yes" and problem 4's "0.50"


def test_terminal_table(audit_run):
    out = audit_run["proc"].stdout
    assert "Judge-sensitivity audit (5 problems, 5 tests" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("livecodebench"))
    assert re.search(r"livecodebench\s+3 -> 4 of 5\s+3 -> 4 of 5\s+2/2/1", row), row
    assert "problem 3 (Shout): exact worse, livecodebench worse, apps worse, codecontests unchanged" in out
    assert "Verdicts changed, original programs: exact vs livecodebench 2," in out


def test_report_section_renders_in_chromium(audit_run, tmp_path):
    page = audit_run["report"].read_text()
    assert '<table id="judge-audit">' in page and '<table id="judge-status-changes">' in page
    assert '<figure id="fig-judges">' in page
    assert '<table id="feedback-audit"' in page  # the model_feedback run's stored audit
    figures = re.findall(r'<figure id="([^"]+)">', page)
    dom = run_chromium(audit_run["report"].resolve().as_uri(), tmp_path / "profile", "--virtual-time-budget=5000",
                       "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body and 'data-plots-loaded="true"' in body.group(0), dom.stdout[:500]
    assert f'data-plot-count="{len(figures)}"' in body.group(0) and "fig-judges" in figures


def test_feedback_audit_in_the_json(audit_run):
    d = audit_run["json"]
    assert d["feedback_audit"]["judges"] == JUDGES.split(",")
    assert d["feedback_audit"]["passed"] == d["judge_audit"]["original"]["passed"]  # the same programs, same outputs
    assert d["feedback_audit_file"].endswith("feedback.json")


def test_bad_judges_are_usage_errors_before_any_run(tmp_path):
    original, improved = write_judge_case(tmp_path)
    for spec, fragment in (("exact", "at least two"), ("exact,nope", "unknown judge 'nope'"),
                           ("exact,checker", "checker")):
        proc = run_cli("--original-file", original, "--improved-file", improved, "--judges", spec)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and fragment in lines[0], proc.stderr
    proc = run_cli("--original-file", original, "--improved-file", improved, "--feedback-audit", original)
    assert proc.returncode == 2 and "no judge audit" in proc.stderr
