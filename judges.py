"""Judges: how a program's stdout is compared with a test's expected output.

Owns the built-in judges (``exact``, ``tokens``, ``float``, ``case-insensitive``, the harness
presets ``livecodebench``, ``codecontests``, ``apps``, ``sandboxfusion``, and ``checker``
programs), their registry (``get_judge``), the ``JudgeSpec`` record every result carries next to
its ``verdict``, re-judging of finished results (no program is run again) and the
judge-sensitivity audit. Running programs stays in the executors: a judge only re-decides
``passed``/``wrong_answer`` for a run that ended normally (exit 0, no timeout, no limit hit).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from hashlib import sha256
from itertools import combinations
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from errors import ConfigError, ExecutionError
from records import Test
from sandbox import normalize_output, outputs_match

Decision = tuple[bool, str]
Compare = Callable[[str, str, Test], Decision]

DEFAULT_JUDGE = "exact"
DEFAULT_ABS_TOL = 1e-6
DEFAULT_REL_TOL = 1e-6
DEFAULT_CHECKER_TIMEOUT = 10.0
CHECKER_ACCEPT, CHECKER_REJECT = 0, (1, 2)  # testlib: 0 ok, 1 wrong answer, 2 presentation error


@dataclass(frozen=True)
class JudgeSpec:
    """What decided a verdict: a judge's name and its parameters (recorded in every result)."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dict(self.params)}

    def __str__(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.params if k != "source_sha256")
        return f"{self.name} ({extra})" if extra else self.name


@dataclass(frozen=True)
class Judge:
    """A named pure comparison ``compare(expected, actual, test) -> (passed, reason)``.

    A ``checker`` judge has no pure comparison: its ``checker_source`` runs in the sandbox.
    """

    spec: JudgeSpec
    compare: Compare | None = None
    checker_source: str | None = field(default=None, repr=False)
    checker_timeout: float = DEFAULT_CHECKER_TIMEOUT

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def needs_execution(self) -> bool:
        return self.compare is None

    def __call__(self, expected: str, actual: str, test: Test) -> Decision:
        if self.compare is None:
            raise ConfigError(f"judge {self.name!r} runs a checker program: use judge_result() with an executor")
        return self.compare(expected, actual, test)


# --------------------------------------------------------------------------------------------
# Shared pieces of the comparisons
# --------------------------------------------------------------------------------------------


