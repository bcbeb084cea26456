"""Repair LLM-written programs with execution feedback: show a model its failing tests, run
its repaired program, iterate, and keep the best program.

Per problem: evaluate the starting program once; then up to ``--max-iterations`` times send
feedback (budgeted ``format_feedback``) to the model, extract the program from its answer and
run it, until the target pass ratio is reached. The conversation is multi-turn: the model sees
its earlier answers and the feedback on each (so every prompt differs and is cacheable). A
program is never run twice on the same test (results are cached by program hash).

Runs are resumable: every finished problem is appended to a JSONL checkpoint, every model
response is stored in a SQLite cache, and the output and summary files are rewritten
atomically as problems finish and on Ctrl-C (their formats, naming rules and builders are in
``repair_summary.py``; flags, exit codes and SIGTERM come from ``cli.py``). Exit codes: 0 all problems done, 1 some problem
ended in error (each printed as one line ``error: <file>: problem <i>: <message>``, also listed in
the summary; a problem id out of range is such an error), 2 usage/configuration error (one line
``error: ...``, e.g. an unwritable output file: the checkpoint keeps finished problems),
130 interrupted.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import hashlib
import json
import logging
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, cast

import dataset_formats
import dataset_records
import judges
import librarybench_common as common
import problem_limits
from atomic_io import check_parent_creatable
from cli import (
    OneLineParser,
    add_executor_flags,
    add_logging_flag,
    add_selection_flags,
    fraction,
    non_negative_int,
    positive_float,
    positive_int,
    run_async,
    run_main,
)
from errors import ConfigError, InputError, LibraryBenchError, WriteError
from executors import Executor
from librarybench_common import (
    DEFAULT_EXEC_CONCURRENCY,
    DEFAULT_FEEDBACK_BUDGET,
    DEFAULT_LLM_CONCURRENCY,
    DEFAULT_TIMEOUT,
    answer_program,
    count_passed,
    cut_middle,
    extract_code,
    format_feedback,
    get_executor,
    load_problems,
    parse_problem_selection,
    problem_tests,
    set_semaphore_limits,
    solution_keys,
    write_atomic_json,
)
from llm_clients import (
    DEFAULT_MODEL,
    DEFAULT_REQUEST_TIMEOUT,
    ModelSpec,
    check_credentials,
    effective_base_url,
    make_chat_client,
    retired_note,
    route_model,
)
from repair_calls import ModelCaller, ProgramRunner, Recheck, RunStats
from repair_store import Checkpoint, ResponseCache
from repair_summary import (
    Counts,
    Iteration,
    ProblemEntry,
    RepairSummary,
    aggregate,
    build_summary,
    checkpoint_path,
    code_hash,
    counts_block,
    default_output_path,
    finished_entry,
    iteration_record,
    output_records,
    problem_entry,
    subset_block,
    summary_path,
)

from repair_inputs import require_file
from repair_report import cost_line, iteration_lines, split_note
from resample import KIND_RESAMPLE_SYSTEM_PROMPT, RESAMPLE_PROMPT_NOTE, resample_problem
from timing_recheck import DEFAULT_RECHECK_FRACTION

log = logging.getLogger("librarybench.repair")

DEFAULT_CACHE_FILE = ".librarybench_cache/responses.sqlite"
WRITE_INTERVAL_S = 10.0  # rewrite output/summary at most this often while running
STATEMENT_LIMIT = 20_000  # characters of the problem statement shown to the model

SYSTEM_PROMPT = (
    "You are an expert competitive programmer who repairs Python 3 programs. A program reads its "
    "input from standard input and writes its answer to standard output; it is judged by comparing "
    "its output with the expected output of each test. Reply with the complete corrected program in "
    "a single ```python code block (no partial snippets, no example usage, no tests)."
)
KIND_SYSTEM_PROMPT = (
    "You are an expert Python programmer who repairs Python 3 code. The code defines a function (or a class "
    "Solution with a method) and is judged by calling it on the tests' arguments and comparing the returned value "
    "with the expected one, or by running the tests' assert statements after it. Reply with the complete "
    "corrected code in a single ```python code block (no reading of input, no example usage, no tests)."
)
NO_CODE_MESSAGE = (
    "Your answer contained no Python program. Reply with the complete corrected program in a single "
    "```python code block."
)
TRUNCATED_NOTE = "Note: your previous answer was cut off at the output token limit; keep the answer short.\n\n"


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepairSettings:
    """Everything that changes a problem's result: part of the checkpoint fingerprint."""

    max_iterations: int = 3
    target_ratio: float = 1.0
    temperature: float | None = None
    max_tokens: int = 4096
    timeout: float = DEFAULT_TIMEOUT
    feedback_tests: str | None = None
    seed: int = 0
    feedback_budget: int = DEFAULT_FEEDBACK_BUDGET
    judge: str | None = None  # the run's judge (canonical JSON of its spec); None: exact
    strategy: str = "repair"  # "repair", "resample" or "repair,resample"
    token_budget: int | None = None  # resample's budget per problem (default: the repair's tokens)
    recheck_timeouts: int = 0
    recheck_fraction: float = DEFAULT_RECHECK_FRACTION
    limits: dict[str, Any] | None = None  # --limits dataset: mode, scale, cap (problem_limits); None: global
    memory_mb: int | None = None
    output_limit: int | None = None
    show_private: bool = False  # standard datasets: the model also sees the private tests

    @property
    def strategies(self) -> tuple[str, ...]:
        return tuple(self.strategy.split(","))


