"""The comparison's judge-sensitivity audit (``compare_model_improvements.py --judges A,B,...``).

Owns the ``judge_audit`` block of the comparison JSON, its terminal table and its HTML section with
a plot. Both programs of every problem run once; their kept results (raw stdout) are re-decided
by each pure judge (``judges.judge_pure``: no program runs again), so what changes between judges
is the judging alone: per side the tests passed and fully passing problems (``judges.audit``, with
the flipped tests of each pair of judges), per judge the improved/unchanged/worse counts, and the
problems whose improvement status depends on the judge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import judges

SIDES = ("original", "improved")


@dataclass(frozen=True)
class AuditedProblem:
    """One compared problem: both programs' finished results (the same ones when there is no
    improved answer or the program did not change)."""

    problem_id: int
    name: str
    original: tuple[dict[str, Any], ...]
    improved: tuple[dict[str, Any], ...]


def passed_count(results: Sequence[dict[str, Any]], judge: judges.Judge) -> int:
    return sum(judges.judge_pure(judge, r)["verdict"] == "passed" for r in results)


def status_of(before: int, after: int) -> str:
    return "improved" if after > before else "worse" if after < before else "unchanged"


def build_audit(problems: Sequence[AuditedProblem], audit_judges: Sequence[judges.Judge],
                run_judge: judges.Judge) -> dict[str, Any]:
    """The ``judge_audit`` block: per judge and side, the changes of status, the flipped tests."""
    names = [j.name for j in audit_judges]
    counts = {p.problem_id: {j.name: (passed_count(p.original, j), passed_count(p.improved, j)) for j in audit_judges}
              for p in problems}
    per_judge: dict[str, dict[str, Any]] = {}
    tests = sum(len(p.original) for p in problems)
    for name in names:
        pairs = [(counts[p.problem_id][name], len(p.original)) for p in problems]
        statuses = [status_of(b, a) for (b, a), _ in pairs]
        per_judge[name] = {
            "tests": tests,
            "original_passed": sum(b for (b, _), _ in pairs), "improved_passed": sum(a for (_, a), _ in pairs),
            "original_fully_passing": sum(1 for (b, _), n in pairs if n and b == n),
            "improved_fully_passing": sum(1 for (_, a), n in pairs if n and a == n),
            **{f"{s}_problems": statuses.count(s) for s in ("improved", "unchanged", "worse")},
        }
    changes = []
    for p in problems:
        status = {n: status_of(*counts[p.problem_id][n]) for n in names}
        if len(set(status.values())) > 1:
            changes.append({"problem_id": p.problem_id, "name": p.name, "tests": len(p.original), "status": status,
                            "original_passed": {n: counts[p.problem_id][n][0] for n in names},
                            "improved_passed": {n: counts[p.problem_id][n][1] for n in names}})
    sides = {side: judges.audit([judges.AuditItem(f"problem {p.problem_id}", getattr(p, side)) for p in problems],
                                audit_judges).as_dict() for side in SIDES}
    return {"judges": names, "run_judge": run_judge.spec.as_dict(), "problems": len(problems), "tests": tests,
            "per_judge": per_judge, "status_changes": changes, **sides}


# --------------------------------------------------------------------------------------------
# Terminal
# --------------------------------------------------------------------------------------------


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def terminal_lines(audit: dict[str, Any] | None) -> list[str]:
    """The audit under the comparison's table: one row per judge, then what depends on the judge."""
    if not audit:
        return []
    n, tests = audit["problems"], audit["tests"]
    lines = ["", f"Judge-sensitivity audit ({n} problems, {tests} tests; each program ran once, its outputs re-judged; "
                 f"run judge {audit['run_judge']['name']}):"]
    rows = [("judge", "tests passed", "fully passing", "improved/unchanged/worse")]
    for name in audit["judges"]:
        j = audit["per_judge"][name]
        rows.append((name, f"{j['original_passed']} -> {j['improved_passed']} of {tests}",
                     f"{j['original_fully_passing']} -> {j['improved_fully_passing']} of {n}",
                     f"{j['improved_problems']}/{j['unchanged_problems']}/{j['worse_problems']}"))
    lines += _table(rows)
    if audit["status_changes"]:
        lines.append("Status depends on the judge:")
        for c in audit["status_changes"]:
            lines.append(f"  problem {c['problem_id']} ({c['name'][:28]}): "
                         + ", ".join(f"{j} {s}" for j, s in c["status"].items()))
    else:
        lines.append("Status depends on the judge: no problem")
    for side in SIDES:
        flips = [f"{p['first']} vs {p['second']} {p['verdicts_changed']}" for p in audit[side]["pairs"]]
        lines.append(f"Verdicts changed, {side} programs: " + ", ".join(flips))
    return lines


# --------------------------------------------------------------------------------------------
# HTML (the report's style: report_html's helpers and colours)
# --------------------------------------------------------------------------------------------


