"""The remote executor's AIMD window (``request_window.py``): its arithmetic (grow, halve, floor 1,
cap) and its gate (who is let through, who waits, in which order, for how long). The gate is
plain asyncio, exercised directly; the window against a real server is in
``test_server_production.py``."""

from __future__ import annotations

import asyncio

import pytest

from request_window import BusyClock, RequestWindow, WindowWaitExpired, grown, halved, permits


def test_grows_by_one_below_the_threshold_then_by_one_per_window_of_answers() -> None:
    assert grown(4.0, threshold=50, cap=50) == 5.0
    assert grown(4.0, threshold=4, cap=50) == 4.25  # at the threshold: +1 after 4 answers
    size = 4.0
    for _ in range(4):
        size = grown(size, threshold=4, cap=50)
    assert 4.9 < size < 5.0


def test_growth_stops_at_the_cap() -> None:
    assert grown(49.5, threshold=100, cap=50) == 50.0
    assert grown(50.0, threshold=10, cap=50) == 50.0


def test_halves_never_below_one() -> None:
    assert halved(10.0) == 5.0
    assert halved(3.0) == 1.5
    assert halved(1.5) == 1.0
    assert halved(1.0) == 1.0


def test_permits_are_the_whole_part_between_one_and_the_cap() -> None:
    assert permits(2.9, cap=50) == 2
    assert permits(1.0, cap=50) == 1
    assert permits(0.5, cap=50) == 1
    assert permits(80.0, cap=50) == 50


def clock(patience: float = 5.0) -> BusyClock:
    return BusyClock(patience)


async def settle() -> None:
    """Let every task that can run do so (an entering task needs a few loop turns)."""
    await asyncio.sleep(0.01)


async def test_start_is_held_to_the_cap_and_only_that_many_go_at_once() -> None:
    window = RequestWindow(start=8, cap=3)
    assert window.permits == 3
    tickets = [await window.enter(clock()) for _ in range(3)]
    fourth = asyncio.ensure_future(window.enter(clock()))
    await asyncio.sleep(0.01)
    assert not fourth.done() and window.in_flight == 3
    window.leave(tickets[0], "unknown")  # a transport error: room freed, size unchanged
    assert await asyncio.wait_for(fourth, 1) == 0 and window.size == 3.0 and window.in_flight == 3


async def test_admitted_answers_grow_a_full_window_and_let_more_through() -> None:
    window = RequestWindow(start=2, cap=50)
    a, b = await window.enter(clock()), await window.enter(clock())
    waiting = [asyncio.ensure_future(window.enter(clock())) for _ in range(3)]
    await settle()
    window.leave(a, "admitted")  # full (2 of 2): slow start, 2 -> 3, so two waiters go
    await settle()
    assert window.size == 3.0 and sum(w.done() for w in waiting) == 2 and window.in_flight == 3
    window.leave(b, "admitted")
    await settle()
    assert window.size == 4.0 and all(w.done() for w in waiting)


async def test_a_window_not_full_does_not_grow() -> None:
    window = RequestWindow(start=4, cap=50)
    ticket = await window.enter(clock())
    window.leave(ticket, "admitted")  # 1 of 4 in flight: says nothing about the server
    assert window.size == 4.0


async def test_429s_of_one_window_halve_it_once_and_end_the_slow_start() -> None:
    window = RequestWindow(start=8, cap=50)
    tickets = [await window.enter(clock()) for _ in range(8)]
    window.leave(tickets[0], "busy")
    window.leave(tickets[1], "busy")  # sent before the halving: not halved again
    assert window.size == 4.0 and window.threshold == 4.0 and window.permits == 4
    for ticket in tickets[2:5]:
        window.leave(ticket, "unknown")  # 3 of the old ones left in flight: room for one more
    fresh = await asyncio.wait_for(window.enter(clock()), 1)
    assert fresh == 1
    window.leave(fresh, "busy")  # sent after the halving: halves again
    assert window.size == 2.0
    window.leave(tickets[5], "admitted")  # full (3 in flight, 2 permits): +1/size now, no slow start
    assert window.size == 2.5


async def test_never_below_one_request_in_flight() -> None:
    window = RequestWindow(start=1, cap=50)
    for _ in range(3):
        ticket = await window.enter(clock())
        window.leave(ticket, "busy")
    assert window.size == 1.0 and window.permits == 1
    assert await asyncio.wait_for(window.enter(clock()), 1) == window.epoch  # still lets one through


async def test_a_retry_goes_ahead_of_requests_never_sent() -> None:
    window = RequestWindow(start=1, cap=50)
    ticket = await window.enter(clock())
    order: list[str] = []

    async def enter(name: str, retry: bool) -> None:
        await window.enter(clock(), retry=retry)
        order.append(name)

    new = asyncio.ensure_future(enter("new", False))
    await settle()
    again = asyncio.ensure_future(enter("retry", True))
    await settle()
    window.leave(ticket, "unknown")
    await settle()
    assert order == ["retry"]
    window.leave(window.epoch, "unknown")
    await asyncio.wait_for(asyncio.gather(new, again), 1)
    assert order == ["retry", "new"]


async def test_waiting_past_the_busy_deadline_raises_and_leaks_no_room() -> None:
    window = RequestWindow(start=1, cap=50)
    ticket = await window.enter(clock())
    started = asyncio.get_running_loop().time()
    with pytest.raises(WindowWaitExpired):
        await window.enter(clock(0.2))
    assert asyncio.get_running_loop().time() - started >= 0.19
    window.leave(ticket, "admitted")
    assert window.in_flight == 0
    await asyncio.wait_for(window.enter(clock()), 1)  # the room is free again
    assert window.in_flight == 1


async def test_one_clock_bounds_all_the_waits_of_a_request() -> None:
    window = RequestWindow(start=1, cap=50)
    await window.enter(clock())
    shared = BusyClock(0.3)
    deadline = shared.until()  # started by an earlier wait (a 429) of the same request
    await asyncio.sleep(0.2)
    with pytest.raises(WindowWaitExpired):
        await window.enter(shared)
    assert asyncio.get_running_loop().time() >= deadline - 0.01


async def test_a_cancelled_waiter_leaks_no_room() -> None:
    window = RequestWindow(start=1, cap=50)
    ticket = await window.enter(clock())
    waiter = asyncio.ensure_future(window.enter(clock()))
    await settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    window.leave(ticket, "admitted")
    assert window.in_flight == 0


def test_a_new_event_loop_starts_with_nothing_in_flight_and_keeps_the_size() -> None:
    window = RequestWindow(start=4, cap=50)

    async def fill() -> None:
        for _ in range(4):
            await window.enter(clock())
        window.leave(0, "busy")

    asyncio.run(fill())  # that loop ends with 3 requests never answered
    assert window.size == 2.0

    async def again() -> int:
        first = await window.enter(clock())
        await asyncio.wait_for(window.enter(clock()), 1)  # 2 permits, none held over from the old loop
        return first

    asyncio.run(again())
    assert window.in_flight == 2
