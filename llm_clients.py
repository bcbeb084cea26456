"""Model providers for the repair loop: routing a model name to a provider, the real SDK clients
(``anthropic.AsyncAnthropic``, ``openai.AsyncOpenAI``, OpenAI-compatible servers by base URL),
and a small price table for cost estimates.

Retries are the SDKs' own (``max_retries``: 408/409/429/5xx and connection errors); when they
are used up the SDK's exception is turned into ``errors.ModelError`` with a one-line message.
API keys go to the SDK clients only; nothing here touches the environment of executed programs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Protocol

from errors import ConfigError, ModelError

DEFAULT_MODEL = "claude-sonnet-4-6"
PLACEHOLDER_KEY = "not-needed"  # sent to keyless OpenAI-compatible servers (vLLM, Ollama, ...)
DEFAULT_REQUEST_TIMEOUT = 600.0  # seconds per model call (the SDK retries on timeout)

KEY_VARIABLES = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
BASE_URL_VARIABLES = {"anthropic": "ANTHROPIC_BASE_URL", "openai": "OPENAI_BASE_URL"}
OPENAI_PREFIXES = ("gpt-", "o1", "o3", "o4", "chatgpt-")

# Estimated list prices in USD per million (input, output) tokens, matched by longest prefix.
# Estimates only: check the provider's price page; batch/caching discounts are ignored.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4-6": (5.0, 25.0),
    "claude-opus-4-1": (15.0, 75.0),
    "claude-opus-4-0": (15.0, 75.0),
    "claude-opus-4-2": (15.0, 75.0),  # claude-opus-4-2025xxxx
    "claude-3-opus": (15.0, 75.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-3-5-sonnet": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
    "claude-3-haiku": (0.25, 1.25),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4o": (2.5, 10.0),
    "gpt-4.1-nano": (0.1, 0.4),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-5-nano": (0.05, 0.4),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5": (1.25, 10.0),
    "o1-mini": (1.1, 4.4),
    "o1": (15.0, 60.0),
    "o3-mini": (1.1, 4.4),
    "o3": (2.0, 8.0),
    "o4-mini": (1.1, 4.4),
}


# Model ids their providers have retired (requests to them fail or are redirected): warned
# about on stderr, still sent as given (a proxy or a local server may still serve them).
RETIRED_MODELS: dict[str, str] = {
    "claude-3-opus-20240229": "Anthropic",
    "claude-3-sonnet-20240229": "Anthropic",
    "claude-2.1": "Anthropic",
    "claude-2.0": "Anthropic",
    "claude-instant-1.2": "Anthropic",
    "gpt-4-0314": "OpenAI",
    "gpt-4-32k-0314": "OpenAI",
    "gpt-3.5-turbo-0301": "OpenAI",
    "gpt-3.5-turbo-0613": "OpenAI",
    "text-davinci-003": "OpenAI",
}


def retired_note(model: str) -> str | None:
    """One line for a retired model id (with or without a provider prefix), else None."""
    bare = model.split(":", 1)[1] if ":" in model else model
    provider = RETIRED_MODELS.get(bare)
    return f"model {bare} has been retired by {provider}: it is sent as given, but the provider may refuse it" \
        if provider else None


@dataclass(frozen=True)
class ModelSpec:
    """Where a model name goes: provider (``anthropic``/``openai``), the bare model id, and an
    optional base URL (an OpenAI-compatible server or a proxy)."""

    provider: str
    model: str
    base_url: str | None = None


@dataclass(frozen=True)
class ChatRequest:
    """One model call. ``messages`` alternate user/assistant and end with a user turn."""

    system: str
    messages: tuple[dict[str, str], ...]
    max_tokens: int
    temperature: float | None = None


@dataclass(frozen=True)
class Completion:
    """A model's answer, normalised across providers. ``truncated``: cut at ``max_tokens``."""

    text: str
    stop_reason: str | None
    truncated: bool
    input_tokens: int
    output_tokens: int
    latency_s: float
    cached: bool = False


class ChatClient(Protocol):
    spec: ModelSpec

    async def complete(self, request: ChatRequest) -> Completion: ...

    async def aclose(self) -> None: ...


def route_model(name: str, base_url: str | None = None) -> ModelSpec:
    """``anthropic:``/``openai:`` prefix wins; else ``claude-*`` -> Anthropic, ``gpt-*``/``o1*``/
    ``o3*``/``o4*`` -> OpenAI; any other name needs a base URL (an OpenAI-compatible server)."""
    name = name.strip()
    if not name:
        raise ConfigError("--model-name is empty")
    provider, sep, bare = name.partition(":")
    if sep and provider.lower() in KEY_VARIABLES:
        if not bare:
            raise ConfigError(f"--model-name {name!r} has a provider prefix but no model id")
        return ModelSpec(provider.lower(), bare, base_url or None)
    lower = name.lower()
    if lower.startswith("claude"):
        return ModelSpec("anthropic", name, base_url or None)
    if lower.startswith(OPENAI_PREFIXES):
        return ModelSpec("openai", name, base_url or None)
    if base_url or os.environ.get("OPENAI_BASE_URL"):
        return ModelSpec("openai", name, base_url or None)
    raise ConfigError(
        f"cannot tell the provider of model {name!r}: prefix it with anthropic: or openai:, "
        "or give --base-url for an OpenAI-compatible server"
    )


