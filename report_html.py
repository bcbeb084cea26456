"""The comparison as one self-contained HTML page: headline figures, the significance statement,
plots (per-problem before/after, pass ratio by repair iteration, verdict mix, feedback/held-out
split) and the table of problems.

Self-contained means it works offline and from an e-mail attachment: plots are PNGs drawn with
matplotlib's Agg backend and inlined as base64 ``data:`` URLs, the CSS and the one small script are
inline, and a Content-Security-Policy forbids every network fetch. All text from the files
(problem names, statements, errors) is untrusted and goes through ``html.escape``.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # no display; must precede any pyplot import elsewhere in the process
from matplotlib.figure import Figure  # noqa: E402  (object API: no global pyplot state)

from atomic_io import write_atomic_text  # noqa: E402
from records import VERDICTS  # noqa: E402

MAX_ROWS_PLOTTED = 60  # beyond this the per-problem plot shows the most changed problems only
STATUS_COLOURS = {"improved": "#1a9850", "unchanged": "#7f7f7f", "worse": "#d73027", "error": "#984ea3"}
VERDICT_COLOURS = {"passed": "#1a9850", "wrong_answer": "#fdae61", "runtime_error": "#d73027",
                   "timeout": "#4575b4", "memory_limit": "#984ea3", "output_limit": "#8c510a"}
BEFORE_COLOUR = "#9e9e9e"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0; background: #f6f7f9; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 4px; } h2 { font-size: 1.2em; margin: 32px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta { color: #555; font-size: 0.9em; word-break: break-all; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 12px; margin: 18px 0; }
.card { border: 1px solid #e0e0e0; border-radius: 8px; padding: 10px 14px; background: #fafafa; }
.card .label { color: #666; font-size: 0.85em; } .card .value { font-size: 1.45em; font-weight: 600; }
.card .sub { color: #555; font-size: 0.85em; }
.good { color: #1a7f45; } .bad { color: #c0392b; }
.verdict { border-left: 5px solid #888; padding: 10px 14px; background: #f3f3f3; margin: 12px 0; }
.verdict.significant { border-color: #1a9850; background: #eef8f1; }
.warning { border-left: 5px solid #e69500; background: #fff6e5; padding: 8px 14px; margin: 8px 0; }
figure { margin: 16px 0; } figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: 0.9em; margin-top: 4px; }
.note { color: #555; font-style: italic; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; position: sticky; top: 0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.worse td { background: #fde8e6; } tr.improved td:nth-child(6) { color: #1a7f45; font-weight: 600; }
tr.worse td:nth-child(6) { color: #c0392b; font-weight: 600; } tr.error td { background: #f3ecf7; }
code { font-size: 0.95em; }
"""

# Runs offline after the page loads: records whether every plot decoded (used by the browser test).
SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.querySelectorAll('figure img'));
  var ok = imgs.length > 0 && imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.dataset.plotCount = String(imgs.length);
  document.body.dataset.plotsLoaded = ok ? 'true' : 'false';
});
"""


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png_data_url(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def label_of(row: dict[str, Any]) -> str:
    """Tick label; "$" is escaped so matplotlib does not read an untrusted name as mathtext."""
    name = (row.get("name") or "")[:24].replace("$", r"\$")
    return f"#{row['problem_id']} {name}".strip()


def plotted_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Problems for the per-problem plot: all, or the most changed when there are too many to read."""
    ok = [r for r in rows if r["status"] != "error"]
    if len(ok) > MAX_ROWS_PLOTTED:
        ok = sorted(ok, key=lambda r: (-abs(r["improvement"]), r["problem_id"]))[:MAX_ROWS_PLOTTED]
    return sorted(ok, key=lambda r: (r["improvement"], r["problem_id"]))