def _cut(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "…" + text[-limit // 2 :]


def _line_difference(expected: list[str], actual: list[str]) -> str:
    """The first differing line, or the line counts when one output is a prefix of the other."""
    for i, (e, a) in enumerate(zip(expected, actual), 1):
        if e != a:
            return f"line {i} differs: expected {_cut(e)!r}, got {_cut(a)!r}"
    return f"expected {len(expected)} lines, got {len(actual)}"


def _token_difference(expected: list[str], actual: list[str], same: Callable[[str, str], bool],
                      why: Callable[[str, str], str] = lambda e, a: "") -> str | None:
    """None when the token lists match under ``same``; else which token differs and why."""
    for i, (e, a) in enumerate(zip(expected, actual), 1):
        if not same(e, a):
            return f"token {i} differs: expected {_cut(e)!r}, got {_cut(a)!r}{why(e, a)}"
    if len(expected) != len(actual):
        return f"expected {len(expected)} tokens, got {len(actual)}"
    return None


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)", re.IGNORECASE)


_INTEGER = re.compile(r"[+-]?\d+")


def _same_integer(e: str, a: str) -> bool:
    """Two integer tokens equal as numbers; past int()'s 4300-digit limit (a program's output can be
    any length) as sign and digits without leading zeros."""
    if len(e) <= 4000 and len(a) <= 4000:
        return int(e) == int(a)

    def key(token: str) -> str:
        digits = token.lstrip("+-").lstrip("0")
        return ("-" if token.startswith("-") and digits else "") + digits
    return key(e) == key(a)


def parse_number(token: str) -> float | None:
    """A plain decimal or scientific number (no underscores, no hex, no spaces), else None."""
    return float(token) if _NUMBER.fullmatch(token) else None


# --------------------------------------------------------------------------------------------
# The built-in comparisons
# --------------------------------------------------------------------------------------------


def compare_exact(expected: str, actual: str, test: Test) -> Decision:
    """The remote service's rule (and ``sandbox.outputs_match``): trailing whitespace stripped
    per line and overall, then equality."""
    if outputs_match(actual, expected):
        return True, "outputs equal (trailing whitespace ignored)"
    return False, _line_difference(normalize_output(expected).split("\n"), normalize_output(actual).split("\n"))


def compare_case_insensitive(expected: str, actual: str, test: Test) -> Decision:
    """``exact`` after case folding both outputs (YES = yes)."""
    exp, act = normalize_output(expected).casefold(), normalize_output(actual).casefold()
    if exp == act:
        return True, "outputs equal ignoring case"
    return False, _line_difference(exp.split("\n"), act.split("\n")) + " (case ignored)"


def compare_tokens(expected: str, actual: str, test: Test) -> Decision:
    """Whitespace-separated tokens must be equal; line breaks and spacing do not matter."""
    diff = _token_difference(expected.split(), actual.split(), str.__eq__)
    return (True, "tokens equal") if diff is None else (False, diff)


def numbers_close(expected: float, actual: float, abs_tol: float, rel_tol: float) -> bool:
    """Within ``abs_tol`` absolutely or ``rel_tol`` relative to the expected value (testlib-style)."""
    if expected == actual:
        return True
    if math.isnan(expected) or math.isnan(actual) or math.isinf(expected) or math.isinf(actual):
        return False
    error = abs(expected - actual)
    return error <= abs_tol or error <= rel_tol * abs(expected)


def make_float_compare(abs_tol: float, rel_tol: float) -> Compare:
    def same(e: str, a: str) -> bool:
        if e == a:
            return True
        if _INTEGER.fullmatch(e) and _INTEGER.fullmatch(a):
            return _same_integer(e, a)  # integers are exact (a relative tolerance would blur big counts)
        ev, av = parse_number(e), parse_number(a)
        return ev is not None and av is not None and numbers_close(ev, av, abs_tol, rel_tol)

    def why(e: str, a: str) -> str:
        ev, av = parse_number(e), parse_number(a)
        if ev is None or av is None:
            return " (not both numbers)"
        return f", beyond the tolerance (abs {abs_tol:g}, rel {rel_tol:g}; error {abs(ev - av):.3g})"

    def compare_float(expected: str, actual: str, test: Test) -> Decision:
        """Tokens; numeric tokens equal within the tolerances (1.0 = 1.00 = 1e0), integers exactly."""
        diff = _token_difference(expected.split(), actual.split(), same, why)
        return (True, f"tokens equal, numbers within abs {abs_tol:g} / rel {rel_tol:g}") if diff is None else (False, diff)

    return compare_float


def _lcb_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _lcb_decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(token) for token in line.split()]
    except (InvalidOperation, ValueError):
        return None


def compare_livecodebench(expected: str, actual: str, test: Test) -> Decision:
    """LiveCodeBench's ``grade_stdio``: the whole output and each line stripped, the same number
    of lines, each line equal as text or as a list of ``Decimal`` tokens (1.0 = 1.00, no tolerance)."""
    exp, act = _lcb_lines(expected), _lcb_lines(actual)
    if len(exp) != len(act):
        return False, f"expected {len(exp)} lines, got {len(act)} (mismatched output length)"
    for i, (e, a) in enumerate(zip(exp, act), 1):
        if e == a:
            continue
        de, da = _lcb_decimals(e), _lcb_decimals(a)
        try:
            if de is not None and da is not None and de == da:
                continue
        except InvalidOperation:  # signalling NaN: LiveCodeBench's comparison raises too (a failure)
            pass
        kind = "as text" if de is None or da is None else "as text or as decimals"
        return False, f"line {i} differs {kind}: expected {_cut(e)!r}, got {_cut(a)!r}"
    return True, "lines equal as text or decimals"


