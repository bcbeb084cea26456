"""Verdict integrity: no program passes on another's work, and no test changes another's result.

Each test here is a hostile program of the kind a reward-hacking model writes, run on the real
embedded executor under bubblewrap, followed by a benign program that must still pass.
"""

from __future__ import annotations

import time

import pytest

import sandbox_cgroups
import sandbox_policy
from conftest import bwrap_or_skip
from sandbox import LocalExecutor, SandboxLimits

ECHO = "print(input())"
SANITY = {"stdin": "ping\n", "stdout": "ping"}




def stdout_of(result) -> str:
    return result["exec_output"]["run_output"]["stdout"]


# Scans every readable mapping of its own memory (a fork of the worker) for the victim's markers;
# the pattern below does not match itself (a kind name must follow the prefix directly).
THIEF = r"""
import ctypes, re
pattern = re.compile(rb"ZQXJ(?:SRC|INP|OUT|EXP)[0-9]{6}")
found = set()
regions = []
with open('/proc/self/maps') as maps:
    for line in maps:
        fields = line.split()
        if not fields[1].startswith('r') or len(fields) > 5 and fields[5] in ('[vvar]', '[vsyscall]', '[vvar_vclock]'):
            continue
        start, end = (int(x, 16) for x in fields[0].split('-'))
        regions.append((start, end))
for start, end in regions:  # read directly: a fork of the worker is all in this address space
    chunk = ctypes.string_at(start, end - start)
    found.update(m.decode() for m in pattern.findall(chunk))
print(sorted(found))
"""


def test_a_program_finds_nothing_of_earlier_programs_in_its_memory(one_worker):
    """The answer thief: after another model's program ran on the same worker, nothing of its
    source, its input, its output or its expected output is in the thief's memory (which is a
    fork of the worker's)."""
    victim = "# ZQXJSRC314159\nprint(input() + ' ' + 'ZQXJ' + 'OUT' + '271828')\n"
    test = {"stdin": "ZQXJINP161803\n", "stdout": "ZQXJINP161803 ZQXJOUT271828 ZQXJEXP141421"}
    result = one_worker.run_test(victim, test)
    assert stdout_of(result).strip() == "ZQXJINP161803 ZQXJOUT271828"
    for _ in range(2):  # whichever order the runs took, the worker has seen the victim
        stolen = one_worker.run_test(THIEF, {"stdin": "", "stdout": "[]"})
        assert stolen["verdict"] == "passed", stolen["exec_output"]["run_output"]
    assert one_worker.run_test(ECHO, SANITY)["verdict"] == "passed"


IPC_WRITER = """
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(result):
    return 'ok' if result >= 0 else errno.errorcode[ctypes.get_errno()]
print('shm', errno_of(libc.shmget(0x1234, 4096, 0o1666)))
print('msg', errno_of(libc.msgget(0x1234, 0o1666)))
print('sem', errno_of(libc.semget(0x1234, 1, 0o1666)))
print('mq', errno_of(libc.mq_open(b'/leak', os.O_CREAT | os.O_RDWR, 0o666, None)))
print('key', errno_of(libc.syscall(248, b'user', b'leak', b'secret', 6, -4)))
print('unshare', errno_of(libc.unshare(0x10000000)))
print('io_uring', errno_of(libc.syscall(425, 1, ctypes.create_string_buffer(120))))
"""


def test_ipc_and_keyrings_are_denied_so_nothing_crosses_tests(one_worker):
    """SysV IPC, POSIX message queues and keyrings outlived tests and let a later program read
    what an earlier one left: the seccomp filter denies them (EPERM), as it does new namespaces
    and io_uring; the next program, reading the same keys, finds nothing."""
    writer = one_worker.run_test(IPC_WRITER, {"stdin": "", "stdout": ""})
    lines = dict(line.split() for line in stdout_of(writer).splitlines())
    assert lines == {"shm": "EPERM", "msg": "EPERM", "sem": "EPERM", "mq": "EPERM",
                     "key": "EPERM", "unshare": "EPERM", "io_uring": "EPERM"}, writer
    assert "seccomp filter" in one_worker.isolation
    assert one_worker.run_test(ECHO, SANITY)["verdict"] == "passed"


