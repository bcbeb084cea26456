"""The embedded executor: runs untrusted Python programs against tests on this machine.

Owns: the face the toolkit uses (``LocalExecutor``, ``SandboxLimits``, ``run_one_fresh``), the
worker pool on the host side (starting, feeding and replacing workers), output comparison and
verdicts. Results have the remote execution API's shape (see ``records.TestResult``). What runs
inside the sandbox is ``sandbox_worker.py``; what a worker may see is ``sandbox_policy.py``.

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
worker's two modules are bound read-only, plus ``/proc``, a minimal ``/dev`` and private tmpfs
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

import itertools
import json
import os
import queue
import re
import resource
import select
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import warnings
import weakref
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, cast

import sandbox_cgroups as cgroups
import sandbox_policy as policy
from errors import ExecutionError
from records import RunOutput, Test, TestResult, Verdict
from sandbox_policy import ISOLATION_MODES, Bubblewrap, bubblewrap_candidates  # noqa: F401
from sandbox_worker import (IMPORT_HEADER, PROJECT_DIR, THREAD_STACK_BYTES, WORKER_BOOTSTRAP,  # noqa: F401
                            WORKER_ENV, Answer, Hello, Job, Probe, WorkerConfig, receive_message, send_message)

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor


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


_MEMORY_ERROR_LINE = re.compile(r"^[\w.]*MemoryError(:|$)")


def memory_exceeded(exit_code: int | None, stderr: str, max_rss_bytes: int, limit_bytes: int,
                    limit_hit: bool = False) -> bool:
    """Did the run fail because it really reached its memory limit?

    ``limit_hit`` is evidence from outside the program: the memory watch refused a request
    that would have taken the address space over ``RLIMIT_AS`` (see ``sandbox_seccomp``), or the
    worker's cgroup hit its memory limit during the test. A failed run counts when it ends with
    a ``MemoryError`` (numpy's ``_ArrayMemoryError`` too) as the traceback's last line and that
    evidence exists, or when it is ended by a signal (an allocation failing inside C code) with
    that evidence or a peak RSS, measured by the kernel, near the limit. A ``MemoryError`` a
    program raises or prints itself is a ``runtime_error``; a run that exits 0 never counts.
    """
    if exit_code == 0 or exit_code is None:
        return False
    lines = stderr[-2000:].rstrip().splitlines()
    if lines and _MEMORY_ERROR_LINE.match(lines[-1]):  # the traceback's last line
        return limit_hit
    fatal = {-signal.SIGKILL, -signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS}
    return exit_code in fatal and (limit_hit or max_rss_bytes >= 0.8 * limit_bytes)


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
# Toolkit side
# ---------------------------------------------------------------------------------------------

_SPAWN_ATTEMPTS = 3
_ANSWER_GRACE = 15.0


class _WorkerFailure(Exception):
    """A worker died, hung or answered nonsense: an infrastructure failure, not a verdict."""


class _MemoryKill(_WorkerFailure):
    """The worker died with an OOM kill in its cgroup during the test: the test's processes
    together went over the memory limit (memory that no process maps, such as memfds, makes the
    kernel pick the worker itself). A verdict about the program, never retried."""




def _wait_readable(fd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(int(timeout * 1000)))


class _WorkerHandle:
    """The toolkit's end of one worker process."""

    def __init__(self, slot: int, mode: str, uid: int | None, bwrap: str = "bwrap",
                 plan: cgroups.CgroupPlan | None = None,
                 limits: cgroups.WorkerLimits | None = None) -> None:
        import subprocess
        self.slot = slot
        self.mode = mode
        self.probe: Probe | dict[str, Any] = {}
        privileged = os.geteuid() == 0
        bwrap_path, bwrap = bwrap, mode == "bwrap"
        self.uid = uid
        view = policy.filesystem_view() if bwrap else None
        # The deny filter: installed by bubblewrap (--seccomp), or by the fallback worker itself.
        bpf = policy.seccomp_program()
        seccomp_fd = _memfd("seccomp", bpf) if bpf else None
        config = WorkerConfig(uid=uid, pid_namespace=bwrap, user_namespace=bwrap and not privileged,
                              private_shm=bwrap, listing=view.listing if view else None,
                              absent=view.absent if view else None,
                              seccomp_fd=seccomp_fd if not bwrap else None)
        # -B: no __pycache__ beside the worker's modules (under /tmp they sit on the writable tmpfs,
        # where the self-test would rightly find it)
        python = [sys.executable, "-B", "-c", WORKER_BOOTSTRAP, PROJECT_DIR, json.dumps(asdict(config))]
        command = (policy.bwrap_command(python, privileged, view, bwrap_path, seccomp_fd)
                   if bwrap else python)
        self.cgroup: cgroups.WorkerCgroup | None = None
        if plan is not None and limits is not None and not plan.unavailable:
            self.cgroup = cgroups.WorkerCgroup(plan, f"worker-{slot}-{next(_WORKER_SERIAL)}", limits)
            command = self.cgroup.command_prefix() + command
        self.log = tempfile.TemporaryFile()  # the worker's stderr, quoted when it fails
        self._stop_lock = threading.Lock()
        self._stopped = False
        # One SOCK_SEQPACKET channel (the worker's fds 0 and 1): a message per packet, and the
        # job's memfds travel with it as descriptors.
        self.channel, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                command, stdin=worker_end.fileno(), stdout=worker_end.fileno(), stderr=self.log,
                env=dict(WORKER_ENV), cwd="/", start_new_session=True, close_fds=True,
                pass_fds=() if seccomp_fd is None else (seccomp_fd,),
            )
        except BaseException:
            self.channel.close()
            if self.cgroup is not None:
                self.cgroup.remove()
            raise
        finally:
            worker_end.close()
            if seccomp_fd is not None:
                os.close(seccomp_fd)
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
            received = receive_message(self.channel, time.monotonic() + timeout)
        except (TimeoutError, OSError, ValueError) as error:
            raise _WorkerFailure(f"worker did not start: {error}") from error
        hello = received[0] if received else None
        if not hello or not hello.get("ready"):
            _wait_readable(self._pidfd, 0.05)  # let it exit, so that the exit code is known
            raise _WorkerFailure(f"worker did not start ({self.diagnosis()})")
        self.probe = cast(Hello, hello)["probe"]

    def run(self, job: Job, files: _JobFiles, answer_timeout: float) -> Answer:
        try:
            send_message(self.channel, job, files.fds)
            received = receive_message(self.channel, time.monotonic() + answer_timeout)
        except (TimeoutError, OSError, ValueError) as error:
            raise _WorkerFailure(f"worker failed: {error}") from error
        if received is None:
            if self.cgroup is not None and self.cgroup.new_memory_events()[0]:
                raise _MemoryKill(f"worker killed by its memory controller ({self.diagnosis()})")
            raise _WorkerFailure(f"worker died ({self.diagnosis()})")
        answer, stray = received
        for fd in stray:
            os.close(fd)
        if self.cgroup is not None and "error" not in answer:
            answer["oom_killed"], answer["memory_limit_hit"] = self.cgroup.new_memory_events()
        if "error" in answer:
            raise _WorkerFailure(f"worker error: {answer['error']}")
        return cast(Answer, answer)

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
            self.channel.shutdown(socket.SHUT_WR)  # EOF: the worker cleans up and exits
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
        self.channel.close()
        self.log.close()
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.mode == "none" and self.uid is not None:
            policy.kill_uid(self.uid)


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


