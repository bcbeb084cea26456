"""Serve the embedded executor over HTTP under the remote execution API's contract (uvicorn, ASGI).

Run it on a big machine and point the toolkit at it with ``CYBER_URL=http://HOST:PORT/``:

    uv run python execution_server.py --host 0.0.0.0 --port 8765 --token "$LIBRARYBENCH_SERVER_TOKEN"

Contract (``docs/execution-api.md`` of the shared docs): ``POST <any path>?language=python&
timeout=30&fill_missing_imports=true`` with the JSON body ``{"code": ..., "test": {"stdin": ...,
"stdout": ...}}`` (or an assert-style test string) returns HTTP 200 and one result object:
``code`` (the program as run, with the import header when ``fill_missing_imports`` is true),
``test``, ``passed``, ``exec_output.run_output`` (stdout, stderr, exit_code, timeout_expired,
elapsed_time), ``uncaught_exception`` (``"None"``), plus the toolkit's ``verdict``. The batch
extension (``docs/execution-api-batch.md``): the body ``{"code", "tests": [...],
"stop_on_first_failure"}`` returns ``{"results": [...]}``, one result per test, in order; the query
parameter ``memory_mb`` (advertised as ``memory`` in ``/health``) sets the memory limit of each test
of a request, at most ``--memory-mb``.

Owns the HTTP side: bearer-token check (before anything is read), body and timeout caps (413,
400, always a JSON ``{"error": ...}``), admission (429 with ``Retry-After`` beyond
``--max-in-flight`` programs; scheduling in ``server_scheduler.py``), cancelling the tests of a
client that went away, ``GET /health`` (executor, isolation, capacity, load, batch support) and
``GET /metrics`` (Prometheus text, ``server_metrics.py``), and the graceful shutdown on SIGTERM or
Ctrl-C (stop accepting, finish what was admitted, exit 0). A failing sandbox gets HTTP 500
(clients retry those). Untrusted code runs only inside the embedded executor's sandbox.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import ipaddress
import json
import logging
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import parse_qs

from cli import OneLineParser, add_logging_flag, positive_float, positive_int, run_main
from errors import ConfigError, LibraryBenchError
from server_metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from server_metrics import Metrics
from server_scheduler import Program, Scheduler

log = logging.getLogger("librarybench.execution_server")

TOKEN_ENV = "LIBRARYBENCH_SERVER_TOKEN"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_TIMEOUT = 300.0
DEFAULT_MAX_BATCH_TESTS = 256
DEFAULT_REQUEST_TIMEOUT = 30.0  # the remote service's value when a request names none
SKIPPED = "skipped"  # a batch's test not run after stop_on_first_failure (the toolkit's verdict of it)


class BadRequest(Exception):
    """The request breaks the contract: answered with ``status`` (400, or 413 when too large)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ExecutorPool:
    """The executors behind the server: one with the import header, one without (made on demand)."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._executors: dict[bool, Any] = {}

    def get(self, import_header: bool) -> Any:
        with self._lock:
            if import_header not in self._executors:
                from sandbox import LocalExecutor

                self._executors[import_header] = LocalExecutor(import_header=import_header, **self.options)
            return self._executors[import_header]

    @property
    def workers(self) -> int:
        return self.get(True).workers

    @property
    def isolation(self) -> str:
        return self.get(True).isolation

    @property
    def memory_mb(self) -> int:
        """The sandbox's memory limit per test (``--memory-mb`` or its default): the cap of a request's."""
        return int(self.get(True).limits.memory_mb)

    def close(self) -> None:
        with self._lock:
            executors, self._executors = list(self._executors.values()), {}
        for executor in executors:
            executor.close()


# ---- validating a request ----------------------------------------------------------------


def parse_flag(params: dict[str, list[str]], name: str, default: bool) -> bool:
    values = params.get(name)
    if not values:
        return default
    value = values[-1].strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise BadRequest(f"{name} must be true or false, got {values[-1]!r}")


def parse_timeout(params: dict[str, list[str]], max_timeout: float) -> float:
    values = params.get("timeout")
    if not values:
        return min(DEFAULT_REQUEST_TIMEOUT, max_timeout)
    try:
        timeout = float(values[-1])
    except ValueError:
        raise BadRequest(f"timeout must be a number of seconds, got {values[-1]!r}") from None
    if not 0 < timeout <= max_timeout:
        raise BadRequest(f"timeout must be in (0, {max_timeout:g}] seconds, got {values[-1]}")
    return timeout


def parse_memory(params: dict[str, list[str]], max_memory_mb: int) -> int | None:
    """The request's ``memory_mb`` (an extension: per-test memory limit in MB), at most the
    server's own (its workers' cgroups are sized to that); None when the request names none."""
    values = params.get("memory_mb")
    if not values:
        return None
    text = values[-1].strip()
    if not (text.isascii() and text.isdigit()) or int(text) <= 0:  # '²' is a digit to isdigit, not to int
        raise BadRequest(f"memory_mb must be a positive integer of megabytes, got {values[-1]!r}")
    return min(int(text), max_memory_mb)


def parse_test(test: Any, where: str) -> Any:
    if isinstance(test, dict):
        if not isinstance(test.get("stdin"), str) or not isinstance(test.get("stdout"), str):
            raise BadRequest(f"{where} must have string fields stdin and stdout")
        return {"stdin": test["stdin"], "stdout": test["stdout"]}
    if not isinstance(test, str):
        raise BadRequest(f"{where} must be an object {{stdin, stdout}} or a string of Python")
    return test


class Work:
    """A validated request: a program, its tests (one unless it is a batch) and how to run them."""

    def __init__(self, code: str, tests: list[Any], batch: bool, stop_on_first_failure: bool,
                 timeout: float, import_header: bool, memory_mb: int | None = None) -> None:
        self.code, self.tests, self.batch = code, tests, batch
        self.stop_on_first_failure = stop_on_first_failure
        self.timeout, self.import_header = timeout, import_header
        self.memory_mb = memory_mb  # None: the server's own limit


def parse_work(query: str, body: Any, max_timeout: float, max_batch: int, max_memory_mb: int | None = None) -> Work:
    """The request of the contract (``test``) or of the batch extension (``tests``), or ``BadRequest``.
    ``max_memory_mb`` None: this server takes no ``memory_mb`` (the parameter is ignored, as the
    original service ignores unknown parameters)."""
    params = parse_qs(query, keep_blank_values=True)
    language = (params.get("language") or ["python"])[-1].lower()
    if language not in ("python", "python3"):
        raise BadRequest(f"language {language!r} is not supported (only python)")
    timeout = parse_timeout(params, max_timeout)
    memory_mb = parse_memory(params, max_memory_mb) if max_memory_mb is not None else None
    import_header = parse_flag(params, "fill_missing_imports", True)
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object with code and test (or tests)")
    code = body.get("code")
    if not isinstance(code, str):
        raise BadRequest("body.code must be a string")
    if "tests" in body:
        tests = body["tests"]
        if not isinstance(tests, list) or not tests:
            raise BadRequest("body.tests must be a non-empty list of tests")
        if len(tests) > max_batch:
            raise BadRequest(f"body.tests has {len(tests)} tests, more than this server's {max_batch} per request", 413)
        stop = body.get("stop_on_first_failure", False)
        if not isinstance(stop, bool):
            raise BadRequest("body.stop_on_first_failure must be true or false")
        return Work(code, [parse_test(t, f"body.tests[{i}]") for i, t in enumerate(tests)], True, stop,
                    timeout, import_header, memory_mb)
    return Work(code, [parse_test(body.get("test"), "body.test")], False, False, timeout, import_header, memory_mb)


def skipped_result(code: str, test: Any) -> dict[str, Any]:
    """A batch's test not run after ``stop_on_first_failure``: the toolkit's ``skipped`` result."""
    run = {"stdout": "", "stderr": "", "exit_code": None, "timeout_expired": False, "elapsed_time": 0.0}
    return {"code": code, "test": test, "passed": False, "exec_output": {"run_output": run, "compile_output": None},
            "uncaught_exception": "None", "verdict": SKIPPED}


# ---- the ASGI application ----------------------------------------------------------------


class Settings:
    def __init__(self, *, token: str | None = None, max_in_flight: int | None = None,
                 max_batch_tests: int = DEFAULT_MAX_BATCH_TESTS, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 max_timeout: float = DEFAULT_MAX_TIMEOUT, memory_per_request: bool = True) -> None:
        self.token = token
        self.max_in_flight = max_in_flight
        self.max_batch_tests = max_batch_tests
        self.max_body_bytes = max_body_bytes
        self.max_timeout = max_timeout
        self.memory_per_request = memory_per_request  # take (and advertise) memory_mb per request


class ExecutionApp:
    """The ASGI application (Starlette requests and responses) around an ``ExecutorPool``."""

    def __init__(self, pool: ExecutorPool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings
        workers = pool.workers
        self.scheduler = Scheduler(workers, settings.max_in_flight or 2 * workers)
        self.metrics = Metrics()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from starlette.requests import Request

        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        started = time.monotonic()
        endpoint = "other"
        try:
            endpoint, response = await self._handle(request)
        except Exception as exc:  # noqa: BLE001 - never a traceback to the client
            log.exception("request failed")
            message = f"{type(exc).__name__}: {exc}"
            response = self._json(500, {"error": message, "uncaught_exception": message})
        self.metrics.request_done(endpoint, response.status_code, time.monotonic() - started)
        await response(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.scheduler.closing = True
                self.scheduler.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Any:
        from starlette.responses import Response

        return Response(json.dumps(payload), status_code=status, headers=headers, media_type="application/json")

    def _reject(self, reason: str, status: int, message: str, headers: dict[str, str] | None = None) -> Any:
        self.metrics.rejected[reason] += 1
        return self._json(status, {"error": message}, headers)

    def _authorized(self, request: Any) -> bool:
        token = self.settings.token
        if not token:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())

    async def _handle(self, request: Any) -> tuple[str, Any]:
        if not self._authorized(request):  # before the body is read: nothing runs
            return "unauthorized", self._reject("unauthorized", 401, "missing or wrong bearer token (Authorization: Bearer ...)",
                                                {"WWW-Authenticate": 'Bearer realm="librarybench"'})
        last = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        if request.method == "GET":
            if last in ("", "health"):
                return "health", self._json(200, self.health())
            if last == "metrics":
                from starlette.responses import Response

                return "metrics", Response(self.render_metrics(), media_type=METRICS_CONTENT_TYPE)
            return "other", self._json(404, {"error": "POST a program and a test; GET /health or /metrics"})
        if request.method != "POST":
            return "other", self._json(405, {"error": "POST a program and a test; GET /health or /metrics"},
                                       {"Allow": "GET, POST"})
        return await self._execute(request)

    async def _read_body(self, request: Any) -> bytes:
        cap = self.settings.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cap:
            raise BadRequest(f"body of {int(length)} bytes is larger than this server's {cap} bytes", 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise BadRequest(f"body larger than this server's {cap} bytes", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _execute(self, request: Any) -> tuple[str, Any]:
        endpoint = "run"
        try:
            raw = await self._read_body(request)
            try:
                body = await asyncio.to_thread(json.loads, raw) if len(raw) > 1 << 20 else json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise BadRequest("body is not JSON") from None
            work = parse_work(request.url.query, body, self.settings.max_timeout, self.settings.max_batch_tests,
                              self.max_memory_mb)
        except BadRequest as exc:
            reason = "too_large" if exc.status == 413 else "bad_request"
            return endpoint, self._reject(reason, exc.status, str(exc))
        endpoint = "batch" if work.batch else "run"
        program = self.scheduler.admit()
        if program is None:
            if self.scheduler.closing:
                return endpoint, self._reject("shutting_down", 503, "the server is shutting down")
            retry = self.scheduler.retry_after()
            return endpoint, self._reject(
                "busy", 429, f"busy: {self.scheduler.max_programs} programs in flight; retry after {retry} s",
                {"Retry-After": str(retry)})
        started = time.monotonic()
        try:
            results = await self._run(request, program, work)
        finally:
            self.scheduler.release(program, time.monotonic() - started)
        if results is None:  # the client went away: nothing to answer
            return endpoint, self._json(499, {"error": "client closed the request"})
        return endpoint, self._json(200, {"results": results} if work.batch else results[0])

    async def _run(self, request: Any, program: Program, work: Work) -> list[dict[str, Any]] | None:
        """Run the work's tests; ``None`` if the client disconnected (its tests not started never run)."""
        executor = await asyncio.to_thread(self.pool.get, work.import_header)  # the no-header one starts on first use
        stop = asyncio.Event()

        def then(result: dict[str, Any]) -> None:
            if work.stop_on_first_failure and not result.get("passed"):
                stop.set()
                self.scheduler.cancel_waiting(program)  # not started: never run (skipped); running: kept

        async def one(test: Any) -> dict[str, Any] | None:
            if stop.is_set():
                self.metrics.cancelled_tests += 1
                return None
            try:
                result, waited, ran = await self.scheduler.run(
                    program, lambda: executor.run_test(work.code, test, timeout=work.timeout, memory_mb=work.memory_mb),
                    then)
            except asyncio.CancelledError:
                self.metrics.cancelled_tests += 1
                raise
            self.metrics.queue_seconds.observe(waited)
            self.metrics.test_done(result.get("verdict", "unknown"), ran)
            return result

        tasks = [asyncio.ensure_future(one(t)) for t in work.tests]
        gone = asyncio.ensure_future(_wait_disconnect(request))
        try:
            await asyncio.wait([gone, asyncio.gather(*tasks, return_exceptions=True)],
                               return_when=asyncio.FIRST_COMPLETED)
            if gone.done():
                for task in tasks:
                    task.cancel()
                log.info("client went away: %d test(s) not run", sum(1 for t in tasks if t.cancelled()))
                return None
        finally:
            gone.cancel()
        results: list[dict[str, Any]] = []
        for test, task in zip(work.tests, tasks):
            if task.cancelled() or task.result() is None:
                results.append(skipped_result(work.code, test))
                continue
            error = task.exception()
            if error is not None:
                raise error
            results.append(task.result())
        return results

    @property
    def max_memory_mb(self) -> int | None:
        """The most ``memory_mb`` a request may ask (the sandbox's own limit); None: not taken."""
        return self.pool.memory_mb if self.settings.memory_per_request else None

    def health(self) -> dict[str, Any]:
        s, sched = self.settings, self.scheduler
        memory = {"memory": {"per_request": True, "max_mb": self.max_memory_mb}} if s.memory_per_request else {}
        return {
            "status": "shutting_down" if sched.closing else "ok",
            "executor": "local",
            "isolation": self.pool.isolation,
            "auth": "bearer" if s.token else "none",
            "batch": {"max_tests": s.max_batch_tests, "stop_on_first_failure": True},
            **memory,
            "capacity": {"workers": sched.slots, "max_in_flight": sched.max_programs,
                         "max_batch_tests": s.max_batch_tests, "max_timeout": s.max_timeout,
                         "max_body_bytes": s.max_body_bytes},
            "load": {"in_flight": len(sched.programs), "running_tests": sched.running, "queued_tests": sched.queued},
        }

    def render_metrics(self) -> str:
        sched = self.scheduler
        gauges = {
            "librarybench_programs_in_flight": ("admitted requests (single tests or batches) not answered yet",
                                                len(sched.programs)),
            "librarybench_programs_max_in_flight": ("admission limit (--max-in-flight)", sched.max_programs),
            "librarybench_tests_running": ("tests holding a sandbox worker", sched.running),
            "librarybench_tests_queued": ("tests of admitted programs waiting for a worker (queue depth)", sched.queued),
            "librarybench_workers": ("sandbox workers", sched.slots),
        }
        return self.metrics.render(gauges, {"executor": "local", "isolation": self.pool.isolation})


