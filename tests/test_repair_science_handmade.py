"""Repair science on a hand-made case, every figure computed by hand: pass rate against tokens,
repair against resampling at equal tokens, the memorisation flags and the headline without them,
and the improvements resting on unstable verdicts (from the summary's rechecks).

Three problems, key ``sample_solution``; the model was shown the tests listed (``--feedback-tests``):

| # | tests (shown)   | original  | repair (kept program: tokens)                      | resample (kept: tokens, budget)            |
|---|-----------------|-----------|----------------------------------------------------|--------------------------------------------|
| 0 | 4 (#1, #2)      | a-b: 0/4  | it1 dict of the shown inputs: 120 -> 2/4, held 0/2 | it1 a*b not kept (60), it2 a+b: 120 -> 4/4 |
| 1 | 2 (#1)          | n*3: 0/2  | it1 n*2: 100 -> 2/2                                | it1 n+2, it2 n*n: none kept (100): 0/2     |
| 2 | 2 (#1)          | upper 2/2 | nothing to do (0 tokens)                           | budget 0                                   |
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import memorisation  # noqa: E402
import token_curves  # noqa: E402
from timing_recheck import FlipTally, wilson_interval  # noqa: E402

KEY = "sample_solution"
SUB = "a, b = map(int, input().split())\nprint(a - b)"
MUL = "a, b = map(int, input().split())\nprint(a * b)"
ADD = "a, b = map(int, input().split())\nprint(a + b)"
DICT = "s = input().strip()\nprint({'1 2': 3, '10 20': 30}.get(s, -1))"
TRIPLE, DOUBLE, PLUS2, SQUARE = ("print(int(input()) * 3)", "print(int(input()) * 2)", "print(int(input()) + 2)",
                                 "n = int(input())\nprint(n * n)")
UPPER = "print(input().upper())"


def fenced(code: str) -> str:
    return f"```python\n{code}\n```"


def io(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    return {"inputs": [i for i, _ in pairs], "outputs": [o for _, o in pairs]}


ORIGINAL = [
    {"name": "Sum", "problem": "Print a+b.", KEY: fenced(SUB),
     "input_output": io([("1 2\n", "3\n"), ("10 20\n", "30\n"), ("4 5\n", "9\n"), ("7 8\n", "15\n")])},
    {"name": "Double", "problem": "Print 2n.", KEY: fenced(TRIPLE), "input_output": io([("3\n", "6\n"), ("4\n", "8\n")])},
    {"name": "Upper", "problem": "Upper case.", KEY: fenced(UPPER), "input_output": io([("ab\n", "AB\n"), ("cd\n", "CD\n")])},
]
IMPROVED = {0: DICT, 1: DOUBLE, 2: UPPER}
RESAMPLED = {0: ADD, 1: TRIPLE, 2: UPPER}


def it(number: int, code: str, shown_passed: int, shown_total: int, tokens_in: int = 0, tokens_out: int = 0) -> dict[str, Any]:
    return {"iteration": number, "passed": shown_passed, "total": shown_total, "ratio": shown_passed / shown_total,
            "verdicts": {}, "code_sha256": "0" * 64, "code": code, "response": None if number == 0 else "...",
            "input_tokens": tokens_in, "output_tokens": tokens_out, "latency_s": 0.0, "cached": False,
            "truncated": False, "no_code": False, "regressions": [], "duplicate_of": None}


def block(passed: int, total: int, rechecked: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out = {"passed": passed, "total": total, "ratio": passed / total, "verdicts": {}}
    if rechecked is not None:
        out["rechecked"] = rechecked
    return out


def entry(pid: int, iterations: list[dict[str, Any]], initial: tuple[int, int], final: tuple[int, int],
          shown: list[int], held: list[int], **extra: Any) -> dict[str, Any]:
    return {"problem_id": pid, "status": "done", "error": None, "initial": block(*initial), "final": block(*final),
            "feedback": {"initial": block(0, len(shown)), "final": block(0, len(shown)), "test_indices": shown},
            "held_out": {"initial": block(0, len(held)), "final": block(0, len(held)), "test_indices": held},
            "best_iteration": 0, "best_code": "", "iterations": iterations,
            "input_tokens": sum(i["input_tokens"] for i in iterations),
            "output_tokens": sum(i["output_tokens"] for i in iterations), **extra}


def summary() -> dict[str, Any]:
    unstable = [{"test": 2, "verdict": "passed", "stable": False, "runs": 3, "changed": 1, "verdicts": {"passed": 2, "timeout": 1}}]
    problems = [
        entry(0, [it(0, SUB, 0, 2), it(1, DICT, 2, 2, 100, 20)], (0, 4), (2, 4), [1, 2], [3, 4],
              resample=entry(0, [it(0, SUB, 0, 2), it(1, MUL, 0, 2, 50, 10), it(2, ADD, 2, 2, 50, 10)], (0, 4), (4, 4),
                             [1, 2], [3, 4], budget_tokens=120, strategy="resample")),
        entry(1, [it(0, TRIPLE, 0, 1), it(1, DOUBLE, 1, 1, 80, 20)], (0, 2), (2, 2), [1], [2],
              resample=entry(1, [it(0, TRIPLE, 0, 1), it(1, PLUS2, 0, 1, 40, 10), it(2, SQUARE, 0, 1, 40, 10)], (0, 2),
                             (0, 2), [1], [2], budget_tokens=100, strategy="resample")),
        entry(2, [it(0, UPPER, 1, 1)], (2, 2), (2, 2), [1], [2],
              resample=entry(2, [it(0, UPPER, 1, 1)], (2, 2), (2, 2), [1], [2], budget_tokens=0, strategy="resample")),
    ]
    problems[1]["final"] = block(2, 2, unstable)  # a recheck of the repair run found test 2 unstable
    return {"schema": "librarybench.repair_summary/1", "model": "fake-model", "provider": "openai", "model_key": KEY,
            "scores_on_shown_tests": False, "strategies": ["repair", "resample"], "problems": problems,
            "aggregate": {"input_tokens": 180, "output_tokens": 40, "held_out": None},
            "flip_rate": FlipTally(3, 0.5, tests_rechecked=1, unstable_tests=1, reruns=3, flips=1).block()}


@pytest.fixture(scope="module")
def science(tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("science")
    original, improved = folder / "original.json", folder / "improved_original.json"
    original.write_text(json.dumps(ORIGINAL))
    improved.write_text(json.dumps([{**r, f"improved_{KEY}": fenced(IMPROVED[i]), f"resampled_{KEY}": fenced(RESAMPLED[i])}
                                    for i, r in enumerate(ORIGINAL)]))
    (folder / f"summary_{improved.name}").write_text(json.dumps(summary()))
    out, report = folder / "comparison.json", folder / "report.html"
    proc = subprocess.run([sys.executable, str(ROOT / "compare_model_improvements.py"), "--original-file", str(original),
                           "--improved-file", str(improved), "--executor", "local", "--timeout", "2",
                           "--output-file", str(out), "--report", str(report)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return {"json": json.loads(out.read_text()), "stdout": proc.stdout, "report": report.read_text()}


def points(curve: list[dict[str, Any]], *keys: str) -> list[Any]:
    """The curve's points as a flat list (``pytest.approx`` compares flat sequences)."""
    return [p[k] for p in curve for k in keys]


