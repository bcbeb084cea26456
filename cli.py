"""Command-line plumbing shared by the scripts, so that their four ``main()``s have one shape:

- ``OneLineParser``: usage errors as one ``error: ...`` line and exit status 2;
- ``DefaultsFormatter``: every flag's default, declared once in its ``add_argument``, is shown by
  ``--help`` as ``(default: X)`` (help strings do not restate it);
- the shared flag groups: problem selection, executor, logging;
- argument types that reject bad numbers with a clear message;
- ``run_main``: parse, log, read ``.env``, run, and map what happened to the exit status
  (0 done, 1 some problem in error, 2 user error, 130 interrupted), with one SIGTERM behaviour:
  SIGTERM does what Ctrl-C does (``run_async`` cancels the running main task so partial results
  are written, then ``KeyboardInterrupt``; outside the event loop, ``KeyboardInterrupt``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from contextlib import contextmanager
from typing import Any, Callable, Coroutine, Iterator, NoReturn, Sequence, TypeVar

from errors import LibraryBenchError
from executors import DEFAULT_RETRIES, DEFAULT_RETRY_BACKOFF, DEFAULT_TIMEOUT  # the defaults' one source: the library's
from librarybench_common import DEFAULT_EXEC_CONCURRENCY, load_env

T = TypeVar("T")

EXIT_OK = 0
EXIT_PROBLEM_ERRORS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


class DefaultsFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to a flag's help when it has a real default (not ``None``/``False``)
    and the help does not already describe its default in words."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS \
                or "default" in text:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: {action.default:g})" if isinstance(action.default, float) \
                else f"{text} (default: {action.default})"
        return text


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one ``error: ...`` line on stderr and exit status 2 (no usage dump);
    ``--help`` shows defaults (``DefaultsFormatter``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


# --------------------------------------------------------------------------------------------
# Argument types
# --------------------------------------------------------------------------------------------


def _number(text: str, kind: type) -> float | int:
    try:
        return kind(text)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(_number(text, float))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def fraction(text: str) -> float:
    """A ratio between 0 and 1 inclusive (e.g. ``--target-ratio``)."""
    value = float(_number(text, float))
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


# --------------------------------------------------------------------------------------------
# Shared flag groups
# --------------------------------------------------------------------------------------------


def add_selection_flags(parser: argparse.ArgumentParser, verb: str, *, single_only: bool = False) -> None:
    """``--problem-id N`` and, unless ``single_only``, ``--problem-ids 1,4,7`` / ``--range 0-9``
    (0-based, mutually exclusive; ``librarybench_common.parse_problem_selection`` reads them)."""
    if single_only:
        parser.add_argument("--problem-id", type=int, metavar="N", help=f"{verb} only problem N (0-based index)")
        return
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--problem-id", type=int, metavar="N", help=f"{verb} only problem N (0-based index)")
    group.add_argument("--problem-ids", metavar="N,M,...", help=f"{verb} only these problems, comma-separated")
    group.add_argument("--range", dest="range_spec", metavar="START-END",
                       help=f"{verb} problems START..END inclusive, e.g. 0-9 (default: all problems)")


def add_extract_flag(parser: argparse.ArgumentParser) -> None:
    """``--extract {best,first}``: how the program is taken from a model answer (human solutions run verbatim)."""
    from librarybench_common import EXTRACT_RULES

    parser.add_argument("--extract", choices=EXTRACT_RULES, default="best",
                        help="how the program is taken from a model answer: best (last complete program "
                             "among all blocks) or first (the seed's rule: first dashed block, else first "
                             "```python block)")


def add_executor_flags(parser: argparse.ArgumentParser, *, timeout_help: str = "seconds per test (verdict timeout)",
                       remote_options: bool = False, local_limits: bool = False) -> None:
    """Where and how programs run: ``--timeout``, ``--exec-semaphore``, ``--executor``; optionally
    the remote client's ``--retries``/``--retry-backoff`` and the local ``--memory-mb``/``--output-limit``."""
    parser.add_argument("--timeout", type=positive_float, default=DEFAULT_TIMEOUT, help=timeout_help)
    parser.add_argument("--exec-semaphore", type=positive_int, default=DEFAULT_EXEC_CONCURRENCY,
                        help="maximum concurrent test executions (and remote connections)")
    parser.add_argument("--executor", choices=("local", "remote", "ray"),
                        help="where programs run: local (embedded sandbox), remote (the API at CYBER_URL) or "
                             "ray (a Ray cluster at RAY_ADDRESS, else a local Ray; needs `uv run --group ray`). "
                             "Default: remote when CYBER_URL is set, else local")
    if remote_options:
        parser.add_argument("--retries", type=non_negative_int, default=DEFAULT_RETRIES,
                            help="remote executor: retries of a request after a connection error, 429 or 5xx")
        parser.add_argument("--retry-backoff", type=positive_float, default=DEFAULT_RETRY_BACKOFF, metavar="SECONDS",
                            help="remote executor: first pause between retries (doubles each retry, with jitter)")
    if local_limits:
        parser.add_argument("--memory-mb", type=positive_int,
                            help="local executor: memory limit per test in MB (default: the sandbox's, 1024)")
        parser.add_argument("--output-limit", type=positive_int, metavar="BYTES",
                            help="local executor: cap on stdout and stderr per test in bytes (default: the sandbox's)")


