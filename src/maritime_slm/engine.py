"""One function mapped over partitions (input files, days, vessel buckets) on a local process pool or on Ray.

Why: a year of AIS is ~365 daily files that can be worked on independently, and one process uses a fraction of a
big machine and nothing of a cluster. The same per-partition function runs under every engine, so where a
partition was computed never changes what it wrote. The partition is the unit of work and of retry: one that
raises, or whose worker dies (killed, out of memory), is run again, up to `engine.retries` times. Partition
functions write their files through `atomic_dir` / `atomic_file`, so a redone partition never meets half a part.

Every worker is held to one thread (polars, Arrow, BLAS) from before it imports them: N workers use N cores and
never oversubscribe them, and one worker's rate is the per-core rate that scaling projections start from. With
`engine.pin_cores` each worker also runs on a core of its own (`_pin_to_free_core`, `Engine.pins_cores`).
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import resource
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from maritime_slm.config import EngineParams

# Thread pools are sized when a library is imported, so these reach a worker before it imports anything.
WORKER_ENV = {
    "POLARS_MAX_THREADS": "1",
    "OMP_NUM_THREADS": "1",  # Arrow's CPU pool and OpenMP
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "MARITIME_SLM_WORKER": "1",
}
RAY_EXTRA = "pip install -e '.[ray]' (ray==2.60.0)"
_ENV_LOCK = threading.Lock()
# A pinned worker's core and the open lock file that holds it, for the process's life.
_PINNED: dict[str, Any] = {}


class EngineError(RuntimeError):
    """The engine cannot start (Ray not installed, cluster unreachable); the message says what to do."""


class PartitionFailed(RuntimeError):
    """A partition failed on every attempt; the message names the step, the partition and the last error."""


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it is not inherited from a forking parent)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def core_lock_dir() -> Path:
    """Where workers of this user claim cores: one lock file per core, shared by every run on the machine."""
    return Path(tempfile.gettempdir()) / f"maritime_slm-cores-{os.getuid()}"


def _pin_to_free_core() -> int | None:
    """Moves this worker process (its threads now and those it starts later) onto one core that no other worker
    on this machine holds, and returns it; None when every core is held or the OS has no CPU affinity.

    Why: a worker is one Python thread handing work to polars' pool and executor threads hundreds of times a
    second. Two workers floating over 2 cores wake each other's hand-offs on the busy core and wait (0.76-0.97
    parallel efficiency here); each on its own core, 0.91-0.98. The claim is an exclusive lock on the core's
    file, which the kernel drops when the process ends, however it ends, so a killed worker's core is free for its
    replacement and concurrent runs spread over the free cores.
    """
    if "core" in _PINNED:
        return _PINNED["core"]
    _PINNED["core"] = None
    if not hasattr(os, "sched_setaffinity"):
        return None
    folder = core_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for core in sorted(os.sched_getaffinity(0)):
        handle = open(folder / f"core-{core}.lock", "a")  # noqa: SIM115 - held open for the process's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        for task in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(task), {core})
            except ProcessLookupError:
                pass  # a thread that ended since the listing
        _PINNED.update(core=core, lock=handle)
        return core
    return None


def _call(fn: Callable[[Any], Any], item: Any) -> tuple[Any, dict[str, Any]]:
    """Runs one partition (in a worker, or inline) and measures it."""
    core = None
    if os.environ.get("MARITIME_SLM_WORKER") == "1":
        import pyarrow

        pyarrow.set_cpu_count(1)
        if os.environ.get("MARITIME_SLM_PIN") == "1":
            core = _pin_to_free_core()
    started, cpu = time.perf_counter(), time.process_time()
    value = fn(item)
    return value, {
        "seconds": round(time.perf_counter() - started, 3),
        "cpu_seconds": round(time.process_time() - cpu, 3),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "core": core,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


@contextmanager
def _worker_env(env: dict[str, str]) -> Iterator[None]:
    """`env` in this process's environment while the pool spawns workers (they copy it at start)."""
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _clear_stale(final: Path) -> None:
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """A fresh temporary sibling folder for a partition's files, renamed to `final` only when the block ends.

    A worker killed half-way leaves only a `.<name>.tmp-*` folder, which the partition's next attempt removes;
    an earlier complete `final` (a partition redone after its result was lost) is replaced.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(final)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


@contextmanager
def atomic_file(final: str | Path) -> Iterator[Path]:
    """A temporary sibling path to write one file to, renamed (atomically) to `final` when the block ends."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(final)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, final)