def plot_per_problem(rows: Sequence[dict[str, Any]]) -> str:
    """Dumbbell plot: grey dot before, coloured dot after, one row per problem."""
    shown = plotted_rows(rows)
    fig = new_figure(9, max(2.2, 0.32 * len(shown) + 1.2))
    ax = fig.add_subplot()
    for y, r in enumerate(shown):
        colour = STATUS_COLOURS[r["status"]]
        ax.plot([r["original_ratio"], r["improved_ratio"]], [y, y], color=colour, linewidth=2.5, alpha=0.6, zorder=1)
        ax.scatter([r["original_ratio"]], [y], color=BEFORE_COLOUR, s=45, zorder=2)
        ax.scatter([r["improved_ratio"]], [y], color=colour, s=60, zorder=3, marker="o" if r["status"] != "unchanged" else "D")
    ax.set_yticks(range(len(shown)), [label_of(r) for r in shown], fontsize=8)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.7, len(shown) - 0.3)
    ax.set_xlabel("pass ratio (grey: original, colour: improved)")
    ax.grid(axis="x", alpha=0.3)
    handles = [ax.scatter([], [], color=BEFORE_COLOUR, label="original")]
    handles += [ax.scatter([], [], color=STATUS_COLOURS[s], label=f"improved program: {s}") for s in ("improved", "unchanged", "worse")]
    fig.legend(handles=handles, loc="outside upper center", ncol=4, fontsize=8, frameon=False)
    return png_data_url(fig)


def best_so_far(ratios: Sequence[float | None], length: int) -> list[float | None]:
    """Best ratio up to each iteration, carried forward over iterations without a score (an answer
    with no code) and after the problem stopped (the repair keeps its best). None before any score."""
    out: list[float | None] = []
    best: float | None = None
    for i in range(length):
        value = ratios[i] if i < len(ratios) else None
        if value is not None:
            best = value if best is None else max(best, value)
        out.append(best)
    return out


def plot_iterations(rows: Sequence[dict[str, Any]]) -> str:
    """Each problem's pass ratio by iteration (thin lines; an iteration without a score is a gap,
    so later points keep their iteration number) and the mean of the best so far (thick)."""
    series = [r["iteration_ratios"] for r in rows if r.get("iteration_ratios")]
    length = max(len(s) for s in series)
    fig = new_figure(9, 4.2)
    ax = fig.add_subplot()
    for ratios in series:
        points = [(i, v) for i, v in enumerate(ratios) if v is not None]
        ax.plot(range(len(ratios)), [float("nan") if v is None else v for v in ratios], color="#4575b4",
                alpha=0.35, linewidth=1.2)
        ax.plot([i for i, _ in points], [v for _, v in points], linestyle="none", color="#4575b4", alpha=0.35,
                marker="o", markersize=3)
    mean = mean_best_so_far(series, length)
    ax.plot(range(length), [float("nan") if v is None else v for v in mean], color="#d73027", linewidth=3, marker="o",
            label="mean of best so far")
    ax.set_xticks(range(length))
    ax.set_xlabel("iteration (0 = original program)")
    ax.set_ylabel("pass ratio on the tests shown to the model")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.plot([], [], color="#4575b4", alpha=0.5, label="one problem")
    ax.legend(loc="lower right", fontsize=9)
    return png_data_url(fig)


def mean_best_so_far(series: Sequence[Sequence[float | None]], length: int) -> list[float | None]:
    """Per iteration, the mean over problems of the best ratio so far (problems without a score yet left out)."""
    bests = [best_so_far(s, length) for s in series]
    out: list[float | None] = []
    for i in range(length):
        values = [b[i] for b in bests if b[i] is not None]
        out.append(sum(values) / len(values) if values else None)
    return out


def plot_verdicts(before: dict[str, int], after: dict[str, int]) -> str:
    """Stacked bars of the verdict mix (share of all tests) before and after."""
    fig = new_figure(9, 2.6)
    ax = fig.add_subplot()
    bars = [("improved", after), ("original", before)]
    for y, (_, counts) in enumerate(bars):
        total = sum(counts.values()) or 1
        left = 0.0
        for verdict in VERDICTS:
            n = counts.get(verdict, 0)
            if not n:
                continue
            width = n / total
            ax.barh(y, width, left=left, color=VERDICT_COLOURS[verdict], edgecolor="white",
                    label=verdict if y == 0 or verdict not in after else None)
            if width > 0.06:
                ax.text(left + width / 2, y, str(n), ha="center", va="center", fontsize=9, color="white", fontweight="bold")
            left += width
    ax.set_yticks(range(len(bars)), [name for name, _ in bars])
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of all tests")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(unique.values(), unique.keys(), loc="outside lower center", ncol=6, fontsize=8, frameon=False)
    return png_data_url(fig)


