"""Paired statistics over problems: is a repair's gain more than noise?

Each problem contributes one paired difference, ``improved_ratio - original_ratio``. Problems are
the unit of analysis (not tests: tests of one problem are strongly correlated), so the tests used
here are paired tests over problems:

* the exact two-sided **sign test** on the differences (ties dropped), computed with ``math.comb``
  so no scipy is needed; it decides the "distinguishable from noise at the 5% level" sentence;
* a seeded percentile **bootstrap** 95% interval of the mean per-problem improvement, which says
  how large the gain plausibly is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

ALPHA = 0.05
DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class SignTest:
    """Counts of improved/worse/tied problems and the exact two-sided p-value."""

    positive: int
    negative: int
    ties: int
    n_nonzero: int
    p_value: float


@dataclass(frozen=True)
class BootstrapInterval:
    """Percentile bootstrap interval of the mean paired difference (``None`` bounds when n = 0)."""

    mean: float | None
    low: float | None
    high: float | None
    level: float
    resamples: int
    seed: int


def binomial_tail(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), exactly (integers until the final division)."""
    if k < 0:
        return 0.0
    return sum(math.comb(n, i) for i in range(min(k, n) + 1)) / 2**n


def sign_test(differences: Sequence[float]) -> SignTest:
    """Exact two-sided sign test: under no effect, improvements and losses are equally likely."""
    positive = sum(1 for d in differences if d > 0)
    negative = sum(1 for d in differences if d < 0)
    n = positive + negative
    if n == 0:
        p = 1.0
    else:
        p = min(1.0, 2 * binomial_tail(min(positive, negative), n))
    return SignTest(positive, negative, len(differences) - n, n, p)


def bootstrap_mean_interval(differences: Sequence[float], *, resamples: int = DEFAULT_RESAMPLES,
                            seed: int = DEFAULT_SEED, level: float = DEFAULT_LEVEL) -> BootstrapInterval:
    """Resample problems with replacement; the interval is the percentile range of the means."""
    values = np.asarray(differences, dtype=float)
    if values.size == 0:
        return BootstrapInterval(None, None, None, level, resamples, seed)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return BootstrapInterval(float(values.mean()), float(low), float(high), level, resamples, seed)


def significance_statement(test: SignTest, interval: BootstrapInterval, n_problems: int) -> tuple[bool, str]:
    """A plain sentence for readers who do not read p-values, and the yes/no it states."""
    significant = test.n_nonzero > 0 and test.p_value < ALPHA
    mean = interval.mean or 0.0
    if significant:
        word = "gain" if test.positive > test.negative else "loss"
        head = f"The {word} is distinguishable from noise at the 5% level"
    else:
        word = "gain" if mean >= 0 else "change"
        head = f"The {word} is not distinguishable from noise at the 5% level"
    detail = (f"exact two-sided sign test over {n_problems} problems: {test.positive} improved, "
              f"{test.negative} worse, {test.ties} tied (dropped), p = {test.p_value:.3g}")
    sentence = f"{head} ({detail})."
    if interval.mean is not None and interval.low is not None and interval.high is not None:
        sentence += (f" Mean per-problem improvement {interval.mean:+.3f}, "
                     f"{interval.level:.0%} bootstrap interval [{interval.low:+.3f}, {interval.high:+.3f}].")
    if 0 < test.n_nonzero < 6 and not significant:
        sentence += f" With only {test.n_nonzero} changed problems the sign test cannot reach 5% (it needs at least 6)."
    return significant, sentence


def paired_significance(differences: Sequence[float], *, resamples: int = DEFAULT_RESAMPLES,
                        seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Everything the output states about noise, as one JSON-ready dict."""
    test = sign_test(differences)
    interval = bootstrap_mean_interval(differences, resamples=resamples, seed=seed)
    significant, sentence = significance_statement(test, interval, len(differences))
    return {
        "method": "exact two-sided sign test on per-problem pass-ratio differences (ties dropped); "
                  f"percentile bootstrap {interval.level:.0%} interval of the mean difference "
                  f"({interval.resamples} resamples of problems, seed {interval.seed})",
        "n": len(differences),
        "alpha": ALPHA,
        "sign_test": asdict(test),
        "bootstrap": asdict(interval),
        "significant": significant,
        "statement": sentence,
    }
