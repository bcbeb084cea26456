"""The Ray executor (``--executor ray``): programs run on a Ray cluster, one actor per node.

- ``RayExecutor``: the ``Executor`` of a Ray cluster (``RAY_ADDRESS``, else a small local Ray
  started for the run). Each alive node with CPUs gets one long-lived actor (``NodeRunner``,
  pinned by node-affinity scheduling) owning a ``sandbox.LocalExecutor`` sized to that node's
  CPUs, so warm workers and the sandbox are the embedded executor's, unchanged;
- ``get_ray_executor``: the process-wide one (``executors.get_executor("ray")``);
- ``import_ray``: the one place that imports Ray, an optional dependency group: without it
  asking for this executor is a one-line ``ConfigError``. Nothing else in the toolkit imports Ray.

Work goes out per program: the one-test calls that ``librarybench_common.run_tests`` makes
(each under the global execution semaphore, which so still bounds what is in flight) are
gathered per event-loop turn into one batch per program (and timeout and memory limit), cut into a few chunks so no actor waits
for a whole batch, and each chunk is sent to the actor with the most free worker slots. A dead
actor or node is an infrastructure failure, never a verdict: its unfinished chunks go to another
actor (a dead actor on a node still alive is replaced, a few times at most), and only when no
actor is left do they end as ``ExecutionError``.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import math
import os
import socket
import threading
import weakref
from dataclasses import dataclass, field, replace
from typing import Any

from errors import ConfigError, ExecutionError, LibraryBenchError
from records import Test, TestResult
from sandbox import SandboxLimits

log = logging.getLogger("librarybench")

PROJECT_DIR = os.path.dirname(os.path.abspath(__file__))
RAY_MISSING = ("the ray executor needs Ray, an optional dependency group: run with "
               "`uv run --group ray ...` (or install it once with `uv sync --group ray`)")
START_TIMEOUT = 180.0  # seconds for Ray and the actors to come up (a loaded 2-core machine is slow)
REPLACEMENTS_PER_NODE = 3  # new actors for a node still alive whose actor died, per run
ATTEMPTS_PER_CHUNK = 4  # actors a chunk of tests may be lost with before it is an ExecutionError
MAX_CHUNK = 64  # tests per call at most
LOCAL_OBJECT_STORE = 128 * 2**20  # a local Ray's object store: results are small
# What a cluster's workers get of the project: its flat modules (the ``working_dir``).
SHIPPED_EXCLUDES = [".git", ".venv", "tests", "bench", "docs", "data", "__pycache__", "*.ipynb", "*.json"]


def import_ray() -> Any:
    """Ray, or the one-line user error saying how to get it.

    Ray's ``uv run`` hook (workers started through ``uv run`` in a copy of the project) is off
    unless ``RAY_ENABLE_UV_RUN_RUNTIME_ENV`` says otherwise: workers use the interpreter the
    nodes were started with, which has the toolkit's dependencies."""
    wanted = os.environ.get("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0").strip().lower() in ("1", "true")
    try:
        import ray
        from ray._private import ray_constants
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = wanted  # read at import: Ray may be imported already
    return ray


_INFRA_ERRORS: tuple[type[BaseException], ...] | None = None


def _infra_errors() -> tuple[type[BaseException], ...]:
    """Ray's exceptions that mean an actor, its worker process or its node is gone."""
    global _INFRA_ERRORS
    if _INFRA_ERRORS is None:
        from ray import exceptions as rx

        _INFRA_ERRORS = (rx.RayActorError, rx.WorkerCrashedError, rx.NodeDiedError, rx.ObjectLostError,
                         rx.LocalRayletDiedError)
    return _INFRA_ERRORS


