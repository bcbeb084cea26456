"""Hostile answers against assert tests (the attacks of the verdict hunt, H1..H6), run for real on
the embedded executor: an MBPP-shaped test of ``assert f(x) == <literal>`` lines is compared outside
the program and each attack fails; a HumanEval-style check that is not of that form still runs in
the answer's process, and the attacks that remain possible there are marked (the README's "How
assert tests run" says so). Honest answers of many types still pass."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conftest import planting

import librarybench_common as common
import problem_kinds as kinds

# f(n) = 7n + 3: 17, 38, 3 (the hunt's MBPP task 1), one test per test_list line as the loader makes
MBPP = ["assert f(2) == 17\n", "assert f(5) == 38\n", "assert f(0) == 3\n"]
# not the literal form: the expected value is computed, so the in-process harness runs it
NOT_LITERAL = "def check(candidate):\n    assert candidate(2) == int('17')\n    assert candidate(5) == int('38')\n\ncheck(f)\n"
TOLERANCE = "def check(candidate):\n    assert abs(candidate(2) - 17) < 1e-6\n\ncheck(f)\n"
# the same check in a loop: not a form the toolkit judges outside, so the in-process harness runs it
LOOP_TOLERANCE = "def check(candidate):\n    for _ in [0]:\n        assert abs(candidate(2) - 17) < 1e-6\n\ncheck(f)\n"
OWN_SUB = "class A(float):\n    def __sub__(self, other):\n        return 0.0\ndef f(n):\n    return A(0)\n"

FORK_SPY = '''import os, pickle
def f(n):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        class Spy:
            def _leak(self, other, *rest):
                os.write(w, pickle.dumps(other))
                os._exit(0)
            __eq__ = __ne__ = __sub__ = __rsub__ = _leak
            __hash__ = object.__hash__
        return Spy()
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.waitpid(pid, 0)
    value = pickle.loads(data)
    return 17 if isinstance(value, float) else value  # abs(L - 17): the spy received 17 from __rsub__
'''
READ_LINECACHE = '''import ast, linecache
def f(n):
    src = "".join(linecache.cache["test.py"][2])
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Call):
            if [ast.literal_eval(a) for a in node.left.args] == [n]:
                return ast.literal_eval(node.comparators[0])
'''
READ_MAIN_PY = '''import ast, re
def f(n):
    src = open("main.py").read()
    test = ast.literal_eval(re.search(r"^_LB_TEST = (.*)$", src, re.M).group(1))
    for node in ast.walk(ast.parse(test)):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Call):
            if [ast.literal_eval(a) for a in node.left.args] == [n]:
                return ast.literal_eval(node.comparators[0])
'''
READ_ANYWHERE = '''import linecache, os
def f(n):
    seen = "".join("".join(e[2]) for e in list(linecache.cache.values()) if e[2])
    for name in os.listdir("."):
        try:
            seen += open(name).read()
        except OSError:
            pass
    needles = ("== " + str(16 + 1), "== " + "int('" + str(16 + 1))  # not spelled out in this source
    return 16 + 1 if any(needle in seen for needle in needles) else 0
'''
ONE_SHOT_LIAR = '''class Liar:
    calls = 0
    def __eq__(self, other):
        Liar.calls += 1
        return Liar.calls == 1
    __hash__ = object.__hash__
def f(n):
    Liar.calls = 0
    return Liar()
'''
RAISE_ON_OBJECT = '''class L2:
    def __eq__(self, other):
        if type(other) is object:
            raise TypeError("no")
        return True
    __hash__ = object.__hash__
def f(n):
    return L2()
'''
PATCH_EXEC = '''import builtins
_real = builtins.exec
def _fake(code, *a, **k):
    if getattr(code, "co_filename", None) == "test.py":
        return None
    return _real(code, *a, **k)
builtins.exec = _fake
def f(n):
    return 0
'''
PATCH_COMPILE = '''import builtins
_real = builtins.compile
def _fake(src, fn, *a, **k):
    return _real("pass", fn, "exec") if fn == "test.py" else _real(src, fn, *a, **k)
builtins.compile = _fake
def f(n):
    return 0
'''
POISON_AST = '''import sys, types
fake = types.ModuleType("ast")
def parse(*a, **k):
    raise SyntaxError("x")
fake.parse = parse
sys.modules["ast"] = fake
class E:
    def __eq__(self, o):
        return True
    __hash__ = object.__hash__
def f(n):
    return E()
'''
SETTRACE = '''import sys
def _yes(a, b):
    return True
def _tr(frame, event, arg):
    if frame.f_globals.get("_lb_eq", _yes) is not _yes:
        frame.f_globals["_lb_eq"] = _yes
    return None
sys.settrace(_tr)
def f(n):
    return 0
'''
HONEST = "def f(n):\n    return 7 * n + 3\n"


def run(executor: Any, code: str, test: str, timeout: float = 10) -> dict[str, Any]:
    [result] = asyncio.run(common.run_tests(code, [kinds.assert_test(test)], timeout=timeout, executor=executor))
    return result


def test_the_literal_form_keeps_the_expected_values_out_of_the_program() -> None:
    test = "assert f('q') == 'SENTINEL-9f3e'\n"
    lowered = kinds.lower(HONEST, kinds.assert_test(test))
    assert lowered.expected == ("SENTINEL-9f3e",) and lowered.proof is None
    assert "SENTINEL" not in lowered.program and "SENTINEL" not in lowered.stdio["stdin"]
    # the other form keeps the test code off the program too (it comes on stdin, after the secret)
    other = kinds.lower(HONEST, kinds.assert_test(NOT_LITERAL))
    assert other.expected is None and "int('17')" not in other.program


@pytest.mark.parametrize("code", [FORK_SPY, READ_LINECACHE, READ_MAIN_PY, READ_ANYWHERE, ONE_SHOT_LIAR,
                                  RAISE_ON_OBJECT, PATCH_EXEC, PATCH_COMPILE, POISON_AST, SETTRACE],
                         ids=["H1 fork-spy", "H2 linecache", "H2 main.py", "H2 any file", "H3 one-shot liar",
                              "H4 raise on object()", "H6 exec", "H6 compile", "H6 ast", "H6 settrace"])
def test_attacks_fail_on_literal_asserts(lb_local_executor: Any, code: str) -> None:
    verdicts = [run(lb_local_executor, code, test)["verdict"] for test in MBPP]
    assert "passed" not in verdicts, verdicts
    assert run(lb_local_executor, HONEST, MBPP[0])["verdict"] == "passed"


@pytest.mark.parametrize("code", [READ_LINECACHE, READ_MAIN_PY, READ_ANYWHERE, PATCH_EXEC, PATCH_COMPILE,
                                  POISON_AST, SETTRACE, RAISE_ON_OBJECT],
                         ids=["H2 linecache", "H2 main.py", "H2 any file", "H6 exec", "H6 compile", "H6 ast",
                              "H6 settrace", "H4 raise on object(), int"])
def test_attacks_fail_on_in_process_asserts(lb_local_executor: Any, code: str) -> None:
    assert run(lb_local_executor, code, NOT_LITERAL)["verdict"] != "passed"
    assert run(lb_local_executor, HONEST, NOT_LITERAL)["verdict"] == "passed"


# Attacks on tests NOT of the literal form: the split harness runs the test code in a process apart
# from the answer's, so none of these passes. The in-process harness (its fallback, for a test whose
# own values cannot be sent) still lets them pass (documented in the README): a forked spy learns the
# expected value (H1), a stateful __eq__ tells the first comparison apart (H3), H4's probe gap stays
# for non-builtin expected types, an == below the top of the assert is not checked (H5), nor are the
# answer's own operators.
COMPUTED_HOLES = [
    (FORK_SPY, LOOP_TOLERANCE),
    (ONE_SHOT_LIAR, NOT_LITERAL),
    (RAISE_ON_OBJECT, "from fractions import Fraction\nassert f(1) == Fraction(1, 3)\n"),
    (RAISE_ON_OBJECT, "assert f(1) == 10 and f(2) == 17\n"),
    (OWN_SUB, LOOP_TOLERANCE),
]
HOLE_IDS = ["H1 fork-spy, tolerance", "H3 one-shot liar", "H4 Fraction", "H5 == under and", "own operators"]


def run_in_process(executor: Any, code: str, test_code: str) -> dict[str, Any]:
    test = kinds.assert_test(test_code)
    lowered = kinds.lower(code, test, in_process=True)
    [raw] = asyncio.run(executor.run_tests(lowered.program, [lowered.stdio], timeout=10))
    return kinds.judge(code, test, lowered, raw)


@pytest.mark.parametrize("code, test", COMPUTED_HOLES, ids=HOLE_IDS)
def test_the_split_harness_contains_what_the_in_process_one_cannot(lb_local_executor: Any, code: str,
                                                                    test: str) -> None:
    assert kinds.literal_form(test) is None
    assert run(lb_local_executor, code, test)["verdict"] != "passed"
    assert run_in_process(lb_local_executor, code, test)["verdict"] == "passed"  # if this fails, update the README


PLANT_MODULE = planting("colorsys.py")
READ_PARENT = '''import os, re
def f(n):
    seen = ""
    for path in ("fd/0", "environ", "cmdline", "mem"):
        try:
            seen += open(f"/proc/{os.getppid()}/{path}", "rb").read(1 << 16).decode("latin-1")
        except OSError:
            pass
    try:
        seen += os.read(0, 1 << 16).decode("latin-1")
    except OSError:
        pass
    found = re.search(r"== int\\('(\\d+)'\\)", seen)
    return int(found.group(1)) if found else 0
'''
SHADOW = "all = lambda *a: True\nclass M:\n    isclose = staticmethod(lambda *a, **k: True)\nmath = M()\ndef f(n):\n    return 0\n"
KILL_PARENT = "import os, signal\ndef f(n):\n    os.kill(os.getppid(), signal.SIGKILL)\n"


@pytest.mark.parametrize("code, test", [
    (PLANT_MODULE, "import colorsys\nassert f(1) == int('2')\n"),
    (READ_PARENT, NOT_LITERAL),
    (SHADOW, "assert all(f(x) == x for x in [1, 2])\nassert math.isclose(f(1), float('2'))\n"),
    (KILL_PARENT, NOT_LITERAL),
], ids=["a module planted in the work dir", "the test's process memory and stdin", "names of the test's", "kill"])
def test_the_answers_process_cannot_reach_the_tests(lb_local_executor: Any, code: str, test: str) -> None:
    """What the split harness adds: the answer writes a module the test then imports, reads the
    test's process through /proc or its stdin, shadows the names the test uses, kills it."""
    assert run(lb_local_executor, code, test)["verdict"] != "passed"
    assert run(lb_local_executor, HONEST, NOT_LITERAL)["verdict"] == "passed"


