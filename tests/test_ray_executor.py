"""The Ray executor on a real local Ray instance: same verdicts as the local executor, test for
test, on the shared real data; ``model_feedback.py --executor ray`` end to end against the same
cluster (``RAY_ADDRESS``); an actor killed mid-run loses no result and counts nothing as failed;
with no actor left the run is an ``ExecutionError``; a per-call ``memory_mb`` applies on the nodes
as locally (also through ``model_feedback.py --limits dataset``); without Ray a one-line user error.

Ray is an optional dependency group: without it, or where a local Ray cannot start, these tests
skip saying why (and fail under ``CI=true``, like the shared-data tests).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

import librarybench_common as common
from conftest import ROOT, clean_env, missing_requirement, shared_data
from errors import ConfigError, ExecutionError

RAY_START_TIMEOUT = 180.0  # a loaded 2-core machine has taken minutes to start a raylet

# A fixed subset of the shared data: (file, problem, answer key, code block, tests, timeout).
# Together every verdict the data has: passed, wrong_answer, runtime_error, timeout (the fourth
# code block of Claude's problem 4 never ends).
SUBSET = [
    ("o3mini_search_solutions.json", 0, "o3_mini_solution", 0, None, 10.0),
    ("claude_search_solutions.json", 1, "claude_solution", 0, None, 10.0),
    ("claude_search_solutions.json", 2, "claude_solution", 0, 60, 10.0),
    ("o3mini_chess_solutions.json", 2, "o3_mini_solution", 0, 40, 10.0),
    ("claude_search_solutions.json", 4, "claude_solution", 3, 4, 1.0),
]


def subset_batches() -> list[tuple[str, list[Any], float]]:
    batches = []
    for name, index, key, block, count, timeout in SUBSET:
        path = shared_data(name)
        record = common.load_problems(path)[index]
        code = common.code_blocks(record[key])[block]
        tests = common.problem_tests(record, index, path)
        batches.append((code, tests[:count] if count else tests, timeout))
    return batches


async def run_batches(batches: list[tuple[str, list[Any], float]], executor: Any) -> list[list[dict[str, Any]]]:
    return list(await asyncio.gather(*(common.run_tests(code, tests, timeout=timeout, executor=executor)
                                       for code, tests, timeout in batches)))


def verdicts(results: list[list[dict[str, Any]]]) -> list[list[str]]:
    return [[r["verdict"] for r in batch] for batch in results]


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[Any]:
    """A RayExecutor on a local Ray started for this module (2 CPUs), started once, retried once."""
    from ray_executor import RayExecutor, import_ray

    try:
        import_ray()
    except ConfigError:
        missing_requirement("ray is not installed: it is an optional group (uv sync --group ray)")

    problem = None
    for _ in range(2):
        executor = RayExecutor(address="", num_cpus=2, start_timeout=RAY_START_TIMEOUT)
        try:
            executor.isolation  # noqa: B018 - starts Ray and the actor
            break
        except ExecutionError as error:
            problem = error
            executor.close()
    else:
        missing_requirement(f"a local Ray instance could not start: {problem}")
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def local_reference() -> list[list[str]]:
    """The local executor's verdicts on the subset (the reference)."""
    return verdicts(asyncio.run(run_batches(subset_batches(), common.get_executor("local"))))


def test_same_verdicts_as_the_local_executor_test_for_test(ray_executor: Any, local_reference: list[list[str]]) -> None:
    batches = subset_batches()
    results = asyncio.run(run_batches(batches, ray_executor))
    assert verdicts(results) == local_reference
    seen = {v for batch in local_reference for v in batch}
    assert {"passed", "wrong_answer", "runtime_error", "timeout"} <= seen  # the subset means something
    for (code, tests, _), batch in zip(batches, results):  # the usual shape, the tests in order
        assert [r["test"] for r in batch] == tests
        assert all(set(r) >= {"code", "test", "passed", "exec_output", "verdict"} for r in batch)
        assert all(code in r["code"] for r in batch)
    isolation = ray_executor.isolation
    assert isolation.startswith("ray (1 node, 2 workers): ")
    assert common.get_executor("local").isolation in isolation  # the node's own sandbox, as it reported it


