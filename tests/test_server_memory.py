"""The ``memory_mb`` extension end to end: real ``execution_server.py`` subprocesses on 127.0.0.1,
real programs, the toolkit's own client (``RemoteExecutor``) and CLI.

A 300 MB allocation fails under ``memory_mb=128`` and passes without it; a value above the
server's ``--memory-mb`` is capped, one that is not a positive integer is 400; a server that does
not advertise the extension (``--no-memory-param``, or a server of the original contract) never
gets the parameter, and ``--limits dataset`` warns once there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

import librarybench_common as common
import problem_limits as pl
from conftest import clean_env, run_cli
from test_server_production import Server

HOG = "block = bytearray(300 * 2**20)\nprint(input())\n"
ECHO = [{"stdin": "7\n", "stdout": "7\n"}]
TWO = [{"stdin": "7\n", "stdout": "7\n"}, {"stdin": "8\n", "stdout": "8\n"}]  # two tests: one batch request
PARAMS = {"language": "python", "timeout": "10", "fill_missing_imports": "true"}


@pytest.fixture(scope="module")
def default() -> Iterator[Server]:
    """The sandbox's own limit (1024 MB): a 300 MB allocation passes unless a request asks less."""
    server = Server("--workers", "2")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def capped() -> Iterator[Server]:
    server = Server("--workers", "1", "--memory-mb", "256")
    yield server
    server.stop()


def client(url: str) -> common.RemoteExecutor:
    return common.RemoteExecutor(url, retries=1, backoff=0.01, max_backoff=0.05)


def post(server: Server, body: dict[str, Any], **params: str) -> httpx.Response:
    return httpx.post(server.url, params={**PARAMS, **params}, json=body, timeout=60)


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    return [r["verdict"] for r in results]


def test_health_advertises_memory_per_request_and_its_cap(default: Server, capped: Server) -> None:
    assert default.get("health").json()["memory"] == {"per_request": True, "max_mb": 1024}
    assert capped.get("health").json()["memory"] == {"per_request": True, "max_mb": 256}


async def test_300_mb_gets_memory_limit_under_memory_mb_128_and_passes_without(default: Server) -> None:
    remote = client(default.url)
    try:
        assert remote.per_call_memory and remote.limits.memory_mb == 1024
        for tests in (ECHO, TWO):  # one request per test, and one batch request
            assert verdicts(await common.run_tests(HOG, tests, timeout=10, executor=remote, memory_mb=128)) == \
                ["memory_limit"] * len(tests)
            assert verdicts(await common.run_tests(HOG, tests, timeout=10, executor=remote)) == ["passed"] * len(tests)
    finally:
        await remote.aclose()
    # the raw contract: the query parameter, on a single request and on a batch
    assert post(default, {"code": HOG, "test": ECHO[0]}, memory_mb="128").json()["verdict"] == "memory_limit"
    assert verdicts(post(default, {"code": HOG, "tests": TWO}, memory_mb="128").json()["results"]) == \
        ["memory_limit"] * 2
    assert post(default, {"code": HOG, "test": ECHO[0]}).json()["verdict"] == "passed"


async def test_memory_mb_above_the_server_cap_is_capped(capped: Server) -> None:
    answer = post(capped, {"code": HOG, "test": ECHO[0]}, memory_mb="4096")
    assert answer.status_code == 200 and answer.json()["verdict"] == "memory_limit"  # 256 MB, not 4096
    assert post(capped, {"code": "print(input())", "test": ECHO[0]}, memory_mb="4096").json()["verdict"] == "passed"
    remote = client(capped.url)
    try:
        assert remote.limits.memory_mb == 256
        assert verdicts(await common.run_tests(HOG, TWO, timeout=10, executor=remote, memory_mb=4096)) == \
            ["memory_limit"] * 2
    finally:
        await remote.aclose()


