"""Stage 02's data work in partitions: days for context windows and encounter snapshots, vessel buckets for
tracks and per-vessel events. The driver only samples, merges and assembles the few chosen contexts.

Why two kinds of partition: a context window or an encounter snapshot needs every vessel at one moment, which
one day holds (plus the next day's first window or snapshot step when those do not divide a day). A track needs
one vessel's whole history: its segment numbers count every gap since its first report, and a reporting gap may
span any number of days, so no fixed overlap reproduces it. Each day partition therefore also deals its reports
into vessel buckets (`vessel_bucket`, one Arrow record batch each), and each bucket's tracks and events are
computed from the whole history of its vessels: the single-process tables, computed in pieces. A day's
encounter hits (qualifying pair snapshots) are dealt the same way, by their first vessel, so a
bucket joins every snapshot of its pairs into episodes, across midnight too. Each bucket writes its event tables
as parts (one per kind, in the table's order), so no event row passes through the driver (a week of dense
traffic has millions of encounter episodes); only the candidates, which the sample needs, come back to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

from maritime_slm.ais.schema import POINT_SCHEMA
from maritime_slm.config import ContextParams, FactsParams, Params
from maritime_slm.engine import Engine, atomic_file
from maritime_slm.facts.contexts import (
    assign_strata,
    candidate_cells,
    cell_points,
    choose_cells,
    window_seconds,
)
from maritime_slm.facts.events import (
    SNAPSHOT_MINUTES,
    VESSEL_EVENTS,
    encounter_episodes,
    encounter_hits,
    vessel_events,
)
from maritime_slm.facts.tracks import build_tracks

DAY_S = 86_400
EMPTY = pl.DataFrame(schema=POINT_SCHEMA)
TRACK_INPUT = ["mmsi", "ts", "lat", "lon", "sog", "status", "length"]  # what per-vessel events read
# Rows of each event table in a fixed order (stable sorts, so ties keep the track order they were found in).
EVENT_ORDER = {
    "gaps": ["mmsi", "start", "end"],
    "jumps": ["mmsi", "start", "end"],
    "loitering": ["start", "mmsi"],
    "status": ["start", "mmsi", "status"],
    "speed_zones": ["start", "mmsi", "zone_id"],
    "encounters": ["start", "mmsi_1", "mmsi_2"],
}


def point_days(points_dir: Path) -> list[tuple[date, tuple[Path, ...]]]:
    """(day, its parts in name order) for every `date=YYYY-MM-DD` folder of the ingest stage's points."""
    days = []
    for folder in sorted(points_dir.glob("date=*")):
        files = tuple(sorted(folder.glob("*.parquet")))
        if files:
            days.append((date.fromisoformat(folder.name.split("=", 1)[1]), files))
    return days


def day_overlap_s(params: ContextParams) -> int:
    """How far past its midnight a day partition reads: the window or snapshot step that can cross it."""
    steps = (window_seconds(params), max(1, round(SNAPSHOT_MINUTES * 60)))
    return max((s for s in steps if DAY_S % s), default=0)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, day_time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