SPLIT_HONEST = (
    "import fractions\n"
    "class Solution:\n    def twice(self, n):\n        return 2 * n\n"
    "class Oops(ValueError):\n    pass\n"
    "def f(n):\n    if n < 0:\n        raise Oops('negative')\n    return 7 * n + 3\n"
    "def sort_in_place(a):\n    a.sort()\n"
    "def apply(g, x):\n    return g(x)\n"
    "def pair(n):\n    return (n, [n], {n: n}, {n}, None, 0.5, fractions.Fraction(n, 3))\n"
)
SPLIT_TEST = (
    "def check(candidate):\n"
    "    for x in range(4):\n        assert candidate(x) == 7 * x + 3\n"
    "    try:\n        candidate(-1)\n        raise RuntimeError('no error')\n    except ValueError as e:\n"
    "        assert str(e) == 'negative' and type(e).__name__ == 'Oops'\n"
    "    s = Solution()\n    assert [s.twice(i) for i in range(3)] == [0, 2, 4]\n"
    "    a = [3, 1, 2]\n    sort_in_place(a)\n    assert a == sorted(a) and len(a) == 3\n"
    "    assert apply(candidate, 1) == 10\n"  # one of the answer's functions as an argument
    "    assert pair(3) == (3, [3], {3: 3}, {3}, None, 0.5, fractions.Fraction(1, 1))\n"
    "    assert apply(lambda v: v * 2, 4) == 8\n"  # a lambda of the test's: the in-process fallback
    "\ncheck(f)\n"
)


