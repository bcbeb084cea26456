"""Owns per-problem limits: ``--limits {global,dataset}``, ``--limit-scale`` and ``--limit-cap``,
reading a record's own ``time_limit`` / ``memory_limit`` / ``memory_limit_bytes`` in the shapes
the datasets give them, and deciding each problem's timeout and memory limit for a run.

With ``--limits global`` (the default) every test runs under ``--timeout`` and ``--memory-mb``,
as before. With ``--limits dataset`` a problem's record sets its own limits: the time limit times
``--limit-scale``, at most ``--limit-cap`` seconds; the memory limit as given. A record without
them, or with one this module cannot read (one ``warning:`` line naming the file and problem),
keeps the global limits. The remote execution API has no memory field, so there only the time
limits apply (one warning line says so), unless the server advertises ``memory`` per request in
``/health`` (``execution_server.py`` does: the remote executor then takes it per call).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from typing import Any, Iterable

LIMIT_MODES = ("global", "dataset")
CAP_FACTOR = 4.0  # default --limit-cap: this many times --timeout
MIN_TIME_SECONDS = 0.01  # below this a record's time limit is a typo or a unit mix-up, not a limit
MIN_MEMORY_MB = 16.0  # below this a "memory limit" is not one (TACO's CodeChef "50000 bytes" is a source-size limit)
LIMIT_FIELDS = ("time_limit", "memory_limit", "memory_limit_bytes")

_TIME_UNITS = {"ms": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3, "s": 1.0, "sec": 1.0, "secs": 1.0,
               "second": 1.0, "seconds": 1.0, "": 1.0}
_MEMORY_UNITS = {"b": 2**-20, "byte": 2**-20, "bytes": 2**-20, "kb": 2**-10, "kib": 2**-10, "kilobyte": 2**-10,
                 "kilobytes": 2**-10, "mb": 1.0, "mib": 1.0, "m": 1.0, "megabyte": 1.0, "megabytes": 1.0,
                 "gb": 1024.0, "gib": 1024.0, "gigabyte": 1024.0, "gigabytes": 1024.0, "": 1.0}
# "2.5 seconds", "1000 ms", "1 - 1.5 seconds" (a range: its upper end), "256 megabytes"
_AMOUNT = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*-\s*)?(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


class LimitError(ValueError):
    """A limit field this module cannot read (the problem keeps the global limits)."""


class ImplausibleMemory(LimitError):
    """A memory limit too small to be one (only the memory limit falls back; the time limit stays)."""


@dataclass(frozen=True)
class LimitSettings:
    """The run's limit flags, and the global limits a problem falls back to."""

    mode: str
    scale: float
    cap: float
    timeout: float
    memory_mb: int | None  # --memory-mb (None: the executor's own)

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "scale": self.scale, "cap": self.cap}


@dataclass(frozen=True)
class ProblemLimits:
    """What one problem runs under. ``per_call_memory``: ``memory_mb`` is handed to the executor
    for each call (``--limits dataset`` on an executor that takes it), else the executor's own applies."""

    timeout: float
    memory_mb: int | None
    source: str  # "global" or "dataset"
    per_call_memory: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"timeout": self.timeout, "memory_mb": self.memory_mb, "from": self.source}

    @property
    def call_memory_mb(self) -> int | None:
        """``memory_mb`` for ``run_tests`` (None: leave the executor's)."""
        return self.memory_mb if self.per_call_memory else None


# --------------------------------------------------------------------------------------------
# Flags
# --------------------------------------------------------------------------------------------


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    """``--limits``, ``--limit-scale``, ``--limit-cap`` (one definition for the three scripts)."""
    from cli import positive_float  # here: cli imports librarybench_common, which the readers need not

    parser.add_argument("--limits", choices=LIMIT_MODES, default="global",
                        help="global: every test runs under --timeout and --memory-mb; dataset: a problem's own "
                             "time_limit / memory_limit (or memory_limit_bytes) where its record has them, the "
                             "global limits otherwise")
    parser.add_argument("--limit-scale", type=positive_float, default=1.0, metavar="X",
                        help="--limits dataset: multiply each record's time limit by X")
    parser.add_argument("--limit-cap", type=positive_float, metavar="SECONDS",
                        help=f"--limits dataset: most seconds per test after scaling (default: {CAP_FACTOR:g} x "
                             "--timeout)")