@dataclass(frozen=True)
class DaySource:
    """A day's points parts and, when windows cross midnight, the later days' parts the overlap reaches."""

    day: date
    files: tuple[Path, ...]
    overlap_files: tuple[Path, ...] = ()
    overlap_s: int = 0

    def read(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(the day's own reports, the same followed by the overlap), in file order."""
        own = pl.read_parquet(list(self.files), hive_partitioning=False)
        if not self.overlap_files:
            return own, own
        until = day_bounds(self.day)[1] + timedelta(seconds=self.overlap_s)
        head = pl.scan_parquet(list(self.overlap_files), hive_partitioning=False).filter(pl.col("ts") < until)
        return own, pl.concat([own, head.collect()])


@dataclass(frozen=True)
class DayTask:
    source: DaySource
    shuffle_file: Path
    hits_file: Path
    buckets: int
    contexts: ContextParams
    facts: FactsParams


def vessel_bucket(mmsi: pl.Expr, buckets: int) -> pl.Expr:
    """A vessel's bucket, from a multiplicative hash of its MMSI (Knuth's 2654435761, the top bits of the low 32
    taken). Not `mmsi % buckets`: MMSIs often end in zeros (440350000), and modulo 8 such a sample put three
    times as many vessels in bucket 0 as in any other, whose worker then finished last."""
    hashed = (mmsi.cast(pl.UInt64) * 2_654_435_761) % (1 << 32)
    return (hashed * buckets // (1 << 32)).cast(pl.UInt32)


def _write_buckets(frame: pl.DataFrame, key: str, target: Path, buckets: int) -> None:
    """Rows as one Arrow IPC record batch per `vessel_bucket` of `key` (an MMSI; batch b holds bucket b, empty
    when it has no row), in their order, LZ4-compressed, written whole or not at all. IPC rather than Parquet:
    2x faster to write a day, and a bucket reads one batch of each day instead of scanning the file."""
    groups = frame.with_columns(_bucket=vessel_bucket(pl.col(key), buckets)).partition_by(
        "_bucket", as_dict=True, maintain_order=True, include_key=False
    )
    schema = frame.head(0).to_arrow().schema
    options = ipc.IpcWriteOptions(compression="lz4")
    with atomic_file(target) as tmp, ipc.new_file(str(tmp), schema, options=options) as writer:
        for bucket in range(buckets):
            part = groups.get((bucket,), frame.head(0)).to_arrow().combine_chunks().to_batches()
            writer.write_batch(part[0] if part else pa.RecordBatch.from_pylist([], schema=schema))


def day_work(task: DayTask) -> dict[str, Any]:
    """One day: its candidate cells with strata; its reports and its encounter snapshots' hits dealt into vessel
    buckets for `bucket_work`."""
    own, wide = task.source.read()
    start, end = day_bounds(task.source.day)
    cells = candidate_cells(wide.lazy(), task.contexts).filter(
        (pl.col("window") >= start) & (pl.col("window") < end)
    )
    cells = assign_strata(cells, task.contexts, task.facts)
    hits = encounter_hits(wide, task.facts.close_encounter_nm, task.facts.cpa_horizon_min, bins=(start, end))
    _write_buckets(own.select(TRACK_INPUT), "mmsi", task.shuffle_file, task.buckets)
    _write_buckets(hits, "mmsi_1", task.hits_file, task.buckets)
    return {"cells": cells, "hits": hits.height, "rows": own.height}


@dataclass(frozen=True)
class BucketTask:
    bucket: int
    shuffle_files: tuple[Path, ...]  # in day order
    hits_files: tuple[Path, ...]  # in day order
    events_dir: Path
    facts: FactsParams


def event_part(events_dir: Path, kind: str, bucket: int) -> Path:
    return events_dir / kind / f"part-{bucket:05d}.parquet"


def _bucket_rows(paths: tuple[Path, ...], bucket: int) -> pl.DataFrame:
    """One bucket's rows of every day's shuffle file (`_write_buckets`), in day order."""
    batches = []
    for path in paths:
        with pa.memory_map(str(path)) as source:
            batches.append(pl.from_arrow(ipc.open_file(source).get_batch(bucket)))
    return pl.concat(batches)


def bucket_work(task: BucketTask) -> dict[str, int]:
    """Tracks and per-vessel events of one bucket's vessels over all days, and the encounter episodes of the
    pairs whose first vessel is in the bucket, written as one part per event kind; returns the rows of each (no
    part when the bucket has no vessel)."""
    points = _bucket_rows(task.shuffle_files, task.bucket)
    if points.is_empty():
        return {}
    events = vessel_events(build_tracks(points, task.facts.gap_minutes), task.facts)
    events["encounters"] = encounter_episodes(_bucket_rows(task.hits_files, task.bucket))
    for kind, table in events.items():
        target = event_part(task.events_dir, kind, task.bucket)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(target) as tmp:
            table.sort(EVENT_ORDER[kind], maintain_order=True).write_parquet(tmp)
    return {kind: table.height for kind, table in events.items()}


@dataclass(frozen=True)
class CellPointsTask:
    source: DaySource
    chosen: pl.DataFrame  # the chosen cells whose window starts on this day
    contexts: ContextParams


def day_cell_points(task: CellPointsTask) -> pl.DataFrame:
    """The reports of one day's chosen (window, cell)s (its overlap completes a window crossing midnight)."""
    _, wide = task.source.read()
    return cell_points(wide.lazy(), task.chosen, task.contexts).collect()


def read_events(events_dir: Path, kind: str) -> pl.DataFrame:
    """One event table from its bucket parts, in the table's fixed order: the single-process table, row for row."""
    parts = sorted((Path(events_dir) / kind).glob("part-*.parquet"))
    return pl.read_parquet(parts).sort(EVENT_ORDER[kind], maintain_order=True)


def stage_data(ingest_dir: Path, params: Params, work_dir: Path, engine: Engine) -> dict[str, Any]:
    """Candidate cells (with strata), the chosen cells, their reports, and the event tables of a run.

    Three maps over partitions: days (cells, the bucket shuffle of reports and encounter hits), vessel buckets
    (tracks, per-vessel events, encounter episodes, written as parts under `work_dir/events/<kind>/`), days again
    (reports of the chosen cells). Only the sample itself, which needs every candidate, runs in the driver.
    """
    points_dir = Path(ingest_dir) / "points"
    days = point_days(points_dir)
    if not days:
        raise FileNotFoundError(
            f"{points_dir}: no date=YYYY-MM-DD/*.parquet parts; run stage 01 (ingest) first"
        )
    overlap = day_overlap_s(params.contexts)
    buckets = len(days)

    def source(day: date, files: tuple[Path, ...]) -> DaySource:
        if not overlap:
            return DaySource(day, files)
        reach = day_bounds(day)[1] + timedelta(seconds=overlap)
        later = tuple(f for d, fs in days if day < d and day_bounds(d)[0] < reach for f in fs)
        return DaySource(day, files, later, overlap)

    sources = [source(day, files) for day, files in days]
    keys = [s.day.isoformat() for s in sources]
    day_tasks = [
        DayTask(
            s,
            work_dir / "shuffle" / f"day={s.day.isoformat()}.arrow",
            work_dir / "hits" / f"day={s.day.isoformat()}.arrow",
            buckets,
            params.contexts,
            params.facts,
        )
        for s in sources
    ]
    per_day = engine.map(day_work, day_tasks, keys=keys, desc="days")
    cells = pl.concat([d["cells"] for d in per_day]).sort(
        "window", "cell_lat", "cell_lon", maintain_order=True
    )
    chosen = choose_cells(cells, params.contexts)

    shuffle = tuple(t.shuffle_file for t in day_tasks)
    hits = tuple(t.hits_file for t in day_tasks)
    events_dir = work_dir / "events"
    bucket_tasks = [BucketTask(b, shuffle, hits, events_dir, params.facts) for b in range(buckets)]
    per_bucket = engine.map(bucket_work, bucket_tasks, keys=[f"bucket {b}" for b in range(buckets)],
                            desc="vessel buckets")  # fmt: skip
    events = {kind: sum(b.get(kind, 0) for b in per_bucket) for kind in (*VESSEL_EVENTS, "encounters")}

    chosen_day = chosen.get_column("window").dt.date()
    point_tasks = [
        CellPointsTask(s, chosen.filter(chosen_day == s.day), params.contexts)
        for s in sources
        if (chosen_day == s.day).any()
    ]
    parts = engine.map(day_cell_points, point_tasks, keys=[t.source.day.isoformat() for t in point_tasks],
                       desc="context points")  # fmt: skip
    return {
        "cells": cells,
        "chosen": chosen,
        "points": pl.concat(parts) if parts else cell_points(EMPTY.lazy(), chosen, params.contexts).collect(),
        "events": events,
        "events_dir": events_dir,
        "rows": sum(d["rows"] for d in per_day),
        "days": len(days),
    }
