"""Repair and resample on the same problems against the scripted model server, in both wire
formats (Anthropic Messages and OpenAI Chat Completions), with budgets matched by recorded
tokens; then the comparison's report with both pass-against-tokens curves, rendered in headless
Chromium. Also: a planted timing flake caught by ``--recheck-timeouts`` (and an infinite loop
reported stable) in model_feedback.py and in the repair loop.

Token counts are scripted: a repair call costs 300 in + 50 out, a resample 100 in + 40 out
(140), so every budget can be checked by hand.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

from conftest import clean_env  # noqa: E402
from fake_llm_server import MAX_FIXED, SUM_FIXED, FakeLLMServer, FakeReply, LoggedRequest, fenced, problem_tag, write_problems  # noqa: E402
from test_report_html import run_chromium  # noqa: E402

REPAIR_COST, SAMPLE_COST = (300, 50), (100, 40)
WRONG = "print(0)"


def scripted(request: LoggedRequest) -> FakeReply:
    """Repair: SUM right at the second attempt, MAX at the first. Resample: SUM right at the
    second sample, MAX never (so its budget is spent)."""
    tag = problem_tag(request)
    if "repairs Python 3 programs" in request.system:
        attempts = sum(1 for m in request.messages if m.get("role") == "assistant")
        code = {"PROBLEM-SUM": SUM_FIXED if attempts >= 1 else WRONG, "PROBLEM-MAX": MAX_FIXED}.get(tag or "", WRONG)
        return FakeReply(fenced(code), input_tokens=REPAIR_COST[0], output_tokens=REPAIR_COST[1])
    scripted.samples[tag] = scripted.samples.get(tag, 0) + 1  # type: ignore[attr-defined]
    code = SUM_FIXED if tag == "PROBLEM-SUM" and scripted.samples[tag] >= 2 else WRONG  # type: ignore[attr-defined]
    return FakeReply(fenced(code), input_tokens=SAMPLE_COST[0], output_tokens=SAMPLE_COST[1])


def run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, env=clean_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
def test_repair_and_resample_with_matched_budgets(tmp_path: Path, wire: str) -> None:
    problems = write_problems(tmp_path / "problems.json")
    output = tmp_path / "improved.json"
    scripted.samples = {}  # type: ignore[attr-defined]
    with FakeLLMServer(scripted) as server:
        model, base = (("claude-sonnet-4-6", server.anthropic_base_url) if wire == "anthropic"
                       else ("gpt-4o", server.openai_base_url))
        run("iterative_repair.py", "--solution-file", str(problems), "--model-name", model, "--base-url", base,
            "--strategy", "repair,resample", "--max-iterations", "3", "--no-cache", "--no-progress", "--executor", "local",
            "--timeout", "5", "--output-file", str(output), cwd=tmp_path)
        assert {r.api for r in server.requests} == {wire}
        resample_requests = [r for r in server.requests if "repairs Python 3" not in r.system]
    summary = json.loads((tmp_path / "summary_improved.json").read_text())
    assert summary["strategies"] == ["repair", "resample"]
    by_tag = {p["problem_id"]: p for p in summary["problems"]}
    # budgets, from the recorded tokens: SUM repaired in 2 calls (700 tokens), MAX in 1 (350), ECHO needs none
    repair_tokens = {pid: e["input_tokens"] + e["output_tokens"] for pid, e in by_tag.items()}
    assert repair_tokens == {0: 700, 1: 350, 2: 0}
    for pid, e in by_tag.items():
        r = e["resample"]
        spent = r["input_tokens"] + r["output_tokens"]
        assert r["budget_tokens"] == repair_tokens[pid] and spent <= r["budget_tokens"]
    # SUM: the second sample is right (280 tokens, target reached); MAX: never right, so the budget is
    # spent up to the last whole sample (2 x 140 = 280 of 350: a third would pass it); ECHO: nothing
    assert [(by_tag[i]["resample"]["stopped"], len(by_tag[i]["resample"]["iterations"]) - 1) for i in range(3)] == [
        ("target", 2), ("budget", 2), ("target", 0)]
    assert by_tag[1]["resample"]["budget_tokens"] - 280 < sum(SAMPLE_COST)
    assert summary["strategy_totals"] == {
        "repair": {"problems": 3, "iterations": 3, "model_calls": 3, "input_tokens": 900, "output_tokens": 150},
        "resample": {"problems": 3, "iterations": 4, "model_calls": 4, "input_tokens": 400, "output_tokens": 160}}
    assert len(resample_requests) == 4
    assert all("PROBLEM-" in r.last_user_text and "Current program" not in r.last_user_text for r in resample_requests)
    records = json.loads(output.read_text())
    assert "print(a + b)" in records[0]["resampled_sample_solution"] and "print(a + b)" in records[0]["improved_sample_solution"]
    assert "print(0)" not in records[1]["improved_sample_solution"]

    report = tmp_path / "report.html"
    proc = run("compare_model_improvements.py", "--original-file", str(problems), "--improved-file", str(output),
               "--executor", "local", "--timeout", "5", "--output-file", str(tmp_path / "c.json"), "--report", str(report),
               cwd=ROOT)
    d = json.loads((tmp_path / "c.json").read_text())
    curves = d["pass_vs_tokens"]
    # repair: ECHO passes from the start; MAX at 350 tokens, SUM at 700. Resample: SUM at 280, MAX never.
    assert [(p["tokens"], p["strict"]) for p in curves["repair"]] == [(0, 1 / 3), (350, 2 / 3), (700, 1.0)]
    assert [(p["tokens"], p["strict"]) for p in curves["resample"]] == [(0, 1 / 3), (140, 1 / 3), (280, 2 / 3)]
    v = d["repair_vs_resample"]
    assert [(p["problem_id"], p["budget_tokens"], p["difference"]) for p in v["per_problem"]] == [
        (0, 700, 0.0), (1, 350, 1.0), (2, 0, 0.0)]
    assert (v["repair_better"], v["resample_better"], v["ties"]) == (1, 0, 2)
    assert v["tokens"] == {"repair": 1050, "resample": 560, "resample_over_repair": 560 / 1050}
    assert "Repair vs resample:" in proc.stdout
    page = report.read_text()
    assert '<figure id="fig-pass-vs-tokens">' in page and 'id="repair-vs-resample"' in page
    png = re.search(r'<figure id="fig-pass-vs-tokens"><img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert png
    colours = {c for _, c in Image.open(io.BytesIO(base64.b64decode(png.group(1)))).convert("RGB").getcolors(1 << 20)}
    assert (215, 48, 39) in colours and (69, 117, 180) in colours  # both curves are drawn: repair red, resample blue
    if wire == "anthropic":  # one browser run is enough: the page does not depend on the wire format
        dom = run_chromium(report.resolve().as_uri(), tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        body = re.search(r"<body[^>]*>", dom.stdout)
        assert body and 'data-plots-loaded="true"' in body.group(0), dom.stdout[:500]
        assert '<figure id="fig-pass-vs-tokens">' in dom.stdout and '<figure id="fig-pass-vs-output-tokens">' in dom.stdout


def test_resample_alone_needs_a_budget(tmp_path: Path) -> None:
    problems = write_problems(tmp_path / "problems.json")
    proc = subprocess.run([sys.executable, str(ROOT / "iterative_repair.py"), "--solution-file", str(problems),
                           "--model-name", "claude-sonnet-4-6", "--base-url", "http://127.0.0.1:9", "--strategy", "resample"],
                          cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: --strategy resample needs --token-budget N (or use --strategy repair,resample to spend the repair's "
        "tokens on each problem)"]


# --------------------------------------------------------------------------------------------
# Timing flakes
# --------------------------------------------------------------------------------------------

# Sleeps 0.3 s (passes, but above half the 0.5 s limit, so it is rechecked) or 0.9 s (timeout),
# by a fair coin from the kernel's entropy (forked workers share Python's random state).
FLAKY = "import os, time\ntime.sleep(0.3 if os.urandom(1)[0] % 2 else 0.9)\nprint(input())"
LOOP = "while True:\n    pass"
RECHECKS = "10"  # a flaky test looks stable with probability 2 / 2**11 per test


def test_recheck_catches_a_timing_flake_and_not_an_infinite_loop(tmp_path: Path) -> None:
    records = [{"problem": "FLAKY: echo", "input_output": {"inputs": ["a\n", "b\n"], "outputs": ["a\n", "b\n"]},
                "flaky_solution": fenced(FLAKY), "loop_solution": fenced(LOOP), "fast_solution": fenced("print(input())")}]
    path = tmp_path / "flake.json"
    path.write_text(json.dumps(records))
    out = tmp_path / "out.json"
    proc = run("model_feedback.py", "--solution-file", str(path), "--timeout", "0.5", "--recheck-timeouts", RECHECKS,
               "--output", str(out), "--quiet", cwd=ROOT)
    d = json.loads(out.read_text())
    results = {p["model_key"]: p["results"] for p in d["files"][0]["problems"]}
    assert any(r["stable"] is False for r in results["flaky_solution"]), results["flaky_solution"]
    for r in results["flaky_solution"]:
        assert r["recheck"]["runs"] == 10 and sum(r["recheck"]["verdicts"].values()) == 10
    assert all(r["verdict"] == "timeout" and r["stable"] is True and r["recheck"]["verdicts"] == {"timeout": 10}
               for r in results["loop_solution"])
    assert all("stable" not in r for r in results["fast_solution"])  # fast passes are not rechecked
    flips = d["summary"]["flip_rate"]
    assert flips["tests_rechecked"] == 4 and flips["reruns"] == 40 and flips["unstable_tests"] >= 1
    assert flips["rate"] == flips["flips"] / 40 and flips["ci"][0] <= flips["rate"] <= flips["ci"][1]
    assert flips["machine"]["cpu_count"] >= 1 and len(flips["machine"]["load_average"]) == 3
    assert "Timing rechecks: 4 test(s) rerun 10 more time(s)" in proc.stdout


def test_repair_loop_rechecks_its_evaluations(tmp_path: Path) -> None:
    """The starting program is flaky, the model answers with an infinite loop: the summary's
    initial block marks the flaky test unstable, the loop's stable, and the summary has a flip rate."""
    # test 2 expects what no echo prints, so the starting program never reaches the target
    records = [{"problem": "PROBLEM-FLAKY: echo", "input_output": {"inputs": ["a\n", "b\n"], "outputs": ["a\n", "not b\n"]},
                "sample_solution": fenced(FLAKY)}]
    problems = write_problems(tmp_path / "problems.json", records)
    with FakeLLMServer(lambda request: FakeReply(fenced(LOOP))) as server:
        run("iterative_repair.py", "--solution-file", str(problems), "--model-name", "claude-sonnet-4-6",
            "--base-url", server.anthropic_base_url, "--max-iterations", "1", "--no-cache", "--no-progress",
            "--executor", "local", "--timeout", "0.5", "--recheck-timeouts", RECHECKS, "--output-file",
            str(tmp_path / "improved.json"), cwd=tmp_path)
    summary = json.loads((tmp_path / "summary_improved.json").read_text())
    [entry] = summary["problems"]
    initial = entry["initial"]["rechecked"]
    assert initial[0]["test"] == 1 and initial[0]["stable"] is False and initial[0]["runs"] == 10
    loop = entry["iterations"][1]
    assert loop["rechecked"] == [{"test": t, "verdict": "timeout", "stable": True, "runs": 10, "changed": 0,
                                  "verdicts": {"timeout": 10}} for t in (1, 2)]
    flips = summary["flip_rate"]
    assert flips["tests_rechecked"] == len(initial) + 2 and flips["unstable_tests"] >= 1 and flips["rate"] > 0
    assert entry["recheck"]["tests_rechecked"] == flips["tests_rechecked"]
