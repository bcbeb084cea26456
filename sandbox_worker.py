"""The sandbox worker: the only toolkit code that runs inside the sandbox.

Owns: the worker loop (its messages are ``sandbox_protocol.py``'s), the forked test child, its
limits and privilege drop, and how a program's exit becomes its status.

It imports only the standard library, ``sandbox_protocol.py`` and ``sandbox_seccomp.py`` (with
``records.py``, these are all of the project that is bound into the sandbox), and every megabyte
of the worker's heap makes each per-test fork slower. The host side (``sandbox.py``) starts workers; ``sandbox_policy.py`` decides what they see.
"""

from __future__ import annotations

import array
import json
import os
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
from dataclasses import dataclass
from typing import Any

import sandbox_seccomp

from sandbox_protocol import (  # noqa: F401  (re-exported: the host imports them from here too)
    IMPORT_HEADER, Job, Answer, Probe, Hello, Failure, PROJECT_DIR, PROGRAM_ENV, WORKER_ENV, PRELOAD, WORKER_BOOTSTRAP, send_message, receive_message)

_THIS_FILE = os.path.abspath(__file__)


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
class WorkerConfig:
    """How a worker isolates its children; sent by the toolkit as JSON on the command line."""

    uid: int | None          # the unprivileged uid of test children (None: keep our own)
    pid_namespace: bool      # alone in a pid namespace: kill(-1) reaches only test processes
    user_namespace: bool = False  # RLIMIT_NPROC then counts only this sandbox's processes
    base_path: list[str] | None = None
    private_shm: bool = False  # /dev/shm is the sandbox's own tmpfs: emptied after each test
    listing: dict[str, list[str]] | None = None  # self-test: the exact entries of these dirs
    absent: list[str] | None = None  # self-test: host paths that must not be visible
    seccomp_fd: int | None = None  # the fallback: the deny filter to install on itself (bwrap
                                   # installs it on a bwrap worker)


