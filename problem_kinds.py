"""Kinds of tests beyond stdin/stdout: call tests (a function or a ``Solution`` method) and assert tests.

Owns: the typed tests of each kind (``CallTest``, ``AssertTest``; ``records.StdioTest`` stays as it
is and a plain string is an assert test), the *harness* that turns a call or assert test into an
ordinary stdin/stdout program for any executor (local sandbox or remote API), and the judging of
that program's run outside its process (``judge``). ``run_kind_test`` is the one entry point;
``librarybench_common.run_tests`` calls it for every test that is not stdin/stdout.

Call tests (TACO/APPS ``fn_name``, LiveCodeBench ``functional``). The harness program embeds the
answer as a string, executes it as a module named ``solution`` (never ``__main__``, so its
``if __name__ == "__main__":`` block does not run), reads the arguments as JSON from stdin, calls
the function (or ``Solution().<method>``) and writes the returned value as JSON on a line of its
own, framed by a marker. The toolkit decodes that value and compares it with the expected value
(``values_match``: tuples are lists, floats close, bools strict; TACO/APPS also accept an expected
value wrapped in a one-element list). The expected value never enters the program's process, so
a returned object whose ``__eq__`` says yes to everything gains nothing: it either cannot be
serialised (``wrong_answer`` with the reason) or is serialised as what it really is (an ``int``
subclass as its integer). An exception is a ``runtime_error`` with the answer's traceback (the
harness frame removed). A program could print a frame of its own; it still never saw the
expected value, so a forged frame is no better than returning that value, and two frames are a
``wrong_answer``.

Assert tests (HumanEval ``check(candidate)``, MBPP ``test_list``), two ways (``literal_form``).
A test made only of ``assert <expr> == <literal>`` (``ast.literal_eval``) and the other forms of
``literal_asserts.Check`` (``math.isclose``, ``abs(L - x) < tol``, truth, ``is None``; optionally in one
``def check(x)`` called once at the end, next to docstrings, ``pass``, imports, ``NAME = <literal>``)
is *compared outside*: the toolkit splices each assert to ``_lb_put(<expr>)`` (line numbers kept)
and sends that probe code on stdin after a run token; the harness runs the answer as ``__main__``,
then the probe in its namespace, and writes each value type-tagged (``_lb_encoder``: builtin types
read through their own methods, so a subclass is its builtin value; ``Fraction``, ``Decimal``, numpy
scalars) in token frames, then a ``done`` frame. The toolkit decodes the values and compares them
with the literals by Python's ``==`` or the check (``literal_asserts.judge_values``): the first that differs decides, as in
Python, even if a later left side crashes or times out. The literals never enter the process, so
nothing there (a forked spy, a stateful ``__eq__``, patched builtins, a frame walk) can learn them;
an object the encoder does not know is ``wrong_answer`` with the reason.

Any other assert test runs *split* (``assert_split.py``): the test code in a process apart from the
answer's, calls crossing as type-tagged values, with the same completion proof as below, made
where the answer cannot read the secret. Only when a value of the test's own cannot cross (a
lambda) or the harness cannot fork does its secret-derived fallback frame make ``run_kind_test``
run the test again *in process*, as follows. The answer runs as ``__main__``, then the test code in the
same namespace, then the harness proves that the test code ran to its end: it prints
``sha256(secret + ":" + sha256(test code))``. The secret is made by the toolkit per run
(``secrets.token_hex``); it and the test code arrive on stdin (not in the source, which the answer
can read as ``main.py``), which the harness reads to the end first and then replaces by
``/dev/null`` (stdin is a seekable memory file in the sandbox, hence the replacement, not just the
read), so the answer's own ``input()`` sees an empty stdin as before. Only the harness's local
variables hold them; the test code goes to ``linecache`` only when a traceback is printed. The test
is parsed and compiled, and ``exec`` bound, before the answer runs (it may replace builtins or
``sys.modules["ast"]``); trace and profile hooks are cleared before the test runs. A program that
exits early (``sys.exit(0)``, ``os._exit(0)``, ``exit()`` at the end of a ``__main__`` block) never
prints the proof and gets ``runtime_error`` "the program exited before its tests ran".
A failing ``assert L == R`` reports L: the harness compiles the test code with L bound to a name
(``_lb_left := L``, line numbers kept) and that value in the assertion's message next to the
test's own, which it puts back before printing the traceback; it sends L, as ``ascii()`` shows
it, after the ``assertion-failed`` payload (result key ``returned``). The proof is unchanged; a
forged payload gains nothing. The same rewrite judges that ``==`` with ``_lb_eq``, a heuristic: a
side that also equals a fresh ``object()`` or a different value of the other side's builtin type
(R + 1, R + "\\0", R + [object()]...) is no value at all (an object whose ``__eq__`` says yes to
everything, or to every int), and the assertion fails with that reason. The helper is put in the
namespace after the answer ran. What the in-process way does not stop (the README lists it): a
forked child whose object receives R in ``__eq__`` and pipes it to the parent, an ``__eq__`` true
only on its first call, one that raises on the probes when R is None or not a builtin, ``==`` below
the top of the assert, tolerance checks (the answer's own operators), a frame walk to the secret.
An assert test in process cannot be defended against a hostile answer, hence the split harness.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.util
import json
import marshal
import math
import re
import secrets
import sys
import zlib
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from assert_split import SPLIT_MAIN
from literal_asserts import ENCODER, VALUES_MAIN, judge_values, literal_form, original_lines
from records import StdioTest, TestResult, Verdict

FRAME_PREFIX = "\x1eLB-RESULT "  # a record-separator byte: no ordinary program prints it
PROOF_PREFIX = "\x1eLB-PROOF "
ASSERTION_FAILED = "assertion-failed"
EARLY_EXIT = "the program exited before its tests ran"
EQUALS_ANYTHING = "a value compared by the test's == also equals values that differ from it"
NO_RETURN = "the program exited before the function returned"
FLOAT_REL_TOL = 1e-6
FLOAT_ABS_TOL = 1e-9
_INT_DIGITS = 4000  # longer integers are compared as text (int() refuses more than 4300 digits)


class CallTest(TypedDict):
    """Call ``fn_name`` (or ``class_name().fn_name`` when ``class_name`` is set) with ``args``.

    ``unwrap_expected``: also accept ``expected[0]`` when ``expected`` is a one-element list
    (TACO/APPS store most return values that way; LiveCodeBench does not).
    """

    kind: Literal["call"]
    fn_name: str
    class_name: str | None
    args: list[Any]
    expected: Any
    unwrap_expected: bool


class AssertTest(TypedDict):
    """Test code run after the answer in its namespace (asserts, or ``check(f)`` for HumanEval)."""

    kind: Literal["assert"]
    code: str


KindTest = StdioTest | CallTest | AssertTest | str


def call_test(fn_name: str, args: list[Any], expected: Any, *, class_name: str | None = None,
              unwrap_expected: bool = False) -> CallTest:
    return {"kind": "call", "fn_name": fn_name, "class_name": class_name, "args": list(args),
            "expected": expected, "unwrap_expected": unwrap_expected}


def assert_test(code: str) -> AssertTest:
    return {"kind": "assert", "code": code}


def is_kind_test(test: Any) -> bool:
    """True for tests the harness runs (call, assert, or a plain assert string)."""
    return isinstance(test, str) or (isinstance(test, dict) and test.get("kind") in ("call", "assert"))


def test_kind(test: Any) -> str:
    if isinstance(test, str):
        return "assert"
    return str(test.get("kind") or "stdio") if isinstance(test, dict) else "stdio"


# --------------------------------------------------------------------------------------------
# The harness programs
# --------------------------------------------------------------------------------------------

# Shared by both harnesses: read stdin to the end, give the answer an empty stdin, and an answer
# namespace seeded with the executor's import header (``Counter``, ``List``, ``math``, ...).
_PRELUDE = '''
def _lb_take_stdin():
    import io, os, sys
    data = sys.stdin.buffer.read()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    return data


def _lb_namespace(name, seed):
    import linecache, types
    module = types.ModuleType(name)
    module.__dict__.update({k: v for k, v in seed.items() if not k.startswith("_")})
    module.__file__ = "solution.py"
    linecache.cache["solution.py"] = (len(_LB_ANSWER), None, _LB_ANSWER.splitlines(True), "solution.py")
    return module


def _lb_report(exc):
    import sys, traceback
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None  # drop the harness frame
    sys.stdout.flush()
    traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
    sys.stderr.flush()


def _lb_show_test(linecache, lines):
    """Put the test code in linecache for a traceback: only now, after the answer's last chance
    to read it."""
    try:
        linecache.cache["test.py"] = (sum(map(len, lines)), None, lines, "test.py")
    except BaseException:
        pass
'''

_CALL_MAIN = '''
def _lb_call(seed):
    import json, os, sys
    dumps, loads, write = json.dumps, json.loads, os.write  # bound before the answer can patch them
    digits = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else None
    if digits is not None:
        sys.set_int_max_str_digits(0)  # huge integer arguments are read, then the usual limit is back
    args = loads(_lb_take_stdin().decode("utf-8"))
    if digits is not None:
        sys.set_int_max_str_digits(digits)
    module = _lb_namespace("solution", seed)
    sys.modules["solution"] = module
    try:
        exec(compile(_LB_ANSWER, "solution.py", "exec"), module.__dict__)
        target = _lb_target(module)
        value = target(*args)
    except SystemExit as exc:
        print(f"SystemExit: the answer called exit ({exc.code!r}) instead of returning", file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)
    except BaseException as exc:
        _lb_report(exc)
        os._exit(1)
    if digits is not None:
        sys.set_int_max_str_digits(0)  # huge integers are serialised, not refused
    try:
        payload = dumps({"value": value})
    except BaseException as exc:  # not JSON: a set, an object, a cycle, too deep
        payload = dumps({"unserialisable": f"{type(value).__name__}: {type(exc).__name__}: {exc}"[:500]})
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    frame = ("\\n" + _LB_FRAME + payload + "\\n").encode("ascii")
    while frame:
        frame = frame[write(1, frame):]


def _lb_target(module):
    fn_name, class_name = _LB_FN, _LB_CLASS
    owner = None
    if class_name:
        owner = getattr(module, class_name, None)
        if owner is None:
            raise NameError(f"the answer defines no class {class_name!r}")
    elif not callable(getattr(module, fn_name, None)) and isinstance(getattr(module, "Solution", None), type):
        owner = module.Solution  # TACO/APPS: a LeetCode-style answer for an fn_name problem
    if owner is not None:
        target = getattr(owner(), fn_name, None)
        where = f"{getattr(owner, '__name__', class_name)}().{fn_name}"
    else:
        target = getattr(module, fn_name, None)
        where = fn_name
    if not callable(target):
        raise NameError(f"the answer defines no function {where!r}")
    return target


_lb_call(dict(globals()))
'''

# The helpers of both assert harnesses (explained asserts, the equality heuristic); ``_ASSERT_RUN``
# runs the test in the answer's process, ``assert_split.SPLIT_MAIN`` in a process of its own.
_ASSERT_HELPERS = '''
_LB_LEFT = "\\x1eLB-LEFT"
_LB_LIAR = "\\x1eLB-LIAR"


def _lb_test_code(test, ast):
    """The test code compiled so that a failing ``assert L == R`` (no message of its own) carries
    the value of L: the feedback can then say what the answer returned. Called before the answer
    runs, so a patched ``compile`` or ``sys.modules["ast"]`` cannot change it."""
    try:
        tree = ast.parse(test, "test.py")
    except SyntaxError:
        return compile(test, "test.py", "exec")  # raises the SyntaxError, as before

    class Explain(ast.NodeTransformer):
        def visit_Assert(self, node):
            test = node.test
            if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
                left = ast.NamedExpr(target=ast.Name("_lb_left", ast.Store()), value=test.left)
                node.test = ast.Call(ast.Name("_lb_eq", ast.Load()), [left, test.comparators[0]], [])
                own = node.msg if node.msg is not None else ast.Constant(None)  # evaluated on failure, as before
                node.msg = ast.Tuple([ast.Constant(_LB_LEFT), ast.Name("_lb_left", ast.Load()), own], ast.Load())
            return node

    try:
        return compile(ast.fix_missing_locations(Explain().visit(tree)), "test.py", "exec")
    except SyntaxError:  # a scope where the name cannot be bound: the test as written
        return compile(test, "test.py", "exec")


def _lb_other(value):
    """A value of ``value``'s exact builtin type that differs from it, or None."""
    kind = type(value)
    if kind is bool:
        return not value
    if kind is int:
        return value + 1
    if kind in (float, complex):
        return value * 2 + 1
    if kind in (str, bytes):
        return value + kind("\\0" if kind is str else b"\\0")
    if kind in (list, tuple):
        return value + kind([object()])
    if kind is dict:
        return {**value, object(): 0}
    if kind in (set, frozenset):
        return value | {object()}
    return None