def plot_split(split: dict[str, Any]) -> str:
    """Grouped bars: mean pass ratio on feedback tests and held-out tests, before and after."""
    fig = new_figure(7, 3.2)
    ax = fig.add_subplot()
    parts = [("feedback tests", split["feedback"]), ("held-out tests", split["held_out"])]
    for x, (_, figures) in enumerate(parts):
        for offset, key, colour, label in ((-0.18, "original_mean_ratio", BEFORE_COLOUR, "original"),
                                           (0.18, "improved_mean_ratio", "#4575b4", "improved")):
            value = figures[key]
            ax.bar(x + offset, value, width=0.34, color=colour, label=label if x == 0 else None)
            ax.text(x + offset, value + 0.02, f"{value:.2f}", ha="center", fontsize=9)
    ax.set_xticks(range(len(parts)), [name for name, _ in parts])
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("mean pass ratio")
    # Outside the axes (above the plot): a legend inside would cover the "1.00" labels of full bars.
    fig.legend(fontsize=9, loc="outside upper center", ncol=2, frameon=False)
    return png_data_url(fig)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def figure_html(fig_id: str, data_url: str, alt: str, caption: str) -> str:
    return (f'<figure id="{esc(fig_id)}"><img src="{data_url}" alt="{esc(alt)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def card(label: str, value: str, sub: str = "", tone: str = "") -> str:
    return (f'<div class="card"><div class="label">{esc(label)}</div>'
            f'<div class="value {tone}">{esc(value)}</div><div class="sub">{esc(sub)}</div></div>')


def tone_of(change: float) -> str:
    return "good" if change > 0 else "bad" if change < 0 else ""


def number(value: float | None, spec: str = ".3f") -> str:
    """A figure, or "-" when there is none (no problem could be compared)."""
    return "-" if value is None else format(value, spec)


def headline_html(r: dict[str, Any]) -> str:
    n = r["total_problems"]
    return '<div class="cards">' + "".join([
        card("problems improved / unchanged / worse",
             f"{r['improved_problems']} / {r['unchanged_problems']} / {r['worse_problems']}",
             f"{n} compared · errors: {r['error_problems']} · without an improved answer: {r['no_improved_answer_problems']}"),
        card("total pass ratio", f"{r['original_overall_ratio']:.3f} → {r['improved_overall_ratio']:.3f}",
             f"{r['original_total_passed']}/{r['original_total_tests']} → {r['improved_total_passed']}/{r['improved_total_tests']} tests "
             f"({r['overall_ratio_change']:+.3f})", tone_of(r["overall_ratio_change"])),
        card("mean per-problem improvement", number(r["overall_improvement"], "+.3f"),
             f"mean ratio {number(r['original_mean_ratio'])} → {number(r['improved_mean_ratio'])}",
             tone_of(r["overall_improvement"] or 0.0)),
        card("fully passing problems", f"{r['original_fully_passing']} → {r['improved_fully_passing']}", f"of {n}",
             tone_of(r["improved_fully_passing"] - r["original_fully_passing"])),
    ]) + "</div>"


def significance_html(r: dict[str, Any]) -> str:
    sig = r["significance"]
    cls = "verdict significant" if sig["significant"] else "verdict"
    return (f'<div class="{cls}" id="significance"><strong>{esc(sig["statement"])}</strong>'
            f'<div class="meta">Method: {esc(sig["method"])}; n = {esc(sig["n"])} problems.</div></div>')


def warnings_html(r: dict[str, Any]) -> str:
    return "".join(f'<div class="warning">{esc(w)}</div>' for w in r["warnings"])


def verdict_text(counts: dict[str, int] | None) -> str:
    if not counts:
        return "-"
    return ", ".join(f"{v} {n}" for v, n in counts.items())


def ratio_cell(passed: int | None, total: int | None) -> str:
    if passed is None or not total:
        return "-"
    return f"{passed}/{total} ({passed / total:.3f})"


def table_html(rows: Sequence[dict[str, Any]]) -> str:
    head = ("<table id=\"problems\"><thead><tr><th>#</th><th>name</th><th>before</th><th>after</th>"
            "<th>change</th><th>status</th><th>verdicts before</th><th>verdicts after</th><th>notes</th></tr></thead><tbody>")
    body = []
    for r in rows:
        notes = []
        if r.get("no_improved_answer"):
            notes.append("no improved answer (counted as unchanged)")
        if r.get("no_original_answer"):
            notes.append("no original answer (run as an empty program)")
        if r.get("same_program"):
            notes.append("same program")
        if r.get("rests_on_unstable"):
            notes.append("rests on an unstable (timing-flaky) verdict")
        if r.get("error"):
            notes.append(f"error: {r['error']}")
        split = r.get("split")
        if split:
            notes.append(f"feedback {split['feedback']['original_ratio']:.2f}→{split['feedback']['improved_ratio']:.2f}, "
                         f"held-out {split['held_out']['original_ratio']:.2f}→{split['held_out']['improved_ratio']:.2f}")
        change = "-" if r["improvement"] is None else f"{r['improvement']:+.3f}"
        body.append(
            f'<tr class="{esc(r["status"])}"><td class="num">{esc(r["problem_id"])}</td><td>{esc(r.get("name"))}</td>'
            f'<td class="num">{esc(ratio_cell(r["original_passed"], r["original_total"]))}</td>'
            f'<td class="num">{esc(ratio_cell(r["improved_passed"], r["improved_total"]))}</td>'
            f'<td class="num">{esc(change)}</td><td>{esc(r["status"])}</td>'
            f'<td>{esc(verdict_text(r.get("original_verdicts")))}</td><td>{esc(verdict_text(r.get("improved_verdicts")))}</td>'
            f'<td>{esc("; ".join(notes))}</td></tr>')
    return head + "".join(body) + "</tbody></table>"


def split_html(r: dict[str, Any]) -> str:
    split = r.get("split")
    if not split or not split.get("feedback"):
        if r.get("scores_on_shown_tests") is True:
            return ('<p class="note">No feedback/held-out split: the repair run showed the model all tests, so there is '
                    "no held-out measure of generalisation.</p>")
        return '<p class="note">The repair summary records no feedback/held-out split.</p>'
    fb, ho = split["feedback"], split["held_out"]
    caption = (f"Mean pass ratio over {split['problems']} problems on the tests the model was shown (feedback) and on "
               f"tests it never saw (held-out); source: {split['source']}. Feedback {fb['original_mean_ratio']:.3f} → "
               f"{fb['improved_mean_ratio']:.3f}, held-out {ho['original_mean_ratio']:.3f} → {ho['improved_mean_ratio']:.3f}.")
    return figure_html("fig-split", plot_split(split), "Bar chart of mean pass ratio on feedback and held-out tests, before and after repair", caption)


def cost_html(r: dict[str, Any]) -> str:
    cost = r.get("cost")
    if not cost:
        return '<p class="note">No tokens or cost recorded (no repair summary, or it has no token counts).</p>'
    rows = [("model", cost.get("model")), ("provider", cost.get("provider")),
            ("input tokens", f"{cost['input_tokens']:,}" if cost.get("input_tokens") is not None else None),
            ("output tokens", f"{cost['output_tokens']:,}" if cost.get("output_tokens") is not None else None),
            ("estimated cost (USD)", f"${cost['estimated_cost_usd']:.4f}" if cost.get("estimated_cost_usd") is not None else None),
            ("source", cost.get("source"))]
    return ('<table id="cost" style="width:auto">' + "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(v if v is not None else '-')}</td></tr>" for k, v in rows) + "</table>")