def settings_from_args(args: argparse.Namespace) -> LimitSettings:
    cap = args.limit_cap if args.limit_cap is not None else CAP_FACTOR * args.timeout
    return LimitSettings(args.limits, args.limit_scale, cap, args.timeout, getattr(args, "memory_mb", None))


# --------------------------------------------------------------------------------------------
# Reading the fields
# --------------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """A finite number, else None (``NaN`` and ``Infinity`` parse as JSON numbers but limit nothing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return number if math.isfinite(number) else None


def _amount(text: str, units: dict[str, float], what: str) -> float:
    match = _AMOUNT.match(text)
    unit = match.group(3).lower() if match else ""
    if not match or unit not in units:
        raise LimitError(f"unreadable {what} {text!r}")
    return float(match.group(2)) * units[unit]


def parse_time_limit(value: Any) -> float | None:
    """Seconds: ``2``, ``"1 second"``, ``"2.5 seconds"``, ``"1000 ms"``, ``"1 - 1.5 seconds"`` (its
    upper end), CodeContests' ``{"seconds": 2, "nanos": 500000000}``. None: no limit given (absent,
    null, empty, 0). ``LimitError``: a value that is none of these."""
    if value is None or value == "" or value == {}:
        return None
    if isinstance(value, dict):
        seconds, nanos = _number(value.get("seconds", 0) or 0), _number(value.get("nanos", 0) or 0)
        if seconds is None or nanos is None or seconds < 0 or nanos < 0:
            raise LimitError(f"unreadable time_limit {value!r}")
        total = seconds + nanos / 1e9
    elif isinstance(value, str):
        total = _amount(value, _TIME_UNITS, "time_limit")
    else:
        number = _number(value)
        if number is None or number < 0:
            raise LimitError(f"unreadable time_limit {value!r}")
        total = number
    if total and total < MIN_TIME_SECONDS:
        raise LimitError(f"time_limit {value!r} is under {MIN_TIME_SECONDS:g} s: not a time limit")
    return total or None


