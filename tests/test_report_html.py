"""The HTML report: self-contained, escaped, and rendered with its plots by headless Chromium."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project's modules
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the hand-made case

from PIL import Image

import compare_model_improvements as cmi
from conftest import require_chromium
from report_html import render_report, write_report
from test_compare_handmade import split_run  # noqa: F401  (module fixture: one CLI run on the hand-made case)

FIGURES = ("fig-per-problem", "fig-iterations", "fig-verdicts", "fig-split")
EVIL = '<script>alert("x")</script> & "quotes"'


def row(pid, before, after, total, *, name="p", iterations=None, split=None, error=None):
    """A problem_details row as compare_model_improvements builds it (no programs run)."""
    if error:
        return cmi.error_detail(pid, {"name": name}, error)
    status = "improved" if after > before else "worse" if after < before else "unchanged"
    return {"problem_id": pid, "name": name, "status": status, "error": None, "no_improved_answer": False,
            "no_original_answer": False, "iteration_ratios": iterations, "original_passed": before,
            "original_total": total, "original_ratio": before / total, "improved_passed": after, "improved_total": total,
            "improved_ratio": after / total, "improvement": (after - before) / total,
            "original_verdicts": {"passed": before, "wrong_answer": total - before} if total - before else {"passed": before},
            "improved_verdicts": {"passed": after, "timeout": total - after} if total - after else {"passed": after},
            "same_program": False, "split": split}


def synthetic_result(*, with_summary: bool = True) -> dict:
    split = {"source": "re-run",
             "feedback": {"tests": 1, "original_passed": 0, "original_ratio": 0.0, "improved_passed": 1, "improved_ratio": 1.0, "improvement": 1.0},
             "held_out": {"tests": 1, "original_passed": 0, "original_ratio": 0.0, "improved_passed": 0, "improved_ratio": 0.0, "improvement": 0.0}}
    rows = [
        row(0, 1, 4, 4, name=EVIL, iterations=[0.25, 0.5, 1.0] if with_summary else None, split=split if with_summary else None),
        row(1, 2, 2, 2, name="$x^2$ mathtext-like name", iterations=[1.0] if with_summary else None),
        row(2, 2, 1, 2, name="worse one"),
        row(3, 0, 0, 0, name="broken", error=f"execution API failed: {EVIL}"),
    ]
    summary = {"scores_on_shown_tests": False, "model": "fake-model", "provider": "openai",
               "aggregate": {"input_tokens": 1234, "output_tokens": 56, "estimated_cost_usd": 0.01}} if with_summary else None
    context = {"original_file": "a<b>.json", "improved_file": "improved_a.json", "summary_file": "summary_improved_a.json" if with_summary else None,
               "model_key": "sample_solution", "executor": "local", "isolation": "x", "timeout": 2.0, "exec_semaphore": 4,
               "problem_id": None, "repair_model": "fake-model", "warnings": [], "summary_disagreements": []}
    return cmi.build_comparison(rows, summary, context)


def test_report_is_self_contained_and_escaped():
    page = render_report(synthetic_result())
    assert page.startswith("<!DOCTYPE html>")
    for fig in FIGURES:
        assert re.search(rf'<figure id="{fig}"><img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="[^"]+">', page), fig
    # nothing is fetched: no external src/href, no external script, a CSP that forbids network access
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//|file:)""", page)
    assert "<script src" not in page and "default-src 'none'" in page
    # untrusted text is escaped everywhere (name, error, file name)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert "a&lt;b&gt;.json" in page
    assert '<tr class="worse">' in page and '<tr class="error">' in page
    assert "1,234" in page and "$0.0100" in page
    assert "distinguishable from noise" in page


def test_plots_decode_as_real_images():
    page = render_report(synthetic_result())
    urls = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(urls) == len(FIGURES)
    for data in urls:
        image = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
        assert image.width > 300 and image.height > 100
        assert len(image.getcolors(maxcolors=1 << 20)) > 20  # drawn, not blank


def test_report_without_summary_says_so(tmp_path):
    path = tmp_path / "r.html"
    write_report(str(path), synthetic_result(with_summary=False))
    page = path.read_text()
    assert 'id="fig-iterations"' not in page and 'id="no-iterations"' in page
    assert 'id="fig-per-problem"' in page and 'id="fig-verdicts"' in page
    assert "No tokens or cost recorded" in page
    assert oct(path.stat().st_mode & 0o044) != "0o0"  # readable by others, unlike a bare temporary file


# --------------------------------------------------------------------------------------------
# A real browser
# --------------------------------------------------------------------------------------------


def run_chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with networking and background services off (the page must need none)."""
    args = [require_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            f"--user-data-dir={profile}", *extra, url]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_report_renders_in_chromium(split_run, tmp_path):  # noqa: F811
    """The CLI's report for the hand-made case: every plot decoded in the browser, and a screenshot that is not blank."""
    url = split_run["report"].resolve().as_uri()
    dom = run_chromium(url, tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stdout[:500]
    assert 'data-plots-loaded="true"' in body.group(0), body.group(0)  # set by the page's script after load
    assert f'data-plot-count="{len(FIGURES)}"' in body.group(0)
    for fig in FIGURES:
        assert f'<figure id="{fig}">' in dom.stdout

    shot = tmp_path / "report.png"
    proc = run_chromium(url, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,3000")
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 3000)
    colours = image.getcolors(maxcolors=1 << 22)
    assert len(colours) > 200, "the screenshot looks blank"
    # the plots' colours are on screen: the green of improved problems and the red of worse ones
    present = {c for _, c in colours}
    assert (26, 152, 80) in present and (215, 48, 39) in present
    saved = os.environ.get("REPORT_SCREENSHOT")
    if saved:  # keep the screenshot for a human to look at
        shutil.copyfile(shot, saved)
