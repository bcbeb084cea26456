"""Kill -9 and Ctrl-C in the middle of a batch, then resume: the CLI runs as a real subprocess
against the scripted server; the server's request log shows what was (not) repeated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

from fake_llm_server import SAMPLE_PROBLEMS, FakeLLMServer, FakeReply, fenced, write_problems  # noqa: E402

MUL_FIXED = "a, b = map(int, input().split())\nprint(a * b)"
PROBLEMS = SAMPLE_PROBLEMS[:2] + [
    {"problem": "PROBLEM-MUL: read two integers, print their product.",
     "input_output": {"inputs": ["2 3\n", "4 5\n"], "outputs": ["6\n", "20\n"]},
     "sample_solution": "```python\na, b = map(int, input().split())\nprint(a + b)\n```"},
]
REPAIRS = {"PROBLEM-SUM": "a, b = map(int, input().split())\nprint(a + b)",
           "PROBLEM-MAX": "a, b = map(int, input().split())\nprint(max(a, b))",
           "PROBLEM-MUL": MUL_FIXED}


def tag_of(request) -> str | None:
    return next((t for t in REPAIRS if t in request.text()), None)


class SlowOnMul:
    """Repairs everything; while ``slow`` the PROBLEM-MUL answer takes a minute."""

    def __init__(self) -> None:
        self.slow = True

    def __call__(self, request) -> FakeReply:
        tag = tag_of(request)
        return FakeReply(fenced(REPAIRS[tag]), delay=60.0 if (self.slow and tag == "PROBLEM-MUL") else 0.0)


def cli(problems: Path, server: FakeLLMServer, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "iterative_repair.py"), "--solution-file", str(problems),
            "--model-name", "claude-sonnet-4-6", "--base-url", server.anthropic_base_url,
            "--concurrent-problems", "1", "--no-cache", "--no-progress", "--executor", "local", "--timeout", "5", *extra]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "CYBER_URL")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def checkpointed(path: Path) -> list[int]:
    if not path.exists():
        return []
    ids = []
    for line in path.read_text().splitlines():
        try:
            ids.append(json.loads(line)["problem_id"])
        except ValueError:
            pass
    return ids


def start_and_stop_midway(tmp_path: Path, server: FakeLLMServer, handler: SlowOnMul, sig: int) -> subprocess.Popen:
    problems = write_problems(tmp_path / "problems.json", PROBLEMS)
    checkpoint = tmp_path / "improved_problems.json.checkpoint.jsonl"
    proc = subprocess.Popen(cli(problems, server), cwd=tmp_path, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: sorted(checkpointed(checkpoint)) == [0, 1]
                   and any(tag_of(r) == "PROBLEM-MUL" for r in server.requests) or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    handler.slow = False
    return proc


def tags(server: FakeLLMServer) -> list[str | None]:
    return [tag_of(r) for r in server.requests]


@pytest.mark.parametrize("resume_flag", [[], ["--resume"]])
def test_kill_then_resume_repeats_no_finished_problem(tmp_path: Path, resume_flag: list[str]) -> None:
    handler = SlowOnMul()
    with FakeLLMServer(handler) as server:
        proc = start_and_stop_midway(tmp_path, server, handler, signal.SIGKILL)
        assert proc.returncode == -signal.SIGKILL
        assert tags(server) == ["PROBLEM-SUM", "PROBLEM-MAX", "PROBLEM-MUL"]

        again = subprocess.run(cli(tmp_path / "problems.json", server, *resume_flag), cwd=tmp_path, env=child_env(),
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert "resuming" in again.stderr and "2 problem(s) already done" in again.stderr
        # finished problems were not asked again; only the unfinished one was
        assert tags(server) == ["PROBLEM-SUM", "PROBLEM-MAX", "PROBLEM-MUL", "PROBLEM-MUL"]

    output = json.loads((tmp_path / "improved_problems.json").read_text())
    assert [r["improved_sample_solution"] for r in output] == [f"```python\n{REPAIRS[t]}\n```" for t in REPAIRS]
    summary = json.loads((tmp_path / "summary_improved_problems.json").read_text())
    assert summary["complete"] is True and summary["pending"] == []
    assert [p["status"] for p in summary["problems"]] == ["done"] * 3
    assert summary["aggregate"]["fully_passing_after"] == 3
    assert sorted(checkpointed(tmp_path / "improved_problems.json.checkpoint.jsonl")) == [0, 1, 2]


def test_ctrl_c_stops_cleanly_and_writes_what_is_done(tmp_path: Path) -> None:
    handler = SlowOnMul()
    with FakeLLMServer(handler) as server:
        started = time.monotonic()
        proc = start_and_stop_midway(tmp_path, server, handler, signal.SIGINT)
        _, err = proc.communicate()
        assert time.monotonic() - started < 30  # did not wait for the slow answer
        assert proc.returncode == 130
        assert "Traceback" not in err and "interrupted: partial results in improved_problems.json" in err

        output = json.loads((tmp_path / "improved_problems.json").read_text())
        assert "improved_sample_solution" in output[0] and "improved_sample_solution" in output[1]
        assert "improved_sample_solution" not in output[2]
        summary = json.loads((tmp_path / "summary_improved_problems.json").read_text())
        assert summary["complete"] is False and summary["pending"] == [2]
        assert [p["problem_id"] for p in summary["problems"]] == [0, 1]

        again = subprocess.run(cli(tmp_path / "problems.json", server), cwd=tmp_path, env=child_env(),
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert tags(server).count("PROBLEM-SUM") == 1 and tags(server).count("PROBLEM-MAX") == 1
    summary = json.loads((tmp_path / "summary_improved_problems.json").read_text())
    assert summary["complete"] is True and summary["aggregate"]["fully_passing_after"] == 3


def test_sigterm_also_writes_partial_results(tmp_path: Path) -> None:
    handler = SlowOnMul()
    with FakeLLMServer(handler) as server:
        proc = start_and_stop_midway(tmp_path, server, handler, signal.SIGTERM)
        _, err = proc.communicate()
    assert proc.returncode == 130 and "Traceback" not in err
    summary = json.loads((tmp_path / "summary_improved_problems.json").read_text())
    assert summary["pending"] == [2]


def test_resume_without_a_checkpoint_is_one_warning_line(tmp_path: Path) -> None:
    """``--resume`` with nothing to resume: a ``warning: ...`` line like every other warning
    (not the logging format), and the run goes on from the beginning."""
    problems = write_problems(tmp_path / "problems.json", PROBLEMS[:1])
    with FakeLLMServer(lambda r: FakeReply(fenced(REPAIRS["PROBLEM-SUM"]))) as server:
        proc = subprocess.run(cli(problems, server, "--resume"), cwd=tmp_path, env=child_env(),
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    checkpoint = "improved_problems.json.checkpoint.jsonl"  # the default output's, in the working directory
    assert proc.stderr.splitlines() == [f"warning: --resume: no checkpoint at {checkpoint}, starting from the beginning"]
