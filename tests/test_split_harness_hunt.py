"""Hostile answers against the split assert harness (``assert_split.py``), run for real on the
embedded executor: each attack passed a computed-assert test without solving it before the fix
(by binding the test's builtins, by making the test's process import a file of the answer's, or by
handing the test values it could not send back, which asked for the in-process harness where the
cheats work). Honest answers of the kinds that used to fail split (generators, iterable classes,
``isinstance`` with the answer's classes, exceptions with args, attributes and classes of their own)
pass, judged split."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conftest import planting

import librarybench_common as common
import problem_kinds as kinds

LOOP = "def check(candidate):\n    for x in range(5):\n        assert candidate(x) == 7 * x + 3\n\ncheck(f)\n"
ALL = "assert all(f(x) == 7 * x + 3 for x in range(5))\n"
# HumanEval 38's shape: the test hands a result of one answer function to another
ROUND_TRIP = ("def check(candidate):\n    import random, string\n    for _ in range(5):\n"
              "        s = ''.join(random.choice(string.ascii_lowercase) for _ in range(10))\n"
              "        assert candidate(encode(s)) == s\n\ncheck(decode)\n")
HONEST_ROUND_TRIP = "def encode(s):\n    return s[::-1]\ndef decode(s):\n    return s[::-1]\n"
HONEST = "def f(n):\n    return 7 * n + 3\n"

# An __eq__ true only on its first call: the in-process harness's equality heuristic lets it pass.
LIAR = '''
class Liar:
    calls = 0
    def __eq__(self, other):
        Liar.calls += 1
        return Liar.calls == 1
    __hash__ = object.__hash__
def decode(s):
    Liar.calls = 0
    return Liar()
'''
# The answer rewrites the serving loop of its own process: it may send any reply it likes.
FORGE = '''
import sys
_frame = sys._getframe()
while _frame is not None and "_lb_serve" not in _frame.f_globals:
    _frame = _frame.f_back
if _frame is not None:
    _real = _frame.f_globals["_lb_serve"]
    def _forged(message, objects, encode, decode):
        reply = _real(message, objects, encode, decode)
        if reply.get("value") == ["str", "DEEP"]:
            value = ["int", "0"]
            for _ in range(230):  # deeper than the test's process sends
                value = ["list", [value]]
            reply["value"] = value
        return reply
    _frame.f_globals["_lb_serve"] = _forged
def encode(s):
    return "DEEP"
'''
# The answer adds a name its own process would filter (``__builtins__``) to the names being sent.
FORGED_BUILTINS = '''
import sys
_frame = sys._getframe()
while _frame is not None and "_lb_flush" not in _frame.f_globals:
    _frame = _frame.f_back
if _frame is not None:
    _real_flush = _frame.f_globals["_lb_flush"]
    def _inject():
        names = sys._getframe(1).f_locals.get("names")
        if isinstance(names, dict) and "empty" in names:
            names["__builtins__"] = ["dict", [[["str", "range"], names["empty"]]]]
        _real_flush()
    _frame.f_globals["_lb_flush"] = _inject
def empty(*a):
    return []
def f(n):
    return 0
'''
PLANT_TEST_FILE = planting("test_zz.py", "import types\n"
                                         "tool = types.ModuleType('unittest.__main__')\n")  # importing it discovers test_*.py


def run(executor: Any, code: str, test: str, timeout: float = 10) -> dict[str, Any]:
    [result] = asyncio.run(common.run_tests(code, [kinds.assert_test(test)], timeout=timeout, executor=executor))
    return result


def split_stdout(executor: Any, code: str, test: str) -> tuple[kinds.Lowered, str]:
    lowered = kinds.lower(code, kinds.assert_test(test))
    [raw] = asyncio.run(executor.run_tests(lowered.program, [lowered.stdio], timeout=10))
    return lowered, raw["exec_output"]["run_output"]["stdout"]


@pytest.mark.parametrize("code, test", [
    ("import builtins\ndel builtins.range\ndef range(*a):\n    return []\ndef f(n):\n    return 0\n", LOOP),
    ("import builtins\ndel builtins.all\ndef all(*a):\n    return True\ndef f(n):\n    return 0\n", ALL),
    (FORGED_BUILTINS, LOOP),
], ids=["range: the loop never runs", "all: a generator of the test's asks for the fallback",
        "__builtins__ put into the names sent"])
def test_the_answer_cannot_bind_the_tests_builtins(lb_local_executor: Any, code: str, test: str) -> None:
    """The answer's process filtered its names after the answer ran (it can remove ``range`` from
    builtins first); the test's process filters them itself."""
    assert kinds.literal_form(test) is None
    assert run(lb_local_executor, code, test)["verdict"] == "wrong_answer"
    assert run(lb_local_executor, HONEST, test)["verdict"] == "passed"


def test_the_answer_cannot_make_the_tests_process_import_its_files(lb_local_executor: Any) -> None:
    """A module of the answer's named ``unittest.__main__``: importing it in the test's process
    would discover the answer's ``test_zz.py`` in the work dir and run it there, next to the proof."""
    assert run(lb_local_executor, PLANT_TEST_FILE, LOOP)["verdict"] == "wrong_answer"