def plots_html(r: dict[str, Any]) -> str:
    rows = r["problem_details"]
    ok = [x for x in rows if x["status"] != "error"]
    parts = ["<h2>Per problem</h2>"]
    if ok:
        shown = len(plotted_rows(rows))
        caption = ("Pass ratio of each problem before (grey) and after repair (green: improved, grey diamond: unchanged, "
                   "red: worse), sorted by change.")
        if shown < len(ok):
            caption += f" Showing the {shown} most changed of {len(ok)} problems; the table lists all."
        parts.append(figure_html("fig-per-problem", plot_per_problem(rows),
                                 "Dumbbell plot of each problem's pass ratio before and after repair", caption))
    else:
        parts.append('<p class="note">No problem could be compared.</p>')
    parts.append("<h2>Pass ratio by repair iteration</h2>")
    if any(x.get("iteration_ratios") for x in ok):
        parts.append(figure_html(
            "fig-iterations", plot_iterations(ok), "Line chart of pass ratio by repair iteration for each problem",
            "From the repair summary: each problem's pass ratio at each iteration on the tests the model was shown, "
            "and the mean of the best ratio so far (a problem that stopped keeps its best)."))
    else:
        parts.append('<p class="note" id="no-iterations">No pass ratio by iteration: no repair summary with iterations was found.</p>')
    parts.append("<h2>Verdict mix</h2>")
    if ok:
        parts.append(figure_html(
            "fig-verdicts", plot_verdicts(r["original_verdicts"], r["improved_verdicts"]),
            "Stacked bar chart of test verdicts before and after repair",
            f"Verdicts over all {r['original_total_tests']} tests. Before: {verdict_text(r['original_verdicts'])}. "
            f"After: {verdict_text(r['improved_verdicts'])}."))
    return "".join(parts)


