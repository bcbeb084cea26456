"""Issue 15, "the first hour", for the repair loop: inputs checked before credentials (with a hint to
the shared data for a missing file), retired model ids warned about and still sent, a cached re-run
that says what it spent, labelled per-iteration lines. The real CLI (``main``) against the scripted
model server, real execution on the embedded executor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, clean_env, shared_data
from fake_llm_server import FakeLLMServer, repairing_handler, write_problems

import iterative_repair

pytestmark = pytest.mark.usefixtures("no_provider_env")

SEED_NAME = "claude_search_solutions.json"


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_seed_command_names_the_missing_file_and_the_shared_data(tmp_path: Path) -> None:
    """The seed's command from a project root whose data lives in ../shared/data/librarybench/:
    no API key set, yet the error is the missing file, with where a file of that name is."""
    project = tmp_path / "project"
    project.mkdir()
    shared = tmp_path / "shared" / "data" / "librarybench"
    shared.mkdir(parents=True)
    (shared / SEED_NAME).write_text("[]")
    proc = subprocess.run([sys.executable, str(ROOT / "iterative_repair.py"), "--solution-file", SEED_NAME],
                          cwd=project, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert line.startswith(f"error: {SEED_NAME}: file not found")
    assert f"../shared/data/librarybench/{SEED_NAME}" in line and "API_KEY" not in line


def test_seed_command_from_the_project_root_points_at_the_real_shared_data() -> None:
    shared_data(SEED_NAME)  # ../shared beside the project (CI has it)
    proc = subprocess.run([sys.executable, "iterative_repair.py", "--solution-file", SEED_NAME],
                          cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert one_line(proc.stderr) == (f"error: {SEED_NAME}: file not found (a file of that name is in "
                                     f"../shared/data/librarybench/: pass ../shared/data/librarybench/{SEED_NAME})")


def test_hint_from_elsewhere_names_the_shared_data_beside_the_toolkit(tmp_path: Path) -> None:
    """Run from a directory with no shared data near it: the copy beside the project is named in full."""
    path = shared_data(SEED_NAME)
    proc = subprocess.run([sys.executable, str(ROOT / "iterative_repair.py"), "--solution-file", SEED_NAME],
                          cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert one_line(proc.stderr).endswith(f"(a file of that name is in {path.resolve().parent}/: pass {path.resolve()})")


def test_missing_file_without_shared_copy_has_no_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert iterative_repair.main(["--solution-file", "no_such_file_anywhere.json"]) == 2
    assert one_line(capsys.readouterr().err) == "error: no_such_file_anywhere.json: file not found"


@pytest.mark.parametrize("content, extra, message", [
    ("[{", [], "not valid JSON"),
    (None, ["--model-key", "nobody"], "no selected record has key 'nobody'"),
])
def test_inputs_are_checked_before_credentials(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               content: str | None, extra: list[str], message: str) -> None:
    path = tmp_path / "problems.json"
    if content is None:
        write_problems(path)
    else:
        path.write_text(content)
    assert iterative_repair.main(["--solution-file", str(path), "--model-name", "claude-sonnet-4-6", *extra]) == 2
    line = one_line(capsys.readouterr().err)
    assert message in line and "ANTHROPIC_API_KEY" not in line


def test_missing_samples_file_is_checked_before_credentials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    problems = tmp_path / "mbpp.jsonl"
    problems.write_text(json.dumps({"task_id": 1, "text": "t", "test_list": ["assert True"]}) + "\n")
    assert iterative_repair.main(["--problems", str(problems), "--samples", str(tmp_path / "gone.jsonl")]) == 2
    assert one_line(capsys.readouterr().err) == f"error: {tmp_path / 'gone.jsonl'}: file not found"


def test_the_key_is_still_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    problems = write_problems(tmp_path / "problems.json")
    assert iterative_repair.main(["--solution-file", str(problems), "--model-name", "claude-sonnet-4-6"]) == 2
    assert "ANTHROPIC_API_KEY" in one_line(capsys.readouterr().err)


def run(server: FakeLLMServer, problems: Path, *extra: str) -> int:
    return iterative_repair.main(["--solution-file", str(problems), "--base-url", server.anthropic_base_url,
                                  "--cache-file", str(problems.parent / "cache.sqlite"), "--no-progress",
                                  "--max-retries", "1", "--executor", "local", "--timeout", "5",
                                  "--problem-ids", "0", *extra])


def test_retired_model_is_warned_about_and_still_sent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    problems = write_problems(tmp_path / "problems.json")
    with FakeLLMServer(repairing_handler) as server:
        assert run(server, problems, "--model-name", "claude-3-opus-20240229") == 0
    assert [r.body["model"] for r in server.requests] == ["claude-3-opus-20240229"]
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warning == ["warning: model claude-3-opus-20240229 has been retired by Anthropic: it is sent as given, "
                       "but the provider may refuse it"]


def test_current_model_gets_no_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    problems = write_problems(tmp_path / "problems.json")
    with FakeLLMServer(repairing_handler) as server:
        assert run(server, problems, "--model-name", "claude-sonnet-4-6") == 0
    assert "retired" not in capsys.readouterr().err


def test_cached_rerun_says_what_this_run_spent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    problems = write_problems(tmp_path / "problems.json")
    with FakeLLMServer(repairing_handler) as server:
        assert run(server, problems, "--model-name", "claude-sonnet-4-6") == 0
        first = capsys.readouterr().out
        assert run(server, problems, "--model-name", "claude-sonnet-4-6", "--restart") == 0
        second = capsys.readouterr().out
    assert len(server.requests) == 1  # the second run is answered from the cache
    cost = next(line for line in first.splitlines() if line.startswith("Tokens:")).rsplit("$", 1)[1]
    assert float(cost) > 0 and "this run spent" not in first
    tokens = next(line for line in second.splitlines() if line.startswith("Tokens:"))
    assert tokens.endswith(f"(1 calls, 1 from the cache); estimated cost: this run spent $0.0000; "
                           f"the cached answers cost ${cost} when made")


def test_per_iteration_lines_are_labelled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    problems = write_problems(tmp_path / "problems.json")
    with FakeLLMServer(repairing_handler) as server:
        assert iterative_repair.main(["--solution-file", str(problems), "--base-url", server.anthropic_base_url,
                                      "--cache-file", str(tmp_path / "cache.sqlite"), "--no-progress",
                                      "--executor", "local", "--timeout", "5", "--model-name", "claude-sonnet-4-6"]) == 0
    out = capsys.readouterr().out.splitlines()
    # SUM 1/3 and MAX 0/2 are repaired in one call each, ECHO passes from the start
    assert "iteration 0 (original program): 2/6 shown tests passed on 3 problem(s)" in out
    assert "iteration 1: 5/5 shown tests passed on 2 problem(s)" in out
    assert "feedback: all tests (6), scored on all (6)" in out
