"""Loaders of the standard problem and samples files (no execution): detection, typed tests kept
public/private, LiveCodeBench's compressed tests decoded without trusting pickle, bad records."""

from __future__ import annotations

import base64
import gzip
import json
import pickle
import zlib
from pathlib import Path

import pytest

import dataset_formats as df
from conftest import ROOT
from errors import InputError

DATA = ROOT / "data" / "formats"


@pytest.mark.parametrize("name, fmt, problems, errors", [
    ("taco_problems.json", "taco", 3, 0),
    ("livecodebench_problems.jsonl", "livecodebench", 2, 1),
    ("humaneval_problems.jsonl", "humaneval", 2, 0),
    ("mbpp_problems.jsonl", "mbpp", 2, 0),
    ("mbpp_problems.jsonl.gz", "mbpp", 2, 0),
    ("codecontests_problems.jsonl", "codecontests", 2, 0),
])
def test_sample_files_are_detected(name: str, fmt: str, problems: int, errors: int) -> None:
    got, loaded = df.load_problems(DATA / name)
    assert got == fmt
    assert (len(loaded.items), len(loaded.errors)) == (problems, errors)


def test_taco_call_tests() -> None:
    _, loaded = df.load_problems(DATA / "taco_problems.json")
    add, min_max, pairs = loaded.items
    assert (add.kind, min_max.kind, pairs.kind) == ("call", "call", "stdio")
    assert add.public_tests[0] == {"kind": "call", "fn_name": "add", "class_name": None, "args": [1, 2],
                                   "expected": [3], "unwrap_expected": True}
    assert min_max.reference.startswith("def min_max")  # solutions as a list, not a JSON string
    assert pairs.public_tests[1] == {"stdin": "1\n-5 5\n", "stdout": "0\n"}


def test_livecodebench_public_and_private_apart() -> None:
    _, loaded = df.load_problems(DATA / "livecodebench_problems.jsonl")
    two_sum, double = loaded.items
    assert len(two_sum.public_tests) == 1 and len(two_sum.private_tests) == 2  # private: base64/zlib/pickle
    assert two_sum.private_tests[0] == {"kind": "call", "fn_name": "twoSum", "class_name": "Solution",
                                        "args": [[3, 2, 4], 6], "expected": [1, 2], "unwrap_expected": False}
    assert (two_sum.source, two_sum.difficulty, two_sum.date) == ("leetcode", "easy", "2024-03-02T00:00:00")
    assert len(double.public_tests) == 1 and len(double.private_tests) == 2  # private: plain JSON
    assert "refused" in loaded.errors[0] and loaded.errors[0].startswith(f"{DATA / 'livecodebench_problems.jsonl'}: problem 2: ")


class _Touch:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # unpickling would create the file
        return (open, (self.path, "w"))


def test_hostile_pickle_is_never_executed(tmp_path: Path) -> None:
    target = tmp_path / "created-by-pickle"
    encoded = base64.b64encode(zlib.compress(pickle.dumps(_Touch(str(target))))).decode()
    with pytest.raises(InputError, match="refused"):
        df.decode_compressed(encoded, "private_test_cases")
    assert not target.exists()


@pytest.mark.parametrize("value, ok", [("[1]", True), ("x" * 100000, True), (["a"], False), (b"a", False), (1, False)])
def test_unpickle_text_accepts_only_a_string(value: object, ok: bool) -> None:
    for protocol in (0, 2, 4, 5):
        data = pickle.dumps(value, protocol=protocol)
        if ok:
            assert df.unpickle_text(data) == value
        else:
            with pytest.raises(InputError):
                df.unpickle_text(data)


def test_bad_records_are_one_line_each_and_the_rest_load(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    good = {"task_id": 1, "text": "t", "code": "", "test_list": ["assert True"]}
    path.write_text("\n".join([json.dumps(good), "{not json", json.dumps({"task_id": 2, "test_list": "x"}),
                               json.dumps(good)]) + "\n")
    fmt, loaded = df.load_problems(path)
    assert fmt == "mbpp" and [p.index for p in loaded.items] == [0, 3]
    assert loaded.errors == [f"{path}: problem 1: line 2 is not valid JSON (Expecting property name enclosed "
                             "in double quotes)",
                             f"{path}: problem 2: test_list is not a list of assert strings"]


def test_format_can_be_forced_and_unknown_fields_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps([{"foo": 1}]))
    with pytest.raises(InputError, match="cannot tell the dataset format"):
        df.load_problems(path)
    fmt, loaded = df.load_problems(path, "mbpp")
    assert fmt == "mbpp" and len(loaded.errors) == 1


