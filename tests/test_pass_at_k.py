"""pass@k arithmetic against the exact binomial formula, and the breakdowns."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import pytest

import pass_at_k as pk


def exact(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@pytest.mark.parametrize("n, c, k", [(1, 0, 1), (1, 1, 1), (3, 1, 2), (5, 2, 3), (10, 3, 10), (20, 0, 5),
                                     (20, 20, 1), (7, 6, 2)])
def test_matches_the_binomial_formula(n: int, c: int, k: int) -> None:
    assert pk.pass_at_k(n, c, k) == pytest.approx(float(exact(n, c, k)), abs=1e-12)


def test_large_n_is_stable() -> None:
    """C(1000, 500) has 300 digits: the product form still gives the exact value to 1e-12."""
    assert pk.pass_at_k(1000, 3, 500) == pytest.approx(float(exact(1000, 3, 500)), abs=1e-12)
    assert pk.pass_at_k(1000, 1, 1) == pytest.approx(0.001)


def test_hand_values() -> None:
    assert pk.pass_at_k(3, 1, 1) == pytest.approx(1 / 3)
    assert pk.pass_at_k(3, 1, 2) == pytest.approx(2 / 3)  # 1 - C(2,2)/C(3,2)
    assert pk.pass_at_k(4, 2, 2) == pytest.approx(5 / 6)  # 1 - C(2,2)/C(4,2)
    assert pk.pass_at_k(4, 2, 3) == 1.0


@pytest.mark.parametrize("n, c, k", [(3, 4, 1), (3, 1, 4), (3, 1, 0)])
def test_undefined_cases_raise(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pk.pass_at_k(n, c, k)


def test_parse_ks() -> None:
    assert pk.parse_ks("10,1, 100,1") == (1, 10, 100)
    for bad in ("", "0", "a", "1,-2"):
        with pytest.raises(ValueError):
            pk.parse_ks(bad)


PROBLEMS = [
    pk.ProblemScore("a", 4, 2, (1, 1, 0.5, 0), difficulty="easy", source="leetcode", date="2024-03-02T00:00:00"),
    pk.ProblemScore("b", 2, 1, (1, 0), difficulty="medium", source="atcoder", date="2024-06-15"),
    pk.ProblemScore("c", 1, 0, (0.25,), difficulty="easy", source="atcoder", date=None),
]


def test_score_skips_problems_with_fewer_samples_than_k() -> None:
    s = pk.score(PROBLEMS, (1, 2, 3))
    assert s["pass_at_k"]["1"] == pytest.approx((0.5 + 0.5 + 0) / 3)
    assert s["pass_at_k"]["2"] == pytest.approx((5 / 6 + 1) / 2)
    assert s["pass_at_k"]["3"] == pytest.approx(1.0)
    assert s["problems_per_k"] == {"1": 3, "2": 2, "3": 1}
    assert s["strict_accuracy"] == pytest.approx(3 / 7)
    assert s["average_pass_ratio"] == pytest.approx((1 + 1 + 0.5 + 0 + 1 + 0 + 0.25) / 7)


def test_report_window_and_breakdowns() -> None:
    r = pk.report(PROBLEMS, (1,), start="2024-05-01", end="2024-12-31")
    assert r["problems"] == 1 and r["window"]["excluded"] == 2  # a problem without a date is outside
    assert r["pass_at_k"]["1"] == pytest.approx(0.5)
    whole = pk.report(PROBLEMS, (1,))
    assert set(whole["by_difficulty"]) == {"easy", "medium"}
    assert whole["by_difficulty"]["easy"]["pass_at_k"]["1"] == pytest.approx(0.25)
    assert whole["by_source"]["atcoder"]["samples"] == 3


def test_an_empty_report_line_has_no_dangling_separator() -> None:
    """Every problem in error (nothing scored): the line ends with the counts, not with "; "."""
    assert pk.format_report(pk.report([], (1,))) == "pass@k: 0 problems, 0 samples\n"


def test_unscored_samples_count_per_problem_even_when_task_ids_repeat() -> None:
    """Two problems sharing a task id stay two problems when unscored samples are counted as failures."""
    from types import SimpleNamespace

    import dataset_formats
    import dataset_jobs

    problems = {("f.json", i): dataset_formats.Problem(index=i, task_id="same", name=f"p{i}", kind="stdio",
                                                       public_tests=()) for i in (0, 1)}
    plan = dataset_jobs.Plan(jobs=[], files=["f.json"], problems=problems, without_samples=0, fmt="taco")
    job = lambda i, status, passed: SimpleNamespace(solution_file="f.json", problem_id=i, model_key="s",  # noqa: E731
                                                    status=status, passed=passed, total=1)
    jobs = [job(0, "ok", 1), job(0, "error", None), job(1, "ok", 0)]
    scored = dataset_jobs.problem_scores(jobs, plan)["s"]
    assert [(s.n, s.c) for s in scored] == [(1, 1), (1, 0)]
    as_failures = dataset_jobs.problem_scores(jobs, plan, unscored_fail=True)["s"]
    assert [(s.n, s.c, s.ratios) for s in as_failures] == [(2, 1, (1.0, 0.0)), (1, 0, (0.0,))]
