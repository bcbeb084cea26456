"""Seccomp inside the sandbox: the filters a worker and its test processes install themselves.

Owns: installing a compiled deny filter in a process (the fallback worker, which bubblewrap's
``--seccomp`` does not reach), and the per-test *memory watch*: a filter that hands each large
memory request of a test process (``mmap`` or growing ``mremap`` of at least ``WATCH_BYTES``) to
the worker, which refuses it with ``ENOMEM`` when it would take the process's address space over
its limit, exactly as ``RLIMIT_AS`` would, and so knows, from outside the program, that the limit
was really hit. A ``MemoryError`` a program raises or prints itself leaves no such trace.

Standard library only, like ``sandbox_worker.py`` (both are bound into the sandbox). The watch
needs x86-64 and Linux 5.5 or later (user notification with ``CONTINUE``); elsewhere
``test_program()`` is None and no evidence is collected (a ``MemoryError`` then counts only with
the other evidence, see ``sandbox.memory_exceeded``).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import platform
import struct

WATCH_BYTES = 1 << 20  # CPython's arenas are 1 MiB: a MemoryError always follows such a request

_SYS_SECCOMP = 317  # x86-64
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_RET_ALLOW = 0x7FFF0000
_RET_USER_NOTIF = 0x7FC00000
_RET_ERRNO = 0x00050000
_AUDIT_ARCH_X86_64 = 0xC000003E
_NR_MMAP, _NR_MREMAP = 9, 25
_MAP_FIXED_ANY = 0x10 | 0x100000  # MAP_FIXED, MAP_FIXED_NOREPLACE: remaps, not new space
# ioctls of the listener: _IOWR('!', 0, struct seccomp_notif), _IOWR('!', 1, struct seccomp_notif_resp)
_NOTIF_RECV = 0xC0502100
_NOTIF_SEND = 0xC0182101
_NOTIF = struct.Struct("<QIIiIQ6Q")  # id, pid, flags, nr, arch, ip, args[6]: 80 bytes
_RESPONSE = struct.Struct("<QqiI")  # id, val, error, flags: 24 bytes
_FLAG_CONTINUE = 1


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: bytes) -> None:
    """Install a compiled classic-BPF filter on this process (``no_new_privs`` must be set)."""
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"installing the seccomp filter failed: {os.strerror(error)}")


def test_program() -> bytes | None:
    """The per-test filter (None where it cannot work: not x86-64): the memory watch, and no
    way for a program to fake the kernel's verdict signals. ``SIGXCPU`` and ``SIGXFSZ`` cannot
    be sent by any process of the test (``kill``, ``tkill``, ``tgkill``, ``rt_sigqueueinfo``,
    ``rt_tgsigqueueinfo``, ``pidfd_send_signal``: ``EPERM``), and ``RLIMIT_CPU`` and
    ``RLIMIT_FSIZE`` cannot be changed (``setrlimit``, ``prlimit64`` with a new value: ``EPERM``),
    so either signal means that the sandbox's own limit was reached. x32 system calls get
    ``ENOSYS`` (they would pass the number checks)."""
    if platform.machine() != "x86_64":
        return None
    arg = lambda index, high=False: 16 + 8 * index + (4 if high else 0)  # noqa: E731
    signals = (24, 25)  # SIGXCPU, SIGXFSZ
    limits = (0, 1)  # RLIMIT_CPU, RLIMIT_FSIZE
    code: list[tuple] = [
        ("ld", 4), ("jeq", _AUDIT_ARCH_X86_64, None, "allow"),
        ("ld", 0), ("jge", 0x40000000, "enosys", None),
        ("jeq", _NR_MMAP, "mmap", None), ("jeq", _NR_MREMAP, "mremap", None),
        *[("jeq", nr, "signal1", None) for nr in (62, 200, 129, 424)],  # kill tkill rt_sigqueueinfo pidfd_send_signal
        *[("jeq", nr, "signal2", None) for nr in (234, 297)],  # tgkill rt_tgsigqueueinfo
        ("jeq", 160, "setrlimit", None), ("jeq", 302, "prlimit", "allow"),
        ("label", "signal1"), ("ld", arg(1)),
        *[("jeq", sig, "eperm", None) for sig in signals], ("ret", _RET_ALLOW),
        ("label", "signal2"), ("ld", arg(2)),
        *[("jeq", sig, "eperm", None) for sig in signals], ("ret", _RET_ALLOW),
        ("label", "setrlimit"), ("ld", arg(0)),
        *[("jeq", res, "eperm", None) for res in limits], ("ret", _RET_ALLOW),
        ("label", "prlimit"), ("ld", arg(2)), ("jset", 0xFFFFFFFF, "resource", None),
        ("ld", arg(2, True)), ("jset", 0xFFFFFFFF, "resource", "allow"),
        ("label", "resource"), ("ld", arg(1)),
        *[("jeq", res, "eperm", None) for res in limits], ("ret", _RET_ALLOW),
        ("label", "mmap"), ("ld", arg(3)), ("jset", _MAP_FIXED_ANY, "allow", None),
        ("ld", arg(1, True)), ("jgt", 0, "notify", None),
        ("ld", arg(1)), ("jge", WATCH_BYTES, "notify", "allow"),
        ("label", "mremap"), ("ld", arg(2, True)), ("jgt", 0, "notify", None),
        ("ld", arg(2)), ("jge", WATCH_BYTES, "notify", "allow"),
        ("label", "allow"), ("ret", _RET_ALLOW),
        ("label", "notify"), ("ret", _RET_USER_NOTIF),
        ("label", "eperm"), ("ret", _RET_ERRNO | errno.EPERM),
        ("label", "enosys"), ("ret", _RET_ERRNO | errno.ENOSYS),
    ]
    return _assemble(code)


def _assemble(code: list[tuple]) -> bytes:
    """Classic BPF from (op, k) and (jump op, k, label if true, label if false; None: next)."""
    labels: dict[str, int] = {}
    instructions = []
    for item in code:
        if item[0] == "label":
            labels[item[1]] = len(instructions)
        else:
            instructions.append(item)
    opcodes = {"ld": 0x20, "jeq": 0x15, "jgt": 0x25, "jge": 0x35, "jset": 0x45, "ret": 0x06}
    out = b""
    for index, item in enumerate(instructions):
        op = item[0]
        if op in ("ld", "ret"):
            out += struct.pack("<HBBI", opcodes[op], 0, 0, item[1])
            continue
        _, k, true, false = item
        jumps = [0 if target is None else labels[target] - index - 1 for target in (true, false)]
        assert all(0 <= jump < 256 for jump in jumps), item
        out += struct.pack("<HBBI", opcodes[op], jumps[0], jumps[1], k)
    return out


class TestFilter:
    """The per-test filter, made ready once by the worker: a test process then only makes the
    system call that installs it (loading libc there would cost half a millisecond per test)."""

    def __init__(self, program: bytes) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._buffer = ctypes.create_string_buffer(program, len(program))
        self._fprog = _SockFprog(len(program) // 8, ctypes.cast(self._buffer, ctypes.c_void_p))
        self._pointer = ctypes.pointer(self._fprog)

    def start(self) -> int:
        """In the test process: install the filter; returns the watch's listener fd."""
        listener = self._libc.syscall(_SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER,
                                      _SECCOMP_FILTER_FLAG_NEW_LISTENER, self._pointer)
        if listener < 0:
            error = ctypes.get_errno()
            raise OSError(error, f"the memory watch could not start: {os.strerror(error)}")
        return listener


