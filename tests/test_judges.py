"""Judges (judges.py): hand-made cases from each harness's rules, the cases where the presets
disagree, checker programs really run in the sandbox (a hostile checker is an error of the run),
re-judging without executing anything (counted) and the audit, down to model_feedback.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import judges
import librarybench_common as common
from conftest import run_cli, shared_data
from errors import ConfigError, ExecutionError

PRESETS = ("exact", "tokens", "float", "case-insensitive", "livecodebench", "codecontests", "apps", "sandboxfusion")

# (expected, actual) -> the presets that accept it; every other preset must reject it.
DISAGREEMENTS: list[tuple[str, str, set[str]]] = [
    # a permuted output: only APPS' token sets accept it
    ("1 2 3\n", "3 2 1\n", {"apps"}),
    # 1.0 vs 1.00: numbers, not text
    ("1.0\n", "1.00\n", {"float", "livecodebench", "codecontests", "apps", "sandboxfusion"}),
    # YES vs yes: case
    ("YES\n", "yes\n", {"case-insensitive", "codecontests", "sandboxfusion"}),
    # a trailing blank line: every judge ignores it
    ("a\n", "a\n\n", set(PRESETS)),
    # a blank line inside the output: token judges and APPS' blank-line filter accept it
    ("a\nb\n", "a\n\nb\n", {"tokens", "float", "codecontests", "apps"}),
    # a leading blank line: exact strips trailing whitespace only
    ("a\n", "\na\n", {"tokens", "float", "livecodebench", "codecontests", "apps", "sandboxfusion"}),
    # scientific notation
    ("1000\n", "1e3\n", {"float", "livecodebench", "codecontests", "apps", "sandboxfusion"}),
    # within 1e-6 / 1e-5 but not the same decimal (LiveCodeBench has no tolerance)
    ("0.333333\n", "0.3333333\n", {"float", "codecontests", "apps", "sandboxfusion"}),
    # 0.3331 vs 0.3334: only APPS' last rule (rounding to 3 decimals) accepts it
    ("0.3331\n", "0.3334\n", {"apps"}),
    # integers beyond double precision: exact decimals see the difference, doubles do not
    ("10000000000000000\n", "10000000000000001\n", {"codecontests", "apps", "sandboxfusion"}),
    # two spaces between numbers: per-line decimal lists and token judges accept it
    ("1 2\n", "1  2\n", {"tokens", "float", "livecodebench", "codecontests", "apps"}),
    # a repeated line: APPS compares sets of lines, so a wrong answer passes
    ("1\n2\n", "1\n2\n2\n", {"apps"}),
    # a missing line of a YES/NO answer, as on the real data (o3-mini search problem 1)
    ("NO\nYES\nYES\nYES\nNO\n", "NO\nYES\nYES\nNO\n", {"apps"}),
    # SandboxFusion's tolerance is relative to the expected value (floor 1e-10); the others' absolute
    ("0\n", "1e-12\n", {"float", "codecontests", "apps"}),
    ("0\n", "1e-16\n", {"float", "codecontests", "apps", "sandboxfusion"}),
    ("0\n", "1e-7\n", {"float", "codecontests", "apps"}),  # APPS' atol is 1e-8 but 3-decimal rounding saves it
    ("1000000\n", "1000005\n", {"apps", "sandboxfusion"}),  # relative 5e-6; integers stay exact elsewhere
    # CodeContests: inf vs inf compares as numbers once the lists differ, and inf - inf is not < 1e-5
    ("inf 1\n", "inf 1.0\n", {"float", "livecodebench", "apps"}),
    # CodeContests lowercases ASCII letters only: É vs é stays a difference
    ("CAFÉ\n", "café\n", {"case-insensitive", "sandboxfusion"}),
]


@pytest.mark.parametrize(("expected", "actual", "accepting"), DISAGREEMENTS)
def test_presets_disagree_exactly_as_their_rules_say(expected: str, actual: str, accepting: set[str]) -> None:
    decided = {name: judges.get_judge(name)(expected, actual, {"stdin": "", "stdout": expected})
               for name in PRESETS}
    assert {n for n, (ok, _) in decided.items() if ok} == accepting
    for name, (ok, reason) in decided.items():
        assert reason, name  # every decision says why


def test_exact_is_the_sandbox_rule() -> None:
    from sandbox import outputs_match

    cases = [("a b\n", "a b   \n\n\n"), ("a\n", "a"), ("a\n", " a"), ("1\n2", "1\n 2"), ("", "\n\n"), ("x\r\n", "x\n")]
    for expected, actual in cases:
        assert judges.get_judge("exact")(expected, actual, {})[0] == outputs_match(actual, expected)


def test_reasons_say_where_and_why() -> None:
    assert judges.get_judge("exact")("1\n2\n3\n", "1\n5\n3\n", {})[1] == "line 2 differs: expected '2', got '5'"
    assert "expected 3 lines, got 2" in judges.get_judge("exact")("1\n2\n3\n", "1\n2\n", {})[1]
    ok, reason = judges.get_judge("float")("1 0.3333333\n", "1 0.33333\n", {})
    assert not ok and reason.startswith("token 2 differs: expected '0.3333333', got '0.33333', beyond the tolerance")
    assert "abs 1e-06" in reason
    assert "mismatched output length" in judges.get_judge("livecodebench")("1\n2\n", "1\n", {})[1]
    assert judges.get_judge("apps")("3 2 1", "1 2 3", {})[1].startswith("apps: the same set of token sets")
    assert judges.get_judge("codecontests")("a b", "a b c", {})[1] == "expected 2 tokens, got 3"


def test_float_tolerances_are_parameters() -> None:
    loose = judges.get_judge("float", abs_tol=1e-2, rel_tol=0)
    assert loose("3.14159", "3.14", {})[0]
    assert not loose("3.14159", "3.13", {})[0]
    relative = judges.get_judge("float", abs_tol=0, rel_tol=1e-3)
    assert relative("1000000.0", "1000900", {})[0] and not relative("1", "1.01", {})[0]
    assert not relative("1000000", "1000900", {})[0]  # two integers compare exactly
    assert not judges.get_judge("float")("nan", "0", {})[0] and judges.get_judge("float")("nan", "nan", {})[0]
    assert not judges.get_judge("float")("1", "1_0", {})[0]  # Python's underscores are not numbers here
    assert loose.spec.as_dict() == {"name": "float", "abs_tol": 0.01, "rel_tol": 0.0}
    for bad in ({"abs_tol": -1}, {"rel_tol": "x"}, {"eps": 1}):
        with pytest.raises(ConfigError):
            judges.get_judge("float", **bad)


def test_registry_and_specs() -> None:
    assert set(PRESETS) | {"checker"} == set(judges.JUDGE_NAMES)
    with pytest.raises(ConfigError, match="unknown judge 'fuzzy'"):
        judges.get_judge("fuzzy")
    with pytest.raises(ConfigError, match="takes no parameters"):
        judges.get_judge("apps", abs_tol=1)
    with pytest.raises(ConfigError, match="needs a checker program"):
        judges.get_judge("checker")
    assert judges.get_judge("livecodebench").spec.as_dict() == {"name": "livecodebench"}
    judge, from_record = judges.judge_from_record({"judge": {"name": "float", "abs_tol": 0.5}}, judges.get_judge("exact"))
    assert from_record and judge("1", "1.4", {})[0]
    assert judges.judge_from_record({"name": "x"}, judges.get_judge("apps")) == (judges.get_judge("apps"), False)
    with pytest.raises(ConfigError):
        judges.judge_from_record({"judge": 3}, judges.get_judge("exact"))


def result(stdout: str, expected: str, *, exit_code: int = 0, verdict: str = "wrong_answer") -> dict[str, Any]:
    return {"code": "", "test": {"stdin": "", "stdout": expected}, "passed": verdict == "passed",
            "exec_output": {"run_output": {"stdout": stdout, "stderr": "", "exit_code": exit_code,
                                           "timeout_expired": verdict == "timeout", "elapsed_time": 0.0},
                            "compile_output": None},
            "uncaught_exception": "None", "verdict": verdict}


def test_only_runs_that_ended_normally_are_rejudged() -> None:
    apps = judges.get_judge("apps")
    flipped = judges.judge_pure(apps, result("2 1\n", "1 2\n"))
    assert (flipped["passed"], flipped["verdict"], flipped["judge"]) == (True, "passed", {"name": "apps"})
    for crashed in (result("1 2\n", "1 2\n", exit_code=1, verdict="runtime_error"),
                    result("1 2\n", "1 2\n", exit_code=None, verdict="timeout"),
                    result("1 2\n", "1 2\n", verdict="output_limit")):
        kept = judges.judge_pure(apps, crashed)
        assert (kept["verdict"], kept["passed"], kept["judge"]) == (crashed["verdict"], False, {"name": "apps"})
        assert "judge_reason" not in kept


def test_feedback_explains_a_tolerant_judges_decision() -> None:
    judged = judges.rejudge([result("0.33333\n", "0.3333333\n")], judges.get_judge("float"))
    text = common.format_feedback(judged, [judged[0]["test"]], 0, 1)
    assert "Judge (float): token 1 differs: expected '0.3333333', got '0.33333', beyond the tolerance" in text
    assert "First difference:" not in text  # the judge's reason is not a differing line
    exact = judges.rejudge([result("0.33333\n", "0.3333333\n")], judges.get_judge("exact"))
    assert "First difference: line 1: expected '0.3333333', got '0.33333'" in common.format_feedback(
        exact, [exact[0]["test"]], 0, 1)  # the exact judge's feedback is unchanged


def test_default_judge_is_exact_and_recorded(lb_local_executor: Any) -> None:
    tests = [{"stdin": "3\n", "stdout": "3\n"}, {"stdin": "4\n", "stdout": "4.0\n"}]
    results = asyncio.run(common.run_tests("print(input())", tests, executor=lb_local_executor))
    assert [r["verdict"] for r in results] == ["passed", "wrong_answer"]
    assert all(r["judge"] == {"name": "exact"} for r in results)
    lenient = asyncio.run(common.run_tests("print(input())", tests, executor=lb_local_executor,
                                           judge=judges.get_judge("float")))
    assert [r["verdict"] for r in lenient] == ["passed", "passed"]


def test_remote_results_are_judged_too(lb_execution_server: str) -> None:
    remote = common.RemoteExecutor(lb_execution_server)

    async def run() -> list[dict[str, Any]]:
        try:
            return await common.run_tests("print('YES')", [{"stdin": "", "stdout": "yes\n"}], executor=remote,
                                          judge=judges.get_judge("codecontests"))
        finally:
            await remote.aclose()

    [judged] = asyncio.run(run())
    assert (judged["verdict"], judged["judge"]["name"]) == ("passed", "codecontests")


# --------------------------------------------------------------------------------------------
# Checker programs
# --------------------------------------------------------------------------------------------

# "Print a permutation of 1..n with no fixed point": many answers are right.
DERANGEMENT_CHECKER = '''
import sys
n = int(open(sys.argv[1]).read())
out = open(sys.argv[2]).read().split()
answer = open(sys.argv[3]).read().split()  # the expected answer: only its length is used
if sorted(out) != [str(i) for i in range(1, n + 1)] or len(out) != len(answer):
    print("not a permutation of 1..n", file=sys.stderr)
    sys.exit(1)
if any(int(v) == i for i, v in enumerate(out, 1)):
    print("a fixed point", file=sys.stderr)
    sys.exit(1)
'''
ROTATE = "n = int(input())\nprint(*range(2, n + 1), 1)"            # 2 3 ... n 1: valid
SWAP_PAIRS = "n = int(input())\nprint(*[i + 1 if i % 2 else i - 1 for i in range(1, n + 1)])"  # 2 1 4 3: valid for even n
IDENTITY = "n = int(input())\nprint(*range(1, n + 1))"                # fixed points: wrong
TESTS = [{"stdin": f"{n}\n", "stdout": " ".join(map(str, [*range(2, n + 1), 1])) + "\n"} for n in (2, 4, 6)]


def checker(source: str, timeout: float = 10) -> judges.Judge:
    return judges.get_judge("checker", source=source, timeout=timeout)


def run_with(code: str, judge: judges.Judge, executor: Any) -> list[dict[str, Any]]:
    return asyncio.run(common.run_tests(code, TESTS, executor=executor, judge=judge))


def test_checker_accepts_other_valid_answers_that_exact_rejects(lb_local_executor: Any) -> None:
    by_checker = run_with(SWAP_PAIRS, checker(DERANGEMENT_CHECKER), lb_local_executor)
    assert [r["verdict"] for r in by_checker] == ["passed"] * 3
    assert by_checker[0]["judge"]["name"] == "checker" and by_checker[0]["judge_reason"] == "checker accepted"
    by_exact = run_with(SWAP_PAIRS, judges.get_judge("exact"), lb_local_executor)
    assert [r["verdict"] for r in by_exact] == ["passed", "wrong_answer", "wrong_answer"]  # n=2: 2 1 is the rotation
    assert [r["verdict"] for r in run_with(ROTATE, checker(DERANGEMENT_CHECKER), lb_local_executor)] == ["passed"] * 3
    wrong = run_with(IDENTITY, checker(DERANGEMENT_CHECKER), lb_local_executor)
    assert [r["verdict"] for r in wrong] == ["wrong_answer"] * 3
    assert wrong[0]["judge_reason"] == "checker rejected (exit 1): a fixed point"


@pytest.mark.parametrize(("source", "message"), [
    ("while True:\n    pass\n", "did not finish within 2 s"),
    ("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", "output limit"),
    ("raise ValueError('broken checker')\n", "checker failed (exit 3): ValueError: broken checker"),
    ("import sys\nsys.exit(7)\n", "checker failed (exit 7)"),
])
def test_a_hostile_or_broken_checker_is_an_error_of_the_run(lb_local_executor: Any, source: str, message: str) -> None:
    with pytest.raises(ExecutionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_with(ROTATE, checker(source, timeout=2), lb_local_executor)


def test_a_checker_cannot_read_the_toolkits_secrets(lb_local_executor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LB_JUDGE_CANARY", "secret-canary-123")
    snoop = ("import os, sys, glob\nseen = ' '.join(os.environ.values())\n"
             "for p in glob.glob('/proc/*/environ'):\n"
             "    try:\n        seen += open(p, 'rb').read().decode(errors='replace')\n"
             "    except OSError:\n        pass\n"
             "sys.exit(0 if 'secret-canary-123' in seen else 1)\n")
    assert [r["verdict"] for r in run_with(ROTATE, checker(snoop), lb_local_executor)] == ["wrong_answer"] * 3


def write_problem(tmp_path: Path, code: str, record_judge: Any = None) -> Path:
    record: dict[str, Any] = {"name": "derangement",
                              "input_output": json.dumps({"inputs": [t["stdin"] for t in TESTS],
                                                          "outputs": [t["stdout"] for t in TESTS]}),
                              "m_solution": f"```python\n{code}\n```"}
    if record_judge is not None:
        record["judge"] = record_judge
    path = tmp_path / "problems.json"
    path.write_text(json.dumps([record]), encoding="utf-8")
    return path


def test_cli_checker_flag_record_override_and_hostile_checker(tmp_path: Path) -> None:
    (tmp_path / "derangement_checker.py").write_text(DERANGEMENT_CHECKER, encoding="utf-8")
    (tmp_path / "loop.py").write_text("while True:\n    pass\n", encoding="utf-8")
    problems = write_problem(tmp_path, SWAP_PAIRS)
    out = tmp_path / "out.json"
    proc = run_cli("--solution-file", str(problems), "--judge", "checker", "--checker",
                   str(tmp_path / "derangement_checker.py"), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "judge: checker (path=" in proc.stdout
    doc = json.loads(out.read_text())
    problem = doc["files"][0]["problems"][0]
    assert (problem["passed"], problem["total"], problem["judge"]["name"]) == (3, 3, "checker")
    assert doc["judge"]["name"] == "checker" and doc["summary"]["judge"]["name"] == "checker"

    exact = run_cli("--solution-file", str(problems), "--output", str(out))
    assert json.loads(out.read_text())["files"][0]["problems"][0]["passed"] == 1, exact.stderr

    # the record's own judge (path relative to the solution file) overrides the run's exact
    overridden = write_problem(tmp_path, SWAP_PAIRS, {"name": "checker", "path": "derangement_checker.py"})
    proc = run_cli("--solution-file", str(overridden), "--output", str(out))
    problem = json.loads(out.read_text())["files"][0]["problems"][0]
    assert proc.returncode == 0 and problem["passed"] == 3 and problem["judge_from_record"] is True

    hostile = write_problem(tmp_path, SWAP_PAIRS, {"name": "checker", "path": "loop.py", "timeout": 1})
    proc = run_cli("--solution-file", str(hostile), "--output", str(out))
    problem = json.loads(out.read_text())["files"][0]["problems"][0]
    assert proc.returncode == 1
    assert (problem["status"], problem["passed"], problem["total"]) == ("error", None, None)
    assert "checker did not finish within 1 s" in problem["error"]
    assert [line for line in proc.stderr.splitlines() if line.startswith("error: ")] == [f"error: {problem['error']}"]


def test_cli_judge_flag_errors_are_one_line(tmp_path: Path) -> None:
    problems = write_problem(tmp_path, ROTATE)
    for args, message in [(["--judge", "apps", "--abs-tol", "1e-3"], "--abs-tol and --rel-tol apply to --judge float only"),
                          (["--judge", "checker"], "--judge checker needs --checker FILE"),
                          (["--judge", "checker", "--checker", str(tmp_path / "none.py")], "cannot read checker"),
                          (["--judges", "exact"], "--judges needs at least two judge names"),
                          (["--rejudge", str(tmp_path / "missing.json")], "cannot read results file")]:
        proc = run_cli("--solution-file", str(problems), *args)
        errors = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(errors) == 1 and message in errors[0], (args, proc.stderr)


# --------------------------------------------------------------------------------------------
# Re-judging and the audit
# --------------------------------------------------------------------------------------------

LENIENT_CASES = {"inputs": ["1 2 3\n", "0.5\n", "yes\n", "7\n"], "outputs": ["3 2 1\n", "0.50\n", "YES\n", "7\n"]}
REVERSER = "```python\nx = input().split()\nprint(' '.join(x[::-1]) if len(x) > 1 else x[0])\n```"
ECHO_SORTED = "```python\nprint(' '.join(sorted(input().split())))\n```"


def lenient_file(tmp_path: Path) -> Path:
    records = [{"name": "reverse", "input_output": json.dumps(LENIENT_CASES), "a_solution": REVERSER},
               {"name": "sorted", "input_output": json.dumps(LENIENT_CASES), "a_solution": ECHO_SORTED}]
    path = tmp_path / "lenient.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def verdicts_of(doc: dict[str, Any]) -> list[list[str]]:
    return [[r["verdict"] for r in p["results"]] for f in doc["files"] for p in f["problems"]]


def test_rejudge_equals_a_fresh_run_and_executes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         no_provider_env: None) -> None:
    import model_feedback
    import rejudge
    import sandbox

    executions = {"n": 0}
    real = sandbox.LocalExecutor.run_tests

    async def counting(self: Any, code: str, tests: list[Any], **kw: Any) -> Any:
        executions["n"] += len(tests)
        return await real(self, code, tests, **kw)

    monkeypatch.setattr(sandbox.LocalExecutor, "run_tests", counting)  # a counter around the real executor
    path = lenient_file(tmp_path)
    for name in ("exact", "apps"):
        assert model_feedback.main(["--solution-file", str(path), "--quiet", "--judge", name,
                                    "--output", str(tmp_path / f"{name}.json")]) == 0
    assert executions["n"] == 16  # the counter sees real runs: 2 problems x 4 tests x 2 runs
    fresh = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in ("exact", "apps")}
    assert verdicts_of(fresh["exact"]) != verdicts_of(fresh["apps"])

    executions["n"] = 0
    for source, target in (("exact", "apps"), ("apps", "exact")):
        out = tmp_path / f"re_{target}.json"
        assert model_feedback.main(["--rejudge", str(tmp_path / f"{source}.json"), "--judge", target, "--quiet",
                                    "--output", str(out)]) == 0
        rejudged = json.loads(out.read_text())
        assert verdicts_of(rejudged) == verdicts_of(fresh[target])
        assert rejudged["summary"]["passed"] == fresh[target]["summary"]["passed"]
        assert rejudged["summary"]["judge"] == {"name": target}
        assert all(r["judge"] == {"name": target} for f in rejudged["files"] for p in f["problems"] for r in p["results"])
    assert executions["n"] == 0
    # the same from Python
    problem = fresh["exact"]["files"][0]["problems"][0]  # compact: the tests are put back from the file
    results = rejudge.with_tests(problem["results"], problem["code"], str(path), 0)
    assert [r["verdict"] for r in judges.rejudge(results, judges.get_judge("apps"))] == verdicts_of(fresh["apps"])[0]


def test_audit_counts_flips_per_pair(tmp_path: Path, no_provider_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    import model_feedback

    path = lenient_file(tmp_path)
    out = tmp_path / "audit.json"
    assert model_feedback.main(["--solution-file", str(path), "--quiet", "--judges",
                                "exact,codecontests,apps,sandboxfusion", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    report = json.loads(out.read_text())["audit"]
    # reverse prints 3 2 1 (right), 0.5 for 0.50, yes for YES, 7 (right);
    # sorted prints 1 2 3 for 3 2 1 (a permutation), 0.5 for 0.50, yes for YES, 7 (right)
    assert report["passed"] == {"exact": 3, "codecontests": 7, "apps": 6, "sandboxfusion": 7}
    assert report["fully_passing"] == {"exact": 0, "codecontests": 1, "apps": 0, "sandboxfusion": 1}
    assert report["pass_at_1"]["codecontests"] == 0.5
    pairs = {(p["first"], p["second"]): p for p in report["pairs"]}
    assert pairs[("exact", "apps")]["verdicts_changed"] == 3 and pairs[("exact", "apps")]["problems_changed"] == 0
    assert pairs[("exact", "codecontests")]["problems_changed"] == 1
    flips = {(f["problem"].split(" | ")[1], f["test"]) for f in pairs[("codecontests", "apps")]["flips"]}
    assert flips == {("problem 0", 3), ("problem 1", 1), ("problem 1", 3)}  # case vs permutation
    assert "exact vs apps" in text and "problem 1 | a_solution test #1: wrong_answer -> passed" in text


def test_apps_accepts_a_missing_line_on_the_real_data(tmp_path: Path) -> None:
    out = tmp_path / "real.json"
    proc = run_cli("--solution-file", str(shared_data("o3mini_search_solutions.json")), "--problem-id", "1",
                   "--extract", "first", "--quiet", "--judges", "exact,livecodebench,codecontests,apps",
                   "--full-results", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    pairs = {(p["first"], p["second"]): p for p in doc["audit"]["pairs"]}
    assert pairs[("exact", "livecodebench")]["verdicts_changed"] == 0
    flipped = {f["test"] for f in pairs[("exact", "apps")]["flips"]}
    assert 5 in flipped and all(f["exact"] == "wrong_answer" for f in pairs[("exact", "apps")]["flips"])
    result5 = doc["files"][0]["problems"][0]["results"][4]
    expected, actual = result5["test"]["stdout"], result5["exec_output"]["run_output"]["stdout"]
    assert len(actual.split()) < len(expected.split())  # a wrong answer (a line missing) that APPS accepts


def test_compare_runs_both_programs_under_the_chosen_judge(tmp_path: Path, no_provider_env: None) -> None:
    import compare_model_improvements as cmi

    cases = json.dumps({"inputs": ["ab\n", "cd\n"], "outputs": ["AB\n", "CD\n"]})
    original = [{"name": "upper", "input_output": cases, "m_solution": "```python\nprint(input().lower())\n```"}]
    improved = [{**original[0], "improved_m_solution": "```python\nprint(input().title())\n```"}]
    (tmp_path / "o.json").write_text(json.dumps(original), encoding="utf-8")
    (tmp_path / "i.json").write_text(json.dumps(improved), encoding="utf-8")
    rows = {}
    for name in ("exact", "case-insensitive"):
        out = tmp_path / f"{name}.json"
        assert cmi.main(["--original-file", str(tmp_path / "o.json"), "--improved-file", str(tmp_path / "i.json"),
                         "--quiet", "--no-summary", "--judge", name, "--output-file", str(out)]) == 0
        doc = json.loads(out.read_text())
        rows[name] = doc["problem_details"][0]
        assert json.dumps(doc).count(f'"judge": {{"name": "{name}"}}') >= 1
    assert (rows["exact"]["original_passed"], rows["exact"]["improved_passed"]) == (0, 0)
    assert (rows["case-insensitive"]["original_passed"], rows["case-insensitive"]["improved_passed"]) == (2, 2)


@pytest.mark.parametrize(("flags", "record_judge", "passed"), [
    ([], None, 0), (["--judge", "case-insensitive"], None, 2), ([], "case-insensitive", 2)])
def test_repair_loop_scores_with_the_run_or_record_judge(tmp_path: Path, no_provider_env: None,
                                                        capsys: pytest.CaptureFixture[str], flags: list[str],
                                                        record_judge: str | None, passed: int) -> None:
    import iterative_repair

    record: dict[str, Any] = {"name": "upper", "problem": "Print s in upper case.",
                              "input_output": json.dumps({"inputs": ["ab\n", "cd\n"], "outputs": ["AB\n", "CD\n"]}),
                              "sample_solution": "```python\nprint(input().lower())\n```"}
    if record_judge:
        record["judge"] = record_judge
    problems = tmp_path / "problems.json"
    problems.write_text(json.dumps([record]), encoding="utf-8")
    # no model call is made (--max-iterations 0): the starting program is only scored
    assert iterative_repair.main(["--solution-file", str(problems), "--max-iterations", "0", "--no-cache",
                                  "--no-progress", "--executor", "local", "--base-url", "http://127.0.0.1:9/v1",
                                  "--model-name", "local-model", *flags]) == 0
    summary = json.loads((tmp_path / "summary_improved_problems.json").read_text())
    assert summary["problems"][0]["initial"]["passed"] == passed
    assert f"judge: {'case-insensitive' if flags else 'exact'}" in capsys.readouterr().out


def test_rejudge_with_a_checker_runs_only_the_checker(tmp_path: Path) -> None:
    (tmp_path / "derangement_checker.py").write_text(DERANGEMENT_CHECKER, encoding="utf-8")
    (tmp_path / "crash.py").write_text("raise RuntimeError('checker bug')\n", encoding="utf-8")
    problems = write_problem(tmp_path, SWAP_PAIRS)
    exact, out = tmp_path / "exact.json", tmp_path / "out.json"
    assert run_cli("--solution-file", str(problems), "--output", str(exact)).returncode == 0
    proc = run_cli("--rejudge", str(exact), "--judge", "checker", "--checker", str(tmp_path / "derangement_checker.py"),
                   "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    problem = json.loads(out.read_text())["files"][0]["problems"][0]
    assert (problem["passed"], problem["total"]) == (3, 3)
    assert [r["exec_output"] for r in problem["results"]] == [
        r["exec_output"] for r in json.loads(exact.read_text())["files"][0]["problems"][0]["results"]]
    proc = run_cli("--rejudge", str(exact), "--judge", "checker", "--checker", str(tmp_path / "crash.py"),
                   "--output", str(out))
    problem = json.loads(out.read_text())["files"][0]["problems"][0]
    assert proc.returncode == 1 and problem["status"] == "error" and "RuntimeError: checker bug" in problem["error"]


def test_a_checker_timeout_that_is_no_number_is_a_config_error() -> None:
    """A record's checker with ``"timeout": "abc"`` must be that problem's error, never a crash of the
    run's fingerprint (``record_checker_specs`` catches ConfigError only)."""
    with pytest.raises(ConfigError, match="timeout must be a number"):
        judges.get_judge("checker", source="print('ok')\n", timeout="abc")
    assert judges.record_checker_specs([{"judge": {"name": "checker", "path": "c.py", "timeout": "abc"}}], "/nonexistent") == []
