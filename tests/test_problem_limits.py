"""``--limits dataset``: each problem's own time and memory limits (problem_limits.py).

The field shapes are parsed by hand-made cases; the behaviour runs the real CLI
(``model_feedback.py --problems``) on the embedded executor over a small CodeContests-shaped file:
problem 0 has a 1 s time limit and sleeps 1.5 s, problem 1 a 256 MB memory limit and allocates
300 MB, problem 2 an unreadable time limit and sleeps 1.5 s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import problem_limits as pl
from conftest import run_cli
from executors import RemoteExecutor


# --------------------------------------------------------------------------------------------
# Parsing the fields
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, seconds", [
    ({"seconds": 2, "nanos": 0}, 2.0),  # CodeContests
    ({"seconds": 1, "nanos": 500000000}, 1.5),
    ({"nanos": 250000000}, 0.25),
    (3, 3.0), (2.5, 2.5),  # toolkit records: seconds
    ("1 second", 1.0), ("2.5 seconds", 2.5), ("1000 ms", 1.0), ("1.0 seconds", 1.0),  # TACO/APPS
    ("0.262128 seconds", 0.262128), ("1 - 1.5 seconds", 1.5), ("2", 2.0), ("2s", 2.0),
    (None, None), ("", None), (0, None), ({"seconds": 0, "nanos": 0}, None),  # no limit given
])
def test_time_limit_shapes(value: Any, seconds: float | None) -> None:
    assert pl.parse_time_limit(value) == (pytest.approx(seconds) if seconds else None)


@pytest.mark.parametrize("value", ["about a second", "1 fortnight", [1], True, -1, {"seconds": "x"},
                                   float("nan"), float("inf"), {"seconds": float("nan")}, 4e-7, "0.1 ms", 10**400])
def test_unreadable_time_limit(value: Any) -> None:
    with pytest.raises(pl.LimitError):
        pl.parse_time_limit(value)


@pytest.mark.parametrize("value, field, mb", [
    ("256 megabytes", "memory_limit", 256.0), ("64.0 megabytes", "memory_limit", 64.0),  # TACO/APPS
    ("512 MB", "memory_limit", 512.0), ("262144 kilobytes", "memory_limit", 256.0), ("1 GB", "memory_limit", 1024.0),
    (256, "memory_limit", 256.0),  # toolkit records: MB
    (268435456, "memory_limit_bytes", 256.0),  # CodeContests: bytes
    (None, "memory_limit", None), (0, "memory_limit_bytes", None),
])
def test_memory_limit_shapes(value: Any, field: str, mb: float | None) -> None:
    assert pl.parse_memory_limit(value, field) == (pytest.approx(mb) if mb else None)


@pytest.mark.parametrize("value", ["50000 bytes", "lots", "256 parsecs", {"mb": 3}, float("nan"), float("inf"),
                                   10**400])
def test_unreadable_or_implausible_memory_limit(value: Any) -> None:
    with pytest.raises(pl.LimitError):  # "50000 bytes": TACO's CodeChef source-size limit, not memory
        pl.parse_memory_limit(value)


def test_implausible_memory_limit_keeps_the_time_limit(capsys: pytest.CaptureFixture[str]) -> None:
    settings = pl.LimitSettings("dataset", 1.0, 40.0, 10.0, 512)
    fields = {"time_limit": "1 seconds", "memory_limit": "50000 bytes"}  # as in the shared TACO/CodeChef records
    assert pl.limits_for(fields, settings, None, "f.json: problem 3") == pl.ProblemLimits(1.0, 512, "dataset")
    assert capsys.readouterr().err == ("warning: f.json: problem 3: memory_limit '50000 bytes' is 0.0477 MB, below "
                                       "16 MB: not a memory limit: the global memory limit applies to this problem\n")


def test_memory_limit_bytes_wins_and_global_mode_ignores_records() -> None:
    fields = {"time_limit": {"seconds": 1}, "memory_limit": "64 megabytes", "memory_limit_bytes": 268435456}
    assert pl.record_limits(fields) == (1.0, 256.0)
    settings = pl.LimitSettings("global", 1.0, 40.0, 10.0, None)
    assert pl.limits_for(fields, settings, None, "f: problem 0") == pl.ProblemLimits(10.0, None, "global")


def test_remote_executor_warns_that_memory_limits_are_not_applied(capsys: pytest.CaptureFixture[str]) -> None:
    remote = RemoteExecutor("http://127.0.0.1:9/")  # nothing listens: no /health, so no memory per request
    settings = pl.LimitSettings("dataset", 2.0, 3.0, 10.0, None)
    limits = pl.resolve([("f.json", 0, {"time_limit": "1 second", "memory_limit": "256 megabytes"}),
                         ("f.json", 1, {"time_limit": "2 seconds"})], settings, remote)
    assert limits[("f.json", 0)] == pl.ProblemLimits(2.0, None, "dataset")  # 1 s x 2; no memory per request
    assert limits[("f.json", 1)].timeout == 3.0  # 2 s x 2 = 4 s, capped at 3 s
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: --limits dataset: the remote executor takes no memory limit per request")



def test_a_memory_limit_the_executor_cannot_apply_leaves_the_problem_global() -> None:
    """Only the record's memory limit, and an executor without memory per call (the remote API):
    nothing of the record applies, so the problem's limits say ``global``, not ``dataset``."""
    remote = RemoteExecutor("http://127.0.0.1:9/")
    settings = pl.LimitSettings("dataset", 1.0, 40.0, 10.0, None)
    limits = pl.limits_for({"memory_limit": "256 megabytes"}, settings, remote, "f.json: problem 0")
    assert limits.as_dict() == {"timeout": 10.0, "memory_mb": None, "from": "global"}
    both = pl.limits_for({"memory_limit": "256 megabytes", "time_limit": 2}, settings, remote, "f.json: problem 1")
    assert both.as_dict() == {"timeout": 2.0, "memory_mb": None, "from": "dataset"}

