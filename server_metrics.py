"""The execution server's counters and their Prometheus text exposition (``GET /metrics``).

Owns: what the server counts (requests by endpoint and status, tests by verdict, tests
cancelled, programs and tests in flight and queued, request and test latency histograms) and
writing them in Prometheus' text format 0.0.4. No dependency: the format is a few lines.
Everything is updated from the server's event loop only, so no lock is needed.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# seconds; a request may last a whole batch, a test at most the largest timeout
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
TEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Histogram:
    """Cumulative buckets, sum and count, as Prometheus' histogram type wants them."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.total += value
        self.count += 1
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out = [f'{name}_bucket{{{labels}{sep}le="{_number(b)}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        tail = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{tail} {_number(self.total)}", f"{name}_count{tail} {self.count}"]
        return out


class Metrics:
    """The server's counters; ``render(gauges)`` gives the ``/metrics`` text."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()  # (endpoint, HTTP status) -> count
        self.verdicts: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()  # reason (busy, unauthorized, too_large, bad_request) -> count
        self.cancelled_tests = 0  # not run: the client went away, stop_on_first_failure, shutdown
        self.request_seconds: dict[str, Histogram] = {}
        self.test_seconds = Histogram(TEST_BUCKETS)
        self.queue_seconds = Histogram(TEST_BUCKETS)

    def request_done(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests[(endpoint, status)] += 1
        if endpoint in ("run", "batch"):
            self.request_seconds.setdefault(endpoint, Histogram(REQUEST_BUCKETS)).observe(seconds)

    def test_done(self, verdict: str, seconds: float) -> None:
        self.verdicts[verdict] += 1
        self.test_seconds.observe(seconds)

    def render(self, gauges: dict[str, tuple[str, float]], info: dict[str, str]) -> str:
        """``gauges``: name -> (help, value), e.g. the programs in flight and tests queued."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str, body: Callable[[], list[str]]) -> None:
            out.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *body()])

        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(info.items()))
        family("librarybench_server_info", "gauge", "the executor behind the server", lambda: [f"librarybench_server_info{{{labels}}} 1"])
        family("librarybench_requests_total", "counter", "HTTP requests by endpoint and status", lambda: [
            f'librarybench_requests_total{{endpoint="{e}",status="{s}"}} {n}' for (e, s), n in sorted(self.requests.items())])
        family("librarybench_rejected_total", "counter", "requests refused before running anything, by reason", lambda: [
            f'librarybench_rejected_total{{reason="{r}"}} {n}' for r, n in sorted(self.rejected.items())])
        family("librarybench_tests_total", "counter", "tests run, by verdict", lambda: [
            f'librarybench_tests_total{{verdict="{v}"}} {n}' for v, n in sorted(self.verdicts.items())])
        family("librarybench_tests_cancelled_total", "counter",
               "tests not run: client gone, stop_on_first_failure, shutdown",
               lambda: [f"librarybench_tests_cancelled_total {self.cancelled_tests}"])
        for name, (help_text, value) in gauges.items():
            family(name, "gauge", help_text, lambda name=name, value=value: [f"{name} {_number(value)}"])
        family("librarybench_request_duration_seconds", "histogram", "time from admission to response, by endpoint",
               lambda: [line for e, h in sorted(self.request_seconds.items())
                        for line in h.lines("librarybench_request_duration_seconds", f'endpoint="{e}"')])
        family("librarybench_test_duration_seconds", "histogram", "time a test held a sandbox worker",
               lambda: self.test_seconds.lines("librarybench_test_duration_seconds"))
        family("librarybench_test_queue_seconds", "histogram", "time a test waited for a sandbox worker",
               lambda: self.queue_seconds.lines("librarybench_test_queue_seconds"))
        return "\n".join(out) + "\n"


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) and not float(value).is_integer() else str(int(value))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
