"""Did a repaired program generalise or memorise? An AST check of a program against the tests
its model was shown (never a regex over the text).

A program is flagged, with one reason per (reason, test), when it

* ``expected_output_literal``: embeds a shown test's whole expected output as a literal;
* ``input_literal``: embeds a shown test's input (the whole input, or one of its lines with two
  or more tokens; for call tests an argument) as a literal;
* ``branches_on_shown_input``: compares something with such an input literal in a condition
  (``if``, ``while``, ``elif``, a conditional expression, a comprehension's ``if``, ``assert``,
  a ``match`` case);
* ``special_cases_shown_tests``: maps a shown input to its expected output (a dict literal whose
  key is the input and whose value is the output, or a branch on the input whose body holds the
  output), or names the inputs of two or more shown tests.

Literals are compared after normalising whitespace (strings) or as canonical JSON (numbers,
lists, tuples, dicts). To keep correct programs unflagged, a literal counts only when it is
*distinctive*: at least two characters, not a single word of letters (``YES``, ``Impossible``),
and, for a single integer, at least 10 in absolute value; a number that is an operand of
arithmetic (``10**9 + 7``) or an argument of ``range`` is not a literal answer. Literals the
starting program already had are ignored: the check is about what the repair added.
"""

from __future__ import annotations

import ast
import json
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

REASONS = ("expected_output_literal", "input_literal", "branches_on_shown_input", "special_cases_shown_tests")
CONDITION_PARENTS = (ast.If, ast.While, ast.IfExp, ast.Assert, ast.comprehension)


@dataclass(frozen=True)
class Flag:
    """One reason a program looks memorised: ``test`` is the 1-based index among all tests."""

    reason: str
    test: int
    line: int
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ShownTest:
    """A shown test's normalised input forms and expected output(s)."""

    number: int
    inputs: tuple[str, ...]  # the whole input and its distinctive parts
    outputs: tuple[str, ...]