# Settings added after checkpoints existed: left out of the fingerprint at their default, so
# older checkpoints still match.
LATER_SETTINGS = {"judge": None, "strategy": "repair", "token_budget": None, "recheck_timeouts": 0,
                  "recheck_fraction": DEFAULT_RECHECK_FRACTION, "limits": None, "memory_mb": None,
                  "output_limit": None, "show_private": False}


@dataclass(frozen=True)
class RunConfig:
    solution_file: Path
    output_file: Path
    summary_file: Path
    checkpoint_file: Path
    cache_file: Path | None
    selection: common.ProblemSelection | None
    spec: ModelSpec
    model_key: str | None
    settings: RepairSettings
    concurrent_problems: int = 3
    llm_concurrency: int = DEFAULT_LLM_CONCURRENCY
    exec_concurrency: int = DEFAULT_EXEC_CONCURRENCY
    executor: str | None = None
    resume: bool = False
    restart: bool = False
    max_retries: int = 4
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    progress: bool | None = None  # None: only when stderr is a terminal
    isolation: str | None = None  # filled in by the run: what the executor says it is
    judge: Any = None  # judges.Judge of the run (None: exact); a record's own 'judge' overrides it
    limit_settings: Any = None  # problem_limits.LimitSettings (None: every problem under --timeout)
    samples_file: Path | None = None  # --problems runs: the samples whose first answers are repaired
    dataset_format: str | None = None  # --problems runs: --format (None: detected)
    from_dataset: bool = False  # solution_file is a standard problems file (--problems)
    sample_errors: tuple[str, ...] = ()  # filled in by the run: samples that could not be used
    public_split: bool = False  # filled in by the run: the records say which tests are public
    inputs: Any = field(default=None, compare=False, repr=False)  # check_inputs' result: read (and warned) once


def config_default(name: str) -> Any:
    """A ``RunConfig`` field's default (the flag's default is declared there, once)."""
    return next(f.default for f in fields(RunConfig) if f.name == name)


def feedback_tests_arg(text: str) -> str:
    """A count (``5``) or a fraction in (0, 1) (``0.5``); validated here, resolved per problem."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a count or a fraction, got {text!r}") from None
    is_count = value.is_integer() and "." not in text
    if (is_count and value < 1) or (not is_count and not 0 < value < 1):
        raise argparse.ArgumentTypeError(f"expects a count >= 1 or a fraction between 0 and 1, got {text!r}")
    return text.strip()


def temperature_arg(text: str) -> float:
    """A sampling temperature: 0 to 2 (the widest range the providers accept)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 2.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2, got {text}")
    return value


