"""The third verdict hunt: hostile programs aimed at the toolkit's judging and at the sandbox's
verdict evidence, run for real on the embedded executor (bubblewrap), each followed by a benign
program that must still pass.

Holes this hunt found (each test failed before its fix):
- a value or a traceback line holding an integer of more than 4300 digits made the toolkit's own
  ``int()``/``ascii()`` raise while judging or writing feedback, and an integer past the largest
  float returned where a float was expected made ``float()`` overflow: a wrong answer became an
  error of the run (left out of pass@k), or crashed the feedback of the whole run;
- memory that no process maps (memfds) got the worker itself killed by its cgroup: a
  ``runtime_error`` after two restarts instead of ``memory_limit``;
- a SIGXFSZ the kernel delivers for the program (a timer's signal, a clone's exit signal) passed
  for the output limit.
The others cover attacks that were already contained but that no earlier test tried.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import judges
import literal_asserts
import librarybench_common as common
import problem_kinds as kinds
import sandbox_cgroups
from conftest import bwrap_or_skip

ECHO = "print(input())"
SANITY = {"stdin": "ping\n", "stdout": "ping"}
HUGE = "9" * 5000  # past int()'s 4300-digit limit for decimal text




def run(executor: Any, code: str, test: Any, **options: Any) -> dict[str, Any]:
    [result] = asyncio.run(common.run_tests(code, [test], timeout=10, executor=executor, **options))
    return result


def assert_still_works(executor: Any) -> None:
    assert run(executor, ECHO, SANITY)["verdict"] == "passed"


@pytest.mark.parametrize("returned", ["10 ** 5000", "[[-10 ** 5000, 1]]", "{1: (10 ** 5000,)}"])
def test_a_huge_integer_left_side_is_a_wrong_answer_not_an_error(one_worker, returned):
    """``assert f(2) == 17`` (compared outside) with f returning an integer of 5000 digits, alone
    or inside a container: the toolkit's ``ascii()`` of the returned value raised ValueError, so
    the test ended as an ``ExecutionError`` (an error of the run, never counted against the
    answer) instead of ``wrong_answer``."""
    result = run(one_worker, f"def f(n):\n    return {returned}\n", kinds.assert_test("assert f(2) == 17\n"))
    assert result["verdict"] == "wrong_answer", result
    assert "4300 digits" in result["returned"]
    honest = run(one_worker, "def f(n):\n    return 10 ** 5000 // 10 ** 5000 + 7 * n + 2\n",
                 kinds.assert_test("assert f(2) == 17\n"))
    assert honest["verdict"] == "passed", honest


@pytest.mark.parametrize("returned", ["10 ** 400", "[10 ** 400]", "-(10 ** 4200)"])
def test_an_integer_past_the_largest_float_is_a_wrong_answer_of_a_call_test(one_worker, returned):
    """A call test expecting a float (2.5) and an answer returning an integer too large for any
    float: ``values_match``'s ``math.isnan`` raised OverflowError in the toolkit, an error of the
    run instead of ``wrong_answer``. Floats still compare within the tolerance."""
    wrong = run(one_worker, f"def f(x):\n    return {returned}\n", kinds.call_test("f", [1], [2.5] if "[" in returned else 2.5))
    assert wrong["verdict"] == "wrong_answer", wrong
    close = run(one_worker, "def f(x):\n    return 2.5 + 1e-12\n", kinds.call_test("f", [1], 2.5))
    assert close["verdict"] == "passed", close


def test_an_expected_integer_of_4001_to_4300_digits_can_be_matched(one_worker):
    """Not an attack: the toolkit decodes returned integers of more than 4000 digits as their
    digits (``BigDigits``), while an expected value of up to 4300 digits loads as an ``int``; the
    two never matched, so an honest answer failed. They are compared as digits now."""
    expected = int("7" * 4100)
    honest = run(one_worker, "def f(x):\n    return int('7' * 4100)\n", kinds.call_test("f", [1], expected))
    assert honest["verdict"] == "passed", honest["reason"]
    off = run(one_worker, "def f(x):\n    return int('7' * 4099 + '8')\n", kinds.call_test("f", [1], expected))
    assert off["verdict"] == "wrong_answer"


LIAR = ("class E:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
        "def f(n):\n    return E()\n")


@pytest.mark.parametrize("test", ["assert (f(2) == 17) == True\n", "assert (f(2) in [17, 18]) == True\n",
                                  "assert (f(2) != 17) == False\n"])
def test_a_comparison_inside_the_probed_side_cannot_be_fooled(one_worker, test):
    """Contained (tried by this hunt on an older tree, where ``assert (f(2) == 17) == True`` was
    judged "outside" although its inner ``==`` ran in the program and an always-true ``__eq__``
    passed it): the probed side must be the answer's own result, so such asserts run split, where
    the answer's object is a handle that equals only itself. Honest answers still pass."""
    assert literal_asserts.literal_form(test) is None
    assert literal_asserts.literal_form("assert f(2) == 17\n") is not None
    assert run(one_worker, LIAR, kinds.assert_test(test))["verdict"] == "wrong_answer"
    assert run(one_worker, "def f(n):\n    return 7 * n + 3\n", kinds.assert_test(test))["verdict"] == "passed"
    assert run(one_worker, "def f(n):\n    return 0\n", kinds.assert_test(test))["verdict"] == "wrong_answer"


