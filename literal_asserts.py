"""Assert tests of the literal form, compared outside the program's process.

Owns: recognising a test made only of ``assert <expr> == <literal>`` (``literal_form``: MBPP
``test_list`` lines, most HumanEval ``check`` functions) and splicing it into probe code without the
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

VALUES_MAIN = '''
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
            return ValuesVerdict("wrong_answer", f"the left side of assert {index + 1} of {len(expected)} cannot "
                                 f"be compared outside the program ({message['unencodable']})", decided=True)
        try:
            value = decode_tagged(message["value"])
            same = bool(value == expected[index])
        except (KeyError, TypeError, ValueError, RecursionError, ArithmeticError):
            return foreign
        if not same:
            return ValuesVerdict("wrong_answer", "an assertion of the test failed", _shown(value), True, index)
    return ValuesVerdict(None)


_TEST_FRAME = re.compile(r'(  File "test\.py", line (\d+), in [^\n]*\n)([ \t]*)([^\n]*)\n(?:[ \t]*[~^]+[ \t]*\n)?')


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