class _Worker:
    """State of the running worker process (one per sandbox)."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.header_names: dict[str, Any] | None = None
        # The test's sys.stdin/stdout/stderr, made once on fds 0-2 and never used by the worker,
        # so every child inherits them in their initial state (fresh streams cost syscalls).
        self.stdio: list[Any] | None = None
        # Entries of the private /tmp that hold the toolkit's own binds (a venv under /tmp):
        # never wiped between tests.
        tmp = self.tmp = tempfile.gettempdir()
        self.runs = 0  # work dirs are /tmp/run-<n>
        self.kept_in_tmp = {os.path.join(tmp, name) for name in (config.listing or {}).get(tmp, [])}
        # Directories below /tmp made to hold those binds: emptied down to their expected entries.
        self.bind_holders_in_tmp = {
            directory: {os.path.join(directory, name) for name in names}
            for directory, names in (config.listing or {}).items()
            if directory.startswith(tmp.rstrip("/") + "/")}
        self.pid_text = str(os.getpid())
        self.test_filter = sandbox_seccomp.test_filter()
        import ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)


def worker_main(config_json: str) -> None:
    """Entry point of a worker process: warm up, say ready, then serve jobs until EOF."""
    config = WorkerConfig(**json.loads(config_json))
    channel = socket.socket(fileno=_take_channel())
    worker = _Worker(config)
    if not config.pid_namespace:
        worker.libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        worker.libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    _preload_modules()
    worker.header_names = _header_namespace()
    config.base_path = [p for p in sys.path if p not in ("", PROJECT_DIR)]
    _set_process_defaults(worker)  # no_new_privs first: installing a filter needs it
    _install_deny_filter(config)
    _max_fd()
    import gc
    gc.collect()
    gc.freeze()  # forked children then leave the warm heap's pages shared instead of copying
    worker.libc.malloc_trim(0)  # free heap pages back: fewer page-table entries for fork to copy
    send_message(channel, {"ready": True, "probe": _probe_isolation(worker)})
    while True:
        received = receive_message(channel)
        if received is None:
            break
        job, fds = received
        try:
            if len(fds) != 4:
                raise ValueError(f"a job needs 4 descriptors, got {len(fds)}")
            answer: Answer | Failure = _run_job(worker, job, fds)  # type: ignore[arg-type]
        except Exception as error:  # reported to the toolkit as an infrastructure failure
            answer = {"error": f"{type(error).__name__}: {error}"}
        finally:
            for fd in fds:
                os.close(fd)
        send_message(channel, answer)
    _kill_leftovers(worker, None)
    os._exit(0)


def _install_deny_filter(config: WorkerConfig) -> None:
    """The fallback worker installs the deny filter itself (inherited by every test process);
    if the kernel refuses it, the probe finds SysV IPC allowed and the isolation says so."""
    if config.seccomp_fd is None:
        return
    try:
        program = _read_fd(config.seccomp_fd)
        os.close(config.seccomp_fd)
        sandbox_seccomp.install(program)
    except OSError as error:
        os.write(_DIAG_FD, f"sandbox worker: no seccomp filter: {error}\n".encode())


def _take_channel() -> int:
    """Move the protocol socket (fds 0 and 1) off stdio so stray prints cannot corrupt it."""
    channel = os.dup(0)
    _restore_worker_stdio()
    return channel


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


_WORKER_STREAMS: list[Any] = []


def _worker_streams() -> None:
    """Point ``sys.std*`` back at the worker's own streams (a stray warning of the worker then
    goes to its stderr and never touches the streams its children inherit)."""
    if not _WORKER_STREAMS:
        _WORKER_STREAMS.append(_stdio(_DIAG_FD, "w", "backslashreplace", line_buffering=True))
    sys.stdin = sys.__stdin__ = None  # type: ignore[assignment]
    sys.stdout = sys.stderr = sys.__stdout__ = sys.__stderr__ = _WORKER_STREAMS[0]


def _set_process_defaults(worker: _Worker) -> None:
    """Process state that every test child inherits, set once instead of in each child.

    In a forked child the first write to any page copies it, so work done here instead of in
    the child is far cheaper: environment, signals, recursion limit, umask, atexit, and the
    ``no_new_privs`` flag and empty inheritable capability set (both kept across fork).
    """
    import atexit as worker_atexit
    os.environ.clear()
    os.environ.update({**PROGRAM_ENV, "HOME": "/"})
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
    for name in (*header_modules, *PRELOAD):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _probe_isolation(worker: _Worker) -> Probe:
    """What the worker can observe about its own isolation (checked by the start-up self-test)."""
    config = worker.config
    try:
        with open("/proc/self/net/dev") as fh:
            interfaces = sorted(line.split(":")[0].strip() for line in fh.readlines()[2:])
    except OSError:
        interfaces = []
    root_read_only = bool(os.statvfs("/").f_flag & os.ST_RDONLY)
    return {"pid": os.getpid(), "uid": os.getuid(), "interfaces": interfaces,
            "child_uid": config.uid,
            "root_read_only": root_read_only,
            "unexpected_paths": _unexpected_paths(config),
            "seccomp": _sysv_ipc_denied(),
            "test_filter": _test_filter_works(worker)}


def _test_filter_works(worker: _Worker) -> bool:
    """Does the kernel accept the per-test filter (tried once, in a throw-away child)?"""
    if worker.test_filter is None:
        return False
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(0 if _start_memory_watch(worker) >= 0 else 1)
        finally:
            os._exit(1)
    return os.waitpid(pid, 0)[1] == 0


def _sysv_ipc_denied() -> bool:
    """Does the seccomp filter hold (a SysV shared memory segment cannot be created)?"""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    segment = libc.shmget(0, 4096, 0o600)  # IPC_PRIVATE
    if segment >= 0:
        libc.shmctl(segment, 0, None)  # IPC_RMID
        return False
    return ctypes.get_errno() == 1  # EPERM


def _unexpected_paths(config: WorkerConfig) -> list[str]:
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


def _compile_program(worker: _Worker, source: str) -> Any:
    """Compile the program in its own test process; a SyntaxError is returned to be raised.

    When the source starts with the import header, the code is compiled from a copy whose header
    lines are blank (``pass`` on the first, so that a docstring or ``from __future__`` is treated
    as after the header); the header's names, imported once by the worker, were bound into
    ``__main__`` by the worker before the fork (and are unbound here for a program without the
    header): line numbers are unchanged and no test re-runs the imports.
    """
    with_header = worker.header_names is not None and source.startswith(IMPORT_HEADER)
    if with_header:  # one compile: the header's own lines are known to compile
        source = "pass" + "\n" * IMPORT_HEADER.count("\n") + source[len(IMPORT_HEADER):]
    try:
        code = compile(source, "main.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as error:
        return _with_source_line(error, source)
    if not with_header and worker.header_names is not None:  # bound before the fork: unbind
        namespace = sys.modules["__main__"].__dict__
        for name in worker.header_names:
            namespace.pop(name, None)
    return code


def _read_fd(fd: int) -> bytes:
    """The whole content of a memfd, from its start."""
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, min(size - offset, 1 << 24), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _run_job(worker: _Worker, job: Job, fds: list[int]) -> Answer:
    """Run one program in a forked child and report how it ended.

    ``fds`` are the toolkit's memfds: the source, stdin, stdout and stderr. Only the child reads
    the source; the worker looks at the output files' sizes, never their content.
    """
    source_fd, stdin_fd, stdout_fd, stderr_fd = fds
    uid = worker.config.uid
    workdir = _new_workdir(worker)
    own: list[int] = []
    try:
        if uid is not None:
            os.chown(workdir, uid, uid)
        # The toolkit sends fresh files (offset 0, outputs empty), and resets them for a retry.
        # The child's "ready" message comes on this pair, with the memory watch's listener.
        ready_here, ready_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        own += [ready_here.detach(), ready_child.detach()]
        _prepare_interpreter(worker, workdir, [stdin_fd, stdout_fd, stderr_fd])
        start = time.monotonic()
        try:
            pid = os.fork()
            if pid == 0:
                _child_main(worker, job, source_fd, own[1])
        finally:
            _restore_worker_stdio()
            _worker_streams()
            os.chdir("/")
        watch = _wait_for_exit(pid, job["timeout"], own[0], job["memory_bytes"])
        timed_out = not watch.exited
        elapsed = time.monotonic() - start
        _kill_leftovers(worker, pid)
        _, status, usage = os.wait4(pid, 0)
        _reap_orphans()
        _wait_until_alone(worker)
        # A SIGXFSZ counts only with a file past the cap (before /dev/shm is emptied): a program
        # can have the kernel send it one cheaply (a timer's or a clone's exit signal).
        file_over_cap = _killed_by(status, signal.SIGXFSZ) and _holds_file_over(
            _writable_places(worker, workdir), job["output_bytes"])
        if worker.config.user_namespace:
            _wipe_directory(tempfile.gettempdir(), keep=worker.kept_in_tmp | {workdir})
            for directory in worker.bind_holders_in_tmp:  # made to hold a bind (project in /tmp)
                _wipe_directory(directory, keep=worker.bind_holders_in_tmp[directory])
        if worker.config.private_shm and not _empty_tmpfs_directory("/dev/shm"):
            _wipe_directory("/dev/shm", keep=set())
        if watch.listener >= 0:
            os.close(watch.listener)
        if not watch.ready and not timed_out:
            raise RuntimeError("the test process failed before the program started: "
                               + _read_capped(stderr_fd, 2000)[0].strip())
        return _job_report(job, status, usage, [stdout_fd, stderr_fd], elapsed, timed_out,
                           watch.refused, file_over_cap)
    finally:
        for fd in own:
            os.close(fd)
        _remove_tree(workdir)


def _new_workdir(worker: _Worker) -> str:
    """A fresh, empty work dir in the private /tmp (``mkdtemp`` where the name is taken)."""
    worker.runs += 1
    path = os.path.join(worker.tmp, f"run-{worker.runs}")
    try:
        os.mkdir(path, 0o700)
        return path
    except FileExistsError:
        return tempfile.mkdtemp(prefix="run-")


# A tmpfs directory's size is 20 bytes per entry, "." and ".." included: one stat tells whether
# a program left anything, where listing the directory takes five system calls.
_TMPFS_EMPTY_DIR_SIZE = 40


def _empty_tmpfs_directory(path: str) -> bool:
    try:
        return os.stat(path).st_size <= _TMPFS_EMPTY_DIR_SIZE
    except OSError:
        return False


def _remove_tree(path: str) -> None:
    """Remove a directory tree a program left, however deep: ``shutil.rmtree`` recurses (a tree
    of 1,500 levels raises ``RecursionError``), so whatever it leaves goes to ``rm -rf``. Most
    work dirs hold ``main.py`` alone: two system calls remove them."""
    try:
        os.unlink(os.path.join(path, "main.py"))
    except OSError:
        pass
    try:
        os.rmdir(path)
        return
    except OSError:
        pass
    try:
        shutil.rmtree(path)
    except (OSError, RecursionError):
        pass
    if os.path.lexists(path):
        import subprocess
        subprocess.run(["rm", "-rf", "--one-file-system", "--", path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def _wait_until_alone(worker: _Worker, limit: float = 5.0) -> None:
    """In its pid namespace, wait until the killed test processes are gone (reaped by pid 1):
    a process still dying would count against the next test's process limit."""
    if not worker.config.pid_namespace:
        return
    me = worker.pid_text
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        others = [p for p in os.listdir("/proc") if p.isdigit() and p not in ("1", me)]
        if not others:
            return
        _signal_all(signal.SIGKILL)
        _reap_orphans()
        time.sleep(0.001)