FAKE_TRACEBACK = ("import sys\nsys.stderr.write('Traceback (most recent call last):\\n  File \"{file}\", "
                  "line ' + '9' * 5000 + ', in <module>\\n    x\\nValueError: x\\n')\n")


def test_a_traceback_line_number_past_the_digit_limit_breaks_nothing(one_worker):
    """A program writing ``File "test.py", line 999...9`` (5000 digits) to stderr crashed the
    literal-form judge (its traceback rewrite called ``int()``); ``File "main.py", line 999...9``
    crashed ``format_feedback``, i.e. the whole ``model_feedback`` run. Now the first is the
    answer's wrong answer and the second a runtime error with its feedback."""
    answer = FAKE_TRACEBACK.format(file="test.py") + "def f(n):\n    return 0\n"
    result = run(one_worker, answer, kinds.assert_test("assert f(2) == 17\n"))
    assert result["verdict"] == "wrong_answer", result
    program = FAKE_TRACEBACK.format(file="main.py") + "sys.exit(1)\n"
    tests = [SANITY]
    results = asyncio.run(common.run_tests(program, tests, timeout=10, executor=one_worker))
    assert results[0]["verdict"] == "runtime_error"
    feedback = common.format_feedback(results, tests, 0, 1)
    assert "FAILED (runtime_error)" in feedback and "ValueError: x" in feedback
    assert_still_works(one_worker)


def test_the_float_judge_compares_integers_of_any_length(one_worker):
    """``--judge float`` compares integer tokens exactly with ``int()``: a 5000-digit token in the
    program's output raised ValueError and the test became an error of the run."""
    wrong = run(one_worker, f"print('{HUGE}')", {"stdin": "", "stdout": "5"}, judge=judges.get_judge("float"))
    assert wrong["verdict"] == "wrong_answer", wrong
    right = run(one_worker, f"print('{HUGE}')", {"stdin": "", "stdout": "+000" + HUGE},
                judge=judges.get_judge("float"))
    assert right["verdict"] == "passed", right
    same = judges.get_judge("float").compare
    assert not same(HUGE, "-" + HUGE, SANITY)[0]
    assert same("-0" + HUGE, "-" + HUGE, SANITY)[0]
    assert same("12", "+012", SANITY)[0] and not same("12", "13", SANITY)[0]


def cgroups_or_skip() -> None:
    plan = sandbox_cgroups.find_plan()
    sandbox_cgroups.remove_parents(plan)
    if plan.unavailable:
        pytest.skip(f"no per-worker cgroups here: {plan.unavailable}")


MEMFD_HOG = """
import os
chunk = b'x' * (1 << 20)
fds = []
for _ in range(1500):  # 1.5 GB that no process maps: outside RLIMIT_AS, inside the cgroup
    fd = os.memfd_create('m')
    os.write(fd, chunk)
    fds.append(fd)
print(input())
"""


def test_memory_in_memfds_is_a_memory_limit(one_worker):
    """Memfds count in the worker's cgroup but in no process's RSS, so the memory controller
    kills the biggest process there: the worker. That used to be retried on two fresh workers
    and end as ``runtime_error``; it is ``memory_limit`` at once, and the seat's next test runs
    on a fresh worker."""
    cgroups_or_skip()
    result = one_worker.run_test(MEMFD_HOG, SANITY)
    assert result["verdict"] == "memory_limit", result["exec_output"]
    assert "memory controller" in result["exec_output"]["run_output"]["stderr"]
    assert one_worker.run_test(ECHO, SANITY)["verdict"] == "passed"


