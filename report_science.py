"""The report's science sections (``strategy_compare.py``'s figures): pass rate against tokens
for each strategy with bootstrap bands, repair against resampling at equal tokens, the
memorisation flags with their reasons and the headline without flagged programs, and the timing
flakes (unstable verdicts, flip rate, machine load). ``report_html.render_report`` places them;
plots and escaping are report_html's.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from report_html import esc, figure_html, new_figure, number, png_data_url

STRATEGY_COLOURS = {"repair": "#d73027", "resample": "#4575b4"}
STRATEGY_LABELS = {"repair": "repair (feedback loop)", "resample": "resample (fresh answers)"}


def plot_pass_vs_tokens(curves: Mapping[str, Sequence[Mapping[str, Any]]], axis_label: str) -> str:
    """Two panels (strict, average): each strategy's step curve and its 95% bootstrap band."""
    fig = new_figure(9, 3.8)
    axes = fig.subplots(1, 2, sharex=True)
    last = max((p["tokens"] for points in curves.values() for p in points), default=0)
    end = last * 1.04 if last else 1  # a little room after the last change, so its level shows
    # a strategy that stopped keeps its programs: its curve runs on flat to the right edge
    curves = {s: list(points) + ([{**points[-1], "tokens": end}] if points and points[-1]["tokens"] < end else [])
              for s, points in curves.items()}
    for ax, metric, title in ((axes[0], "strict", "share of problems passing every test"),
                              (axes[1], "average", "mean pass ratio")):
        for strategy, points in curves.items():
            if not points:
                continue
            colour = STRATEGY_COLOURS.get(strategy, "#333333")
            xs = [p["tokens"] for p in points]
            ax.fill_between(xs, [p[f"{metric}_low"] for p in points], [p[f"{metric}_high"] for p in points],
                            step="post", color=colour, alpha=0.18, linewidth=0)
            ax.step(xs, [p[metric] for p in points], where="post", color=colour, linewidth=2.4,
                    label=STRATEGY_LABELS.get(strategy, strategy))
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlim(-0.02 * end, end)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(axis_label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("pass rate at this many tokens")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=2, fontsize=9, frameon=False)
    return png_data_url(fig)


def informative(curves: Mapping[str, Sequence[Any]] | None) -> bool:
    """Some strategy spent tokens (a curve of one point at 0 tokens says nothing)."""
    return bool(curves) and any(len(points) > 1 for points in curves.values())  # type: ignore[union-attr]


def curves_html(r: Mapping[str, Any]) -> str:
    curves = r.get("pass_vs_tokens")
    if not informative(curves):
        return ('<p class="note" id="no-pass-vs-tokens">No pass rate against tokens: the repair summary records no '
                "model calls with tokens (or there is no summary).</p>")
    parts = []
    for strategy, points in curves.items():
        if points:
            last = points[-1]
            parts.append(f"{STRATEGY_LABELS.get(strategy, strategy)}: strict {points[0]['strict']:.3f} → "
                         f"{last['strict']:.3f}, average {points[0]['average']:.3f} → {last['average']:.3f} at "
                         f"{last['tokens']:,} tokens over {last['problems']} problems")
    caption = ("Pass rate reached against cumulative tokens (input + output) recorded per problem, the kept program "
               "scored on all tests by this run; shaded: 95% percentile bootstrap band over problems. " + "; ".join(parts) + ".")
    html_parts = [figure_html("fig-pass-vs-tokens", plot_pass_vs_tokens(curves, "tokens spent per problem (input + output)"),
                              "Step plot of pass rate against tokens for each strategy with bootstrap bands", caption)]
    output_curves = r.get("pass_vs_output_tokens")
    if informative(output_curves):
        html_parts.append(figure_html(
            "fig-pass-vs-output-tokens", plot_pass_vs_tokens(output_curves, "output tokens spent per problem"),
            "Step plot of pass rate against output tokens for each strategy with bootstrap bands",
            "The same curves against output tokens only (what a provider charges most for)."))
    return "".join(html_parts)


