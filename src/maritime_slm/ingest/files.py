"""The ingest stage: raw AIS files -> date-partitioned clean Parquet, a quarantine with reasons, the vessel
table and a quality report.

Per file: a pre-pass hashes every row's duplicate key (MMSI, time, lat, lon) and keeps only the hashes that
repeat; then one pass over blocks of about `chunk_rows` lines, where polars parses and judges the rows
(`readers`, `clean`). Each block's rejected rows go to `quarantine.parquet` (with the raw line and fields), rows
with a repeated hash are checked exactly (first occurrence stays, later ones are quarantined as `duplicate`),
and the rest are appended to `points/date=YYYY-MM-DD/part-*.parquet`. Nothing is rewritten, nothing is spilled.
Memory: one block, plus 8 bytes per row of the current file during the pre-pass sort; never the number of files.

Every row in is accounted for: rows in = clean + quarantined, checked per file, and a mismatch raises.

Each input file is one partition (`maritime_slm.engine`): files are ingested in parallel, each into its own
folder of points parts and a quarantine part written all at once, then the stage moves the parts into place,
appends the quarantine parts in file order, checks the accounting per file and in total, and combines the
files' vessel partials into the vessel table. The outputs are byte-identical whichever engine ran the partitions,
and to ingesting the files one after another.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from maritime_slm.ais.clean import REASONS, classify, describe_rejects, key_hash_expr
from maritime_slm.ais.readers import IngestError, RawSource, open_source
from maritime_slm.ais.schema import (
    DEDUP_KEY,
    POINT_COLUMNS,
    POINT_SCHEMA,
    QUARANTINE_SCHEMA,
    RAW_FIELDS,
    VESSEL_SCHEMA,
)
from maritime_slm.ais.vessels import combine_partials, vessel_partials, vessel_table
from maritime_slm.config import Params, resolve_input_paths
from maritime_slm.engine import Engine, atomic_dir

COMPRESSION = "zstd"
COMPRESSION_LEVEL = 1  # fast: ingest is I/O-heavy and later stages re-read the points many times
# Parsing a block holds roughly 1 KB per line at once (the line, its 17 pieces, typed columns) and WORKERS blocks
# are parsed at a time, so blocks stay at or below this many lines whatever `chunk_rows` asks for.
MAX_BLOCK_ROWS = 125_000
# As many block threads as polars has: a partition worker held to one thread parses and writes in turn.
WORKERS = max(1, min(4, pl.thread_pool_size()))
OUTPUTS = (
    "points",
    "quarantine.parquet",
    "quality.csv",
    "vessels.parquet",
    "ingest_summary.json",
    "partitions.csv",
    "paper",
)
VESSEL_PARTIAL = "vessels.parquet"  # in a partition's folder: its file's vessel partials (`ais.vessels`)
WORK_DIR = "_work"  # partitions' folders while the stage runs; removed when their parts are merged
_COMPAT = pl.CompatLevel.oldest()  # plain (large_)string Arrow types that every Parquet reader knows


T = TypeVar("T")
R = TypeVar("R")


class RowAccountingError(IngestError):
    """Rows in != clean + quarantined: a bug, never silently tolerated."""


def _arrow_schema(schema: dict[str, pl.DataType]) -> pa.Schema:
    return pl.DataFrame(schema=schema).to_arrow(compat_level=_COMPAT).schema


POINTS_ARROW = _arrow_schema(POINT_SCHEMA)
QUARANTINE_ARROW = _arrow_schema(QUARANTINE_SCHEMA)


def _writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """Dictionary encoding only where values repeat (names, codes); positions and times would not gain."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dictionary = [name for name in schema.names if name not in ("ts", "lat", "lon", "line")]
    return pq.ParquetWriter(
        path,
        schema,
        compression=COMPRESSION,
        compression_level=COMPRESSION_LEVEL,
        use_dictionary=dictionary,
    )


