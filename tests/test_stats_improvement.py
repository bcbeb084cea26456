"""The paired statistics, checked against values computed by hand."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project's modules

import pytest

from improvement_stats import (
    binomial_tail,
    bootstrap_mean_interval,
    paired_significance,
    sign_test,
)


def test_binomial_tail_exact():
    # P(X <= 1), X ~ Bin(10, 1/2) = (C(10,0) + C(10,1)) / 2^10 = 11 / 1024
    assert binomial_tail(1, 10) == 11 / 1024
    assert binomial_tail(-1, 5) == 0.0
    assert binomial_tail(5, 5) == 1.0


@pytest.mark.parametrize(
    "diffs, expected",
    [
        ([0.5] * 9 + [-0.25], (9, 1, 0, 10, 2 * 11 / 1024)),  # two-sided: 2 * P(X <= 1)
        ([0.1] * 6, (6, 0, 0, 6, 2 / 64)),  # smallest n that can reach 5%
        ([0.1] * 5, (5, 0, 0, 5, 2 / 32)),  # 0.0625: cannot reach 5%
        ([0.3, -0.2], (1, 1, 0, 2, 1.0)),  # 2 * 3/4 is capped at 1
        ([0.0, 0.0, 0.0], (0, 0, 3, 0, 1.0)),  # all ties: no evidence at all
        ([0.2, 0.0, -0.1, 0.0], (1, 1, 2, 2, 1.0)),  # ties dropped
    ],
)
def test_sign_test_by_hand(diffs, expected):
    result = sign_test(diffs)
    assert (result.positive, result.negative, result.ties, result.n_nonzero) == expected[:4]
    assert math.isclose(result.p_value, expected[4])


def test_sign_test_is_symmetric():
    assert sign_test([1, 1, 1, 1, 1, 1, -1]).p_value == sign_test([-1, -1, -1, -1, -1, -1, 1]).p_value


def test_bootstrap_constant_and_empty():
    interval = bootstrap_mean_interval([0.25, 0.25, 0.25])
    assert (interval.mean, interval.low, interval.high) == (0.25, 0.25, 0.25)
    empty = bootstrap_mean_interval([])
    assert (empty.mean, empty.low, empty.high) == (None, None, None)


def test_bootstrap_is_seeded_and_brackets_the_mean():
    diffs = [0.75, 0.0, -0.5, 0.0, 0.25, 0.5]
    a, b = bootstrap_mean_interval(diffs), bootstrap_mean_interval(diffs)
    assert a == b  # seeded: the same numbers on every run
    assert math.isclose(a.mean, sum(diffs) / len(diffs))
    assert min(diffs) <= a.low <= a.mean <= a.high <= max(diffs)
    assert (a.level, a.resamples, a.seed) == (0.95, 10_000, 0)


def test_statement_significant_gain():
    out = paired_significance([0.5] * 7 + [0.0])
    assert out["significant"] is True
    assert out["n"] == 8
    assert out["sign_test"]["p_value"] == 2 / 128
    assert out["statement"].startswith("The gain is distinguishable from noise at the 5% level")
    assert "sign test" in out["method"] and "bootstrap" in out["method"]


def test_statement_significant_loss():
    out = paired_significance([-0.5] * 6)
    assert out["significant"] is True
    assert out["statement"].startswith("The loss is distinguishable from noise at the 5% level")


def test_statement_not_significant_explains_small_n():
    out = paired_significance([0.75, 0.0, -0.5, 0.0])
    assert out["significant"] is False
    assert out["statement"].startswith("The gain is not distinguishable from noise at the 5% level")
    assert "cannot reach 5%" in out["statement"]


def test_statement_with_no_problems():
    out = paired_significance([])
    assert out["significant"] is False
    assert out["n"] == 0
    assert out["bootstrap"]["mean"] is None