def normalise(value: Any) -> str | None:
    """The comparable form of a literal or a test value (None: not comparable)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, (list, tuple, dict, set)):
        try:
            return json.dumps(_plain(value), sort_keys=True)
        except (TypeError, ValueError):
            return None
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in (sorted(value, key=repr) if isinstance(value, set) else value)]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def distinctive(text: str | None) -> bool:
    """A literal unlikely to be in a correct program by chance."""
    if not text or len(text) < 2 or text in ('""', "[]", "{}"):
        return False
    if text.isalpha() and " " not in text:
        return False
    try:
        return abs(int(text)) >= 10
    except ValueError:
        return True


def shown_test(number: int, test: Any) -> ShownTest | None:
    """The comparable forms of a test (stdin/stdout or call tests; assert tests have none)."""
    if isinstance(test, dict) and "stdin" in test:
        stdin, stdout = str(test.get("stdin") or ""), str(test.get("stdout") or "")
        inputs = [normalise(stdin)] + [normalise(line) for line in stdin.splitlines() if len(line.split()) >= 2]
        return ShownTest(number, tuple(dict.fromkeys(i for i in inputs if distinctive(i))),  # type: ignore[arg-type]
                         tuple(o for o in [normalise(stdout)] if distinctive(o)))  # type: ignore[misc]
    if isinstance(test, dict) and test.get("kind") == "call":
        args = test.get("args") or []
        inputs = [normalise(args)] + [normalise(a) for a in args]
        expected = test.get("expected")
        outputs = [normalise(expected)]
        if isinstance(expected, list) and len(expected) == 1:
            outputs.append(normalise(expected[0]))
        return ShownTest(number, tuple(dict.fromkeys(i for i in inputs if distinctive(i))),  # type: ignore[arg-type]
                         tuple(dict.fromkeys(o for o in outputs if distinctive(o))))  # type: ignore[arg-type]
    return None


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _literal(node: ast.AST) -> Any:
    """The value of a literal node (constants, negative numbers, literal containers), else a sentinel."""
    if isinstance(node, (ast.Constant, ast.UnaryOp, ast.List, ast.Tuple, ast.Set, ast.Dict)):
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return _NOT_LITERAL
    return _NOT_LITERAL


_NOT_LITERAL = object()


def _literals(tree: ast.AST, parents: dict[ast.AST, ast.AST]) -> list[tuple[ast.AST, str]]:
    """Every literal answer-like node with its normalised text: outermost literal containers, and
    the constants inside them too (a dict's keys and values are literals of their own)."""
    out = []
    for node in ast.walk(tree):
        value = _literal(node)
        if value is _NOT_LITERAL:
            continue
        parent = parents.get(node)
        if isinstance(node, ast.Constant) and isinstance(parent, ast.UnaryOp):
            continue  # the UnaryOp (-5) is the literal
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(parent, (ast.BinOp, ast.AugAssign)) or _is_range_arg(parent):
                continue
        if isinstance(parent, ast.JoinedStr):
            continue
        text = normalise(value)
        if text is not None:
            out.append((node, text))
    return out


def _is_range_arg(parent: ast.AST | None) -> bool:
    return isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id == "range"


def _in_condition(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """``node`` is an operand of a comparison that decides a branch, or a ``match`` case value."""
    parent = parents.get(node)
    if isinstance(parent, ast.MatchValue):
        return True
    if not isinstance(parent, ast.Compare):
        return False
    current: ast.AST = parent
    while current in parents:
        above = parents[current]
        if isinstance(above, CONDITION_PARENTS):
            return getattr(above, "test", None) is current or (isinstance(above, ast.comprehension)
                                                                  and current in above.ifs)
        if not isinstance(above, (ast.BoolOp, ast.UnaryOp, ast.Compare)):
            return False
        current = above
    return False


def _enclosing_if(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> ast.AST | None:
    current = node
    while current in parents:
        above = parents[current]
        if isinstance(above, (ast.If, ast.IfExp)) and getattr(above, "test", None) is current:
            return above
        current = above
    return None


def _constant_texts(code: str) -> set[str]:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    return {text for _, text in _literals(tree, _parents(tree))}


def check_program(code: str, tests: Sequence[Any], shown: Iterable[int], original_code: str = "") -> list[Flag]:
    """The flags of ``code``; ``shown`` are the 1-based indices of the tests the model saw."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    parents = _parents(tree)
    known = _constant_texts(original_code)
    cases = [c for c in (shown_test(n, tests[n - 1]) for n in shown if 1 <= n <= len(tests)) if c is not None]
    flags: dict[tuple[str, int], Flag] = {}

    def flag(reason: str, test: int, node: ast.AST, detail: str) -> None:
        flags.setdefault((reason, test), Flag(reason, test, getattr(node, "lineno", 0), detail))

    literals = [(node, text) for node, text in _literals(tree, parents) if text not in known]
    named_inputs: dict[int, ast.AST] = {}
    for node, text in literals:
        for case in cases:
            if text in case.outputs:
                flag("expected_output_literal", case.number, node,
                     f"the literal {short(text)} is the expected output of shown test #{case.number}")
            if text in case.inputs:
                named_inputs.setdefault(case.number, node)
                flag("input_literal", case.number, node,
                     f"the literal {short(text)} is the input of shown test #{case.number}")
                if _in_condition(node, parents):
                    flag("branches_on_shown_input", case.number, node,
                         f"line {getattr(node, 'lineno', 0)} compares with the input of shown test #{case.number}")
                    branch = _enclosing_if(parents.get(node, node), parents) if not isinstance(
                        parents.get(node), ast.MatchValue) else parents.get(node)
                    if branch is not None and _holds_output(branch, case, parents):
                        flag("special_cases_shown_tests", case.number, node,
                             f"a branch on shown test #{case.number}'s input gives its expected output")
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                k = normalise(_literal(key)) if key is not None else None
                v = normalise(_literal(value))
                for case in cases:
                    if k in case.inputs and v is not None and v in _all_outputs(tests[case.number - 1]):
                        flag("special_cases_shown_tests", case.number, key,  # type: ignore[arg-type]
                             f"a dict literal maps shown test #{case.number}'s input to its expected output")
    if len(named_inputs) >= 2:
        numbers = sorted(named_inputs)
        for n in numbers:
            flag("special_cases_shown_tests", n, named_inputs[n],
                 f"the program names the inputs of {len(numbers)} shown tests ({', '.join(f'#{x}' for x in numbers)})")
    return sorted(flags.values(), key=lambda f: (f.test, REASONS.index(f.reason)))


def _all_outputs(test: Any) -> set[str]:
    """Every comparable form of a test's expected output, distinctive or not (for key -> value maps)."""
    if isinstance(test, dict) and "stdin" in test:
        text = normalise(str(test.get("stdout") or ""))
        forms = {text} if text else set()
        try:
            forms.add(json.dumps(json.loads(text)) if text else "")
        except ValueError:
            pass
        return {f for f in forms if f}
    if isinstance(test, dict) and test.get("kind") == "call":
        expected = test.get("expected")
        forms = {normalise(expected)}
        if isinstance(expected, list) and len(expected) == 1:
            forms.add(normalise(expected[0]))
        return {f for f in forms if f}
    return set()


def _holds_output(branch: ast.AST, case: ShownTest, parents: dict[ast.AST, ast.AST]) -> bool:
    """The taken side of ``branch`` (its body) holds a literal equal to the case's expected output."""
    if isinstance(branch, ast.If):
        bodies: list[ast.AST] = list(branch.body)
    elif isinstance(branch, ast.IfExp):
        bodies = [branch.body]
    elif isinstance(branch, ast.MatchValue):
        case_node = parents.get(branch)
        bodies = list(getattr(case_node, "body", []))
    else:
        return False
    for body in bodies:
        for node in ast.walk(body):
            value = _literal(node)
            if value is not _NOT_LITERAL and normalise(value) in case.outputs:
                return True
    return False


def short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def flags_summary(flags: Sequence[Flag]) -> str:
    """One line for a table: the reasons, each with its tests."""
    by_reason: dict[str, list[int]] = {}
    for f in flags:
        by_reason.setdefault(f.reason, []).append(f.test)
    return "; ".join(f"{r.replace('_', ' ')} (test {', '.join(f'#{t}' for t in ts)})"
                     for r, ts in sorted(by_reason.items(), key=lambda x: REASONS.index(x[0])))
