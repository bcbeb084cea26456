"""Pass rate against tokens (pass@t in the sense of Olausson et al., "Is Self-Repair a Silver
Bullet for Code Generation?", ICLR 2024), and repair against resampling at equal tokens.

A strategy's run on one problem is a list of ``Step``s, one per iteration: the tokens recorded so
far (input + output, and output only) and the score on all tests (and on the held-out tests) of
the program kept so far, chosen by the shown tests exactly as the loops keep it. Step 0 (no
tokens) is the starting program. At ``t`` tokens a problem's state is its last step with at most
``t`` tokens; the curve of a strategy, at every token count where some problem changes, gives
``strict`` (the share of problems whose kept program passes every test) and ``average`` (the mean
pass ratio), with percentile bootstrap bands over problems (seeded). Pure functions: no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from improvement_stats import ALPHA, bootstrap_mean_interval, sign_test

BAND_RESAMPLES = 2000
BAND_SEED = 0
MAX_POINTS = 200


@dataclass(frozen=True)
class Step:
    tokens: int  # input + output tokens recorded up to and including this iteration
    output_tokens: int
    passed: int  # the kept program on all tests
    total: int
    held_passed: int | None = None  # ... and on the held-out tests (None: no split)
    held_total: int | None = None

    @property
    def ratio(self) -> float:
        return self.passed / self.total if self.total else 0.0

    @property
    def strict(self) -> float:
        return 1.0 if self.total and self.passed == self.total else 0.0

    @property
    def held_ratio(self) -> float | None:
        return self.held_passed / self.held_total if self.held_total else None

    @property
    def held_strict(self) -> float | None:
        return None if not self.held_total else 1.0 if self.held_passed == self.held_total else 0.0


@dataclass(frozen=True)
class LoopStep:
    """One stored iteration, as the curve needs it: tokens spent by it and its shown-test score."""

    input_tokens: int
    output_tokens: int
    shown_passed: int | None  # None: the answer had no code (nothing ran)
    code: str


def kept_programs(iterations: Sequence[LoopStep]) -> list[tuple[int, int, str]]:
    """(cumulative tokens, cumulative output tokens, program kept) after each iteration: the best
    by the shown tests, replaced only by a strictly better one (iteration 0 is the start)."""
    out = []
    tokens = output = 0
    best_code, best_passed = None, -1
    for it in iterations:
        tokens += it.input_tokens + it.output_tokens
        output += it.output_tokens
        if it.shown_passed is not None and (best_code is None or it.shown_passed > best_passed):
            best_code, best_passed = it.code, it.shown_passed
        out.append((tokens, output, best_code if best_code is not None else ""))
    return out


def state_at(steps: Sequence[Step], tokens: float, key: str = "tokens") -> Step:
    """The last step with at most ``tokens`` (step 0 has none, so there always is one)."""
    current = steps[0]
    for step in steps:
        if getattr(step, key) <= tokens:
            current = step
        else:
            break
    return current


def grid_of(runs: Sequence[Sequence[Step]], key: str) -> list[int]:
    values = sorted({getattr(s, key) for steps in runs for s in steps} | {0})
    if len(values) > MAX_POINTS:  # keep the ends and evenly spaced points between
        picks = np.linspace(0, len(values) - 1, MAX_POINTS).round().astype(int)
        values = [values[i] for i in sorted(set(picks.tolist()))]
    return values


def _band(matrix: np.ndarray, seed: int, resamples: int) -> tuple[list[float], list[float]]:
    """Percentile 95% bootstrap band (over rows: problems) of the column means."""
    n = matrix.shape[0]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(resamples, n))
    means = matrix[picks].mean(axis=1)  # resamples x points
    low, high = np.percentile(means, [2.5, 97.5], axis=0)
    return [float(x) for x in low], [float(x) for x in high]


def curve(runs: Sequence[Sequence[Step]], key: str = "tokens", *, seed: int = BAND_SEED,
          resamples: int = BAND_RESAMPLES) -> list[dict[str, Any]]:
    """The strategy's points ``{tokens, strict, average, ...}`` over ``runs`` (one per problem);
    ``key``: "tokens" (input + output) or "output_tokens"."""
    runs = [r for r in runs if r]
    if not runs:
        return []
    grid = grid_of(runs, key)
    states = [[state_at(steps, t, key) for t in grid] for steps in runs]
    strict = np.array([[s.strict for s in row] for row in states])
    average = np.array([[s.ratio for s in row] for row in states])
    strict_low, strict_high = _band(strict, seed, resamples)
    average_low, average_high = _band(average, seed, resamples)
    held = all(s.held_total for row in states for s in row)
    points = []
    for j, t in enumerate(grid):
        point = {"tokens": t, "strict": float(strict[:, j].mean()), "average": float(average[:, j].mean()),
                 "strict_low": strict_low[j], "strict_high": strict_high[j],
                 "average_low": average_low[j], "average_high": average_high[j], "problems": len(runs)}
        if held:
            point["held_out_strict"] = float(np.mean([row[j].held_strict for row in states]))
            point["held_out_average"] = float(np.mean([row[j].held_ratio for row in states]))
        points.append(point)
    return points


def step_dicts(steps: Sequence[Step]) -> list[dict[str, Any]]:
    return [asdict(s) for s in steps]


def paired(differences: Sequence[float]) -> dict[str, Any]:
    """The sign test and the bootstrap interval of the mean difference (repair minus resample)."""
    test = sign_test(differences)
    interval = bootstrap_mean_interval(differences)
    significant = test.n_nonzero > 0 and test.p_value < ALPHA
    return {"repair_better": test.positive, "resample_better": test.negative, "ties": test.ties,
            "p_value": test.p_value, "ci": [interval.low, interval.high] if interval.low is not None else None,
            "mean_difference": interval.mean, "significant": significant, "n": len(differences)}


def verdict_sentence(stats: Mapping[str, Any], what: str) -> tuple[str, str]:
    """(winner, a plain sentence) for a paired repair-versus-resample block."""
    rb, sb, ties = stats["repair_better"], stats["resample_better"], stats["ties"]
    if stats["n"] == 0:
        return "none", f"No problem has both strategies: no {what} comparison."
    if stats["significant"]:
        winner = "repair" if rb > sb else "resample"
        head = (f"{'Repair' if winner == 'repair' else 'Resampling'} won at equal tokens, and the difference is more "
                "than noise at the 5% level")
    else:
        winner = "neither"
        lead = "repair" if rb > sb else "resampling" if sb > rb else "neither strategy"
        head = (f"Neither strategy won at equal tokens: {lead} was ahead on more problems, but the difference is "
                "not distinguishable from noise at the 5% level" if rb != sb else
                "Neither strategy won at equal tokens: the difference is not distinguishable from noise at the 5% level")
    detail = (f"{what}: repair better on {rb}, resampling better on {sb}, {ties} tied; exact two-sided sign test "
              f"p = {stats['p_value']:.3g}")
    sentence = f"{head} ({detail})."
    if stats.get("ci") and stats.get("mean_difference") is not None:
        lo, hi = stats["ci"]
        sentence += (f" Mean difference (repair minus resampling) {stats['mean_difference']:+.3f}, 95% bootstrap "
                     f"interval [{lo:+.3f}, {hi:+.3f}].")
    return winner, sentence
