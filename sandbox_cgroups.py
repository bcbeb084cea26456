"""Per-worker resource accounting with cgroups: one cgroup per sandbox worker, created by the toolkit.

Owns: finding a usable cgroup hierarchy (v2, or the v1 ``memory``, ``pids`` and ``cpu``
controllers), creating a worker's cgroup with its limits, the command prefix that starts the
worker inside it, reading its out-of-memory kill count, and removing it.

A worker runs one test at a time, so the worker's cgroup accounts for the whole test: every
process it starts, their memory including shared memory and memfds, their number, and their CPU
time (a quota of one CPU, so no test can take more than its share of the machine). Rlimits stay
as they are; cgroups add what rlimits cannot see (memory summed over processes). Where no
hierarchy is writable (not root, no delegated subtree) ``CgroupPlan.unavailable`` says why and
the sandbox describes itself without cgroups.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_ROOT = "/sys/fs/cgroup"
_V1_CONTROLLERS = ("memory", "pids", "cpu")
# What a worker's cgroup holds besides the test: bubblewrap's init, the worker (python with
# numpy), its clean-up helpers. Memory headroom is for the worker's own heap and page cache.
WORKER_MEMORY_HEADROOM = 256 * 1024 * 1024
WORKER_EXTRA_PIDS = 8
_CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class CgroupPlan:
    """Which hierarchy the toolkit can use: ``version`` 1 or 2, with the parent directories of
    workers' cgroups (one per v1 controller), or ``unavailable`` with the reason."""

    version: int
    parents: tuple[str, ...]
    unavailable: str | None = None


@dataclass(frozen=True)
class WorkerLimits:
    memory_bytes: int
    pids: int
    cpus: float = 1.0


def find_plan(root: str = _ROOT) -> CgroupPlan:
    """The hierarchy this process may create cgroups in, checked by creating its parent.

    ``root`` is where the cgroup filesystems are mounted (a v2 hierarchy when it holds
    ``cgroup.controllers``, else one directory per v1 controller); tests point it elsewhere."""
    if os.geteuid() != 0:
        return CgroupPlan(0, (), "cgroups need root (no delegated subtree is used)")
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return _plan_v2(root)
    missing = [c for c in _V1_CONTROLLERS if not os.path.isdir(os.path.join(root, c))]
    if missing:
        return CgroupPlan(0, (), f"no cgroup v2 and no v1 {', '.join(missing)} controller")
    parents = tuple(os.path.join(root, c, _own_path(c).lstrip("/"), f"librarybench-{os.getpid()}")
                    for c in _V1_CONTROLLERS)
    try:
        for parent in parents:
            os.makedirs(parent, exist_ok=True)
    except OSError as error:
        return CgroupPlan(0, (), f"cannot create cgroups: {error}")
    return CgroupPlan(1, parents)


def _plan_v2(root: str) -> CgroupPlan:
    parent = os.path.join(root, f"librarybench-{os.getpid()}")
    try:
        with open(os.path.join(root, "cgroup.subtree_control")) as fh:
            available = fh.read().split()
        needed = [c for c in ("memory", "pids", "cpu") if c not in available]
        with open(os.path.join(root, "cgroup.controllers")) as fh:
            present = fh.read().split()
        if needed and all(c in present for c in needed):  # enable them below the root
            _write(os.path.join(root, "cgroup.subtree_control"), " ".join(f"+{c}" for c in needed))
            needed = []
        if needed:
            return CgroupPlan(0, (), f"cgroup v2 root does not delegate {', '.join(needed)}")
        os.makedirs(parent, exist_ok=True)
        _write(os.path.join(parent, "cgroup.subtree_control"), "+memory +pids +cpu")
    except OSError as error:
        return CgroupPlan(0, (), f"cannot create cgroups: {error}")
    return CgroupPlan(2, (parent,))


def _own_path(controller: str) -> str:
    """This process's cgroup in a v1 controller's hierarchy (``/`` in a cgroup namespace)."""
    try:
        for line in open("/proc/self/cgroup"):
            _, names, path = line.rstrip("\n").split(":", 2)
            if controller in names.split(","):
                return path
    except OSError:
        pass
    return "/"