_CC_SEPARATORS = re.compile(r"[ \n\t\r\v]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
CODECONTESTS_PRECISION = 1e-5


def _cc_tokens(text: str) -> list[str]:
    return [t.translate(_ASCII_LOWER) for t in _CC_SEPARATORS.split(text) if t]


def _cc_values_match(e: str, a: str) -> bool:
    """Numbers (integers too, as doubles) within 1e-5 absolutely; other tokens equal."""
    ev, av = parse_number(e), parse_number(a)
    if ev is None or av is None:
        return e == a
    return abs(ev - av) < CODECONTESTS_PRECISION  # inf vs inf gives nan: not a match, as in C++


def compare_codecontests(expected: str, actual: str, test: Test) -> Decision:
    """CodeContests' ``OutputsMatch``: tokens split on space/newline/tab/CR/VT, ASCII-lowercased;
    equal lists match, else the same count and each pair numerically within 1e-5 or equal."""
    exp, act = _cc_tokens(expected), _cc_tokens(actual)
    if exp == act:
        return True, "tokens equal ignoring case"
    if len(exp) != len(act):
        return False, f"expected {len(exp)} tokens, got {len(act)}"
    diff = _token_difference(exp, act, _cc_values_match,
                             lambda e, a: " (beyond 1e-5)" if parse_number(e) is not None and parse_number(a) is not None
                             else " (case ignored)")
    return (True, "tokens equal, numbers within 1e-5") if diff is None else (False, diff)


def _allclose(actual: list[float], expected: list[float]) -> bool:
    """numpy.allclose's rule (rtol 1e-5 of the expected value, atol 1e-8; equal infinities match)."""
    return all(a == e or (math.isfinite(a) and math.isfinite(e) and abs(a - e) <= 1e-8 + 1e-5 * abs(e))
               for a, e in zip(actual, expected))


def _apps_floats(lines: list[str]) -> list[float] | None:
    try:
        return [float(line) for line in lines]
    except ValueError:
        return None


def _apps_token_sets(lines: list[list[str]], convert: Callable[[str], Any] = str) -> set[frozenset[Any]]:
    return {frozenset(convert(t) for t in tokens) for tokens in lines}


def compare_apps(expected: str, actual: str, test: Test) -> Decision:
    """APPS' lenient cascade for stdin/stdout problems, in its order; the first rule that holds
    accepts. The captured output is ``actual.splitlines()``, the expected output one string."""
    out = actual.splitlines()
    if "\n".join(out).strip() == expected.strip():
        return True, "apps: stripped text equal"
    if "\n".join(line.strip() for line in out).strip() == expected.strip():
        return True, "apps: stripped lines equal"
    if out == [expected]:
        return True, "apps: the single line equals the expected output"
    gt = [line.strip() for line in expected.split("\n") if line]  # blank lines dropped, then stripped
    if out == gt:
        return True, "apps: line lists equal"
    out = [line for line in out if line]
    if out == gt:
        return True, "apps: line lists equal without empty lines"
    of, gf = _apps_floats(out), _apps_floats(gt)
    if of is not None and gf is not None and len(of) == len(gf) and _allclose(of, gf):
        return True, "apps: one number per line, allclose (rtol 1e-5, atol 1e-8)"
    gt_tokens = [line.split() for line in gt]
    out_tokens = [tokens for tokens in (line.split() for line in out) if tokens]
    if _apps_token_sets(out_tokens) == _apps_token_sets(gt_tokens):
        return True, "apps: the same set of token sets per line (order and repeats ignored)"
    try:
        rounded = (_apps_token_sets(out_tokens, lambda t: round(float(t), 3))
                   == _apps_token_sets(gt_tokens, lambda t: round(float(t), 3)))
    except (ValueError, OverflowError):
        rounded = False
    if rounded:
        return True, "apps: the same sets of numbers rounded to 3 decimals"
    return False, "no apps rule holds: " + _line_difference(gt, out)


def _sf_is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def compare_sandboxfusion(expected: str, actual: str, test: Test) -> Decision:
    """SandboxFusion's ``check_stdio_test_case`` (``lower_cmp=True``): both outputs stripped and
    split on newlines, the same line count, each line lowercased and stripped equal, or both
    lines floats within a relative 1e-5 of the expected value."""
    act, exp = actual.strip().split("\n"), expected.strip().split("\n")
    if len(act) != len(exp):
        return False, f"expected {len(exp)} lines, got {len(act)}"
    for i, (rl, el) in enumerate(zip(act, exp), 1):
        rl, el = rl.lower(), el.lower()
        if rl.strip() == el.strip():
            continue
        if _sf_is_float(el) and _sf_is_float(rl):
            e, r = float(el), float(rl)
            if abs(r - e) / max(abs(e), 1e-10) < 1e-5:
                continue
            return False, f"line {i} differs: expected {_cut(el.strip())!r}, got {_cut(rl.strip())!r} (beyond relative 1e-5)"
        return False, f"line {i} differs: expected {_cut(el.strip())!r}, got {_cut(rl.strip())!r} (case ignored)"
    return True, "lines equal ignoring case, floats within relative 1e-5"


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def _no_params(name: str, compare: Compare) -> Callable[..., Judge]:
    def make(**params: Any) -> Judge:
        if params:
            raise ConfigError(f"judge {name!r} takes no parameters (got {', '.join(sorted(params))})")
        return Judge(JudgeSpec(name), compare)
    return make


def _tolerance(params: dict[str, Any], key: str, default: float) -> float:
    value = params.pop(key, None)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"judge 'float': {key} must be a number, got {value!r}") from None
    if not number >= 0 or math.isinf(number):
        raise ConfigError(f"judge 'float': {key} must be >= 0, got {value!r}")
    return number