TIMER_SIGNAL = """
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
class Event(ctypes.Structure):
    _fields_ = [("value", ctypes.c_void_p), ("signo", ctypes.c_int), ("notify", ctypes.c_int),
                ("pad", ctypes.c_byte * 48)]
timer = ctypes.c_void_p()
assert libc.timer_create(1, ctypes.byref(Event(None, SIGNUM, 0)), ctypes.byref(timer)) == 0  # SIGEV_SIGNAL
assert libc.timer_settime(timer, 0, ctypes.byref((ctypes.c_long * 4)(0, 0, 0, 1000)), None) == 0
time.sleep(2)
"""
CLONE_EXIT_SIGNAL = """
import ctypes, os, time
pid = ctypes.CDLL(None).syscall(56, 25, 0, 0, 0, 0)  # clone(exit signal SIGXFSZ): the parent gets it
if pid == 0:
    os._exit(0)
time.sleep(2)
"""


def test_a_signal_the_kernel_sends_for_the_program_is_no_limit(one_worker):
    """The per-test filter stops ``kill(self, SIGXFSZ)``, but a POSIX timer or a clone's exit
    signal has the kernel deliver SIGXFSZ or SIGXCPU for the program. SIGXFSZ then gave
    ``output_limit`` with no output at all; it now needs a file past the cap (stdout, stderr, a
    file in the work dir or ``/dev/shm``). SIGXCPU from a timer was already no ``timeout`` (the
    CPU limit must have been used up). Real limits keep their verdicts."""
    for fake in (TIMER_SIGNAL.replace("SIGNUM", "25"), CLONE_EXIT_SIGNAL, TIMER_SIGNAL.replace("SIGNUM", "24")):
        result = one_worker.run_test(fake, SANITY)
        run_output = result["exec_output"]["run_output"]
        assert result["verdict"] == "runtime_error", (fake, run_output)
        assert run_output["exit_code"] in (-24, -25) and not run_output["timeout_expired"]
    cap = one_worker.limits.output_bytes
    for place in ("big.txt", "/dev/shm/big.txt"):
        writer = f"with open('{place}', 'w') as fh:\n    fh.write('x' * {cap + 100})\n"
        result = one_worker.run_test(writer, SANITY)
        assert result["verdict"] == "output_limit", (place, result["exec_output"])
    assert one_worker.run_test("print('x' * 2_000_000)", SANITY)["verdict"] == "output_limit"
    assert one_worker.run_test(ECHO, SANITY)["verdict"] == "passed"


LEAVER = r"""
import os, socket
os.setpriority(os.PRIO_USER, 0, 19)  # every process of this uid, the one the next test runs as
server = socket.socket(socket.AF_UNIX)
server.bind('\0lb-hunt3'); server.listen()
os.mkfifo('/dev/shm/fifo')
socket.socket(socket.AF_UNIX).bind('/dev/shm/sock')
os.makedirs('/dev/shm/d/e'); open('/dev/shm/d/e/secret', 'w').write('left')
os.chmod('/dev/shm/d/e', 0); os.chmod('/dev/shm/d', 0)
for i in range(70):  # /dev/shm (64 MB) full, each file under the output cap
    try:
        with open(f'/dev/shm/f{i}', 'wb') as fh:
            fh.write(b'x' * 900_000)
    except OSError:
        break
if os.fork() == 0:
    os.setsid()
    while True:
        connection, _ = server.accept()
        connection.send(b'left')
print(input())
"""
FINDER = r"""
import os, socket
print(sorted(os.listdir('/proc/self/fd')))
probe = socket.socket(socket.AF_UNIX)
try:
    probe.connect('\0lb-hunt3')
    print('socket', probe.recv(10))
except OSError:
    pass
print(sorted(os.listdir('/dev/shm')), os.statvfs('/dev/shm').f_bfree == os.statvfs('/dev/shm').f_blocks)
print(os.getpriority(os.PRIO_PROCESS, 0))
print(input())
"""


def test_nothing_a_test_leaves_in_dev_shm_or_as_a_socket_reaches_the_next(one_worker):
    """Contained already, not tried before: a daemon serving an abstract unix socket, a FIFO, a
    bound socket file, a mode-000 directory holding a file, a full ``/dev/shm``, and nice 19 for
    every process of the test's uid (the next test's too). The next program finds no socket to
    connect to, an empty ``/dev/shm`` with all its space, its usual priority, and no file
    descriptor besides its stdio (``/proc/self/fd`` lists its own listing's descriptor too)."""
    assert one_worker.run_test(LEAVER, SANITY)["verdict"] == "passed"
    found = one_worker.run_test(FINDER, {"stdin": "ping\n", "stdout": "['0', '1', '2', '3']\n[] True\n0\nping"})
    assert found["verdict"] == "passed", found["exec_output"]["run_output"]
