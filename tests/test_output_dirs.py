"""Output paths are checked before any work, and no folder the user did not ask for is created:
an ``--output-file`` (or ``--report``) under a missing folder is one ``error:`` line, exit 2, with
nothing created and nothing run (no model call, no table). Real CLIs in subprocesses against the
scripted model server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, clean_env
from fake_llm_server import FakeLLMServer, repairing_handler, write_problems

from atomic_io import write_atomic_json
from errors import WriteError
from repair_store import ResponseCache


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def repair(tmp_path: Path, server: FakeLLMServer, *extra: str) -> subprocess.CompletedProcess[str]:
    problems = write_problems(tmp_path / "problems.json")
    return subprocess.run(
        [sys.executable, str(ROOT / "iterative_repair.py"), "--solution-file", str(problems),
         "--model-name", "claude-sonnet-4-6", "--base-url", server.anthropic_base_url, "--no-progress",
         "--max-retries", "0", "--executor", "local", "--timeout", "5", *extra],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120)


def test_repair_output_under_a_missing_folder_is_refused_before_any_call(tmp_path: Path) -> None:
    with FakeLLMServer(repairing_handler) as server:
        proc = repair(tmp_path, server, "--output-file", str(tmp_path / "nonexistent" / "dir" / "x.json"),
                      "--cache-file", str(tmp_path / "cache.sqlite"))
        calls = server.count()
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert line.startswith(f"error: {tmp_path / 'nonexistent' / 'dir' / 'x.json'}") and "does not exist" in line
    assert calls == 0 and proc.stdout == ""
    assert not (tmp_path / "nonexistent").exists()


def test_repair_cache_under_a_missing_tree_is_refused_before_any_call(tmp_path: Path) -> None:
    with FakeLLMServer(repairing_handler) as server:
        proc = repair(tmp_path, server, "--output-file", str(tmp_path / "out.json"),
                      "--cache-file", str(tmp_path / "no" / "such" / "cache.sqlite"))
        calls = server.count()
    assert proc.returncode == 2 and "does not exist" in one_line(proc.stderr)
    assert calls == 0 and not (tmp_path / "no").exists() and not (tmp_path / "out.json").exists()


def test_repair_default_cache_folder_is_made_one_level_deep(tmp_path: Path) -> None:
    """The default ``.librarybench_cache/`` is the one folder a run may add (inside the working folder)."""
    with FakeLLMServer(repairing_handler) as server:
        proc = repair(tmp_path, server, "--output-file", str(tmp_path / "out.json"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / ".librarybench_cache" / "responses.sqlite").is_file()


@pytest.mark.parametrize("flag", ["--output-file", "--report"])
def test_compare_output_under_a_missing_folder_is_refused_before_running(tmp_path: Path, flag: str) -> None:
    problems = write_problems(tmp_path / "problems.json")
    target = tmp_path / "newdir" / "sub" / "c.out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "compare_model_improvements.py"), "--original-file", str(problems),
         "--improved-file", str(problems), "--model-key", "sample", "--executor", "local", flag, str(target)],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert one_line(proc.stderr).startswith(f"error: {target}")
    assert proc.stdout == "" and not (tmp_path / "newdir").exists()


def test_atomic_write_and_cache_never_create_a_tree(tmp_path: Path) -> None:
    with pytest.raises(WriteError):
        write_atomic_json(tmp_path / "a" / "b" / "x.json", {})
    with pytest.raises(WriteError):
        ResponseCache(tmp_path / "c" / "d" / "cache.sqlite")
    assert sorted(tmp_path.iterdir()) == []