_WORKER_SERIAL = itertools.count()
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


def _shut_down(handles: list[_WorkerHandle], uid_indexes: list[int] | None,
               plan: cgroups.CgroupPlan | None = None) -> None:
    """An executor's end: stop its workers, then free its private uids for other executors."""
    _stop_handles(handles)
    if uid_indexes:
        policy.release_uid_indexes(uid_indexes)
    if plan is not None:
        cgroups.remove_parents(plan)


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
    per_call_memory = True  # run_tests takes memory_mb (problem_limits: --limits dataset)

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
        self._requested = policy.isolation_mode(isolation)
        self._fallback_uid = policy.fallback_can_switch_uid()  # decided once: respawns stay alike
        # As root, bwrap and the uid-switching fallback give each slot a private uid.
        uid_indexes = policy.reserve_uid_indexes(self.workers) if os.geteuid() == 0 else None
        self._uids = None if uid_indexes is None else [policy.private_uid(i) for i in uid_indexes]
        self._mode: str | None = None
        self._bwrap: Bubblewrap | None = None  # the bubblewrap that passed the self-test
        self._probe: Probe | dict[str, Any] = {}
        self._idle: queue.Queue[_Seat] = queue.Queue()
        self._all: list[_WorkerHandle] = []
        self._lock = threading.RLock()  # _respawn may run while _ensure_started holds it
        self._closed = False
        # Runs on close(), when the executor is garbage-collected, or at interpreter exit.
        # Per-worker cgroups where this process may create them (else rlimits alone).
        self._cgroups = cgroups.find_plan()
        self._worker_limits = None if self._cgroups.unavailable else cgroups.WorkerLimits(
            memory_bytes=limits.memory_mb * 2**20 + cgroups.WORKER_MEMORY_HEADROOM,
            pids=limits.max_processes + cgroups.WORKER_EXTRA_PIDS)
        self._finalizer = weakref.finalize(self, _shut_down, self._all, uid_indexes, self._cgroups)

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
        return (policy.describe_isolation(self._mode or "none", self._probe, self._bwrap)
                + "; " + cgroups.describe(self._cgroups, self._worker_limits))

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
                raise ExecutionError(policy.no_namespaces_message(errors, fallback=False))
            if not self._fallback_uid:
                raise ExecutionError(policy.no_namespaces_message(errors, fallback=True))
        try:
            handle = self._started(0, "none")
        except _WorkerFailure as error:
            raise ExecutionError(f"cannot start the sandbox: {'; '.join(errors + [str(error)])}")
        self._probe = handle.probe
        if errors:
            warnings.warn(f"sandbox: namespace isolation unavailable ({'; '.join(errors)}); "
                          f"running programs with {policy.describe_isolation('none', handle.probe)}",
                          RuntimeWarning, stacklevel=4)
        if handle.uid is None:
            warnings.warn(policy.shared_uid_warning(), RuntimeWarning, stacklevel=4)
        return "none", _Seat(0, "none", handle)

    def _start_bwrap(self, errors: list[str]) -> _Seat | None:
        """Worker 0 under the first bubblewrap that starts and passes the self-test."""
        candidates, missing = policy.bubblewrap_candidates()
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
            if mode == "bwrap" and not policy.probe_is_isolated(handle.probe):
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
        handle = _spawner().submit(_WorkerHandle, slot, mode, uid, bwrap, self._cgroups,
                                   self._worker_limits).result()
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

    def run_test(self, code: str, test: Test, *, timeout: float | None = None,
                 memory_mb: int | None = None) -> TestResult:
        """Run one test on an idle worker (blocks until one is free); ``memory_mb`` as in ``run_tests``."""
        self._ensure_started()
        seat = self._idle.get()
        try:
            return self._run_with(seat, code, test, timeout, memory_mb)
        finally:
            self._idle.put(seat)  # with a live worker, or vacant after a failure

    async def run_tests(self, code: str, tests: list[Test], *, timeout: float | None = None,
                        memory_mb: int | None = None) -> list[TestResult]:
        """Run a batch on all workers at once; results in test order.

        One thread per worker takes a worker once and runs test after test on it, rather than
        one thread hand-off per test: the toolkit's own CPU time per test then stays small.
        ``memory_mb``: this call's memory limit (``--limits dataset``), at most the executor's own
        (the workers' cgroups are sized to that); None: the executor's own.
        """
        import asyncio
        if self._mode is None or self._closed:  # a thread hop only while workers must start
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
                    results[index] = self._run_with(seat, code, tests[index], timeout, memory_mb)
            finally:
                self._idle.put(seat)  # with a live worker, or vacant after a failure

        await asyncio.gather(*(asyncio.to_thread(drain)
                               for _ in range(min(self.workers, len(tests)))))
        return results  # type: ignore[return-value]  # every index was filled

    def _run_with(self, seat: _Seat, code: str, test: Test, timeout: float | None,
                  memory_mb: int | None = None) -> TestResult:
        """Run one test on the seat's worker (replacing it if needed)."""
        timeout = timeout or self.limits.timeout
        memory_mb = min(memory_mb, self.limits.memory_mb) if memory_mb else self.limits.memory_mb
        stdin = "" if isinstance(test, str) else test["stdin"]
        with _JobFiles(program_for(code, test, self.import_header), stdin) as files:
            answer = self._run_on_worker(seat, self._job(timeout, memory_mb), files, timeout)
            return self._result(code, test, answer, files, memory_mb)

    def _job(self, timeout: float, memory_mb: int | None = None) -> Job:
        limits = self.limits
        return Job(timeout=timeout, cpu_time=max(1, int(limits.cpu_time or timeout + 1)),
                   memory_bytes=(memory_mb or limits.memory_mb) * 1024 * 1024,
                   output_bytes=limits.output_bytes, max_processes=limits.max_processes)

    def _run_on_worker(self, seat: _Seat, job: Job, files: _JobFiles, timeout: float) -> Answer:
        """Run the job, replacing a worker that dies; a program that kills two is its fault.

        A worker killed by its cgroup's memory controller is a ``memory_limit`` at once (the
        test's memory killed it). Another worker that dies while a test runs is replaced and the
        test retried once. If the
        fresh worker dies on the same test too, a trivial health check on a third worker
        decides: healthy means the program is to blame (``runtime_error`` with an explanation),
        unhealthy means the infrastructure is broken (``ExecutionError``). On any exception the
        seat is left vacant: an interrupted worker may still owe an answer that the next job
        would read as its own.
        """
        try:
            if seat.handle is None:  # its worker failed earlier and could not be replaced then
                self._respawn(seat)
            for attempt in range(2):
                try:
                    if attempt:
                        files.rewind()  # the failed run may have read stdin or written output
                    return seat.handle.run(job, files, timeout + _ANSWER_GRACE)  # type: ignore[union-attr]
                except _MemoryKill:
                    self._vacate(seat)  # the next job on this seat starts a fresh worker
                    return _memory_killed_answer()
                except _WorkerFailure:
                    self._respawn(seat)
            health: Job = {**job, "timeout": 10.0, "cpu_time": 11}
            try:
                with _JobFiles("pass", "") as trivial:
                    seat.handle.run(health, trivial, 10.0 + _ANSWER_GRACE)  # type: ignore[union-attr]
            except _WorkerFailure as error:
                raise ExecutionError(f"sandbox workers keep failing: {error}") from error
            return _killed_worker_answer()
        except BaseException:
            self._vacate(seat)
            raise

    def _result(self, code: str, test: Test, answer: Answer, files: _JobFiles,
                memory_mb: int | None = None) -> TestResult:
        full = with_header(code, self.import_header)
        cap = self.limits.output_bytes
        stderr = answer.get("stderr") or files.output(files.stderr, cap)  # type: ignore[typeddict-item]
        run: RunOutput = {
            "stdout": files.output(files.stdout, cap),
            "stderr": stderr,
            "exit_code": answer["exit_code"],
            "timeout_expired": answer["timeout_expired"],
            "elapsed_time": round(answer["elapsed_time"], 4),
        }
        limit_hit = answer.get("address_space_refused", False) or answer.get("memory_limit_hit", False)
        memory = answer.get("oom_killed", False) or memory_exceeded(
            run["exit_code"], run["stderr"], answer["max_rss_bytes"], (memory_mb or self.limits.memory_mb) * 1024 * 1024,
            limit_hit)
        return make_result(full, test, run, classify(run, test, answer["output_capped"], memory))