def strategy_arg(text: str) -> str:
    """``repair``, ``resample`` or both (``repair,resample``), in that order."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in ("repair", "resample")]
    if not names or bad or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expects repair, resample or repair,resample, got {text!r}")
    return ",".join(n for n in ("repair", "resample") if n in names)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        description="Repair a model's programs with execution feedback, keeping the best program per problem.",
        epilog=(
            "Models: claude-* -> Anthropic (ANTHROPIC_API_KEY); gpt-*, o1*, o3*, o4*, chatgpt-* -> OpenAI (OPENAI_API_KEY); "
            "or prefix anthropic:/openai:. Other names need --base-url (an OpenAI-compatible server: vLLM, "
            "Ollama, llama.cpp, LM Studio). Base URLs are also read from ANTHROPIC_BASE_URL / OPENAI_BASE_URL. "
            "Keys come from the environment or .env; with a base URL a missing key is allowed (the placeholder "
            "'not-needed' is sent). Exit codes: 0 done, 1 some problem ended in error, 2 usage error, 130 interrupted."
        ),
    )
    defaults = RepairSettings()  # the defaults' one source: the settings and config records
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--solution-file", help="JSON list of problem records with model answers")
    source.add_argument("--problems", metavar="FILE",
                        help="a standard problems file (.json, .jsonl, .jsonl.gz, .parquet) of TACO/APPS, LiveCodeBench, "
                             "HumanEval, MBPP or CodeContests, instead of --solution-file")
    p.add_argument("--samples", metavar="FILE",
                   help="answers to repair for --problems: evalplus samples.jsonl, LiveCodeBench [{question_id, code_list}] "
                        "or TACO generation.json; with n samples per problem only the FIRST sample of each problem is "
                        "repaired (key <file stem>_solution); default: the records' own *_solution answers")
    p.add_argument("--format", dest="dataset_format", choices=dataset_formats.FORMATS,
                   help="the --problems file's format (default: detected from its fields)")
    p.add_argument("--show-private", action="store_true", default=defaults.show_private,
                   help="problems with public and private tests: show the model the private tests too (default: "
                        "feedback on the public tests only; every run scores the final program on all tests)")
    add_selection_flags(p, "repair")
    p.add_argument("--model-name", default=DEFAULT_MODEL, help="model that repairs")
    p.add_argument("--model-key", help="whose answer to repair, e.g. o3_mini or o3_mini_solution "
                   "(default: the file's only *_solution key other than human_solution)")
    p.add_argument("--max-iterations", type=non_negative_int, default=defaults.max_iterations,
                   help="model calls per problem at most")
    p.add_argument("--target-ratio", type=fraction, default=defaults.target_ratio, help="stop a problem at this pass ratio")
    p.add_argument("--temperature", type=temperature_arg, default=defaults.temperature,
                   help="sampling temperature, 0 to 2 (default: the provider's default, not sent)")
    p.add_argument("--max-tokens", type=positive_int, default=defaults.max_tokens, help="output token limit per model call")
    p.add_argument("--base-url", help="provider base URL, e.g. http://localhost:8000/v1 for vLLM "
                   "(default: ANTHROPIC_BASE_URL / OPENAI_BASE_URL, else the provider's API)")
    p.add_argument("--feedback-tests", type=feedback_tests_arg, default=defaults.feedback_tests,
                   help="show the model failures from only K tests (a count, or a fraction like 0.5), chosen with --seed; "
                        "the rest are held out and scored at the end (default: all tests are shown)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of the --feedback-tests split")
    p.add_argument("--strategy", type=strategy_arg, default=defaults.strategy,
                   help="repair (feedback loop), resample (fresh answers to the problem, the equal-budget baseline: "
                        "resampled_<key> in the output) or repair,resample (both on the same problems; resample "
                        "spends the tokens the repair spent on each problem)")
    p.add_argument("--token-budget", type=positive_int, default=defaults.token_budget,
                   help="resample's budget per problem in recorded tokens, input + output (default: with repair in "
                        "--strategy, the repair's tokens on that problem; required for --strategy resample alone)")
    p.add_argument("--recheck-timeouts", type=non_negative_int, default=defaults.recheck_timeouts, metavar="K",
                   help="rerun every timeout, and every pass slower than --recheck-fraction of the limit, K more times; "
                        "results get stable: true/false and the summary a flip_rate")
    p.add_argument("--recheck-fraction", type=fraction, default=defaults.recheck_fraction,
                   help="passes slower than this fraction of --timeout are rechecked too")
    p.add_argument("--feedback-budget", type=positive_int, default=defaults.feedback_budget,
                   help="characters of test feedback per prompt")
    p.add_argument("--output-file", help="where the records with the repaired answers go; the summary and "
                   "checkpoint are written beside it (default: improved_<input file name> in the current directory)")
    p.add_argument("--concurrent-problems", type=positive_int, default=config_default("concurrent_problems"),
                   help="problems in flight")
    p.add_argument("--llm-semaphore", type=positive_int, default=config_default("llm_concurrency"),
                   help="concurrent model calls")
    add_executor_flags(p, timeout_help="seconds per test", local_limits=True)
    problem_limits.add_limit_flags(p)
    p.add_argument("--cache-file", default=DEFAULT_CACHE_FILE, help="SQLite response cache")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint (the default when one exists; "
                   "with --resume a missing checkpoint is reported)")
    p.add_argument("--restart", action="store_true", help="discard an existing checkpoint and start over (the cache still applies)")
    p.add_argument("--max-retries", type=non_negative_int, default=config_default("max_retries"),
                   help="SDK retries per model call on 408/409/429/5xx")
    p.add_argument("--request-timeout", type=positive_float, default=config_default("request_timeout"),
                   help="seconds per model call before the SDK retries")
    progress = p.add_mutually_exclusive_group()
    progress.add_argument("--no-progress", action="store_true", help="no progress bar")
    progress.add_argument("--progress", action="store_true",
                          help="show the progress bar even when stderr is not a terminal (default: only on a terminal)")
    judges.add_judge_arguments(p, audit=False)
    add_logging_flag(p, help="how much diagnostic logging goes to stderr; errors of problems are always printed")
    return p


def build_config(args: argparse.Namespace) -> RunConfig:
    """Validate flags into a frozen config: every input first (files exist and parse, the model key
    exists), then the credentials, before any work."""
    if args.resume and args.restart:
        raise ConfigError("--resume and --restart are mutually exclusive")
    if args.problems is None and (args.samples or args.dataset_format):
        raise ConfigError(f"{'--samples' if args.samples else '--format'} needs --problems")
    spec = route_model(args.model_name, args.base_url)
    solution = Path(args.solution_file or args.problems)
    output, summary, checkpoint = output_paths(args)
    check_output_paths(output, summary, checkpoint, None if args.no_cache else Path(args.cache_file))
    selection = parse_problem_selection(args.problem_id, args.problem_ids, args.range_spec)
    judge = judges.judge_from_args(args)
    settings = RepairSettings(
        max_iterations=args.max_iterations, target_ratio=args.target_ratio, temperature=args.temperature,
        max_tokens=args.max_tokens, timeout=args.timeout, feedback_tests=args.feedback_tests, seed=args.seed,
        feedback_budget=args.feedback_budget,
        judge=None if judge.name == "exact" else json.dumps(judge.spec.as_dict(), sort_keys=True),
        strategy=args.strategy, token_budget=args.token_budget, recheck_timeouts=args.recheck_timeouts,
        recheck_fraction=args.recheck_fraction, memory_mb=args.memory_mb, output_limit=args.output_limit,
        limits=problem_limits.settings_from_args(args).as_dict() if args.limits != "global" else None,
        show_private=args.show_private,
    )
    if settings.strategies == ("resample",) and settings.token_budget is None:
        raise ConfigError("--strategy resample needs --token-budget N (or use --strategy repair,resample to spend "
                          "the repair's tokens on each problem)")
    config = RunConfig(
        solution_file=solution, output_file=output, summary_file=summary,
        checkpoint_file=checkpoint,
        cache_file=None if args.no_cache else Path(args.cache_file), selection=selection,
        spec=spec, model_key=args.model_key, settings=settings, concurrent_problems=args.concurrent_problems,
        llm_concurrency=args.llm_semaphore, exec_concurrency=args.exec_semaphore, executor=args.executor,
        resume=args.resume, restart=args.restart, max_retries=args.max_retries, request_timeout=args.request_timeout,
        progress=False if args.no_progress else True if args.progress else None, judge=judge,
        limit_settings=problem_limits.settings_from_args(args),
        samples_file=Path(args.samples) if args.samples else None, dataset_format=args.dataset_format,
        from_dataset=args.problems is not None,
    )
    config = replace(config, inputs=check_inputs(config))
    check_credentials(spec)
    note = retired_note(spec.model)
    if note:
        common.report_warning_line(note)
    return config


def check_output_paths(output: Path, summary: Path, checkpoint: Path, cache: Path | None) -> None:
    """Every file the run writes can be written, before any work: their folders must exist (a
    mistyped ``--output-file`` folder is an error, not a new tree); the cache may add one folder."""
    for path in (output, summary, checkpoint):
        common.check_writable(path)
    if cache is not None:
        check_parent_creatable(cache)


def load_records(config: RunConfig) -> dataset_records.DatasetRecords:
    """The run's records, unusable records as (index, message), the default answer key, and the
    lines of samples that could not be used."""
    require_file(config.solution_file)
    if not config.from_dataset:
        return dataset_records.DatasetRecords(load_problems(config.solution_file), [], None, "toolkit")
    if config.samples_file is not None:
        require_file(config.samples_file)
    return dataset_records.load(config.solution_file, config.samples_file, config.dataset_format)


def check_inputs(config: RunConfig) -> tuple[list[Any], list[int], list[tuple[int, str]], str, tuple[str, ...]]:
    """Load and check the input before credentials are asked for: (records, problems to repair,
    problems in error as (index, message), answer key, unusable samples)."""
    loaded = load_records(config)
    records, unusable, default_key = loaded.records, loaded.errors, loaded.model_key
    valid, missing = common.select_problems(len(records), config.selection, config.solution_file)
    bad = dict(unusable)
    missing = sorted(missing + [(i, bad[i]) for i in valid if i in bad])
    valid = [i for i in valid if i not in bad]
    model_key = infer_model_key(records, valid, config.model_key or default_key, config.solution_file) if valid else ""
    return records, valid, missing, model_key, loaded.sample_errors


# --------------------------------------------------------------------------------------------
# Choosing problems, answer key and test split
# --------------------------------------------------------------------------------------------


def infer_model_key(records: list[Any], indices: list[int], requested: str | None, path: Path) -> str:
    """The record key whose answers are repaired: ``--model-key`` (with or without ``_solution``)
    or the file's only model answer key."""
    chosen = [records[i] for i in indices]
    if requested:
        key = common.match_model_key(requested, {k for r in chosen if isinstance(r, dict) for k in r})
        if key is not None:
            return key
        raise InputError(f"{path}: no selected record has key {requested!r} (keys: {', '.join(solution_keys(chosen, True)) or 'none'})")
    keys = solution_keys(chosen)
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise InputError(f"{path}: the selected records have no *_solution key to repair (use --model-key)")
    raise InputError(f"{path}: several model answers ({', '.join(keys)}): choose one with --model-key")