def test_honest_answers_pass_the_split_harness(lb_local_executor: Any) -> None:
    """Results cross as values, handles, exceptions and in-place changes, as the test expects."""
    without_lambda = SPLIT_TEST.replace("    assert apply(lambda v: v * 2, 4) == 8\n", "")
    lowered = kinds.lower(SPLIT_HONEST, kinds.assert_test(without_lambda))
    [raw] = asyncio.run(lb_local_executor.run_tests(lowered.program, [lowered.stdio], timeout=10))
    stdout = raw["exec_output"]["run_output"]["stdout"]
    assert lowered.proof in stdout and lowered.fallback not in stdout, raw  # judged split, no fallback
    result = run(lb_local_executor, SPLIT_HONEST, SPLIT_TEST)  # the lambda: run again in process
    assert result["verdict"] == "passed", result


# Forms other than ``== <literal>`` that are judged outside too: the probed value is computed in the
# program's process, the check (with the literal) by the toolkit, with Python's own semantics.
OUTSIDE_FORMS = (
    "import math\n"
    "assert math.isclose(f(0.5), 0.5, rel_tol=0.001)\nassert math.isclose(0.25, f(0.25))\n"
    "assert abs(f(2.0) - 2.0000001) < 1e-6\nassert abs(3 - f(3)) <= 0\n"
    "assert set(f([2, 1, 2])) == set([1, 2])\nassert sorted(f([3, 1])) == sorted([1, 3])\n"
    "assert f([1]) == list((1,))\nassert f(7)\nassert not f(0)\nassert f([0])[0] == 0\n"
    "assert f(None) is None\nassert f(True) is True\nassert f(False) is not True\nassert f(4) != 5\n"
)


