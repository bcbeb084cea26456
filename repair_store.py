"""What makes repair runs cheap to repeat and safe to interrupt.

- ``ResponseCache``: model responses in SQLite, keyed by a hash of everything that determines
  the answer (provider, model, base URL, system prompt, messages, sampling parameters). Each
  response is committed as soon as it arrives, so a killed run never pays for it twice.
- ``Checkpoint``: one JSON line per finished problem, flushed and fsynced, tagged with a run
  fingerprint so a checkpoint written under other settings is never silently reused. A torn
  last line (killed mid-write) is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any


from atomic_io import make_parent
from errors import ConfigError, WriteError
from llm_clients import Completion

log = logging.getLogger("librarybench.repair")

CHECKPOINT_SCHEMA = "librarybench.repair_checkpoint/1"


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_key(*, provider: str, model: str, base_url: str | None, system: str, messages: Any,
              temperature: float | None, max_tokens: int, sample: int | None = None) -> str:
    """sha256 of the canonical JSON of the request's answer-determining fields. ``sample``: the
    number of an independent sample of the same request (``--strategy resample`` asks the same
    prompt several times; each sample is cached apart). None keeps the keys of single requests."""
    fields = {
        "provider": provider, "model": model, "base_url": base_url, "system": system,
        "messages": list(messages), "temperature": temperature, "max_tokens": max_tokens,
    }
    if sample is not None:
        fields["sample"] = sample
    return sha256_text(canonical_json(fields))


class ResponseCache:
    """A SQLite table of responses; safe to share between runs (WAL, one commit per response)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        make_parent(self.path)
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, provider TEXT, model TEXT,"
                " request TEXT, text TEXT, stop_reason TEXT, truncated INTEGER, input_tokens INTEGER,"
                " output_tokens INTEGER, latency_s REAL, created REAL)"
            )
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.path}: cannot open the response cache: {exc}") from None

    def get(self, key: str) -> Completion | None:
        """The stored response, marked ``cached`` (it costs no new tokens)."""
        row = self._db.execute(
            "SELECT text, stop_reason, truncated, input_tokens, output_tokens, latency_s FROM responses WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        return Completion(row[0], row[1], bool(row[2]), int(row[3]), int(row[4]), float(row[5]), cached=True)

    def put(self, key: str, *, provider: str, model: str, request: Any, response: Completion) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, provider, model, canonical_json(request), response.text, response.stop_reason,
             int(response.truncated), response.input_tokens, response.output_tokens, response.latency_s, time.time()),
        )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._db.close()


class Checkpoint:
    """Append-only JSONL of finished problems: ``{"schema", "fingerprint", "problem_id", "entry"}``."""

    def __init__(self, path: str | os.PathLike[str], fingerprint: dict[str, Any]) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.fingerprint_hash = sha256_text(canonical_json(fingerprint))

    def exists(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def load(self) -> dict[int, dict[str, Any]]:
        """Finished problems by id. A line from another configuration is a ``ConfigError``."""
        if not self.path.exists():
            return {}
        done: dict[int, dict[str, Any]] = {}
        lines = self.path.read_text(encoding="utf-8", errors="replace").split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                pid, entry, tag = int(item["problem_id"]), item["entry"], item["fingerprint"]
            except (ValueError, KeyError, TypeError):
                log.warning("%s: line %d is incomplete or corrupt (a killed write?): ignored", self.path, number)
                continue
            if tag != self.fingerprint_hash:
                raise ConfigError(
                    f"{self.path} was written by a run with other settings (solution file, model, model key or "
                    "repair settings differ): use the same command, or --restart to discard it"
                )
            done[pid] = entry
        return done

    def append(self, problem_id: int, entry: dict[str, Any]) -> None:
        """One line per finished problem, on disk before returning (flush + fsync)."""
        line = canonical_json({"schema": CHECKPOINT_SCHEMA, "fingerprint": self.fingerprint_hash,
                               "problem_id": problem_id, "entry": entry})
        try:
            make_parent(self.path)
            with open(self.path, "a+b") as fh:
                fh.seek(0, os.SEEK_END)
                if fh.tell() > 0:  # a torn last line must not swallow this one
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        fh.write(b"\n")
                fh.write(line.encode("utf-8") + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise WriteError(self.path, exc.strerror or str(exc), "the checkpoint") from None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
