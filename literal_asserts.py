"""Assert tests of the literal form, compared outside the program's process.

Owns: recognising a test made only of ``assert <expr> == <literal>`` and the other checks of
``Check`` (``literal_form``: MBPP ``test_list`` lines, most HumanEval ``check`` functions, where
``<expr>`` is the answer's own result) and splicing it into probe code without the
literals, the harness part that runs the probe and writes each value type-tagged
(``VALUES_MAIN``, appended to ``problem_kinds``' prelude), and decoding and judging those values
(``decode_tagged``, ``judge_values``). ``problem_kinds`` lowers and judges through these; see its
docstring for the whole picture.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any

from records import Verdict

# The type-tagged encoder, shared with the split assert harness (``assert_split.py``).
ENCODER = '''
def _lb_encoder(other=None):
    """``encode(value)``: the value as type-tagged JSON data, read through the builtin types'
    own methods (bound now, before the answer runs), so a subclass is encoded as what it is.
    ``other(value)``: the data for a value of no builtin type (else it is a ``TypeError``)."""
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
        if other is not None:
            return other(value)
        raise TypeError("not a builtin value the toolkit can compare")

    return encode
'''

VALUES_MAIN = ENCODER + '''


def _lb_values(seed):
    import json, linecache, os, sys
    dumps, write, run, name_of, truth = json.dumps, os.write, exec, type, bool  # before the answer runs
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
    module.__dict__["_lb_truth"] = truth
    try:
        run(code, module.__dict__)
    except Exception as exc:
        _lb_show_test(linecache, lines)
        _lb_report(exc)
        sys.exit(1)
    emit(dumps({"done": True}))


_lb_values(dict(globals()))
'''


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


# Builtins a test applies to its literal (``set(f(x)) == set([1, 2])``): computed by the toolkit.
_HOST_CALLS: dict[str, Any] = {"set": set, "frozenset": frozenset, "tuple": tuple, "list": list, "sorted": sorted}
_BUILTIN_NAMES = frozenset(dir(__import__("builtins")))
# Builtins a probed side may apply to the answer's result (the answer could patch them, but gains
# nothing: it already decides the value they are given).
_WRAPPERS = frozenset({"set", "frozenset", "sorted", "list", "tuple", "dict", "len", "str", "int", "float",
                       "round", "abs", "bool", "sum", "min", "max"})
# Nodes a probed side must not contain: a comparison, boolean logic or a comprehension there would
# bring an expected value into the program's process (``assert all(f(x) == 2 for ...)``).
_NOT_PROBED = (ast.Compare, ast.BoolOp, ast.Lambda, ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp,
               ast.IfExp, ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)


@dataclass(frozen=True)
class Check:
    """A check other than ``== <literal>`` that the toolkit makes on a probed value, with Python's own
    semantics: ``math.isclose(L, x, rel_tol, abs_tol)``, ``abs(L - x) < tol`` (or ``<=``), ``L``,
    ``not L``, ``L is x`` / ``L is not x`` (x None, True or False), ``L != x``. An ``==`` literal is
    kept as the bare literal."""

    op: str  # "isclose", "abs_lt", "abs_le", "truthy", "falsy", "is", "is_not", "ne"
    literal: Any = None
    rel_tol: float = 1e-09
    abs_tol: float = 0.0

    def holds(self, value: Any) -> bool:
        """The check on the decoded value; Python's ``TypeError`` (``abs([1] - 2)``) propagates."""
        import math
        if self.op == "isclose":
            return math.isclose(value, self.literal, rel_tol=self.rel_tol, abs_tol=self.abs_tol)
        if self.op in ("abs_lt", "abs_le"):
            distance = abs(value - self.literal)
            return bool(distance < self.abs_tol if self.op == "abs_lt" else distance <= self.abs_tol)
        if self.op in ("truthy", "falsy"):
            return bool(value) is (self.op == "truthy")
        if self.op in ("is", "is_not"):
            return (value is self.literal) is (self.op == "is")
        if self.op == "ne":
            return bool(value != self.literal)
        raise ValueError(f"unknown check {self.op!r}")


