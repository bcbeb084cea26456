"""The executors: what runs programs on their tests, and who owns them.

- ``Executor``: the protocol both executors satisfy (``sandbox.LocalExecutor``, the embedded
  sandbox; ``RemoteExecutor``, the client of the execution API at ``CYBER_URL``);
- ``get_executor``: the one place that decides local, remote or ray (``ray_executor.py``, imported
  only when asked for);
- ``RemoteExecutor``: one connection pool per event loop, made in that loop and closed there;
  its requests in flight bounded by an AIMD window (``request_window.py``);
- ``gather_all``, ``close_executor``, ``stop_executor``: running and releasing them;
- ``run_batched``: ``librarybench_common.run_tests`` on an executor that takes batches.

``verdict_of`` gives a remote result (which has none) the embedded executor's verdict. The
execution calls the scripts use (``run_tests``, ``run_unit_tests``) are in ``librarybench_common``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence
from urllib.parse import urljoin

import httpx

from errors import ConfigError, ExecutionError, LibraryBenchError
from records import VERDICTS, Test, TestResult, Verdict
from request_window import DEFAULT_START, BusyClock, Outcome, RequestWindow, WindowWaitExpired

log = logging.getLogger("librarybench")

DEFAULT_TIMEOUT = 10.0  # seconds per test
DEFAULT_RETRIES = 4  # remote executor: retries of a request
DEFAULT_RETRY_BACKOFF = 0.5  # remote executor: first pause between retries, seconds
DEFAULT_BUSY_TIMEOUT = 600.0  # remote executor: most seconds a request waits out 429 + Retry-After
DEFAULT_BATCH_TESTS = 25  # remote executor: most tests per batch request (a load balancer spreads batches)
TOKEN_ENV = "CYBER_TOKEN"  # remote executor: bearer token of the execution server


class Executor(Protocol):
    """What runs programs: ``name`` (``local``/``remote``), what it says of its ``isolation``,
    ``run_tests`` (one result per test, in order) and ``close`` (stop at once, e.g. on Ctrl-C).

    Optional: ``async batch_limit() -> int``, the most tests one ``run_tests`` call should carry
    when more than 1; ``librarybench_common.run_tests`` then sends a program's tests in batches
    under one execution-semaphore permit per test, passing ``stop_on_first_failure=True`` for
    fail-fast runs judged ``exact``. Without it each test is its own call."""

    name: str

    @property
    def isolation(self) -> str: ...

    async def run_tests(self, code: str, tests: list[Test], *, timeout: float | None = None) -> list[TestResult]: ...

    def close(self) -> None: ...


def _exec_limit() -> int:
    """The global execution semaphore's limit (it lives with the semaphores, which import this module)."""
    from librarybench_common import semaphore_limit

    return semaphore_limit("exec")



def verdict_of(result: dict[str, Any]) -> Verdict:
    """A verdict for a remote result (which has none): same rule as the embedded executor."""
    if result.get("verdict") in VERDICTS:
        return result["verdict"]
    if result.get("passed"):
        return "passed"
    run = (result.get("exec_output") or {}).get("run_output") or {}
    if run.get("timeout_expired"):
        return "timeout"
    failed = run.get("exit_code") not in (0, None)
    if failed and _last_exception_line(run.get("stderr") or "").split(":", 1)[0].strip().endswith("MemoryError"):
        return "memory_limit"  # like the sandbox: a non-zero exit whose traceback ends in MemoryError
    if failed:
        return "runtime_error"
    return "wrong_answer"


def _last_exception_line(stderr: str) -> str:
    """The last non-blank line of stderr (where a traceback names its exception)."""
    lines = [line for line in stderr.rstrip().split("\n") if line.strip()]
    return lines[-1] if lines else ""


def _describe_http_error(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True)
class ServerLimits:
    """What a remote server advertises of its limits (``problem_limits`` reads ``memory_mb``)."""

    memory_mb: int | None  # the most memory_mb a request may ask; None: it takes none


