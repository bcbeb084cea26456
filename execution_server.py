"""Serve the embedded executor over HTTP under the remote execution API's contract.

Run it on a big machine and point the toolkit at it with ``CYBER_URL=http://HOST:PORT/``:

    uv run python execution_server.py --host 0.0.0.0 --port 8765

Contract (see ``docs/execution-api.md`` of the shared docs): ``POST <any path>?language=python&
timeout=30&fill_missing_imports=true`` with the JSON body ``{"code": ..., "test": {"stdin": ...,
"stdout": ...}}`` (or an assert-style test string) returns HTTP 200 and one result object:
``code`` (the program as run, with the import header when ``fill_missing_imports`` is true),
``test``, ``passed``, ``exec_output.run_output`` (stdout, stderr, exit_code, timeout_expired,
elapsed_time), ``uncaught_exception`` (``"None"``), plus the toolkit's ``verdict``. Bad requests
get HTTP 400 and ``{"error": ...}``; a failing sandbox gets HTTP 500 (clients retry those).
``GET /health`` says which executor and isolation serve the requests.

The server runs untrusted code only inside the embedded executor's sandbox, but it has no
authentication: bind it to a private interface.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cli import OneLineParser, add_logging_flag, positive_int, run_main
from errors import LibraryBenchError

log = logging.getLogger("librarybench.execution_server")

MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_TIMEOUT = 300.0
DEFAULT_REQUEST_TIMEOUT = 30.0  # the remote service's value when a request names none


class BadRequest(Exception):
    """The request breaks the contract: answered with HTTP 400."""


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
    def isolation(self) -> str:
        return self.get(True).isolation

    def close(self) -> None:
        with self._lock:
            executors, self._executors = list(self._executors.values()), {}
        for executor in executors:
            executor.close()


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
        return DEFAULT_REQUEST_TIMEOUT
    try:
        timeout = float(values[-1])
    except ValueError:
        raise BadRequest(f"timeout must be a number of seconds, got {values[-1]!r}") from None
    if not 0 < timeout <= max_timeout:
        raise BadRequest(f"timeout must be in (0, {max_timeout:g}] seconds, got {values[-1]}")
    return timeout


def parse_body(raw: bytes) -> tuple[str, Any]:
    """``(code, test)`` from the request body, or ``BadRequest`` saying what is wrong."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object with code and test")
    code, test = body.get("code"), body.get("test")
    if not isinstance(code, str):
        raise BadRequest("body.code must be a string")
    if isinstance(test, dict):
        if not isinstance(test.get("stdin"), str) or not isinstance(test.get("stdout"), str):
            raise BadRequest("body.test must have string fields stdin and stdout")
        test = {"stdin": test["stdin"], "stdout": test["stdout"]}
    elif not isinstance(test, str):
        raise BadRequest("body.test must be an object {stdin, stdout} or a string of Python")
    return code, test


def execute(pool: ExecutorPool, query: str, raw: bytes, max_timeout: float) -> dict[str, Any]:
    """One request of the contract: validate it and run the test on the embedded executor."""
    params = parse_qs(query, keep_blank_values=True)
    language = (params.get("language") or ["python"])[-1].lower()
    if language not in ("python", "python3"):
        raise BadRequest(f"language {language!r} is not supported (only python)")
    timeout = parse_timeout(params, max_timeout)
    import_header = parse_flag(params, "fill_missing_imports", True)
    code, test = parse_body(raw)
    return pool.get(import_header).run_test(code, test, timeout=timeout)


class Handler(BaseHTTPRequestHandler):
    """Requests of the contract; every answer is JSON."""

    server: "ExecutionServer"
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.send_json(411, {"error": "Content-Length is required"})
            return
        if int(length) > MAX_BODY_BYTES:
            self.send_json(413, {"error": f"body larger than {MAX_BODY_BYTES} bytes"})
            self.close_connection = True
            return
        raw = self.rfile.read(int(length))
        try:
            result = execute(self.server.pool, urlsplit(self.path).query, raw, self.server.max_timeout)
        except BadRequest as exc:
            self.send_json(400, {"error": str(exc)})
            return
        except Exception as exc:  # the sandbox failed: the client retries, then reports an error of the run
            log.exception("execution failed")
            message = f"{type(exc).__name__}: {exc}"
            self.send_json(500, {"error": message, "uncaught_exception": message})
            return
        self.send_json(200, result)

    def do_GET(self) -> None:  # noqa: N802
        if urlsplit(self.path).path.rstrip("/") in ("", "/health"):
            self.send_json(200, {"status": "ok", "executor": "local", "isolation": self.server.pool.isolation})
        else:
            self.send_json(404, {"error": "POST a program and a test; GET /health for status"})

    def send_json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        log.info("%s %s", self.address_string(), format % args)


class ExecutionServer(ThreadingHTTPServer):
    """A threading HTTP server; each request blocks its thread until a sandbox worker is free."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], pool: ExecutorPool, max_timeout: float = DEFAULT_MAX_TIMEOUT) -> None:
        super().__init__(address, Handler)
        self.pool = pool
        self.max_timeout = max_timeout

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def port_number(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(description="Serve the embedded executor under the remote execution API's contract.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0: every interface)")
    parser.add_argument("--port", type=port_number, default=8765, help="port to bind (0: any free port, printed at start)")
    parser.add_argument("--workers", type=positive_int, help="sandbox workers (default: one per core)")
    parser.add_argument("--memory-mb", type=positive_int, help="memory limit per test in MB (default: the sandbox's)")
    parser.add_argument("--output-limit", type=positive_int, metavar="BYTES",
                        help="cap on stdout and stderr per test in bytes (default: the sandbox's)")
    parser.add_argument("--max-timeout", type=float, default=DEFAULT_MAX_TIMEOUT,
                        help="largest per-request timeout accepted, in seconds")
    add_logging_flag(parser, help="logging level (stderr); INFO logs every request")
    return parser


def executor_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {"workers": args.workers, "memory_mb": args.memory_mb, "output_bytes": args.output_limit}
    return {k: v for k, v in options.items() if v is not None}


def serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM (then the sandbox's workers are stopped and the status is 0).
    ``.env`` was read by ``run_main``: LIBRARYBENCH_ISOLATION may come from it, as for the other scripts."""
    pool = ExecutorPool(**executor_options(args))
    try:
        server = ExecutionServer((args.host, args.port), pool, args.max_timeout)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        isolation = pool.isolation  # start the workers now: a broken sandbox fails at start, not per request
    except LibraryBenchError:
        server.server_close()
        pool.close()
        raise  # run_main prints it as one line, status 2
    print(f"serving the embedded executor at {server.url} (isolation: {isolation})", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        pool.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv, serve)


if __name__ == "__main__":
    sys.exit(main())
