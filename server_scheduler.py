"""Admission control and fair scheduling of the execution server's tests.

Owns: how many programs (requests: one test, or a batch) are admitted at once, and which
admitted program's test gets the next free sandbox worker. It knows nothing of HTTP.

- At most ``max_programs`` programs are in flight; ``admit`` refuses the next one (the server
  answers 429 with ``Retry-After``) instead of queueing it behind the others.
- ``slots`` tests run at once (one per sandbox worker), each in a thread of a private pool of
  that size, so a test never waits for a thread.
- A freed worker goes to the admitted program with the fewest tests running (ties: the one
  admitted first). Every admitted program therefore gets a worker as soon as one test of
  another program ends, and keeps at least ``slots / max_programs`` of a worker while it
  runs: a batch of k tests at timeout t is answered within ``ceil(max_programs / slots) * k * t
  + t`` seconds plus the sandbox's own overhead (``batch_deadline``), which the client uses as
  its request timeout. Nothing waits unseen for longer.
- A test whose waiter is cancelled (the client went away, a batch stopped at its first failure,
  shutdown) before it got a worker never runs.

All methods are called from the server's event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable


class Program:
    """One admitted request: its tests waiting for a worker, and how many run now."""

    _order = itertools.count()

    def __init__(self) -> None:
        self.order = next(Program._order)
        self.waiting: list[asyncio.Future[None]] = []
        self.running = 0


class Scheduler:
    def __init__(self, slots: int, max_programs: int) -> None:
        self.slots = slots
        self.max_programs = max_programs
        self.free = slots
        self.programs: list[Program] = []
        self.closing = False
        self._threads = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="librarybench-test")
        self._recent: list[float] = []  # durations of recent programs (Retry-After's estimate)

    # -- admission -------------------------------------------------------------------------

    def admit(self) -> Program | None:
        """A slot for one more program, or ``None`` (busy, or shutting down)."""
        if self.closing or len(self.programs) >= self.max_programs:
            return None
        program = Program()
        self.programs.append(program)
        return program

    def release(self, program: Program, seconds: float) -> None:
        if program in self.programs:
            self.programs.remove(program)
        self.cancel_waiting(program)
        self._recent = [*self._recent[-31:], seconds]

    def cancel_waiting(self, program: Program) -> None:
        """The program's tests that have no worker yet will not run (``run`` raises ``CancelledError``)."""
        for waiter in program.waiting:
            waiter.cancel()
        program.waiting.clear()

    def retry_after(self) -> int:
        """Whole seconds after which a slot is likely free (``Retry-After``): the mean duration of
        recent programs over the programs in flight (one of them ends about that often), 1 to 60."""
        if not self._recent:
            return 1
        mean = sum(self._recent) / len(self._recent)
        return max(1, min(60, math.ceil(mean / self.max_programs)))

    def batch_deadline(self, tests: int, timeout: float) -> float:
        """Longest time an admitted program of ``tests`` tests at ``timeout`` can take here."""
        share = math.ceil(self.max_programs / self.slots)
        return share * tests * timeout + timeout

    # -- running ---------------------------------------------------------------------------

    @property
    def running(self) -> int:
        return self.slots - self.free

    @property
    def queued(self) -> int:
        return sum(1 for p in self.programs for w in p.waiting if not w.done())

    async def run(self, program: Program, work: Callable[[], Any],
                  then: Callable[[Any], None] | None = None) -> tuple[Any, float, float]:
        """Run ``work()`` (blocking) on a worker thread once ``program`` is given a worker;
        returns ``(value, seconds waited, seconds run)``. Cancelled while waiting: never runs.
        ``then(value)`` is called before the worker goes to the next test (it may cancel the
        program's waiting tests: a batch stopping at its first failure)."""
        loop = asyncio.get_running_loop()
        asked = time.monotonic()
        turn: asyncio.Future[None] = loop.create_future()
        program.waiting.append(turn)
        self._dispatch()
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # granted just before the cancellation
                self._done(program)
            else:
                turn.cancel()
                if turn in program.waiting:
                    program.waiting.remove(turn)
            raise
        started = time.monotonic()
        future = loop.run_in_executor(self._threads, work)
        try:
            value = await asyncio.shield(future)
        except asyncio.CancelledError:
            # the test is already running in its worker: it ends within its own timeout; its
            # worker is free again only then
            future.add_done_callback(lambda _f: self._done(program))
            raise
        ran = time.monotonic() - started
        try:
            if then is not None:
                then(value)
        finally:
            self._done(program)
        return value, started - asked, ran

    def _done(self, program: Program) -> None:
        self.free += 1
        program.running -= 1
        self._dispatch()

    def _dispatch(self) -> None:
        while self.free > 0:
            candidates = [p for p in self.programs if p.waiting]
            if not candidates:
                return
            program = min(candidates, key=lambda p: (p.running, p.order))
            turn = program.waiting.pop(0)
            if turn.done():  # cancelled while waiting
                continue
            self.free -= 1
            program.running += 1
            turn.set_result(None)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
