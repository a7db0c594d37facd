"""The partition engine: order, timings, retry of failed and killed partitions, atomic parts, clear errors."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

from maritime_slm.ais.readers import IngestError
from maritime_slm.ais.simulate import simulate, split_by_day
from maritime_slm.config import EngineParams
from maritime_slm.engine import Engine, EngineError, PartitionFailed, atomic_dir, core_lock_dir
from maritime_slm.ingest import files as ingest_module
from maritime_slm.ingest.files import ingest_files, ingest_partition

LOCAL2 = EngineParams(kind="local", workers=2, retries=2)
MARKERS = (
    "MARITIME_SLM_TEST_MARKERS"  # a folder the test's partition functions leave their first-try marks in
)


def square_with_pid(n: int) -> tuple[int, int, str | None]:
    return n * n, os.getpid(), os.environ.get("POLARS_MAX_THREADS")


def fail_once(n: int) -> int:
    """Raises on the first attempt at partition 2 (a transient error), then succeeds."""
    mark = Path(os.environ[MARKERS]) / f"failed-{n}"
    if n == 2 and not mark.exists():
        mark.touch()
        raise OSError("transient: the disk was busy")
    return n + 100


def fails_on_one(n: int) -> int:
    if n == 1:
        raise ValueError(f"partition {n} is broken")
    return n


def bad_input(n: int) -> int:
    """File 1 is not an AIS table; every attempt leaves a mark so a retry would show."""
    (Path(os.environ[MARKERS]) / f"attempt-{n}-{os.getpid()}-{time.monotonic_ns()}").touch()
    if n == 1:
        raise IngestError(f"AIS_{n}.csv: not a MarineCadastre AIS table")
    return n


def ingest_killed_once(task):
    """The real ingest partition, whose worker dies on its first attempt at file 1 with its parts half written."""
    mark = Path(os.environ[MARKERS]) / f"killed-{task.index}"
    if task.index == 1 and not mark.exists():
        mark.touch()

        def die(self):
            os._exit(9)

        ingest_module._Parts.close = die
    return ingest_partition(task)


def test_inline_and_local_give_results_in_order_with_timings():
    items = list(range(7))
    env_before = os.environ.get("POLARS_MAX_THREADS")
    with Engine(None, progress=False) as inline:
        expected = [v for v, _, _ in inline.map(square_with_pid, items)]
    with Engine(LOCAL2, progress=False) as engine:
        out = engine.map(square_with_pid, items, keys=[f"p{i}" for i in items], desc="squares")
    assert [v for v, _, _ in out] == expected == [i * i for i in items]
    pids = {pid for _, pid, _ in out}
    assert os.getpid() not in pids and len(pids) <= 2
    assert {threads for _, _, threads in out} == {"1"}  # each worker held to one polars thread
    assert os.environ.get("POLARS_MAX_THREADS") == env_before  # set only while the workers started
    assert [t["partition"] for t in sorted(engine.timings, key=lambda t: t["partition"])] == [
        f"p{i}" for i in items
    ]
    row = engine.timings[0]
    assert row["step"] == "squares" and row["attempts"] == 1 and row["peak_rss_mb"] > 10
    assert row["worker"].endswith(tuple(f":{pid}" for pid in pids))


def sleep_then_return(n: int) -> int:
    """Partition 1 is slower than 2-4 (on a pool they finish before it), partition 5 the slowest."""
    time.sleep({1: 0.4, 5: 1.0}.get(n, 0.05))
    return n


@pytest.mark.parametrize("params", [None, LOCAL2], ids=["inline", "local"])
def test_results_reach_the_driver_in_input_order_while_others_run(params):
    """`on_result` sees item i only after items 0..i, whatever order they finish in, and gets the first results
    while the last partition still runs: the driver's work on them overlaps the map."""
    seen = []
    with Engine(params, progress=False) as engine:
        out = engine.map(
            sleep_then_return, range(6), on_result=lambda i, v: seen.append((i, v, time.monotonic()))
        )
        returned = time.monotonic()
    assert out == list(range(6))
    assert [(i, v) for i, v, _ in seen] == [(i, i) for i in range(6)]
    assert returned - seen[4][2] > 0.5  # items 0-4 were handed over before partition 5 was done


def started_at(n: int) -> float:
    return time.time()


