"""Command-line plumbing shared by the scripts: a parser whose usage errors are one line, a help
formatter that shows real defaults, and argument types that reject bad numbers with a clear message."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults that exist (not ``None``/``False``), so ``--help`` explains every flag."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action) or ""


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one ``error: ...`` line on stderr and exit status 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _number(text: str, kind: type) -> float | int:
    try:
        return kind(text)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(_number(text, float))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def fraction(text: str) -> float:
    """A ratio between 0 and 1 inclusive (e.g. ``--target-ratio``)."""
    value = float(_number(text, float))
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value