def _wipe_directory(directory: str, keep: set[str]) -> None:
    """Empty the worker's private /tmp or /dev/shm, so nothing a program left there reaches the
    next test. /tmp needs it without a uid switch only (otherwise programs cannot write outside
    their workdir); /dev/shm is writable by all (multiprocessing's semaphores live there).
    """
    for entry in os.scandir(directory):
        if entry.path in keep:
            continue
        if entry.is_dir(follow_symlinks=False):
            _remove_tree(entry.path)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass


@dataclass
class _Watch:
    """What the worker saw of a test while it ran."""

    exited: bool = False   # the test process exited before the time limit
    ready: bool = False    # its set-up succeeded before any of the program ran
    listener: int = -1     # the memory watch's listener (closed by the caller)
    refused: bool = False  # a memory request was refused: it went over the address-space limit


def _wait_for_exit(pid: int, timeout: float, ready: int, memory_bytes: int) -> _Watch:
    """Wait up to ``timeout`` seconds for the child to exit, serving its memory watch meanwhile.

    A pidfd wakes us at the exit itself: the program's stdout and stderr are files, not pipes, so
    a lingering grandchild holding them cannot delay the verdict.
    """
    watch = _Watch()
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(ready, select.POLLIN)
        deadline = time.monotonic() + timeout
        while not watch.exited:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for fd, events in poller.poll(int(remaining * 1000) + 1):
                if fd == pidfd:
                    watch.exited = True
                elif fd == ready:
                    poller.unregister(ready)
                    _take_ready(ready, watch, poller)
                elif events & select.POLLIN:
                    watch.refused |= sandbox_seccomp.answer_request(fd, memory_bytes)
                else:  # POLLHUP: no process of the test uses the watch any more
                    poller.unregister(fd)
        if not watch.ready:  # sent just before the exit, or never
            _take_ready(ready, watch, None)
    finally:
        os.close(pidfd)
    return watch