class NodeRunner:
    """The actor's body: one ``LocalExecutor`` on its node, alive for the whole run."""

    def __init__(self, workers: int, memory_mb: int | None, output_bytes: int | None,
                 isolation: str | None) -> None:
        from sandbox import LocalExecutor

        self.executor = LocalExecutor(workers, memory_mb=memory_mb, output_bytes=output_bytes,
                                      isolation=isolation)

    async def ready(self) -> dict[str, Any]:
        """Start the workers (the sandbox's self-test) and say what runs here."""
        isolation = await asyncio.to_thread(lambda: self.executor.isolation)
        return {"host": socket.gethostname(), "pid": os.getpid(), "workers": self.executor.workers,
                "isolation": isolation}

    async def run(self, code: str, tests: list[Test], timeout: float | None,
                  memory_mb: int | None = None) -> list[TestResult]:
        return await self.executor.run_tests(code, tests, timeout=timeout, memory_mb=memory_mb)

    async def close(self) -> None:
        await asyncio.to_thread(self.executor.close)


@dataclass(eq=False)
class _Member:
    """One actor as the driver sees it."""

    node_id: str
    handle: Any
    capacity: int
    host: str = "?"
    isolation: str = "?"
    inflight: int = 0  # tests sent and not yet answered
    alive: bool = True

    @property
    def free(self) -> int:
        return self.capacity - self.inflight


@dataclass
class _Batcher:
    """The calls of one event loop waiting for the next flush, per (program, timeout, memory_mb)."""

    pending: dict[tuple[str, float | None, int | None], list[tuple[Test, asyncio.Future[TestResult]]]] = field(default_factory=dict)
    scheduled: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    replacing: dict[str, asyncio.Task[None]] = field(default_factory=dict)