def test_forms_judged_outside_hold_the_expected_values_off_the_program() -> None:
    lowered = kinds.lower("def f(v):\n    return v\n", kinds.assert_test(OUTSIDE_FORMS))
    assert lowered.expected is not None and len(lowered.expected) == 14
    probe = lowered.stdio["stdin"]
    for literal in ("0.001", "2.0000001", "1e-6", "set([1, 2])", "is None", "!= 5", "not f"):
        assert literal not in probe, literal
    assert "2.0000001" not in lowered.program and "rel_tol=0.001" not in lowered.program


def test_forms_judged_outside_pass_an_honest_program(lb_local_executor: Any) -> None:
    assert run(lb_local_executor, "def f(v):\n    return v\n", OUTSIDE_FORMS)["verdict"] == "passed"


@pytest.mark.parametrize("code, test, verdict", [
    (FORK_SPY, TOLERANCE, "wrong_answer"),  # the spy is not a value the toolkit can compare
    (OWN_SUB, TOLERANCE, "wrong_answer"),  # a float subclass is its float: its own __sub__ never runs
    ("def f(n):\n    return 17.1\n", TOLERANCE, "wrong_answer"),
    ("def f(n):\n    return 17.0000000001\n", TOLERANCE, "passed"),
    ("def f(n):\n    return [17]\n", TOLERANCE, "runtime_error"),  # abs([17] - 17): a TypeError, as in Python
    ("def f(n):\n    return 0\n", "assert f(1)\n", "wrong_answer"),
    ("def f(n):\n    return 1\n", "assert not f(1)\n", "wrong_answer"),
    ("def f(n):\n    return 0\n", "assert f(1) is False\n", "wrong_answer"),  # 0 is not False
    ("def f(n):\n    return [1, 3]\n", "assert set(f(1)) == set([1, 2])\n", "wrong_answer"),
    ("import math\nmath.isclose = lambda *a, **k: True\ndef f(n):\n    return 9\n",
     "import math\nassert math.isclose(f(1), 2)\n", "wrong_answer"),  # the toolkit's isclose decides
    ("abs = lambda x: 0\ndef f(n):\n    return 9\n", TOLERANCE, "wrong_answer"),  # and its abs
])
def test_forms_judged_outside_decide_as_python(lb_local_executor: Any, code: str, test: str, verdict: str) -> None:
    assert kinds.literal_form(test) is not None
    result = run(lb_local_executor, code, test)
    assert result["verdict"] == verdict, result