# --------------------------------------------------------------------------------------------
# The CLI, real programs
# --------------------------------------------------------------------------------------------

SLEEPER = "import time\ntime.sleep(1.5)\nprint(input())\n"
HOG = "block = bytearray(300 * 2**20)\nprint(input())\n"


def codecontests(name: str, program: str, **limits: Any) -> dict[str, Any]:
    return {"name": name, "public_tests": {"input": ["7\n"], "output": ["7\n"]}, "private_tests": {},
            "generated_tests": {}, "solutions": {"language": [3], "solution": [program]}, **limits}


@pytest.fixture(scope="module")
def problems_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("limits") / "cc.jsonl"
    records = [codecontests("sleeper", SLEEPER, time_limit={"seconds": 1, "nanos": 0}),
               codecontests("hog", HOG, time_limit={"seconds": 5, "nanos": 0}, memory_limit_bytes=256 * 2**20),
               codecontests("odd", SLEEPER, time_limit="about a second")]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def run(path: Path, tmp_path: Path, *flags: str) -> tuple[Any, dict[str, Any]]:
    out = tmp_path / "out.json"
    proc = run_cli("--problems", str(path), "--quiet", "--output", str(out), "--k", "1", "--executor", "local",
                   "--timeout", "3", *flags)
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads(out.read_text())


def outcomes(doc: dict[str, Any]) -> list[tuple[dict[str, int], dict[str, Any]]]:
    return [(p["verdicts"], p["limits"]) for f in doc["files"] for p in f["problems"]]


def test_global_limits_are_the_default(problems_file: Path, tmp_path: Path) -> None:
    proc, doc = run(problems_file, tmp_path)
    assert proc.stderr == ""  # the unreadable field is not even read
    assert outcomes(doc) == [({"passed": 1}, {"timeout": 3.0, "memory_mb": 1024, "from": "global"})] * 3
    assert doc["limits"] == doc["summary"]["limits"] == {"mode": "global", "scale": 1.0, "cap": 12.0}


def test_dataset_limits_time_memory_and_an_unreadable_field(problems_file: Path, tmp_path: Path) -> None:
    proc, doc = run(problems_file, tmp_path, "--limits", "dataset")
    [warning] = proc.stderr.splitlines()
    assert warning == (f"warning: {problems_file}: problem 2: unreadable time_limit 'about a second': "
                       "this problem runs under the global limits")
    [sleeper, hog, odd] = outcomes(doc)
    assert sleeper == ({"timeout": 1}, {"timeout": 1.0, "memory_mb": 1024, "from": "dataset"})
    assert hog[1] == {"timeout": 5.0, "memory_mb": 256, "from": "dataset"}
    assert set(hog[0]) <= {"memory_limit", "runtime_error"} and sum(hog[0].values()) == 1
    assert odd == ({"passed": 1}, {"timeout": 3.0, "memory_mb": 1024, "from": "global"})  # fell back: 3 s
    assert doc["summary"]["limits"] == {"mode": "dataset", "scale": 1.0, "cap": 12.0}


def test_limit_scale_and_cap(problems_file: Path, tmp_path: Path) -> None:
    ids = ["--problem-id", "0"]
    _, scaled = run(problems_file, tmp_path, "--limits", "dataset", "--limit-scale", "2", *ids)
    assert outcomes(scaled) == [({"passed": 1}, {"timeout": 2.0, "memory_mb": 1024, "from": "dataset"})]
    _, capped = run(problems_file, tmp_path, "--limits", "dataset", "--limit-scale", "2", "--limit-cap", "1.2", *ids)
    assert outcomes(capped) == [({"timeout": 1}, {"timeout": 1.2, "memory_mb": 1024, "from": "dataset"})]
    assert capped["limits"] == {"mode": "dataset", "scale": 2.0, "cap": 1.2}


