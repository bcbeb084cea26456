"""Provider routing, keys, prices, and the real SDK clients against the scripted server."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

from errors import ConfigError, ModelError  # noqa: E402
from fake_llm_server import FakeLLMServer, FakeReply  # noqa: E402
from llm_clients import (  # noqa: E402
    PLACEHOLDER_KEY,
    ChatRequest,
    ModelSpec,
    estimate_cost,
    make_chat_client,
    resolve_api_key,
    route_model,
)


pytestmark = pytest.mark.usefixtures("no_provider_env")


@pytest.mark.parametrize("name, provider, model", [
    ("claude-sonnet-4-6", "anthropic", "claude-sonnet-4-6"),
    ("claude-haiku-4-5", "anthropic", "claude-haiku-4-5"),
    ("gpt-4o-mini", "openai", "gpt-4o-mini"),
    ("o1-preview", "openai", "o1-preview"),
    ("o3-mini", "openai", "o3-mini"),
    ("o4-mini", "openai", "o4-mini"),
    ("anthropic:my-proxy-model", "anthropic", "my-proxy-model"),
    ("openai:claude-distill", "openai", "claude-distill"),
])
def test_routing_by_name_and_prefix(name: str, provider: str, model: str) -> None:
    spec = route_model(name)
    assert (spec.provider, spec.model, spec.base_url) == (provider, model, None)


def test_unknown_name_needs_a_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="cannot tell the provider"):
        route_model("qwen2.5-coder:7b")
    assert route_model("qwen2.5-coder:7b", "http://localhost:11434/v1") == \
        ModelSpec("openai", "qwen2.5-coder:7b", "http://localhost:11434/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8000/v1")
    assert route_model("meta-llama/Llama-3.1-8B-Instruct").provider == "openai"


def test_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="^ANTHROPIC_API_KEY is not set"):
        resolve_api_key(ModelSpec("anthropic", "claude-sonnet-4-6"))
    with pytest.raises(ConfigError, match="^OPENAI_API_KEY is not set"):
        resolve_api_key(ModelSpec("openai", "gpt-4o"))
    assert resolve_api_key(ModelSpec("openai", "llama", "http://localhost:8000/v1")) == PLACEHOLDER_KEY
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://proxy.local")
    assert resolve_api_key(ModelSpec("anthropic", "claude-sonnet-4-6")) == PLACEHOLDER_KEY
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    assert resolve_api_key(ModelSpec("openai", "gpt-4o", "http://localhost:8000/v1")) == "sk-real"


def test_cost_estimates() -> None:
    assert estimate_cost("claude-sonnet-4-6", 1_000_000, 1_000_000) == 18.0
    assert estimate_cost("gpt-4o-mini", 2_000_000, 0) == pytest.approx(0.3)
    assert estimate_cost("gpt-4o", 1_000_000, 0) == 2.5  # longest prefix, not gpt-4o-mini
    assert estimate_cost("qwen2.5-coder", 10, 10) is None


USER_TURN = ({"role": "user", "content": "u"},)


async def complete_once(server: FakeLLMServer, provider: str, request: ChatRequest, *, max_retries: int,
                        model: str = "m"):
    """One call through the real SDK client pointed at the local server; the client is always closed."""
    base = server.anthropic_base_url if provider == "anthropic" else server.openai_base_url
    client = make_chat_client(ModelSpec(provider, model, base), max_retries=max_retries)
    try:
        return await client.complete(request)
    finally:
        await client.aclose()


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_sdk_client_round_trip(provider: str) -> None:
    with FakeLLMServer(lambda r: FakeReply("```python\nprint(1)\n```", input_tokens=11, output_tokens=7)) as server:
        answer = await complete_once(server, provider, ChatRequest("SYS", ({"role": "user", "content": "fix it"},), 123, 0.2),
                                     max_retries=0, model="some-model")
    assert answer.text == "```python\nprint(1)\n```"
    assert (answer.input_tokens, answer.output_tokens, answer.truncated, answer.cached) == (11, 7, False, False)
    [request] = server.requests
    assert request.system == "SYS" and request.last_user_text == "fix it"
    assert request.body["temperature"] == 0.2
    assert request.body["max_tokens"] == 123  # compatible servers get max_tokens
    assert request.headers["authorization"] == f"Bearer {PLACEHOLDER_KEY}"


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_truncation_is_flagged(provider: str) -> None:
    with FakeLLMServer(lambda r: FakeReply("```python\nprint(", truncated=True)) as server:
        answer = await complete_once(server, provider, ChatRequest("s", USER_TURN, 5), max_retries=0)
    assert answer.truncated and answer.stop_reason in ("max_tokens", "length")
    assert "temperature" not in server.requests[0].body  # provider default unless asked


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_sdk_retries_429_then_succeeds(provider: str) -> None:
    replies = iter([FakeReply(status=429), FakeReply(status=429), FakeReply("ok")])
    with FakeLLMServer(lambda r: next(replies)) as server:
        answer = await complete_once(server, provider, ChatRequest("s", USER_TURN, 5), max_retries=3)
    assert answer.text == "ok"
    assert [r.status for r in server.requests] == [429, 429, 200]


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_500_forever_is_a_model_error(provider: str) -> None:
    with FakeLLMServer(lambda r: FakeReply(status=500)) as server:
        with pytest.raises(ModelError, match=f"^{provider} API error after retries: HTTP 500"):
            await complete_once(server, provider, ChatRequest("s", USER_TURN, 5), max_retries=2)
    assert len(server.requests) == 3


async def test_bad_request_is_not_retried() -> None:
    with FakeLLMServer(lambda r: FakeReply(status=400)) as server:
        with pytest.raises(ModelError, match="HTTP 400"):
            await complete_once(server, "anthropic", ChatRequest("s", USER_TURN, 5), max_retries=3)
    assert len(server.requests) == 1


async def test_unreachable_server_is_a_model_error() -> None:
    client = make_chat_client(ModelSpec("openai", "m", "http://127.0.0.1:9/v1"), max_retries=0)
    try:
        with pytest.raises(ModelError, match="^openai API call failed after retries: APIConnectionError"):
            await client.complete(ChatRequest("s", ({"role": "user", "content": "u"},), 5))
    finally:
        await client.aclose()
