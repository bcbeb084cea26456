"""Timing flakes, measured (``--recheck-timeouts K``): re-run the tests whose verdict may depend on
the machine's load, and say how often the verdict changed.

A test is rechecked when its verdict is ``timeout``, or when it passed but took more than
``fraction`` of its time limit (default 0.5). It is run ``K`` more times under the same limits
and judge; its result keeps the first verdict and gains ``stable`` (``true``: every rerun gave the
same verdict) and ``recheck`` (``{"runs", "changed", "verdicts"}``: the reruns' verdict counts).
Results not rechecked carry neither key.

``FlipTally`` adds up rechecked results into the ``flip_rate`` block of a summary: the share of
reruns whose verdict differed from the first run, with a Wilson score interval (reruns of one
test are not independent, so the interval is a lower bound on the real uncertainty), the number
of unstable tests, and the machine's load average and CPU count at the time of the figures.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence

DEFAULT_RECHECK_FRACTION = 0.5
Z_95 = 1.959963984540054

RunTests = Callable[[str, list[Any]], Awaitable[list[dict[str, Any]]]]


def elapsed_of(result: Mapping[str, Any]) -> float | None:
    run = ((result.get("exec_output") or {}).get("run_output") or {})
    value = run.get("elapsed_time")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def needs_recheck(result: Mapping[str, Any], timeout: float, fraction: float) -> bool:
    """A timeout, or a pass that took more than ``fraction`` of the limit."""
    if result.get("verdict") == "timeout":
        return True
    if result.get("passed"):
        elapsed = elapsed_of(result)
        return elapsed is not None and elapsed > fraction * timeout
    return False


async def recheck_results(code: str, tests: Sequence[Any], results: Sequence[dict[str, Any]], *, times: int,
                          timeout: float, fraction: float, run: RunTests) -> list[dict[str, Any]]:
    """``results`` (of ``code`` on ``tests``, in order) with every candidate rerun ``times`` times."""
    candidates = [i for i, r in enumerate(results) if needs_recheck(r, timeout, fraction)]
    if times <= 0 or not candidates:
        return list(results)
    reruns = await run(code, [tests[i] for i in candidates for _ in range(times)])
    out = list(results)
    for n, i in enumerate(candidates):
        first = results[i].get("verdict")
        seen = [r.get("verdict") for r in reruns[n * times:(n + 1) * times]]
        changed = sum(1 for v in seen if v != first)
        out[i] = {**results[i], "stable": changed == 0,
                  "recheck": {"runs": times, "changed": changed, "verdicts": dict(Counter(str(v) for v in seen))}}
    return out


def unstable_indices(results: Sequence[Mapping[str, Any]]) -> list[int]:
    """0-based indices of the results a recheck found unstable."""
    return [i for i, r in enumerate(results) if r.get("stable") is False]


def rechecked_records(results: Sequence[Mapping[str, Any]], indices: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """The rechecked results of a program, as stored in a repair summary: ``test`` is the 1-based
    index among all of the problem's tests (``indices[i]`` is the test index of ``results[i]``)."""
    out = []
    for position, r in enumerate(results):
        if "stable" in r:
            test = (indices[position] if indices is not None else position) + 1
            out.append({"test": test, "verdict": r.get("verdict"), "stable": r["stable"], **r.get("recheck", {})})
    return out


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (None when n = 0)."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def machine_load() -> dict[str, Any]:
    """Load average (1, 5, 15 minutes) and CPU counts at the time of the figures."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    return {"load_average": load, "cpu_count": os.cpu_count(), "usable_cpus": usable}


@dataclass
class FlipTally:
    """Rechecked results added up: tests rechecked, unstable tests, reruns, reruns that flipped."""

    times: int
    fraction: float
    tests_rechecked: int = 0
    unstable_tests: int = 0
    reruns: int = 0
    flips: int = 0

    def add(self, results: Iterable[Mapping[str, Any]]) -> None:
        for r in results:
            if "stable" not in r:
                continue
            recheck = r.get("recheck") or {}
            self.tests_rechecked += 1
            self.unstable_tests += 0 if r["stable"] else 1
            self.reruns += int(recheck.get("runs", 0))
            self.flips += int(recheck.get("changed", 0))

    def add_records(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Stored rechecked records (``rechecked_records``) have the same fields."""
        for r in records:
            self.tests_rechecked += 1
            self.unstable_tests += 0 if r.get("stable") else 1
            self.reruns += int(r.get("runs", 0))
            self.flips += int(r.get("changed", 0))

    def block(self) -> dict[str, Any]:
        """The ``flip_rate`` block of a summary."""
        interval = wilson_interval(self.flips, self.reruns)
        return {
            "rate": self.flips / self.reruns if self.reruns else None,
            "ci": [interval[0], interval[1]] if interval else None,
            "level": 0.95,
            "method": "share of reruns whose verdict differed from the first run; Wilson score 95% interval "
                      "(reruns of one test are correlated: read the interval as a lower bound on the uncertainty)",
            "flips": self.flips, "reruns": self.reruns, "tests_rechecked": self.tests_rechecked,
            "unstable_tests": self.unstable_tests, "recheck_times": self.times, "recheck_fraction": self.fraction,
            "machine": machine_load(),
        }