def render_report(r: dict[str, Any]) -> str:
    """The whole page as a string (no file access, no network)."""
    from report_science import science_html  # pass rate against tokens, resampling, memorisation, flakes
    from compare_judges import audit_html  # --judges: the judge-sensitivity section

    worse = r["worse"]
    worse_html = ("<p>None.</p>" if not worse else "<ul>" + "".join(
        f"<li>#{esc(w['problem_id'])} {esc(w['name'])}: {w['original_ratio']:.3f} → {w['improved_ratio']:.3f} "
        f"({w['improvement']:+.3f})</li>" for w in worse) + "</ul>")
    best = r["most_improved"]
    best_html = ("<p>None.</p>" if not best else "<ul>" + "".join(
        f"<li>#{esc(b['problem_id'])} {esc(b['name'])}: {b['original_ratio']:.3f} → {b['improved_ratio']:.3f} "
        f"({b['improvement']:+.3f})</li>" for b in best) + "</ul>")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = (f"Model key <code>{esc(r['model_key'])}</code>"
            + (f" (repaired by {esc(r.get('repair_model'))})" if r.get("repair_model") else "")
            + f" · original <code>{esc(r['original_file'])}</code> · improved <code>{esc(r['improved_file'])}</code>"
            + (f" · summary <code>{esc(r['summary_file'])}</code>" if r.get("summary_file") else " · no repair summary")
            + f" · executor {esc(r['executor'])}, timeout {esc(format(r['timeout'], 'g'))} s, both programs re-run in one run"
            + f" · generated {esc(generated)}")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Repair comparison: {esc(r['model_key'])}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1>Did repair help?</h1>
<p class="meta">{meta}</p>
{headline_html(r)}
{significance_html(r)}
{warnings_html(r)}
{plots_html(r)}
<h2>Feedback vs held-out tests</h2>
{split_html(r)}
{science_html(r)}
{audit_html(r)}
<h2>Most improved</h2>
{best_html}
<h2>Worse after repair</h2>
{worse_html}
<h2>All problems</h2>
{table_html(r['problem_details'])}
<h2>Tokens and cost</h2>
{cost_html(r)}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""


def write_report(path: str, result: dict[str, Any]) -> None:
    """Write the page atomically (readers never see half a report)."""
    write_atomic_text(path, render_report(result))