def _memory_killed_answer() -> Answer:
    answer = {"exit_code": -signal.SIGKILL, "timeout_expired": False, "elapsed_time": 0.0,
              "cpu_seconds": 0.0, "output_capped": False, "max_rss_bytes": 0, "oom_killed": True,
              "stderr": "sandbox: the memory controller killed the program's executor process: the "
                        "test's processes together (shared memory and memfds included) went over "
                        "the memory limit\n"}
    return cast(Answer, answer)


def _killed_worker_answer() -> Answer:
    answer = {"exit_code": -signal.SIGKILL, "timeout_expired": False, "elapsed_time": 0.0,
              "cpu_seconds": 0.0, "output_capped": False, "max_rss_bytes": 0,
              "stderr": "sandbox: the program's executor process died while it ran "
                        "(the program killed its parent or the whole process tree)\n"}
    return cast(Answer, answer)


class _JobFiles:
    """The memfds of one test: the source and stdin the toolkit writes, the stdout and stderr
    it reads back. Only their descriptors reach the worker (see ``sandbox_worker.send_message``)."""

    def __init__(self, source: str, stdin: str) -> None:
        self.fds: list[int] = []
        try:
            for name, data in (("source", source), ("stdin", stdin), ("stdout", ""), ("stderr", "")):
                self.fds.append(_memfd(name, data.encode("utf-8", "surrogatepass")))
        except BaseException:
            self.close()
            raise
        self.stdout, self.stderr = self.fds[2], self.fds[3]

    def __enter__(self) -> "_JobFiles":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def rewind(self) -> None:
        """Back to a fresh job's state: inputs at their start, outputs empty."""
        for fd in self.fds:
            os.lseek(fd, 0, os.SEEK_SET)
        for fd in (self.stdout, self.stderr):
            os.ftruncate(fd, 0)

    def close(self) -> None:
        fds, self.fds = self.fds, []
        for fd in fds:
            os.close(fd)

    @staticmethod
    def output(fd: int, cap: int) -> str:
        """At most ``cap`` bytes of an output file, decoded, and at most ``cap`` bytes once
        decoded too (each invalid byte becomes a three-byte U+FFFD)."""
        data = os.pread(fd, cap, 0)
        text = data.decode("utf-8", "replace")
        if len(text) > cap // 3:
            encoded = text.encode("utf-8", "surrogatepass")
            if len(encoded) > cap:
                text = encoded[:cap].decode("utf-8", "ignore")
        return text


def _memfd(name: str, data: bytes = b"") -> int:
    """An anonymous in-memory file (stdin from one: no pipe to fill with 80 KB of input)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _replace_limits(limits: SandboxLimits, **changes: Any) -> SandboxLimits:
    from dataclasses import replace
    return replace(limits, **changes)