def feedback_count(spec: str, total: int) -> int:
    """How many of ``total`` tests the model may see: at least one, and one held out if possible."""
    value = float(spec)
    wanted = int(value) if "." not in spec else round(total * value)
    return max(1, min(wanted, total - 1)) if total > 1 else total


def split_tests(total: int, spec: str | None, seed: int, problem_id: int) -> tuple[list[int], list[int]]:
    """(shown, held-out) 0-based test indices, reproducible from (seed, problem id)."""
    if spec is None:
        return list(range(total)), []
    rng = random.Random(f"{seed}:{problem_id}")
    shown = sorted(rng.sample(range(total), feedback_count(spec, total)))
    held = [i for i in range(total) if i not in set(shown)]
    return shown, held


def fingerprint_of(config: RunConfig, model_key: str, records: list[Any] | None = None) -> dict[str, Any]:
    """What a checkpoint must match to be reused (``records``: the checker programs they name)."""
    data = config.solution_file.read_bytes()
    checkers = judges.record_checker_specs(records or [], str(config.solution_file.resolve().parent))
    samples = {"samples_sha256": hashlib.sha256(config.samples_file.read_bytes()).hexdigest(),
               "format": config.dataset_format} if config.samples_file is not None else {}
    if config.from_dataset:  # --problems builds other tests and prompts than --solution-file from one file
        samples = {"input": "problems", "format": config.dataset_format, **samples}
    return {
        "solution_file": str(config.solution_file.resolve()),
        "solution_sha256": hashlib.sha256(data).hexdigest(), **samples,
        "provider": config.spec.provider, "model": config.spec.model, "base_url": effective_base_url(config.spec),
        "model_key": model_key,
        # the exact judge is left out, so checkpoints written before judges existed still match
        "settings": {k: v for k, v in asdict(config.settings).items()
                     if k not in LATER_SETTINGS or v != LATER_SETTINGS[k]},
        **({"record_checkers": checkers} if checkers else {}),  # added later: only when used
    }


# --------------------------------------------------------------------------------------------
# Running programs and calling the model
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# One problem
# --------------------------------------------------------------------------------------------