def _make_float(**params: Any) -> Judge:
    abs_tol = _tolerance(params, "abs_tol", DEFAULT_ABS_TOL)
    rel_tol = _tolerance(params, "rel_tol", DEFAULT_REL_TOL)
    if params:
        raise ConfigError(f"judge 'float' takes abs_tol and rel_tol only (got {', '.join(sorted(params))})")
    return Judge(JudgeSpec("float", (("abs_tol", abs_tol), ("rel_tol", rel_tol))), make_float_compare(abs_tol, rel_tol))


def _make_checker(*, path: str | None = None, source: str | None = None, timeout: float | None = None,
                  base_dir: str | None = None) -> Judge:
    """A checker from a file (``path``, relative to ``base_dir`` when given) or from ``source``."""
    if (path is None) == (source is None):
        raise ConfigError("judge 'checker' needs a checker program: --checker FILE (or 'path'/'source' in the record)")
    params: list[tuple[str, Any]] = []
    if path is not None:
        full = Path(base_dir, path) if base_dir and not Path(path).is_absolute() else Path(path)
        try:
            source = full.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read checker {full}: {exc.strerror if isinstance(exc, OSError) else exc}") from None
        params.append(("path", str(path)))
    assert source is not None
    try:
        limit = DEFAULT_CHECKER_TIMEOUT if timeout is None else float(timeout)
    except (TypeError, ValueError):
        raise ConfigError(f"judge 'checker': timeout must be a number of seconds, got {timeout!r}") from None
    if not limit > 0:
        raise ConfigError(f"judge 'checker': timeout must be > 0, got {timeout!r}")
    params += [("source_sha256", sha256(source.encode()).hexdigest()[:16]), ("timeout", limit)]
    return Judge(JudgeSpec("checker", tuple(params)), None, source, limit)


JUDGES: dict[str, Callable[..., Judge]] = {
    "exact": _no_params("exact", compare_exact),
    "tokens": _no_params("tokens", compare_tokens),
    "float": _make_float,
    "case-insensitive": _no_params("case-insensitive", compare_case_insensitive),
    "livecodebench": _no_params("livecodebench", compare_livecodebench),
    "codecontests": _no_params("codecontests", compare_codecontests),
    "apps": _no_params("apps", compare_apps),
    "sandboxfusion": _no_params("sandboxfusion", compare_sandboxfusion),
    "checker": _make_checker,
}
JUDGE_NAMES = tuple(JUDGES)