def parse_memory_limit(value: Any, field: str = "memory_limit") -> float | None:
    """Megabytes: a number is MB (toolkit records), except in ``memory_limit_bytes`` (CodeContests:
    bytes); strings carry their unit (``"256 megabytes"``, ``"512 MB"``, ``"262144 kilobytes"``).
    None: no limit given. ``LimitError``: unreadable, or under ``MIN_MEMORY_MB`` (not a memory limit
    a Python program can keep to: TACO's CodeChef records hold the source-size limit here)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        mb = _amount(value, _MEMORY_UNITS, field)
    else:
        number = _number(value)
        if number is None or number < 0:
            raise LimitError(f"unreadable {field} {value!r}")
        mb = number / 2**20 if field == "memory_limit_bytes" else number
    if not mb:
        return None
    if mb < MIN_MEMORY_MB:
        raise ImplausibleMemory(f"{field} {value!r} is {mb:.3g} MB, below {MIN_MEMORY_MB:g} MB: not a memory limit")
    return mb


def limit_fields(record: Any) -> dict[str, Any]:
    """The limit fields a record has, as written (what ``limits_for`` reads)."""
    if not isinstance(record, dict):
        return {}
    return {key: record[key] for key in LIMIT_FIELDS if key in record}


def record_memory(fields: dict[str, Any]) -> float | None:
    """Megabytes a record gives; ``memory_limit_bytes`` wins over ``memory_limit``."""
    if fields.get("memory_limit_bytes") not in (None, "", 0):
        return parse_memory_limit(fields["memory_limit_bytes"], "memory_limit_bytes")
    return parse_memory_limit(fields.get("memory_limit"))


def record_limits(fields: dict[str, Any]) -> tuple[float | None, float | None]:
    """(seconds, megabytes) a record gives."""
    return parse_time_limit(fields.get("time_limit")), record_memory(fields)


# --------------------------------------------------------------------------------------------
# Deciding a run's limits
# --------------------------------------------------------------------------------------------


def executor_memory(executor: Any) -> tuple[bool, int | None]:
    """(takes a memory limit per call, its own memory limit in MB or None)."""
    own = getattr(getattr(executor, "limits", None), "memory_mb", None)
    return bool(getattr(executor, "per_call_memory", False)), own


def warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)


def limits_for(fields: dict[str, Any], settings: LimitSettings, executor: Any, where: str) -> ProblemLimits:
    """One problem's limits; ``where`` (``<file>: problem <i>``) locates its warning."""
    if settings.mode != "dataset":  # a remote executor is not asked (its /health) for what is not used
        own = None if getattr(executor, "name", "") == "remote" else executor_memory(executor)[1]
        return ProblemLimits(settings.timeout, settings.memory_mb or own, "global")
    per_call, own = executor_memory(executor)
    fallback = ProblemLimits(settings.timeout, settings.memory_mb or own, "global")
    try:
        seconds = parse_time_limit(fields.get("time_limit"))
        try:
            mb = record_memory(fields)
        except ImplausibleMemory as exc:  # TACO's CodeChef "50000 bytes": its time limit is still real
            warn(f"{where}: {exc}: the global memory limit applies to this problem")
            mb = None
    except LimitError as exc:
        warn(f"{where}: {exc}: this problem runs under the global limits")
        return fallback
    if seconds is None and mb is None:
        return fallback
    timeout = max(MIN_TIME_SECONDS, min(settings.cap, seconds * settings.scale)) if seconds is not None else settings.timeout
    memory = settings.memory_mb or own
    if per_call:
        memory = int(round(mb)) if mb is not None else memory
        if own is not None and memory is not None:
            memory = min(memory, own)  # the worker's cgroup holds the executor's own limit
    # "dataset" only when a value of the record is applied: a memory limit alone, on an executor
    # that takes none per call, leaves the problem under the global limits and says so
    applied = seconds is not None or (per_call and mb is not None)
    return ProblemLimits(round(timeout, 6), memory, "dataset" if applied else "global", per_call_memory=per_call)


def resolve_records(path: Any, records: list[Any], indices: Iterable[int], settings: LimitSettings | None,
                    executor: Any) -> dict[int, ProblemLimits]:
    """``resolve`` over problems of one solution file, by index (``settings`` None: no limits flags)."""
    if settings is None:
        return {}
    chosen = [i for i in indices if 0 <= i < len(records)]
    found = resolve(((str(path), i, limit_fields(records[i])) for i in chosen), settings, executor)
    return {i: found[(str(path), i)] for i in chosen}


def resolve(items: Iterable[tuple[str, int, dict[str, Any]]], settings: LimitSettings,
            executor: Any) -> dict[tuple[str, int], ProblemLimits]:
    """Limits per (file, problem index), each problem read (and warned about) once; with
    ``--limits dataset``, one line for what the executor cannot apply."""
    out: dict[tuple[str, int], ProblemLimits] = {}
    wanted: list[float] = []
    for path, index, fields in items:
        if (path, index) in out:
            continue
        out[(path, index)] = limits_for(fields, settings, executor, f"{path}: problem {index}")
        if settings.mode == "dataset":
            try:
                mb = record_memory(fields)
            except LimitError:
                mb = None
            if mb is not None:
                wanted.append(mb)
    if settings.mode == "dataset" and wanted:
        per_call, own = executor_memory(executor)
        if not per_call:
            warn(f"--limits dataset: the {getattr(executor, 'name', '?')} executor takes no memory limit per "
                 f"request (the execution API has no memory field, and this server advertises none): the records' "
                 f"memory limits are not applied, their time limits are")
        elif own is not None and max(wanted) > own:
            over = sum(1 for mb in wanted if mb > own)
            where = "the server's --memory-mb" if getattr(executor, "name", "") == "remote" else "--memory-mb"
            warn(f"--limits dataset: {over} problem(s) ask for more than the executor's {own} MB: they run with "
                 f"{own} MB (raise it with {where})")
    return out