def ordered_map(fn: Callable[[T], R], items: Iterable[T], ahead: int = WORKERS) -> Iterator[R]:
    """`map(fn, items)` on a thread pool, in order, with at most `ahead` + 1 results in flight.

    Polars and pyarrow release the GIL, so block k+1 is parsed while block k is written: both cores work,
    and memory stays a few blocks. With one thread it is a plain `map`.
    """
    if WORKERS == 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(WORKERS) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def duplicate_key_hashes(src: RawSource, chunk_rows: int) -> pl.Series:
    """Pre-pass: key hashes that occur more than once in the file (usually a handful).

    Holds 8 bytes per row of this one file while sorting, then only the repeated values; the main pass checks
    rows with these hashes exactly, so a hash collision can never drop a row.
    """

    def hashes_of(keys: pl.LazyFrame) -> np.ndarray:
        return keys.select(key_hash_expr(src.ts_format)).collect().to_series().to_numpy()

    parts = list(ordered_map(hashes_of, src.key_blocks(chunk_rows)))
    hashes = np.concatenate(parts) if parts else np.array([], dtype=np.uint64)
    del parts
    hashes.sort()
    repeated = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
    return pl.Series("_key_hash", repeated, dtype=pl.UInt64)


class _Dedup:
    """Exact duplicate check for the rows whose key hash repeats: the first occurrence in file order stays."""

    def __init__(self, repeated: pl.Series):
        self.repeated = repeated.implode()
        self.first_line: dict[tuple, int] = {}
        self.active = repeated.len() > 0

    def split(self, clean: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame | None]:
        """(rows to keep, duplicates with `detail`) of a batch of clean rows."""
        if not self.active:
            return clean, None
        suspect = clean["_key_hash"].is_in(self.repeated)
        if not suspect.any():
            return clean, None
        rows = clean.filter(suspect).select([*DEDUP_KEY, "line"])
        dup_lines, details = [], []
        for mmsi, ts, lat, lon, line in rows.iter_rows():
            first = self.first_line.setdefault((mmsi, ts, lat, lon), line)
            if first != line:
                dup_lines.append(line)
                details.append(f"duplicate of line {first}")
        if not dup_lines:
            return clean, None
        is_dup = clean["line"].is_in(pl.Series(dup_lines, dtype=pl.Int64).implode())
        dups = clean.filter(is_dup).with_columns(
            reason=pl.lit("duplicate"),
            detail=pl.Series(details, dtype=pl.String),
        )
        return clean.filter(~is_dup), dups


class _Parts:
    """Open Parquet writers for one input file, one per date partition, and the vessel partials of what they got."""

    def __init__(self, out_dir: Path, path: Path, index: int):
        self.out_dir, self.name = out_dir, _part_name(path, index)
        self.writers: dict[date, pq.ParquetWriter] = {}
        self.rows = 0
        self.partials: list[pl.DataFrame] = []

    def write(self, clean: pl.DataFrame) -> None:
        dates = clean["ts"].dt.date()
        if dates.n_unique() == 1:
            groups = {dates[0]: clean}
        else:
            split = clean.with_columns(_date=dates).partition_by("_date", as_dict=True, include_key=False)
            groups = {key[0]: frame for key, frame in split.items()}
        for day, part in groups.items():
            if day not in self.writers:
                target = self.out_dir / "points" / f"date={day.isoformat()}" / self.name
                self.writers[day] = _writer(target, POINTS_ARROW)
            table = part.select(POINT_COLUMNS).to_arrow(compat_level=_COMPAT).cast(POINTS_ARROW)
            self.writers[day].write_table(table)
            self.rows += part.height
        self.partials.append(vessel_partials(clean).collect())

    def close(self) -> list[str]:
        for writer in self.writers.values():
            writer.close()
        if self.partials:
            combine_partials(pl.concat(self.partials).lazy()).collect().write_parquet(
                self.out_dir / VESSEL_PARTIAL
            )
        return sorted(day.isoformat() for day in self.writers)