class RayExecutor:
    """Runs tests on a Ray cluster: one ``NodeRunner`` actor per node (see the module's docstring).

    ``address``: a cluster's address (default ``$RAY_ADDRESS``); without one a local Ray is
    started for the run (``num_cpus``, default the machine's) and stopped by ``close``. When Ray
    is already initialized in this process it is used as it is. ``memory_mb``/``output_bytes``
    are the sandbox limits on every node (``limits``, as each node's ``LocalExecutor`` has them);
    ``run_tests`` takes a per-call ``memory_mb`` as the local executor does. Actors start on first use (``isolation``, ``workers``
    or ``run_tests``); ``close`` stops them at once and is safe on Ctrl-C and twice.
    """

    name = "ray"
    per_call_memory = True  # run_tests takes memory_mb (problem_limits: --limits dataset)

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None,
                 memory_mb: int | None = None, output_bytes: int | None = None,
                 isolation: str | None = None, replacements: int = REPLACEMENTS_PER_NODE,
                 start_timeout: float = START_TIMEOUT) -> None:
        self.ray = import_ray()
        self.address = (address if address is not None else os.environ.get("RAY_ADDRESS", "")).strip() or None
        self.num_cpus = num_cpus
        self.memory_mb = memory_mb
        self.output_bytes = output_bytes
        self.limits = _node_limits(memory_mb, output_bytes)
        self.isolation_mode = isolation or os.environ.get("LIBRARYBENCH_ISOLATION") or None
        self.replacements = replacements
        self.start_timeout = start_timeout
        self._members: list[_Member] = []
        self._replaced: dict[str, int] = {}
        self._lost: list[str] = []  # why actors were lost, for the final error
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batcher] = weakref.WeakKeyDictionary()
        self._lock = threading.RLock()
        self._started = False
        self._closed = False
        self._owns_ray = False
        self._runtime_env: dict[str, Any] | None = None

    # -- start-up ----------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        with self._lock:
            if self._closed:
                raise ExecutionError("the ray executor is closed")
            if self._started:
                return
            self._connect()
            nodes = [n for n in self.ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1]
            if not nodes:
                raise ExecutionError(f"ray: the cluster{self._where()} has no alive node with a CPU")
            members = [self._spawn(n["NodeID"], int(n["Resources"]["CPU"])) for n in nodes]
            try:
                self._await_ready(members)
            except BaseException:
                for member in members:
                    self._kill(member)
                raise
            self._members = members
            self._started = True

    def _where(self) -> str:
        return f" at {self.address}" if self.address else " (local)"

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            atexit.register(_close_at_exit, weakref.ref(self))
            self._runtime_env = {"env_vars": {"PYTHONPATH": PROJECT_DIR}} if not self.address else self._shipped()
            return
        options: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False,
                                   "configure_logging": True, "logging_level": logging.WARNING}
        if self.address:
            # A cluster's nodes get the project's modules shipped with the job.
            options.update(address=self.address, runtime_env=self._shipped())
        else:
            options.update(address="local", num_cpus=self.num_cpus or os.cpu_count() or 1,
                           object_store_memory=LOCAL_OBJECT_STORE,
                           runtime_env={"env_vars": {"PYTHONPATH": PROJECT_DIR}})
        try:
            ray.init(**options)
        except ConnectionError as error:
            raise ExecutionError(f"ray: cannot connect to the cluster{self._where()}: {error}") from None
        except Exception as error:  # noqa: BLE001 - Ray raises many kinds when it cannot start
            raise ExecutionError(f"ray: cannot start{self._where()}: {type(error).__name__}: {error}") from None
        self._owns_ray = True
        # After ray.init, so that at exit this runs before Ray's own shutdown (atexit is LIFO).
        atexit.register(_close_at_exit, weakref.ref(self))

    def _shipped(self) -> dict[str, Any]:
        return {"working_dir": PROJECT_DIR, "excludes": SHIPPED_EXCLUDES}

    def _spawn(self, node_id: str, cpus: int) -> _Member:
        """A new actor pinned to the node (not restarted by Ray: the driver replaces it)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options: dict[str, Any] = {
            "num_cpus": 0,  # the sandbox's workers are its own; the actor reserves no Ray CPU
            "max_restarts": 0,
            "max_concurrency": 1000,
            "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
        }
        if self._runtime_env is not None:
            options["runtime_env"] = self._runtime_env
        actor = self.ray.remote(NodeRunner).options(**options)
        handle = actor.remote(max(1, cpus), self.memory_mb, self.output_bytes, self.isolation_mode)
        return _Member(node_id=node_id, handle=handle, capacity=max(1, cpus))

    def _await_ready(self, members: list[_Member]) -> None:
        refs = [m.handle.ready.remote() for m in members]
        try:
            infos = self.ray.get(refs, timeout=self.start_timeout)
        except self.ray.exceptions.GetTimeoutError:
            raise ExecutionError(f"ray: the executor's actors did not start within {self.start_timeout:g} s"
                                 f"{self._where()}") from None
        except self.ray.exceptions.RayTaskError as error:
            raise ExecutionError(f"ray: an actor could not start its sandbox: {_cause(error)}") from None
        except _infra_errors() as error:
            raise ExecutionError(f"ray: an actor died while starting: {_first_line(error)}") from None
        for member, info in zip(members, infos):
            member.host, member.isolation, member.capacity = info["host"], info["isolation"], info["workers"]

    # -- what it says of itself --------------------------------------------------------------

    @property
    def isolation(self) -> str:
        """``ray (N nodes): <isolation>``: each node's own words (one text when all agree)."""
        self._ensure_started()
        members = [m for m in self._members if m.alive] or self._members
        nodes = len({m.node_id for m in members})
        texts = sorted({m.isolation for m in members})
        said = texts[0] if len(texts) == 1 else "; ".join(f"{m.host}: {m.isolation}" for m in members)
        return f"ray ({nodes} node{'s' if nodes != 1 else ''}, {self.workers} workers): {said}"

    @property
    def workers(self) -> int:
        """Worker slots on all alive actors (how many tests can run at once)."""
        self._ensure_started()
        return sum(m.capacity for m in self._members if m.alive) or 1

    @property
    def nodes(self) -> list[dict[str, Any]]:
        """The actors as the driver sees them (node, host, workers, alive, isolation)."""
        return [{"node_id": m.node_id, "host": m.host, "workers": m.capacity, "alive": m.alive,
                 "isolation": m.isolation, "actor": m.handle} for m in self._members]

    # -- running -----------------------------------------------------------------------------

    async def run_tests(self, code: str, tests: list[Test], *, timeout: float | None = None,
                        memory_mb: int | None = None) -> list[TestResult]:
        """One result per test, in order. Calls made in the same event-loop turn are sent together.

        ``memory_mb``: this call's memory limit (``--limits dataset``), at most the executor's own
        (the nodes' worker cgroups are sized to that); None: the executor's own."""
        if not tests:
            return []
        if not self._started or self._closed:
            self._ensure_started()  # blocks the loop while Ray and the actors start (once)
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = self._batchers[loop] = _Batcher()
        futures: list[asyncio.Future[TestResult]] = [loop.create_future() for _ in tests]
        memory = min(memory_mb, self.limits.memory_mb) if memory_mb else None
        batcher.pending.setdefault((code, timeout, memory), []).extend(zip(tests, futures))
        if not batcher.scheduled:
            batcher.scheduled = True
            loop.call_soon(self._flush, batcher)
        return list(await asyncio.gather(*futures))

    def _flush(self, batcher: _Batcher) -> None:
        """Send what the loop's turn gathered: per program, chunks spread over the free slots."""
        pending, batcher.pending, batcher.scheduled = batcher.pending, {}, False
        slots = max(1, sum(m.capacity for m in self._members if m.alive))
        for (code, timeout, memory_mb), items in pending.items():
            items = [(t, f) for t, f in items if not f.done()]
            if not items:
                continue
            # About two chunks per worker slot: results stream back while later chunks run.
            size = max(1, min(MAX_CHUNK, math.ceil(len(items) / (2 * slots))))
            for start in range(0, len(items), size):
                task = asyncio.get_running_loop().create_task(
                    self._run_chunk(batcher, code, timeout, memory_mb, items[start:start + size]))
                batcher.tasks.add(task)
                task.add_done_callback(batcher.tasks.discard)

    async def _run_chunk(self, batcher: _Batcher, code: str, timeout: float | None, memory_mb: int | None,
                         items: list[tuple[Test, asyncio.Future[TestResult]]]) -> None:
        try:
            results = await self._run_on_some_actor(batcher, code, [t for t, _ in items], timeout, memory_mb)
        except BaseException as error:  # noqa: BLE001 - handed to the waiting callers
            for _, future in items:
                if not future.done():
                    if isinstance(error, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        for (_, future), result in zip(items, results):
            if not future.done():
                future.set_result(result)

    async def _run_on_some_actor(self, batcher: _Batcher, code: str, tests: list[Test],
                                 timeout: float | None, memory_mb: int | None = None) -> list[TestResult]:
        """Run the chunk on the freest actor; an actor lost meanwhile sends it to another."""
        for _ in range(ATTEMPTS_PER_CHUNK):
            member = await self._pick(batcher)
            member.inflight += len(tests)
            ref = None
            try:
                ref = member.handle.run.remote(code, tests, timeout, memory_mb)
                return await ref
            except asyncio.CancelledError:
                if ref is not None:
                    self._cancel(ref)
                raise
            except self.ray.exceptions.RayTaskError as error:  # the sandbox itself failed there
                raise ExecutionError(f"ray executor on {member.host}: {_cause(error)}") from None
            except _infra_errors() as error:
                self._lose(batcher, member, error)
            finally:
                member.inflight -= len(tests)
        raise ExecutionError(f"ray executor: {ATTEMPTS_PER_CHUNK} actors were lost while running one "
                             f"program ({self._lost[-1] if self._lost else 'no reason given'})")

    async def _pick(self, batcher: _Batcher) -> _Member:
        """The alive actor with the most free slots; while none is alive, wait for replacements."""
        while True:
            if self._closed:
                raise ExecutionError("the ray executor is closed")
            alive = [m for m in self._members if m.alive]
            if alive:
                return max(alive, key=lambda m: (m.free / m.capacity, m.free))
            waiting = [t for t in batcher.replacing.values() if not t.done()]
            if not waiting:
                reasons = "; ".join(self._lost[-3:]) or "none started"
                raise ExecutionError(f"ray executor: no actor is left{self._where()} ({reasons})")
            await asyncio.wait(waiting)

    def _cancel(self, ref: Any) -> None:
        try:
            self.ray.cancel(ref)
        except Exception as error:  # noqa: BLE001 - cancelling is best effort
            log.debug("ray: cancelling a chunk: %s", error)

    def _lose(self, batcher: _Batcher, member: _Member, error: BaseException) -> None:
        """An actor is gone: stop sending to it and, if its node lives on, replace it."""
        if not member.alive:
            return
        member.alive = False
        reason = f"actor on {member.host} lost: {_first_line(error)}"
        self._lost.append(reason)
        log.warning("ray executor: %s", reason)
        used = self._replaced.get(member.node_id, 0)
        running = batcher.replacing.get(member.node_id)
        if self._closed or used >= self.replacements or (running is not None and not running.done()):
            return
        self._replaced[member.node_id] = used + 1
        task = asyncio.get_running_loop().create_task(self._replace(member))
        batcher.replacing[member.node_id] = task

    async def _replace(self, dead: _Member) -> None:
        """A new actor on the dead one's node, if Ray still counts the node as alive."""
        try:
            nodes = await asyncio.to_thread(self.ray.nodes)
            node = next((n for n in nodes if n["NodeID"] == dead.node_id and n.get("Alive")), None)
            if node is None:
                self._lost.append(f"node of {dead.host} is gone")
                return
            member = self._spawn(dead.node_id, dead.capacity)
            try:
                await asyncio.to_thread(self._await_ready, [member])
            except ExecutionError as error:
                self._kill(member)
                self._lost.append(str(error))
                return
            if self._closed:
                self._kill(member)
                return
            self._members.append(member)
            log.warning("ray executor: replaced the actor on %s", member.host)
        except Exception as error:  # noqa: BLE001 - a failed replacement is one more lost actor
            self._lost.append(f"replacing the actor on {dead.host}: {type(error).__name__}: {error}")

    # -- stopping ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Nothing per event loop to release (the actors live for the executor)."""

    def close(self) -> None:
        """Stop the actors (their sandboxes first, briefly), then a local Ray started here.

        Safe on Ctrl-C and twice; work still in flight ends as ``ExecutionError``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            members, self._members = self._members, []
        ray = self.ray
        try:
            if members and ray.is_initialized():
                refs = [m.handle.close.remote() for m in members if m.alive]
                if refs:
                    ray.wait(refs, num_returns=len(refs), timeout=5.0)
        except BaseException as error:  # noqa: BLE001 - stopping anyway (a second Ctrl-C included)
            log.debug("ray: closing the actors: %s", error)
        finally:
            for member in members:
                self._kill(member)
            if self._owns_ray:
                try:
                    ray.shutdown()
                except Exception as error:  # noqa: BLE001
                    log.debug("ray: shutdown: %s", error)

    def _kill(self, member: _Member) -> None:
        member.alive = False
        try:
            self.ray.kill(member.handle, no_restart=True)
        except Exception as error:  # noqa: BLE001 - already gone
            log.debug("ray: killing an actor: %s", error)


def _node_limits(memory_mb: int | None, output_bytes: int | None) -> SandboxLimits:
    """The sandbox limits each node's ``LocalExecutor`` gets (what ``problem_limits`` caps to)."""
    changes = {"memory_mb": memory_mb, "output_bytes": output_bytes}
    return replace(SandboxLimits(), **{key: value for key, value in changes.items() if value is not None})


def _close_at_exit(ref: "weakref.ref[RayExecutor]") -> None:
    executor = ref()
    if executor is not None:
        executor.close()


def _cause(error: BaseException) -> BaseException | str:
    """What an actor method raised, from Ray's wrapper (its message when it cannot be rebuilt)."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, LibraryBenchError):
        return cause
    if isinstance(cause, BaseException):
        return cause
    return _first_line(error)


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split("\n")[0].split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


_shared: RayExecutor | None = None


def get_ray_executor(*, memory_mb: int | None = None, output_bytes: int | None = None) -> RayExecutor:
    """The process-wide Ray executor, or one with its own sandbox limits."""
    global _shared
    if memory_mb is not None or output_bytes is not None:
        return RayExecutor(memory_mb=memory_mb, output_bytes=output_bytes)
    if _shared is None or _shared._closed:
        _shared = RayExecutor()
    return _shared