def _take_ready(ready: int, watch: _Watch, poller: Any) -> None:
    """Read the child's ready message (with the watch's listener, if it started one)."""
    try:  # (socket.recv_fds would ignore MSG_DONTWAIT on Python 3.11)
        with socket.socket(fileno=os.dup(ready)) as channel:
            message, ancillary, _, _ = channel.recvmsg(1, socket.CMSG_SPACE(4), socket.MSG_DONTWAIT)
    except OSError:  # nothing sent (BlockingIOError) or a broken pair
        return
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    watch.ready = message == b"1"
    for fd in fds:
        if watch.listener < 0 and poller is not None:
            watch.listener = fd
            poller.register(fd, select.POLLIN)
        else:
            os.close(fd)


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


def _killed_by(status: int, signum: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signum


def _writable_places(worker: _Worker, workdir: str) -> list[str]:
    """Where a test's program can leave files: its workdir, under bwrap also ``/dev/shm`` and, in
    a user namespace, the rest of the private ``/tmp`` (not the toolkit's own binds there). The
    fallback's ``/dev/shm`` is the host's: other files there are no evidence of this test's."""
    places = [workdir, "/dev/shm"] if worker.config.private_shm else [workdir]
    if worker.config.user_namespace:
        kept = worker.kept_in_tmp | set(worker.bind_holders_in_tmp) | {workdir}
        places += [entry.path for entry in os.scandir(worker.tmp) if entry.path not in kept]
    return places


def _holds_file_over(directories: list[str], cap: int, most: int = 10_000) -> bool:
    """Is a regular file of more than ``cap`` bytes in these trees (at most ``most`` entries
    looked at: a program that dies of SIGXFSZ cannot make the worker walk a huge tree)?"""
    seen = 0
    for top in directories:
        if not os.path.isdir(top) and _size(top) > cap:  # a file at the top of /tmp
            return True
        for root, dirs, files in os.walk(top):
            for name in files:
                seen += 1
                if _size(os.path.join(root, name)) > cap:
                    return True
            seen += len(dirs)
            if seen > most:
                return False
    return False


def _size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return -1


def _job_report(job: Job, status: int, usage: Any, outputs: list[int], elapsed: float,
                timed_out: bool, refused: bool, file_over_cap: bool = False) -> Answer:
    """How the test ended, measured here: a verdict of timeout needs the wall-clock limit to have
    passed or the CPU limit to have been used up (a ``SIGXCPU`` the program sent itself is just a
    signal), and output over the cap is read from the files' sizes, not their content: stdout and
    stderr, or, for a ``SIGXFSZ``, a file the program wrote (``file_over_cap``). A file past the
    cap that the program deleted or never named (a memfd, ``tempfile.TemporaryFile``) leaves no
    trace: that ``SIGXFSZ`` is a runtime error."""
    cap = job["output_bytes"]
    signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    exit_code = -signum if signum else os.WEXITSTATUS(status)
    cpu_seconds = usage.ru_utime + usage.ru_stime
    # The per-test filter stops a program from sending SIGXCPU or SIGXFSZ or changing RLIMIT_CPU /
    # RLIMIT_FSIZE, but the kernel still delivers either one for it as a timer's signal or a
    # clone's exit signal: hence the CPU check and, for SIGXFSZ, a file past the cap.
    cpu_exhausted = signum == signal.SIGXCPU and cpu_seconds >= 0.8 * job["cpu_time"]
    oversized = any(os.fstat(fd).st_size > cap for fd in outputs)
    return {
        "exit_code": exit_code,
        "timeout_expired": timed_out or cpu_exhausted,
        "elapsed_time": elapsed,
        "cpu_seconds": cpu_seconds,
        "output_capped": oversized or (signum == signal.SIGXFSZ and file_over_cap),
        "max_rss_bytes": usage.ru_maxrss * 1024,
        "address_space_refused": refused,
    }


def _read_capped(fd: int, cap: int) -> tuple[str, bool]:
    size = os.fstat(fd).st_size
    data = os.pread(fd, min(size, cap), 0)
    return data.decode("utf-8", "replace"), size > cap


# --- inside the forked test child ------------------------------------------------------------

def _prepare_interpreter(worker: _Worker, workdir: str, stdio: list[int]) -> None:
    """Make the worker look like a fresh ``python3 main.py`` in ``workdir``, just before forking.

    The child inherits all of it without touching (and so copying) a page: stdio on the test's
    files with fresh text streams, ``sys.argv``, ``sys.path``, ``HOME``, the working directory,
    an empty ``__main__`` and line cache. The worker undoes only the fds and ``sys.std*``
    afterwards. The text streams are made on the first test's files and then only handed on:
    the worker never reads or writes them, so each child gets them as they were made, on fds
    0-2 that now hold its own files (same kind of file, offset 0, so the same initial state).
    """
    import builtins
    import linecache
    import types

    for target, fd in enumerate(stdio):
        os.dup2(fd, target)
    if worker.stdio is None:
        worker.stdio = [_stdio(0, "r", "strict"), _stdio(1, "w", "strict"),
                        _stdio(2, "w", "backslashreplace", line_buffering=True)]
    sys.stdin, sys.stdout, sys.stderr = worker.stdio
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = worker.stdio
    sys.argv = ["main.py"]
    sys.path[:] = [workdir, *(worker.config.base_path or [])]
    os.environ["HOME"] = workdir
    os.chdir(workdir)
    linecache.clearcache()
    main = types.ModuleType("__main__")
    main.__file__ = os.path.join(workdir, "main.py")
    main.__cached__ = None
    main.__builtins__ = builtins
    if worker.header_names is not None:  # the header's names, bound here rather than in the child
        main.__dict__.update(worker.header_names)
    sys.modules["__main__"] = main


def _child_main(worker: _Worker, job: Job, source_fd: int, ready: int) -> None:
    """Become the sandboxed program: own session, limits, unprivileged uid; run; exit.

    One byte on ``ready`` tells the worker that the set-up succeeded before any of the program
    ran, so a program cannot pass off its own failure as a broken sandbox (or the reverse).
    """
    status = 70
    try:
        os.setsid()
        source = _read_fd(source_fd)
        os.dup2(ready, 3)
        os.closerange(4, _max_fd())
        _set_limits(job, worker.config)
        _drop_privileges(worker.config.uid)
        main_py = os.open("main.py", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        view = memoryview(source)  # in the program's workdir, as its own uid
        while view:
            view = view[os.write(main_py, view):]
        os.close(main_py)
        del view
        # random reseeds itself after fork (os.register_at_fork); numpy's global state does not.
        numpy_random = sys.modules.get("numpy.random")
        if numpy_random is not None:
            numpy_random.seed()
        listener = _start_memory_watch(worker)
        with socket.socket(fileno=3) as channel:  # ready, with the listener for the worker
            socket.send_fds(channel, [b"1"], [listener] if listener >= 0 else [])
        if listener >= 0:
            os.close(listener)  # the program never holds it
        text = source.decode("utf-8", "surrogatepass")
        del source
        status = _run_program(_compile_program(worker, text))
    except BaseException as error:  # a failure of the sandbox itself, before the program ran
        try:
            os.write(2, f"sandbox: the test process could not start: {error!r}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(status)


def _start_memory_watch(worker: _Worker) -> int:
    """The memory watch's listener for the worker, or -1 where the kernel refuses the watch
    (the test then runs unwatched: a MemoryError needs other evidence)."""
    if worker.test_filter is None:
        return -1
    try:
        return worker.test_filter.start()
    except OSError:
        return -1


_MAX_FD: list[int] = []


def _max_fd() -> int:
    if not _MAX_FD:  # the worker's own limit, the same for every child (read once, pre-fork)
        _MAX_FD.append(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    return _MAX_FD[0]


def _set_limits(job: Job, config: WorkerConfig) -> None:
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