def first_prompt(statement: str, code: str, feedback: str) -> str:
    program = f"```python\n{code.rstrip()}\n```" if code.strip() else "(no program: the original answer contained no code)"
    return (
        f"## Problem\n{cut_middle(statement.strip(), STATEMENT_LIMIT)}\n\n## Current program\n{program}\n\n"
        f"## Test results\n{feedback}\nFix the program so that it passes all tests. "
        "Reply with the complete corrected program in a single ```python code block."
    )


def followup_prompt(feedback: str, passed: int, total: int, best_passed: int, best_iteration: int,
                    regressions: list[int], truncated: bool) -> str:
    note = TRUNCATED_NOTE if truncated else ""
    if passed < best_passed or regressions:
        broken = f" It breaks tests that passed before ({', '.join(f'#{i}' for i in regressions[:20])})." if regressions else ""
        note += (f"This version passes {passed}/{total} tests; the best version so far "
                 f"(attempt {best_iteration}) passed {best_passed}/{total}.{broken}\n\n")
    return f"{note}## Test results of your program\n{feedback}\nFix the program. Reply with the complete corrected program in a single ```python code block."


def program_of(answer: str | None, kind: str) -> str:
    """The program in a model's answer: stdin/stdout programs by ``extract_code``; call and assert
    answers define functions, so their last fenced block that parses (``sample_program``)."""
    if kind == "stdio":
        return extract_code(answer)
    code = dataset_formats.sample_program(answer or "", kind)
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return code if "```" in (answer or "") else ""  # prose without a code block: no program
    return code


@dataclass
class ProblemState:
    """What is known of a problem so far (kept when it ends in error)."""

    problem_id: int
    original_code: str = ""
    iterations: list[Iteration] = field(default_factory=list)
    initial: Counts | None = None  # the starting program on all tests, once it has run


@dataclass(frozen=True)
class RunContext:
    records: list[Any]
    solution_file: Path
    model_key: str
    spec: ModelSpec
    settings: RepairSettings
    caller: ModelCaller
    executor: Executor
    stats: RunStats
    on_change: Any
    judge: Any = None
    limits: dict[int, Any] = field(default_factory=dict)  # problem_limits.ProblemLimits per problem


async def repair_problem(ctx: RunContext, state: ProblemState) -> ProblemEntry:
    """The repair loop for one problem; returns its summary entry (status ``done``)."""
    s, pid = ctx.settings, state.problem_id
    record = ctx.records[pid]
    tests = problem_tests(record, pid, ctx.solution_file)
    try:
        state.original_code = answer_program(record, ctx.model_key)
    except InputError as exc:
        raise exc.at(ctx.solution_file, pid) from None
    visible = len(tests) if s.show_private else dataset_records.public_count(record, len(tests))
    if visible == 0:
        raise InputError(common.problem_message(ctx.solution_file, pid, "no public tests to show the model "
                                                                        "(pass --show-private to show the private ones)"))
    shown, held = split_tests(visible, s.feedback_tests, s.seed, pid)
    held += range(visible, len(tests))  # private tests: scored at the end, never shown
    kind = dataset_records.record_kind(record)
    system = KIND_SYSTEM_PROMPT if kind != "stdio" else None
    shown_tests = [tests[i] for i in shown]
    try:
        judge = judges.judge_from_record(record, ctx.judge or judges.get_judge("exact"), str(ctx.solution_file.resolve().parent))[0]
    except ConfigError as exc:
        raise InputError(common.problem_message(ctx.solution_file, pid, f"judge: {exc}")) from None
    recheck = Recheck(s.recheck_timeouts, s.recheck_fraction) if s.recheck_timeouts else None
    limits = ctx.limits.get(pid)
    runner = ProgramRunner(tests, timeout=limits.timeout if limits else s.timeout, executor=ctx.executor, judge=judge,
                           recheck=recheck, memory_mb=limits.call_memory_mb if limits else None)
    everything = list(range(len(tests)))

    code = state.original_code
    initial_all = await runner.results(code, everything)  # the starting score survives a later error
    state.initial = counts_block(initial_all)
    results = await runner.results(code, shown)
    state.iterations.append(iteration_record(0, code, results, None, [], None, indices=shown))
    best = {"iteration": 0, "code": code, "results": results, "passed": count_passed(results)}
    seen = {code_hash(code): 0}
    feedback = format_feedback(results, shown_tests, best["passed"], len(shown), budget=s.feedback_budget)
    messages = [{"role": "user", "content": first_prompt(str(record.get("problem") or ""), code, feedback)}]
    stopped = "target" if best["passed"] / len(shown) >= s.target_ratio else "max_iterations"
    repairing = "repair" in s.strategies
    if not repairing:
        stopped = "not_run"

    for number in range(1, (s.max_iterations if repairing else 0) + 1):
        if best["passed"] / len(shown) >= s.target_ratio:
            stopped = "target"
            break
        completion = await ctx.caller.ask(messages, system=system)
        code = program_of(completion.text, kind)
        messages.append({"role": "assistant", "content": completion.text or "(empty answer)"})
        if not code:
            state.iterations.append(iteration_record(number, "", None, completion, [], None))
            messages.append({"role": "user", "content": (TRUNCATED_NOTE if completion.truncated else "") + NO_CODE_MESSAGE})
        else:
            duplicate_of = seen.setdefault(code_hash(code), number)
            results = await runner.results(code, shown)
            passed = count_passed(results)
            # Tests that passed in the best program and fail now: numbered among the shown tests in
            # the prompt (as the feedback numbers them; held-out indices are never revealed), and
            # by their 1-based index among all of the problem's tests in the stored record.
            broken = [j for j, (old, new) in enumerate(zip(best["results"], results))
                      if old.get("passed") and not new.get("passed")]
            regressions = [j + 1 for j in broken]
            state.iterations.append(iteration_record(number, code, results, completion, [shown[j] + 1 for j in broken],
                                                     duplicate_of if duplicate_of != number else None, indices=shown))
            if passed > best["passed"]:
                best = {"iteration": number, "code": code, "results": results, "passed": passed}
            feedback = format_feedback(results, shown_tests, passed, len(shown), budget=s.feedback_budget)
            messages.append({"role": "user", "content": followup_prompt(
                feedback, passed, len(shown), best["passed"], best["iteration"], regressions, completion.truncated)})
        ctx.stats.iterations += 1
        ctx.on_change()
    else:
        if repairing:
            stopped = "target" if best["passed"] / len(shown) >= s.target_ratio else "max_iterations"

    final_all = await runner.results(best["code"], everything)
    split = None if s.feedback_tests is None and not held else (subset_block(initial_all, final_all, shown),
                                                                subset_block(initial_all, final_all, held))
    entry = finished_entry(base_entry(ctx, state, status="done", error=None), initial=counts_block(initial_all),
                           final=counts_block(final_all), best_iteration=best["iteration"], best_code=best["code"],
                           stopped=stopped, executions=runner.executions, split=split)
    if limits is not None:
        entry["limits"] = limits.as_dict()
    if "resample" in s.strategies:
        budget = s.token_budget if s.token_budget is not None else entry["input_tokens"] + entry["output_tokens"]
        entry["resample"] = await resample_problem(
            caller=ctx.caller, runner=runner, problem_id=pid, model=ctx.spec.model,
            statement=str(record.get("problem") or ""), original_code=state.original_code, shown=shown,
            held=None if split is None else held, initial_all=initial_all, budget=budget,
            target_ratio=s.target_ratio, on_iteration=ctx.on_change,
            **({} if kind == "stdio" else {"system": KIND_RESAMPLE_SYSTEM_PROMPT,
                                           "extract": lambda text: program_of(text, kind)}))
        entry["executions"] = runner.executions
    if runner.tally is not None:
        t = runner.tally
        entry["recheck"] = {"tests_rechecked": t.tests_rechecked, "unstable_tests": t.unstable_tests,
                            "reruns": t.reruns, "flips": t.flips}
    return entry


