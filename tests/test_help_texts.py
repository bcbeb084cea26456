"""``--help`` of every script: defaults read ``(default: X)`` as README's Errors section says, the
repair epilog names every prefix llm_clients routes to OpenAI, the server's limit names HTTP 400."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import ROOT, clean_env

SCRIPTS = ("model_feedback.py", "iterative_repair.py", "compare_model_improvements.py", "execution_server.py")


def help_text(script: str) -> str:
    proc = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, env=clean_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return " ".join(proc.stdout.split())


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_default_reads_default_colon(script: str) -> None:
    assert re.findall(r"\(default(?!:)[^)]{0,40}", help_text(script)) == []


def test_repair_epilog_and_server_limit_wording() -> None:
    from llm_clients import OPENAI_PREFIXES

    text = help_text("iterative_repair.py")
    assert all(f"{prefix}* " in text or f"{prefix}*," in text for prefix in OPENAI_PREFIXES), OPENAI_PREFIXES
    assert "(larger: HTTP 400)" in help_text("execution_server.py")