def get_judge(name: str, **params: Any) -> Judge:
    """The judge ``name`` with its parameters (``abs_tol``/``rel_tol`` for ``float``; ``path`` or
    ``source`` and ``timeout`` for ``checker``). Unknown names and bad parameters: ``ConfigError``."""
    make = JUDGES.get(name)
    if make is None:
        raise ConfigError(f"unknown judge {name!r}: choose from {', '.join(JUDGE_NAMES)}")
    try:
        return make(**params)
    except TypeError:
        raise ConfigError(f"judge {name!r}: unknown parameter in {sorted(params)}") from None


def parse_judges(text: str) -> list[Judge]:
    """``exact,livecodebench,apps`` -> judges (for the audit); parameterless unless ``float``."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if len(names) < 2:
        raise ConfigError(f"--judges needs at least two judge names, comma-separated (got {text!r})")
    if len(set(names)) != len(names):
        raise ConfigError(f"--judges names a judge twice: {text!r}")
    return [get_judge(n) for n in names]


def judge_from_record(record: Any, default: Judge, base_dir: str | None = None) -> tuple[Judge, bool]:
    """The record's own ``judge`` (a name, or an object with ``name`` and parameters) overrides
    the run's; returns (judge, came from the record). A checker path is relative to the file."""
    value = record.get("judge") if isinstance(record, dict) else None
    if value is None:
        return default, False
    if isinstance(value, str):
        name, params = value, {}
    elif isinstance(value, dict) and isinstance(value.get("name"), str):
        params = {k: v for k, v in value.items() if k not in ("name", "source_sha256")}
        name = value["name"]
    else:
        raise ConfigError(f"the record's 'judge' must be a name or an object with a 'name', got {value!r}")
    if name == "checker":
        params.setdefault("base_dir", base_dir)
    return get_judge(name, **params), True


def record_checker_specs(records: Iterable[Any], base_dir: str | None = None) -> list[list[Any]]:
    """[index, spec] of every record whose own ``judge`` names a checker program by path: the spec
    holds the checker's ``source_sha256``. The file's digest does not cover that program, so a
    results log's (or checkpoint's) fingerprint needs this to notice an edited checker. A record
    whose judge cannot be made is left out: that problem is an error, never a logged result."""
    specs = []
    for index, record in enumerate(records):
        value = record.get("judge") if isinstance(record, dict) else None
        if not (isinstance(value, dict) and value.get("name") == "checker" and value.get("path") is not None):
            continue
        try:
            specs.append([index, judge_from_record(record, get_judge(DEFAULT_JUDGE), base_dir)[0].spec.as_dict()])
        except ConfigError:
            continue
    return specs


# --------------------------------------------------------------------------------------------
# Applying a judge to executor results
# --------------------------------------------------------------------------------------------


def _run_output(result: dict[str, Any]) -> dict[str, Any]:
    return (result.get("exec_output") or {}).get("run_output") or {}


def judgeable(result: dict[str, Any]) -> bool:
    """A stdin/stdout test whose run ended normally: exit 0, no timeout, no output or memory limit."""
    run = _run_output(result)
    return (isinstance(result.get("test"), dict) and run.get("exit_code") == 0 and not run.get("timeout_expired")
            and result.get("verdict", "passed") in ("passed", "wrong_answer"))


def with_decision(result: dict[str, Any], judge: Judge, decision: Decision | None) -> dict[str, Any]:
    """A copy of ``result`` recording the judge; ``decision`` (passed, reason) re-decides it."""
    new = dict(result)
    new["judge"] = judge.spec.as_dict()
    if decision is None:
        new.pop("judge_reason", None)
        return new
    passed, reason = decision
    new["passed"], new["verdict"], new["judge_reason"] = passed, "passed" if passed else "wrong_answer", reason
    return new