def add_logging_flag(parser: argparse.ArgumentParser, help: str = "logging level (stderr)") -> None:
    parser.add_argument("--log-level", default="WARNING", choices=LOG_LEVELS, help=help)


# --------------------------------------------------------------------------------------------
# Running a script
# --------------------------------------------------------------------------------------------

_cancel_target: tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = None
_terminated = False


def _on_sigterm(_signum: int, _frame: Any) -> None:
    """SIGTERM as Ctrl-C: cancel the running main task (first time), else ``KeyboardInterrupt``."""
    global _terminated
    target = _cancel_target
    if target is not None and not _terminated and not target[1].done():
        _terminated = True
        target[0].call_soon_threadsafe(target[1].cancel)
        return
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """Install the SIGTERM behaviour for the duration of a script (restored afterwards, so a test
    calling ``main()`` in-process leaves its runner as it was)."""
    global _terminated
    _terminated = False
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (a test calling main() from a worker thread)
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` where SIGTERM cancels ``main`` as Ctrl-C does, so its cancellation
    handlers write partial results and stop the executor; the interrupt is then raised as
    ``KeyboardInterrupt``."""

    async def owned() -> T:
        global _cancel_target
        task = asyncio.current_task()
        assert task is not None
        _cancel_target = (asyncio.get_running_loop(), task)
        try:
            return await main
        finally:
            _cancel_target = None

    try:
        return asyncio.run(owned())
    except asyncio.CancelledError:
        if _terminated:
            raise KeyboardInterrupt from None
        raise


def configure_logging(level: str, fmt: str = LOG_FORMAT) -> None:
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr)


def run_main(parser: argparse.ArgumentParser, argv: Sequence[str] | None, body: Callable[[argparse.Namespace], int], *,
             log_format: str = LOG_FORMAT,
             error_note: Callable[[argparse.Namespace, LibraryBenchError], str] | None = None,
             interrupt_note: Callable[[argparse.Namespace], str] | None = None) -> int:
    """A script's ``main``: parse ``argv``, set up logging and ``.env``, run ``body(args)`` and
    return its status (0, or 1 when some problem ended in error). A ``LibraryBenchError`` is a user
    error: one ``error: <message><note>`` line, status 2. Ctrl-C or SIGTERM: ``error:
    interrupted<note>``, status 130. ``--help`` and usage errors return 0 and 2."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed as one line
        return int(exc.code or 0)
    configure_logging(args.log_level, log_format)
    load_env()
    with sigterm_as_ctrl_c():
        try:
            return body(args)
        except LibraryBenchError as exc:
            note = error_note(args, exc) if error_note else ""
            print(f"error: {exc}{note}", file=sys.stderr, flush=True)
            return EXIT_USAGE
        except (KeyboardInterrupt, asyncio.CancelledError):
            note = interrupt_note(args) if interrupt_note else ""
            print(f"error: interrupted{note}", file=sys.stderr, flush=True)
            return EXIT_INTERRUPTED