def flat(rows: list[tuple[float, ...]]) -> list[float]:
    return [x for row in rows for x in row]


def test_pass_against_tokens_by_hand(science):
    d = science["json"]
    assert d["strategies"] == ["repair", "resample"]
    curves = d["pass_vs_tokens"]
    # repair: p0 0/4 until 120 tokens then 2/4; p1 0/2 until 100 then 2/2; p2 2/2 from the start
    assert points(curves["repair"], "tokens", "strict", "average") == pytest.approx(flat(
        [(0, 1 / 3, 1 / 3), (100, 2 / 3, 2 / 3), (120, 2 / 3, 2.5 / 3)]))
    # resample: p0 keeps a-b at 60 (a*b is no better on the shown tests), a+b 4/4 at 120; p1 never better
    assert points(curves["resample"], "tokens", "strict", "average") == pytest.approx(flat(
        [(0, 1 / 3, 1 / 3), (50, 1 / 3, 1 / 3), (60, 1 / 3, 1 / 3), (100, 1 / 3, 1 / 3), (120, 2 / 3, 2 / 3)]))
    # held-out tests (#3, #4 of p0; #2 of p1 and p2): the dict program gets none of p0's
    assert points(curves["repair"], "held_out_strict", "held_out_average") == pytest.approx(flat(
        [(1 / 3, 1 / 3), (2 / 3, 2 / 3), (2 / 3, 2 / 3)]))
    assert points(curves["resample"], "held_out_average")[-1] == pytest.approx(2 / 3)
    # output tokens only: repair spent 20 output tokens on p0 and on p1
    assert points(d["pass_vs_output_tokens"]["repair"], "tokens", "strict", "average") == pytest.approx(flat(
        [(0, 1 / 3, 1 / 3), (20, 2 / 3, 2.5 / 3)]))
    for strategy in ("repair", "resample"):
        for p in curves[strategy]:
            assert p["problems"] == 3
            assert p["strict_low"] <= p["strict"] <= p["strict_high"]
            assert p["average_low"] <= p["average"] <= p["average_high"]
    # every problem at 0 tokens is 1/3 or 1 ... the band of a point where all problems agree is that value
    last = curves["repair"][-1]
    assert 0 <= last["average_low"] <= last["average_high"] <= 1
    per = d["pass_vs_tokens_per_problem"]
    assert [(s["tokens"], s["output_tokens"], s["passed"], s["total"], s["held_passed"], s["held_total"])
            for s in per["resample"]["0"]] == [(0, 0, 0, 4, 0, 2), (60, 10, 0, 4, 0, 2), (120, 20, 4, 4, 2, 2)]