def _lb_lies(value, other):
    """Whether ``value`` also equals values that differ from ``other`` (an object whose ``==``
    says yes to everything, or to every value of a type): then it is no value at all."""
    for probe in (object(), _lb_other(other)):
        if probe is None:
            continue
        try:
            if other == probe:  # the probe does not differ from the honest side (inf, nan...)
                continue
        except Exception:
            continue
        try:
            if value == probe:
                return True
        except Exception:
            pass
    return False


def _lb_eq(left, right):
    """``left == right`` for a rewritten ``assert L == R``; a side that equals anything fails it."""
    if not (left == right):
        return False
    for value, other in ((left, right), (right, left)):
        if _lb_lies(value, other):
            raise AssertionError(_LB_LIAR, ascii(type(value).__name__)[:100])
    return True


def _lb_liar_of(exc):
    """`` equals-anything <type>`` for an assertion ``_lb_eq`` failed, else ``""``."""
    try:
        args = exc.args
        if len(args) == 2 and type(args[0]) is str and args[0] == _LB_LIAR and type(args[1]) is str:
            exc.args = ("a side of the == equals different values at once (type " + args[1] + ")",)
            return " equals-anything " + args[1]
    except BaseException:
        pass
    return ""


def _lb_left_of(exc):
    """`` returned <ascii repr>`` of an explained assertion (its own message put back), else ``""``."""
    args = exc.args
    try:
        if len(args) != 1 or type(args[0]) is not tuple or len(args[0]) != 3 or type(args[0][0]) is not str \\
                or args[0][0] != _LB_LEFT:
            return ""
    except BaseException:
        return ""
    exc.args = () if args[0][2] is None else (args[0][2],)
    try:
        text = ascii(args[0][1]).replace("\\n", "\\\\n").replace("\\r", "\\\\r")
    except BaseException:
        return " returned (a value that cannot be shown)"
    return " returned " + (text if len(text) <= 2000 else text[:1000] + " ... " + text[-1000:])


