"""The executors: what runs programs on their tests, and who owns them.

- ``Executor``: the protocol both executors satisfy (``sandbox.LocalExecutor``, the embedded
  sandbox; ``RemoteExecutor``, the client of the execution API at ``CYBER_URL``);
- ``get_executor``: the one place that decides local, remote or ray (``ray_executor.py``, imported
  only when asked for);
- ``RemoteExecutor``: one connection pool per event loop, made in that loop and closed there;
- ``gather_all``, ``close_executor``, ``stop_executor``: running and releasing them.

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
from typing import Any, Protocol, Sequence

import httpx

from errors import ConfigError, ExecutionError, LibraryBenchError
from records import VERDICTS, Test, TestResult, Verdict

log = logging.getLogger("librarybench")

DEFAULT_TIMEOUT = 10.0  # seconds per test
DEFAULT_RETRIES = 4  # remote executor: retries of a request
DEFAULT_RETRY_BACKOFF = 0.5  # remote executor: first pause between retries, seconds


class Executor(Protocol):
    """What runs programs: ``name`` (``local``/``remote``), what it says of its ``isolation``,
    ``run_tests`` (one result per test, in order) and ``close`` (stop at once, e.g. on Ctrl-C)."""

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


class RemoteExecutor:
    """Client of the execution API at ``CYBER_URL``: one POST per (program, test).

    One shared ``httpx.AsyncClient`` per event loop, its connection pool sized to the execution
    semaphore. Connection errors, timeouts, 429 and 5xx responses, and bodies that are not a
    result object are retried with exponential backoff and jitter; other 4xx are not (the
    request itself is wrong). When retries are used up an ``ExecutionError`` naming the URL is
    raised: an error of the run, never a failed test.
    """

    name = "remote"

    def __init__(self, url: str, *, retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_RETRY_BACKOFF, max_backoff: float = 8.0,
                 request_timeout_margin: float = 30.0, connections: int | None = None) -> None:
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
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owner: asyncio.Task[None] | None = None  # keeps the pool open; closes it in its loop

    @property
    def isolation(self) -> str:
        return f"remote execution API at {self.url}"

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

    async def run_test(self, code: str, test: Test, *, timeout: float | None = None) -> TestResult:
        timeout = timeout or DEFAULT_TIMEOUT
        params = {
            "language": "python",
            "environment": "default",
            "timeout": f"{timeout:g}",
            "generation_formatting": "true",
            "fill_missing_imports": "true",
        }
        client = self._get_client()
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self._pause(attempt))
            try:
                response = await client.post(
                    self.url, params=params, json={"code": code, "test": test}, timeout=timeout + self.margin
                )
            except httpx.HTTPError as exc:
                problem = _describe_http_error(exc)
                log.debug("execution API attempt %d: %s", attempt + 1, problem)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                problem = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                raise ExecutionError(
                    f"execution API at {self.url} rejected the request: HTTP {response.status_code}: "
                    f"{' '.join(response.text[:200].split())}"
                )
            try:
                result = response.json()
            except ValueError:
                problem = f"HTTP {response.status_code} with a body that is not JSON: {response.text[:80]!r}"
                continue
            if not isinstance(result, dict) or not isinstance(result.get("passed"), bool):
                problem = "response JSON is not a result object (no boolean 'passed')"
                continue
            result["verdict"] = verdict_of(result)
            return result  # type: ignore[return-value]
        raise ExecutionError(f"execution API at {self.url} failed after {self.retries + 1} attempts: {problem}")

    async def run_tests(self, code: str, tests: list[Test], *, timeout: float | None = None) -> list[TestResult]:
        return await gather_all([self.run_test(code, t, timeout=timeout) for t in tests], self.name)


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
            options: dict[str, Any] = {}
            if retries is not None:
                options["retries"] = retries
            if backoff is not None:
                options["backoff"] = backoff
            return RemoteExecutor(url, **options)
        if url not in _remote_executors:
            _remote_executors[url] = RemoteExecutor(url)
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
