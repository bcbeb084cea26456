"""What the repair and resample loops call: running a problem's programs (each (program, test)
pair once, with the ``--recheck-timeouts`` reruns) and calling the model (response cache first,
else the SDK under the global LLM semaphore), with the run's live counters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from errors import ModelError
from executors import Executor
from librarybench_common import llm_semaphore, run_tests
from llm_clients import ChatClient, ChatRequest, Completion, effective_base_url
from repair_store import ResponseCache, cache_key
from repair_summary import code_hash
from timing_recheck import FlipTally, recheck_results


@dataclass(frozen=True)
class Recheck:
    """``--recheck-timeouts K`` and ``--recheck-fraction F``."""

    times: int
    fraction: float


class ProgramRunner:
    """Runs programs of one problem; a (program, test) pair is executed at most once (its
    rechecks, when asked for, happen then and are added to ``tally``)."""

    def __init__(self, tests: list[Any], *, timeout: float, executor: Executor, judge: Any = None,
                 recheck: Recheck | None = None, memory_mb: int | None = None) -> None:
        self.tests = tests
        self.timeout = timeout
        self.memory_mb = memory_mb  # this problem's own (problem_limits, --limits dataset); None: the executor's
        self.executor = executor
        self.judge = judge
        self.recheck = recheck
        self.tally = FlipTally(recheck.times, recheck.fraction) if recheck else None
        self._results: dict[tuple[str, int], dict[str, Any]] = {}
        self.executions = 0

    async def _run(self, code: str, tests: list[Any]) -> list[dict[str, Any]]:
        self.executions += len(tests)
        return await run_tests(code, tests, timeout=self.timeout, executor=self.executor, judge=self.judge,
                               memory_mb=self.memory_mb)

    async def results(self, code: str, indices: list[int]) -> list[dict[str, Any]]:
        digest = code_hash(code)
        missing = [i for i in indices if (digest, i) not in self._results]
        if missing:
            tests = [self.tests[i] for i in missing]
            fresh = await self._run(code, tests)
            if self.recheck is not None and self.tally is not None:
                fresh = await recheck_results(code, tests, fresh, times=self.recheck.times, timeout=self.timeout,
                                              fraction=self.recheck.fraction, run=self._run)
                self.tally.add(fresh)
            for i, result in zip(missing, fresh):
                self._results[(digest, i)] = result
        return [self._results[(digest, i)] for i in indices]


@dataclass
class RunStats:
    """Live counters for the progress bar and the summary."""

    iterations: int = 0
    api_calls: int = 0
    cached_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    new_input_tokens: int = 0
    new_output_tokens: int = 0


class ModelCaller:
    """One model call: response cache first, else the SDK under the global LLM semaphore.
    ``settings`` gives ``max_tokens`` and ``temperature``."""

    def __init__(self, client: ChatClient, cache: ResponseCache | None, settings: Any, stats: RunStats,
                 on_change: Any = None, system: str = "") -> None:
        self.client = client
        self.cache = cache
        self.settings = settings
        self.stats = stats
        self.on_change = on_change or (lambda: None)
        self.system = system

    async def ask(self, messages: list[dict[str, str]], *, system: str | None = None,
                  sample: int | None = None) -> Completion:
        """``sample``: the number of an independent sample of the same prompt (cached apart)."""
        spec = self.client.spec
        base_url = effective_base_url(spec)  # the flag, else *_BASE_URL: the server that answers
        request = ChatRequest(system if system is not None else self.system, tuple(messages),
                              self.settings.max_tokens, self.settings.temperature)
        key = cache_key(provider=spec.provider, model=spec.model, base_url=base_url, system=request.system,
                        messages=request.messages, temperature=request.temperature, max_tokens=request.max_tokens,
                        sample=sample)
        if self.cache is not None:
            start = time.monotonic()
            hit = self.cache.get(key)
            if hit is not None:
                self._count(hit.input_tokens, hit.output_tokens, cached=True)
                return replace(hit, latency_s=round(time.monotonic() - start, 3))
        async with llm_semaphore():
            try:
                completion = await self.client.complete(request)
            except ModelError as exc:
                raise ModelError(f"{exc} (model {spec.provider}:{spec.model} at "
                                 f"{base_url or 'the provider API'})") from exc
        if self.cache is not None:
            self.cache.put(key, provider=spec.provider, model=spec.model,
                           request={"system": request.system, "messages": list(request.messages),
                                    "temperature": request.temperature, "max_tokens": request.max_tokens,
                                    "base_url": base_url, **({"sample": sample} if sample is not None else {})},
                           response=completion)
        self._count(completion.input_tokens, completion.output_tokens, cached=False)
        return completion

    def _count(self, tokens_in: int, tokens_out: int, *, cached: bool) -> None:
        s = self.stats
        s.input_tokens += tokens_in
        s.output_tokens += tokens_out
        if cached:
            s.cached_calls += 1
        else:
            s.api_calls += 1
            s.new_input_tokens += tokens_in
            s.new_output_tokens += tokens_out
        self.on_change()