def test_multiprocessing_and_threads_still_work(one_worker):
    """What the filter denies, ordinary programs never need: a process pool and threads run."""
    pool = ("import multiprocessing as mp, threading\n"
            "if __name__ == '__main__':\n"
            "    with mp.Pool(2) as p:\n        print(sum(p.map(abs, [1, -2, 3])))\n"
            "    t = [threading.Thread(target=lambda: None) for _ in range(20)]\n"
            "    [x.start() for x in t]; [x.join() for x in t]\n")
    assert one_worker.run_test(pool, {"stdin": "", "stdout": "6"})["verdict"] == "passed"


def cgroups_or_skip() -> None:
    plan = sandbox_cgroups.find_plan()
    sandbox_cgroups.remove_parents(plan)
    if plan.unavailable:
        pytest.skip(f"no per-worker cgroups here: {plan.unavailable}")


HOG = """
import os
kids = []
for _ in range(5):
    pid = os.fork()
    if pid == 0:
        block = bytearray(700 * 2**20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        os._exit(0)
    kids.append(pid)
print('yes' if all(os.waitpid(p, 0)[1] == 0 for p in kids) else 'no')
"""


def test_memory_summed_over_processes_is_limited(one_worker):
    """Five processes of 700 MB each, each within its own rlimit: 3.5 GB in all. The worker's
    cgroup holds the whole test to its memory limit and the verdict is ``memory_limit``."""
    cgroups_or_skip()
    result = one_worker.run_test(HOG, {"stdin": "", "stdout": "yes"})
    assert result["verdict"] == "memory_limit", result["exec_output"]
    assert "cgroup v" in one_worker.isolation
    assert one_worker.run_test(ECHO, SANITY)["verdict"] == "passed"


SPINNER = """
import os, time
for _ in range(30):
    if os.fork() == 0:
        os.setsid()
        while True:
            pass
time.sleep(30)
"""
BENIGN_WORK = "n = 0\nfor i in range(3_000_000):\n    n += i\nprint(n > 0)\n"


async def test_a_cpu_spinner_cannot_starve_the_test_beside_it():
    """30 spinning descendants (each after setsid) on one worker used to starve the test on the
    other worker into a timeout. With a CPU quota per worker the benign test keeps its core."""
    bwrap_or_skip()
    cgroups_or_skip()
    import asyncio
    with LocalExecutor(workers=2, isolation="bwrap", limits=SandboxLimits(timeout=60)) as executor:
        alone = executor.run_test(BENIGN_WORK, {"stdin": "", "stdout": "True"})
        assert alone["verdict"] == "passed"
        base = alone["exec_output"]["run_output"]["elapsed_time"]
        spin = asyncio.create_task(executor.run_tests(SPINNER, [{"stdin": "", "stdout": ""}], timeout=8))
        await asyncio.sleep(1.5)
        beside = await asyncio.to_thread(executor.run_test, BENIGN_WORK, {"stdin": "", "stdout": "True"})
        [spun] = await spin
    assert spun["verdict"] == "timeout"
    assert beside["verdict"] == "passed"
    # Without the quota the benign test gets about 2/31 of the machine: over 10x slower.
    assert beside["exec_output"]["run_output"]["elapsed_time"] < 4 * base + 1.0, (base, beside)


def test_a_deep_directory_tree_does_not_break_the_worker(one_worker):
    """A tree of 1,500 levels used to crash the worker's clean-up (RecursionError): a correct
    program was reported ``runtime_error`` and workers died. Now it is removed, and the worker
    goes on serving."""
    deep = "import os\nfor _ in range(1500):\n    os.mkdir('d'); os.chdir('d')\nprint(input())\n"
    [before] = [h.proc.pid for h in one_worker._all]
    assert one_worker.run_test(deep, SANITY)["verdict"] == "passed"
    assert one_worker.run_test(ECHO, SANITY)["verdict"] == "passed"
    assert [h.proc.pid for h in one_worker._all] == [before]