'''

_ASSERT_RUN = '''
def _lb_assert(seed):
    import ast, hashlib, linecache, os, sys
    # bound before the answer runs: it may replace builtins, sys.modules or sys hooks afterwards
    sha256, write, run, settrace, setprofile = hashlib.sha256, os.write, exec, sys.settrace, sys.setprofile
    secret, _, test = _lb_take_stdin().partition(b"\\n")  # the test code comes on stdin, after the secret
    test = test.decode("utf-8")
    state = sha256(secret.strip() + b":")  # the secret is only inside this hash object
    state.update(sha256(test.encode("utf-8")).hexdigest().encode("ascii"))
    lines = test.splitlines(True)
    try:
        code, error = _lb_test_code(test, ast), None
    except SyntaxError as exc:  # reported after the answer ran, as before
        code, error = None, exc
    del test
    module = _lb_namespace("__main__", seed)
    sys.modules["__main__"] = module  # the answer runs as __main__, as in the benchmarks
    try:
        run(compile(_LB_ANSWER, "solution.py", "exec"), module.__dict__)
    except Exception as exc:  # SystemExit passes: exit 0 then means no proof, i.e. an early exit
        _lb_report(exc)
        sys.exit(1)
    try:
        settrace(None)  # a trace hook of the answer's would see (and could change) the test's frames
        setprofile(None)
        module.__dict__["_lb_eq"] = _lb_eq  # after the answer ran: it did not see this one
        if error is not None:
            raise error
        run(code, module.__dict__)
    except AssertionError as exc:  # the test ran and found the answer wrong
        left = _lb_liar_of(exc) or _lb_left_of(exc)
        _lb_show_test(linecache, lines)
        _lb_report(exc)
        write(1, ("\\n" + _LB_PROOF + "assertion-failed" + left + "\\n").encode("ascii"))
        os._exit(0)
    except Exception as exc:
        _lb_show_test(linecache, lines)
        _lb_report(exc)
        sys.exit(1)
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    frame = ("\\n" + _LB_PROOF + state.hexdigest() + "\\n").encode("ascii")
    while frame:
        frame = frame[write(1, frame):]


