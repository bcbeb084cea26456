"""execution_server.py speaks the remote API's contract (docs/execution-api.md) over real HTTP."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from conftest import ROOT, clean_env
from sandbox import IMPORT_HEADER

PARAMS = {"language": "python", "environment": "default", "timeout": "5", "generation_formatting": "true",
          "fill_missing_imports": "true"}


def post(url: str, body: object, **params: str) -> httpx.Response:
    return httpx.post(url, params={**PARAMS, **params}, json=body, timeout=30)


def test_response_has_the_api_shape_and_echoes_header_and_program(lb_execution_server: str) -> None:
    response = post(lb_execution_server, {"code": "print(input()[::-1])", "test": {"stdin": "abc\n", "stdout": "cba"}})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    result = response.json()
    assert result["code"] == IMPORT_HEADER + "print(input()[::-1])"
    assert result["test"] == {"stdin": "abc\n", "stdout": "cba"}
    assert result["passed"] is True and result["uncaught_exception"] == "None"
    assert result["exec_output"]["compile_output"] is None
    run = result["exec_output"]["run_output"]
    assert set(run) == {"stdout", "stderr", "exit_code", "timeout_expired", "elapsed_time"}
    assert run["stdout"] == "cba\n" and run["exit_code"] == 0 and run["timeout_expired"] is False


def test_without_fill_missing_imports_the_header_is_absent(lb_execution_server: str) -> None:
    body = {"code": "print(math.pi > 3)", "test": {"stdin": "", "stdout": "True"}}
    with_header = post(lb_execution_server, body).json()
    without = post(lb_execution_server, body, fill_missing_imports="false").json()
    assert with_header["passed"] is True
    assert without["code"] == "print(math.pi > 3)"
    assert without["passed"] is False and "NameError" in without["exec_output"]["run_output"]["stderr"]


def test_timeout_parameter_is_honoured(lb_execution_server: str) -> None:
    result = post(lb_execution_server, {"code": "while True: pass", "test": {"stdin": "", "stdout": ""}},
                  timeout="0.5").json()
    assert result["passed"] is False and result["verdict"] == "timeout"
    assert result["exec_output"]["run_output"]["timeout_expired"] is True
    assert result["exec_output"]["run_output"]["elapsed_time"] < 3


def test_assert_style_string_tests(lb_execution_server: str) -> None:
    ok = post(lb_execution_server, {"code": "def f():\n    return 1", "test": "assert f() == 1"}).json()
    bad = post(lb_execution_server, {"code": "def f():\n    return 1", "test": "assert f() == 2"}).json()
    assert ok["passed"] is True and bad["passed"] is False
    assert "AssertionError" in bad["exec_output"]["run_output"]["stderr"]


@pytest.mark.parametrize(("body", "params", "message"), [
    ("not json", {}, "body is not JSON"),
    ({"code": 1, "test": {"stdin": "", "stdout": ""}}, {}, "body.code must be a string"),
    ({"code": "x", "test": {"stdin": ""}}, {}, "stdin and stdout"),
    ({"code": "x", "test": 3}, {}, "body.test must be"),
    ({"code": "x", "test": "pass"}, {"language": "cpp"}, "language 'cpp' is not supported"),
    ({"code": "x", "test": "pass"}, {"timeout": "soon"}, "timeout must be a number"),
    ({"code": "x", "test": "pass"}, {"timeout": "100000"}, "timeout must be in"),
    ({"code": "x", "test": "pass"}, {"fill_missing_imports": "maybe"}, "fill_missing_imports must be true or false"),
])
def test_bad_requests_get_400_with_a_reason(lb_execution_server: str, body: object, params: dict, message: str) -> None:
    if isinstance(body, str):
        response = httpx.post(lb_execution_server, params={**PARAMS, **params}, content=body.encode(), timeout=30)
    else:
        response = post(lb_execution_server, body, **params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_health_reports_the_isolation(lb_execution_server: str) -> None:
    health = httpx.get(lb_execution_server + "health", timeout=30).json()
    assert health["status"] == "ok" and health["executor"] == "local" and health["isolation"]


def test_keep_alive_connection_serves_many_requests(lb_execution_server: str) -> None:
    with httpx.Client(timeout=30) as client:
        for i in range(5):
            result = client.post(lb_execution_server, params=PARAMS,
                                 json={"code": "print(int(input()) + 1)", "test": {"stdin": f"{i}", "stdout": f"{i + 1}"}})
            assert result.json()["passed"] is True


def test_help_and_bad_port() -> None:
    run = lambda *a: subprocess.run([sys.executable, "execution_server.py", *a], cwd=ROOT, env=clean_env(),
                                    capture_output=True, text=True, timeout=60)
    helped = run("--help")
    assert helped.returncode == 0
    for flag in ("--host", "--port", "--workers", "--memory-mb", "--output-limit", "--max-timeout", "--log-level"):
        assert flag in helped.stdout
    bad = run("--port", "70000")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: argument --port")
