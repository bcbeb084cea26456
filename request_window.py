"""How many requests the remote executor keeps in flight at its server: an AIMD window.

A server doing admission control (``execution_server.py``: ``2 x workers`` requests, then 429
with ``Retry-After``) refuses what it cannot take at once. A client that sends every request the
execution semaphore allows (50) gets mostly 429s: round trips wasted, and ``Retry-After`` sleeps
during which the server may sit idle. The window keeps only as many requests in flight as the
server has been admitting; the others wait here, in asyncio, and go as soon as one of this
client's requests is answered.

Owns: the window's arithmetic (``grown``, ``halved``: pure functions, unit-tested) and the gate
(``RequestWindow``: enter before a request is sent, leave with what the server answered), plus
the per-request ``BusyClock`` (the ``busy_timeout`` covers local waits and 429 waits together).

The rules (additive increase, multiplicative decrease, as TCP's congestion window):
- it starts at the server's advertised ``capacity.max_in_flight`` (``/health``) or at
  ``DEFAULT_START`` for a server that advertises nothing, never above ``cap`` (the execution
  semaphore's limit, which bounds the requests anyway);
- an admitted request (any answer but 429 and 5xx) grows it, only while it is full (a window
  that is never used says nothing about the server): by one per answer until the first 429
  (slow start: a big service behind a load balancer is reached quickly), then by one per
  window's worth of answers, up to ``cap``;
- a 429 halves it, never below 1, once per window: 429s answering requests sent before the last
  halving were caused by the old, larger window and do not halve it again.

It changes only when requests are sent, never what they return: the results are the server's.
All methods are called from the event loop that sends the requests; a new loop (another
``asyncio.run``) starts with no request in flight and keeps the size learned so far.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import Literal

DEFAULT_START = 4  # requests in flight at first when the server advertises no capacity

Outcome = Literal["admitted", "busy", "unknown"]  # answered (grow) / 429 (halve) / transport error or 5xx


def grown(size: float, threshold: float, cap: int) -> float:
    """The window after an admitted request: +1 below ``threshold`` (slow start), else +1/size
    (one per window's worth of answers), at most ``cap``."""
    step = 1.0 if size < threshold else 1.0 / size
    return min(float(cap), size + step)


def halved(size: float) -> float:
    """The window after a 429: half, never below 1."""
    return max(1.0, size / 2)


def permits(size: float, cap: int) -> int:
    """Requests the window lets be in flight: its whole part, 1 to ``cap``."""
    return max(1, min(cap, int(size)))


class WindowWaitExpired(Exception):
    """A request waited locally for the window past its ``BusyClock`` deadline (the caller says so
    as an ``ExecutionError`` of the run)."""


@dataclass
class BusyClock:
    """One request's ``busy_timeout``: started by its first wait (a 429 or a full window), then
    the deadline of every further wait, local or remote, so the whole wait is bounded."""

    patience: float
    deadline: float | None = None

    def until(self) -> float:
        if self.deadline is None:
            self.deadline = asyncio.get_running_loop().time() + self.patience
        return self.deadline


class RequestWindow:
    """The gate: ``enter`` before a request is sent (waits while the window is full), ``leave``
    with its outcome once answered."""

    def __init__(self, start: int, cap: int) -> None:
        self.cap = max(1, cap)
        self.size = float(max(1, min(start, self.cap)))
        self.threshold = float(self.cap)  # slow start until the first 429
        self.epoch = 0  # halvings so far: a 429 halves only if its request was sent in this epoch
        self.in_flight = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def permits(self) -> int:
        return permits(self.size, self.cap)

    def _bind(self) -> None:
        """A new event loop has none of the old loop's requests in flight (nor its waiters)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self.in_flight, self._waiters = loop, 0, collections.deque()

    async def enter(self, clock: BusyClock, *, retry: bool = False) -> int:
        """Wait for room in the window; returns the ticket ``leave`` needs. ``retry``: a request
        sent before (a 429, a transport error) goes ahead of the ones never sent. Raises
        ``WindowWaitExpired`` when it would wait past ``clock``'s deadline."""
        self._bind()
        if self.in_flight < self.permits and not self._waiters:
            self.in_flight += 1
            return self.epoch
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        if retry:
            self._waiters.appendleft(turn)
        else:
            self._waiters.append(turn)
        try:
            await asyncio.wait({turn}, timeout=max(0.0, clock.until() - loop.time()))
        except BaseException:
            self._give_up(turn)
            raise
        if not turn.done():
            self._give_up(turn)
            raise WindowWaitExpired
        return self.epoch

    def _give_up(self, turn: asyncio.Future[None]) -> None:
        """A waiter that stops waiting: out of the line, or, if its turn came meanwhile, its room back."""
        if turn.done() and not turn.cancelled():
            self.in_flight -= 1
            self._wake()
            return
        turn.cancel()
        if turn in self._waiters:
            self._waiters.remove(turn)

    def leave(self, ticket: int, outcome: Outcome) -> None:
        """A request entered with ``ticket`` was answered: adapt the size, let the next ones go."""
        if self._loop is not asyncio.get_running_loop():
            return  # entered in a loop that has ended: its room was reset with it
        if outcome == "busy":
            if ticket == self.epoch:
                self.size = self.threshold = halved(self.size)
                self.epoch += 1
        elif outcome == "admitted" and self.in_flight >= self.permits:
            self.size = grown(self.size, self.threshold, self.cap)
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.permits:
            turn = self._waiters.popleft()
            if turn.done():  # given up meanwhile
                continue
            self.in_flight += 1
            turn.set_result(None)