def test_gzip_and_parquet_messages(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"task_id": 1, "test_list": ["assert 1"]}\n'))
    assert len(df.load_problems(path)[1].items) == 1
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(InputError, match="cannot read"):
        df.read_records(bad)


def test_humaneval_test_calls_check_on_the_entry_point() -> None:
    _, loaded = df.load_problems(DATA / "humaneval_problems.jsonl")
    [test] = loaded.items[0].public_tests
    assert test["kind"] == "assert" and test["code"].rstrip().endswith("check(add)")
    assert loaded.items[0].reference == loaded.items[0].prompt + "    return x + y\n"


def test_mbpp_setup_code_and_challenge_tests() -> None:
    _, loaded = df.load_problems(DATA / "mbpp_problems.jsonl")
    vowels = loaded.items[1]
    assert [t["code"] for t in vowels.public_tests][0] == "WORD = 'hello'\nassert vowels(WORD) == 2\n"
    assert len(vowels.private_tests) == 1


def test_codecontests_limits_source_and_python3_reference() -> None:
    _, loaded = df.load_problems(DATA / "codecontests_problems.jsonl")
    first, second = loaded.items
    assert (len(first.public_tests), len(first.private_tests)) == (1, 3)  # private + generated
    assert first.source == "CODEFORCES" and first.time_limit == 1.0 and first.memory_limit_mb == 256
    assert second.time_limit == 2.5
    assert first.reference == "print(max(map(int, input().split())))\n"  # the Python 3 one, not Python 2


def test_taco_limits_are_read_by_problem_limits_parser(tmp_path: Path) -> None:
    """"1000 ms" is one second (not 1000), kilobytes are converted, and a CodeChef "50000 bytes"
    source-size limit or an unreadable time limit is no limit at all."""
    io_spec = json.dumps({"inputs": ["1\n"], "outputs": ["1\n"]})
    records = [{"question": "q", "input_output": io_spec, "time_limit": "1000 ms", "memory_limit": "262144 kilobytes"},
               {"question": "q", "input_output": io_spec, "time_limit": "1 - 1.5 seconds", "memory_limit": "50000 bytes"},
               {"question": "q", "input_output": io_spec, "time_limit": "about a second", "memory_limit": 512}]
    path = tmp_path / "taco.json"
    path.write_text(json.dumps(records))
    fmt, loaded = df.load_problems(path, "taco")
    assert fmt == "taco" and not loaded.errors
    assert [(p.time_limit, p.memory_limit_mb) for p in loaded.items] == [(1.0, 256.0), (1.5, None), (None, 512.0)]
    assert loaded.items[0].limit_fields == {"time_limit": "1000 ms", "memory_limit": "262144 kilobytes"}


def test_samples_of_each_format() -> None:
    _, he = df.load_problems(DATA / "humaneval_problems.jsonl")
    loaded = df.load_samples(DATA / "humaneval_samples.jsonl", he.items)
    assert len(loaded.items) == 6 and not loaded.errors
    first = loaded.items[0]
    assert first.code == he.items[0].prompt + "    return x + y\n"  # completion appended to the prompt
    assert loaded.items[2].code.startswith("import sys")  # a solution is a whole program
    _, lcb = df.load_problems(DATA / "livecodebench_problems.jsonl")
    samples = df.load_samples(DATA / "livecodebench_samples.json", lcb.items).items
    assert [(s.task_id, s.index) for s in samples] == [("1", 0), ("1", 1), ("1", 2), ("1", 3), ("abc300_a", 0),
                                                        ("abc300_a", 1)]
    assert samples[3].code.startswith("class Solution") and "```" not in samples[3].code  # raw answer extracted
    _, taco = df.load_problems(DATA / "taco_problems.json")
    assert len(df.load_samples(DATA / "taco_generation.json", taco.items).items) == 9


def test_bad_samples_are_errors_with_file_and_index(tmp_path: Path) -> None:
    _, mbpp = df.load_problems(DATA / "mbpp_problems.jsonl")
    path = tmp_path / "s.jsonl"
    path.write_text('{"task_id": 11, "solution": "x = 1"}\n{"task_id": 11, "solution": 3}\n'
                    '{"task_id": 404, "completion": ""}\n')
    loaded = df.load_samples(path, mbpp.items)
    assert len(loaded.items) == 1
    assert loaded.errors == [f"{path}: sample 1: no string solution or completion",
                             f"{path}: sample 2: no problem with task id '404' in the problems file"]
