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

Assert tests (HumanEval ``check(candidate)``, MBPP ``test_list``). The answer runs as
``__main__`` (as the benchmarks do), then the test code in the same namespace, then the harness
proves that the test code ran to its end: it prints ``sha256(secret + ":" + sha256(test code))``.
The secret is made by the toolkit per run (``secrets.token_hex``) and is *not* in the source: it
arrives on stdin, which the harness reads to the end first and then replaces by ``/dev/null``
(stdin is a seekable memory file in the sandbox, hence the replacement, not just the read), so
the answer's own ``input()`` sees an empty stdin as before. Only the harness's local variables
hold it, never a global of the answer's namespace. A program that exits early (``sys.exit(0)``,
``os._exit(0)``, ``exit()`` at the end of a ``__main__`` block) never prints the proof and gets
``runtime_error`` "the program exited before its tests ran".
A failing ``assert L == R`` reports L: the harness compiles the test code with L bound to a name
(``_lb_left := L``, line numbers kept) and that value in the assertion's message next to the
test's own, which it puts back before printing the traceback; it sends L, as ``ascii()`` shows
it, after the ``assertion-failed`` payload (result key ``returned``). The proof is unchanged; a
forged payload gains nothing. The same rewrite judges that ``==`` with ``_lb_eq``: a side that
also equals a fresh ``object()`` or a different value of the other side's builtin type (R + 1,
R + "\\0", R + [object()]...) is no value at all (an object whose ``__eq__`` says yes to
everything, or to every int), and the assertion fails with that reason. The helper is put in the
namespace after the answer ran. Other comparisons (``abs(L - R) < eps``, ``math.isclose``, a
bare ``assert L``) are the answer's own operators and are not checked. What this does not stop: a program
that deliberately walks the interpreter (``sys._getframe(1).f_locals``, ``gc``) to the secret.
That is the same class of attack as replacing the functions a test calls; an assert test runs
inside the answer's process and cannot be defended against a hostile answer (use call tests,
which compare outside, when that matters).
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
import secrets
import sys
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

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

_ASSERT_MAIN = '''
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


_VALUES_MAIN = '''
def _lb_encoder():
    """``encode(value)``: the value as type-tagged JSON data, read through the builtin types'
    own methods (bound now, before the answer runs), so a subclass is encoded as what it is."""
    kind, is_a, ident, fmt, length = type, isinstance, id, format, len
    int_text, float_text, str_text = int.__format__, float.__repr__, str.__str__
    list_iter, tuple_iter, set_iter, frozenset_iter, dict_items = (
        list.__iter__, tuple.__iter__, set.__iter__, frozenset.__iter__, dict.items)
    bytes_hex, bytearray_hex = bytes.hex, bytearray.hex
    attr, text = getattr, str

    def encode(value, path=()):
        if length(path) > 200:
            raise ValueError("nested too deeply")
        t = kind(value)
        if value is None:
            return ["none"]
        if t is bool:
            return ["bool", value is True]
        if is_a(value, int):
            return ["int", int_text(value, "x")]
        if is_a(value, float):
            return ["float", float_text(value)]
        if is_a(value, complex):
            return ["complex", float_text(complex.real.__get__(value)), float_text(complex.imag.__get__(value))]
        if is_a(value, str):
            return ["str", str_text(value)]
        if is_a(value, bytes):
            return ["bytes", bytes_hex(value)]
        if is_a(value, bytearray):
            return ["bytearray", bytearray_hex(value)]
        if t.__module__ == "numpy" and attr(value, "ndim", None) == 0:
            return encode(value.item(), path)  # a numpy scalar: its Python value
        if t.__module__ == "fractions" and t.__qualname__ == "Fraction":
            return ["fraction", int_text(value.numerator, "x"), int_text(value.denominator, "x")]
        if t.__module__ == "decimal" and t.__qualname__ == "Decimal":
            return ["decimal", text(value)]
        if ident(value) in path:
            raise ValueError("it contains itself")
        inner = path + (ident(value),)
        for base, tag, items in ((list, "list", list_iter), (tuple, "tuple", tuple_iter), (set, "set", set_iter),
                                 (frozenset, "frozenset", frozenset_iter)):
            if is_a(value, base):
                return [tag, [encode(item, inner) for item in items(value)]]
        if is_a(value, dict):
            return ["dict", [[encode(k, inner), encode(v, inner)] for k, v in dict_items(value)]]
        raise TypeError("not a builtin value the toolkit can compare")

    return encode