def judge_pure(judge: Judge, result: dict[str, Any]) -> dict[str, Any]:
    """Re-decide one result with a pure judge (no execution)."""
    if not judgeable(result):
        return with_decision(result, judge, None)
    test = result["test"]
    return with_decision(result, judge, judge(str(test.get("stdout") or ""), str(_run_output(result).get("stdout") or ""), test))


async def judge_result(judge: Judge, result: dict[str, Any], *, executor: Any = None, semaphore: Any = None) -> dict[str, Any]:
    """Re-decide one result; a checker runs in ``executor`` (under ``semaphore`` when given)."""
    if not judge.needs_execution or not judgeable(result):
        return judge_pure(judge, result) if not judge.needs_execution else with_decision(result, judge, None)
    if executor is None:
        raise ConfigError("the checker judge needs an executor to run the checker program")
    if semaphore is None:
        decision = await run_checker(judge, result, executor)
    else:
        async with semaphore:
            decision = await run_checker(judge, result, executor)
    return with_decision(result, judge, decision)


def rejudge(results: Sequence[dict[str, Any]], judge: Judge) -> list[dict[str, Any]]:
    """Finished results re-decided by a pure judge, without running anything."""
    return [judge_pure(judge, r) for r in results]


async def rejudge_async(results: Sequence[dict[str, Any]], judge: Judge, *, executor: Any = None,
                        semaphore: Any = None) -> list[dict[str, Any]]:
    """Like ``rejudge``; a checker judge runs its checker (never the judged program)."""
    if not judge.needs_execution:
        return rejudge(results, judge)
    import asyncio

    return list(await asyncio.gather(*(judge_result(judge, r, executor=executor, semaphore=semaphore) for r in results)))


# --------------------------------------------------------------------------------------------
# Checker programs
# --------------------------------------------------------------------------------------------

# The wrapper that runs a checker in the sandbox: the three texts arrive as JSON on stdin and are
# written to the sandbox's own working directory; the checker then runs as ``checker.py input
# output answer`` (testlib order: input, the program's output, the expected answer). An exception
# of the checker exits 3 (testlib's "fail"), which is an error of the run, never a verdict.
_CHECKER_WRAPPER = '''
import json as _json, sys as _sys, traceback as _traceback
_files = _json.loads(_sys.stdin.read())
for _name in ("input", "output", "answer"):
    with open(_name + ".txt", "w", encoding="utf-8") as _handle:
        _handle.write(_files[_name])
_sys.stdin = open("input.txt", encoding="utf-8")
_sys.argv = ["checker.py", "input.txt", "output.txt", "answer.txt"]
try:
    exec(compile({source!r}, "checker.py", "exec"), {{"__name__": "__main__", "__builtins__": __builtins__}})
except SystemExit as _exit:
    _code = _exit.code
    if _code is not None and not isinstance(_code, int):
        print(_code, file=_sys.stderr)
        _code = 1
    _sys.exit(_code or 0)
except BaseException:
    _traceback.print_exc()
    _sys.exit(3)
'''


def checker_program(source: str) -> str:
    return _CHECKER_WRAPPER.format(source=source)


def checker_test(result: dict[str, Any]) -> dict[str, str]:
    test = result["test"]
    files = {"input": str(test.get("stdin") or ""), "output": str(_run_output(result).get("stdout") or ""),
             "answer": str(test.get("stdout") or "")}
    return {"stdin": json.dumps(files), "stdout": ""}


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().split("\n") if line.strip()]
    return _cut(lines[-1], 200) if lines else ""