def _host_value(node: ast.AST) -> tuple[bool, Any]:
    """(True, value) for a literal, or a ``_HOST_CALLS`` builtin of one literal (``set([1, 2])``)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _HOST_CALLS \
            and len(node.args) == 1 and not node.keywords and _is_literal(node.args[0]):
        try:
            return True, _HOST_CALLS[node.func.id](ast.literal_eval(node.args[0]))
        except TypeError:  # sorted() of mixed types: left to the program's own process
            return False, None
    return (True, ast.literal_eval(node)) if _is_literal(node) else (False, None)


def _probeable(node: ast.expr) -> bool:
    """A side the program's process may evaluate: the answer's own result (``f(x)``, ``candidate(x)``,
    ``Solution().m(x)``), maybe under a builtin wrapper (``sorted(f(x))``), a subscript or
    arithmetic with literals, and nothing that could hold an expected value the test computed
    (``math.isclose(f(1), math.sqrt(2))``, ``all(f(x) == 2 for ...)``): those run in process."""
    return not any(isinstance(n, _NOT_PROBED) for n in ast.walk(node)) and _answer_side(node)


def _answer_side(node: ast.expr) -> bool:
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id not in _BUILTIN_NAMES:
            return True  # the answer's function
        if isinstance(func, ast.Name):  # a builtin around the answer's result, other arguments literals
            arguments = [*node.args, *(k.value for k in node.keywords)]
            return func.id in _WRAPPERS and any(_answer_side(a) for a in arguments) \
                and all(_answer_side(a) or _is_literal(a) for a in arguments)
        # a method of something the answer made (``Solution().m(x)``), never of a module (``math.sqrt``)
        return isinstance(func, ast.Attribute) and not isinstance(func.value, ast.Name) and _answer_side(func.value)
    if isinstance(node, ast.Subscript):
        return _answer_side(node.value) and _is_literal(node.slice)
    if isinstance(node, ast.Attribute):
        return _answer_side(node.value)
    if isinstance(node, ast.BinOp):
        sides = (node.left, node.right)
        return any(_answer_side(s) for s in sides) and all(_answer_side(s) or _is_literal(s) for s in sides)
    if isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.Not):
        return _answer_side(node.operand)
    return False


def _number_literal(node: ast.AST) -> tuple[bool, Any]:
    found, value = _host_value(node)
    ok = found and isinstance(value, (int, float)) and not isinstance(value, bool)
    return ok, value if ok else None


def _compare_check(test: ast.Compare) -> tuple[ast.expr, Any] | None:
    """``L == x``, ``x == L``, ``L != x``, ``L is [not] None/True/False``, ``abs(L - x) < tol``."""
    if len(test.ops) != 1:
        return None
    op, left, right = test.ops[0], test.left, test.comparators[0]
    if isinstance(op, (ast.Eq, ast.NotEq)):
        for probed, other in ((left, right), (right, left)):
            found, value = _host_value(other)
            if found and _probeable(probed):
                return probed, value if isinstance(op, ast.Eq) else Check("ne", value)
        return None
    if isinstance(op, (ast.Is, ast.IsNot)) and isinstance(right, ast.Constant) \
            and right.value in (None, True, False) and _probeable(left):
        return left, Check("is" if isinstance(op, ast.Is) else "is_not", right.value)
    if isinstance(op, (ast.Lt, ast.LtE)) and isinstance(left, ast.Call) and isinstance(left.func, ast.Name) \
            and left.func.id == "abs" and len(left.args) == 1 and not left.keywords \
            and isinstance(left.args[0], ast.BinOp) and isinstance(left.args[0].op, ast.Sub):
        tolerance_ok, tolerance = _number_literal(right)
        inner = left.args[0]
        for probed, other in ((inner.left, inner.right), (inner.right, inner.left)):
            found, value = _number_literal(other)
            if found and tolerance_ok and _probeable(probed):
                return probed, Check("abs_lt" if isinstance(op, ast.Lt) else "abs_le", value, abs_tol=tolerance)
    return None


def _isclose_check(test: ast.Call) -> tuple[ast.expr, Any] | None:
    """``math.isclose(L, x[, rel_tol=r][, abs_tol=a])`` (or ``x, L``), all but L literals."""
    func = test.func
    if not (isinstance(func, ast.Attribute) and func.attr == "isclose" and isinstance(func.value, ast.Name)
            and func.value.id == "math" and len(test.args) == 2):
        return None
    tolerances: dict[str, float] = {}
    for keyword in test.keywords:
        ok, value = _number_literal(keyword.value)
        if keyword.arg not in ("rel_tol", "abs_tol") or not ok:
            return None
        tolerances[keyword.arg] = value
    for probed, other in ((test.args[0], test.args[1]), (test.args[1], test.args[0])):
        found, value = _number_literal(other)
        if found and _probeable(probed):
            return probed, Check("isclose", value, **tolerances)
    return None


def _literal_assert(node: ast.stmt) -> tuple[ast.expr, Any] | None:
    """(the probed side, the literal or ``Check``) of an assert the toolkit can judge outside: see
    ``Check`` for the forms; anything else (a computed expected value) is None."""
    if not isinstance(node, ast.Assert) or (node.msg is not None and not _is_literal(node.msg)):
        return None  # a message the harness would have to evaluate
    test = node.test
    if isinstance(test, ast.Compare):
        return _compare_check(test)
    if isinstance(test, ast.Call):
        found = _isclose_check(test)
        if found is not None:
            return found
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and _probeable(test.operand):
        return test.operand, Check("falsy")
    if isinstance(test, (ast.Call, ast.Subscript)) and _probeable(test):
        return test, Check("truthy")  # ``assert is_prime(7)``
    return None


def _plain_statement(node: ast.stmt) -> bool:
    """A statement that runs once and cannot see the expected values: pass, an import, a docstring,
    ``NAME = <literal>`` (HumanEval's ``METADATA``), ``assert True``."""
    if isinstance(node, _PLAIN):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return True
    if isinstance(node, ast.Assert) and isinstance(node.test, ast.Constant) and node.test.value \
            and (node.msg is None or isinstance(node.msg, ast.Constant)):
        return True  # HumanEval's ``assert True, "This prints if this assert fails..."``
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
    if inner is None or around is None or any(_literal_assert(n) is not None for n in outer) or not inner:
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
        # truth is taken in the program's process (bool() of a re.Match, a generator): a bool crosses
        truth = isinstance(literal, Check) and literal.op in ("truthy", "falsy")
        opening, closing = (b"_lb_put(_lb_truth(", b"))") if truth else (b"_lb_put(", b")")
        pieces += [raw[at:a], opening + b"\n" * raw[a:c].count(b"\n"), raw[c:d],
                   b"\n" * raw[d:b].count(b"\n") + closing]
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
    try:
        text = ascii(value)
    except ValueError:  # an integer past int-to-str's digit limit, somewhere in it (the answer's value)
        return "(a value too large to show: it holds an integer of more than 4300 digits)"
    except RecursionError:
        return "(a value nested too deeply to show)"
    return text if len(text) <= 2000 else text[:1000] + " ... " + text[-1000:]


@dataclass(frozen=True)
class ValuesVerdict:
    """What the frames of a literal-form run say. ``verdict`` None: every value so far matched and
    the run did not finish (the run's own failure decides). ``decided``: the frames decide even if
    the run then failed (a value differed first, as Python would have stopped there). ``failed``:
    the index of the assert whose value differed."""

    verdict: Verdict | None
    reason: str | None = None
    returned: str | None = None
    decided: bool = False
    failed: int | None = None


def judge_values(payloads: list[str], token: str, expected: tuple[Any, ...]) -> ValuesVerdict:
    """The first assert whose value differs decides, as in Python."""
    foreign = ValuesVerdict("wrong_answer", "the result line is not the harness's (the program wrote its own)",
                            decided=True)
    for index, payload in enumerate(payloads):
        head, _, body = payload.partition(" ")
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            message = None
        if head != token or not isinstance(message, dict) or len(message) != 1:
            return foreign
        if "done" in message:
            return ValuesVerdict("passed") if index == len(expected) == len(payloads) - 1 else foreign
        if index >= len(expected):
            return foreign
        if "unencodable" in message:
            why = str(message["unencodable"])[:500]  # the harness's own is short; a forged one need not be
            return ValuesVerdict("wrong_answer", f"the left side of assert {index + 1} of {len(expected)} cannot "
                                 f"be compared outside the program ({why})", decided=True)
        try:
            value = decode_tagged(message["value"])
        except (KeyError, TypeError, ValueError, RecursionError, ArithmeticError):
            return foreign
        check = expected[index]
        try:
            same = check.holds(value) if isinstance(check, Check) else bool(value == check)
        except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:  # Python raises here too
            return ValuesVerdict("runtime_error", f"assert {index + 1} of {len(expected)}: {type(exc).__name__}: "
                                 f"{exc}"[:500], _shown(value), True)
        if not same:
            return ValuesVerdict("wrong_answer", "an assertion of the test failed", _shown(value), True, index)
    return ValuesVerdict(None)


# (at most 9 digits: the line number is the program's text, and int() refuses over 4300 digits)
_TEST_FRAME = re.compile(r'(  File "test\.py", line (\d{1,9}), in [^\n]*\n)([ \t]*)([^\n]*)\n(?:[ \t]*[~^]+[ \t]*\n)?')


def original_lines(stderr: str, probe: str, code: str) -> str:
    """A traceback through the probe code, showing the test's own lines (``assert f(x) == 3``, not
    ``_lb_put(f(x))``): the literals are shown only now, outside the program."""
    probe_lines, lines = probe.splitlines(), code.splitlines()

    def restore(match: re.Match[str]) -> str:
        number = int(match.group(2))
        if not (0 < number <= min(len(lines), len(probe_lines))) or probe_lines[number - 1] == lines[number - 1] \
                or match.group(4).strip() != probe_lines[number - 1].strip():
            return match.group(0)
        return f"{match.group(1)}{match.group(3)}{lines[number - 1].strip()}\n"

    return _TEST_FRAME.sub(restore, stderr)
