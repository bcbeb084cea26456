"""Where the repair loop's input files are looked for, and the one-line error when one is missing.

Owns the hint for a missing input: the shared data of the project usually sits in
``../shared/data/librarybench/`` beside the project root (the seed's commands name its files
bare), so a missing file of a name found there is reported with that path.
"""

from __future__ import annotations

import os
from pathlib import Path

from errors import InputError

SHARED_DATA_DIRS = ("../shared/data/librarybench",)  # where the shared data usually is, from the project root


def shared_data_hint(path: Path) -> str:
    """Where a missing input file of that name is in the shared data, if it is there."""
    for base in SHARED_DATA_DIRS:
        for root in (Path.cwd(), Path(__file__).resolve().parent):  # the current directory, the project root
            candidate = root / base / path.name
            if candidate.is_file():  # relative to the current directory, else where it is
                shown = os.path.relpath(candidate) if root == Path.cwd() else str(candidate.resolve())
                return f" (a file of that name is in {os.path.dirname(shown)}/: pass {shown})"
    return ""


def require_file(path: Path) -> None:
    if not path.is_file():
        what = "file not found" if not path.exists() else "not a file"
        raise InputError(f"{path}: {what}{shared_data_hint(path)}")
