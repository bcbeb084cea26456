"""Per-problem judges from a special-judge list (``model_feedback.py --special-judges FILE``).

Owns reading the list (JSON or JSONL), mapping each entry's kind to a judge and the report of what
was applied. Benchmarks such as TACO ship a list of the problems whose outputs a plain comparison
cannot judge, by kind: several valid outputs, case-insensitive, float tolerance. The kinds map to
judges: ``case-insensitive`` -> the ``case-insensitive`` judge, ``float`` -> ``float`` (with the
entry's ``abs_tol``/``rel_tol``, else the defaults), ``multiple`` (several valid outputs) -> *no*
built-in judge can decide it: such a problem needs a checker, is judged by the run's judge and is
reported as such (in the summary, the JSON and on stderr), never silently. An entry may name a
judge instead (``"judge": "tokens"`` or ``{"name": "checker", "path": "chk.py"}``, the record
``judge`` field's form; a checker path is relative to the list). A record's own ``judge`` field
wins over the list; the list wins over ``--judge``.

Accepted files: an object ``{"<key>": <kind, judge name or entry>}``; a list or JSONL of entries
``{"idx"|"index"|"problem_id"|"id"|"name": <key>, "kind": ... | "judge": ...}``; TACO's
``output_spj.jsonl`` lines ``{"idx": 5, "special_judge": true, "case": 1}`` (``special_judge:
false`` lines are skipped). TACO does not document what its ``case`` numbers mean, so they are not
guessed: wrap the lines as ``{"cases": {"1": "multiple", ...}, "problems": [...]}`` to say it;
a case without a kind is reported as a special judge of unknown kind (needs a checker). A key is a
0-based problem index (an integer or digits) or a record's ``name``/``id``.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import judges
from errors import ConfigError, InputError

NEEDS_CHECKER = "multiple"
KIND_ALIASES = {
    "case-insensitive": "case-insensitive", "ignore-case": "case-insensitive", "caseless": "case-insensitive",
    "float": "float", "float-tolerance": "float", "tolerance": "float", "precision": "float",
    "multiple": NEEDS_CHECKER, "several-valid-outputs": NEEDS_CHECKER, "multiple-answers": NEEDS_CHECKER,
    "multiple-outputs": NEEDS_CHECKER, "any-valid-output": NEEDS_CHECKER,
    "unknown": "unknown",
}
KEY_FIELDS = ("idx", "index", "problem_id", "id", "name")
NAME_FIELDS = ("name", "id")


@dataclass(frozen=True)
class SpecialEntry:
    """One problem of the list: its kind and judge (``None``: it needs a checker)."""

    key: str
    kind: str  # case-insensitive, float, multiple, unknown, or "judge" (named in the entry)
    judge: judges.Judge | None
    note: str = ""  # e.g. "TACO case 3"


@dataclass(frozen=True)
class SpecialJudges:
    path: str
    by_index: dict[int, SpecialEntry]
    by_name: dict[str, SpecialEntry]

    @property
    def size(self) -> int:
        return len(self.by_index) + len(self.by_name)

    def slots(self, index: int, record: Any) -> list[tuple[str, int | str]]:
        """Every entry naming this problem, as ("index", i) or ("name", key)."""
        found: list[tuple[str, int | str]] = [("index", index)] if index in self.by_index else []
        if isinstance(record, dict):
            names = {str(v) for f in NAME_FIELDS if isinstance(v := record.get(f), (str, int))}
            found += [("name", name) for name in sorted(names) if name in self.by_name]
        return found

    def check_problems(self, problems: Iterable[tuple[str, int, Any]], covers_all: bool) -> list[str]:
        """Before the run: a problem named by two entries (by index and by name) is an ``InputError``;
        returns a warning (without ``warning: ``) naming the entries that match no problem, only when
        ``problems`` (file, index, record) are every problem of the run's files (``covers_all``)."""
        used: set[tuple[str, int | str]] = set()
        for file, index, record in problems:
            found = self.slots(index, record)
            if len(found) > 1:
                named = " and ".join(f"{key}" if kind == "index" else f"{key!r}" for kind, key in found)
                raise InputError(f"{self.path}: {file}: problem {index} is listed twice ({named})")
            used.update(found)
        unused = [str(k) for k in self.by_index if ("index", k) not in used]
        unused += [repr(k) for k in self.by_name if ("name", k) not in used]
        if not covers_all or not unused:
            return []
        return [f"{self.path}: {len(unused)} entr{'y' if len(unused) == 1 else 'ies'} with no matching problem: "
                f"{', '.join(unused)}"]

    def checker_specs(self) -> list[list[Any]]:
        """[key, spec] of every entry judged by a checker: the spec holds the checker's
        ``source_sha256``, so an edited checker changes a results log's fingerprint."""
        entries = [*self.by_index.values(), *self.by_name.values()]
        return sorted(([e.key, e.judge.spec.as_dict()] for e in entries
                       if e.judge is not None and e.judge.spec.name == "checker"), key=lambda pair: pair[0])

    def lookup(self, index: int, record: Any) -> SpecialEntry | None:
        if index in self.by_index:
            return self.by_index[index]
        if isinstance(record, dict):
            for field in NAME_FIELDS:
                value = record.get(field)
                if isinstance(value, (str, int)) and str(value) in self.by_name:
                    return self.by_name[str(value)]
        return None