def test_taco_strings_on_a_solution_file(tmp_path: Path) -> None:
    path = tmp_path / "solutions.json"
    record = {"name": "p", "input_output": json.dumps({"inputs": ["7\n"], "outputs": ["7\n"]}),
              "time_limit": "1000 ms", "memory_limit": "256 megabytes", "human_solution": SLEEPER}
    numbers = {**record, "time_limit": 2, "memory_limit": 512}  # toolkit records: seconds and MB
    path.write_text(json.dumps([record, numbers]))
    out = tmp_path / "out.json"
    proc = run_cli("--solution-file", str(path), "--include-human", "--quiet", "--output", str(out),
                   "--executor", "local", "--timeout", "3", "--limits", "dataset")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert outcomes(json.loads(out.read_text())) == [
        ({"timeout": 1}, {"timeout": 1.0, "memory_mb": 256, "from": "dataset"}),
        ({"passed": 1}, {"timeout": 2.0, "memory_mb": 512, "from": "dataset"})]


# --------------------------------------------------------------------------------------------
# The other two scripts take the same flags
# --------------------------------------------------------------------------------------------

SLOW_ECHO = {"problem": "PROBLEM-ECHO: print the input line unchanged.", "time_limit": "1 second",
             "memory_limit": "256 megabytes", "input_output": {"inputs": ["hi\n"], "outputs": ["hi\n"]},
             "sample_solution": f"```python\n{SLEEPER}```"}


@pytest.mark.usefixtures("no_provider_env")
def test_iterative_repair_runs_each_problem_under_its_own_limits(tmp_path: Path) -> None:
    import iterative_repair
    from fake_llm_server import FakeLLMServer, repairing_handler, write_problems

    path = write_problems(tmp_path / "problems.json", [SLOW_ECHO])
    with FakeLLMServer(repairing_handler) as server:
        code = iterative_repair.main([
            "--solution-file", str(path), "--model-name", "claude-sonnet-4-6", "--base-url", server.anthropic_base_url,
            "--no-cache", "--no-progress", "--executor", "local", "--timeout", "5", "--limits", "dataset",
            "--memory-mb", "512"])
    assert code == 0
    summary = json.loads((tmp_path / "summary_improved_problems.json").read_text())
    [entry] = summary["problems"]
    assert entry["initial"]["verdicts"] == {"timeout": 1}  # 1.5 s against the record's 1 s (global: 5 s)
    assert entry["final"]["verdicts"] == {"passed": 1}  # the model's fast program
    assert entry["limits"] == {"timeout": 1.0, "memory_mb": 256, "from": "dataset"}
    assert summary["settings"]["limits"] == {"mode": "dataset", "scale": 1.0, "cap": 20.0}
    assert summary["settings"]["memory_mb"] == 512


def test_compare_measures_both_programs_under_the_problems_limits(tmp_path: Path) -> None:
    import subprocess
    import sys

    original, improved = tmp_path / "original.json", tmp_path / "improved.json"
    original.write_text(json.dumps([SLOW_ECHO]))
    improved.write_text(json.dumps([{**SLOW_ECHO, "improved_sample_solution": "```python\nprint(input())\n```"}]))
    out = tmp_path / "comparison.json"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "compare_model_improvements.py", "--original-file", str(original),
                           "--improved-file", str(improved), "--output-file", str(out), "--quiet", "--no-summary",
                           "--executor", "local", "--timeout", "5", "--limits", "dataset", "--limit-scale", "0.5"],
                          cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    [row] = doc["problem_details"]
    assert row["original_verdicts"] == {"timeout": 1} and row["improved_verdicts"] == {"passed": 1}
    assert doc["limits"] == {"mode": "dataset", "scale": 0.5, "cap": 20.0, "memory_mb": None,
                             "problems": {"0": {"timeout": 0.5, "memory_mb": 256, "from": "dataset"}}}


def test_non_finite_and_tiny_limits_fall_back_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    """NaN/Infinity (valid JSON numbers for Python's json) and sub-10 ms limits are warnings, never a crash,
    a limit of zero (the sandbox's default) or the cap."""
    settings = pl.LimitSettings("dataset", 1.0, 20.0, 5.0, 512)
    for fields in ({"time_limit": float("nan")}, {"memory_limit": float("inf")}, {"time_limit": 4e-7},
                   {"time_limit": 1, "memory_limit": float("nan")}):
        limits = pl.limits_for(fields, settings, None, "f.json: problem 0")
        assert limits.timeout == 5.0 and limits.memory_mb == 512, (fields, limits)
        assert "warning: f.json: problem 0:" in capsys.readouterr().err
    tiny = pl.LimitSettings("dataset", 1e-9, 20.0, 5.0, 512)  # a scale that would round the limit to 0
    assert pl.limits_for({"time_limit": 1}, tiny, None, "f.json: problem 0").timeout == pl.MIN_TIME_SECONDS