def test_a_free_worker_starts_its_next_partition_before_the_drivers_work_on_the_last():
    """One worker: partition 1 starts while `on_result` still works on partition 0 (the driver's merge of a
    file overlaps the next file), instead of the worker idling through it."""
    returned = {}

    def slow_merge(i: int, value: float) -> None:
        time.sleep(0.5)
        returned[i] = time.time()

    with Engine(EngineParams(kind="local", workers=1), progress=False) as engine:
        starts = engine.map(started_at, range(3), on_result=slow_merge)
    assert starts[1] < returned[0] and starts[2] < returned[1]


@pytest.mark.parametrize("params", [None, LOCAL2], ids=["inline", "local"])
def test_a_failed_partition_is_redone(params, tmp_path, monkeypatch):
    monkeypatch.setenv(MARKERS, str(tmp_path))
    with Engine(params, progress=False) as engine:
        assert engine.map(fail_once, [0, 1, 2, 3]) == [100, 101, 102, 103]
    attempts = {t["partition"]: t["attempts"] for t in engine.timings}
    assert attempts == {"0": 1, "1": 1, "2": 2, "3": 1}


def test_a_partition_failing_every_attempt_is_named():
    with (
        Engine(EngineParams(workers=2, retries=1), progress=False) as engine,
        pytest.raises(
            PartitionFailed, match=r"^boom: partition b failed 2 time\(s\) .*ValueError: partition 1"
        ),
    ):
        engine.map(fails_on_one, [0, 1, 2], keys=["a", "b", "c"], desc="boom")


@pytest.mark.parametrize("params", [None, LOCAL2], ids=["inline", "local"])
def test_bad_input_is_not_retried_and_keeps_its_message(params, tmp_path, monkeypatch):
    monkeypatch.setenv(MARKERS, str(tmp_path))
    with Engine(params, progress=False) as engine, pytest.raises(IngestError, match="^AIS_1.csv: not a"):
        engine.map(bad_input, [0, 1], permanent=(IngestError,))
    assert len(list(tmp_path.glob("attempt-1-*"))) == 1  # LOCAL2 allows 2 retries; bad input takes none


def thread_affinities(n: int) -> tuple[int, dict[int, tuple[int, ...]]]:
    """(pid, each thread's allowed cores) after polars has run on its pool thread; held a while so that every
    worker of the pool takes a partition."""
    import polars as pl

    pl.DataFrame({"a": list(range(1000))}).lazy().select(pl.col("a").sum()).collect()
    time.sleep(0.3)
    tasks = Path("/proc/self/task")
    return os.getpid(), {
        int(t.name): tuple(sorted(os.sched_getaffinity(int(t.name)))) for t in tasks.iterdir()
    }


def _pinned_runs(params: EngineParams) -> tuple[dict[int, set[tuple[int, ...]]], dict[int, object]]:
    """Per worker pid: the distinct core sets of its threads, and the core the engine's timings give it."""
    with Engine(params, progress=False) as engine:
        out = engine.map(thread_affinities, range(6))
    sets: dict[int, set[tuple[int, ...]]] = {}
    for pid, threads in out:
        sets.setdefault(pid, set()).update(threads.values())
    cores = {int(t["worker"].rsplit(":", 1)[1]): t["core"] for t in engine.timings}
    return sets, cores


needs_two_cores = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs 2+ cores, Linux"
)


