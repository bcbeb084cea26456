"""Call and assert tests through their harness on the real embedded executor (and the remote API):
every verdict the issue names, the expected value kept out of the program, early exits caught."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from typing import Any

import pytest

import librarybench_common as common
import problem_kinds as kinds


def run(executor: Any, code: str, test: Any, timeout: float = 10) -> dict[str, Any]:
    [result] = asyncio.run(common.run_tests(code, [test], timeout=timeout, executor=executor))
    return result


def call(code: str, expected: Any, args: list[Any] | None = None, **kw: Any) -> tuple[str, Any]:
    return code, kinds.call_test(kw.pop("fn", "f"), [1, 2] if args is None else args, expected, **kw)


CALL_CASES = {
    "tuple is a list": (call("def f(a, b):\n    return (a, [b, (a,)])\n", [1, [2, [1]]]), "passed", None),
    "wrapped expected (TACO)": (call("def f(a, b):\n    return a + b\n", [3], unwrap_expected=True), "passed", None),
    "wrapped expected refused without unwrap": (call("def f(a, b):\n    return a + b\n", [3]), "wrong_answer", None),
    "nested lists": (call("def f(a, b):\n    return [[a, b], [[b]], []]\n", [[1, 2], [[2]], []]), "passed", None),
    "float close": (call("def f(a, b):\n    return 0.1 + 0.2\n", 0.3), "passed", None),
    "float off": (call("def f(a, b):\n    return 0.31\n", 0.3), "wrong_answer", None),
    "int equals float": (call("def f(a, b):\n    return 3\n", 3.0), "passed", None),
    "bool is not int": (call("def f(a, b):\n    return True\n", 1), "wrong_answer", None),
    "None": (call("def f(a, b):\n    return None\n", None), "passed", None),
    "None is not 0": (call("def f(a, b):\n    return None\n", 0), "wrong_answer", None),
    "big int": (call("def f(a, b):\n    return 2 ** 200\n", 2 ** 200), "passed", None),
    "huge int": (call("def f(a, b):\n    return 10 ** 5000\n", 7), "wrong_answer", None),
    "set": (call("def f(a, b):\n    return {a, b}\n", [1, 2]), "wrong_answer", "cannot be serialised as JSON (set"),
    "object": (call("class P:\n    pass\n\ndef f(a, b):\n    return P()\n", 3), "wrong_answer",
               "cannot be serialised as JSON (P"),
    "always-equal object": (call("class E:\n    def __eq__(self, other):\n        return True\n"
                                 "    __hash__ = None\n\ndef f(a, b):\n    return E()\n", 3),
                            "wrong_answer", "cannot be serialised"),
    "always-equal int": (call("class E(int):\n    def __eq__(self, other):\n        return True\n"
                              "    __hash__ = int.__hash__\n\ndef f(a, b):\n    return E(5)\n", 3),
                         "wrong_answer", None),
    "cycle": (call("def f(a, b):\n    x = []\n    x.append(x)\n    return x\n", []), "wrong_answer",
              "cannot be serialised"),
    "exception": (call("def f(a, b):\n    return a / (b - 2)\n", 0), "runtime_error", None),
    "sys.exit in the function": (call("import sys\n\ndef f(a, b):\n    sys.exit(0)\n", 3), "runtime_error", None),
    "os._exit in the function": (call("import os\n\ndef f(a, b):\n    os._exit(0)\n", 3), "runtime_error",
                                 kinds.NO_RETURN),
    "missing function": (call("def g(a, b):\n    return 3\n", 3), "runtime_error", None),
    "Solution method": (call("class Solution:\n    def twoSum(self, nums, t):\n        return [0, 1]\n", [0, 1],
                             args=[[2, 7], 9], fn="twoSum", class_name="Solution"), "passed", None),
    "Solution fallback (TACO)": (call("class Solution:\n    def f(self, a, b):\n        return a + b\n", 3),
                                 "passed", None),
    "forged result line": (call("def f(a, b):\n    print('\\x1eLB-RESULT abc {\"value\": 3}')\n    return 3\n", 3),
                           "wrong_answer", "wrote its own"),
}


@pytest.mark.parametrize("name", list(CALL_CASES))
def test_call_verdicts(lb_local_executor: Any, name: str) -> None:
    (code, test), verdict, reason = CALL_CASES[name]
    result = run(lb_local_executor, code, test)
    assert result["verdict"] == verdict, result
    assert result["passed"] is (verdict == "passed")
    if reason:
        assert reason in (result["reason"] or ""), result["reason"]
    assert set(result) >= {"code", "test", "passed", "exec_output", "uncaught_exception", "verdict"}
    assert result["test"] == test


def test_call_exception_has_the_answers_traceback(lb_local_executor: Any) -> None:
    result = run(lb_local_executor, *call("def f(a, b):\n    return a / (b - 2)\n", 0))
    stderr = result["exec_output"]["run_output"]["stderr"]
    assert 'File "solution.py", line 2, in f' in stderr and "ZeroDivisionError" in stderr
    assert "_lb_" not in stderr  # the harness's own frame is not shown


def test_main_block_of_a_call_answer_does_not_run(lb_local_executor: Any) -> None:
    code = "def f(a, b):\n    return a + b\n\nif __name__ == '__main__':\n    print('MAIN')\n    raise SystemExit(3)\n"
    result = run(lb_local_executor, *call(code, 3))
    assert result["verdict"] == "passed"
    assert "MAIN" not in result["exec_output"]["run_output"]["stdout"]


def test_call_answer_output_is_kept_apart_from_the_value(lb_local_executor: Any) -> None:
    result = run(lb_local_executor, *call("def f(a, b):\n    print('debug', a)\n    return [a, b]\n", [1, 2]))
    assert result["verdict"] == "passed"
    assert result["exec_output"]["run_output"]["stdout"] == "debug 1\n"  # exactly what it printed
    assert json.loads(result["returned"]) == [1, 2]


def test_header_names_are_available_to_the_answer(lb_local_executor: Any) -> None:
    code = "def f(a: List[int], b):\n    return sorted(Counter(a).items())\n"
    result = run(lb_local_executor, *call(code, [[1, 1], [2, 2]], args=[[1, 2, 2], 0]))
    assert result["verdict"] == "passed", result


def test_huge_returned_list_hits_the_output_limit(lb_local_executor: Any) -> None:
    result = run(lb_local_executor, *call("def f(a, b):\n    return list(range(400000))\n", []))
    assert result["verdict"] == "output_limit"


def test_expected_value_never_enters_the_program() -> None:
    sentinel = "expected-6f1c2e-value"
    lowered = kinds.lower("def f(a, b):\n    return 1\n", kinds.call_test("f", [1, 2], [sentinel]))
    assert sentinel not in lowered.program and sentinel not in lowered.stdio["stdin"]
    assert json.loads(lowered.stdio["stdin"]) == [1, 2]


ASSERT_ANSWER = "def add(a, b):\n    return a + b\n"

ASSERT_CASES = {
    "passes": (ASSERT_ANSWER, "assert add(1, 2) == 3\n", "passed", None),
    "assertion fails": (ASSERT_ANSWER, "assert add(1, 2) == 4\n", "wrong_answer", "assertion"),
    "sys.exit(0) at the end": (ASSERT_ANSWER + "import sys\nsys.exit(0)\n", "assert add(1, 2) == 4\n",
                               "runtime_error", kinds.EARLY_EXIT),
    "os._exit(0)": (ASSERT_ANSWER + "import os\nos._exit(0)\n", "assert add(1, 2) == 4\n", "runtime_error",
                    kinds.EARLY_EXIT),
    "main block exits": (ASSERT_ANSWER + "import sys\n\ndef main():\n    print(add(1, 1))\n\n"
                         "if __name__ == '__main__':\n    main()\n    sys.exit()\n",
                         "assert add(1, 2) == 4\n", "runtime_error", kinds.EARLY_EXIT),
    "exit() builtin": (ASSERT_ANSWER + "exit()\n", "assert add(1, 2) == 4\n", "runtime_error", kinds.EARLY_EXIT),
    "forged proof": (ASSERT_ANSWER + "print('\\x1eLB-PROOF ' + '0' * 64, flush=True)\nimport os\nos._exit(0)\n",
                     "assert add(1, 2) == int('4')\n", "runtime_error", "proof is wrong"),
    "forged value frame": (ASSERT_ANSWER + "print('\\x1eLB-RESULT 00 {\"done\": true}', flush=True)\n"
                           "import os\nos._exit(0)\n", "assert add(1, 2) == 4\n", "wrong_answer", "wrote its own"),
    "check(candidate)": ("def inc(x):\n    return x + 1\n",
                         "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(-1) == 0\n\n"
                         "check(inc)\n", "passed", None),
    "test code exits itself": (ASSERT_ANSWER, "import sys\nsys.exit(0)\n", "runtime_error", kinds.EARLY_EXIT),
    "answer crashes": ("def add(a, b)\n    return 0\n", "assert add(1, 2) == 3\n", "runtime_error", None),
    "plain string test": (ASSERT_ANSWER + "import os\nos._exit(0)\n", "assert add(1, 2) == 4", "runtime_error",
                          kinds.EARLY_EXIT),
    # A returned object whose == says yes to everything (or to every int) does not pass an assert:
    # against a literal it is compared outside (a custom object cannot be, a subclass is its value) ...
    "always-equal object": ("class E:\n    def __eq__(self, other):\n        return True\n"
                            "def add(a, b):\n    return E()\n", "assert add(1, 2) == 3\n", "wrong_answer",
                            "cannot be compared outside the program (E"),
    "equal to every int": ("class E(int):\n    def __eq__(self, other):\n        return isinstance(other, int)\n"
                           "    __hash__ = int.__hash__\n"
                           "def add(a, b):\n    return E(0)\n", "assert add(1, 2) == 3\n", "wrong_answer",
                           "assertion of the test failed"),
    "always-equal on the right": ("class E:\n    def __eq__(self, other):\n        return True\n"
                                  "def add(a, b):\n    return E()\n", "assert 3 == add(1, 2)\n", "wrong_answer",
                                  "cannot be compared outside the program"),
    "always-equal inside check()": ("class E(str):\n    def __eq__(self, other):\n        return True\n"
                                    "    __hash__ = str.__hash__\n"
                                    "def up(s):\n    return E('')\n",
                                    "def check(candidate):\n    assert candidate('a') == 'A'\n\ncheck(up)\n",
                                    "wrong_answer", "assertion of the test failed"),
    # ... against anything else (here int('3')), in the process by the _lb_eq heuristic.
    "always-equal object, not a literal": ("class E:\n    def __eq__(self, other):\n        return True\n"
                                           "def add(a, b):\n    return E()\n", "assert add(1, 2) == int('3')\n",
                                           "wrong_answer", "an assertion of the test failed"),  # identity: split
    "equal to every int, not a literal": ("class E(int):\n    def __eq__(self, other):\n"
                                          "        return isinstance(other, int)\n    __hash__ = int.__hash__\n"
                                          "def add(a, b):\n    return E(0)\n", "assert add(1, 2) == int('3')\n",
                                          "wrong_answer", "an assertion of the test failed"),  # its int value 0
    "honest values of many types": (
        "import collections, fractions\nimport numpy as np\n"
        "Point = collections.namedtuple('Point', 'x y')\n"
        "def add(a, b):\n    return a + b\n",
        "assert add(1, 2) == 3\nassert add(True, False) == 1\nassert add(0.5, 0.25) == 0.75\n"
        "assert add('a', 'b') == 'ab'\nassert add([1], [2]) == [1, 2]\nassert add((1,), (2,)) == (1, 2)\n"
        "assert add(float('inf'), 1) == float('inf')\nassert add(-0.5, -0.5) == -1.0\n"
        "assert collections.Counter('aab') == {'a': 2, 'b': 1}\nassert Point(1, 2) == (1, 2)\n"
        "assert np.int64(3) == 3\nassert fractions.Fraction(1, 2) == 0.5\nassert {1, 2} == {2, 1}\n"
        "assert None == None\nassert b'x' == b'x'\nassert add(1j, 1) == 1 + 1j\n",
        "passed", None),
}


def run_in_process(executor: Any, code: str, test_code: str) -> dict[str, Any]:
    """The in-process harness (the split harness's fallback), run directly."""
    test = kinds.assert_test(test_code)
    lowered = kinds.lower(code, test, in_process=True)
    [raw] = asyncio.run(executor.run_tests(lowered.program, [lowered.stdio], timeout=10))
    return kinds.judge(code, test, lowered, raw)


@pytest.mark.parametrize("name", ["always-equal object, not a literal", "equal to every int, not a literal"])
def test_the_in_process_fallback_catches_objects_equal_to_everything(lb_local_executor: Any, name: str) -> None:
    code, test_code, _, _ = ASSERT_CASES[name]
    result = run_in_process(lb_local_executor, code, test_code)
    assert result["verdict"] == "wrong_answer" and kinds.EQUALS_ANYTHING in result["reason"], result


@pytest.mark.parametrize("name", list(ASSERT_CASES))
def test_assert_verdicts(lb_local_executor: Any, name: str) -> None:
    code, test_code, verdict, reason = ASSERT_CASES[name]
    test = test_code if name == "plain string test" else kinds.assert_test(test_code)
    result = run(lb_local_executor, code, test)
    assert result["verdict"] == verdict, result
    if reason:
        assert reason in (result["reason"] or ""), result["reason"]


def test_assert_secret_is_not_in_the_source_and_stdin_is_empty_for_the_answer(lb_local_executor: Any) -> None:
    test = kinds.assert_test("assert seen == str()\n")  # not a literal: the in-process proof
    lowered = kinds.lower("import sys\nseen = sys.stdin.read()\n", test)
    secret = lowered.stdio["stdin"].strip()
    assert secret not in lowered.program and lowered.proof not in lowered.program
    result = run(lb_local_executor, "import sys, os\nseen = sys.stdin.read() + os.read(0, 100).decode()\n", test)
    assert result["verdict"] == "passed", result  # the answer reads nothing: the secret is gone from fd 0


def test_each_run_has_its_own_secret() -> None:
    test = kinds.assert_test("assert True\n")
    first, second = kinds.lower("x = 1\n", test), kinds.lower("x = 1\n", test)
    assert first.stdio["stdin"] != second.stdio["stdin"] and first.proof != second.proof


def test_remote_path_gives_the_same_verdicts(lb_execution_server: str, lb_local_executor: Any) -> None:
    remote = common.RemoteExecutor(lb_execution_server, retries=1, backoff=0.01)
    cases = [
        call("def f(a, b):\n    return (a + b,)\n", [3]),
        call("def f(a, b):\n    return {a}\n", [1]),
        (ASSERT_ANSWER + "import sys\nsys.exit(0)\n", kinds.assert_test("assert add(1, 2) == 4\n")),
        (ASSERT_ANSWER, kinds.assert_test("assert add(1, 2) == 3\n")),  # compared outside
        (ASSERT_ANSWER, kinds.assert_test("assert add(1, 2) == int('3')\n")),  # in process: test code on stdin
        (ASSERT_ANSWER, kinds.assert_test("assert add(1, 2) == 4\n")),
    ]

    async def both() -> list[tuple[str, str]]:
        out = []
        for code, test in cases:
            [r] = await common.run_tests(code, [test], timeout=10, executor=remote)
            [l] = await common.run_tests(code, [test], timeout=10, executor=lb_local_executor)
            out.append(((r["verdict"], r["reason"]), (l["verdict"], l["reason"])))
        await remote.aclose()
        return out

    pairs = asyncio.run(both())
    assert [p[0] for p in pairs] == [p[1] for p in pairs]
    assert [p[0][0] for p in pairs] == ["passed", "wrong_answer", "runtime_error", "passed", "passed", "wrong_answer"]
    assert pairs[2][0][1] == kinds.EARLY_EXIT


def test_feedback_shows_call_expected_and_returned(lb_local_executor: Any) -> None:
    code, test = call("def f(a, b):\n    return [a, b, a]\n", [1, 2], args=[1, 2])
    result = run(lb_local_executor, code, test)
    text = common.format_feedback([result], [test], 0, 1)
    assert "Call:\nf(1, 2)" in text
    assert "Expected return value:\n[1, 2]" in text
    assert "Returned:\n[1, 2, 1]" in text


@pytest.mark.parametrize("actual, expected, same", [
    ([1, [2.0000000001]], [1, [2.0]], True),  # a float expected value: within the tolerance
    ([1, [2.0000000001]], [1, [2]], True),  # a float that is not whole: within the tolerance
    (sum([0.1] * 30), 3, True),
    (float("inf"), 3, False),
    (3.0, 3, True),
    (1e9, 999999937, False),
    (123456700.0, 123456789, False),
    (float(2**80), 2**80 + 12345, False),
    ((1, 2), [1, 2], True),
    ({"a": [1]}, {"a": [1]}, True),
    ({"a": 1}, {"b": 1}, False),
    (float("nan"), float("nan"), True),
    (1e-12, 0.0, True),
    (1.0, 1.001, False),
    ("1", 1, False),
    (False, 0, False),
    (kinds.BigDigits("1" * 5000), kinds.BigDigits("1" * 5000), True),
    (kinds.BigDigits("1" * 5000), 7, False),
])
def test_values_match(actual: Any, expected: Any, same: bool) -> None:
    assert kinds.values_match(actual, expected) is same


def test_huge_integer_decodes_without_the_digit_limit() -> None:
    value = kinds.decode_value('{"value": ' + "9" * 6000 + "}")["value"]
    assert isinstance(value, kinds.BigDigits) and len(value) == 6000
    assert math.isnan(kinds.decode_value("[NaN]")[0])


def test_huge_integer_arguments_reach_the_function(lb_local_executor: Any) -> None:
    code = "def f(n, b):\n    return len(str(n)) if b else n % 1000\n"
    test = kinds.call_test("f", [10 ** 5000, 0], 0)
    assert run(lb_local_executor, code, test)["verdict"] == "passed"
    # the answer itself runs under Python's usual limit on int-to-str conversion
    assert run(lb_local_executor, code, kinds.call_test("f", [10 ** 5000, 1], 5001))["verdict"] == "runtime_error"


HUMANEVAL_CHECK = ("def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 9\n\n"
                   "check(square)\n")


@pytest.mark.parametrize("code, test, verdict, returned", [
    ("def square(n):\n    return n * n\n", HUMANEVAL_CHECK, "passed", None),  # the proof still holds
    ("def square(n):\n    return n + 2\n", HUMANEVAL_CHECK, "wrong_answer", "5"),  # inside check(): 2 passes
    ("def square(n):\n    return 'x\\ny'\n", "assert square(1) == 1\n", "wrong_answer", "'x\\ny'"),
    ("def square(n):\n    return n\n", "assert square(3) == 9, 'own message'\n", "wrong_answer", "3"),
    ("def square(n):\n    return n\n", "assert square(3) > 5\n", "wrong_answer", None),  # not ==: as written
    ("class R:\n    def __repr__(self):\n        raise ValueError\ndef square(n):\n    return R()\n",
     "assert square(3) == int('9')\n", "wrong_answer", "<R of the answer>"),  # a handle: never its own repr
    ("def square(n):\n    return n\n", "assert square(3) == int('9'), 'own message'\n", "wrong_answer", "3"),
])
def test_failing_assert_reports_the_left_value(lb_local_executor: Any, code: str, test: str, verdict: str,
                                               returned: str | None) -> None:
    result = run(lb_local_executor, code, kinds.assert_test(test))
    assert result["verdict"] == verdict and result.get("returned") == returned
    text = common.format_feedback([result], [kinds.assert_test(test)], int(result["passed"]), 1)
    if returned is not None:
        assert f"Returned (left side of the failing ==):\n{returned}\n" in text
    assert "LB-LEFT" not in text
    if "own message" in test:  # the test's own message is still in the traceback (made outside for literals)
        assert "AssertionError: own message" in text


def test_a_harness_from_another_interpreter_version_runs_from_its_source(lb_local_executor: Any) -> None:
    """The harness travels marshalled, with its source for an interpreter of another version (a
    remote server): with the tag changed, the source path must judge the same."""
    import sys as _sys
    test = kinds.assert_test("for x in range(3):\n    assert add(x, 1) == x + int('1')\n")
    for answer, verdict in ((ASSERT_ANSWER, "passed"), ("def add(a, b):\n    return a - b\n", "wrong_answer")):
        lowered = kinds.lower(answer, test)
        import importlib.util
        tag = f"{_sys.implementation.cache_tag}:{importlib.util.MAGIC_NUMBER.hex()}"
        assert f"_LB_PACKED = ('{tag}'," in lowered.program
        other = dataclasses.replace(lowered, program=lowered.program.replace(f"('{tag}',", "('other-interpreter:0.0',"))
        for variant in (lowered, other):
            [raw] = asyncio.run(lb_local_executor.run_tests(variant.program, [variant.stdio], timeout=10))
            assert kinds.judge(answer, test, variant, raw)["verdict"] == verdict
