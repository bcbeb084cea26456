"""execution_server.py as a shared production service: real uvicorn servers on 127.0.0.1 in
subprocesses, real programs, the toolkit's own client.

Token (401 runs nothing), admission control (429 + Retry-After, the client still finishes; the
client's window keeps its requests to what the server admits),
caps (413, 400), a client that goes away (its tests never run), /health and /metrics, the batch
extension (equal to the local executor test for test, stop_on_first_failure), SIGTERM during a
batch, and the timeout-heavy case of issue 14 (150 looping tests at timeout 2 on 2 workers).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Iterator

import httpx
import pytest

import librarybench_common as common
from conftest import ROOT, SAMPLES, clean_env
from errors import ExecutionError

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PARAMS = {"language": "python", "timeout": "5", "fill_missing_imports": "true"}
SUM = "a, b = map(int, input().split())\nprint(a + b)\n"
LOOP = "while True:\n    pass\n"


class Server:
    """``execution_server.py ARGS`` in a subprocess; its URL from the start-up line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "execution_server.py", "--host", "127.0.0.1", "--port", "0", *args],
                                     cwd=ROOT, env=env or clean_env(), stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, text=True)
        self.log: list[str] = []
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 60
        self.url = ""
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
            if match:
                self.url = match.group(1)
                break
        if not self.url:
            self.proc.kill()
            pytest.fail(f"execution_server.py did not start: {''.join(self.log)}{self.proc.stderr.read()}")
        self._drain = threading.Thread(target=self._read_log, daemon=True)
        self._drain.start()

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(self.url + path, headers=headers, timeout=30)

    def metrics(self, headers: dict[str, str] | None = None) -> dict[str, float]:
        """``/metrics`` as ``{'name{labels}': value}`` (comments left out)."""
        text = self.get("metrics", headers).text
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line and not line.startswith("#")}

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def executed(metrics: dict[str, float]) -> float:
    return sum(v for k, v in metrics.items() if k.startswith("librarybench_tests_total{"))


@pytest.fixture(scope="module")
def small() -> Iterator[Server]:
    """One worker, one program at a time, a token, small caps: every limit is easy to reach."""
    server = Server("--workers", "1", "--max-in-flight", "1", "--max-body-bytes", "100000",
                    "--max-batch-tests", "8", "--max-timeout", "20", env=clean_env(LIBRARYBENCH_SERVER_TOKEN=TOKEN))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def default() -> Iterator[Server]:
    """The default server on this machine's 2 cores: 2 workers, 4 programs in flight, no token."""
    server = Server("--workers", "2")
    yield server
    server.stop()


# ---- the token ----------------------------------------------------------------------------


def test_without_the_right_token_every_request_gets_401_and_nothing_runs(small: Server) -> None:
    before = executed(small.metrics(AUTH))
    body = {"code": "print(1)", "test": {"stdin": "", "stdout": "1"}}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
        response = httpx.post(small.url, params=PARAMS, json=body, headers=headers, timeout=30)
        assert response.status_code == 401, headers
        assert "bearer token" in response.json()["error"] and response.headers["www-authenticate"].startswith("Bearer")
        batch = httpx.post(small.url, params=PARAMS, json={"code": "print(1)", "tests": [body["test"]] * 2},
                           headers=headers, timeout=30)
        assert batch.status_code == 401
    assert small.get("health").status_code == 401 and small.get("metrics").status_code == 401
    after = small.metrics(AUTH)
    assert executed(after) == before  # nothing ran
    assert after['librarybench_rejected_total{reason="unauthorized"}'] >= 10
    ok = httpx.post(small.url, params=PARAMS, json=body, headers=AUTH, timeout=30)
    assert ok.status_code == 200 and ok.json()["verdict"] == "passed"
    assert executed(small.metrics(AUTH)) == before + 1


async def test_client_sends_cyber_token_and_says_so_when_it_is_wrong(small: Server) -> None:
    good = common.RemoteExecutor(small.url, token=TOKEN, backoff=0.01)
    bad = common.RemoteExecutor(small.url, token="nope", backoff=0.01)
    try:
        results = await common.run_tests(SUM, [{"stdin": "1 2\n", "stdout": "3\n"}] * 3, timeout=5, executor=good)
        assert [r["verdict"] for r in results] == ["passed"] * 3
        with pytest.raises(ExecutionError, match="CYBER_TOKEN"):
            await common.run_tests(SUM, [{"stdin": "1 2\n", "stdout": "3\n"}], timeout=5, executor=bad)
    finally:
        await good.aclose()
        await bad.aclose()