def _quarantine_rows(rejects: pl.DataFrame, src: RawSource, source: str) -> pa.Table:
    rejects = src.raw_fields(rejects.rechunk())
    detail = describe_rejects(rejects, src.expected_fields)
    if "detail" in rejects.columns:
        detail = rejects["detail"].fill_null(detail)
    rows = rejects.select(
        pl.lit(source).alias("source_file"),
        "line",
        "reason",
        detail.alias("detail"),
        "raw_line",
        *(f"raw_{name}" for name in RAW_FIELDS),
    ).cast(QUARANTINE_SCHEMA)
    return rows.to_arrow(compat_level=_COMPAT).cast(QUARANTINE_ARROW)


def _part_name(path: Path, index: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.name)
    return f"part-{index:05d}-{stem}.parquet"


def ingest_file(
    path: Path, index: int, out_dir: Path, quarantine: pq.ParquetWriter, chunk_rows: int
) -> dict[str, Any]:
    """Ingest one file into `out_dir/points` and the open quarantine writer; returns its row accounting."""
    started = time.perf_counter()
    source = str(path)
    rows_in = rows_quarantined = 0
    chunk_rows = min(chunk_rows, MAX_BLOCK_ROWS)
    src = open_source(path)
    parts = _Parts(out_dir, path, index)
    try:
        dedup = _Dedup(duplicate_key_hashes(src, chunk_rows))

        def judge(raw: pl.LazyFrame) -> pl.DataFrame:
            return classify(raw, src.ts_format, src.expected_fields, keep_raw=src.keep_raw).collect()

        for batch in ordered_map(judge, src.blocks(chunk_rows)):
            rows_in += batch.height
            rejected = batch["reason"].is_not_null()
            if rejected.any():
                rejects = batch.filter(rejected)
                batch = batch.filter(~rejected)
                quarantine.write_table(_quarantine_rows(rejects, src, source))
                rows_quarantined += rejects.height
            batch, dups = dedup.split(batch)
            if dups is not None:
                quarantine.write_table(_quarantine_rows(dups, src, source))
                rows_quarantined += dups.height
            if batch.height:
                parts.write(batch)
    except pl.exceptions.PolarsError as exc:
        raise IngestError(f"cannot read AIS file {path}: {type(exc).__name__}: {exc}") from exc
    finally:
        dates = parts.close()
    if rows_in != parts.rows + rows_quarantined:
        raise RowAccountingError(
            f"{path}: {rows_in} rows in != {parts.rows} clean + {rows_quarantined} quarantined"
        )
    return {
        "path": source,
        "format": str(src.info.format),
        "container": src.info.container,
        "bytes": path.stat().st_size,
        "rows_in": rows_in,
        "rows_clean": parts.rows,
        "rows_quarantined": rows_quarantined,
        "dates": dates,
        "seconds": round(time.perf_counter() - started, 3),
    }


def quality_table(reason_counts: dict[str, int], rows_clean: int) -> pl.DataFrame:
    """One row per reason code (in check order, zeros included) and a final `clean` row; rows sum to rows in."""
    rows_in = rows_clean + sum(reason_counts.values())
    names = [*REASONS, "clean"]
    counts = [reason_counts.get(r, 0) for r in REASONS] + [rows_clean]
    return pl.DataFrame(
        {"reason": names, "rows": counts, "share": [c / rows_in if rows_in else 0.0 for c in counts]},
        schema={"reason": pl.String, "rows": pl.Int64, "share": pl.Float64},
    )


def _clear_outputs(out_dir: Path) -> None:
    for name in (*OUTPUTS, WORK_DIR):
        target = out_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


@dataclass(frozen=True)
class FileTask:
    """One input file as a partition of the ingest stage."""

    path: Path
    index: int
    work_dir: Path
    chunk_rows: int


def _partition_dir(work_dir: Path, index: int) -> Path:
    return work_dir / f"file-{index:05d}"


def ingest_partition(task: FileTask) -> dict[str, Any]:
    """Ingest one file into its own folder (points parts + quarantine part), which appears only complete."""
    with atomic_dir(_partition_dir(task.work_dir, task.index)) as tmp:
        quarantine = _writer(tmp / "quarantine.parquet", QUARANTINE_ARROW)
        try:
            return ingest_file(task.path, task.index, tmp, quarantine, task.chunk_rows)
        finally:
            quarantine.close()