def test_records_asking_more_than_the_server_cap_run_with_the_cap(capped: Server, capsys: pytest.CaptureFixture[str]) -> None:
    settings = pl.LimitSettings("dataset", 1.0, 40.0, 10.0, None)
    limits = pl.resolve([("f.json", 0, {"memory_limit": "2048 megabytes"}),
                         ("f.json", 1, {"memory_limit": "128 megabytes"})], settings, client(capped.url))
    assert [limits[("f.json", i)].call_memory_mb for i in (0, 1)] == [256, 128]
    [line] = capsys.readouterr().err.splitlines()
    assert line == ("warning: --limits dataset: 1 problem(s) ask for more than the executor's 256 MB: they run with "
                    "256 MB (raise it with the server's --memory-mb)")


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5", "", "128MB", "²", "１２８"])
def test_memory_mb_that_is_not_a_positive_integer_is_400(capped: Server, value: str) -> None:
    for body in ({"code": "print(1)", "test": ECHO[0]}, {"code": "print(1)", "tests": TWO}):
        answer = post(capped, body, memory_mb=value)
        assert answer.status_code == 400
        assert answer.json() == {"error": f"memory_mb must be a positive integer of megabytes, got {value!r}"}


async def test_a_server_with_no_memory_param_advertises_none_and_gets_none() -> None:
    server = Server("--workers", "1", "--no-memory-param")
    try:
        assert "memory" not in server.get("health").json()
        assert post(server, {"code": HOG, "test": ECHO[0]}, memory_mb="abc").json()["verdict"] == "passed"  # ignored
        remote = client(server.url)
        try:
            assert not remote.per_call_memory and remote.limits.memory_mb is None
            assert verdicts(await common.run_tests(HOG, TWO, timeout=10, executor=remote, memory_mb=128)) == \
                ["passed"] * 2
        finally:
            await remote.aclose()
    finally:
        assert server.stop() == 0


async def test_a_server_of_the_original_contract_never_gets_memory_mb_and_limits_warn_once(
        lb_scripted_server, capsys: pytest.CaptureFixture[str]) -> None:
    server = lb_scripted_server(["ok"])  # no /health: the original service
    remote = client(server.url)
    settings = pl.LimitSettings("dataset", 1.0, 40.0, 10.0, None)
    limits = pl.resolve([("f.json", 0, {"memory_limit": "128 megabytes"}),
                         ("f.json", 1, {"memory_limit_bytes": 128 * 2**20})], settings, remote)
    assert all(not l.per_call_memory and l.call_memory_mb is None for l in limits.values())
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: --limits dataset: the remote executor takes no memory limit per request")
    try:
        # even when a caller hands it a limit, the parameter is not sent
        assert verdicts(await remote.run_tests(HOG, TWO, timeout=10, memory_mb=128)) == ["passed"] * 2
    finally:
        await remote.aclose()
    assert len(server.requests) == 2 and all("memory_mb" not in r["path"] for r in server.requests)


def hog_problems(tmp_path: Path) -> Path:
    path = tmp_path / "cc.jsonl"
    record = {"name": "hog", "public_tests": {"input": ["7\n", "8\n"], "output": ["7\n", "8\n"]}, "private_tests": {},
              "generated_tests": {}, "solutions": {"language": [3], "solution": [HOG]},
              "time_limit": {"seconds": 5, "nanos": 0}, "memory_limit_bytes": 128 * 2**20}
    path.write_text(json.dumps(record) + "\n")
    return path


def run_remote(url: str, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    out = tmp_path / "out.json"
    proc = run_cli("--problems", str(hog_problems(tmp_path)), "--quiet", "--output", str(out), "--k", "1",
                   "--timeout", "5", "--limits", "dataset", env=clean_env(CYBER_URL=url))
    assert proc.returncode == 0, proc.stderr
    [problem] = [p for f in json.loads(out.read_text())["files"] for p in f["problems"]]
    return proc.stderr, problem


def test_cli_limits_dataset_applies_the_records_memory_through_the_server(default: Server, tmp_path: Path) -> None:
    stderr, problem = run_remote(default.url, tmp_path)
    assert stderr == ""  # the server takes it: no warning
    assert problem["limits"] == {"timeout": 5.0, "memory_mb": 128, "from": "dataset"}
    assert problem["verdicts"] == {"memory_limit": 2}


def test_cli_limits_dataset_warns_once_on_a_server_of_the_original_contract(lb_scripted_server, tmp_path: Path) -> None:
    server = lb_scripted_server(["ok"])
    stderr, problem = run_remote(server.url, tmp_path)
    [line] = stderr.splitlines()
    assert line.startswith("warning: --limits dataset: the remote executor takes no memory limit per request")
    assert problem["verdicts"] == {"passed": 2}  # its own limit (1024 MB), not the record's 128 MB
    assert server.requests and all("memory_mb" not in r["path"] for r in server.requests)
