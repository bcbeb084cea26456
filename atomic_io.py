"""Atomic file writes: a temporary file in the same folder, fsynced, then renamed over the target,
so readers (and a run killed mid-write) never see half a file. Its own small module so that the
HTML report and other writers need nothing else of the toolkit. Failures raise ``WriteError``."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

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
    path = Path(path)
    blocked = next((p for p in [path.parent, *path.parent.parents] if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise WriteError(path, f"{blocked} is not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise WriteError(path, exc.strerror or str(exc)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
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


def write_atomic_json(path: str | os.PathLike[str], data: Any) -> None:
    write_atomic_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
