"""The repair loop end to end: real ``anthropic``/``openai`` SDKs against a scripted server on
127.0.0.1, real execution on the embedded executor, real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

import iterative_repair  # noqa: E402
from fake_llm_server import (  # noqa: E402
    SUM_FIXED,
    FakeLLMServer,
    FakeReply,
    fenced,
    problem_tag,
    repairing_handler,
    write_problems,
)
from iterative_repair import feedback_count, split_tests  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_provider_env")


@pytest.fixture
def problems(tmp_path: Path) -> Path:
    return write_problems(tmp_path / "problems.json")


def run_cli(problems: Path, server: FakeLLMServer, *extra: str, provider: str = "anthropic") -> int:
    base = server.anthropic_base_url if provider == "anthropic" else server.openai_base_url
    model = "claude-sonnet-4-6" if provider == "anthropic" else "gpt-4o-mini"
    args = ["--solution-file", str(problems), "--model-name", model, "--base-url", base,
            "--cache-file", str(problems.parent / "cache.sqlite"), "--no-progress", "--max-retries", "2",
            "--executor", "local", "--timeout", "5", *extra]
    return iterative_repair.main(args)


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def summary_of(tmp_path: Path, name: str = "improved_problems.json") -> dict:
    return load(tmp_path / f"summary_{name}")


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_failing_program_is_repaired_to_passing(problems: Path, tmp_path: Path, provider: str) -> None:
    with FakeLLMServer(repairing_handler) as server:
        code = run_cli(problems, server, "--problem-ids", "0,2", provider=provider)
    assert code == 0
    # one call for the failing problem, none for the one that already passes
    assert [problem_tag(r) for r in server.requests] == ["PROBLEM-SUM"]
    request = server.requests[0]
    assert request.api == provider
    assert "complete corrected program" in request.system
    assert "PROBLEM-SUM" in request.last_user_text and "print(a - b)" in request.last_user_text
    assert "Test Results: 1/3" in request.last_user_text

    for name in ("improved_problems.json", "summary_improved_problems.json"):
        assert (tmp_path / name).stat().st_mode & 0o044 == 0o044  # readable by others, not 0600
    output = load(tmp_path / "improved_problems.json")
    assert len(output) == 3
    assert output[0]["improved_sample_solution"] == f"```python\n{SUM_FIXED}\n```"
    assert "improved_sample_solution" not in output[1]  # not selected: unchanged
    assert output[2]["improved_sample_solution"] == "```python\nprint(input())\n```"

    summary = summary_of(tmp_path)
    assert summary["schema"] == "librarybench.repair_summary/1"
    assert summary["provider"] == provider and summary["model_key"] == "sample_solution"
    assert summary["scores_on_shown_tests"] is True and summary["complete"] is True
    first = summary["problems"][0]
    assert first["status"] == "done" and first["stopped"] == "target"
    assert first["initial"] == {"passed": 1, "total": 3, "ratio": pytest.approx(1 / 3, abs=1e-6),
                                "verdicts": {"passed": 1, "wrong_answer": 2}}
    assert first["final"]["passed"] == 3 and first["best_iteration"] == 1
    zero, one = first["iterations"]
    assert zero["response"] is None and zero["input_tokens"] == 0
    assert one["response"].startswith("Here is the corrected program")
    assert one["input_tokens"] > 0 and one["output_tokens"] > 0 and one["cached"] is False
    assert one["passed"] == 3 and one["regressions"] == [] and one["latency_s"] >= 0
    agg = summary["aggregate"]
    assert agg["avg_initial_ratio"] == pytest.approx((1 / 3 + 1) / 2, abs=1e-6)
    assert agg["avg_final_ratio"] == 1.0
    assert agg["fully_passing_before"] == 1 and agg["fully_passing_after"] == 2
    assert agg["model_calls"] == 1 and agg["estimated_cost_usd"] > 0


def test_regression_no_code_and_truncation_are_recorded(problems: Path, tmp_path: Path) -> None:
    script = iter([
        FakeReply("Let me think about it... no code today."),
        FakeReply(fenced("a, b = map(int, input().split())\nprint(a + b + 1)")),  # breaks "0 0"
        FakeReply("```python\na, b = map(int, input().split())\nprint(a +", truncated=True),
        FakeReply(fenced(SUM_FIXED)),
    ])
    with FakeLLMServer(lambda request: next(script)) as server:
        code = run_cli(problems, server, "--problem-id", "0", "--max-iterations", "4")
    assert code == 0 and len(server.requests) == 4
    its = summary_of(tmp_path)["problems"][0]["iterations"]
    assert [i["iteration"] for i in its] == [0, 1, 2, 3, 4]
    assert its[1]["no_code"] is True and its[1]["passed"] is None and its[1]["response"]
    assert its[2]["regressions"] == [3] and its[2]["passed"] == 0
    assert its[3]["truncated"] is True and its[3]["stop_reason"] == "max_tokens"
    assert its[4]["passed"] == 3
    # the model was told about the missing code, the regression and the cut
    assert "no Python program" in server.requests[1].last_user_text
    assert "breaks tests that passed before (#3)" in server.requests[2].last_user_text
    assert "cut off" in server.requests[3].last_user_text
    # multi-turn: the last prompt carries every earlier answer
    assert len(server.requests[3].messages) == 7


def test_best_program_is_kept_and_same_program_not_rerun(problems: Path, tmp_path: Path) -> None:
    wrong = fenced("a, b = map(int, input().split())\nprint(a * b)")  # passes nothing ("0 0" -> 0 passes!)
    with FakeLLMServer(lambda request: FakeReply(wrong)) as server:
        code = run_cli(problems, server, "--problem-id", "0", "--max-iterations", "3")
    assert code == 0 and len(server.requests) == 3
    entry = summary_of(tmp_path)["problems"][0]
    its = entry["iterations"]
    assert [i["duplicate_of"] for i in its] == [None, None, 1, 1]
    assert entry["executions"] == 6  # starting program 3 tests + one distinct repair 3 tests
    assert entry["best_iteration"] == 0 and entry["stopped"] == "max_iterations"  # ties keep the earlier program
    output = load(tmp_path / "improved_problems.json")
    assert "print(a - b)" in output[0]["improved_sample_solution"]


def test_rate_limit_then_success(problems: Path, tmp_path: Path) -> None:
    calls = []

    def handler(request):
        calls.append(request)
        return FakeReply(status=429) if len(calls) == 1 else repairing_handler(request)

    with FakeLLMServer(handler) as server:
        code = run_cli(problems, server, "--problem-id", "0")
    assert code == 0
    assert [r.status for r in server.requests] == [429, 200]  # the SDK retried, we did not
    assert summary_of(tmp_path)["problems"][0]["final"]["passed"] == 3


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_server_error_forever_marks_only_that_problem(problems: Path, tmp_path: Path, provider: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    def handler(request):
        return FakeReply(status=500) if problem_tag(request) == "PROBLEM-SUM" else repairing_handler(request)

    with FakeLLMServer(handler) as server:
        code = run_cli(problems, server, provider=provider)
    assert code == 1
    sum_requests = [r for r in server.requests if problem_tag(r) == "PROBLEM-SUM"]
    assert len(sum_requests) == 3  # first try + --max-retries 2
    summary = summary_of(tmp_path)
    broken, repaired, passing = summary["problems"]
    assert broken["status"] == "error" and "HTTP 500" in broken["error"]
    assert broken["iterations"][0]["passed"] == 1  # what was done before the failure is kept
    assert repaired["status"] == "done" and repaired["final"]["passed"] == 2
    assert passing["status"] == "done"
    assert summary["aggregate"]["errors"] == 1 and summary["aggregate"]["problems"] == 3
    assert summary["aggregate"]["avg_final_ratio"] == 1.0  # errors are excluded from the averages
    output = load(tmp_path / "improved_problems.json")
    assert "print(a - b)" in output[0]["improved_sample_solution"]  # the original answer is kept
    assert "ended in error" in capsys.readouterr().err
    # the error is not checkpointed: the next run retries it
    lines = (tmp_path / "improved_problems.json.checkpoint.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["problem_id"] for line in lines) == [1, 2]


def test_second_run_is_served_from_the_cache(problems: Path, tmp_path: Path) -> None:
    with FakeLLMServer(repairing_handler) as server:
        assert run_cli(problems, server, "--output-file", "first.json") == 0
        calls = len(server.requests)
        assert calls == 2
        assert run_cli(problems, server, "--output-file", "second.json") == 0
        assert len(server.requests) == calls  # no API call at all
        assert load(tmp_path / "first.json") == load(tmp_path / "second.json")
        second = summary_of(tmp_path, "second.json")
        assert second["aggregate"]["cached_calls"] == 2 and second["aggregate"]["new_input_tokens"] == 0
        assert second["aggregate"]["new_estimated_cost_usd"] == 0
        assert all(i["cached"] for p in second["problems"] for i in p["iterations"][1:])
        first = summary_of(tmp_path, "first.json")
        assert [p["iterations"][-1]["response"] for p in first["problems"]] == \
               [p["iterations"][-1]["response"] for p in second["problems"]]
        # --no-cache pays again
        assert run_cli(problems, server, "--output-file", "third.json", "--no-cache") == 0
        assert len(server.requests) == calls + 2


def test_rerunning_a_finished_command_does_no_work(problems: Path, tmp_path: Path) -> None:
    with FakeLLMServer(repairing_handler) as server:
        assert run_cli(problems, server, "--no-cache") == 0
        before = load(tmp_path / "improved_problems.json")
        assert run_cli(problems, server, "--no-cache") == 0  # the checkpoint has every problem
        assert len(server.requests) == 2
        assert load(tmp_path / "improved_problems.json") == before


def test_held_out_split_hides_tests_from_the_model(tmp_path: Path) -> None:
    inputs = ["1 2\n", "2 3\n", "10 20\n", "7 7\n", "4 0\n", "9 1\n"]
    problem = {"problem": "PROBLEM-SUM: print a + b",
               "input_output": {"inputs": inputs, "outputs": [f"{sum(map(int, i.split()))}\n" for i in inputs]},
               "sample_solution": "```python\nprint(0)\n```"}
    path = write_problems(tmp_path / "problems.json", [problem])
    shown, held = split_tests(6, "0.5", 7, 0)
    assert len(shown) == 3 and sorted(shown + held) == list(range(6))
    assert split_tests(6, "0.5", 7, 0) == (shown, held)  # seeded

    def overfit(request):  # hard-codes the answers of the tests it was shown
        cases = "\n".join(f"    {inputs[i].strip()!r}: {sum(map(int, inputs[i].split()))}," for i in shown)
        return FakeReply(fenced(f"s = input().strip()\nprint({{\n{cases}\n}}.get(s, -1))"))

    with FakeLLMServer(overfit) as server:
        code = run_cli(path, server, "--feedback-tests", "0.5", "--seed", "7")
    assert code == 0 and len(server.requests) == 1
    prompt = server.requests[0].text()
    for i in held:
        assert f"Input:\n{inputs[i]}" not in prompt and inputs[i].strip() not in prompt
    assert any(inputs[i].strip() in prompt for i in shown)
    summary = summary_of(tmp_path)
    assert summary["scores_on_shown_tests"] is False
    entry = summary["problems"][0]
    assert entry["feedback"]["test_indices"] == [i + 1 for i in shown]
    assert entry["held_out"]["test_indices"] == [i + 1 for i in held]
    assert entry["feedback"]["final"]["ratio"] == 1.0
    assert entry["held_out"]["final"]["passed"] == 0  # the overfit program fails what it never saw
    assert entry["final"]["passed"] == 3 and entry["final"]["total"] == 6
    assert entry["iterations"][1]["total"] == 3  # iterations are scored on the shown tests
    held_agg = summary["aggregate"]["held_out"]
    assert held_agg["feedback_avg_final_ratio"] == 1.0 and held_agg["avg_final_ratio"] == 0.0


def test_feedback_count_rules() -> None:
    assert feedback_count("2", 6) == 2
    assert feedback_count("10", 6) == 5  # one test is always held out
    assert feedback_count("0.01", 6) == 1
    assert feedback_count("3", 1) == 1


def test_checkpoint_from_other_settings_is_refused(problems: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with FakeLLMServer(repairing_handler) as server:
        assert run_cli(problems, server, "--problem-id", "2") == 0
        assert run_cli(problems, server, "--problem-id", "2", "--max-iterations", "5") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("error: ") and "--restart" in err[-1]
        assert run_cli(problems, server, "--problem-id", "2", "--max-iterations", "5", "--restart") == 0


def test_missing_key_is_one_line_error(problems: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = iterative_repair.main(["--solution-file", str(problems), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "error: ANTHROPIC_API_KEY is not set: export it or put it in .env (model claude-sonnet-4-6 uses anthropic)\n"
    code = iterative_repair.main(["--solution-file", str(problems), "--model-name", "gpt-5-mini"])
    assert code == 2 and "OPENAI_API_KEY" in capsys.readouterr().err


def test_key_from_dotenv_file(problems: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("ANTHROPIC_API_KEY=sk-test-from-dotenv\n")
    monkeypatch.setattr(iterative_repair, "run_with_signals", _no_run)
    assert iterative_repair.main(["--solution-file", str(problems)]) == 0


async def _no_run(config):
    return 0


@pytest.mark.parametrize("argv, message", [
    (["--problem-id", "1", "--range", "0-2"], "not allowed with argument"),
    (["--problem-ids", ","], "--problem-ids names no problem"),
    (["--temperature", "-1"], "must be between 0 and 2"),
    (["--model-name", "mistral-large"], "cannot tell the provider"),
    (["--feedback-tests", "0"], "--feedback-tests"),
    (["--target-ratio", "2"], "--target-ratio"),
    (["--model-key", "nobody"], "no selected record has key 'nobody'"),
])
def test_user_errors_are_one_line(problems: Path, argv: list[str], message: str,
                                  capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    code = iterative_repair.main(["--solution-file", str(problems), "--no-progress", "--no-cache", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_model_key_is_required_when_ambiguous(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    record = {"problem": "x", "input_output": {"inputs": ["1\n"], "outputs": ["1\n"]},
              "a_solution": "print(1)", "b_solution": "print(2)"}
    path = write_problems(tmp_path / "two.json", [record])
    assert iterative_repair.main(["--solution-file", str(path), "--no-progress"]) == 2
    assert "choose one with --model-key" in capsys.readouterr().err

