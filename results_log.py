"""model_feedback's record of finished evaluations: one JSON line per (file, problem, model key),
appended (flushed and fsynced) as each evaluation finishes, in ``<output>.checkpoint.jsonl``.

Why: a long run must survive Ctrl-C and resume where it stopped, and memory must not grow with
the results. The caller keeps only each line's offset and counts; the final ``--output`` JSON is
streamed from this log. Every line carries a fingerprint of the run's inputs and limits, so the
log of a run with other inputs is refused instead of silently mixed in. A torn last line (a kill
during the write) is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from errors import ConfigError, InputError

log = logging.getLogger("librarybench.results_log")

LOG_SCHEMA = "librarybench.feedback_log/1"
JobKey = tuple[str, int, str]  # (solution file as given, problem id, model key)


@dataclass(frozen=True)
class Recorded:
    """Where one finished evaluation sits in the log, and the counts the summary needs."""

    offset: int
    passed: int
    total: int
    verdicts: dict[str, int]


def log_path_for(output: str | os.PathLike[str]) -> Path:
    """The log beside ``--output``: ``results.json`` -> ``results.json.checkpoint.jsonl``."""
    output = Path(output)
    return output.with_name(f"{output.name}.checkpoint.jsonl")


def fingerprint_hash(fingerprint: dict[str, Any]) -> str:
    text = json.dumps(fingerprint, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes: an edited solution file is another input."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ResultsLog:
    """Append-only JSONL: ``{"schema", "fingerprint", "key": [file, problem, model key], "entry"}``."""

    def __init__(self, path: str | os.PathLike[str], fingerprint: dict[str, Any]) -> None:
        self.path = Path(path)
        self.tag = fingerprint_hash(fingerprint)
        self._append: BinaryIO | None = None
        self._read: BinaryIO | None = None

    def scan(self) -> dict[JobKey, Recorded]:
        """The evaluations already recorded (last line per key wins). Another run's log is a ``ConfigError``."""
        if not self.path.exists():
            return {}
        done: dict[JobKey, Recorded] = {}
        with open(self.path, "rb") as fh:
            offset = 0
            for number, raw in enumerate(fh, 1):
                start, offset = offset, offset + len(raw)
                if not raw.strip():
                    continue
                try:
                    item = json.loads(raw)
                    file, pid, key = item["key"]
                    tag, entry = item["fingerprint"], item["entry"]
                    counts = Recorded(start, int(entry["passed"]), int(entry["total"]), dict(entry["verdicts"]))
                except (ValueError, KeyError, TypeError):
                    log.warning("%s: line %d is incomplete or corrupt (a killed write?): ignored", self.path, number)
                    continue
                if tag != self.tag:
                    raise ConfigError(f"{self.path} holds results of a run with other inputs or limits: "
                                      "run the same command to resume it, or add --restart to discard it")
                done[(str(file), int(pid), str(key))] = counts
        return done

    def append(self, key: JobKey, entry: dict[str, Any]) -> Recorded:
        """Write one finished evaluation; it is on disk before this returns."""
        line = json.dumps({"schema": LOG_SCHEMA, "fingerprint": self.tag, "key": list(key), "entry": entry},
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
        try:
            fh = self._append_handle()
            offset = fh.tell()
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        except OSError as exc:
            raise InputError(f"{self.path}: cannot write the results log: {exc.strerror or exc}") from None
        return Recorded(offset, int(entry["passed"]), int(entry["total"]), dict(entry["verdicts"]))

    def _append_handle(self) -> BinaryIO:
        if self._append is None:
            fh = open(self.path, "a+b")
            fh.seek(0, os.SEEK_END)
            if fh.tell() > 0:  # a torn last line must not swallow the next one
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.seek(0, os.SEEK_END)
                    fh.write(b"\n")
            fh.seek(0, os.SEEK_END)
            self._append = fh
        return self._append

    def read(self, recorded: Recorded) -> dict[str, Any]:
        """The entry written at ``recorded.offset`` (one line read, nothing else kept)."""
        if self._append is not None:
            self._append.flush()
        if self._read is None:
            self._read = open(self.path, "rb")
        self._read.seek(recorded.offset)
        return json.loads(self._read.readline())["entry"]

    def close(self) -> None:
        for fh in (self._append, self._read):
            if fh is not None:
                fh.close()
        self._append = self._read = None

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
