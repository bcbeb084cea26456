"""Fixes of the repair loop: cache hits on timeouts, held-out numbering, env base URLs in the cache
key and fingerprint, one-line problem errors, kept starting scores, write failures, cancellation,
the stdout header and results table, progress only on a terminal."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

import iterative_repair  # noqa: E402
from fake_llm_server import SUM_FIXED, FakeLLMServer, FakeReply, fenced, repairing_handler, write_problems  # noqa: E402
from iterative_repair import split_tests  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_provider_env")


def args_for(path: Path, *extra: str, base_url: str | None = None, model: str = "claude-sonnet-4-6") -> list[str]:
    argv = ["--solution-file", str(path), "--model-name", model, "--cache-file", str(path.parent / "cache.sqlite"),
            "--max-retries", "0", "--executor", "local", "--timeout", "5", "--no-progress", *extra]
    return argv + (["--base-url", base_url] if base_url else [])


def summary(tmp_path: Path, name: str = "improved_problems.json") -> dict:
    return json.loads((tmp_path / f"summary_{name}").read_text())


def test_rerun_with_a_timed_out_test_makes_no_api_call(tmp_path: Path) -> None:
    """The feedback on a timeout holds no elapsed time, so the prompt and the cache key repeat."""
    path = write_problems(tmp_path / "problems.json", [
        {"problem": "PROBLEM-SUM: add", "input_output": {"inputs": ["1 2\n", "2 2\n"], "outputs": ["3\n", "4\n"]},
         "sample_solution": "```python\nwhile True:\n    pass\n```"}])
    with FakeLLMServer(lambda r: FakeReply(fenced("while True:\n    pass"))) as server:
        argv = args_for(path, "--timeout", "0.5", "--max-iterations", "2", base_url=server.anthropic_base_url)
        assert iterative_repair.main(argv) == 0
        assert len(server.requests) == 2
        assert "timeout" in server.requests[0].last_user_text
        assert iterative_repair.main([*argv, "--restart"]) == 0
        assert iterative_repair.main([*argv, "--restart", "--output-file", "other.json"]) == 0
        assert len(server.requests) == 2  # every prompt was served from the cache
    assert summary(tmp_path, "other.json")["aggregate"]["cached_calls"] == 2


def test_held_out_regressions_use_shown_numbering_in_the_prompt(tmp_path: Path) -> None:
    inputs = ["1 2\n", "5 5\n", "0 0\n", "2 2\n", "3 4\n", "9 1\n"]
    outputs = ["3\n", "10\n", "0\n", "4\n", "7\n", "10\n"]
    start = "a, b = map(int, input().split())\nprint(a + b if a else 99)"  # fails only "0 0"
    path = write_problems(tmp_path / "problems.json", [
        {"problem": "PROBLEM-SUM: add", "input_output": {"inputs": inputs, "outputs": outputs},
         "sample_solution": fenced(start)}])
    replies = iter([FakeReply(fenced("a, b = map(int, input().split())\nprint(a + b + 1)")), FakeReply(fenced(SUM_FIXED))])
    seed = next(s for s in range(100) if 2 in split_tests(6, "4", s, 0)[0])  # "0 0" is shown
    with FakeLLMServer(lambda r: next(replies)) as server:
        argv = args_for(path, "--feedback-tests", "4", "--seed", str(seed), "--max-iterations", "2", "--no-cache",
                        base_url=server.anthropic_base_url)
        assert iterative_repair.main(argv) == 0
    shown, held = split_tests(6, "4", seed, 0)
    broke = [j for j, i in enumerate(shown) if inputs[i] != "0 0\n"]
    prompt = server.requests[1].last_user_text
    numbers = ", ".join(f"#{j + 1}" for j in broke)
    assert f"breaks tests that passed before ({numbers})" in prompt
    assert f"Test #{len(shown) + 1}" not in prompt  # never a number beyond the shown tests
    record = summary(tmp_path)["problems"][0]["iterations"][1]
    assert record["regressions"] == [shown[j] + 1 for j in broke]  # the stored record: all-test numbering


def test_env_base_url_is_part_of_the_cache_key_and_fingerprint(tmp_path: Path, monkeypatch, capsys) -> None:
    path = write_problems(tmp_path / "problems.json")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeLLMServer(repairing_handler) as first, FakeLLMServer(repairing_handler) as second:
        monkeypatch.setenv("OPENAI_BASE_URL", first.openai_base_url)
        argv = args_for(path, "--problem-id", "0", model="gpt-4o-mini")
        assert iterative_repair.main(argv) == 0 and len(first.requests) == 1
        monkeypatch.setenv("OPENAI_BASE_URL", second.openai_base_url)
        capsys.readouterr()
        assert iterative_repair.main(argv) == 2  # the checkpoint was written for the other server
        assert "other settings" in capsys.readouterr().err
        assert iterative_repair.main([*argv, "--restart"]) == 0
        assert len(second.requests) == 1  # not answered from the first server's cache
        assert summary(tmp_path)["base_url"] == second.openai_base_url


def test_problem_errors_are_one_line_and_keep_the_starting_score(tmp_path: Path, capsys) -> None:
    problems = json.loads(json.dumps(__import__("fake_llm_server").SAMPLE_PROBLEMS))
    problems[1]["sample_solution"] = None
    path = write_problems(tmp_path / "problems.json", problems)
    with FakeLLMServer(lambda r: FakeReply(status=500)) as server:
        base = server.anthropic_base_url
        code = iterative_repair.main(args_for(path, "--problem-ids", "0,1,2", "--log-level", "ERROR", base_url=base))
    assert code == 1  # (a problem id the file does not have is a usage error: tests/test_first_hour.py)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert f"error: {path}: problem 1: the 'sample_solution' answer is null, not a string" in err
    [model_error] = [line for line in err if line.startswith(f"error: {path}: problem 0: ")]
    assert "HTTP 500" in model_error and f"model anthropic:claude-sonnet-4-6 at {base}" in model_error
    assert len(err) == 2  # problem 2 passes already: no call, no error
    entries = {e["problem_id"]: e for e in summary(tmp_path)["problems"]}
    assert entries[0]["status"] == "error" and entries[0]["initial"]["passed"] == 1 and entries[0]["initial"]["total"] == 3
    assert entries[0]["error"].startswith(f"{path}: problem 0: ") and entries[0]["error"].count("problem 0") == 1
    assert entries[2]["status"] == "done"


def test_header_and_results_table_on_stdout(tmp_path: Path, capsys) -> None:
    path = write_problems(tmp_path / "problems.json")
    with FakeLLMServer(repairing_handler) as server:
        assert iterative_repair.main(args_for(path, "--problem-ids", "0,2", base_url=server.anthropic_base_url)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Executor: local (") and "model: claude-sonnet-4-6 (provider anthropic" in out[0]
    assert any(line.split()[:4] == ["0", "1/3", "3/3", "done"] for line in out)
    assert any(line.startswith("Total: 2/4 -> 4/4 tests passed on 2 problem(s)") for line in out)
    assert any(line.startswith("Tokens: ") for line in out) and out[-1].startswith("Wrote improved_problems.json")
    settings = summary(tmp_path)["settings"]
    assert settings["executor"] == "local" and settings["isolation"]


def test_progress_bar_is_off_when_stderr_is_not_a_terminal(tmp_path: Path, capsys) -> None:
    path = write_problems(tmp_path / "problems.json")
    with FakeLLMServer(repairing_handler) as server:
        argv = [a for a in args_for(path, "--problem-id", "2", base_url=server.anthropic_base_url) if a != "--no-progress"]
        assert iterative_repair.main(argv) == 0
        assert "problems" not in capsys.readouterr().err
        assert iterative_repair.main([*argv, "--restart", "--progress"]) == 0
        assert "problems" in capsys.readouterr().err


def test_unwritable_output_is_one_line_and_the_checkpoint_is_kept(tmp_path: Path, capsys) -> None:
    path = write_problems(tmp_path / "problems.json")
    (tmp_path / "improved_problems.json").mkdir()  # a directory where the output file goes: found up front
    with FakeLLMServer(repairing_handler) as server:
        code = iterative_repair.main(args_for(path, "--problem-id", "2", base_url=server.anthropic_base_url))
        assert code == 2 and server.count() == 0
    assert capsys.readouterr().err.strip() == "error: improved_problems.json: cannot write: it is a directory"
    assert not (tmp_path / "improved_problems.json.checkpoint.jsonl").exists()
    (tmp_path / "improved_problems.json").rmdir()

    def block_output_then_repair(request):  # the output becomes unwritable while the run is under way
        (tmp_path / "improved_problems.json").mkdir(exist_ok=True)
        return repairing_handler(request)

    with FakeLLMServer(block_output_then_repair) as server:  # problem 0 needs a model call (2 passes as it is)
        code = iterative_repair.main(args_for(path, "--problem-id", "0", base_url=server.anthropic_base_url))
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: improved_problems.json: cannot write: ") and "\n" not in err
    assert "Traceback" not in err and "improved_problems.json.checkpoint.jsonl" in err
    assert (tmp_path / "improved_problems.json.checkpoint.jsonl").read_text().count("\n") == 1


def test_problems_finished_while_cancelling_are_kept(tmp_path: Path, monkeypatch) -> None:
    """A problem whose task returns its entry during the cancellation is written, not dropped."""
    path = write_problems(tmp_path / "problems.json")
    real = iterative_repair.repair_or_error

    async def slow_then_finish(ctx, problem_id):
        if problem_id != 1:
            return await real(ctx, problem_id)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return await real(ctx, problem_id)  # finishes as it is cancelled
        raise AssertionError("not cancelled")

    monkeypatch.setattr(iterative_repair, "repair_or_error", slow_then_finish)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    with FakeLLMServer(repairing_handler) as server:
        config = iterative_repair.build_config(iterative_repair.build_parser().parse_args(
            args_for(path, "--problem-ids", "1,2", "--no-cache", base_url=server.anthropic_base_url)))

        async def run_then_cancel() -> None:
            task = asyncio.create_task(iterative_repair.run_repair(config))
            await asyncio.sleep(3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(run_then_cancel())
    data = summary(tmp_path)
    assert data["complete"] is False
    assert {e["problem_id"]: e["status"] for e in data["problems"]} == {1: "done", 2: "done"}
    lines = (tmp_path / "improved_problems.json.checkpoint.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["problem_id"] for line in lines) == [1, 2]