def _merge_partition(
    part_dir: Path, result: dict[str, Any], out_dir: Path, quarantine: pq.ParquetWriter
) -> pl.DataFrame | None:
    """Move one file's points parts into points/ and append its quarantine row groups, after checking both
    against the file's own accounting: a lost or short part fails here, never silently. Returns the file's
    vessel partials (None when it had no clean row)."""
    parts = sorted((part_dir / "points").glob("date=*/*.parquet"))
    clean = sum(pq.read_metadata(p).num_rows for p in parts)
    with pq.ParquetFile(part_dir / "quarantine.parquet") as rejects:
        if clean != result["rows_clean"] or rejects.metadata.num_rows != result["rows_quarantined"]:
            raise RowAccountingError(
                f"{result['path']}: its partition holds {clean} clean + {rejects.metadata.num_rows} quarantined "
                f"rows, its accounting says {result['rows_clean']} + {result['rows_quarantined']}"
            )
        # one read and one row group per file: the driver's time is what does not parallelise
        if rejects.metadata.num_rows:
            quarantine.write_table(rejects.read().cast(QUARANTINE_ARROW))
    for part in parts:
        target = out_dir / "points" / part.parent.name / part.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)
    partial = part_dir / VESSEL_PARTIAL
    return pl.read_parquet(partial) if partial.exists() else None