def test_non_loopback_bind_without_a_token_is_refused_in_one_line() -> None:
    proc = subprocess.run([sys.executable, "execution_server.py", "--host", "0.0.0.0", "--port", "0"],
                          cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing to serve on 0.0.0.0 without a token")
    assert "--token" in lines[0] and "LIBRARYBENCH_SERVER_TOKEN" in lines[0]


# ---- caps ---------------------------------------------------------------------------------


def test_oversized_body_gets_413_and_too_many_tests_413_and_bad_timeout_400(small: Server) -> None:
    before = executed(small.metrics(AUTH))
    big = {"code": "x = '" + "a" * 150_000 + "'", "test": {"stdin": "", "stdout": ""}}
    response = httpx.post(small.url, params=PARAMS, json=big, headers=AUTH, timeout=30)
    assert response.status_code == 413
    assert "larger than this server's 100000 bytes" in response.json()["error"]
    many = {"code": "print(1)", "tests": [{"stdin": "", "stdout": "1"}] * 9}
    response = httpx.post(small.url, params=PARAMS, json=many, headers=AUTH, timeout=30)
    assert response.status_code == 413 and "9 tests, more than this server's 8" in response.json()["error"]
    response = httpx.post(small.url, params={**PARAMS, "timeout": "21"}, json={"code": "print(1)", "test": "pass"},
                          headers=AUTH, timeout=30)
    assert response.status_code == 400 and "timeout must be in (0, 20]" in response.json()["error"]
    empty = httpx.post(small.url, params=PARAMS, json={"code": "print(1)", "tests": []}, headers=AUTH, timeout=30)
    assert empty.status_code == 400 and "non-empty list" in empty.json()["error"]
    assert executed(small.metrics(AUTH)) == before


# ---- admission control --------------------------------------------------------------------


def test_beyond_max_in_flight_the_server_answers_429_with_retry_after(small: Server) -> None:
    slow = {"code": "import time\ntime.sleep(1.5)\nprint(1)", "test": {"stdin": "", "stdout": "1"}}
    box: dict[str, Any] = {}
    first = threading.Thread(target=lambda: box.update(r=httpx.post(small.url, params=PARAMS, json=slow,
                                                                     headers=AUTH, timeout=30)))
    first.start()
    deadline = time.monotonic() + 20
    while small.get("health", AUTH).json()["load"]["in_flight"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    second = httpx.post(small.url, params=PARAMS, json={"code": "print(1)", "test": "pass"}, headers=AUTH, timeout=30)
    first.join()
    assert second.status_code == 429
    assert int(second.headers["retry-after"]) >= 1 and "busy" in second.json()["error"]
    assert box["r"].status_code == 200 and box["r"].json()["verdict"] == "passed"


async def test_overloaded_server_still_finishes_every_test_for_each_client(small: Server) -> None:
    """Two clients at once (per-test and batched) on a server admitting one program at a time."""
    rejected_before = small.metrics(AUTH).get('librarybench_rejected_total{reason="busy"}', 0)
    per_test = common.RemoteExecutor(small.url, token=TOKEN, batch=False, retries=0, backoff=0.01)
    batched = common.RemoteExecutor(small.url, token=TOKEN, retries=0, backoff=0.01)
    tests = [{"stdin": f"{i} {i}\n", "stdout": f"{2 * i}\n"} for i in range(6)] + [{"stdin": "1 1\n", "stdout": "3\n"}]
    try:
        got = await asyncio.gather(
            common.run_tests(SUM, tests, timeout=5, executor=per_test),
            *(common.run_tests(SUM, tests, timeout=5, executor=batched) for _ in range(3)))
    finally:
        await per_test.aclose()
        await batched.aclose()
    for results in got:
        assert [r["verdict"] for r in results] == ["passed"] * 6 + ["wrong_answer"]
    assert small.metrics(AUTH)['librarybench_rejected_total{reason="busy"}'] > rejected_before  # 429s happened


def test_a_client_that_goes_away_has_its_waiting_tests_cancelled_not_run(small: Server) -> None:
    before = small.metrics(AUTH)
    body = {"code": "import time\ntime.sleep(0.5)\nprint(1)", "tests": [{"stdin": "", "stdout": "1"}] * 8}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(small.url, params=PARAMS, json=body, headers=AUTH, timeout=0.8)  # one worker: ~4 s of work
    deadline = time.monotonic() + 20
    while small.get("health", AUTH).json()["load"]["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.6)  # a test already running ends within its own time
    after = small.metrics(AUTH)
    ran = executed(after) - executed(before)
    cancelled = after["librarybench_tests_cancelled_total"] - before["librarybench_tests_cancelled_total"]
    assert ran <= 2 and cancelled >= 6 and ran + cancelled == 8


# ---- /health, /metrics --------------------------------------------------------------------


def test_health_advertises_capacity_load_and_batches(small: Server) -> None:
    health = small.get("health", AUTH).json()
    assert health["status"] == "ok" and health["executor"] == "local" and health["isolation"]
    assert health["auth"] == "bearer"
    assert health["batch"] == {"max_tests": 8, "stop_on_first_failure": True}
    assert health["capacity"] == {"workers": 1, "max_in_flight": 1, "max_batch_tests": 8, "max_timeout": 20.0,
                                  "max_body_bytes": 100000}
    assert set(health["load"]) == {"in_flight", "running_tests", "queued_tests"}


def test_metrics_count_requests_verdicts_queue_and_latency(default: Server) -> None:
    before = default.metrics()
    body = {"code": SUM, "tests": [{"stdin": "1 2\n", "stdout": "3\n"}, {"stdin": "1 2\n", "stdout": "4\n"},
                                   {"stdin": "x\n", "stdout": "3\n"}]}
    assert httpx.post(default.url, params=PARAMS, json=body, timeout=30).status_code == 200
    text = default.get("metrics").text
    assert default.get("metrics").headers["content-type"].startswith("text/plain; version=0.0.4")
    for family in ("librarybench_requests_total counter", "librarybench_tests_total counter",
                   "librarybench_tests_queued gauge", "librarybench_programs_in_flight gauge",
                   "librarybench_request_duration_seconds histogram", "librarybench_test_duration_seconds histogram"):
        assert f"# TYPE {family}" in text
    after = default.metrics()

    def delta(key: str) -> float:
        return after.get(key, 0) - before.get(key, 0)

    assert delta('librarybench_tests_total{verdict="passed"}') == 1
    assert delta('librarybench_tests_total{verdict="wrong_answer"}') == 1
    assert delta('librarybench_tests_total{verdict="runtime_error"}') == 1
    assert delta('librarybench_requests_total{endpoint="batch",status="200"}') == 1
    assert delta('librarybench_request_duration_seconds_count{endpoint="batch"}') == 1
    assert after["librarybench_tests_queued"] == 0 and after["librarybench_workers"] == 2


# ---- the batch extension --------------------------------------------------------------------


def comparable(result: dict) -> dict:
    run = dict(result["exec_output"]["run_output"])
    run.pop("elapsed_time")
    return {**result, "exec_output": {**result["exec_output"], "run_output": run}}


async def test_batched_and_per_test_requests_equal_the_local_executor(default: Server, lb_local_executor) -> None:
    batched = common.RemoteExecutor(default.url, backoff=0.01)
    per_test = common.RemoteExecutor(default.url, batch=False, backoff=0.01)
    try:
        assert await batched.batch_limit() == 25 and await per_test.batch_limit() == 1
        for record in json.loads((SAMPLES / "sample_problems.json").read_text()):
            tests = common.problem_tests(record, 0)
            code = common.extract_code(record["sample_solution"])
            want = [comparable(r) for r in await common.run_tests(code, tests, timeout=2, executor=lb_local_executor)]
            assert [comparable(r) for r in await common.run_tests(code, tests, timeout=2, executor=batched)] == want
            assert [comparable(r) for r in await common.run_tests(code, tests, timeout=2, executor=per_test)] == want
    finally:
        await batched.aclose()
        await per_test.aclose()


def test_stop_on_first_failure_skips_the_tests_not_started(small: Server) -> None:
    tests = [{"stdin": "1 1\n", "stdout": "3\n"}] + [{"stdin": "1 1\n", "stdout": "2\n"}] * 5
    stopped = httpx.post(small.url, params=PARAMS, json={"code": SUM, "tests": tests, "stop_on_first_failure": True},
                         headers=AUTH, timeout=30).json()["results"]
    assert [r["verdict"] for r in stopped] == ["wrong_answer"] + ["skipped"] * 5  # one worker: in order
    assert all(r["passed"] is False and r["exec_output"]["run_output"]["exit_code"] is None for r in stopped[1:])
    full = httpx.post(small.url, params=PARAMS, json={"code": SUM, "tests": tests}, headers=AUTH, timeout=30).json()
    assert [r["verdict"] for r in full["results"]] == ["wrong_answer"] + ["passed"] * 5


async def test_fail_fast_through_a_batch_skips_what_follows_the_first_failure(default: Server, lb_local_executor) -> None:
    tests = [{"stdin": f"{i} 1\n", "stdout": f"{i + 1}\n"} for i in range(20)]
    tests[3] = {"stdin": "3 1\n", "stdout": "5\n"}
    remote = common.RemoteExecutor(default.url, backoff=0.01)
    try:
        got = await common.run_tests(SUM, tests, timeout=5, executor=remote, fail_fast=True)
    finally:
        await remote.aclose()
    local = await common.run_tests(SUM, tests, timeout=5, executor=lb_local_executor, fail_fast=True)
    verdicts = [r["verdict"] for r in got]
    assert verdicts[3] == "wrong_answer" and verdicts[:3] == ["passed"] * 3
    assert verdicts.count("skipped") >= 10  # one batch of 20 on 2 workers: stopped after test 3
    assert set(verdicts) <= {"passed", "wrong_answer", "skipped"}
    assert all(r["passed"] for r in got) == all(r["passed"] for r in local) is False  # the same pass@k


# ---- shutdown -------------------------------------------------------------------------------


def test_sigterm_during_a_batch_lets_it_finish_then_exits_0() -> None:
    server = Server("--workers", "2")
    try:
        body = {"code": "import time\ntime.sleep(1)\nprint(int(input()) * 2)",
                "tests": [{"stdin": f"{i}\n", "stdout": f"{2 * i}\n"} for i in range(4)]}
        box: dict[str, Any] = {}
        client = threading.Thread(target=lambda: box.update(r=httpx.post(server.url, params=PARAMS, json=body, timeout=60)))
        client.start()
        deadline = time.monotonic() + 20
        while server.get("health").json()["load"]["running_tests"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        server.proc.send_signal(signal.SIGTERM)
        client.join(60)
        assert server.proc.wait(timeout=60) == 0
    finally:
        server.stop()
    response = box["r"]
    assert response.status_code == 200
    assert [r["verdict"] for r in response.json()["results"]] == ["passed"] * 4
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "health", timeout=5)
    assert "Traceback" not in "".join(server.log)


# ---- issue 14's timeout-heavy case -----------------------------------------------------------


async def test_150_looping_tests_at_timeout_2_give_150_timeouts_and_the_server_stays_responsive(default: Server) -> None:
    """One answer that loops forever, 150 tests at --timeout 2, the default client (50 executions
    in flight) against the default 2-worker server: every test is a timeout verdict, nothing is an
    error, and a print(1) right after is answered as a passed test."""
    remote = common.RemoteExecutor(default.url)
    tests = [{"stdin": f"{i}\n", "stdout": "never\n"} for i in range(150)]
    started = time.monotonic()
    try:
        results = await common.run_tests(LOOP, tests, timeout=2, executor=remote)
        took = time.monotonic() - started
        after = time.monotonic()
        [quick] = await common.run_tests("print(1)", [{"stdin": "", "stdout": "1\n"}], timeout=2, executor=remote)
        latency = time.monotonic() - after
    finally:
        await remote.aclose()
    print(f"150 looping tests: {took:.1f} s; print(1) right after: {latency * 1000:.0f} ms")
    assert [r["verdict"] for r in results] == ["timeout"] * 150
    assert all(r["exec_output"]["run_output"]["timeout_expired"] for r in results)
    assert quick["verdict"] == "passed"
    assert latency < 30  # a very generous sanity bound (issue 14 saw 29 s); it is milliseconds
    assert "Traceback" not in "".join(default.log)


async def test_looping_tests_one_request_each_get_timeouts_not_errors(default: Server) -> None:
    """The same case, smaller, through the per-test path (the original contract): 50 requests at
    once against 4 admitted programs, the rest 429 and waited out, every test a timeout."""
    remote = common.RemoteExecutor(default.url, batch=False)
    try:
        results = await common.run_tests(LOOP, [{"stdin": f"{i}\n", "stdout": "x\n"} for i in range(16)],
                                         timeout=1, executor=remote)
        [quick] = await common.run_tests("print(1)", [{"stdin": "", "stdout": "1\n"}], timeout=2, executor=remote)
    finally:
        await remote.aclose()
    assert [r["verdict"] for r in results] == ["timeout"] * 16
    assert quick["verdict"] == "passed"


def busy_refusals(server: Server, headers: dict[str, str] | None = None) -> float:
    return server.metrics(headers).get('librarybench_rejected_total{reason="busy"}', 0)


async def test_the_window_keeps_per_test_requests_to_what_the_server_admits(default: Server) -> None:
    """40 per-test requests at once (the semaphore allows 50) against 2 workers admitting 4:
    without the window 36 or more are refused at once and retried after Retry-After; with it the
    others wait in the client and only its probes beyond 4 draw a 429. Same verdicts both ways."""
    code = "import time\ntime.sleep(0.05)\n" + SUM
    tests = [{"stdin": f"{i} {i}\n", "stdout": f"{2 * i if i % 5 else -1}\n"} for i in range(40)]
    want = ["wrong_answer" if i % 5 == 0 else "passed" for i in range(40)]

    async def run(window: bool) -> tuple[list[str], float, int]:
        before = busy_refusals(default)
        remote = common.RemoteExecutor(default.url, batch=False, window=window)
        try:
            results = await common.run_tests(code, tests, timeout=5, executor=remote)
        finally:
            await remote.aclose()
        return [r["verdict"] for r in results], busy_refusals(default) - before, remote.busy_answers

    plain_verdicts, plain_429, plain_seen = await run(window=False)
    verdicts, windowed_429, seen = await run(window=True)
    print(f"429s: {plain_429:g} without the window, {windowed_429:g} with it")
    assert plain_verdicts == verdicts == want
    assert (plain_seen, seen) == (plain_429, windowed_429)  # the client counts what the server refused
    assert plain_429 >= 30  # the case is real: most requests beyond the 4 admitted are refused
    assert windowed_429 * 3 < plain_429


async def test_the_busy_timeout_covers_the_wait_in_the_window(small: Server) -> None:
    """The server admits 1: the window holds a second request locally while the first runs; past
    busy_timeout that wait is an error of the run naming the URL, never a test's verdict."""
    remote = common.RemoteExecutor(small.url, token=TOKEN, batch=False, busy_timeout=1.0)
    slow = common.run_tests("import time\ntime.sleep(3)\nprint(1)", [{"stdin": "", "stdout": "1\n"}], timeout=10,
                            executor=remote)
    before = busy_refusals(small, AUTH)
    try:
        first = asyncio.ensure_future(slow)
        await asyncio.sleep(0.5)
        with pytest.raises(ExecutionError, match=r"at http://127.*stayed busy \(this client's window of 1 requests "
                                                 r"in flight full\) for more than 1 s"):
            await common.run_tests(SUM, [{"stdin": "1 2\n", "stdout": "3\n"}], timeout=5, executor=remote)
        [result] = await first
    finally:
        await remote.aclose()
    assert result["verdict"] == "passed"
    assert busy_refusals(small, AUTH) == before  # the second request was never sent


async def test_batches_stay_within_the_global_execution_semaphore(default: Server) -> None:
    """Each batch holds one permit per test: with --exec-semaphore 6, at most 6 tests are in
    flight across all programs, in batches of at most 3 (half of it)."""

    class Counting(common.RemoteExecutor):
        in_flight = peak = 0
        sizes: list[int] = []

        async def run_tests(self, code, tests, **options):  # type: ignore[no-untyped-def]
            Counting.in_flight += len(tests)
            Counting.peak = max(Counting.peak, Counting.in_flight)
            Counting.sizes.append(len(tests))
            try:
                return await super().run_tests(code, tests, **options)
            finally:
                Counting.in_flight -= len(tests)

    common.set_semaphore_limits(exec=6)
    remote = Counting(default.url, backoff=0.01)
    tests = [{"stdin": f"{i} 1\n", "stdout": f"{i + 1}\n"} for i in range(10)]
    try:
        got = await asyncio.gather(*(common.run_tests(SUM, tests, timeout=5, executor=remote) for _ in range(4)))
    finally:
        common.set_semaphore_limits(exec=common.DEFAULT_EXEC_CONCURRENCY)
        await remote.aclose()
    assert all([r["verdict"] for r in results] == ["passed"] * 10 for results in got)
    assert Counting.peak <= 6 and max(Counting.sizes) == 3 and sum(Counting.sizes) == 40
