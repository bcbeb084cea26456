"""Atomic file writes: a temporary file in the same folder, fsynced, then renamed over the target,
so readers (and a run killed mid-write) never see half a file. Its own small module so that the
HTML report and other writers need nothing else of the toolkit. Also the up-front checks that an
output can be written; a missing folder is made only one level deep, never as a whole tree.
Failures raise ``WriteError``."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from errors import WriteError


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic_text(path: str | os.PathLike[str], text: str) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file.

    The file gets ordinary permissions (``mkstemp`` creates 0600, which would hide results
    from colleagues and from tools run by another user).
    """
    write_atomic_chunks(path, [text])


def write_atomic_chunks(path: str | os.PathLike[str], chunks: Iterable[str]) -> None:
    """``write_atomic_text`` for text produced piece by piece (a large document is never held whole)."""
    path = Path(path)
    blocked = next((p for p in [path.parent, *path.parent.parents] if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise WriteError(path, f"{blocked} is not a directory")
    make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise WriteError(path, exc.strerror or str(exc)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise WriteError(path, exc.strerror or str(exc)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_parent_creatable(path: str | os.PathLike[str]) -> None:
    """Fail when ``path``'s folder is missing and cannot be made by one ``mkdir`` inside an
    existing folder: a mistyped path must not grow a new tree (nothing is created here)."""
    path = Path(path)
    blocked = next((p for p in [path.parent, *path.parent.parents] if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise WriteError(path, f"{blocked} is not a directory")
    if not path.parent.is_dir() and not path.parent.parent.is_dir():
        raise WriteError(path, f"the directory {path.parent.parent} does not exist (create it first)")


def make_parent(path: str | os.PathLike[str]) -> None:
    """Create ``path``'s folder when missing, only as the last level inside an existing folder
    (a default such as ``.librarybench_cache/``); never a whole tree."""
    check_parent_creatable(path)
    try:
        Path(path).parent.mkdir(exist_ok=True)
    except OSError as exc:
        raise WriteError(path, exc.strerror or str(exc)) from None


def check_writable(path: str | os.PathLike[str]) -> None:
    """Fail before any work when ``path`` cannot be written, creating nothing: its folder must
    exist, be a folder and accept a new file (probed with a temporary file, removed at once)."""
    path = Path(path)
    blocked = next((p for p in [path.parent, *path.parent.parents] if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise WriteError(path, f"{blocked} is not a directory")
    if not path.parent.is_dir():
        raise WriteError(path, f"the directory {path.parent} does not exist (create it first)")
    if path.is_dir():
        raise WriteError(path, "it is a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
    except OSError as exc:
        raise WriteError(path, exc.strerror or str(exc)) from None
    os.close(fd)
    os.unlink(probe)


def write_atomic_json(path: str | os.PathLike[str], data: Any) -> None:
    write_atomic_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