def effective_base_url(spec: ModelSpec) -> str | None:
    """The base URL the SDK will use: the flag, else the provider's ``*_BASE_URL`` variable."""
    return spec.base_url or os.environ.get(BASE_URL_VARIABLES[spec.provider]) or None


def resolve_api_key(spec: ModelSpec) -> str:
    """The provider's key from the environment; a server given by base URL may need none."""
    variable = KEY_VARIABLES[spec.provider]
    key = os.environ.get(variable, "").strip()
    if key:
        return key
    if effective_base_url(spec):
        return PLACEHOLDER_KEY
    raise ConfigError(f"{variable} is not set: export it or put it in .env (model {spec.model} uses {spec.provider})")


def price_of(model: str) -> tuple[float, float] | None:
    """(input, output) USD per million tokens for the longest matching prefix, or None."""
    bare = model.split(":", 1)[-1].lower()
    matches = [p for p in PRICES_PER_MTOK if bare.startswith(p)]
    return PRICES_PER_MTOK[max(matches, key=len)] if matches else None


def estimate_cost(model: str, input_tokens: int, output_tokens: int) -> float | None:
    """Estimated USD for the tokens, or None when the model is not in the price table."""
    price = price_of(model)
    if price is None:
        return None
    return round((input_tokens * price[0] + output_tokens * price[1]) / 1_000_000, 6)


def describe_api_error(provider: str, exc: Exception) -> str:
    """One line for a failed call: status code and the server's message when there is one."""
    status = getattr(exc, "status_code", None)
    message = str(getattr(exc, "message", "") or exc).replace("\n", " ")[:300]
    if status is not None:
        return f"{provider} API error after retries: HTTP {status}: {message}"
    return f"{provider} API call failed after retries: {type(exc).__name__}: {message}"


class AnthropicChat:
    """Anthropic Messages API through ``anthropic.AsyncAnthropic``."""

    def __init__(self, spec: ModelSpec, *, max_retries: int = 4, request_timeout: float = DEFAULT_REQUEST_TIMEOUT) -> None:
        import anthropic

        self.spec = spec
        self._errors = (anthropic.APIError,)
        self._client = anthropic.AsyncAnthropic(
            api_key=resolve_api_key(spec), base_url=spec.base_url, max_retries=max_retries, timeout=request_timeout
        )

    async def complete(self, request: ChatRequest) -> Completion:
        # This SDK version has no ``temperature`` argument: it is sent as an extra body field.
        extra = {"temperature": request.temperature} if request.temperature is not None else None
        start = time.monotonic()
        try:
            message = await self._client.messages.create(
                model=self.spec.model, max_tokens=request.max_tokens, system=request.system,
                messages=list(request.messages), extra_body=extra,  # type: ignore[arg-type]
            )
        except self._errors as exc:
            raise ModelError(describe_api_error("anthropic", exc)) from exc
        text = "".join(getattr(block, "text", "") or "" for block in message.content or [])
        usage = message.usage
        return Completion(
            text=text, stop_reason=message.stop_reason, truncated=message.stop_reason == "max_tokens",
            input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
            latency_s=round(time.monotonic() - start, 3),
        )

    async def aclose(self) -> None:
        await self._client.close()


class OpenAIChat:
    """OpenAI Chat Completions through ``openai.AsyncOpenAI`` (also vLLM, Ollama, llama.cpp,
    LM Studio by base URL). OpenAI's own endpoint gets ``max_completion_tokens`` (o-series
    models reject ``max_tokens``); compatible servers get the widely supported ``max_tokens``."""

    def __init__(self, spec: ModelSpec, *, max_retries: int = 4, request_timeout: float = DEFAULT_REQUEST_TIMEOUT) -> None:
        import openai

        self.spec = spec
        self._errors = (openai.APIError,)
        self._compatible = effective_base_url(spec) is not None
        kwargs: dict[str, Any] = {"api_key": resolve_api_key(spec), "max_retries": max_retries, "timeout": request_timeout}
        if spec.base_url:
            kwargs["base_url"] = spec.base_url
        self._client = openai.AsyncOpenAI(**kwargs)

    async def complete(self, request: ChatRequest) -> Completion:
        messages = [{"role": "system", "content": request.system}, *request.messages]
        kwargs: dict[str, Any] = {"model": self.spec.model, "messages": messages}
        kwargs["max_tokens" if self._compatible else "max_completion_tokens"] = request.max_tokens
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        start = time.monotonic()
        try:
            response = await self._client.chat.completions.create(**kwargs)
        except self._errors as exc:
            raise ModelError(describe_api_error("openai", exc)) from exc
        if not response.choices:
            raise ModelError("openai API returned no choices")
        choice = response.choices[0]
        usage = response.usage
        return Completion(
            text=choice.message.content or "", stop_reason=choice.finish_reason,
            truncated=choice.finish_reason == "length",
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0) if usage else 0,
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0) if usage else 0,
            latency_s=round(time.monotonic() - start, 3),
        )

    async def aclose(self) -> None:
        await self._client.close()


def check_credentials(spec: ModelSpec) -> None:
    """Fail early (before any work) when the provider's key is missing."""
    resolve_api_key(spec)


def make_chat_client(spec: ModelSpec, *, max_retries: int = 4,
                     request_timeout: float = DEFAULT_REQUEST_TIMEOUT) -> ChatClient:
    """The SDK client for ``spec``; create it inside the event loop that will use it."""
    cls = AnthropicChat if spec.provider == "anthropic" else OpenAIChat
    return cls(spec, max_retries=max_retries, request_timeout=request_timeout)
