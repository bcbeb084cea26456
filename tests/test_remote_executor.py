"""RemoteExecutor against real HTTP servers on 127.0.0.1: the toolkit's own execution server
(results must equal the embedded executor's) and scripted misbehaving servers (retries recover
when the server recovers; otherwise an ExecutionError naming the URL, and the CLI reports an
error of the run, never failed tests)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

import librarybench_common as common
from conftest import SAMPLES, clean_env, run_cli
from errors import ExecutionError

TESTS = [{"stdin": "2 3\n", "stdout": "5\n"}, {"stdin": "1 1\n", "stdout": "3\n"}]
SUM = "a, b = map(int, input().split())\nprint(a + b)\n"


def fast_client(url: str, retries: int = 3) -> common.RemoteExecutor:
    return common.RemoteExecutor(url, retries=retries, backoff=0.01, max_backoff=0.05)


def comparable(result: dict) -> dict:
    """A result without its timing, which differs run to run."""
    run = dict(result["exec_output"]["run_output"])
    run.pop("elapsed_time")
    return {**result, "exec_output": {**result["exec_output"], "run_output": run}}


# ---- the toolkit's own server ---------------------------------------------------------------


async def test_remote_results_equal_local_results_on_the_samples(lb_execution_server, lb_local_executor) -> None:
    remote = fast_client(lb_execution_server)
    try:
        for record in json.loads((SAMPLES / "sample_problems.json").read_text()):
            tests = common.problem_tests(record, 0)
            code = common.extract_code(record["sample_solution"])
            got = await common.run_tests(code, tests, timeout=2, executor=remote)
            want = await common.run_tests(code, tests, timeout=2, executor=lb_local_executor)
            assert [comparable(r) for r in got] == [comparable(r) for r in want], record["name"]
    finally:
        await remote.aclose()


def test_blocking_run_unit_tests_through_the_server(lb_execution_server) -> None:
    remote = fast_client(lb_execution_server)
    results = common.run_unit_tests([SUM, "raise SystemExit(3)"], TESTS, timeout=2, executor=remote)
    assert [[r["verdict"] for r in rs] for rs in results] == [["passed", "wrong_answer"],
                                                             ["runtime_error", "runtime_error"]]
    assert results[1][0]["exec_output"]["run_output"]["exit_code"] == 3
    # the blocking wrapper owns its event loop: a second call works with a fresh connection pool
    assert common.count_passed(common.run_unit_tests([SUM], TESTS, executor=remote)[0]) == 1


def test_cli_through_cyber_url_matches_the_local_run(lb_execution_server, tmp_path: Path) -> None:
    args = ["--solution-file", "data/sample_problems.json", "--problem-ids", "0,1,2", "--include-human", "--quiet"]
    remote = run_cli(*args, "--output", str(tmp_path / "remote.json"), env=clean_env(CYBER_URL=lb_execution_server))
    local = run_cli(*args, "--output", str(tmp_path / "local.json"))
    assert remote.returncode == local.returncode == 0, remote.stderr
    remote_doc = json.loads((tmp_path / "remote.json").read_text())
    local_doc = json.loads((tmp_path / "local.json").read_text())
    assert remote_doc["executor"] == "remote" and lb_execution_server in remote_doc["isolation"]
    assert local_doc["executor"] == "local"
    assert remote_doc["summary"] == local_doc["summary"]

    def verdicts(doc: dict) -> list:
        return [(p["problem_id"], p["model_key"], [r["verdict"] for r in p["results"]]) for p in doc["files"][0]["problems"]]

    assert verdicts(remote_doc) == verdicts(local_doc)


# ---- misbehaving servers --------------------------------------------------------------------


@pytest.mark.parametrize("failures", [["500", "503"], ["429"], ["close", "close"], ["garbage"], ["wrong-json"]])
async def test_retries_recover_when_the_server_recovers(lb_scripted_server, failures: list[str]) -> None:
    server = lb_scripted_server([*failures, "ok"])
    remote = fast_client(server.url)
    try:
        [result] = await common.run_tests(SUM, TESTS[:1], timeout=5, executor=remote)
    finally:
        await remote.aclose()
    assert result["passed"] is True and result["verdict"] == "passed"
    assert len(server.requests) == len(failures) + 1
    request = server.requests[-1]
    assert request["body"] == {"code": SUM, "test": TESTS[0]}
    assert "language=python" in request["path"] and "fill_missing_imports=true" in request["path"]
    assert "timeout=5" in request["path"]


@pytest.mark.parametrize(("action", "reason"), [
    ("500", "HTTP 500"),
    ("429", "HTTP 429"),
    ("close", "RemoteProtocolError"),
    ("garbage", "body that is not JSON"),
    ("wrong-json", "not a result object"),
])
async def test_server_that_never_recovers_raises_execution_error_with_url(lb_scripted_server, action: str,
                                                                          reason: str) -> None:
    server = lb_scripted_server([action])
    remote = fast_client(server.url, retries=2)
    try:
        with pytest.raises(ExecutionError) as info:
            await common.run_tests(SUM, TESTS[:1], executor=remote)
    finally:
        await remote.aclose()
    message = str(info.value)
    assert server.url in message and "after 3 attempts" in message and reason in message
    assert len(server.requests) == 3


async def test_client_errors_are_not_retried(lb_scripted_server) -> None:
    server = lb_scripted_server(["400"])
    remote = fast_client(server.url)
    try:
        with pytest.raises(ExecutionError, match=r"rejected the request: HTTP 400"):
            await common.run_tests(SUM, TESTS[:1], executor=remote)
    finally:
        await remote.aclose()
    assert len(server.requests) == 1


async def test_connection_refused_is_an_execution_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/run"
    remote = fast_client(url, retries=1)
    try:
        with pytest.raises(ExecutionError, match=rf"{url} failed after 2 attempts: ConnectError"):
            await common.run_tests(SUM, TESTS, executor=remote)
    finally:
        await remote.aclose()


async def test_backoff_grows_between_attempts(lb_scripted_server) -> None:
    server = lb_scripted_server(["503"])
    remote = common.RemoteExecutor(server.url, retries=3, backoff=0.1, max_backoff=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(ExecutionError):
            await common.run_tests(SUM, TESTS[:1], executor=remote)
    finally:
        await remote.aclose()
    assert time.monotonic() - started >= (0.1 + 0.2 + 0.4) * 0.5  # jitter is between 0.5x and 1.5x


def test_client_pool_is_sized_to_the_execution_semaphore(lb_execution_server) -> None:
    import asyncio

    common.set_semaphore_limits(exec=7)
    try:
        remote = fast_client(lb_execution_server)

        async def pool_size() -> int:
            client = remote._get_client()
            size = client._transport._pool._max_connections  # httpx keeps the limit here
            await remote.aclose()
            return size

        assert asyncio.run(pool_size()) == 7
    finally:
        common.set_semaphore_limits(exec=common.DEFAULT_EXEC_CONCURRENCY)


def test_cli_marks_problems_as_errors_when_the_server_is_down(lb_scripted_server, tmp_path: Path) -> None:
    server = lb_scripted_server(["500"])
    out = tmp_path / "o.json"
    proc = run_cli("--solution-file", "data/sample_problems.json", "--problem-ids", "0,1", "--quiet",
                   "--retries", "1", "--retry-backoff", "0.01", "--output", str(out),
                   env=clean_env(CYBER_URL=server.url))
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 2 and all(line.startswith("error: data/sample_problems.json: problem ") for line in errors)
    assert all(server.url in line and "HTTP 500" in line for line in errors)
    assert "Traceback" not in proc.stderr
    doc = json.loads(out.read_text())
    problems = doc["files"][0]["problems"]
    assert [p["status"] for p in problems] == ["error", "error"]
    assert all(p["results"] == [] and p["passed"] is None and p["total"] is None for p in problems)  # not failed tests
    assert doc["summary"]["errors"] == 2 and doc["summary"]["total"] == 0
    assert "0 evaluated, 2 errors" in proc.stdout


def test_previous_client_is_closed_when_the_loop_changes(lb_scripted_server) -> None:
    import asyncio

    server = lb_scripted_server(["ok"])
    executor = common.RemoteExecutor(server.url)
    test = {"stdin": "", "stdout": "1\n"}
    asyncio.run(executor.run_test("print(1)", test))
    first = executor._client
    asyncio.run(executor.run_test("print(1)", test))  # a new loop: a new pool, the old one closed
    assert first is not None and first.is_closed and executor._client is not first

    async def close_inside_the_loop() -> Any:
        await executor.run_test("print(1)", test)
        client = executor._client
        executor.close()  # synchronous close while the loop runs: closed by a task of that loop
        await asyncio.sleep(0.05)
        return client

    second = asyncio.run(close_inside_the_loop())
    assert second.is_closed and not executor.has_client


# ---- admission control and the batch extension's fallback --------------------------------


async def test_429_with_retry_after_is_waited_out_as_asked_without_spending_retries(lb_scripted_server) -> None:
    server = lb_scripted_server(["429-retry-after", "429-retry-after", "ok"])
    remote = fast_client(server.url, retries=0)  # no retry to spend: the busy answers must not use any
    started = time.monotonic()
    try:
        [result] = await common.run_tests(SUM, TESTS[:1], timeout=5, executor=remote)
    finally:
        await remote.aclose()
    assert result["verdict"] == "passed" and len(server.requests) == 3
    assert time.monotonic() - started >= 2 * 1.0  # Retry-After: 1, twice (the backoff alone is 0.01 s)


async def test_a_server_busy_beyond_busy_timeout_is_an_execution_error(lb_scripted_server) -> None:
    server = lb_scripted_server(["429-retry-after"])
    remote = common.RemoteExecutor(server.url, retries=5, backoff=0.01, busy_timeout=2.5)
    try:
        with pytest.raises(ExecutionError, match=r"stayed busy \(HTTP 429, Retry-After\) for more than 2.5 s"):
            await common.run_tests(SUM, TESTS[:1], executor=remote)
    finally:
        await remote.aclose()
    assert 2 <= len(server.requests) <= 3


async def test_without_batch_support_in_health_each_test_is_its_own_request(lb_scripted_server) -> None:
    server = lb_scripted_server(["ok"])  # the original contract: no /health
    remote = fast_client(server.url)
    try:
        results = await common.run_tests(SUM, TESTS * 3, timeout=5, executor=remote)
    finally:
        await remote.aclose()
    assert [r["verdict"] for r in results] == ["passed", "wrong_answer"] * 3
    assert len(server.requests) == 6 and all("test" in r["body"] and "tests" not in r["body"] for r in server.requests)
