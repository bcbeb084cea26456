"""The README's keyless repair walkthrough: ``tests/fake_llm_server.py`` run as a script (a scripted
model in the OpenAI wire format), then the repair and compare commands against it, every one a
real subprocess as a user types it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from conftest import ROOT, clean_env

SAMPLES = ROOT / "data" / "sample_problems.json"


@pytest.fixture
def fake_model() -> Iterator[str]:
    """The server as the README starts it (any free port); yields its OpenAI base URL."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_llm_server.py"), "--port", "0",
                             "--answers", str(SAMPLES)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        found = re.search(r"--base-url (http://127\.0\.0\.1:\d+/v1)", first)
        assert found, first + proc.stderr.read() if proc.stderr else first
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert proc.stdout.read().strip() == "5 request(s) served"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=300)


def test_readme_walkthrough_against_the_fake_model(tmp_path: Path, fake_model: str) -> None:
    repair = [str(ROOT / "iterative_repair.py"), "--solution-file", str(SAMPLES), "--model-key", "sample_solution",
              "--model-name", "qwen2.5-coder:7b", "--base-url", fake_model]
    proc = run(*repair, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Total: 14/20 -> 20/20 tests passed on 6 problem(s)" in proc.stdout
    again = run(*repair, cwd=tmp_path)  # the checkpoint: nothing asked again
    assert again.returncode == 0 and "6 already done" in again.stdout, again.stderr
    summary = json.loads((tmp_path / "summary_improved_sample_problems.json").read_text())
    assert summary["complete"] is True and summary["aggregate"]["fully_passing_after"] == 6
    compare = run(str(ROOT / "compare_model_improvements.py"), "--original-file", str(SAMPLES), "--improved-file",
                  "improved_sample_problems.json", "--model-key", "sample_solution", "--report", "report.html",
                  cwd=tmp_path)
    assert compare.returncode == 0, compare.stderr
    assert "Fully passing: 1 -> 6 of 6" in compare.stdout
    assert (tmp_path / "report.html").stat().st_size > 10_000


def test_tests_find_the_shared_data_where_librarybench_shared_says(tmp_path: Path) -> None:
    """The README's Development section: ``LIBRARYBENCH_SHARED`` moves the shared data the tests read."""
    code = "import conftest; print(conftest.SHARED_DATA)"
    moved = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "tests", capture_output=True, text=True,
                           env=clean_env(LIBRARYBENCH_SHARED=str(tmp_path)), timeout=60)
    assert moved.stdout.strip() == str(tmp_path / "data" / "librarybench"), moved.stderr
    default = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "tests", capture_output=True, text=True,
                             env={k: v for k, v in clean_env().items() if k != "LIBRARYBENCH_SHARED"}, timeout=60)
    assert default.stdout.strip() == str(ROOT.parent / "shared" / "data" / "librarybench"), default.stderr
