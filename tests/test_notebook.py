"""The seed's helpers in a real Jupyter notebook (nbclient + ipykernel), where an event loop is
always running: the blocking helpers must work there (they used to raise ``asyncio.run() cannot
be called from a running event loop``) and the async one is awaited in a cell. The notebook's
figures are checked against the same helpers called from this (loop-less) test process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

import librarybench_common as common
from conftest import ROOT, SAMPLES

SAMPLE_FILE = SAMPLES / "sample_problems.json"
PROBLEM = 0
MARK = "RESULT "

CELLS = [
    # 0: the notebook's loop is running: the case the blocking helpers must survive
    f"""import asyncio, json, sys
sys.path.insert(0, {str(ROOT)!r})
import librarybench_common as lb
asyncio.get_running_loop()
records = lb.load_problems({str(SAMPLE_FILE)!r})
record = records[{PROBLEM}]
tests = lb.create_test_cases_from_input_output(record["input_output"])
code = lb.extract_code(record["sample_solution"])
print({MARK!r} + json.dumps({{"cell": "setup", "tests": tests, "code": code}}))""",
    # 1: the blocking helper inside the running loop
    f"""results = lb.run_unit_tests([code, "print('nothing useful')"], tests, timeout=10)
print({MARK!r} + json.dumps({{"cell": "run_unit_tests", "verdicts": [[r["verdict"] for r in rs] for rs in results]}}))""",
    # 2: the async helper, awaited in the cell
    f"""results_async = await lb.run_unit_tests_async([code], tests, timeout=10)
passed = lb.count_passed(results_async[0])
feedback = lb.format_feedback(results_async[0], tests, passed, len(tests))
print({MARK!r} + json.dumps({{"cell": "async", "verdicts": [r["verdict"] for r in results_async[0]],
                              "feedback": feedback}}))""",
    # 3: the other blocking helper: a whole file, one problem
    f"""text, per_problem = lb.get_model_feedback({str(SAMPLE_FILE)!r}, {PROBLEM}, "sample", timeout=10)
print({MARK!r} + json.dumps({{"cell": "get_model_feedback", "feedback": text,
                              "verdicts": [[r["verdict"] for r in rs] for rs in per_problem]}}))""",
]


def run_notebook(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Execute the notebook in a fresh kernel; the JSON each cell printed, by cell name."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    path = tmp_path / "seed_helpers.ipynb"
    nbformat.write(notebook, path)
    executed = nbformat.read(path, as_version=4)
    NotebookClient(executed, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(executed, path)
    found: dict[str, dict[str, Any]] = {}
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", output
            for line in output.get("text", "").splitlines():
                if line.startswith(MARK):
                    item = json.loads(line[len(MARK):])
                    found[item["cell"]] = item
    return found


def test_seed_helpers_work_in_a_running_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CYBER_URL", raising=False)  # the kernel inherits this environment: embedded executor
    found = run_notebook(tmp_path)
    assert set(found) == {"setup", "run_unit_tests", "async", "get_model_feedback"}

    record = common.load_problems(SAMPLE_FILE)[PROBLEM]
    tests = common.create_test_cases_from_input_output(record["input_output"])
    code = common.extract_code(record["sample_solution"])
    assert found["setup"]["tests"] == tests and found["setup"]["code"] == code

    here = common.run_unit_tests([code], tests, timeout=10)[0]
    want = [r["verdict"] for r in here]
    assert found["run_unit_tests"]["verdicts"][0] == want
    assert found["run_unit_tests"]["verdicts"][1] == ["wrong_answer"] * len(tests)  # the second program ran too
    assert found["async"]["verdicts"] == want
    assert found["async"]["feedback"] == common.format_feedback(here, tests, common.count_passed(here), len(tests))
    assert found["get_model_feedback"]["verdicts"] == [want]
    assert found["get_model_feedback"]["feedback"] == found["async"]["feedback"]
    assert f"{common.count_passed(here)}/{len(tests)} tests passed" in found["get_model_feedback"]["feedback"]
