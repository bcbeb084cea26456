"""A scripted model server on 127.0.0.1 for tests and benchmarks (not collected by pytest).

Speaks the Anthropic Messages API (``POST /v1/messages``) and OpenAI Chat Completions
(``POST /v1/chat/completions``) well enough for the real ``anthropic`` and ``openai`` SDKs:
point them at ``server.anthropic_base_url`` / ``server.openai_base_url``. Replies come from a
handler (a function of the request), may be delayed or fail with any status, and every
request is logged.

Run as a script it is a keyless stand-in model for trying the README's repair walkthrough:
``uv run python tests/fake_llm_server.py --port 8765 [--answers FILE --answer-key KEY]`` prints
its URL and serves until Ctrl-C. With ``--answers`` it is scripted: a request whose prompt holds a
record's ``problem`` statement gets that record's ``KEY`` answer (e.g. the sample file's
``human_solution``); otherwise (and without ``--answers``) it echoes the last program of the prompt.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass(frozen=True)
class FakeReply:
    """What the server answers. ``truncated``: stop at max tokens (``max_tokens``/``length``).
    Error statuses carry ``retry-after-ms: 1`` by default so SDK retries are instant."""

    text: str = ""
    status: int = 200
    truncated: bool = False
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass
class LoggedRequest:
    api: str  # "anthropic" or "openai"
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    time: float
    status: int = 0

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [m for m in self.body.get("messages", []) if m.get("role") != "system"]

    @property
    def system(self) -> str:
        if self.api == "anthropic":
            system = self.body.get("system") or ""
            return system if isinstance(system, str) else "".join(b.get("text", "") for b in system)
        return "".join(m.get("content", "") for m in self.body.get("messages", []) if m.get("role") == "system")

    def text(self) -> str:
        """All prompt text, for matching a request to a scripted problem."""
        parts = [self.system]
        for message in self.messages:
            content = message.get("content", "")
            parts.append(content if isinstance(content, str) else "".join(b.get("text", "") for b in content))
        return "\n".join(parts)

    @property
    def last_user_text(self) -> str:
        users = [m for m in self.messages if m.get("role") == "user"]
        if not users:
            return ""
        content = users[-1].get("content", "")
        return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


Handler = Callable[[LoggedRequest], FakeReply]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def anthropic_body(request: LoggedRequest, reply: FakeReply, number: int) -> dict[str, Any]:
    return {
        "id": f"msg_fake_{number}", "type": "message", "role": "assistant",
        "model": request.body.get("model", "fake"),
        "content": [{"type": "text", "text": reply.text}],
        "stop_reason": "max_tokens" if reply.truncated else "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens if reply.input_tokens is not None else _tokens(request.text()),
                  "output_tokens": reply.output_tokens if reply.output_tokens is not None else _tokens(reply.text)},
    }


def openai_body(request: LoggedRequest, reply: FakeReply, number: int) -> dict[str, Any]:
    prompt = reply.input_tokens if reply.input_tokens is not None else _tokens(request.text())
    completion = reply.output_tokens if reply.output_tokens is not None else _tokens(reply.text)
    return {
        "id": f"chatcmpl-fake-{number}", "object": "chat.completion", "created": int(time.time()),
        "model": request.body.get("model", "fake"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                     "finish_reason": "length" if reply.truncated else "stop", "logprobs": None}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def error_body(api: str, status: int) -> dict[str, Any]:
    kind = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}.get(status, "invalid_request_error")
    message = f"fake server scripted HTTP {status}"
    if api == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "code": None, "param": None}}


class FakeLLMServer:
    """A threaded HTTP server; use as a context manager or call ``start``/``stop``."""

    def __init__(self, handler: Handler | None = None, *, delay: float = 0.0, port: int = 0) -> None:
        self.handler: Handler = handler or (lambda request: FakeReply("I have no code for you."))
        self.delay = delay
        self.port = port
        self.requests: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    def start(self) -> "FakeLLMServer":
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body in two writes cost a 40 ms delayed ACK

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                path = self.path.split("?", 1)[0]
                api = "anthropic" if path.endswith("/messages") else "openai" if path.endswith("/chat/completions") else ""
                request = LoggedRequest(api, path, body, {k.lower(): v for k, v in self.headers.items()}, time.time())
                with server._lock:
                    server.requests.append(request)
                    number = len(server.requests)
                if not api:
                    self._send(404, {"error": {"message": f"no route {path}"}}, {})
                    request.status = 404
                    return
                reply = server.handler(request)
                if server.delay or reply.delay:
                    time.sleep(server.delay + reply.delay)
                request.status = reply.status
                if reply.status != 200:
                    headers = {"retry-after-ms": "1", **reply.headers}
                    self._send(reply.status, error_body(api, reply.status), headers)
                    return
                payload = anthropic_body(request, reply, number) if api == "anthropic" else openai_body(request, reply, number)
                self._send(200, payload, reply.headers)

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (killed or cancelled)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), RequestHandler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-llm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def count(self, predicate: Callable[[LoggedRequest], bool] = lambda r: True) -> int:
        with self._lock:
            return sum(1 for r in self.requests if predicate(r))


def fenced(code: str) -> str:
    return f"Here is the corrected program.\n\n```python\n{code.strip()}\n```\n"


# --------------------------------------------------------------------------------------------
# Small stdin/stdout problems with a buggy starting answer and the repair a scripted model gives.
# --------------------------------------------------------------------------------------------

SUM_FIXED = "a, b = map(int, input().split())\nprint(a + b)"
MAX_FIXED = "a, b = map(int, input().split())\nprint(max(a, b))"

SAMPLE_PROBLEMS: list[dict[str, Any]] = [
    {"problem": "PROBLEM-SUM: read two integers a and b, print a + b.",
     "input_output": json.dumps({"inputs": ["1 2\n", "5 5\n", "0 0\n"], "outputs": ["3\n", "10\n", "0\n"]}),
     "sample_solution": "Easy.\n```python\na, b = map(int, input().split())\nprint(a - b)\n```"},
    {"problem": "PROBLEM-MAX: read two integers, print the larger.",
     "input_output": {"inputs": ["1 2\n", "7 3\n"], "outputs": ["2\n", "7\n"]},
     "sample_solution": "```python\na, b = map(int, input().split())\nprint(min(a, b))\n```"},
    {"problem": "PROBLEM-ECHO: print the input line unchanged.",
     "input_output": {"inputs": ["hi\n"], "outputs": ["hi\n"]},
     "sample_solution": "```python\nprint(input())\n```"},
]

REPAIRS = {"PROBLEM-SUM": SUM_FIXED, "PROBLEM-MAX": MAX_FIXED, "PROBLEM-ECHO": "print(input())"}


def problem_tag(request: LoggedRequest) -> str | None:
    """Which sample problem a request is about (the tag is in the first user message)."""
    text = request.text()
    return next((tag for tag in REPAIRS if tag in text), None)


def repairing_handler(request: LoggedRequest) -> FakeReply:
    """Answers every sample problem with its correct program."""
    tag = problem_tag(request)
    return FakeReply(fenced(REPAIRS[tag])) if tag else FakeReply("I cannot help.")


def write_problems(path: Any, problems: list[dict[str, Any]] | None = None) -> Any:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(problems if problems is not None else SAMPLE_PROBLEMS, fh)
    return path


# --------------------------------------------------------------------------------------------
# As a script: a keyless stand-in model for the README's walkthrough
# --------------------------------------------------------------------------------------------

FENCE = re.compile(r"```[a-zA-Z0-9_+-]*\n(.*?)```", re.S)


def echo_handler(request: LoggedRequest) -> FakeReply:
    """A model that changes nothing: the last fenced program of the prompt, sent back."""
    programs = FENCE.findall(request.text())
    return FakeReply(fenced(programs[-1])) if programs else FakeReply("I have no code for you.")


def answers_handler(records: list[Any], key: str) -> Handler:
    """Scripted from a problems file: the ``key`` answer of the record whose statement is in the
    prompt (the longest such statement), else the echo."""
    scripted = sorted(((str(r["problem"]).strip(), str(r[key])) for r in records
                       if isinstance(r, dict) and r.get("problem") and isinstance(r.get(key), str)),
                      key=lambda pair: -len(pair[0]))

    def handler(request: LoggedRequest) -> FakeReply:
        text = request.text()
        answer = next((a for statement, a in scripted if statement in text), None)
        if answer is None:
            return echo_handler(request)
        return FakeReply(answer if "```" in answer else fenced(answer))

    return handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A scripted model server on 127.0.0.1 (OpenAI and Anthropic "
                                                 "wire formats) for trying the repair loop without a key.")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default: 8765; 0: any free one)")
    parser.add_argument("--answers", metavar="FILE", help="problems file whose records script the answers "
                                                          "(default: echo the prompt's last program)")
    parser.add_argument("--answer-key", default="human_solution",
                        help="the record key answered with --answers (default: human_solution)")
    args = parser.parse_args(argv)
    handler: Handler = echo_handler
    if args.answers:
        try:
            with open(args.answers, encoding="utf-8") as fh:
                handler = answers_handler(json.load(fh), args.answer_key)
        except (OSError, ValueError) as exc:
            print(f"error: {args.answers}: {exc}", file=sys.stderr)
            return 2
    try:
        server = FakeLLMServer(handler, port=args.port).start()
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"fake model server on {server.url}: pass --base-url {server.openai_base_url} (OpenAI format, any "
          f"--model-name) or --base-url {server.anthropic_base_url} with a claude-* name; Ctrl-C stops it", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.stop()
    print(f"{server.count()} request(s) served", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
