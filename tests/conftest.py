"""Shared fixtures of the librarybench_common / model_feedback / execution_server tests.

Everything here is real: the embedded executor, the toolkit's own HTTP server started as a
subprocess on 127.0.0.1, small misbehaving HTTP servers in threads, and the CLI run with
``sys.executable``. Fixture names start with ``lb_`` so they do not collide with other suites.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# the shared real data: ../shared beside the project, or LIBRARYBENCH_SHARED=/path/to/shared
SHARED_DATA = Path(os.environ.get("LIBRARYBENCH_SHARED") or ROOT.parent / "shared") / "data" / "librarybench"
SAMPLES = ROOT / "data"


def under_ci() -> bool:
    """``CI=true``: CI has the shared data and Chromium, so their absence is a failure there."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def missing_requirement(reason: str) -> NoReturn:
    """A test needs something a user's fresh clone may lack: skip saying what, or fail under CI."""
    if under_ci():
        pytest.fail(f"{reason} (CI=true: required)", pytrace=False)
    pytest.skip(reason)


def shared_data(name: str) -> Path:
    """A file of the shared real data (``../shared`` beside the project), which a clone lacks."""
    path = SHARED_DATA / name
    if not path.is_file():
        missing_requirement(f"shared real data not found: {path}")
    return path


def require_chromium() -> str:
    """The Chromium that renders the HTML report in a test."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        missing_requirement("chromium not found on PATH: install Debian's chromium package "
                            "(apt-get install chromium) to render the HTML report")
    return found


# A module that walks the stack of whoever imports it to the harness's ``proof`` and prints it: an
# answer that can make the test's process import a file of its own passes every test with it.
PROOF_THIEF = (
    "import os, sys\n"
    "f = sys._getframe()\n"
    "while f is not None:\n"
    "    if 'proof' in f.f_locals:\n"
    "        os.write(1, ('\\n\\x1eLB-PROOF ' + f.f_locals['proof'] + '\\n').encode())\n"
    "        os._exit(0)\n"
    "    f = f.f_back\n"
)


def planting(file_name: str, rest: str = "") -> str:
    """An answer that writes ``PROOF_THIEF`` as ``file_name`` in its work dir, then ``rest``."""
    return f"open({file_name!r}, 'w').write({PROOF_THIEF!r})\n{rest}def f(n):\n    return 0\n"


def bwrap_or_skip() -> None:
    """Skip (with the reason) where no bubblewrap can run: the tests that need its isolation."""
    import sandbox_policy

    candidates, missing = sandbox_policy.bubblewrap_candidates()
    if not candidates:
        pytest.skip(f"no bubblewrap can run here ({'; '.join(missing)})")


@pytest.fixture(scope="module")
def one_worker() -> Iterator[Any]:
    """One bubblewrap worker of its own (a module's hostile programs never share the session's)."""
    from sandbox import LocalExecutor, SandboxLimits

    bwrap_or_skip()
    with LocalExecutor(workers=1, isolation="bwrap", limits=SandboxLimits(timeout=20)) as executor:
        yield executor


@pytest.fixture(scope="session")
def lb_local_executor() -> Any:
    """The process-wide embedded executor, as the toolkit uses it."""
    import librarybench_common as common

    return common.get_executor("local")


PROVIDER_ENV = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL",
                "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE", "CYBER_URL", "CYBER_TOKEN", "LIBRARYBENCH_SERVER_TOKEN")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a clean clone: no CYBER_URL, no API keys or provider URLs."""
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV and not k.startswith("PYTEST")}
    env.update(extra)
    return env


@pytest.fixture
def no_provider_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """In-process runs see no key, provider URL or CYBER_URL of the developer's shell, from tmp_path."""
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python model_feedback.py ARGS`` from the project root, output captured."""
    return subprocess.run([sys.executable, "model_feedback.py", *args], cwd=ROOT, env=env or clean_env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def lb_run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_cli


@pytest.fixture(scope="session")
def lb_execution_server() -> Iterator[str]:
    """``execution_server.py --port 0`` as a subprocess; yields its URL."""
    proc = subprocess.Popen([sys.executable, "execution_server.py", "--host", "127.0.0.1", "--port", "0"],
                            cwd=ROOT, env=clean_env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    url = None
    deadline = time.monotonic() + 60
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        if match:
            url = match.group(1)
            break
    if url is None:
        proc.kill()
        pytest.fail(f"execution_server.py did not start: {proc.stderr.read()}")
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep draining its log
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


class ScriptedServer:
    """An HTTP server on 127.0.0.1 that misbehaves by script, then (optionally) tells the truth.

    ``script`` lists what to do for the 1st, 2nd, ... request; the last entry repeats. Actions:
    ``"ok"`` (run the test on the real embedded executor and answer as the API does), ``"500"``,
    ``"503"``, ``"429"``, ``"400"``, ``"close"`` (drop the connection without a response),
    ``"garbage"`` (HTTP 200 with a body that is not JSON), ``"wrong-json"`` (JSON without ``passed``),
    ``"429-retry-after"`` (429 with ``Retry-After: 1``). It has no ``/health`` (GET gets 501), like
    a server of the original contract.
    """

    def __init__(self, script: list[str], executor: Any) -> None:
        self.script = list(script)
        self.executor = executor
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/execute"

    def next_action(self, request: dict[str, Any]) -> str:
        with self._lock:
            index = len(self.requests)
            self.requests.append(request)
            return self.script[min(index, len(self.script) - 1)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = json.loads(raw)
                action = scripted.next_action({"path": self.path, "body": body})
                if action == "close":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if action == "garbage":
                    self.reply(200, b"<html>Bad Gateway</html>", "text/html")
                elif action == "wrong-json":
                    self.reply(200, b'{"status": "queued"}', "application/json")
                elif action == "429-retry-after":  # a server doing admission control
                    self.reply(429, b'{"error": "busy"}', "application/json", {"Retry-After": "1"})
                elif action == "ok":
                    result = scripted.executor.run_test(body["code"], body["test"], timeout=10)
                    result.pop("verdict", None)  # the remote API has no verdict field
                    self.reply(200, json.dumps(result).encode(), "application/json")
                else:
                    self.reply(int(action), json.dumps({"error": f"scripted {action}"}).encode(), "application/json")

            def reply(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def lb_scripted_server(lb_local_executor: Any) -> Iterator[Callable[[list[str]], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: list[str]) -> ScriptedServer:
        server = ScriptedServer(script, lb_local_executor)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