def test_repair_versus_resample_by_hand(science):
    v = science["json"]["repair_vs_resample"]
    # differences at each budget (repair minus resample): p0 2/4 - 4/4 = -0.5, p1 1 - 0 = +1, p2 1 - 1 = 0
    assert [(p["problem_id"], p["budget_tokens"], p["repair_tokens"], p["resample_tokens"], p["difference"])
            for p in v["per_problem"]] == [(0, 120, 120, 120, -0.5), (1, 100, 100, 100, 1.0), (2, 0, 0, 0, 0.0)]
    assert (v["repair_better"], v["resample_better"], v["ties"], v["n"]) == (1, 1, 1, 3)
    assert v["p_value"] == 1.0  # 2 * P(X <= 1 | n = 2, 1/2) = 2 * 3/4, capped at 1
    assert math.isclose(v["mean_difference"], 1 / 6)
    assert -0.5 <= v["ci"][0] <= 1 / 6 <= v["ci"][1] <= 1.0
    assert v["significant"] is False and v["winner"] == "neither"
    assert v["statement"].startswith("Neither strategy won at equal tokens")
    assert "repair better on 1, resampling better on 1, 1 tied" in v["statement"]
    # strict: p0 0 - 1, p1 1 - 0, p2 1 - 1; held-out: p0 0/2 - 2/2, p1 1/1 - 0/1, p2 equal
    assert (v["strict"]["repair_better"], v["strict"]["resample_better"], v["strict"]["ties"]) == (1, 1, 1)
    assert (v["held_out"]["repair_better"], v["held_out"]["resample_better"], v["held_out"]["ties"]) == (1, 1, 1)
    assert math.isclose(v["held_out"]["mean_difference"], 0.0)
    assert v["tokens"] == {"repair": 220, "resample": 220, "resample_over_repair": 1.0}
    # without p0 (its repaired program is flagged): +1 and a tie; p = 2 * P(X <= 0 | n = 1) = 1
    w = v["without_flagged"]
    assert (w["repair_better"], w["resample_better"], w["ties"], w["p_value"]) == (1, 0, 1, 1.0)
    assert w["ci"] == [0.0, 1.0] and math.isclose(w["mean_difference"], 0.5)
    assert "Repair vs resample: Neither strategy won" in science["stdout"]


def test_memorisation_flags_by_hand(science):
    mem = science["json"]["memorisation"]
    # checked: p0's repaired and resampled programs, p1's repaired one (p1's resample kept the original; p2 unchanged)
    assert (mem["checked"], mem["flagged_count"]) == (3, 1)
    [flagged] = mem["flagged"]
    assert (flagged["problem_id"], flagged["strategy"]) == (0, "repair")
    assert [(r["reason"], r["test"], r["line"]) for r in flagged["reasons"]] == [
        ("input_literal", 1, 2), ("special_cases_shown_tests", 1, 2),
        ("expected_output_literal", 2, 2), ("input_literal", 2, 2), ("special_cases_shown_tests", 2, 2)]
    assert "dict literal maps shown test #1's input" in flagged["reasons"][1]["detail"]
    # the headline without p0: p1 0 -> 1 (improved), p2 1 -> 1
    w = mem["without_flagged"]
    assert (w["total_problems"], w["improved_problems"], w["unchanged_problems"], w["worse_problems"]) == (2, 1, 1, 0)
    assert (w["overall_improvement"], w["original_mean_ratio"], w["improved_mean_ratio"]) == (0.5, 0.5, 1.0)
    assert (w["original_fully_passing"], w["improved_fully_passing"]) == (1, 2)
    assert (w["held_out_original_mean_ratio"], w["held_out_improved_mean_ratio"]) == (0.5, 1.0)
    assert "Memorisation check: 1 of 3 program(s) flagged" in science["stdout"]


def test_unstable_verdicts_and_flip_rate_from_the_summary(science):
    d = science["json"]
    u = d["unstable_verdicts"]
    # improvements: p0 (tests 1, 2 now pass: stable) and p1 (tests 1, 2: test 2 was unstable in the repair run)
    assert u == {"source": "repair summary", "improvements": 2, "regressions": 0, "improvements_on_unstable": 1,
                 "regressions_on_unstable": 0, "problems": [{"problem_id": 1, "status": "improved", "tests": [2]}]}
    assert [r["rests_on_unstable"] for r in d["problem_details"]] == [False, True, False]
    assert d["flip_rate"]["rate"] == 1 / 3 and d["flip_rate_source"] == "repair summary"