class _InOrder:
    """A map's results by input position; each goes to `on_result` once it and every earlier one are in."""

    def __init__(self, n: int, on_result: Callable[[int, Any], None] | None):
        self.values: list[Any] = [None] * n
        self._ready = [False] * n
        self._next = 0
        self._on_result = on_result

    def put(self, i: int, value: Any) -> None:
        self.values[i], self._ready[i] = value, True
        while self._next < len(self.values) and self._ready[self._next]:
            if self._on_result is not None:
                self._on_result(self._next, self.values[self._next])
            self._next += 1


class Engine:
    """Maps partition functions under `EngineParams`; `Engine(None)` runs them one by one in this process.

    Use as a context manager: the process pool (or the local Ray it started) lives until the block ends, so
    several maps of one stage share warm workers. `timings` gets one row per partition: step, partition,
    attempts, seconds, cpu_seconds, worker (host:pid), core (the one it is pinned to, or None), peak_rss_mb
    (the worker's peak so far).
    """

    def __init__(self, params: EngineParams | None = None, *, progress: bool = True):
        self.params = params or EngineParams()
        self.inline = params is None
        self.progress = progress
        self.timings: list[dict[str, Any]] = []
        self._pool: ProcessPoolExecutor | None = None
        self._ray: Any = None
        self._ray_started = False

    @property
    def workers(self) -> int:
        if self.params.workers == "auto":
            return os.cpu_count() or 1
        return int(self.params.workers)

    @property
    def pins_cores(self) -> bool:
        """Whether workers claim a core each. `auto`: when they fill the cores, where two floating workers wait on
        each other's thread hand-offs; with cores to spare a floating worker's helper threads run on them instead
        (one worker alone is up to 15 % faster floating). On an existing Ray cluster Ray fills each node's CPUs."""
        if self.params.pin_cores != "auto":
            return bool(self.params.pin_cores)
        if self.params.kind == "ray" and self.params.address:
            return True
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return self.workers >= cores

    def worker_env(self) -> dict[str, str]:
        """The variables a worker starts with: one thread each, and whether it claims a core of its own."""
        return {**WORKER_ENV, "MARITIME_SLM_PIN": "1" if self.pins_cores else "0"}

    def describe(self) -> dict[str, Any]:
        """What ran the partitions, for stage summaries."""
        if self.inline:
            return {"kind": "inline", "workers": 1}
        out: dict[str, Any] = {"kind": self.params.kind, "workers": self.workers}
        if self.params.kind == "ray":
            out["address"] = self.params.address or "local"
            if self._ray is not None and self._ray.is_initialized():
                out["cluster_cpus"] = self._ray.cluster_resources().get("CPU")
        return out

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._ray_started:
            self._ray.shutdown()
            self._ray_started = False

    def map(
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        *,
        keys: Sequence[str] | None = None,
        desc: str = "partitions",
        permanent: tuple[type[BaseException], ...] = (),
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        """`[fn(item) for item in items]`, in input order, spread over the engine's workers.

        `fn` must be a module-level function (workers import it). An exception of a `permanent` type (bad
        input that a redo cannot fix) is raised at once, as itself; any other failure redoes the partition.
        `on_result(i, result)` runs in this process for each item in input order, as soon as item i and every
        earlier one are done: the driver's own work on the results overlaps the partitions still running.
        """
        items = list(items)
        keys = [str(k) for k in keys] if keys is not None else [str(i) for i in range(len(items))]
        if not items:
            return []
        results = _InOrder(len(items), on_result)
        if self.inline or (self.params.kind == "local" and len(items) == 1):
            self._map_inline(fn, items, keys, desc, permanent, results)
        elif self.params.kind == "ray":
            self._map_ray(fn, items, keys, desc, permanent, results)
        else:
            self._map_local(fn, items, keys, desc, permanent, results)
        return results.values

    # ------------------------------------------------------------------ bookkeeping shared by the engines
    def _record(self, desc: str, key: str, attempts: int, stats: dict[str, Any]) -> None:
        self.timings.append({"step": desc, "partition": key, "attempts": attempts, **stats})

    def _check_attempts(self, desc: str, key: str, attempts: int, why: str, exc: BaseException) -> None:
        if attempts > self.params.retries:
            raise PartitionFailed(
                f"{desc}: partition {key} failed {attempts} time(s) (engine.retries: {self.params.retries}); "
                f"last: {why}"
            ) from exc

    def _bar(self, total: int, desc: str) -> tqdm:
        return tqdm(total=total, desc=desc, unit="part", disable=not self.progress)

    # ------------------------------------------------------------------ inline: this process, one by one
    def _map_inline(self, fn, items, keys, desc, permanent, results: _InOrder) -> None:
        with self._bar(len(items), desc) as bar:
            for i, (key, item) in enumerate(zip(keys, items, strict=True)):
                attempts = 0
                while True:
                    attempts += 1
                    try:
                        value, stats = _call(fn, item)
                        break
                    except permanent:
                        raise
                    except Exception as exc:
                        self._check_attempts(desc, key, attempts, f"{type(exc).__name__}: {exc}", exc)
                self._record(desc, key, attempts, stats)
                bar.update()
                results.put(i, value)

    # ------------------------------------------------------------------ local: a spawned process pool
    def _local_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def _map_local(self, fn, items, keys, desc, permanent, results: _InOrder) -> None:
        n = len(items)
        attempts = [0] * n
        queue = deque(range(n))
        live: dict[Future, int] = {}
        with self._bar(n, desc) as bar:

            def settle(fut: Future, i: int) -> bool:
                """Take a finished future's result; False when its partition must be run again."""
                try:
                    value, stats = fut.result()
                except BrokenProcessPool as exc:
                    why = (
                        "its worker process died (killed, out of memory, or it could not start: a script that runs "
                        "stages needs `if __name__ == '__main__':` around its top level)"
                    )
                    self._check_attempts(desc, keys[i], attempts[i], why, exc)
                    return False
                except permanent:
                    self._abandon()
                    raise
                except Exception as exc:
                    self._check_attempts(desc, keys[i], attempts[i], f"{type(exc).__name__}: {exc}", exc)
                    return False
                self._record(desc, keys[i], attempts[i], stats)
                bar.update()
                results.put(i, value)
                return True

            def refill() -> None:
                """At most one partition per worker is in flight, so a dead pool charges only those running."""
                pool = self._local_pool()
                with _worker_env(self.worker_env()):
                    while queue and len(live) < self.workers:
                        i = queue.popleft()
                        attempts[i] += 1
                        live[pool.submit(_call, fn, items[i])] = i

            while queue or live:
                refill()
                done, _ = wait(live, return_when=FIRST_COMPLETED)
                broken = any(isinstance(f.exception(), BrokenProcessPool) for f in done)
                if broken:
                    wait(live)  # a broken pool fails every future it still holds
                    done = set(live)
                finished = [(fut, live.pop(fut)) for fut in sorted(done, key=live.__getitem__)]
                if not broken:
                    refill()  # the freed workers start their next partitions before the driver's `on_result` work
                for fut, i in finished:
                    if not settle(fut, i):
                        queue.appendleft(i)
                if broken:
                    self._pool.shutdown(wait=True, cancel_futures=True)
                    self._pool = None

    def _abandon(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # ------------------------------------------------------------------ ray: an existing cluster or a local one
    def _connect_ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise EngineError(f"engine.kind 'ray' needs Ray, an optional extra: {RAY_EXTRA}") from None
        self._ray = ray
        if ray.is_initialized():
            return ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        address = self.params.address
        try:
            if address:
                ray.init(address=address, log_to_driver=False, logging_level="ERROR")
            else:
                ray.init(
                    num_cpus=self.workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR"
                )
        except Exception as exc:
            where = f"the Ray cluster at engine.address {address!r}" if address else "a local Ray"
            raise EngineError(f"cannot start {where}: {type(exc).__name__}: {exc}") from None
        self._ray_started = True
        return ray

    def _map_ray(self, fn, items, keys, desc, permanent, results: _InOrder) -> None:
        ray = self._connect_ray()
        # Task-level env: Ray starts workers for it with these variables, before they import anything.
        env = self.worker_env()
        if not self.params.address:
            # A local Ray's workers import this very package, whatever the working folder they start in.
            package_root = str(Path(__file__).resolve().parents[1])
            env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        remote = ray.remote(_call).options(
            num_cpus=1, max_retries=self.params.retries, runtime_env={"env_vars": env}
        )
        n = len(items)
        attempts = [0] * n
        refs: dict[Any, int] = {}

        def submit(i: int) -> None:
            attempts[i] += 1
            refs[remote.remote(fn, items[i])] = i

        for i in range(n):
            submit(i)
        with self._bar(n, desc) as bar:
            while refs:
                (ref,), _ = ray.wait(list(refs), num_returns=1)
                i = refs.pop(ref)
                try:
                    value, stats = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                    if isinstance(cause, permanent):
                        for other in refs:
                            ray.cancel(other)
                        raise cause from None
                    self._check_attempts(desc, keys[i], attempts[i], f"{type(cause).__name__}: {cause}", exc)
                    submit(i)
                    continue
                except ray.exceptions.RayError as exc:
                    # Ray already re-ran the task max_retries times after its worker died.
                    raise PartitionFailed(
                        f"{desc}: partition {keys[i]} lost its Ray worker {self.params.retries + 1} time(s): "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                self._record(desc, keys[i], attempts[i], stats)
                bar.update()
                results.put(i, value)