def test_filter() -> TestFilter | None:
    program = test_program()
    return None if program is None else TestFilter(program)


def answer_request(listener: int, limit_bytes: int) -> bool:
    """Serve one request of a watched process; True when it was refused for going over the limit.

    The process waits in its system call meanwhile. Its address space (``VmSize``, what
    ``RLIMIT_AS`` bounds) plus the new space it asks for decides; anything else (it died, an odd
    request) lets the kernel carry on as if unwatched.
    """
    request = bytearray(_NOTIF.size)
    try:
        fcntl.ioctl(listener, _NOTIF_RECV, request, True)
    except OSError:
        return False  # the process died before its request was read
    ident, pid, _, number, _, _, *args = _NOTIF.unpack(request)
    growth = args[1] if number == _NR_MMAP else args[2] - args[1]
    refused = growth > 0 and _address_space(pid) + _page_round(growth) > limit_bytes
    response = _RESPONSE.pack(ident, 0, -errno.ENOMEM if refused else 0, 0 if refused else _FLAG_CONTINUE)
    try:
        fcntl.ioctl(listener, _NOTIF_SEND, bytearray(response), True)
    except OSError:
        return False  # it died meanwhile: nothing was refused
    return refused


def _page_round(size: int) -> int:
    return (size + 4095) & ~4095


def _address_space(pid: int) -> int:
    """A process's ``VmSize`` in bytes (hugely negative if unreadable: the request goes on)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return -(1 << 62)