# --------------------------------------------------------------------------------------------
# Reading the list
# --------------------------------------------------------------------------------------------


def read_documents(path: str) -> Any:
    """A ``.jsonl``/``.jsonl.gz`` file as JSON lines (even one line: it is an entry, not the
    ``{key: kind}`` mapping); any other file as one JSON document, else as JSON lines."""
    name = path.lower()
    try:
        raw = Path(path).read_bytes()
        text = (gzip.decompress(raw) if name.endswith(".gz") else raw).decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: --special-judges file not found") from None
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: cannot read the special-judge list: {exc}") from None
    if not name.endswith((".jsonl", ".jsonl.gz")):
        try:
            return json.loads(text)
        except ValueError:
            pass
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                lines.append(json.loads(line))
            except ValueError as exc:
                raise InputError(f"{path}: line {number}: not JSON: {exc}") from None
    return lines


def kind_judge(kind: str, entry: dict[str, Any]) -> tuple[str, judges.Judge | None]:
    """A kind (or a built-in judge's name) as (kind, judge); ``None``: needs a checker."""
    name = kind.strip().lower().replace("_", "-").replace(" ", "-")
    canonical = KIND_ALIASES.get(name)
    if canonical == "float":
        return "float", judges.get_judge("float", abs_tol=entry.get("abs_tol"), rel_tol=entry.get("rel_tol"))
    if canonical == "case-insensitive":
        return canonical, judges.get_judge("case-insensitive")
    if canonical in (NEEDS_CHECKER, "unknown"):
        return canonical, None
    if name in judges.JUDGE_NAMES and name != "checker":
        return "judge", judges.get_judge(name)
    raise ConfigError(f"unknown special-judge kind {kind!r}: use case-insensitive, float, multiple "
                      f"or a judge name ({', '.join(n for n in judges.JUDGE_NAMES if n != 'checker')})")


def parse_entry(key: Any, value: Any, cases: dict[str, Any], base_dir: str) -> SpecialEntry | None:
    """One entry, or None for a TACO line that needs no special judge."""
    entry = value if isinstance(value, dict) else {"kind": value}
    if entry.get("judge") is not None:
        judge, _ = judges.judge_from_record({"judge": entry["judge"]}, judges.get_judge("exact"), base_dir)
        return SpecialEntry(str(key), "judge", judge)
    if "special_judge" in entry and "kind" not in entry:
        if not entry["special_judge"]:
            return None
        case = entry.get("case")
        kind = cases.get(str(case))
        if kind is None:
            return SpecialEntry(str(key), "unknown", None, f"TACO case {case}: kind not given in the file's 'cases'")
        kind, judge = kind_judge(str(kind), entry)
        return SpecialEntry(str(key), kind, judge, f"TACO case {case}")
    kind = entry.get("kind")
    if not isinstance(kind, str):
        raise ConfigError(f"entry {key!r} needs a 'kind' (case-insensitive, float, multiple) or a 'judge'")
    kind, judge = kind_judge(kind, entry)
    return SpecialEntry(str(key), kind, judge)