def plot_judges(audit: dict[str, Any]) -> str:
    """Left: tests passed before/after per judge; right: improved/unchanged/worse problems per judge."""
    from report_html import BEFORE_COLOUR, STATUS_COLOURS, new_figure, png_data_url

    names = audit["judges"]
    fig = new_figure(9, 3.4)
    left, right = fig.subplots(1, 2)
    for x, name in enumerate(names):
        j = audit["per_judge"][name]
        for offset, key, colour, label in ((-0.2, "original_passed", BEFORE_COLOUR, "original"),
                                           (0.2, "improved_passed", "#4575b4", "improved")):
            left.bar(x + offset, j[key], width=0.38, color=colour, label=label if x == 0 else None)
            left.text(x + offset, j[key], str(j[key]), ha="center", va="bottom", fontsize=8)
        bottom = 0
        for status in ("improved", "unchanged", "worse"):
            count = j[f"{status}_problems"]
            right.bar(x, count, bottom=bottom, width=0.6, color=STATUS_COLOURS[status], label=status if x == 0 else None)
            if count:
                right.text(x, bottom + count / 2, str(count), ha="center", va="center", fontsize=8, color="white")
            bottom += count
    for ax, ylabel in ((left, "tests passed"), (right, "problems")):
        ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=3, frameon=False)
    left.set_ylim(0, max(audit["tests"], 1) * 1.15)
    right.set_ylim(0, max(audit["problems"], 1) * 1.05)
    return png_data_url(fig)


def audit_table_html(audit: dict[str, Any]) -> str:
    from report_html import esc

    n, tests = audit["problems"], audit["tests"]
    rows = "".join(
        f"<tr><td>{esc(name)}</td><td class=\"num\">{j['original_passed']} → {j['improved_passed']} of {tests}</td>"
        f"<td class=\"num\">{j['original_fully_passing']} → {j['improved_fully_passing']} of {n}</td>"
        f"<td class=\"num\">{j['improved_problems']}</td><td class=\"num\">{j['unchanged_problems']}</td>"
        f"<td class=\"num\">{j['worse_problems']}</td></tr>"
        for name, j in ((name, audit["per_judge"][name]) for name in audit["judges"]))
    return ('<table id="judge-audit"><thead><tr><th>judge</th><th>tests passed</th><th>fully passing</th>'
            "<th>improved</th><th>unchanged</th><th>worse</th></tr></thead><tbody>" + rows + "</tbody></table>")


def changes_html(audit: dict[str, Any]) -> str:
    from report_html import esc

    if not audit["status_changes"]:
        return '<p class="note">No problem changes status with the judge.</p>'
    head = "".join(f"<th>{esc(j)}</th>" for j in audit["judges"])
    body = "".join(
        f"<tr><td class=\"num\">{esc(c['problem_id'])}</td><td>{esc(c['name'])}</td>"
        + "".join(f"<td class=\"{esc(c['status'][j])}\">{esc(c['status'][j])} "
                  f"({c['original_passed'][j]} → {c['improved_passed'][j]} of {c['tests']})</td>"
                  for j in audit["judges"])
        + "</tr>" for c in audit["status_changes"])
    return (f'<table id="judge-status-changes"><thead><tr><th>#</th><th>name</th>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def feedback_audit_html(audit: dict[str, Any]) -> str:
    """The audit a model_feedback run stored in its results file (``audit``): per judge, per pair."""
    from report_html import esc

    n, tests = audit.get("problems") or 0, audit.get("tests") or 0
    per_judge = "".join(
        f"<tr><td>{esc(j)}</td><td class=\"num\">{esc(audit['passed'].get(j))} of {tests}</td>"
        f"<td class=\"num\">{esc(audit['fully_passing'].get(j))} of {n}</td></tr>" for j in audit.get("judges", []))
    pairs = "".join(
        f"<tr><td>{esc(p['first'])} vs {esc(p['second'])}</td><td class=\"num\">{esc(p['verdicts_changed'])}</td>"
        f"<td class=\"num\">{esc(p['problems_changed'])}</td></tr>" for p in audit.get("pairs", []))
    return ('<table id="feedback-audit" style="width:auto"><thead><tr><th>judge</th><th>tests passed</th>'
            f"<th>fully passing</th></tr></thead><tbody>{per_judge}</tbody></table>"
            '<table id="feedback-audit-pairs" style="width:auto"><thead><tr><th>judge pair</th><th>verdicts changed</th>'
            f"<th>fully passing changed</th></tr></thead><tbody>{pairs}</tbody></table>")


def audit_html(r: dict[str, Any]) -> str:
    """The report's judge-sensitivity section; empty when the comparison ran no audit."""
    from report_html import esc, figure_html

    parts = []
    audit = r.get("judge_audit")
    if audit:
        caption = (f"Each program ran once; its outputs were judged again by each judge ({', '.join(audit['judges'])}). "
                   f"Left: tests passed of {audit['tests']}, original and improved. Right: problems improved, "
                   f"unchanged and worse under each judge. {len(audit['status_changes'])} problem(s) change status "
                   "with the judge.")
        parts += ["<h2>Judge sensitivity</h2>", audit_table_html(audit),
                  figure_html("fig-judges", plot_judges(audit),
                              "Bar charts of tests passed and of problem status under each judge", caption),
                  "<h3>Problems whose status depends on the judge</h3>", changes_html(audit)]
    stored = r.get("feedback_audit")
    if stored:
        parts += ["<h2>Judge sensitivity of the model_feedback run</h2>",
                  f'<p class="meta">From <code>{esc(r.get("feedback_audit_file"))}</code>.</p>',
                  feedback_audit_html(stored)]
    return "".join(parts)


def read_feedback_audit(path: str) -> dict[str, Any]:
    """The ``audit`` block of a model_feedback.py ``--output`` file run with ``--judges``."""
    import json

    from errors import InputError

    try:
        document = json.loads(open(path, encoding="utf-8").read())
    except FileNotFoundError:
        raise InputError(f"{path}: --feedback-audit file not found") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a model_feedback results file: {exc}") from None
    audit = document.get("audit") if isinstance(document, dict) else None
    if not isinstance(audit, dict) or not isinstance(audit.get("judges"), list):
        raise InputError(f"{path}: no judge audit in this results file (run model_feedback.py with --judges A,B,...)")
    return audit