_lb_assert(dict(globals()))
'''




def dumps(value: Any) -> str:
    """``json.dumps``, also for integers longer than the interpreter's int-to-str limit."""
    try:
        return json.dumps(value)
    except ValueError:
        if not hasattr(sys, "set_int_max_str_digits"):
            raise
        old = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(0)
        try:
            return json.dumps(value)
        finally:
            sys.set_int_max_str_digits(old)


@dataclass(frozen=True)
class Lowered:
    """A kind test as an ordinary stdin/stdout run: the program, its stdin test, what to check."""

    program: str
    stdio: StdioTest
    token: str = ""  # the call harness's run token, first word of its result line
    proof: str | None = None  # the value the assert harness must print
    fallback: str | None = None  # the split harness's request for the in-process one
    expected: tuple[Any, ...] | None = None  # literal-form assert test: the right sides, in order
    messages: tuple[str | None, ...] = ()  # and the asserts' own messages
    places: tuple[tuple[int, str], ...] = ()  # and their (line, function) in the test code


def lower(code: str, test: Any, in_process: bool = False) -> Lowered:
    """The harness program and stdin for one call or assert test (``in_process``: an assert test
    not of the literal form runs in the answer's process, the split harness's fallback)."""
    if isinstance(test, str):
        test = assert_test(test)
    if test.get("kind") == "call":
        return _lower_call(code, test)
    return _lower_assert(code, test, in_process)


# The harness as it travels: its code object marshalled (compiling ~600 lines of harness took
# 1-4 ms of every test), with its source for an interpreter of another version (a remote server).
_UNPACK = '''
def _lb_unpack():
    import binascii, marshal, sys, zlib
    tag, blob, source = _LB_PACKED
    try:  # the bytecode's magic number too: it changes between pre-releases of one version
        import _frozen_importlib_external
        magic = _frozen_importlib_external.MAGIC_NUMBER.hex()
    except Exception:
        magic = None
    if magic is not None and tag == str(sys.implementation.cache_tag) + ":" + magic:
        try:
            return marshal.loads(zlib.decompress(binascii.a2b_base64(blob)))
        except Exception:
            pass
    return compile(zlib.decompress(binascii.a2b_base64(source)).decode("utf-8"), "<harness>", "exec")