def raw_entries(data: Any) -> tuple[list[tuple[Any, Any]], dict[str, Any]]:
    """(key, value) pairs and the TACO case kinds, from any of the accepted shapes."""
    cases: dict[str, Any] = {}
    if isinstance(data, dict) and (isinstance(data.get("problems"), list) or {"cases", "problems"} <= data.keys()):
        if not isinstance(data["problems"], list):
            raise ConfigError("'problems' must be a list of entries")
        if not isinstance(data.get("cases") or {}, dict):
            raise ConfigError("'cases' must be an object {case: kind}")
        cases = {str(k): v for k, v in (data.get("cases") or {}).items()}
        data = data["problems"]
    if isinstance(data, dict):
        return list(data.items()), cases
    if not isinstance(data, list):
        raise ConfigError("expected an object or a list of entries")
    pairs = []
    for item in data:
        if not isinstance(item, dict):
            raise ConfigError(f"an entry is not an object: {item!r}")
        field = next((f for f in KEY_FIELDS if f in item), None)
        if field is None:
            raise ConfigError(f"an entry names no problem (one of {', '.join(KEY_FIELDS)}): {item!r}")
        key = item[field]
        if isinstance(key, bool) or not isinstance(key, (int, str)) or (isinstance(key, int) and key < 0):
            raise ConfigError(f"an entry's {field!r} must be a problem index (0 or more) or a name: {item!r}")
        pairs.append((key, {k: v for k, v in item.items() if k != field}))
    return pairs, cases


def load(path: str) -> SpecialJudges:
    """The list at ``path``; a bad file or entry is one ``InputError`` naming the file."""
    try:
        pairs, cases = raw_entries(read_documents(path))
        by_index: dict[int, SpecialEntry] = {}
        by_name: dict[str, SpecialEntry] = {}
        for key, value in pairs:
            entry = parse_entry(key, value, cases, str(Path(path).resolve().parent))
            if entry is None:
                continue
            is_index = isinstance(key, int) or (isinstance(key, str) and key.isdigit())
            table: dict[Any, SpecialEntry] = by_index if is_index else by_name
            slot: Any = int(key) if is_index else str(key)
            if slot in table:
                raise ConfigError(f"problem {key!r} is listed twice")
            table[slot] = entry
    except ConfigError as exc:
        raise InputError(f"{path}: {exc}") from None
    return SpecialJudges(path, by_index, by_name)


# --------------------------------------------------------------------------------------------
# Applying and reporting
# --------------------------------------------------------------------------------------------


def apply(entry: SpecialEntry, default: judges.Judge, path: str) -> tuple[judges.Judge, dict[str, Any]]:
    """The judge a listed problem gets and its ``special_judge`` block (results JSON)."""
    judge = entry.judge or default
    block = {"source": path, "key": entry.key, "kind": entry.kind, "judge": judge.spec.as_dict(),
             "needs_checker": entry.judge is None}
    if entry.note:
        block["note"] = entry.note
    if entry.judge is None:
        block["message"] = f"needs a checker, judged by {default.spec}"
    return judge, block


def summary_block(evaluations: Iterable[tuple[str, int, str | None, dict[str, Any] | None]],
                  specials: SpecialJudges) -> dict[str, Any]:
    """What the list did in this run: per kind, and every evaluation that needs a checker."""
    by_kind: dict[str, int] = {}
    needs: list[dict[str, Any]] = []
    for solution_file, problem_id, model_key, block in evaluations:
        if block is None:
            continue
        by_kind[block["kind"]] = by_kind.get(block["kind"], 0) + 1
        if block["needs_checker"]:
            needs.append({"solution_file": solution_file, "problem_id": problem_id, "model_key": model_key,
                          "kind": block["kind"], "message": block["message"], **({"note": block["note"]}
                                                                                  if "note" in block else {})})
    return {"file": specials.path, "entries": specials.size, "applied": sum(by_kind.values()), "by_kind": by_kind,
            "needs_checker": needs}


def summary_line(block: dict[str, Any]) -> str:
    kinds = ", ".join(f"{k} {n}" for k, n in block["by_kind"].items()) or "none"
    return (f"Special judges from {block['file']}: {block['applied']} evaluation(s) of {block['entries']} listed "
            f"problem(s) ({kinds}); {len(block['needs_checker'])} need a checker")


def warning_lines(block: dict[str, Any]) -> list[str]:
    """One stderr line per evaluation judged by the run's judge although it needs a checker."""
    return [f"warning: {n['solution_file']}: problem {n['problem_id']} ({n['model_key']}): {n['kind']} special judge "
            f"({n.get('note') or block['file']}): {n['message']}" for n in block["needs_checker"]]