class WorkerCgroup:
    """The cgroup of one worker: created with its limits, entered by the worker at start."""

    def __init__(self, plan: CgroupPlan, name: str, limits: WorkerLimits) -> None:
        self.plan = plan
        self.dirs = [os.path.join(parent, name) for parent in plan.parents]
        for directory in self.dirs:
            os.makedirs(directory, exist_ok=True)
        try:
            self._apply(limits)
        except OSError:
            self.remove()
            raise
        self._events_seen = self.memory_events()

    def _apply(self, limits: WorkerLimits) -> None:
        quota = str(int(limits.cpus * _CPU_PERIOD_US))
        if self.plan.version == 2:
            [directory] = self.dirs
            _write(os.path.join(directory, "memory.max"), str(limits.memory_bytes))
            _write_if_present(os.path.join(directory, "memory.swap.max"), "0")
            _write(os.path.join(directory, "pids.max"), str(limits.pids))
            _write(os.path.join(directory, "cpu.max"), f"{quota} {_CPU_PERIOD_US}")
            return
        memory, pids, cpu = self.dirs
        _write(os.path.join(memory, "memory.limit_in_bytes"), str(limits.memory_bytes))
        _write_if_present(os.path.join(memory, "memory.memsw.limit_in_bytes"), str(limits.memory_bytes))
        _write(os.path.join(pids, "pids.max"), str(limits.pids))
        _write(os.path.join(cpu, "cpu.cfs_period_us"), str(_CPU_PERIOD_US))
        _write(os.path.join(cpu, "cpu.cfs_quota_us"), quota)

    def command_prefix(self) -> list[str]:
        """``sh`` that moves itself into the cgroup, then execs the worker command (so that
        bubblewrap and everything it starts are inside from their first instruction)."""
        procs = [os.path.join(d, "cgroup.procs") for d in self.dirs]
        script = ('n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; '
                  'n=$((n - 1)); done; exec "$@"')
        return ["/bin/sh", "-c", script, "sh", str(len(procs)), *procs]

    def memory_events(self) -> tuple[int, int]:
        """(processes the memory controller killed, times usage reached the limit) so far:
        v2's ``memory.events`` (``oom_kill``, ``max``), v1's ``memory.oom_control`` and
        ``memory.failcnt``."""
        if self.plan.version == 2:
            fields = _key_values(os.path.join(self.dirs[0], "memory.events"))
            return fields.get("oom_kill", 0), fields.get("max", 0)
        kills = _key_values(os.path.join(self.dirs[0], "memory.oom_control")).get("oom_kill", 0)
        try:
            with open(os.path.join(self.dirs[0], "memory.failcnt")) as fh:
                hits = int(fh.read())
        except (OSError, ValueError):
            hits = 0
        return kills, hits

    def new_memory_events(self) -> tuple[bool, bool]:
        """Since the last call (the last test): did the memory controller kill a process, and
        did usage reach the limit?"""
        kills, hits = self.memory_events()
        seen_kills, seen_hits = self._events_seen
        self._events_seen = (kills, hits)
        return kills > seen_kills, hits > seen_hits

    def remove(self, wait: float = 2.0) -> None:
        """Remove the cgroup once its processes are gone (they were killed with the sandbox)."""
        deadline = time.monotonic() + wait
        for directory in self.dirs:
            while True:
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)


def remove_parents(plan: CgroupPlan) -> None:
    for parent in plan.parents:
        try:
            os.rmdir(parent)
        except OSError:
            pass


def describe(plan: CgroupPlan, limits: WorkerLimits | None) -> str:
    if plan.unavailable or limits is None:
        return f"no cgroups ({plan.unavailable})"
    return (f"cgroup v{plan.version} per worker (memory {limits.memory_bytes // 2**20} MB for all "
            f"of a test's processes with shmem, {limits.pids} pids, {limits.cpus:g} CPU)")


def _key_values(path: str) -> dict[str, int]:
    """A flat-keyed cgroup file (``key value`` per line); empty if unreadable."""
    found: dict[str, int] = {}
    try:
        with open(path) as fh:
            for line in fh:
                key, _, value = line.partition(" ")
                try:
                    found[key] = int(value)
                except ValueError:
                    pass
    except OSError:
        pass
    return found


def _write(path: str, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _write_if_present(path: str, value: str) -> None:
    if os.path.exists(path):
        _write(path, value)