def base_entry(ctx: RunContext, state: ProblemState, *, status: str, error: str | None) -> ProblemEntry:
    return problem_entry(state.problem_id, ctx.spec.model, status=status, error=error, initial=state.initial,
                         iterations=state.iterations, original_code=state.original_code)


async def repair_or_error(ctx: RunContext, problem_id: int) -> ProblemEntry:
    """A problem's entry; a failure of its model calls, execution or record is an ``error`` entry."""
    state = ProblemState(problem_id)
    try:
        return await repair_problem(ctx, state)
    except LibraryBenchError as exc:
        error = exc.at(ctx.solution_file, problem_id)
    except Exception as exc:  # a bug must not take the other problems down
        log.debug("problem %d: unexpected error", problem_id, exc_info=True)
        error = LibraryBenchError(f"internal error: {type(exc).__name__}: {exc}", file=ctx.solution_file,
                                  index=problem_id)
    common.report_error_line(str(error))  # the line printed is the one stored
    return base_entry(ctx, state, status="error", error=str(error))


# --------------------------------------------------------------------------------------------
# Output and summary
# --------------------------------------------------------------------------------------------


def summary_document(config: RunConfig, model_key: str, selected: list[int], entries: dict[int, ProblemEntry],
                     complete: bool, elapsed: float, stats: RunStats) -> RepairSummary:
    document = build_summary(
        solution_file=str(config.solution_file), output_file=str(config.output_file), model=config.spec.model,
        provider=config.spec.provider, base_url=effective_base_url(config.spec), model_key=model_key,
        settings={**asdict(config.settings), "executor": config.executor, "isolation": config.isolation,
                  "conversation": "multi-turn",
                  **({"resample_prompt": RESAMPLE_PROMPT_NOTE} if "resample" in config.settings.strategies else {})},
        held_out_split=held_out_split(config, entries), selected=selected, entries=entries,
        complete=complete, this_run={**asdict(stats), "elapsed_s": round(elapsed, 3)},
        strategies=config.settings.strategies,
        recheck=(config.settings.recheck_timeouts, config.settings.recheck_fraction)
        if config.settings.recheck_timeouts else None)
    document["test_split"] = run_split_note(config, [entries[i] for i in selected if i in entries])  # type: ignore[typeddict-unknown-key]
    if config.from_dataset:
        document["problems_file"] = str(config.solution_file)  # type: ignore[typeddict-unknown-key]
        document["samples_file"] = str(config.samples_file) if config.samples_file else None  # type: ignore[typeddict-unknown-key]
        document["sample_errors"] = list(config.sample_errors)  # type: ignore[typeddict-unknown-key]
    return document