@pytest.mark.parametrize("code, test", [
    (LIAR + "import os\ndef encode(s):\n    return os\n", ROUND_TRIP),  # a module back to the answer
    (LIAR + FORGE, ROUND_TRIP),  # a list nested deeper than the test's process sends
    (LIAR.replace("def decode(s):", "def decode_(s):") + "import os\n"
     "def f(a):\n    if a and a[0] == 1:\n        a[:] = [os]\n        return 1\n    Liar.calls = 0\n    return Liar()\n",
     "def check(candidate):\n    a = [1, 2]\n    assert candidate(a) == 1\n    assert candidate(a) == 7 * len(a)\n\ncheck(f)\n"),
    (LIAR + "import numpy\nclass Arr:\n    def __array__(self, *a, **k):\n        return numpy.zeros(1)\n"
     "def f(n):\n    return Arr()\n",  # numpy asks the handle for __array__ and calls it with a dtype
     "import numpy\ndef check(candidate):\n    for x in range(3):\n        numpy.asarray(candidate(x), dtype=float)\n"
     "        assert decode(x) == 7 * x + 3\n\ncheck(f)\n"),
], ids=["module round trip", "forged deep value", "module put into the test's list", "numpy __array__"])
def test_values_the_answer_made_never_ask_for_the_in_process_harness(lb_local_executor: Any, code: str,
                                                                     test: str) -> None:
    """Only a value of the test's own that cannot be sent may ask for the in-process fallback;
    before, any of these made the test's process ask for it, and the liar passed there."""
    lowered, stdout = split_stdout(lb_local_executor, code, test)
    assert lowered.fallback not in stdout and lowered.proof not in stdout
    assert run(lb_local_executor, code, test)["verdict"] != "passed"


def test_an_honest_round_trip_still_passes_split(lb_local_executor: Any) -> None:
    lowered, stdout = split_stdout(lb_local_executor, HONEST_ROUND_TRIP, ROUND_TRIP)
    assert lowered.proof in stdout and lowered.fallback not in stdout


HONEST_KINDS = '''import collections, copy
class Oops(ValueError):
    def __init__(self, code):
        super().__init__(code, "bad")
        self.code = code
class Bag:
    def __init__(self, n):
        self.items = list(range(n))
    def __iter__(self):
        return iter(self.items)
    def __len__(self):
        return len(self.items)
    def __lt__(self, other):
        return len(self) < len(other)
    def __eq__(self, other):
        return isinstance(other, Bag) and self.items == other.items
    __hash__ = None
def gen(n):
    yield from range(n)
def fail(code):
    raise Oops(code)
def lookup(d):
    return d["k"]
def total(xs):
    return sum(xs)
def queue(n):
    return collections.deque(range(n))
'''
HONEST_KINDS_TEST = '''import copy
def check():
    assert list(gen(3)) == list(range(3)) and sum(gen(4)) == 6
    assert list(Bag(3)) == [0, 1, 2] and len(Bag(2)) == 2 and Bag(2) and not Bag(0)
    assert isinstance(Bag(1), Bag) and not isinstance(3, Bag)
    assert Bag(2) == Bag(2) and Bag(1) != Bag(2) and sorted([Bag(3), Bag(1)])[0] == Bag(1)
    b = Bag(1)
    b.items = [5, 6]
    assert list(b) == [5, 6] and list(copy.deepcopy(b)) == [5, 6]
    try:
        fail(4)
    except Oops as e:
        assert e.args == (4, "bad") and e.code == 4 and isinstance(e, ValueError)
    else:
        raise RuntimeError("no error")
    try:
        lookup({})
    except KeyError as e:
        assert str(e) == repr("k")
    assert total(range(5)) == 10  # a range of the test's crosses as one
    assert list(queue(3)) == [0, 1, 2]
check()
'''


def test_honest_answers_of_many_kinds_pass_split(lb_local_executor: Any) -> None:
    """Generators, deques and iterable classes are iterated through their handle; ``isinstance``,
    truth, ``len``, attribute writes, ``deepcopy`` and comparisons between two of the answer's
    objects are the answer's; an exception keeps its args, attributes and class (``except Oops``)."""
    assert kinds.literal_form(HONEST_KINDS_TEST) is None
    lowered, stdout = split_stdout(lb_local_executor, HONEST_KINDS, HONEST_KINDS_TEST)
    assert lowered.proof in stdout and lowered.fallback not in stdout, stdout


@pytest.mark.parametrize("code, test, verdict", [
    ("import collections\nP = collections.namedtuple('P', 'x y')\ndef f(n):\n    return P(n, n)\n",
     "assert f(2).x == int('2')\n", "runtime_error"),  # a namedtuple crosses as a tuple: AttributeError
    ("count = 0\ndef f(n):\n    global count\n    count += 1\n    return n\n",
     "f(1)\nassert count == int('1')\n", "wrong_answer"),  # the answer's globals are a copy taken when it loaded
], ids=["namedtuple field", "global read after a call"])
def test_documented_differences_from_one_process(lb_local_executor: Any, code: str, test: str, verdict: str) -> None:
    """The README's "Differences from running the test in the answer's namespace" (update it if
    one of these starts to pass): judged split, as the difference, not as a crash of the harness."""
    result = run(lb_local_executor, code, test)
    assert result["verdict"] == verdict and result["harness"] == "split", result


STEER_BY_MODULE = "import collections\n" + LIAR.split("def decode")[0] + "def f(x):\n    return collections if x == 1 else Liar()\n"


def test_a_module_the_answer_returns_cannot_steer_the_test_into_one_process(lb_local_executor: Any) -> None:
    """The answer returns a module; the test hands one of its classes back (HumanEval 38's
    ``candidate(encode(s))`` shape). Sent by name, it needs no fallback, so the one-shot liar that
    passes in one process is compared split, and fails."""
    test = "m = f(1)\nassert f(m.OrderedDict) == int('0')\n"
    result = run(lb_local_executor, STEER_BY_MODULE, test)
    assert result["verdict"] == "wrong_answer" and result["harness"] == "split", result