def test_processes_killed_after_a_test_do_not_count_against_the_next(one_worker):
    """A program that leaves 60 processes behind, then a legal 48-thread pool: the pool used to
    fail when the dying processes still counted against the thread limit."""
    leaver = ("import os, time\nfor _ in range(60):\n    if os.fork() == 0:\n"
              "        time.sleep(100)\nprint('left')\n")
    pool = ("import threading\nt = [threading.Thread(target=lambda: None) for _ in range(48)]\n"
            "[x.start() for x in t]; [x.join() for x in t]\nprint('ok')\n")
    for _ in range(3):
        one_worker.run_test(leaver, {"stdin": "", "stdout": "left"})
        result = one_worker.run_test(pool, {"stdin": "", "stdout": "ok"})
        assert result["verdict"] == "passed", result["exec_output"]


def test_a_program_cannot_fake_a_timeout(one_worker):
    """``timeout`` needs the limit to have been reached: a SIGXCPU or SIGKILL the program sends
    itself at once, text that reads like a timeout, the exit status of ``timeout(1)`` are all
    runtime errors. A real CPU-bound loop still gets ``timeout``."""
    fakes = [
        "import os, signal\nos.kill(os.getpid(), signal.SIGXCPU)\n",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
        "import sys\nprint('Time limit exceeded')\nprint('TimeoutError: timed out', file=sys.stderr)\n"
        "sys.exit(124)\n",
        "raise TimeoutError('execution timed out')\n",
    ]
    for fake in fakes:
        result = one_worker.run_test(fake, SANITY)
        assert result["verdict"] == "runtime_error", (fake, result["exec_output"])
        assert result["exec_output"]["run_output"]["timeout_expired"] is False
    start = time.monotonic()
    real = one_worker.run_test("while True:\n    pass\n", SANITY, timeout=1.0)
    assert real["verdict"] == "timeout" and time.monotonic() - start < 30


def test_invalid_bytes_do_not_inflate_the_result(one_worker):
    """Output of invalid UTF-8 just under the cap decodes to three bytes a byte: the decoded
    text is capped in bytes too."""
    cap = one_worker.limits.output_bytes
    flood = f"import sys\nsys.stdout.buffer.write(b'\\xff' * {cap - 10})\n"
    result = one_worker.run_test(flood, SANITY)
    assert len(stdout_of(result).encode()) <= cap
    assert result["verdict"] == "wrong_answer"


def test_a_parent_directory_env_cannot_weaken_isolation(tmp_path, monkeypatch):
    """A ``.env`` in some parent directory may set keys and URLs, but not the isolation: that
    comes only from the command line, the environment or the project's own ``.env``."""
    import librarybench_common as common
    (tmp_path / ".env").write_text("LIBRARYBENCH_ISOLATION=none\nLB_INTEGRITY_PROBE=loaded\n")
    workdir = tmp_path / "some" / "where"
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    monkeypatch.delenv("LIBRARYBENCH_ISOLATION", raising=False)
    monkeypatch.delenv("LB_INTEGRITY_PROBE", raising=False)
    with pytest.warns(RuntimeWarning, match="LIBRARYBENCH_ISOLATION ignored"):
        assert common.load_env() == str(tmp_path / ".env")
    import os
    assert "LIBRARYBENCH_ISOLATION" not in os.environ
    assert os.environ["LB_INTEGRITY_PROBE"] == "loaded"


FAKE_MEMORY_ERRORS = [
    "raise MemoryError\n",
    "raise MemoryError('Unable to allocate 8.00 GiB')\n",
    "import sys\nprint('Traceback (most recent call last):\\n  File \"main.py\"\\nMemoryError',"
    " file=sys.stderr)\nsys.exit(1)\n",
    "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    # real memory use, well inside the limit, then the claim
    "x = bytearray(300 * 2**20)\nfor i in range(0, len(x), 4096):\n    x[i] = 1\nraise MemoryError\n",
]


