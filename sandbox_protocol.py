"""The sandbox's message protocol: what the toolkit and a worker say to each other.

Owns the typed messages (``Job``, ``Answer``, ``Probe``, ``Hello``, ``Failure``), their framing on
the SOCK_SEQPACKET channel (one JSON packet, descriptors attached), the environments of workers
and programs, and the import header every program runs under. Both sides import it: the host
(``sandbox.py``, ``sandbox_policy.py``) and the worker (``sandbox_worker.py``), so it is bound
into the sandbox and imports only the standard library.
"""

from __future__ import annotations

import array
import json
import os
import select
import socket
import time
from typing import Any, NotRequired, TypedDict

IMPORT_HEADER = """from collections import *
from typing import *
import collections
import copy
import functools
import hashlib
import heapq
import itertools
import math
import numpy
import numpy as np
import re
import statistics
import string
import sys
"""


class Job(TypedDict):
    """One test for a worker: its limits. The source and stdin come as memfds with it."""

    timeout: float
    cpu_time: int
    memory_bytes: int
    output_bytes: int
    max_processes: int


class Answer(TypedDict):
    """How one test ended, measured by the worker. The output itself is not here: the toolkit
    reads it from its own copies of the stdout and stderr memfds."""

    exit_code: int | None
    timeout_expired: bool
    elapsed_time: float
    cpu_seconds: float
    output_capped: bool
    max_rss_bytes: int
    address_space_refused: bool  # the memory watch refused a request over the address-space limit
    oom_killed: NotRequired[bool]  # added by the toolkit: its cgroup's memory controller killed
    memory_limit_hit: NotRequired[bool]  # added by the toolkit: its cgroup reached its memory limit


class Probe(TypedDict):
    """What a worker observes of its own isolation at start-up (the self-test's input)."""

    pid: int
    uid: int
    interfaces: list[str]
    child_uid: int | None
    root_read_only: bool
    unexpected_paths: list[str]
    seccomp: bool  # the seccomp filter denies SysV IPC here
    test_filter: bool  # test processes get the per-test filter (memory watch, verdict signals)


class Hello(TypedDict):
    """A worker's first message, once its imports are done."""

    ready: bool
    probe: Probe


class Failure(TypedDict):
    """A worker's answer when running a job failed for reasons of its own (not the program's)."""

    error: str

# ---------------------------------------------------------------------------------------------
# Shared between the toolkit and its workers
# ---------------------------------------------------------------------------------------------

PROJECT_DIR = os.path.dirname(os.path.abspath(__file__))  # where sandbox_worker.py is too
# A packet of the channel: jobs and answers are a few hundred bytes, the hello a few KB. Below
# malloc's mmap threshold, so receiving a message maps no fresh megabyte each time.
_MAX_MESSAGE = 64 * 1024

# What the program sees as its environment: the same as the baseline's (HOME is its workdir).
PROGRAM_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
# The worker's own environment. Built from scratch (never copied from os.environ) so that the
# toolkit's secrets never reach the worker's memory, which every forked test child inherits.
# One BLAS thread: a forked child only keeps the forking thread, so the worker must have one.
WORKER_ENV = {
    **PROGRAM_ENV,
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
# Modules the worker imports once so that programs find them in sys.modules. Only speed
# depends on this list; a program importing something else just imports it itself.
PRELOAD = ("bisect", "random", "array", "operator", "io", "threading", "linecache", "binascii", "traceback")
WORKER_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); import sandbox_worker; sandbox_worker.worker_main(sys.argv[2])"
)


def send_message(channel: socket.socket, message: Job | Answer | Hello | Failure,
                 fds: list[int] | None = None) -> None:
    """Send one JSON message as one packet of the SOCK_SEQPACKET channel, with ``fds`` attached.

    A job's data never travels in a message: the toolkit writes the program and its stdin into
    memfds and passes them here as descriptors, and reads the program's output from its own
    copies of the output memfds. The worker thus never holds a program, an input or a result in
    its memory, which every later test process inherits by fork.
    """
    body = json.dumps(message).encode()
    if len(body) > _MAX_MESSAGE:
        raise ValueError(f"message of {len(body)} bytes exceeds {_MAX_MESSAGE}")
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    channel.sendmsg([body], ancillary)


def receive_message(channel: socket.socket,
                    deadline: float | None = None) -> tuple[dict[str, Any], list[int]] | None:
    """The next message and the descriptors sent with it; None on EOF; TimeoutError at ``deadline``."""
    if deadline is not None:
        poller = select.poll()
        poller.register(channel.fileno(), select.POLLIN)
        if not poller.poll(int(max(0.0, deadline - time.monotonic()) * 1000)):
            raise TimeoutError("no answer from the sandbox worker")
    body, ancillary, flags, _ = channel.recvmsg(_MAX_MESSAGE, socket.CMSG_SPACE(16 * 4))
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += array.array("i", data[: len(data) - len(data) % 4]).tolist()
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for received in fds:
            os.close(received)
        raise ValueError("truncated message on the sandbox channel")
    if not body:
        for received in fds:
            os.close(received)
        return None
    return json.loads(body), fds