HONEST_TYPES = (
    "import collections, decimal, fractions\nimport numpy as np\n"
    "Point = collections.namedtuple('Point', 'x y')\n"
    "class Name(str):\n    pass\n"
    "def f(v):\n    return v\n",
    "assert f(np.int64(3)) == 3\nassert f(np.float64(0.5)) == 0.5\nassert f(np.bool_(True)) == True\n"
    "assert f(collections.Counter('aab')) == {'a': 2, 'b': 1}\nassert f(Point(1, 2)) == (1, 2)\n"
    "assert f(collections.OrderedDict(a=1)) == {'a': 1}\nassert f(collections.defaultdict(list)) == {}\n"
    "assert f(0.1 + 0.2) == 0.30000000000000004\nassert f(3) == 3.0\nassert f(True) == 1\n"
    "assert f(None) == None\nassert f({1, (2, 3)}) == {(2, 3), 1}\nassert f(frozenset([1])) == {1}\n"
    "assert f([[1, [2.5, 'x']], []]) == [[1, [2.5, 'x']], []]\nassert f(Name('ab')) == 'ab'\n"
    "assert f(fractions.Fraction(1, 2)) == 0.5\nassert f(decimal.Decimal('0.5')) == 0.5\n"
    "assert f(b'x\\x00') == b'x\\x00'\nassert f(bytearray(b'y')) == b'y'\nassert f(1 + 2j) == 1 + 2j\n"
    "assert f(-0.0) == 0\nassert f(2 ** 5000) == " + str(2 ** 5000) + "\nassert f(float('inf')) == 1e999\n"
    "assert f({'k': (1, [2])}) == {'k': (1, [2])}\n",
)


def test_honest_values_of_many_types_pass_the_literal_form(lb_local_executor: Any) -> None:
    code, test = HONEST_TYPES
    assert kinds.literal_form(test) is not None
    assert run(lb_local_executor, code, test)["verdict"] == "passed"


@pytest.mark.parametrize("test", [
    "assert f([1]) == (1,)\n",  # a list is not a tuple, as in Python
    "assert f({1: 2}) == {1: 3}\n",
    "assert f('a') == b'a'\n",
    "assert f(0.1 + 0.2) == 0.3\n",  # == is exact, as in Python (use a tolerance in the test for floats)
])
def test_python_equality_is_kept(lb_local_executor: Any, test: str) -> None:
    assert run(lb_local_executor, HONEST_TYPES[0], test)["verdict"] == "wrong_answer"


@pytest.mark.parametrize("code, verdict, line", [
    ("def f(n):\n    return 0\ndef g():\n    raise ValueError\n", "wrong_answer", 1),
    ("def f(n):\n    return 17\ndef g():\n    raise ValueError\n", "runtime_error", None),
    ("def f(n):\n    return 0\ndef g():\n    while True:\n        pass\n", "wrong_answer", 1),
    ("def f(n):\n    return 17\ndef g():\n    return 1\n", "wrong_answer", 2),
])
def test_the_first_failing_assert_decides(lb_local_executor: Any, code: str, verdict: str,
                                          line: int | None) -> None:
    """Every left side is evaluated in order; Python would have stopped at the first failure, so a
    later crash or timeout does not hide it."""
    result = run(lb_local_executor, code, "assert f(2) == 17\nassert g() == 2\n", timeout=2)
    assert result["verdict"] == verdict, result
    if line:  # the traceback Python would print, made outside
        assert f'File "test.py", line {line}, in <module>\n' in result["exec_output"]["run_output"]["stderr"]


def test_humaneval_check_of_the_literal_form_reports_the_returned_value(lb_local_executor: Any) -> None:
    test = ("METADATA = {'author': 'lb'}\n\n\ndef check(candidate):\n    \"\"\"doc\"\"\"\n"
            "    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n\n\ncheck(add)\n")
    assert kinds.literal_form(test) is not None
    assert run(lb_local_executor, "def add(x, y):\n    return x + y\n", test)["verdict"] == "passed"
    result = run(lb_local_executor, "def add(x, y):\n    return [x, y] if x < 0 else x + y\n", test)
    assert result["verdict"] == "wrong_answer" and result["returned"] == "[-1, 1]"
    text = common.format_feedback([result], [kinds.assert_test(test)], 0, 1)
    assert "Returned (left side of the failing ==):\n[-1, 1]\n" in text
    crashed = run(lb_local_executor, "def add(x, y):\n    return x + y + None\n", test)
    assert crashed["verdict"] == "runtime_error"
    stderr = crashed["exec_output"]["run_output"]["stderr"]
    assert 'File "test.py", line 6, in check\n    assert candidate(2, 3) == 5\n' in stderr  # the test's own line
    assert "_lb_put" not in stderr