class RemoteExecutor:
    """Client of the execution API at ``CYBER_URL``: one POST per (program, test), or one per
    program and batch of tests when the server advertises the batch extension in ``/health``
    (``docs/execution-api-batch.md``; the toolkit's ``execution_server.py`` does).

    One shared ``httpx.AsyncClient`` per event loop, its connection pool sized to the execution
    semaphore. Connection errors, timeouts, 429 and 5xx responses, and bodies that are not a
    result object are retried with exponential backoff and jitter; other 4xx are not (the
    request itself is wrong). A 429 with ``Retry-After`` (a server doing admission control) is
    waited out as it asks and does not use up a retry, for at most ``busy_timeout`` seconds in
    all per request. When retries are used up an ``ExecutionError`` naming the URL is raised: an
    error of the run, never a failed test.

    ``window`` (default on): an AIMD window (``request_window.py``) bounds the requests in
    flight to what the server has been admitting, starting at its advertised
    ``capacity.max_in_flight``; the others wait locally instead of drawing 429s. It only decides
    when a request is sent, never its result; the local wait counts towards ``busy_timeout``.
    ``window=False``: every request the execution semaphore allows is sent at once (as before).
    ``busy_answers``: the 429s this executor received.

    ``token`` (``CYBER_TOKEN`` through ``get_executor``) is sent as ``Authorization: Bearer``.
    ``batch``: ``None`` asks ``/health`` once, ``False`` always sends one request per test;
    ``batch_tests``: most tests per batch (also at most the server's ``max_tests``), small enough
    that the batches of a run spread over the replicas behind a load balancer.
    The request timeout covers the run the server promises: ``timeout + margin`` for a server
    that advertises nothing; for one that advertises its capacity, the longest an admitted
    request can take there (its tests at their timeout on its fair share of the workers).
    ``memory_mb`` of ``run_tests`` is sent (query parameter ``memory_mb``, at most the server's
    ``memory.max_mb``) only to a server that advertises ``memory.per_request`` in ``/health``;
    to any other it is never sent (the original service has no memory field).
    """

    name = "remote"

    def __init__(self, url: str, *, retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_RETRY_BACKOFF, max_backoff: float = 8.0,
                 request_timeout_margin: float = 30.0, connections: int | None = None, token: str | None = None,
                 batch: bool | None = None, batch_tests: int = DEFAULT_BATCH_TESTS,
                 busy_timeout: float = DEFAULT_BUSY_TIMEOUT, window: bool = True) -> None:
        url = (url or "").strip()
        if not url:
            raise ConfigError("CYBER_URL is not set: set it to the execution API's URL or use --executor local")
        if not re.match(r"https?://[^/\s]+", url):
            raise ConfigError(f"CYBER_URL must be an http:// or https:// URL, got {url!r}")
        if retries < 0:
            raise ConfigError(f"retries must be >= 0, got {retries}")
        self.url = url
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.margin = request_timeout_margin
        self.connections = connections
        self.token = (token or "").strip() or None
        self.batch = batch
        self.batch_tests = batch_tests
        self.busy_timeout = busy_timeout
        self.window = window
        self.busy_answers = 0  # 429s received (with or without the window)
        self._window: RequestWindow | None = None
        self._health: dict[str, Any] | None = None  # what /health advertised ({} when nothing usable)
        self._health_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._health_retry_at = 0.0  # after an unreachable /health, not asked again before this
        self._blocking_retry_at = 0.0  # the same for health_blocking (time.monotonic)
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owner: asyncio.Task[None] | None = None  # keeps the pool open; closes it in its loop

    @property
    def isolation(self) -> str:
        return f"remote execution API at {self.url}"

    @property
    def health_url(self) -> str:
        """``health`` beside the request path: ``http://h:p/execute`` -> ``http://h:p/health``."""
        return urljoin(self.url.split("?", 1)[0], "health")

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _get_client(self) -> httpx.AsyncClient:
        """The connection pool of the running loop, made in that loop.

        An ``httpx.AsyncClient`` belongs to the loop it was made in, so each pool has an owner
        task in that loop which closes it there: when ``close``/``aclose`` cancel it, or when
        the loop ends (``asyncio.run`` cancels the tasks left, so every blocking call and every
        script releases its pool without help). A new loop gets a new pool.
        """
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._release()
            n = self.connections or _exec_limit()
            client = httpx.AsyncClient(limits=httpx.Limits(max_connections=n, max_keepalive_connections=n))
            self._client, self._loop = client, loop
            self._owner = loop.create_task(_keep_open_until_cancelled(client), name="librarybench-remote-pool")
        return self._client

    async def aclose(self) -> None:
        """Close the connection pool now (it is recreated on the next request)."""
        owner, loop = self._owner, self._loop
        self._release()
        if owner is not None and loop is asyncio.get_running_loop():
            await asyncio.wait({owner})  # its ``finally`` closes the pool

    def close(self) -> None:
        """Synchronous counterpart of ``aclose`` (Ctrl-C): the pool's owner task closes it in its loop."""
        self._release()

    def _release(self) -> None:
        """Forget the current pool and ask its owner task, in the pool's own loop, to close it."""
        owner, loop = self._owner, self._loop
        self._client, self._loop, self._owner = None, None, None
        if owner is None or loop is None or owner.done() or loop.is_closed():
            return  # a loop that ended cancelled the owner, which closed the pool
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            owner.cancel()
        else:  # another thread's loop (or one not running now): cancelled when it runs
            loop.call_soon_threadsafe(owner.cancel)

    @property
    def has_client(self) -> bool:
        return self._client is not None

    def _pause(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random())

    # -- what the server advertises --------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """``/health`` as the server answered it, asked once; ``{}`` for a server without one
        (the original service), or when it could not be reached (asked again next time)."""
        if self._health is not None:
            return self._health
        loop = asyncio.get_running_loop()
        if self._health_lock is None or self._health_lock[0] is not loop:
            self._health_lock = (loop, asyncio.Lock())
        async with self._health_lock[1]:  # one question at a time: the others wait for its answer
            if self._health is not None:
                return self._health
            if loop.time() < self._health_retry_at:
                return {}
            return await self._ask_health()

    async def _ask_health(self) -> dict[str, Any]:
        try:
            response = await self._get_client().get(self.health_url, headers=self._headers(), timeout=10)
        except httpx.HTTPError as exc:
            log.debug("execution API health %s: %s", self.health_url, _describe_http_error(exc))
            self._health_retry_at = asyncio.get_running_loop().time() + 30
            return {}
        return self._keep_health(response)

    def health_blocking(self) -> dict[str, Any]:
        """``health`` for synchronous callers (``problem_limits`` decides a run's limits before
        its event loop runs): one plain GET, its answer kept for the async side too."""
        if self._health is not None:
            return self._health
        if time.monotonic() < self._blocking_retry_at:
            return {}
        try:
            response = httpx.get(self.health_url, headers=self._headers(), timeout=10)
        except httpx.HTTPError as exc:
            log.debug("execution API health %s: %s", self.health_url, _describe_http_error(exc))
            self._blocking_retry_at = time.monotonic() + 30  # not asked again per problem
            return {}
        return self._keep_health(response)

    def _keep_health(self, response: httpx.Response) -> dict[str, Any]:
        """Remember what a ``/health`` answer advertises (``{}``: nothing usable)."""
        if response.status_code == 401:
            raise ExecutionError(f"execution API at {self.url} refused the token (HTTP 401): set CYBER_TOKEN to the "
                                 f"server's token")
        try:
            health = response.json() if response.status_code == 200 else {}
        except ValueError:
            health = {}
        self._health = health if isinstance(health, dict) else {}
        return self._health

    async def batch_limit(self) -> int:
        """Most tests this executor takes in one ``run_tests`` call to good effect: ``batch_tests``
        within the server's ``batch.max_tests`` when it advertises batches (and ``batch`` is not
        ``False``), else 1."""
        if self.batch is False:
            return 1
        batch = (await self.health()).get("batch")
        if not isinstance(batch, dict):
            return 1
        limit = batch.get("max_tests")
        return min(limit, self.batch_tests) if isinstance(limit, int) and limit > 1 else 1

    @staticmethod
    def _memory_cap(health: dict[str, Any]) -> int | None:
        """The most ``memory_mb`` the server takes per request, or None when it advertises none."""
        memory = health.get("memory")
        if not isinstance(memory, dict) or memory.get("per_request") is not True:
            return None
        cap = memory.get("max_mb")
        return cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else None

    @property
    def per_call_memory(self) -> bool:
        """Whether ``run_tests`` applies ``memory_mb`` (``problem_limits``: ``--limits dataset``):
        only when the server advertises it (asks ``/health`` now if not asked yet)."""
        return self._memory_cap(self.health_blocking()) is not None

    @property
    def limits(self) -> ServerLimits:
        """The server's advertised memory cap (``problem_limits`` holds records' limits to it)."""
        return ServerLimits(self._memory_cap(self.health_blocking()))

    async def _memory_params(self, memory_mb: int | None) -> dict[str, str]:
        """``{"memory_mb": ...}`` for a server that advertises it, else nothing (never sent to others)."""
        if memory_mb is None:
            return {}
        cap = self._memory_cap(await self.health())
        if cap is None:
            return {}
        return {"memory_mb": str(min(int(memory_mb), cap))}

    def _request_timeout(self, tests: int, timeout: float) -> float:
        capacity = (self._health or {}).get("capacity")
        if not isinstance(capacity, dict):
            return timeout + self.margin
        workers, in_flight = capacity.get("workers"), capacity.get("max_in_flight")
        if not (isinstance(workers, int) and isinstance(in_flight, int) and workers > 0 and in_flight > 0):
            return timeout + self.margin
        share = -(-in_flight // workers)
        return share * tests * timeout + timeout + self.margin

    # -- running ---------------------------------------------------------------------------

    def _params(self, timeout: float) -> dict[str, str]:
        return {
            "language": "python",
            "environment": "default",
            "timeout": f"{timeout:g}",
            "generation_formatting": "true",
            "fill_missing_imports": "true",
        }

    async def _post(self, body: dict[str, Any], timeout: float, request_timeout: float,
                    accept: Callable[[Any], str | None], extra: dict[str, str] | None = None) -> Any:
        """POST ``body`` with the retry rules above; ``accept(json)`` says what is wrong with an answer;
        ``extra``: query parameters of an advertised extension (``memory_mb``)."""
        client = self._get_client()
        window = await self._request_window()
        params, headers = {**self._params(timeout), **(extra or {})}, self._headers()
        problem = ""
        attempt = 0
        clock = BusyClock(self.busy_timeout)
        pause = 0.0
        sent = False
        while attempt <= self.retries:
            if pause:
                await asyncio.sleep(pause)
            try:
                response = await self._send(client, window, clock, sent, params=params, json=body, headers=headers,
                                            timeout=request_timeout)
            except httpx.HTTPError as exc:
                problem = _describe_http_error(exc)
                log.debug("execution API attempt %d: %s", attempt + 1, problem)
                attempt += 1
                pause = self._pause(attempt)
                sent = True
                continue
            sent = True
            if response.status_code == 429:
                problem = "HTTP 429"
                wait = _retry_after(response)
                now = asyncio.get_running_loop().time()
                busy_until = clock.until()
                if wait is not None and now + wait <= busy_until:
                    pause = wait * (1 + 0.5 * random.random())  # as the server asks; not a failed attempt
                    continue
                if wait is not None:
                    raise ExecutionError(f"execution API at {self.url} stayed busy (HTTP 429, Retry-After) for more "
                                         f"than {self.busy_timeout:g} s")
                attempt += 1
                pause = self._pause(attempt)
                continue
            if response.status_code >= 500:
                problem = f"HTTP {response.status_code}"
                attempt += 1
                pause = self._pause(attempt)
                continue
            if response.status_code >= 400:
                hint = " (set CYBER_TOKEN to the server's token)" if response.status_code == 401 else ""
                raise ExecutionError(
                    f"execution API at {self.url} rejected the request: HTTP {response.status_code}: "
                    f"{' '.join(response.text[:200].split())}{hint}"
                )
            try:
                answer = response.json()
            except ValueError:
                answer, problem = None, f"HTTP {response.status_code} with a body that is not JSON: {response.text[:80]!r}"
            else:
                problem = accept(answer) or ""
            if not problem:
                return answer
            attempt += 1
            pause = self._pause(attempt)
        raise ExecutionError(f"execution API at {self.url} failed after {attempt} attempts: {problem}")

    async def _request_window(self) -> RequestWindow | None:
        """The executor's window (``None`` with ``window=False``), made once, sized from ``/health``
        (asked now if not yet: the advertised admission limit is the natural start)."""
        if not self.window:
            return None
        cap = self.connections or _exec_limit()
        if self._window is None:
            capacity = (await self.health()).get("capacity")
            start = capacity.get("max_in_flight") if isinstance(capacity, dict) else None
            valid = isinstance(start, int) and not isinstance(start, bool) and start > 0
            if self._window is None:  # another first request may have made it during the await
                self._window = RequestWindow(start if valid else DEFAULT_START, cap)  # type: ignore[arg-type]
        self._window.cap = max(1, cap)  # the semaphore may have been resized since
        return self._window

    async def _send(self, client: httpx.AsyncClient, window: RequestWindow | None, clock: BusyClock, retry: bool,
                    **request: Any) -> httpx.Response:
        """One POST, inside the window when there is one: it waits there for room (at most until
        ``clock``'s deadline), and leaves with what the answer says of the server's admission."""
        if window is None:
            response = await client.post(self.url, **request)
            self.busy_answers += response.status_code == 429
            return response
        try:
            ticket = await window.enter(clock, retry=retry)
        except WindowWaitExpired:
            raise ExecutionError(f"execution API at {self.url} stayed busy (this client's window of {window.permits} "
                                 f"requests in flight full) for more than {self.busy_timeout:g} s") from None
        outcome: Outcome = "unknown"
        try:
            response = await client.post(self.url, **request)
            if response.status_code == 429:
                self.busy_answers += 1
                outcome = "busy"
            elif response.status_code < 500:
                outcome = "admitted"
            return response
        finally:
            window.leave(ticket, outcome)

    async def run_test(self, code: str, test: Test, *, timeout: float | None = None,
                       memory_mb: int | None = None) -> TestResult:
        timeout = timeout or DEFAULT_TIMEOUT
        if self._health is None and (self.batch is not False or self.window):
            await self.health()  # the capacity sets the request timeout (and the window's start)
        extra = await self._memory_params(memory_mb)
        result = await self._post({"code": code, "test": test}, timeout, self._request_timeout(1, timeout), _not_a_result,
                                  extra)
        result["verdict"] = verdict_of(result)
        return result  # type: ignore[no-any-return]

    async def run_batch(self, code: str, tests: list[Test], *, timeout: float | None = None,
                        stop_on_first_failure: bool = False, memory_mb: int | None = None) -> list[TestResult]:
        """One request of the batch extension (the caller keeps it within ``batch_limit``)."""
        timeout = timeout or DEFAULT_TIMEOUT
        body: dict[str, Any] = {"code": code, "tests": tests}
        if stop_on_first_failure:
            body["stop_on_first_failure"] = True

        def accept(answer: Any) -> str | None:
            results = answer.get("results") if isinstance(answer, dict) else None
            if not isinstance(results, list) or len(results) != len(tests):
                return f"response JSON is not a list of {len(tests)} results"
            return next((p for p in map(_not_a_result, results) if p), None)

        extra = await self._memory_params(memory_mb)
        answer = await self._post(body, timeout, self._request_timeout(len(tests), timeout), accept, extra)
        results = answer["results"]
        for result in results:
            if result.get("verdict") != "skipped":
                result["verdict"] = verdict_of(result)
        return results  # type: ignore[no-any-return]

    async def run_tests(self, code: str, tests: list[Test], *, timeout: float | None = None,
                        stop_on_first_failure: bool = False, memory_mb: int | None = None) -> list[TestResult]:
        """Results in test order: batches of at most ``batch_limit`` tests, else one request per test
        (``stop_on_first_failure`` then only applies within a batch). ``memory_mb``: see the class."""
        limit = await self.batch_limit() if len(tests) > 1 else 1
        if limit > 1:
            chunks = [tests[i:i + limit] for i in range(0, len(tests), limit)]
            parts = await gather_all([self.run_batch(code, c, timeout=timeout, stop_on_first_failure=stop_on_first_failure,
                                                     memory_mb=memory_mb) for c in chunks], self.name)
            return [r for part in parts for r in part]
        return await gather_all([self.run_test(code, t, timeout=timeout, memory_mb=memory_mb) for t in tests], self.name)


def _not_a_result(result: Any) -> str | None:
    if not isinstance(result, dict) or not isinstance(result.get("passed"), bool):
        return "response JSON is not a result object (no boolean 'passed')"
    return None


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (the delay-seconds form), or ``None`` when absent or a date."""
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


async def _keep_open_until_cancelled(client: httpx.AsyncClient) -> None:
    """Owner task of a connection pool: waits until cancelled, then closes the pool in its own loop."""
    try:
        await asyncio.get_running_loop().create_future()
    finally:
        await client.aclose()


_local_executor: Executor | None = None
_remote_executors: dict[str, RemoteExecutor] = {}


PLATFORM = sys.platform  # read once (a test stands in for macOS or Windows by changing it)


def require_linux() -> None:
    """The embedded executor needs Linux (namespaces, pidfds, memfds): elsewhere one clear line."""
    if not PLATFORM.startswith("linux"):
        raise ConfigError(
            f"the embedded executor needs Linux (this is {PLATFORM}): set CYBER_URL to a remote "
            f"execution API, for example execution_server.py on a Linux machine")


def local_executor() -> Executor:
    """The process-wide embedded executor (its warm workers are shared by every caller)."""
    global _local_executor
    if _local_executor is None:
        from sandbox import LocalExecutor

        _local_executor = LocalExecutor()
    return _local_executor


def get_executor(kind: str | None = None, *, memory_mb: int | None = None, output_bytes: int | None = None,
                 retries: int | None = None, backoff: float | None = None) -> Executor:
    """``remote`` when ``CYBER_URL`` is set, else ``local``; ``kind`` overrides (``ray``: only when asked).

    Without options the executor is shared per process (one warm worker pool, one connection
    pool). ``memory_mb``/``output_bytes`` give a local executor with those limits (the remote API
    has no such knobs); ``retries``/``backoff`` tune the remote client.
    """
    url = os.environ.get("CYBER_URL", "").strip()
    kind = kind or ("remote" if url else "local")
    if kind == "local":
        require_linux()
        if retries is not None or backoff is not None:
            log.debug("retries/backoff only apply to the remote executor; ignored")
        if memory_mb is None and output_bytes is None:
            return local_executor()
        from sandbox import LocalExecutor

        return LocalExecutor(memory_mb=memory_mb, output_bytes=output_bytes)
    if kind == "remote":
        if memory_mb is not None or output_bytes is not None:
            raise ConfigError("--memory-mb and --output-limit apply to the local executor only (the remote API sets its own limits)")
        if retries is not None or backoff is not None:
            options: dict[str, Any] = {"token": os.environ.get(TOKEN_ENV)}
            if retries is not None:
                options["retries"] = retries
            if backoff is not None:
                options["backoff"] = backoff
            return RemoteExecutor(url, **options)
        if url not in _remote_executors:
            _remote_executors[url] = RemoteExecutor(url, token=os.environ.get(TOKEN_ENV))
        return _remote_executors[url]
    if kind == "ray":
        if retries is not None or backoff is not None:
            log.debug("retries/backoff only apply to the remote executor; ignored")
        from ray_executor import get_ray_executor  # imports Ray (an optional group) only now

        return get_ray_executor(memory_mb=memory_mb, output_bytes=output_bytes)
    raise ConfigError(f"unknown executor {kind!r}: use local, remote or ray")


async def gather_all(coros: Sequence[Any], executor_name: str = "executor") -> list[Any]:
    """Await all coroutines; on the first failure cancel the rest and raise it as an ``ExecutionError``.

    Unlike ``asyncio.gather`` nothing keeps running after a failure, and an unexpected exception of
    an executor becomes an error of the run with a one-line message instead of a traceback.
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coros]
    except BaseExceptionGroup as failures:
        first = _first_leaf(failures)
        if isinstance(first, LibraryBenchError):
            raise first from None
        if not isinstance(first, Exception):
            raise first from None
        raise ExecutionError(f"{executor_name} executor failed: {type(first).__name__}: {first}") from first
    return [t.result() for t in tasks]


async def run_batched(code: str, tests: list[Test], executor: Executor, timeout: float, judge: Any,
                       on_result: OnResult | None, fail_fast: bool, limit: int,
                       memory_mb: int | None = None) -> list[TestResult]:
    """``run_tests`` on an executor that takes many tests per call (``batch_limit() > 1``): the
    tests go in batches of at most ``limit`` and half the execution semaphore, each batch holding
    one permit per test. ``fail_fast``: a failure skips the batches not yet sent; with the
    ``exact`` judge the executor also stops within a batch (``stop_on_first_failure``), since its
    verdicts are then final. ``memory_mb``: each batch's memory limit (passed only when given)."""
    import judges
    from librarybench_common import SKIPPED, exec_permits, exec_semaphore, semaphore_limit, skipped_result

    sem = exec_semaphore()
    size = max(1, min(limit, semaphore_limit("exec") // 2))
    stop_inside = fail_fast and judge.name == judges.DEFAULT_JUDGE
    failed = asyncio.Event()
    memory = {"memory_mb": memory_mb} if memory_mb is not None else {}  # executors without it never see it

    async def batch(part: list[Test]) -> list[TestResult]:
        async with exec_permits(len(part)):
            if failed.is_set():
                got = [skipped_result(code, t) for t in part]
            elif stop_inside:
                got = await executor.run_tests(code, part, timeout=timeout, stop_on_first_failure=True,  # type: ignore[call-arg]
                                               **memory)
            else:
                got = await executor.run_tests(code, part, timeout=timeout, **memory)  # type: ignore[call-arg]
        out = []
        for result in got:
            if result.get("verdict") != SKIPPED:
                result = await judges.judge_result(judge, result, executor=executor, semaphore=sem)  # type: ignore[assignment]
                if fail_fast and not result.get("passed"):
                    failed.set()
            if on_result is not None:
                on_result(result)
            out.append(result)
        return out

    parts = await gather_all([batch(tests[i:i + size]) for i in range(0, len(tests), size)], executor.name)
    return [r for part in parts for r in part]


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


async def close_executor(executor: Executor) -> None:
    """Release an executor's event-loop resources (a remote client's connection pool)."""
    aclose = getattr(executor, "aclose", None)
    if aclose is not None:
        await aclose()


def stop_executor(executor: Executor) -> None:
    """Stop an executor at once (Ctrl-C/SIGTERM): the local one kills its workers and their tests,
    the remote one drops its connection pool. Safe to call twice."""
    close = getattr(executor, "close", None)
    if close is not None:
        try:
            close()
        except Exception as exc:  # noqa: BLE001 - we are interrupting anyway
            log.debug("closing the executor: %s", exc)