def ingest_files(
    paths: list[Path],
    out_dir: str | Path,
    *,
    chunk_rows: int = 1_000_000,
    progress: bool = True,
    vessels: bool = True,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Ingest `paths` into `out_dir` (points/, quarantine.parquet, quality.csv, vessels.parquet).

    Files are partitions of `engine` (None: one after another in this process); the outputs do not depend on it.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_outputs(out_dir)
    started = time.perf_counter()
    engine = engine or Engine(None, progress=progress)
    work = out_dir / WORK_DIR
    tasks = [FileTask(Path(p), i, work, chunk_rows) for i, p in enumerate(paths)]
    done = len(engine.timings)
    quarantine = _writer(out_dir / "quarantine.parquet", QUARANTINE_ARROW)
    partials = []

    def merge(i: int, result: dict[str, Any]) -> None:
        """File i's parts into the outputs, in file order, while later files are still being ingested."""
        partials.append(_merge_partition(_partition_dir(work, tasks[i].index), result, out_dir, quarantine))

    try:
        files = engine.map(
            ingest_partition,
            tasks,
            keys=[t.path.name for t in tasks],
            desc="ingest",
            permanent=(IngestError,),
            on_result=merge,
        )
    finally:
        quarantine.close()
    shutil.rmtree(work, ignore_errors=True)
    seconds_rows = time.perf_counter() - started
    reason_counts = dict(
        pl.scan_parquet(out_dir / "quarantine.parquet").group_by("reason").len().collect().iter_rows()
    )
    rows_in = sum(f["rows_in"] for f in files)
    rows_clean = sum(f["rows_clean"] for f in files)
    rows_quarantined = sum(reason_counts.values())
    if rows_in != rows_clean + rows_quarantined or rows_quarantined != sum(
        f["rows_quarantined"] for f in files
    ):
        raise RowAccountingError(
            f"{rows_in} rows in != {rows_clean} clean + {rows_quarantined} quarantined (quarantine.parquet)"
        )
    quality = quality_table(reason_counts, rows_clean)
    quality.write_csv(out_dir / "quality.csv")
    n_vessels = None
    if vessels:
        found = [p for p in partials if p is not None]
        table = (
            vessel_table(pl.concat(found).lazy()).collect() if found else pl.DataFrame(schema=VESSEL_SCHEMA)
        )
        table.write_parquet(out_dir / "vessels.parquet")
        n_vessels = table.height
    seconds = time.perf_counter() - started
    megabytes = sum(f["bytes"] for f in files) / 1e6
    return {
        "rows_in": rows_in,
        "rows_clean": rows_clean,
        "rows_quarantined": rows_quarantined,
        "reasons": {r: reason_counts.get(r, 0) for r in REASONS},
        "files": len(files),
        "inputs": files,
        "vessels": n_vessels,
        "dates": sorted({d for f in files for d in f["dates"]}),
        "input_mb": round(megabytes, 3),
        "seconds": round(seconds, 3),
        "seconds_rows": round(seconds_rows, 3),
        "seconds_vessels": round(seconds - seconds_rows, 3),
        "rows_per_s": round(rows_in / seconds_rows) if seconds_rows > 0 else None,
        "engine": engine.describe(),
        "partitions": engine.timings[done:],
    }


def run_ingest(
    params: Params, stage_dir: str | Path, *, progress: bool = True, paper: bool = True
) -> dict[str, Any]:
    """The 01_ingest stage: (simulate, then) ingest `params.ingest` inputs into `stage_dir`, files in parallel
    under `params.engine`.

    Writes points/ (hive `date=YYYY-MM-DD/`), quarantine.parquet, quality.csv, vessels.parquet,
    ingest_summary.json (with the per-file timing table) and, with `paper`, figure_1.png, figure_2.png and
    table_1_ingest.csv/.md in paper/.
    """
    cfg = params.ingest
    stage_dir = Path(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    inputs = resolve_input_paths(cfg.inputs)
    missing = [p for p in cfg.inputs if not resolve_input_paths([p])]
    if missing:
        raise IngestError(f"ingest.inputs: no file matches {missing}")
    simulated = None
    if cfg.simulate is not None:
        from maritime_slm.ais.simulate import simulate, split_by_day

        sim = cfg.simulate
        started = time.perf_counter()
        csv_path, labels_path = simulate(
            n_vessels=sim.n_vessels,
            hours=sim.hours,
            start=sim.start,
            seed=sim.seed,
            anomaly_rate=sim.anomaly_rate,
            malformed_lines=sim.malformed_lines,
            out_dir=stage_dir / "raw",
            ports=sim.ports,
        )
        simulated_files = [csv_path]
        if sim.daily_files:
            simulated_files = split_by_day(csv_path, stage_dir / "raw" / "days")
            csv_path.unlink()
        simulated = {
            "files": [str(p) for p in simulated_files],
            "labels": str(labels_path),
            "seconds": round(time.perf_counter() - started, 3),
        }
        if not sim.daily_files:
            simulated["csv"] = str(csv_path)
        inputs = [*simulated_files, *inputs]
    with Engine(params.engine, progress=progress) as engine:
        summary = ingest_files(inputs, stage_dir, chunk_rows=cfg.chunk_rows, progress=progress, engine=engine)
    pl.DataFrame(summary["partitions"]).write_csv(stage_dir / "partitions.csv")
    if not summary["rows_clean"]:
        per_file = "; ".join(
            f"{f['path']}: {f['rows_in']} data rows, {f['rows_quarantined']} quarantined"
            for f in summary["inputs"]
        )
        raise IngestError(
            f"ingest.inputs: no usable AIS rows ({per_file}); expected at least one valid position report "
            "(see quarantine.parquet for why rows were rejected)"
        )
    summary["simulated"] = simulated
    if paper:
        from maritime_slm.ingest.figures import write_ingest_artifacts

        summary["paper"] = {k: str(v) for k, v in write_ingest_artifacts(stage_dir, summary).items()}
    (stage_dir / "ingest_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def read_ais(path: str | Path, *, chunk_rows: int = 1_000_000) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One file's clean points and quarantine rows in memory (small files: tests, notebooks, exploration)."""
    with tempfile.TemporaryDirectory(prefix="read_ais-") as tmp:
        ingest_files([Path(path)], tmp, chunk_rows=chunk_rows, progress=False, vessels=False)
        parts = sorted(Path(tmp, "points").rglob("*.parquet"))
        points = (
            pl.read_parquet(parts, hive_partitioning=False).select(POINT_COLUMNS)
            if parts
            else pl.DataFrame(schema=POINT_SCHEMA)
        )
        quarantine = pl.read_parquet(Path(tmp, "quarantine.parquet"))
    return points, quarantine