def _lb_values(seed):
    import json, linecache, os, sys
    dumps, write, run, name_of = json.dumps, os.write, exec, type
    token, _, probe = _lb_take_stdin().partition(b"\\n")
    frame = _LB_FRAME + token.decode("ascii").strip() + " "
    probe = probe.decode("utf-8")
    lines = probe.splitlines(True)
    code = compile(probe, "test.py", "exec")  # the left sides only: the expected values never come here
    del probe
    encode = _lb_encoder()

    def emit(payload):
        try:
            sys.stdout.flush()
        except BaseException:
            pass
        data = ("\\n" + frame + payload + "\\n").encode("ascii")
        while data:
            data = data[write(1, data):]

    def put(value):
        try:
            payload = dumps({"value": encode(value)})
        except BaseException as exc:
            payload = dumps({"unencodable": f"{name_of(value).__name__}: {exc}"[:500]})
        emit(payload)

    module = _lb_namespace("__main__", seed)
    sys.modules["__main__"] = module
    try:
        run(compile(_LB_ANSWER, "solution.py", "exec"), module.__dict__)
    except Exception as exc:  # SystemExit passes: no "done" frame, i.e. an early exit
        _lb_report(exc)
        sys.exit(1)
    module.__dict__["_lb_put"] = put
    try:
        run(code, module.__dict__)
    except Exception as exc:
        _lb_show_test(linecache, lines)
        _lb_report(exc)
        sys.exit(1)
    emit(dumps({"done": True}))


_lb_values(dict(globals()))
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
    expected: tuple[Any, ...] | None = None  # literal-form assert test: the right sides, in order
    messages: tuple[str | None, ...] = ()  # and the asserts' own messages
    places: tuple[tuple[int, str], ...] = ()  # and their (line, function) in the test code


def lower(code: str, test: Any) -> Lowered:
    """The harness program and stdin for one call or assert test."""
    if isinstance(test, str):
        test = assert_test(test)
    if test.get("kind") == "call":
        return _lower_call(code, test)
    return _lower_assert(code, test)


def _lower_call(code: str, test: CallTest) -> Lowered:
    token = secrets.token_hex(6)
    frame = FRAME_PREFIX + token + " "
    program = "\n".join([
        f"_LB_ANSWER = {code!r}",
        f"_LB_FN = {test['fn_name']!r}",
        f"_LB_CLASS = {test.get('class_name')!r}",
        f"_LB_FRAME = {frame!r}",
        _PRELUDE, _CALL_MAIN,
    ])
    stdin = dumps(list(test["args"]))
    return Lowered(program, {"stdin": stdin, "stdout": ""}, token=token)


def _lower_assert(code: str, test: AssertTest) -> Lowered:
    form = literal_form(test["code"])
    if form is not None:
        return _lower_values(code, *form)
    secret = secrets.token_hex(16)
    digest = hashlib.sha256(test["code"].encode("utf-8")).hexdigest()
    proof = hashlib.sha256(f"{secret}:{digest}".encode("ascii")).hexdigest()
    program = "\n".join([
        f"_LB_ANSWER = {code!r}",
        f"_LB_PROOF = {PROOF_PREFIX!r}",
        _PRELUDE, _ASSERT_MAIN,
    ])  # the test code is not in the program (the answer could read it): it comes on stdin
    return Lowered(program, {"stdin": secret + "\n" + test["code"], "stdout": ""}, proof=proof)


# An assert test made only of ``assert <expr> == <literal>`` (MBPP ``test_list`` lines, most
# HumanEval ``check`` functions) is judged outside: the harness runs the test code with each assert
# replaced by ``_lb_put(<expr>)``, which sends the value framed on stdout; the literal never enters
# the program, so nothing in its process (a spy, a stateful ``__eq__``, a patched builtin) can learn
# or fake the comparison. Other assert tests keep the in-process harness above.

_PLAIN = (ast.Pass, ast.Import, ast.ImportFrom)


def _is_literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _literal_assert(node: ast.stmt) -> tuple[ast.expr, Any] | None:
    """(the probed side, the literal) of ``assert L == <literal>`` (or ``<literal> == L``)."""
    test = node.test if isinstance(node, ast.Assert) else None
    if isinstance(node, ast.Assert) and node.msg is not None and not _is_literal(node.msg):
        return None  # a message the harness would have to evaluate
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return None
    left, right = test.left, test.comparators[0]
    if _is_literal(right):
        return left, ast.literal_eval(right)
    if _is_literal(left):
        return right, ast.literal_eval(left)
    return None