def checker_decision(run: dict[str, Any], verdict: str | None, timeout: float) -> Decision:
    """The checker's exit status as a decision; anything but 0, 1 or 2 is an ``ExecutionError``."""
    if run.get("timeout_expired") or verdict == "timeout":
        raise ExecutionError(f"checker did not finish within {timeout:g} s (an error of the run, not a verdict)")
    if verdict in ("memory_limit", "output_limit"):
        raise ExecutionError(f"checker hit the sandbox's {verdict.replace('_', ' ')} (an error of the run, not a verdict)")
    code = run.get("exit_code")
    message = _last_line(run.get("stderr") or "") or _last_line(run.get("stdout") or "")
    if code == CHECKER_ACCEPT:
        return True, "checker accepted" + (f": {message}" if message else "")
    if code in CHECKER_REJECT:
        return False, f"checker rejected (exit {code})" + (f": {message}" if message else "")
    raise ExecutionError(f"checker failed (exit {code}): {message or 'no message'} (an error of the run, not a verdict)")


async def run_checker(judge: Judge, result: dict[str, Any], executor: Any) -> Decision:
    """Run the checker on one result through the executor's public API, with the checker's own time limit."""
    assert judge.checker_source is not None
    [run] = await executor.run_tests(checker_program(judge.checker_source), [checker_test(result)],
                                     timeout=judge.checker_timeout)
    return checker_decision(_run_output(run), run.get("verdict"), judge.checker_timeout)


# --------------------------------------------------------------------------------------------
# The judge-sensitivity audit
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditItem:
    """One evaluated (file, problem, model): its label and finished results."""

    label: str
    results: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Flip:
    label: str
    test: int  # 1-based, as in the feedback
    first: str
    second: str


@dataclass(frozen=True)
class PairChange:
    first: str
    second: str
    verdicts_changed: int
    problems_changed: int
    flips: tuple[Flip, ...]


@dataclass(frozen=True)
class Audit:
    judges: tuple[str, ...]
    tests: int
    problems: int
    passed: dict[str, int]
    fully_passing: dict[str, int]
    pairs: tuple[PairChange, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "judges": list(self.judges), "tests": self.tests, "problems": self.problems,
            "passed": self.passed, "fully_passing": self.fully_passing,
            "pass_at_1": {j: (self.fully_passing[j] / self.problems if self.problems else None) for j in self.judges},
            "pairs": [{"first": p.first, "second": p.second, "verdicts_changed": p.verdicts_changed,
                       "problems_changed": p.problems_changed,
                       "flips": [{"problem": f.label, "test": f.test, p.first: f.first, p.second: f.second}
                                 for f in p.flips]} for p in self.pairs],
        }


def audit(items: Iterable[AuditItem], judges: Sequence[Judge]) -> Audit:
    """Judge every result under each (pure) judge and count what changes between each pair."""
    if any(j.needs_execution for j in judges):
        raise ConfigError("the audit compares pure judges; a checker cannot be part of --judges")
    items = list(items)
    names = tuple(j.name for j in judges)
    verdicts = {j.name: [[judge_pure(j, r)["verdict"] for r in item.results] for item in items] for j in judges}
    full = {n: [bool(v) and all(x == "passed" for x in v) for v in verdicts[n]] for n in names}
    pairs = []
    for a, b in combinations(names, 2):
        flips = tuple(Flip(item.label, t, va, vb)
                      for item, row_a, row_b in zip(items, verdicts[a], verdicts[b])
                      for t, (va, vb) in enumerate(zip(row_a, row_b), 1) if va != vb)
        pairs.append(PairChange(a, b, len(flips), sum(x != y for x, y in zip(full[a], full[b])), flips))
    return Audit(names, sum(len(i.results) for i in items), len(items),
                 {n: sum(v == "passed" for row in verdicts[n] for v in row) for n in names},
                 {n: sum(full[n]) for n in names}, tuple(pairs))


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines) + "\n"