async def _wait_disconnect(request: Any) -> None:
    """Returns when the client has gone (after the body was read, ASGI's receive says so)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


# ---- the command line ----------------------------------------------------------------------


def port_number(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(description="Serve the embedded executor under the remote execution API's contract.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0: every interface; needs --token)")
    parser.add_argument("--port", type=port_number, default=8765, help="port to bind (0: any free port, printed at start)")
    parser.add_argument("--token", help=f"bearer token every request must carry (default: ${TOKEN_ENV}; "
                                        "required unless --host is a loopback address)")
    parser.add_argument("--workers", type=positive_int, help="sandbox workers (default: one per core)")
    parser.add_argument("--max-in-flight", type=positive_int,
                        help="programs (requests) admitted at once; beyond: 429 with Retry-After (default: 2 x workers)")
    parser.add_argument("--max-batch-tests", type=positive_int, default=DEFAULT_MAX_BATCH_TESTS,
                        help="most tests in one batch request (more: 413)")
    parser.add_argument("--max-body-bytes", type=positive_int, default=DEFAULT_MAX_BODY_BYTES,
                        help="largest request body (larger: 413)")
    parser.add_argument("--memory-mb", type=positive_int,
                        help="memory limit per test in MB (default: the sandbox's); also the most a request's "
                             "memory_mb parameter may ask")
    parser.add_argument("--no-memory-param", dest="memory_per_request", action="store_false",
                        help="take no memory_mb parameter and do not advertise it in /health (as the original "
                             "service: every test runs under --memory-mb)")
    parser.add_argument("--output-limit", type=positive_int, metavar="BYTES",
                        help="cap on stdout and stderr per test in bytes (default: the sandbox's)")
    parser.add_argument("--max-timeout", type=positive_float, default=DEFAULT_MAX_TIMEOUT,
                        help="largest per-test timeout accepted, in seconds (larger: HTTP 400)")
    parser.add_argument("--shutdown-timeout", type=positive_float,
                        help="on SIGTERM, seconds to let admitted requests finish before cancelling them "
                             "(default: wait for all)")
    add_logging_flag(parser, help="logging level (stderr); INFO logs every request")
    return parser


def executor_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {"workers": args.workers, "memory_mb": args.memory_mb, "output_bytes": args.output_limit}
    return {k: v for k, v in options.items() if v is not None}


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def resolve_token(args: argparse.Namespace) -> str | None:
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV)
    if token is not None and not token.strip():
        raise ConfigError(f"the token is empty: give --token a value or unset {TOKEN_ENV}")
    token = token.strip() if token else None
    if token is None and not is_loopback(args.host):
        raise ConfigError(f"refusing to serve on {args.host} without a token (anyone reaching it could run "
                          f"programs): set --token or {TOKEN_ENV}, or bind 127.0.0.1")
    return token


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def make_uvicorn(app: ExecutionApp, shutdown_timeout: float | None = None) -> Any:
    """A uvicorn server for the app whose SIGTERM/Ctrl-C ends the run with status 0 (uvicorn would
    raise the signal again once stopped)."""
    import uvicorn

    class GracefulServer(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                self._captured_signals.clear()

    config = uvicorn.Config(app, loop="asyncio", http="h11", lifespan="on", log_config=None,
                            access_log=log.isEnabledFor(logging.INFO), timeout_graceful_shutdown=shutdown_timeout,
                            timeout_keep_alive=30)
    return GracefulServer(config)


def serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM: stop accepting, finish the admitted requests, stop the
    sandbox's workers, status 0. ``.env`` was read by ``run_main``: LIBRARYBENCH_ISOLATION and the
    token may come from it, as for the other scripts."""
    token = resolve_token(args)
    try:
        sock = listen(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    pool = ExecutorPool(**executor_options(args))
    try:
        isolation = pool.isolation  # start the workers now: a broken sandbox fails at start, not per request
        app = ExecutionApp(pool, Settings(token=token, max_in_flight=args.max_in_flight,
                                          max_batch_tests=args.max_batch_tests, max_body_bytes=args.max_body_bytes,
                                          max_timeout=args.max_timeout, memory_per_request=args.memory_per_request))
    except LibraryBenchError:
        sock.close()
        pool.close()
        raise  # run_main prints it as one line, status 2
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"serving the embedded executor at http://{shown}:{port}/ (isolation: {isolation}; "
          f"{app.scheduler.slots} workers, {app.scheduler.max_programs} programs in flight; "
          f"token {'required' if token else 'off'})", file=sys.stderr, flush=True)
    try:
        make_uvicorn(app, args.shutdown_timeout).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        app.scheduler.close()
        pool.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv, serve)


if __name__ == "__main__":
    sys.exit(main())
