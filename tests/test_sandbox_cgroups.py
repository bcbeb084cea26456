"""The cgroup v2 code path of ``sandbox_cgroups``, against a directory tree laid out like a v2
hierarchy (these machines mount memory, pids and cpu as v1 controllers, so v2 cannot be
exercised live here: a cgroup2 mount gets none of those three). What the kernel would do with
the files is not tested; which files are written with what, and how events are read, is."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import sandbox_cgroups as cgroups


def fake_v2_root(tmp_path: Path, delegated: str = "cpu memory pids") -> Path:
    root = tmp_path / "cgroup"
    root.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (root / "cgroup.subtree_control").write_text(delegated + "\n")
    return root


@pytest.fixture(autouse=True)
def as_root():
    if os.geteuid() != 0:
        pytest.skip("find_plan offers cgroups to root only")


def test_v2_plan_worker_limits_events_and_prefix(tmp_path):
    root = fake_v2_root(tmp_path)
    plan = cgroups.find_plan(root=str(root))
    parent = root / f"librarybench-{os.getpid()}"
    assert plan == cgroups.CgroupPlan(2, (str(parent),))
    assert (parent / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"

    limits = cgroups.WorkerLimits(memory_bytes=1280 * 2**20, pids=72, cpus=1.0)
    (parent / "worker-0").mkdir()
    (parent / "worker-0" / "memory.swap.max").write_text("max\n")  # the kernel makes it when swap exists
    worker = cgroups.WorkerCgroup(plan, "worker-0", limits)
    directory = parent / "worker-0"
    assert worker.dirs == [str(directory)]
    assert (directory / "memory.max").read_text() == str(1280 * 2**20)
    assert (directory / "memory.swap.max").read_text() == "0"
    assert (directory / "pids.max").read_text() == "72"
    assert (directory / "cpu.max").read_text() == "100000 100000"
    assert "cgroup v2 per worker (memory 1280 MB" in cgroups.describe(plan, limits)

    events = directory / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n")
    assert worker.new_memory_events() == (False, False)
    events.write_text("low 0\nhigh 0\nmax 4\noom 0\noom_kill 0\noom_group_kill 0\n")
    assert worker.new_memory_events() == (False, True)  # the limit was reached, nothing killed
    events.write_text("low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\noom_group_kill 0\n")
    assert worker.new_memory_events() == (True, True)
    assert worker.new_memory_events() == (False, False)  # counted once, for the test that caused it

    # The prefix moves the shell into the cgroup (it writes its pid to cgroup.procs), then execs.
    (directory / "cgroup.procs").write_text("")
    out = subprocess.run(worker.command_prefix() + ["/bin/sh", "-c", "echo $$"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert (directory / "cgroup.procs").read_text().strip() == out  # exec kept the pid


def test_v2_controllers_are_enabled_below_the_root_or_refused(tmp_path):
    enabled = fake_v2_root(tmp_path / "a", delegated="")
    assert cgroups.find_plan(root=str(enabled)).version == 2
    assert (enabled / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    lacking = fake_v2_root(tmp_path / "b", delegated="cpu pids")
    (lacking / "cgroup.controllers").write_text("cpu io pids\n")
    plan = cgroups.find_plan(root=str(lacking))
    assert plan.unavailable == "cgroup v2 root does not delegate memory"
    assert cgroups.describe(plan, None).startswith("no cgroups (cgroup v2 root")