def format_audit(report: Audit, max_flips: int = 30) -> str:
    """The audit as text: per judge, per pair, then the flipping tests (at most ``max_flips`` per pair)."""
    pct = (lambda n: f"{100.0 * n / report.problems:.1f}") if report.problems else (lambda n: "-")
    out = f"Judge-sensitivity audit: {report.problems} problems x models, {report.tests} tests\n\n"
    out += _table([("judge", "tests passed", "fully passing", "pass@1 %")]
                  + [(j, f"{report.passed[j]}/{report.tests}", f"{report.fully_passing[j]}/{report.problems}",
                      pct(report.fully_passing[j])) for j in report.judges])
    out += "\n" + _table([("judge pair", "verdicts changed", "fully passing changed", "pass@1 points")]
                         + [(f"{p.first} vs {p.second}", str(p.verdicts_changed), str(p.problems_changed),
                             f"{(report.fully_passing[p.second] - report.fully_passing[p.first]) * 100.0 / report.problems:+.1f}"
                             if report.problems else "-") for p in report.pairs])
    for p in report.pairs:
        if not p.flips:
            continue
        out += f"\nflips {p.first} -> {p.second}:\n"
        for f in p.flips[:max_flips]:
            out += f"  {f.label} test #{f.test}: {f.first} -> {f.second}\n"
        if len(p.flips) > max_flips:
            out += f"  ... {len(p.flips) - max_flips} more\n"
    return out


# --------------------------------------------------------------------------------------------
# Command-line flags (shared by the scripts that run tests)
# --------------------------------------------------------------------------------------------


def add_judge_arguments(parser: Any, *, audit: bool = True) -> None:
    """``--judge``, ``--abs-tol``, ``--rel-tol``, ``--checker``, ``--checker-timeout`` (and, with
    ``audit``, ``--rejudge`` and ``--judges``)."""
    parser.add_argument("--judge", choices=JUDGE_NAMES, default=DEFAULT_JUDGE,
                        help="how outputs are compared: exact (trailing whitespace ignored), tokens, float, "
                             "case-insensitive, the presets livecodebench, codecontests, apps, sandboxfusion, "
                             "or checker (--checker FILE). A record's own 'judge' field overrides it")
    parser.add_argument("--abs-tol", type=float, default=None, metavar="X",
                        help=f"--judge float: absolute tolerance (default: {DEFAULT_ABS_TOL:g})")
    parser.add_argument("--rel-tol", type=float, default=None, metavar="X",
                        help=f"--judge float: tolerance relative to the expected value (default: {DEFAULT_REL_TOL:g})")
    parser.add_argument("--checker", metavar="FILE",
                        help="--judge checker: a Python checker run in the sandbox as 'checker.py input output "
                             "answer' (testlib order: the test's input, the program's output, the expected "
                             "output); exit 0 accepts, 1 or 2 rejects, anything else is an error of the run")
    parser.add_argument("--checker-timeout", type=float, default=None, metavar="S",
                        help=f"--judge checker: seconds per checker run (default: {DEFAULT_CHECKER_TIMEOUT:g})")
    if audit:
        parser.add_argument("--rejudge", metavar="RESULTS.json",
                            help="judge a finished --output file again with --judge (and --special-judges), "
                                 "running no program")
        add_audit_flag(parser)


def add_audit_flag(parser: Any, what: str = "fully passing problems and pass@1") -> None:
    """``--judges A,B,...``: the judge-sensitivity audit (``parse_judges`` reads it)."""
    parser.add_argument("--judges", metavar="A,B,...",
                        help=f"audit: judge every result under each of these judges and report the verdicts, "
                             f"{what} that change between each pair")


def judge_from_args(args: Any) -> Judge:
    """The run's judge from the flags; a tolerance or checker flag without its judge is a ``ConfigError``."""
    name = args.judge
    if name != "float" and (args.abs_tol is not None or args.rel_tol is not None):
        raise ConfigError("--abs-tol and --rel-tol apply to --judge float only")
    if name != "checker" and (args.checker is not None or args.checker_timeout is not None):
        raise ConfigError("--checker and --checker-timeout apply to --judge checker only")
    if name == "float":
        return get_judge("float", abs_tol=args.abs_tol, rel_tol=args.rel_tol)
    if name == "checker":
        if not args.checker:
            raise ConfigError("--judge checker needs --checker FILE")
        return get_judge("checker", path=args.checker, timeout=args.checker_timeout)
    return get_judge(name)