def test_a_program_cannot_fake_a_memory_limit(one_worker):
    """``memory_limit`` needs evidence from outside the program: a request refused because it
    would take the address space over the limit (the memory watch), or the cgroup's memory
    controller. A MemoryError raised or printed by the program itself, or a SIGKILL it sends
    itself, is a runtime error; real exhaustion of every kind still gets ``memory_limit``, and a
    MemoryError the program catches is no failure at all."""
    for fake in FAKE_MEMORY_ERRORS:
        result = one_worker.run_test(fake, SANITY)
        assert result["verdict"] == "runtime_error", (fake, result["exec_output"])
    real = [
        "x = bytearray(4 * 1024 ** 3)\nprint(len(x))\n",  # one request over the limit
        "a = np.ones((1 << 16, 1 << 14))\nprint(a.sum())\n",  # numpy's _ArrayMemoryError
        "x = []\nwhile True:\n    x.append(' ' * 100_000)\n",  # many requests, the last one fails
    ]
    for code in real:
        result = one_worker.run_test(code, SANITY)
        assert result["verdict"] == "memory_limit", (code, result["exec_output"])
    caught = "try:\n    x = bytearray(4 * 1024 ** 3)\nexcept MemoryError:\n    print('ping')\n"
    assert one_worker.run_test(caught, SANITY)["verdict"] == "passed"
    assert one_worker.run_test(ECHO, SANITY)["verdict"] == "passed"


def test_a_program_cannot_fake_an_output_limit_or_lower_its_limits(one_worker):
    """SIGXCPU and SIGXFSZ cannot be sent by the program, and RLIMIT_CPU and RLIMIT_FSIZE
    cannot be lowered (a program lowering them would get the kernel's signal cheaply): each
    attempt fails with EPERM. Other limits (the stack, as recursive solutions raise it) stay
    free, and a real flood still gets ``output_limit``."""
    probe = (
        "import os, resource, signal\n"
        "out = []\n"
        "for sig in (signal.SIGXFSZ, signal.SIGXCPU):\n"
        "    try:\n"
        "        os.kill(os.getpid(), sig)\n"
        "        out.append('sent')\n"
        "    except PermissionError:\n"
        "        out.append('EPERM')\n"
        "for res in (resource.RLIMIT_FSIZE, resource.RLIMIT_CPU):\n"
        "    try:\n"
        "        resource.setrlimit(res, (1, 1))\n"
        "        out.append('lowered')\n"
        "    except (PermissionError, ValueError):\n"
        "        out.append('EPERM')\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_STACK)\n"
        "resource.setrlimit(resource.RLIMIT_STACK, (min(hard, 64 * 2**20) if hard > 0 else 64 * 2**20, hard))\n"
        "print(' '.join(out))\n"
    )
    result = one_worker.run_test(probe, {"stdin": "", "stdout": "EPERM EPERM EPERM EPERM"})
    assert result["verdict"] == "passed", result["exec_output"]
    fake = "import os, signal\nos.kill(os.getpid(), signal.SIGXFSZ)\nos.kill(os.getpid(), signal.SIGKILL)\n"
    assert one_worker.run_test(fake, SANITY)["verdict"] == "runtime_error"
    flood = "import sys\nsys.stdout.write('x' * 5_000_000)\n"
    assert one_worker.run_test(flood, SANITY)["verdict"] == "output_limit"
    assert one_worker.run_test(ECHO, SANITY)["verdict"] == "passed"


SYSV = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.shmget(0, 4096, 0o600), ctypes.get_errno())\n")


def test_the_fallback_installs_the_same_filters(recwarn):
    """Without bubblewrap the worker installs the deny filter itself, and its test processes get
    the per-test filter: SysV IPC is denied (EPERM), a faked MemoryError is a runtime error, a
    real one is ``memory_limit``, and ``.isolation`` says which filters are on."""
    if sandbox_policy.seccomp_program() is None:
        pytest.skip(f"no seccomp filter can be built here: {sandbox_policy.seccomp_missing()}")
    with LocalExecutor(workers=1, isolation="none") as executor:
        assert executor.run_test(SYSV, {"stdin": "", "stdout": "-1 1"})["verdict"] == "passed"
        isolation = executor.isolation
        assert isolation.startswith("fallback") and "; seccomp filter (SysV IPC" in isolation
        assert "per-test filter (memory requests" in isolation
        assert executor.run_test("raise MemoryError\n", SANITY)["verdict"] == "runtime_error"
        real = executor.run_test("x = bytearray(4 * 1024 ** 3)\n", SANITY)
        assert real["verdict"] == "memory_limit", real["exec_output"]
        assert executor.run_test(ECHO, SANITY)["verdict"] == "passed"