@needs_two_cores
def test_each_worker_runs_on_a_core_of_its_own(tmp_path, monkeypatch):
    """Every thread of a worker (polars' pool thread included) is held to the worker's one core, and no two
    workers share one; with `pin_cores: false` they float over the cores the driver has."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # core claims of other runs on this machine stay out
    allowed = tuple(sorted(os.sched_getaffinity(0)))
    sets, cores = _pinned_runs(EngineParams(kind="local", workers=2, pin_cores=True))
    assert len(sets) == 2
    assert all(len(s) == 1 and len(next(iter(s))) == 1 for s in sets.values())  # one core, every thread
    assert {next(iter(s))[0] for s in sets.values()} == {cores[pid] for pid in sets}
    assert len(set(cores.values())) == 2 and set(cores.values()) <= set(allowed)

    sets, cores = _pinned_runs(EngineParams(kind="local", workers=2, pin_cores=False))
    assert all(s == {allowed} for s in sets.values()) and set(cores.values()) == {None}


@needs_two_cores
def test_a_core_another_worker_holds_is_not_taken(tmp_path, monkeypatch):
    """A core whose lock another process holds (a worker of a concurrent run) is skipped; with no core left a
    worker floats rather than share one."""
    import fcntl

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # this process reads TMPDIR again, as the workers do
    allowed = tuple(sorted(os.sched_getaffinity(0)))
    folder = core_lock_dir()
    folder.mkdir()
    held = []
    for core in allowed[:-1]:  # all but the last core
        handle = open(folder / f"core-{core}.lock", "a")  # noqa: SIM115
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(handle)
    try:
        sets, cores = _pinned_runs(EngineParams(kind="local", workers=2, pin_cores=True))
    finally:
        for handle in held:
            handle.close()
    assert sorted(cores.values(), key=str) == [allowed[-1], None]
    by_core = {cores[pid]: s for pid, s in sets.items()}
    assert by_core[allowed[-1]] == {(allowed[-1],)} and by_core[None] == {allowed}


def test_auto_pins_cores_when_the_workers_fill_them(monkeypatch):
    """`pin_cores: auto` pins exactly when there is no core to spare (local, or a local Ray), and always on an
    existing Ray cluster; true and false are taken as they are."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)

    def pins(**kw) -> str:
        return Engine(EngineParams(**kw), progress=False).worker_env()["MARITIME_SLM_PIN"]

    assert [pins(workers=n) for n in (1, 3, 4, 6)] == ["0", "0", "1", "1"]
    assert [pins(kind="ray", workers=n) for n in (2, 4)] == ["0", "1"]
    assert pins(kind="ray", workers=1, address="auto") == "1"
    assert pins(workers=1, pin_cores=True) == "1" and pins(workers=4, pin_cores=False) == "0"


def test_ray_without_ray_installed_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    engine = Engine(EngineParams(kind="ray", workers=2), progress=False)
    with pytest.raises(EngineError, match=r"^engine.kind 'ray' needs Ray, an optional extra: pip install"):
        engine.map(square_with_pid, [1, 2])


def test_atomic_dir_leaves_nothing_half_written(tmp_path):
    final = tmp_path / "part-7"
    with pytest.raises(RuntimeError), atomic_dir(final) as tmp:
        (tmp / "a.parquet").write_bytes(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / ".part-7.tmp-123-abc").mkdir()  # what a SIGKILLed attempt leaves behind
    with atomic_dir(final) as tmp:
        (tmp / "a.parquet").write_bytes(b"whole")
    assert [p.name for p in tmp_path.iterdir()] == ["part-7"]
    assert (final / "a.parquet").read_bytes() == b"whole"


@pytest.fixture(scope="module")
def three_days(tmp_path_factory):
    out = tmp_path_factory.mktemp("three_days")
    csv, _ = simulate(
        n_vessels=24, hours=30, start="2024-06-01T21:00:00", seed=5, malformed_lines=4, out_dir=out
    )
    return split_by_day(csv, out / "days")


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_killed_ingest_worker_loses_nothing(three_days, tmp_path, monkeypatch):
    """A worker SIGKILLed mid-file: its file is ingested again and the stage's files are byte-identical to
    ingesting the files one after another in one process."""
    assert len(three_days) == 3
    ingest_files(three_days, tmp_path / "serial", progress=False)
    monkeypatch.setenv(MARKERS, str(tmp_path))
    monkeypatch.setattr(ingest_module, "ingest_partition", ingest_killed_once)
    with Engine(LOCAL2, progress=False) as engine:
        summary = ingest_files(three_days, tmp_path / "pool", progress=False, engine=engine)
    assert (tmp_path / "killed-1").exists()
    attempts = {t["partition"]: t["attempts"] for t in summary["partitions"]}
    assert attempts[three_days[1].name] == 2
    serial, pool = _tree(tmp_path / "serial"), _tree(tmp_path / "pool")
    assert sorted(pool) == sorted(serial)
    assert all(pool[name] == serial[name] for name in serial), [n for n in serial if pool[n] != serial[n]]
    assert not list((tmp_path / "pool").rglob(".*tmp-*")) and not (tmp_path / "pool" / "_work").exists()