exec(_lb_unpack())
'''


@functools.lru_cache(maxsize=None)
def _packed(blocks: tuple[str, ...]) -> str:
    """``_LB_PACKED = (interpreter tag, marshalled code, source)``, both base64 of zlib: a long plain
    string literal costs the program's compile almost nothing."""
    source = "\n".join(blocks)
    code = compile(source, "<harness>", "exec", dont_inherit=True, optimize=0)

    def pack(data: bytes) -> str:
        return base64.b64encode(zlib.compress(data, 6)).decode("ascii")

    tag = f"{sys.implementation.cache_tag}:{importlib.util.MAGIC_NUMBER.hex()}"
    return f"_LB_PACKED = {(tag, pack(marshal.dumps(code)), pack(source.encode('utf-8')))!r}\n"


def harness_program(head: list[str], blocks: tuple[str, ...]) -> str:
    """The harness program: the run's own constants (``_LB_ANSWER``, tokens), then the harness,
    run as if written out after them (``exec`` in the same module namespace)."""
    return "\n".join(head) + "\n" + _packed(blocks) + _UNPACK


def _lower_call(code: str, test: CallTest) -> Lowered:
    token = secrets.token_hex(6)
    frame = FRAME_PREFIX + token + " "
    program = harness_program([
        f"_LB_ANSWER = {code!r}",
        f"_LB_FN = {test['fn_name']!r}",
        f"_LB_CLASS = {test.get('class_name')!r}",
        f"_LB_FRAME = {frame!r}",
    ], (_PRELUDE, _CALL_MAIN))
    stdin = dumps(list(test["args"]))
    return Lowered(program, {"stdin": stdin, "stdout": ""}, token=token)


def _lower_assert(code: str, test: AssertTest, in_process: bool = False) -> Lowered:
    """The literal form when the test has it; else the split harness (the test in a process apart
    from the answer's), or with ``in_process`` the harness that runs both in one process."""
    form = literal_form(test["code"])
    if form is not None:
        return _lower_values(code, *form)
    secret = secrets.token_hex(16)
    digest = hashlib.sha256(test["code"].encode("utf-8")).hexdigest()
    proof = hashlib.sha256(f"{secret}:{digest}".encode("ascii")).hexdigest()
    harness = (_ASSERT_HELPERS, _ASSERT_RUN) if in_process else (_ASSERT_HELPERS, ENCODER, SPLIT_MAIN)
    program = harness_program([
        f"_LB_ANSWER = {code!r}",
        f"_LB_PROOF = {PROOF_PREFIX!r}",
    ], (_PRELUDE, *harness))  # the test code is not in the program (the answer could read it): it comes on stdin
    fallback = None if in_process else hashlib.sha256(f"{secret}:in-process:{digest}".encode("ascii")).hexdigest()
    return Lowered(program, {"stdin": secret + "\n" + test["code"], "stdout": ""}, proof=proof, fallback=fallback)


def _lower_values(code: str, probe: str, expected: tuple[Any, ...], messages: tuple[str | None, ...],
                  places: tuple[tuple[int, str], ...]) -> Lowered:
    token = secrets.token_hex(8)  # on stdin, not in the program: a frame cannot be made in advance
    program = harness_program([
        f"_LB_ANSWER = {code!r}",
        f"_LB_FRAME = {FRAME_PREFIX!r}",
    ], (_PRELUDE, VALUES_MAIN))
    return Lowered(program, {"stdin": token + "\n" + probe, "stdout": ""}, token=token, expected=expected,
                   messages=messages, places=places)


# --------------------------------------------------------------------------------------------
# Judging outside the program's process
# --------------------------------------------------------------------------------------------


class BigDigits(str):
    """An integer too long for ``int()``'s default limit, kept as its digits."""


def _parse_int(text: str) -> int | BigDigits:
    return int(text) if len(text.lstrip("-")) <= _INT_DIGITS else BigDigits(text)


def decode_value(payload: str) -> Any:
    return json.loads(payload, parse_int=_parse_int)


def _digits(value: Any) -> str | None:
    """An integer's decimal text (``BigDigits`` as they are), None for anything else."""
    if isinstance(value, BigDigits):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return str(value)
        except ValueError:  # over 4300 digits: only a BigDigits can hold such a value here
            return None
    return None


def values_match(actual: Any, expected: Any) -> bool:
    """Equality of JSON values: lists and tuples alike, bools strict, whole numbers exactly (a
    float that is a whole number against an integer: ``1e9`` is not ``999999937``), other floats
    within a tolerance (``sum([0.1] * 30)`` is 3)."""
    if isinstance(actual, BigDigits) or isinstance(expected, BigDigits):
        texts = (_digits(actual), _digits(expected))  # an expected int of 4001-4300 digits is an int
        return None not in texts and texts[0] == texts[1]
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(actual, (int, float)) and isinstance(expected, (int, float)):
        if isinstance(expected, int) and (isinstance(actual, int) or actual.is_integer()):
            return actual == expected  # a whole number is exact: 3.0 is 3, 1e9 is not 999999937
        try:
            actual, expected = float(actual), float(expected)
        except OverflowError:  # an integer past the largest float (the answer's 10 ** 400): no float is near it
            return False
        if math.isnan(actual) or math.isnan(expected):
            return math.isnan(actual) and math.isnan(expected)
        return math.isclose(actual, expected, rel_tol=FLOAT_REL_TOL, abs_tol=FLOAT_ABS_TOL)
    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
        return len(actual) == len(expected) and all(values_match(a, e) for a, e in zip(actual, expected))
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(values_match(actual[k], expected[k]) for k in actual)
    if actual is None or expected is None:
        return actual is None and expected is None
    return type(actual) is type(expected) and actual == expected


def call_passes(returned: Any, test: CallTest) -> bool:
    expected = test["expected"]
    if values_match(returned, expected):
        return True
    wrapped = test.get("unwrap_expected") and isinstance(expected, list) and len(expected) == 1
    return bool(wrapped) and values_match(returned, expected[0])


def _run_failure(result: dict[str, Any]) -> Verdict | None:
    """The executor's verdict when the run itself failed (timeout, limits, non-zero exit), else None."""
    from librarybench_common import verdict_of
    verdict = result.get("verdict")
    if verdict in ("timeout", "memory_limit", "output_limit", "runtime_error"):
        return verdict
    plain = {k: v for k, v in result.items() if k != "verdict"}
    verdict = verdict_of({**plain, "passed": False})
    return None if verdict == "wrong_answer" else verdict


def split_frames(stdout: str, marker: str) -> tuple[str, list[str]]:
    """The program's own output and the payloads of the framed lines (the harness writes
    ``"\\n" + marker + payload + "\\n"``; both newlines go with the frame)."""
    pattern = re.compile("\n?" + re.escape(marker) + "([^\n]*)\n?")
    return pattern.sub("", stdout), pattern.findall(stdout)


def judge(code: str, test: Any, lowered: Lowered, raw: dict[str, Any]) -> TestResult:
    """The verdict of one harness run, in the remote API's result shape.

    Extra keys: ``reason`` (why it failed, when the output alone does not say) and, for call
    tests, ``returned`` (the returned value as JSON text, or None); for a failing ``assert L == R``,
    ``returned`` is L as ``ascii()`` shows it.
    """
    run = dict((raw.get("exec_output") or {}).get("run_output") or {})
    run.setdefault("stdout", "")
    run.setdefault("stderr", "")
    marker = PROOF_PREFIX if lowered.proof is not None else FRAME_PREFIX  # call and literal form: frames
    own, payloads = split_frames(str(run.get("stdout") or ""), marker)
    run["stdout"] = own
    failure = _run_failure(raw)
    returned: str | None = None
    reason: str | None = None
    if lowered.expected is not None:
        told = judge_values(payloads, lowered.token, lowered.expected)
        verdict, reason, returned = told.verdict or "runtime_error", told.reason, told.returned
        if failure is not None and not told.decided:
            verdict, reason = failure, None
        elif told.verdict is None:
            reason = EARLY_EXIT
        probe = lowered.stdio["stdin"].partition("\n")[2]
        run["stderr"] = original_lines(str(run["stderr"]), probe, test if isinstance(test, str) else test["code"])
        if told.failed is not None:  # the traceback Python would have printed
            run["stderr"] = str(run["stderr"]) + _assertion_traceback(test, lowered, told.failed)
    elif failure is not None:
        verdict = failure
    elif lowered.proof is not None:
        verdict, reason = _judge_assert(payloads, lowered.proof)
    else:
        verdict, reason, returned = _judge_call(payloads, lowered.token, test)
    result: dict[str, Any] = {
        "code": code,
        "test": test,
        "passed": verdict == "passed",
        "exec_output": {"run_output": run, "compile_output": (raw.get("exec_output") or {}).get("compile_output")},
        "uncaught_exception": raw.get("uncaught_exception", "None"),
        "verdict": verdict,
        "reason": reason,
    }
    if test_kind(test) == "assert":  # which harness judged it: only "in_process" is a heuristic verdict
        result["harness"] = "literal" if lowered.expected is not None else (
            "split" if lowered.fallback is not None else "in_process")
    if lowered.proof is None:
        result["returned"] = returned  # a literal-form assert test: the failing left side, ascii()
    elif verdict == "wrong_answer" and payloads[0].startswith(ASSERTION_FAILED + " returned "):
        # the left side of the failing ``assert L == R``, as Python's ascii() shows it (not JSON)
        result["returned"] = payloads[0][len(ASSERTION_FAILED + " returned "):]
    return result  # type: ignore[return-value]


def _assertion_traceback(test: Any, lowered: Lowered, index: int) -> str:
    """The traceback Python prints for the failing assert of a literal-form test (it ran outside)."""
    code = test if isinstance(test, str) else test["code"]
    line, scope = lowered.places[index]
    lines = code.splitlines()
    text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    message = lowered.messages[index]
    return (f'Traceback (most recent call last):\n  File "test.py", line {line}, in {scope}\n    {text}\n'
            f"AssertionError{': ' + message if message is not None else ''}\n")


def _judge_assert(payloads: list[str], proof: str) -> tuple[Verdict, str | None]:
    if proof in payloads:
        return "passed", None
    if len(payloads) == 1 and payloads[0].startswith(ASSERTION_FAILED + " equals-anything "):
        kind = payloads[0][len(ASSERTION_FAILED + " equals-anything "):]
        return "wrong_answer", f"{EQUALS_ANYTHING} (type {kind})"
    if len(payloads) == 1 and (payloads[0] == ASSERTION_FAILED or payloads[0].startswith(ASSERTION_FAILED + " ")):
        return "wrong_answer", "an assertion of the test failed"
    if payloads:
        return "runtime_error", "the test's completion proof is wrong (the program printed one of its own)"
    return "runtime_error", EARLY_EXIT




def _judge_call(payloads: list[str], token: str, test: CallTest) -> tuple[Verdict, str | None, str | None]:
    if not payloads:
        return "runtime_error", NO_RETURN, None
    if len(payloads) > 1:
        return "wrong_answer", f"the output holds {len(payloads)} result lines (the program wrote its own)", None
    head, _, body = payloads[0].partition(" ")
    if head != token:
        return "wrong_answer", "the result line is not the harness's (the program wrote its own)", None
    try:
        message = decode_value(body)
    except (ValueError, RecursionError) as exc:
        return "wrong_answer", f"the returned value could not be decoded: {exc}", None
    if not isinstance(message, dict) or len(message) != 1 or not ({"value", "unserialisable"} & message.keys()):
        return "wrong_answer", "the result line is not the harness's (the program wrote its own)", None
    if "unserialisable" in message:
        why = str(message["unserialisable"])[:500]  # the harness's own is short; a forged one need not be
        return "wrong_answer", f"the returned value cannot be serialised as JSON ({why})", None
    text = body[len('{"value": '):-1]
    if call_passes(message["value"], test):
        return "passed", None, text
    return "wrong_answer", None, text


async def run_kind_test(executor: Any, code: str, test: Any, timeout: float | None, **options: Any) -> TestResult:
    """Run one call or assert test on any executor (it only ever sees a stdin/stdout program);
    ``options`` (``memory_mb``) go to the executor's ``run_tests``."""
    lowered = lower(code, test)
    [raw] = await executor.run_tests(lowered.program, [lowered.stdio], timeout=timeout, **options)
    if lowered.fallback is not None and _asks_for_in_process(raw, lowered.fallback):
        lowered = lower(code, test, in_process=True)
        [raw] = await executor.run_tests(lowered.program, [lowered.stdio], timeout=timeout, **options)
    return judge(code, test, lowered, raw)


def _asks_for_in_process(raw: dict[str, Any], fallback: str) -> bool:
    """The split harness asked for the in-process one: a value of the test's could not be sent to
    the answer, or it could not fork. The frame holds a hash of the run's secret: only the part
    of the harness the answer never reaches can write it."""
    stdout = str(((raw.get("exec_output") or {}).get("run_output") or {}).get("stdout") or "")
    return fallback in split_frames(stdout, PROOF_PREFIX)[1]


# --------------------------------------------------------------------------------------------
# Feedback
# --------------------------------------------------------------------------------------------


def describe_call(test: CallTest) -> str:
    """``Solution().twoSum([2, 7], 9)``: the call as a model would write it."""
    args = ", ".join(dumps(a) for a in test["args"])
    owner = f"{test['class_name']}()." if test.get("class_name") else ""
    return f"{owner}{test['fn_name']}({args})"


def feedback_parts(test: Any, result: dict[str, Any], cut: Any, field_limit: int) -> list[str] | None:
    """The lines describing a failed call or assert test (None for stdin/stdout tests)."""
    if not is_kind_test(test):
        return None
    parts: list[str] = []
    if test_kind(test) == "call":
        parts.append(f"Call:\n{cut(describe_call(test), field_limit)}")
        parts.append(f"Expected return value:\n{cut(dumps(test['expected']), field_limit)}")
        returned = result.get("returned")
        if result.get("verdict") == "timeout":
            parts.append("Returned: (nothing: the program was stopped at the time limit)")
        elif returned is not None:
            parts.append(f"Returned:\n{cut(returned, field_limit)}")
    else:
        code = test if isinstance(test, str) else test["code"]
        parts.append(f"Test code:\n{cut(code, field_limit)}")
        if result.get("returned") is not None:
            parts.append(f"Returned (left side of the failing ==):\n{cut(result['returned'], field_limit)}")
    if result.get("reason"):
        parts.append(f"Reason: {result['reason']}")
    return [p if p.endswith("\n") else p + "\n" for p in parts]  # each on lines of its own