def held_out_split(config: RunConfig, entries: dict[int, ProblemEntry]) -> bool:
    """Some tests were kept from the model: ``--feedback-tests``, or private tests of a dataset."""
    return config.settings.feedback_tests is not None or any(e.get("held_out") for e in entries.values())


def run_split_note(config: RunConfig, entries: list[ProblemEntry]) -> str:
    return split_note(entries, show_private=config.settings.show_private, public_split=config.public_split,
                      feedback_tests=config.settings.feedback_tests)


def write_outputs(config: RunConfig, records: list[Any], model_key: str, selected: list[int],
                  entries: dict[int, ProblemEntry], complete: bool, elapsed: float, stats: RunStats) -> None:
    write_atomic_json(config.output_file, output_records(records, entries, model_key, config.settings.strategies))
    write_atomic_json(config.summary_file, summary_document(config, model_key, selected, entries, complete, elapsed, stats))


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def make_progress(config: RunConfig, total: int, done: int) -> Any:
    from tqdm import tqdm

    # disable=None: tqdm shows the bar only when stderr is a terminal (no progress lines in logs).
    disable = None if config.progress is None else not config.progress
    return tqdm(total=total, initial=done, desc="problems", unit="problem", file=sys.stderr,
                disable=disable, dynamic_ncols=True)


def load_checkpoint(config: RunConfig, checkpoint: Checkpoint) -> dict[int, ProblemEntry]:
    if config.restart:
        checkpoint.remove()
        return {}
    if config.resume and not checkpoint.exists():
        common.report_warning_line(f"--resume: no checkpoint at {checkpoint.path}, starting from the beginning")
    return cast(dict[int, ProblemEntry], checkpoint.load())


async def run_repair(config: RunConfig) -> int:
    """Repair the selected problems; returns the exit code."""
    started = time.monotonic()
    records, valid, missing, model_key, sample_errors = config.inputs or check_inputs(config)
    for line in sample_errors:  # an unusable sample: an error of the run; the other samples are used
        common.report_error_line(line)
    for index, message in missing:  # an id out of range or an unusable record: an error of that problem
        common.report_error_line(message)
    if not valid:
        return 1
    config = replace(config, sample_errors=sample_errors, public_split=config.from_dataset or any(
        isinstance(records[i], dict) and dataset_records.SPLIT_KEY in records[i] for i in valid))
    selected = valid + [index for index, _ in missing]
    checkpoint = Checkpoint(config.checkpoint_file, fingerprint_of(config, model_key, records))
    finished = {pid: e for pid, e in load_checkpoint(config, checkpoint).items() if pid in set(valid)}
    pending = [pid for pid in valid if pid not in finished]
    if finished:
        print(f"resuming from {checkpoint.path}: {len(finished)} problem(s) already done, {len(pending)} to go",
              file=sys.stderr, flush=True)  # as model_feedback says it
    set_semaphore_limits(llm=config.llm_concurrency, exec=config.exec_concurrency)
    executor = get_executor(config.executor, memory_mb=config.settings.memory_mb, output_bytes=config.settings.output_limit)
    config = replace(config, executor=executor.name, isolation=executor.isolation)
    base_url = effective_base_url(config.spec)
    print(f"Executor: {config.executor} ({config.isolation}); model: {config.spec.model} "
          f"(provider {config.spec.provider}{', ' + base_url if base_url else ''}); "
          f"repairing {model_key} in {config.solution_file}: {len(valid)} problem(s), {len(finished)} already done; "
          f"judge: {config.judge.spec if config.judge is not None else 'exact'}",
          flush=True)
    cache = ResponseCache(config.cache_file) if config.cache_file else None
    client = make_chat_client(config.spec, max_retries=config.max_retries, request_timeout=config.request_timeout)
    stats = RunStats()
    entries: dict[int, ProblemEntry] = dict(finished)
    progress = make_progress(config, len(valid), len(finished))

    def refresh() -> None:
        progress.set_postfix(iterations=stats.iterations, calls=stats.api_calls, cached=stats.cached_calls,
                             tokens=stats.input_tokens + stats.output_tokens, refresh=False)
        progress.refresh()

    caller = ModelCaller(client, cache, config.settings, stats, refresh, system=SYSTEM_PROMPT)
    ctx = RunContext(records, config.solution_file, model_key, config.spec, config.settings, caller, executor, stats, refresh,
                     config.judge, problem_limits.resolve_records(config.solution_file, records, pending,
                                                                  config.limit_settings, executor))
    for index, message in missing:
        entries[index] = base_entry(ctx, ProblemState(index), status="error", error=message)
    problem_slots = asyncio.Semaphore(config.concurrent_problems)

    async def one(pid: int) -> ProblemEntry:
        async with problem_slots:
            return await repair_or_error(ctx, pid)

    def save(complete: bool) -> None:
        write_outputs(config, records, model_key, selected, entries, complete, time.monotonic() - started, stats)

    def record(entry: ProblemEntry) -> None:
        entries[entry["problem_id"]] = entry
        if entry["status"] == "done":  # errors are retried by the next run
            checkpoint.append(entry["problem_id"], entry)

    tasks = [asyncio.create_task(one(pid)) for pid in pending]
    last_write = time.monotonic()
    try:
        for next_done in asyncio.as_completed(tasks):
            record(await next_done)
            progress.update(1)
            refresh()
            if time.monotonic() - last_write >= WRITE_INTERVAL_S:
                save(complete=False)
                last_write = time.monotonic()
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for outcome in outcomes:  # problems that finished meanwhile are kept, not lost
            if isinstance(outcome, dict) and outcome.get("problem_id") not in entries:
                record(outcome)
        save(complete=False)
        raise
    finally:
        progress.close()
        await client.aclose()
        if cache is not None:
            cache.close()
        await common.close_executor(executor)
    save(complete=True)
    errors = sum(1 for pid in selected if entries[pid]["status"] == "error")
    print(results_table(config, selected, entries, stats), end="", flush=True)
    if errors:
        print(f"{errors} of {len(selected)} problem(s) ended in error: see {config.summary_file} "
              "(run the same command again to retry them)", file=sys.stderr)
    if config.sample_errors:
        print(f"{len(config.sample_errors)} sample(s) could not be used (listed above and in {config.summary_file})",
              file=sys.stderr)
    return 1 if errors or config.sample_errors else 0