def _plain_statement(node: ast.stmt) -> bool:
    """A statement that runs once and cannot see the expected values: pass, an import, a docstring,
    ``NAME = <literal>`` (HumanEval's ``METADATA``)."""
    if isinstance(node, _PLAIN):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return True
    return (isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets)
            and _is_literal(node.value))


def _asserts_of(body: list[ast.stmt]) -> list[ast.Assert] | None:
    asserts = []
    for node in body:
        if _literal_assert(node) is not None:
            asserts.append(node)
        elif not _plain_statement(node):
            return None
    return asserts


def _check_asserts(tree: ast.Module) -> list[ast.Assert] | None:
    """The asserts of a test made of literal-form asserts, optionally inside one ``def check(x)``
    (plain statements only) called exactly once at the end as ``check(name)``."""
    body = tree.body
    defs = [n for n in body if isinstance(n, ast.FunctionDef)]
    if not defs:
        return _asserts_of(body)
    [check] = defs if len(defs) == 1 else [None]
    if check is None or check.decorator_list or check.returns or len(check.args.args) != 1 \
            or check.args.vararg or check.args.kwarg or check.args.kwonlyargs or check.args.posonlyargs \
            or check.args.defaults or check.args.args[0].annotation:
        return None
    last = body[-1]
    if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call) and not last.value.keywords
            and isinstance(last.value.func, ast.Name) and last.value.func.id == check.name
            and len(last.value.args) == 1 and isinstance(last.value.args[0], ast.Name)):
        return None
    outer = [n for n in body[:-1] if n is not check]
    inner, around = _asserts_of(check.body), _asserts_of(outer)
    if inner is None or around is None or any(isinstance(n, ast.Assert) for n in outer) or not inner:
        return None
    if any(isinstance(n, (ast.Assign)) and any(t.id == check.name for t in n.targets) for n in outer):
        return None
    return inner


def literal_form(code: str) -> tuple[str, tuple[Any, ...], tuple[str | None, ...], tuple[tuple[int, str], ...]] | None:
    """(the probe code, the literals, the asserts' own messages, their places) when every assert of ``code`` is ``assert L == <literal>``
    run once in order, else None. The probe code is ``code`` with each assert spliced to
    ``_lb_put(L)``, line numbers kept; the literals are not in it."""
    try:
        tree = ast.parse(code, "test.py")
        asserts = _check_asserts(tree)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    if not asserts:
        return None
    raw = code.encode("utf-8")
    starts = [0]
    for line in raw.splitlines(True):
        starts.append(starts[-1] + len(line))

    def offset(line: int, col: int) -> int:
        return starts[line - 1] + col

    pieces, at, expected, messages, places = [], 0, [], [], []
    for node in asserts:
        probed, literal = _literal_assert(node)  # type: ignore[misc]
        a, b = offset(node.lineno, node.col_offset), offset(node.end_lineno or 0, node.end_col_offset or 0)
        c, d = offset(probed.lineno, probed.col_offset), offset(probed.end_lineno or 0, probed.end_col_offset or 0)
        pieces += [raw[at:a], b"_lb_put(" + b"\n" * raw[a:c].count(b"\n"), raw[c:d],
                   b"\n" * raw[d:b].count(b"\n") + b")"]
        at = b
        expected.append(literal)
        messages.append(None if node.msg is None else str(ast.literal_eval(node.msg)))
        places.append((node.lineno, "<module>" if node in tree.body else "check"))
    pieces.append(raw[at:])
    probe = b"".join(pieces).decode("utf-8")
    try:
        ast.parse(probe, "test.py")
    except (SyntaxError, ValueError):
        return None
    return probe, tuple(expected), tuple(messages), tuple(places)


def _lower_values(code: str, probe: str, expected: tuple[Any, ...], messages: tuple[str | None, ...],
                  places: tuple[tuple[int, str], ...]) -> Lowered:
    token = secrets.token_hex(8)  # on stdin, not in the program: a frame cannot be made in advance
    program = "\n".join([
        f"_LB_ANSWER = {code!r}",
        f"_LB_FRAME = {FRAME_PREFIX!r}",
        _PRELUDE, _VALUES_MAIN,
    ])
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