def versus_html(r: Mapping[str, Any]) -> str:
    versus = r.get("repair_vs_resample")
    if not versus:
        return ('<p class="note" id="no-repair-vs-resample">No resampling baseline in this run: run '
                "iterative_repair.py with --strategy repair,resample to compare repair with resampling at equal tokens.</p>")
    cls = "verdict significant" if versus["significant"] else "verdict"
    tokens = versus["tokens"]
    ratio = tokens.get("resample_over_repair")
    rows = "".join(
        f"<tr><td class=\"num\">{esc(p['problem_id'])}</td><td class=\"num\">{p['budget_tokens']:,}</td>"
        f"<td class=\"num\">{p['repair_tokens']:,}</td><td class=\"num\">{p['resample_tokens']:,}</td>"
        f"<td class=\"num\">{p['repair_ratio']:.3f}</td><td class=\"num\">{p['resample_ratio']:.3f}</td>"
        f"<td class=\"num\">{p['difference']:+.3f}</td></tr>" for p in versus["per_problem"])
    held = versus.get("held_out")
    without = versus.get("without_flagged")
    return (f'<div class="{cls}" id="repair-vs-resample"><strong>{esc(versus["statement"])}</strong>'
            f'<p>Winner: {esc(versus["winner"])}. Tokens recorded: repair {tokens["repair"]:,}, '
            f'resample {tokens["resample"]:,} (ratio {number(ratio)}).</p>'
            + (f"<p>Held-out tests: {esc(held['statement'])}</p>" if held else "")
            + (f"<p>Without programs flagged by the memorisation check: {esc(without['statement'])}</p>" if without else "")
            + "</div>"
            '<table id="repair-vs-resample-problems"><thead><tr><th>#</th><th>budget (tokens)</th><th>repair tokens</th>'
            "<th>resample tokens</th><th>repair</th><th>resample</th><th>difference</th></tr></thead><tbody>"
            + rows + "</tbody></table>")


def memorisation_html(r: Mapping[str, Any]) -> str:
    mem = r.get("memorisation")
    if not mem:
        return '<p class="note">No memorisation check (no repaired program).</p>'
    head = (f'<p id="memorisation-count">{mem["flagged_count"]} of {mem["checked"]} repaired or resampled program(s) '
            f"flagged. {esc(mem['method'])}.</p>")
    if not mem["flagged"]:
        return head
    items = "".join(
        f"<li>#{esc(f['problem_id'])} {esc(f['name'])} ({esc(f['strategy'])}):<ul>"
        + "".join(f"<li><code>{esc(x['reason'])}</code> (line {esc(x['line'])}): {esc(x['detail'])}</li>" for x in f["reasons"])
        + "</ul></li>" for f in mem["flagged"])
    w = mem["without_flagged"]
    without = (f'<p id="without-flagged">Without the flagged repaired programs: {w["total_problems"]} problems, '
               f"{w['improved_problems']} improved / {w['unchanged_problems']} unchanged / {w['worse_problems']} worse, "
               f"mean per-problem improvement {number(w['overall_improvement'], '+.3f')} "
               f"({number(w['original_mean_ratio'])} → {number(w['improved_mean_ratio'])}), fully passing "
               f"{w['original_fully_passing']} → {w['improved_fully_passing']}. {esc(w['significance']['statement'])}</p>")
    return head + f'<ul id="memorisation">{items}</ul>' + without


def flakes_html(r: Mapping[str, Any]) -> str:
    unstable = r.get("unstable_verdicts")
    flips = r.get("flip_rate")
    if not unstable and not flips:
        return ('<p class="note" id="no-flakes">Timing flakes were not measured: run with --recheck-timeouts K '
                "(here or in the repair run).</p>")
    parts = []
    if unstable:
        listed = ", ".join(f"#{p['problem_id']} ({p['status']}, test {', '.join(map(str, p['tests']))})"
                           for p in unstable["problems"]) or "none"
        parts.append(f'<p id="unstable-verdicts">{unstable["improvements_on_unstable"]} of {unstable["improvements"]} '
                     f"improvement(s) and {unstable['regressions_on_unstable']} of {unstable['regressions']} regression(s) "
                     f"rest on a test whose verdict changed when rerun (source: {esc(unstable['source'])}): {esc(listed)}.</p>")
    if flips and flips.get("rate") is not None:
        lo, hi = flips["ci"]
        machine = flips.get("machine") or {}
        parts.append(f'<p id="flip-rate">Flip rate {flips["rate"]:.3f} (95% interval {lo:.3f}–{hi:.3f}): '
                     f"{flips['flips']} of {flips['reruns']} reruns changed verdict; {flips['unstable_tests']} of "
                     f"{flips['tests_rechecked']} rechecked tests unstable. Machine: load average "
                     f"{esc(machine.get('load_average'))}, {esc(machine.get('cpu_count'))} CPUs "
                     f"(source: {esc(r.get('flip_rate_source'))}).</p>")
    elif flips:
        parts.append('<p id="flip-rate">No test needed a recheck (no timeout and no pass near the limit).</p>')
    return "".join(parts)


def science_html(r: Mapping[str, Any]) -> str:
    """The sections, in reading order."""
    return ("<h2>Pass rate against tokens</h2>" + curves_html(r)
            + "<h2>Repair versus resampling at equal tokens</h2>" + versus_html(r)
            + "<h2>Memorisation check</h2>" + memorisation_html(r)
            + "<h2>Timing flakes</h2>" + flakes_html(r))