def test_report_lists_curves_and_flags(science):
    page = science["report"]
    for fig in ("fig-pass-vs-tokens", "fig-pass-vs-output-tokens"):
        assert f'<figure id="{fig}"><img src="data:image/png;base64,' in page
    assert 'id="repair-vs-resample"' in page and "Neither strategy won at equal tokens" in page
    assert "<code>special_cases_shown_tests</code>" in page and 'id="without-flagged"' in page
    assert 'id="unstable-verdicts"' in page and "rests on an unstable" in page


# --------------------------------------------------------------------------------------------
# The pieces, by hand
# --------------------------------------------------------------------------------------------


def test_kept_programs_follow_the_shown_tests():
    steps = [token_curves.LoopStep(0, 0, 1, "a"), token_curves.LoopStep(10, 5, None, ""),
             token_curves.LoopStep(10, 5, 1, "b"), token_curves.LoopStep(20, 10, 2, "c")]
    # no code keeps "a"; "b" ties (not strictly better) so "a" stays; "c" is better
    assert token_curves.kept_programs(steps) == [(0, 0, "a"), (15, 5, "a"), (30, 10, "a"), (60, 20, "c")]


def test_paired_all_equal_differences_has_a_degenerate_interval():
    stats = token_curves.paired([0.5] * 6)
    assert (stats["repair_better"], stats["resample_better"], stats["ties"]) == (6, 0, 0)
    assert stats["p_value"] == 2 / 64 and stats["ci"] == [0.5, 0.5] and stats["significant"] is True
    winner, sentence = token_curves.verdict_sentence(stats, "pass ratio")
    assert winner == "repair" and sentence.startswith("Repair won at equal tokens")


def test_memorisation_spares_correct_programs_and_catches_branches():
    tests = [{"stdin": "1 2\n", "stdout": "3\n"}, {"stdin": "ab cd\n", "stdout": "AB CD\n"}]
    correct = "a, b = map(int, input().split())\nprint(a + b)\nM = 10**9 + 7\nfor i in range(100):\n    pass\nprint('YES')"
    assert memorisation.check_program(correct, tests, [1, 2]) == []
    branch = "s = input()\nif s.strip() == 'ab cd':\n    print('AB CD')\nelse:\n    print(s.upper())"
    flags = memorisation.check_program(branch, tests, [1, 2])
    assert [(f.reason, f.test, f.line) for f in flags] == [
        ("expected_output_literal", 2, 3), ("input_literal", 2, 2), ("branches_on_shown_input", 2, 2),
        ("special_cases_shown_tests", 2, 2)]
    assert memorisation.check_program(branch, tests, [1]) == []  # test 2 was held out: nothing memorised
    assert memorisation.check_program(branch, tests, [1, 2], original_code=branch) == []  # already there
    match = "match input():\n    case 'ab cd':\n        print('AB CD')"
    assert {f.reason for f in memorisation.check_program(match, tests, [2])} == {
        "expected_output_literal", "input_literal", "branches_on_shown_input", "special_cases_shown_tests"}
    call = [{"kind": "call", "fn_name": "f", "class_name": None, "args": [[3, 1, 2]], "expected": [[1, 3]],
             "unwrap_expected": True}]
    flags = memorisation.check_program("def f(xs):\n    if xs == [3, 1, 2]:\n        return [1, 3]\n    return xs", call, [1])
    assert {f.reason for f in flags} == set(memorisation.REASONS)


def test_flip_rate_interval_by_hand():
    # Wilson, 1 flip in 4 reruns: centre (0.25 + z^2/8) / (1 + z^2/4), half z*sqrt(0.1875/4 + z^2/64) / (1 + z^2/4)
    z = 1.959963984540054
    low, high = wilson_interval(1, 4)
    d = 1 + z * z / 4
    assert math.isclose(low, (0.25 + z * z / 8 - z * math.sqrt(0.1875 / 4 + z * z / 64)) / d)
    assert math.isclose(high, (0.25 + z * z / 8 + z * math.sqrt(0.1875 / 4 + z * z / 64)) / d)
    assert wilson_interval(0, 0) is None and wilson_interval(0, 5)[0] == 0.0
    tally = FlipTally(4, 0.5)
    tally.add([{"verdict": "timeout", "stable": False, "recheck": {"runs": 4, "changed": 1}},
               {"verdict": "timeout", "stable": True, "recheck": {"runs": 4, "changed": 0}}, {"verdict": "passed"}])
    b = tally.block()
    assert (b["rate"], b["flips"], b["reruns"], b["tests_rechecked"], b["unstable_tests"]) == (1 / 8, 1, 8, 2, 1)
    assert b["machine"]["cpu_count"] >= 1 and len(b["machine"]["load_average"]) == 3
