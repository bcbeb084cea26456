"""Scores over n samples per problem: unbiased pass@k, strict accuracy, average test pass ratio.

Owns the arithmetic and the breakdowns (by difficulty, by source/platform, within a date window);
it knows nothing about executors or files. A problem's outcome is ``ProblemScore``: how many of its
samples ran (``n``), how many passed every test (``c``) and each sample's pass ratio.

pass@k is the unbiased estimator of Chen et al. (2021), 1 - C(n-c, k) / C(n, k), computed as the
product 1 - prod_{i=n-c+1}^{n} (1 - k / i), which never forms the huge binomials. It is defined
for k <= n only; problems with fewer samples than k are left out of that k's average (and the
count of problems used is reported next to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

DEFAULT_KS = (1, 10, 100)


@dataclass(frozen=True)
class ProblemScore:
    """The outcome of one problem's samples; metadata for the breakdowns."""

    key: str
    n: int
    c: int
    ratios: tuple[float, ...]
    difficulty: str | None = None
    source: str | None = None
    date: str | None = None


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c correct) is correct."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def parse_ks(text: str) -> tuple[int, ...]:
    """``"1,10,100"`` -> (1, 10, 100); raises ValueError on anything else."""
    ks = sorted({int(part) for part in text.split(",") if part.strip()})
    if not ks or ks[0] < 1:
        raise ValueError(f"--k needs positive integers separated by commas, got {text!r}")
    return tuple(ks)


def score(problems: Sequence[ProblemScore], ks: Iterable[int]) -> dict[str, Any]:
    """pass@k per k (problems with n >= k), strict accuracy and average pass ratio over samples."""
    used = [p for p in problems if p.n > 0]
    result: dict[str, Any] = {"problems": len(used), "samples": sum(p.n for p in used), "pass_at_k": {},
                              "problems_per_k": {}}
    for k in ks:
        eligible = [p for p in used if p.n >= k]
        if eligible:
            result["pass_at_k"][str(k)] = sum(pass_at_k(p.n, p.c, k) for p in eligible) / len(eligible)
            result["problems_per_k"][str(k)] = len(eligible)
    ratios = [r for p in used for r in p.ratios]
    result["strict_accuracy"] = (sum(p.c for p in used) / result["samples"]) if used else None
    result["average_pass_ratio"] = sum(ratios) / len(ratios) if ratios else None
    return result


def in_window(date: str | None, start: str | None, end: str | None) -> bool:
    """ISO dates compare as text; a bound applies to the date part (``2024-05-01``) inclusively."""
    if start is None and end is None:
        return True
    if not date:
        return False
    day = date[:10]
    return (start is None or day >= start[:10]) and (end is None or day <= end[:10])


def breakdown(problems: Sequence[ProblemScore], ks: Iterable[int],
              attribute: Callable[[ProblemScore], str | None]) -> dict[str, Any]:
    groups: dict[str, list[ProblemScore]] = {}
    for p in problems:
        groups.setdefault(attribute(p) or "unknown", []).append(p)
    ks = tuple(ks)
    return {name: score(members, ks) for name, members in sorted(groups.items())}


def report(problems: Sequence[ProblemScore], ks: Iterable[int], start: str | None = None,
           end: str | None = None) -> dict[str, Any]:
    """The whole pass@k section: overall (within the date window) and broken down."""
    ks = tuple(ks)
    window = [p for p in problems if in_window(p.date, start, end)]
    out = score(window, ks)
    out["window"] = {"start": start, "end": end, "excluded": len(problems) - len(window)}
    out["by_difficulty"] = breakdown(window, ks, lambda p: p.difficulty)
    out["by_source"] = breakdown(window, ks, lambda p: p.source)
    return out


def format_report(section: dict[str, Any]) -> str:
    """A few lines for the terminal summary."""
    def line(label: str, s: dict[str, Any]) -> str:
        parts = [f"pass@{k} {v * 100:.1f}%" for k, v in s["pass_at_k"].items()]
        if s.get("strict_accuracy") is not None:
            parts.append(f"strict {s['strict_accuracy'] * 100:.1f}%")
        if s.get("average_pass_ratio") is not None:
            parts.append(f"tests {s['average_pass_ratio'] * 100:.1f}%")
        head = f"{label}: {s['problems']} problems, {s['samples']} samples"
        return f"{head}; {', '.join(parts)}" if parts else head

    lines = [line("pass@k", section)]
    if section.get("unscored_samples"):
        worst = ", ".join(f"pass@{k} {v * 100:.1f}%" for k, v in section["pass_at_k_unscored_as_failures"].items())
        lines.append(f"  {section['unscored_samples']} sample(s) ended in an error of the run and are not scored; "
                     f"counted as failures: {worst}")
    for group in ("by_difficulty", "by_source"):
        if len(section.get(group, {})) > 1:
            lines.extend(line(f"  {group[3:]} {name}", s) for name, s in section[group].items())
    return "\n".join(lines) + "\n"