def values_match(actual: Any, expected: Any) -> bool:
    """Equality of JSON values: lists and tuples alike, bools strict, an integer expected value
    exactly (a float that is that integer matches), a float expected value within a tolerance."""
    if isinstance(actual, BigDigits) or isinstance(expected, BigDigits):
        return type(actual) is type(expected) and str(actual) == str(expected)
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(actual, (int, float)) and isinstance(expected, (int, float)):
        if isinstance(expected, int):  # an integer answer is exact (3.0 is 3; 1e9 is not 999999937)
            return actual == expected
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
    tests, ``returned`` (the returned value as JSON text, or None).
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
        verdict, reason, returned, decided = _judge_values(payloads, lowered.token, lowered.expected,
                                                                 lowered.messages)
        if failure is not None and not decided:
            verdict, reason = failure, None
        elif verdict is None:
            verdict, reason = "runtime_error", EARLY_EXIT
        elif reason and reason.startswith(ASSERTION_FAILED + " "):  # as Python would have reported it
            run["stderr"] = str(run["stderr"]) + _assertion_traceback(test, lowered, int(reason.split()[-1]))
            reason = "an assertion of the test failed"
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


_SCALARS: dict[str, Any] = {
    "bool": lambda v: v is True, "float": float, "str": str,
    "int": lambda v: int(v, 16), "bytes": bytes.fromhex, "bytearray": bytearray.fromhex,
}
_SEQUENCES: dict[str, Any] = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}


def decode_tagged(data: Any) -> Any:
    """The Python value of the literal-form harness's type-tagged encoding (subclasses arrive as
    their builtin type: a ``Counter`` as a dict, a namedtuple as a tuple, numpy scalars as Python
    numbers), compared with the test's literal by Python's own ``==``."""
    tag, *rest = data
    if tag == "none" and not rest:
        return None
    if tag in _SCALARS:
        return _SCALARS[tag](*rest)
    if tag == "complex":
        return complex(float(rest[0]), float(rest[1]))
    if tag in _SEQUENCES:
        [items] = rest
        return _SEQUENCES[tag](decode_tagged(item) for item in items)
    if tag == "dict":
        [items] = rest
        return {decode_tagged(k): decode_tagged(v) for k, v in items}
    if tag == "fraction":
        from fractions import Fraction
        return Fraction(int(rest[0], 16), int(rest[1], 16))
    if tag == "decimal":
        from decimal import Decimal
        return Decimal(rest[0])
    raise ValueError(f"unknown tag {tag!r}")


def _shown(value: Any) -> str:
    text = ascii(value)
    return text if len(text) <= 2000 else text[:1000] + " ... " + text[-1000:]


def _judge_values(payloads: list[str], token: str, expected: tuple[Any, ...], messages: tuple[str | None, ...]
                  ) -> tuple[Verdict | None, str | None, str | None, bool]:
    """(verdict, reason, returned, decided) of a literal-form run. The first assert whose value
    differs decides, as in Python, even if a later left side then crashed or ran out of time
    (``decided``); None when every value so far matched and the run did not finish."""
    foreign = "the result line is not the harness's (the program wrote its own)"
    for index, payload in enumerate(payloads):
        head, _, body = payload.partition(" ")
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            message = None
        if head != token or not isinstance(message, dict) or len(message) != 1:
            return "wrong_answer", foreign, None, True
        if "done" in message:
            if index != len(expected) or index != len(payloads) - 1:
                return "wrong_answer", foreign, None, True
            return "passed", None, None, False
        if index >= len(expected):
            return "wrong_answer", foreign, None, True
        where = f"assert {index + 1} of {len(expected)}"
        if "unencodable" in message:
            return ("wrong_answer", f"{where}: its left side cannot be compared outside the program "
                    f"({message['unencodable']})", None, True)
        try:
            value = decode_tagged(message["value"])
            same = bool(value == expected[index])
        except (KeyError, TypeError, ValueError, RecursionError, ArithmeticError):
            return "wrong_answer", foreign, None, True
        if not same:
            return "wrong_answer", f"{ASSERTION_FAILED} {index}", _shown(value), True
    return None, None, None, False


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
        return "wrong_answer", f"the returned value cannot be serialised as JSON ({message['unserialisable']})", None
    text = body[len('{"value": '):-1]
    if call_passes(message["value"], test):
        return "passed", None, text
    return "wrong_answer", None, text


async def run_kind_test(executor: Any, code: str, test: Any, timeout: float | None, **options: Any) -> TestResult:
    """Run one call or assert test on any executor (it only ever sees a stdin/stdout program);
    ``options`` (``memory_mb``) go to the executor's ``run_tests``."""
    lowered = lower(code, test)
    [raw] = await executor.run_tests(lowered.program, [lowered.stdio], timeout=timeout, **options)
    return judge(code, test, lowered, raw)


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