@pytest.mark.parametrize("test, literal", [
    ("assert f(1) == 2\n", True),
    ("import math\nassert f(1) == 2, 'message'\n", True),
    ("assert 2 == f(1)\n", True),
    ("def check(candidate):\n    assert candidate(1) == [2,\n        3]\n    pass\n\ncheck(f)\n", True),
    ("def check(candidate):\n    assert True, 'This prints if this assert fails 1'\n"
     "    assert candidate(1) == True, 'message'\n\ncheck(f)\n", True),
    ("assert f(1) == 2\ndef check(candidate):\n    assert candidate(1) == 2\n\ncheck(f)\n", False),
    ("assert f(1) == 2 and f(2) == 3\n", False),
    ("assert f(1) == f(2) == 3\n", False),
    ("assert f(1) == int('2')\n", False),
    ("for x in [1]:\n    assert f(x) == 2\n", False),
    ("def check(candidate):\n    assert candidate(1) == 2\n\ncheck(f)\ncheck(f)\n", False),
    ("def check(candidate):\n    assert candidate(1) == 2\n", False),  # never called
    ("x = f(1)\nassert x == 2\n", False),
    ("assert (f(1) == 2) == True\n", False),  # a comparison inside the probed side
    ("assert all(f(x) == 2 for x in [1])\n", False),  # an expected value inside a comprehension
    ("assert f(1) in [2, 3]\n", False),
    ("assert math.isclose(f(1), g(2))\n", False),
    ("assert abs(f(1) - g(1)) < 1e-6\n", False),
    ("assert f\n", False),  # a name: Python tests a function's truth, the toolkit cannot compare one
    ("assert f(1) == set([[1]])\n", False),  # unhashable: Python raises, in the program's process
    ("assert abs(f(1) - 2) < 1e-6\nassert math.isclose(f(2), 3, abs_tol=0.5)\n", True),
    ("assert math.isclose(f(1), math.sqrt(2)) == True\n", False),  # the expected value is computed in the probe
    ("assert math.sqrt(f(2)) == 3\n", False),  # a module's function, not the answer's
    ("assert Solution().m(1) == 2\nassert sorted(f(1))[0] == 1\nassert -f(1) + 2 * f(2) == 3\n", True),
    ("assert round(f(1), 2) == 0.5\nassert len(f(1)) == 3\nassert f(1).real == 2\n", True),
    ("assert max(f(1), g(2)) == 2\n", True),  # g is the answer's too
    ("assert max(f(1), math.pi) == 2\n", False),
])
def test_which_tests_are_of_the_literal_form(test: str, literal: bool) -> None:
    assert (kinds.literal_form(test) is not None) is literal


def test_each_assert_result_names_the_harness_that_judged_it(lb_local_executor: Any) -> None:
    """``harness``: literal (compared outside), split (test apart from the answer), in_process
    (the fallback, a heuristic verdict): users can tell which verdicts are sound."""
    assert run(lb_local_executor, HONEST, MBPP[0])["harness"] == "literal"
    assert run(lb_local_executor, HONEST, NOT_LITERAL)["harness"] == "split"
    lambda_test = "assert apply(lambda v: v * 2, 4) == int('8')\n"  # a lambda of the test's, sent to the answer
    result = run(lb_local_executor, SPLIT_HONEST, lambda_test)
    assert result["verdict"] == "passed" and result["harness"] == "in_process"  # a lambda of the test's


@pytest.mark.parametrize("code, test, harness", [
    ("import re\ndef m(s):\n    return re.match('b', s)\n", "assert m('baa')\nassert not m('abc')\n", "literal"),
    ("def g(n):\n    return (i for i in range(n))\n", "assert g(2)\n", "literal"),  # truth taken in process
    ("import datetime\ndef d():\n    return datetime.date(2020, 1, 2)\n",
     "x = d()\nassert x.year == 2020 and x.isoformat() == '2020-01-02'\n", "split"),  # a handle's attributes
    ("import re\ndef m(s):\n    return re.match('b+', s)\n", "for s in ['bb', 'b']:\n    assert m(s).group(0) == s\n", "split"),
    ("def f(g):\n    return 1\n", "ok = True\ntry:\n    f(lambda: 1)\nexcept Exception:\n    ok = False\nassert ok\n",
     "in_process"),  # the test caught the refusal of its lambda, then failed: it runs again in one process
])
def test_honest_objects_of_no_builtin_type_pass(lb_local_executor: Any, code: str, test: str, harness: str) -> None:
    result = run(lb_local_executor, code, test)
    assert result["verdict"] == "passed" and result["harness"] == harness, result