def results_table(config: RunConfig, selected: list[int], entries: dict[int, ProblemEntry],
                  stats: RunStats | None = None) -> str:
    """The end-of-run report on stdout: per problem initial -> final, labelled lines per iteration,
    the test split, totals, tokens and cost (this run's and the cache's apart), files."""
    def score(block: Counts | None) -> str:
        return f"{block['passed']}/{block['total']}" if block else "-"

    lines = [f"{'problem':>7}  {'initial':>9}  {'final':>9}  status"]
    for pid in selected:
        e = entries[pid]
        status = f"{e['status']} ({e.get('stopped')})" if e["status"] == "done" else f"error: {(e.get('error') or '')[:80]}"
        lines.append(f"{pid:>7}  {score(e.get('initial')):>9}  {score(e.get('final')):>9}  {status}")
    listed = [entries[i] for i in selected]
    done = [e for e in listed if e["status"] == "done"]
    before = sum(e["initial"]["passed"] for e in done)
    after = sum(e["final"]["passed"] for e in done)
    total = sum(e["initial"]["total"] for e in done)
    agg = aggregate(listed, config.spec.model, False)
    lines += iteration_lines(done)
    lines += [
        f"Total: {before}/{total} -> {after}/{total} tests passed on {len(done)} problem(s); "
        f"fully passing {agg['fully_passing_before']} -> {agg['fully_passing_after']}; {agg['errors']} error(s)",
        f"Tokens: {agg['input_tokens']:,} in, {agg['output_tokens']:,} out ({agg['model_calls']} calls, "
        f"{agg['cached_calls']} from the cache); " + cost_line(config.spec.model, agg, stats),
        run_split_note(config, done),
        f"Wrote {config.output_file}, {config.summary_file} and {config.checkpoint_file}",
    ]
    resampled = [e["resample"] for e in done if e.get("resample")]
    if resampled:
        r_after = sum(e["final"]["passed"] for e in resampled)
        r_full = sum(1 for e in resampled if e["final"]["passed"] == e["final"]["total"])
        r_in, r_out = sum(e["input_tokens"] for e in resampled), sum(e["output_tokens"] for e in resampled)
        lines.insert(-1, f"Resample (equal budget): {before}/{total} -> {r_after}/{total} tests passed; fully passing "
                         f"{r_full}; tokens {r_in:,} in, {r_out:,} out "
                         f"({sum(max(0, len(e['iterations']) - 1) for e in resampled)} samples)")
    if config.settings.recheck_timeouts:
        flips = aggregate_flips(done)
        lines.insert(-1, f"Timing rechecks: {flips['tests_rechecked']} test(s) rechecked "
                         f"{config.settings.recheck_timeouts} more time(s), {flips['unstable_tests']} unstable, "
                         f"{flips['flips']}/{flips['reruns']} reruns flipped")
    return "\n".join(lines) + "\n"


def aggregate_flips(entries: list[ProblemEntry]) -> dict[str, int]:
    keys = ("tests_rechecked", "unstable_tests", "reruns", "flips")
    return {k: sum(int((e.get("recheck") or {}).get(k, 0)) for e in entries) for k in keys}


async def run_with_signals(config: RunConfig) -> int:
    """The run as the script starts it: under ``cli.run_async`` SIGTERM cancels it as Ctrl-C does,
    so partial results are written either way."""
    return await run_repair(config)


def run(args: argparse.Namespace) -> int:
    return run_async(run_with_signals(build_config(args)))


def output_paths(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """(output, summary, checkpoint) files of a run, by the naming rules of ``repair_summary``."""
    if args.output_file:
        output = Path(args.output_file)
    elif args.solution_file:
        output = default_output_path(Path(args.solution_file))
    else:  # a problems file may be .jsonl/.parquet: the output is a JSON list of records
        output = default_output_path(Path(Path(args.problems).name.split(".")[0] + ".json"))
    return output, summary_path(output), checkpoint_path(output)


def kept_note(args: argparse.Namespace, error: LibraryBenchError) -> str:
    """When the output or summary cannot be written, say that the checkpoint keeps the finished problems."""
    checkpoint = output_paths(args)[2]
    if isinstance(error, WriteError) and checkpoint.exists() and error.path != str(checkpoint):
        return f" (finished problems are kept in {checkpoint}: run the command again to write them)"
    return ""


def partial_note(args: argparse.Namespace) -> str:
    output, summary, _ = output_paths(args)
    return f": partial results in {output} and {summary}; run the same command to resume"


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv, run, error_note=kept_note, interrupt_note=partial_note)


if __name__ == "__main__":
    sys.exit(main())
