"""The response cache and the checkpoint: persistence, keys, torn lines, foreign fingerprints."""

from __future__ import annotations

import json
from dataclasses import replace
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from errors import ConfigError  # noqa: E402
from llm_clients import Completion  # noqa: E402
from repair_store import Checkpoint, ResponseCache, cache_key  # noqa: E402

BASE = dict(provider="anthropic", model="claude-sonnet-4-6", base_url=None, system="S",
            messages=[{"role": "user", "content": "hi"}], temperature=None, max_tokens=100)


def test_cache_key_covers_every_answer_determining_field() -> None:
    key = cache_key(**BASE)
    assert key == cache_key(**{**BASE, "messages": ({"content": "hi", "role": "user"},)})  # canonical
    for field, value in [("provider", "openai"), ("model", "claude-haiku-4-5"), ("base_url", "http://x"),
                         ("system", "T"), ("messages", [{"role": "user", "content": "ho"}]),
                         ("temperature", 0.0), ("max_tokens", 101)]:
        assert cache_key(**{**BASE, field: value}) != key, field


def test_cache_persists_across_connections(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.sqlite"
    cache = ResponseCache(path)
    response = Completion("```python\nprint(1)\n```", "end_turn", False, 10, 5, 0.3)
    cache.put("k", provider="anthropic", model="m", request={"x": 1}, response=response)
    cache.close()
    again = ResponseCache(path)
    assert again.get("k") == replace(response, cached=True) and again.get("other") is None and len(again) == 1
    again.close()


def test_unopenable_cache_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(ConfigError, match="cannot open the response cache"):
        ResponseCache(tmp_path / "dir.sqlite")


def test_checkpoint_round_trip_and_torn_last_line(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path / "run.checkpoint.jsonl", {"model": "m", "settings": {"max_iterations": 3}})
    assert cp.load() == {} and not cp.exists()
    cp.append(0, {"problem_id": 0, "status": "done"})
    cp.append(3, {"problem_id": 3, "status": "done"})
    with open(cp.path, "a") as fh:
        fh.write('{"schema": "librarybench.repair_checkpoint/1", "problem_id": 5, "entr')  # killed mid-write
    assert set(cp.load()) == {0, 3}
    cp.append(5, {"problem_id": 5, "status": "done"})  # starts on a fresh line
    assert set(cp.load()) == {0, 3, 5}
    lines = cp.path.read_text().splitlines()
    assert json.loads(lines[-1])["problem_id"] == 5


def test_checkpoint_from_another_configuration_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.checkpoint.jsonl"
    Checkpoint(path, {"model": "m", "settings": {"max_iterations": 3}}).append(0, {"problem_id": 0})
    other = Checkpoint(path, {"model": "m", "settings": {"max_iterations": 4}})
    with pytest.raises(ConfigError, match="other settings.*--restart"):
        other.load()
    other.remove()
    assert other.load() == {}