def test_model_feedback_executor_ray_end_to_end(ray_executor: Any, tmp_path: Path) -> None:
    """The CLI with ``--executor ray`` joins the cluster at RAY_ADDRESS (the project shipped as the job's
    working_dir) and writes the same verdicts as the local executor."""
    import ray

    path = shared_data("o3mini_search_solutions.json")
    out = tmp_path / "ray.json"
    env = clean_env(RAY_ADDRESS=ray.get_runtime_context().gcs_address)
    proc = subprocess.run([sys.executable, "model_feedback.py", "--solution-file", str(path), "--problem-ids", "0,1",
                           "--extract", "first", "--executor", "ray", "--quiet", "--output", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=RAY_START_TIMEOUT + 120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    document = json.loads(out.read_text())
    assert document["executor"] == "ray"
    assert document["isolation"].startswith("ray (1 node, 2 workers): ")
    problems = document["files"][0]["problems"]
    records = common.load_problems(path)
    expected = asyncio.run(run_batches(
        [(common.extract_code(records[i]["o3_mini_solution"], rule="first"), common.problem_tests(records[i], i, path), 10.0)
         for i in (0, 1)], common.get_executor("local")))
    assert [[r["verdict"] for r in p["results"]] for p in problems] == verdicts(expected)
    assert [(p["passed"], p["total"]) for p in problems] == [(83, 87), (72, 90)]


def killer_on(count: int, target: Any, killed: list[int]) -> Any:
    """An ``on_result`` that kills ``target``'s actor once ``count`` results have arrived."""
    import ray

    seen = [0]

    def on_result(_result: dict[str, Any]) -> None:
        seen[0] += 1
        if seen[0] == count and not killed:
            actor = next(n["actor"] for n in target.nodes if n["alive"])
            ray.kill(actor, no_restart=True)
            killed.append(seen[0])

    return on_result


def test_an_actor_killed_mid_run_loses_no_result(ray_executor: Any) -> None:
    """ray.kill on the actor while a long program's tests are in flight: the executor replaces the
    actor on the (alive) node, reruns what was unfinished, and every verdict is the real one."""
    from ray_executor import RayExecutor

    path = shared_data("o3mini_search_solutions.json")
    record = common.load_problems(path)[4]
    code = common.extract_code(record["o3_mini_solution"], rule="first")
    tests = common.problem_tests(record, 4, path)  # 310 tests
    reference = [r["verdict"] for r in asyncio.run(common.run_tests(code, tests, executor=common.get_executor("local")))]
    executor = RayExecutor(start_timeout=RAY_START_TIMEOUT)  # in the module's Ray: its own actor
    try:
        assert executor.workers == 2  # started: one actor, the node's 2 CPUs
        killed: list[int] = []
        results = asyncio.run(common.run_tests(code, tests, executor=executor,
                                               on_result=killer_on(30, executor, killed)))
        assert killed == [30]
        assert [r["verdict"] for r in results] == reference
        assert len(results) == len(tests) == 310
        assert [n["alive"] for n in executor.nodes] == [False, True]  # the lost actor, its replacement
        assert executor.isolation.startswith("ray (1 node, 2 workers): ")
    finally:
        executor.close()


def test_no_actor_left_is_an_execution_error_not_failed_tests(ray_executor: Any) -> None:
    from ray_executor import RayExecutor

    executor = RayExecutor(replacements=0, start_timeout=RAY_START_TIMEOUT)
    try:
        tests = [{"stdin": f"{i}\n", "stdout": f"{i}\n"} for i in range(60)]
        code = "import time\ntime.sleep(0.1)\nprint(input())"
        executor.isolation  # noqa: B018
        killed: list[int] = []
        with pytest.raises(ExecutionError, match="no actor is left"):
            asyncio.run(common.run_tests(code, tests, executor=executor, on_result=killer_on(3, executor, killed)))
        assert killed == [3]
        with pytest.raises(ExecutionError, match="no actor is left"):  # and so on, never a verdict
            asyncio.run(common.run_tests(code, tests[:2], executor=executor))
    finally:
        executor.close()
    # The module's own executor is untouched by the other executors' actors.
    assert asyncio.run(common.run_tests("print(input())", [{"stdin": "7\n", "stdout": "7\n"}],
                                        executor=ray_executor))[0]["verdict"] == "passed"


HOG = "block = bytearray(300 * 2**20)\nprint(input())\n"  # 300 MB


def test_a_per_call_memory_limit_applies_on_the_nodes(ray_executor: Any) -> None:
    """``memory_mb`` reaches the node's sandbox: the same verdicts as the local executor with and
    without it, and calls of one program with different limits in one turn keep their own."""
    tests = [{"stdin": f"{i}\n", "stdout": f"{i}\n"} for i in range(3)]

    async def both(executor: Any) -> list[list[dict[str, Any]]]:
        return list(await asyncio.gather(common.run_tests(HOG, tests, executor=executor, memory_mb=128),
                                         common.run_tests(HOG, tests, executor=executor)))

    local = verdicts(asyncio.run(both(common.get_executor("local"))))
    assert local == [["memory_limit"] * 3, ["passed"] * 3]
    assert verdicts(asyncio.run(both(ray_executor))) == local
    # Capped at the executor's own limit, as locally: 4096 MB asked, 1024 MB (the default) given.
    [result] = asyncio.run(ray_executor.run_tests("block = bytearray(1200 * 2**20)\nprint(input())", tests[:1],
                                                  memory_mb=4096))
    assert result["verdict"] == "memory_limit"


def test_limits_dataset_gives_ray_per_call_memory_without_a_warning(ray_executor: Any,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import problem_limits as pl
    from ray_executor import RayExecutor

    executor = RayExecutor(memory_mb=512)  # never started: limits are decided before any run
    settings = pl.LimitSettings("dataset", 1.0, 40.0, 10.0, None)
    limits = pl.resolve([("f.json", 0, {"time_limit": "1000 ms", "memory_limit": "256 megabytes"}),
                         ("f.json", 1, {"memory_limit": 2048})], settings, executor)
    assert limits[("f.json", 0)] == pl.ProblemLimits(1.0, 256, "dataset", per_call_memory=True)
    assert limits[("f.json", 1)].call_memory_mb == 512  # capped at the executor's own
    [line] = capsys.readouterr().err.splitlines()  # no "takes no memory limit" line
    assert line == ("warning: --limits dataset: 1 problem(s) ask for more than the executor's 512 MB: they run "
                    "with 512 MB (raise it with --memory-mb)")
    assert not executor._started
    assert ray_executor.limits.memory_mb == 1024


def test_model_feedback_limits_dataset_on_ray_applies_memory_limits(ray_executor: Any, tmp_path: Path) -> None:
    """``--limits dataset --executor ray``: a record's 128 MB stops the 300 MB program on the node, a
    record without a memory limit lets it pass, and no line says memory limits are not applied."""
    import ray

    def record(name: str, **limits: Any) -> dict[str, Any]:
        return {"name": name, "public_tests": {"input": ["7\n"], "output": ["7\n"]}, "private_tests": {},
                "generated_tests": {}, "solutions": {"language": [3], "solution": [HOG]}, **limits}

    path = tmp_path / "cc.jsonl"
    path.write_text(json.dumps(record("small", time_limit={"seconds": 5}, memory_limit_bytes=128 * 2**20)) + "\n"
                    + json.dumps(record("roomy", time_limit={"seconds": 5})) + "\n")
    out = tmp_path / "out.json"
    env = clean_env(RAY_ADDRESS=ray.get_runtime_context().gcs_address)
    proc = subprocess.run([sys.executable, "model_feedback.py", "--problems", str(path), "--k", "1", "--quiet",
                           "--executor", "ray", "--limits", "dataset", "--output", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=RAY_START_TIMEOUT + 120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "warning:" not in proc.stderr
    problems = [p for f in json.loads(out.read_text())["files"] for p in f["problems"]]
    assert [(p["verdicts"], p["limits"]) for p in problems] == [
        ({"memory_limit": 1}, {"timeout": 5.0, "memory_mb": 128, "from": "dataset"}),
        ({"passed": 1}, {"timeout": 5.0, "memory_mb": 1024, "from": "dataset"})]


def test_without_ray_a_one_line_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import executors

    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without the group sees
    with pytest.raises(ConfigError, match=r"uv run --group ray .*uv sync --group ray"):
        executors.get_executor("ray")
    stub = ("import sys; sys.modules['ray'] = None; import model_feedback; "
            "sys.exit(model_feedback.main(['--executor', 'ray', '--quiet']))")
    proc = subprocess.run([sys.executable, "-c", stub], cwd=ROOT, env=clean_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: the ray executor needs Ray, an optional dependency group: run with `uv run --group ray ...` "
        "(or install it once with `uv sync --group ray`)"]


def test_the_rest_of_the_toolkit_never_imports_ray() -> None:
    probe = ("import sys, model_feedback, iterative_repair, compare_model_improvements, executors, "
             "execution_server, librarybench_common, judges, sandbox; "
             "import executors as e; e.get_executor('local'); print('ray' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=clean_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
