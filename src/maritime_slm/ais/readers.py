"""Readers for the three MarineCadastre AIS formats, recognised from the file's bytes rather than its name.

- ≤2024 daily CSV `AIS_YYYY_MM_DD.csv` (or the `.zip` it ships in): CamelCase header, sentinels for "not available".
- 2024 GeoParquet `ais-2024-MM-DD.parquet`: WKB point geometry, snake_case columns.
- 2025+ `ais-YYYY-MM-DD.csv.zst`: snake_case header, longitude before latitude, nulls instead of sentinels.

Every reader yields the same lazy frame of *raw strings*: one row per source line (CSV) or row (Parquet), with
`line` (where it came from), `raw_line` (the CSV line as written), `n_fields` and `raw_<field>` for the 17
canonical fields. Cleaning types and judges those strings, so a malformed line becomes a quarantine row instead
of a parser exception, and the quarantine can keep exactly what the source said.

CSV lines are read whole (a separator byte that does not occur in AIS text) and split here: the native parser
would silently pad or truncate ragged lines, or let one stray quote swallow the rest of the file. Files are read
as a stream of byte blocks cut at line ends (compressed ones are decompressed on the fly), never memory-mapped
or copied to disk, so memory follows the block size and not the file size.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import polars as pl
import pyarrow.parquet as pq
import zstandard

from maritime_slm.ais.schema import RAW_FIELDS

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


class IngestError(RuntimeError):
    """An input file cannot be read as AIS; the message names the file."""


class AisFormat(StrEnum):
    CSV_LEGACY = "csv_legacy"  # ≤2024 daily CSV (plain or zipped)
    GEOPARQUET_2024 = "geoparquet_2024"
    CSV_2025 = "csv_2025"  # 2025+ snake_case CSV (usually .csv.zst)


# Header names of every format, normalised (lower case, letters and digits only) -> canonical field.
_ALIASES: dict[str, str] = {
    "mmsi": "mmsi",
    "basedatetime": "ts",
    "lat": "lat",
    "latitude": "lat",
    "lon": "lon",
    "longitude": "lon",
    "sog": "sog",
    "cog": "cog",
    "heading": "heading",
    "vesselname": "vessel_name",
    "imo": "imo",
    "callsign": "call_sign",
    "vesseltype": "vessel_type",
    "status": "status",
    "length": "length",
    "width": "width",
    "draft": "draft",
    "cargo": "cargo",
    "transceiverclass": "transceiver",
    "transceiver": "transceiver",
}
_REQUIRED = ("mmsi", "ts")
_GEOMETRY_NAMES = ("geometry", "geom", "wkb_geometry")

# Timestamp layouts seen in AIS exports, as (polars format, Python format) pairs; the first that parses a
# file's first data rows is used for the whole file (explicit, never inferred per value).
_TS_FORMATS: list[tuple[str, str]] = [
    ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S"),
    ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S"),
    ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S.%f"),
    ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S.%f"),
    ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%SZ"),
    ("%Y-%m-%dT%H:%M:%S%.fZ", "%Y-%m-%dT%H:%M:%S.%fZ"),
]
PARQUET_TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.6f"

_LINE_SEPARATOR = "\x1f"  # ASCII unit separator: never in AIS text, so polars hands over whole lines
_QUOTED_COMMA = "\x1e"  # stands in for a comma inside a quoted field until the field is cut out

_MAGIC_ZIP = b"PK\x03\x04"
_MAGIC_ZIP_EMPTY = b"PK\x05\x06"  # an archive with no members is only its end-of-directory record
_MAGIC_ZSTD = b"\x28\xb5\x2f\xfd"
_MAGIC_GZIP = b"\x1f\x8b"
_MAGIC_PARQUET = b"PAR1"


@dataclass(frozen=True)
class SourceInfo:
    """What `detect_format` learnt from a file's bytes."""

    path: Path
    format: AisFormat
    container: str  # plain, zip, zstd, gzip or parquet
    columns: list[str] = field(default_factory=list)  # header / Parquet column names as written
    member: str | None = None  # the CSV inside a zip


@dataclass
class RawSource:
    """A source opened for reading: raw-string frames block by block, and how to type its timestamps.

    CSV sources can rebuild `n_fields` and the `raw_<field>` strings from `raw_line` (`raw_fields`), so batches
    need not carry 17 string columns for rows that turn out clean; Parquet sources keep them (`keep_raw`).
    """

    info: SourceInfo
    ts_format: str
    expected_fields: int
    keep_raw: bool
    blocks: Callable[[int], Iterator[pl.LazyFrame]]  # rows per block -> raw frames (line, raw_line, ...)
    key_blocks: Callable[[int], Iterator[pl.LazyFrame]]  # the same rows, only raw_mmsi/ts/lat/lon
    split: Callable[[FrameT], FrameT] | None = None

    def raw_fields(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` (with `raw_line`) plus `n_fields` and `raw_<field>` (a no-op where they are kept)."""
        if self.keep_raw:
            return frame
        return self.split(frame)


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _header_format(columns: list[str], path: Path) -> AisFormat:
    mapped = {_ALIASES.get(_normalise(c)) for c in columns}
    missing = [f for f in (*_REQUIRED, "lat", "lon") if f not in mapped]
    if missing:
        raise IngestError(
            f"{path}: not a MarineCadastre AIS table (no column for {', '.join(missing)}; header {columns[:20]})"
        )
    if "BaseDateTime" in columns:
        return AisFormat.CSV_LEGACY
    return AisFormat.CSV_2025


def _first_line(stream) -> str:
    raw = stream.readline(1 << 16)
    return raw.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")


def _csv_columns(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def _zip_member(path: Path) -> str:
    with zipfile.ZipFile(path) as zf:
        members = [i for i in zf.infolist() if not i.is_dir()]
        if not members:
            raise IngestError(f"{path}: zip archive is empty")
        csvs = [i for i in members if i.filename.lower().endswith(".csv")] or members
        return max(csvs, key=lambda i: i.file_size).filename


def detect_format(path: str | Path) -> SourceInfo:
    """Recognise the format from magic bytes and the header; raise IngestError naming the file if unreadable."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
        if not magic:
            raise IngestError(f"{path}: file is empty")
        if magic == _MAGIC_PARQUET:
            columns = pq.read_schema(path).names
            if not any(_normalise(c) in _GEOMETRY_NAMES for c in columns):
                _header_format(columns, path)
            elif not any(_ALIASES.get(_normalise(c)) == "mmsi" for c in columns):
                raise IngestError(f"{path}: Parquet file has geometry but no MMSI column ({columns[:20]})")
            return SourceInfo(path, AisFormat.GEOPARQUET_2024, "parquet", columns)
        container = {_MAGIC_ZIP: "zip", _MAGIC_ZIP_EMPTY: "zip", _MAGIC_ZSTD: "zstd"}.get(
            magic, "gzip" if magic[:2] == _MAGIC_GZIP else "plain"
        )
        member = _zip_member(path) if container == "zip" else None
        probe = SourceInfo(path, AisFormat.CSV_LEGACY, container, [], member)
        with _open_stream(probe) as fh:
            columns = _csv_columns(_first_line(fh))
        return SourceInfo(path, _header_format(columns, path), container, columns, member)
    except IngestError:
        raise
    except Exception as exc:  # OSError, BadZipFile, ZstdError, pyarrow's errors...: all mean "cannot read it"
        raise IngestError(f"cannot read AIS file {path}: {type(exc).__name__}: {exc}") from exc


@contextmanager
def _open_stream(info: SourceInfo) -> Iterator[io.BufferedIOBase]:
    """The file's CSV bytes as a buffered stream, decompressing zip / zstd / gzip on the fly."""
    with ExitStack() as stack:
        if info.container == "zip":
            archive = stack.enter_context(zipfile.ZipFile(info.path))
            yield stack.enter_context(archive.open(info.member))
        elif info.container == "zstd":
            raw = stack.enter_context(info.path.open("rb"))
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_size=1 << 20)
            yield stack.enter_context(io.BufferedReader(reader, buffer_size=1 << 20))
        elif info.container == "gzip":
            yield stack.enter_context(gzip.open(info.path, "rb"))
        else:
            yield stack.enter_context(info.path.open("rb"))


_LINE_OPTIONS = dict(
    has_header=False,
    separator=_LINE_SEPARATOR,
    quote_char=None,
    schema={"raw_line": pl.String},
    encoding="utf8-lossy",
    truncate_ragged_lines=True,
    raise_if_empty=False,
    extra_columns="ignore",
)


def _line_blocks(info: SourceInfo, block_bytes: int) -> Iterator[tuple[bytes, int, int]]:
    """(bytes of whole lines, number of its first line, number of lines), block by block; line 1 is the header."""
    try:
        with _open_stream(info) as fh:
            fh.readline()
            line_no, rest = 2, b""
            while True:
                chunk = fh.read(block_bytes)
                data = rest + chunk
                cut = len(data) if not chunk else data.rfind(b"\n") + 1
                if chunk and cut == 0:
                    rest = data
                    continue
                block, rest = data[:cut], data[cut:]
                if block:
                    n = block.count(b"\n") + (not block.endswith(b"\n"))
                    yield block, line_no, n
                    line_no += n
                if not chunk:
                    return
    except Exception as exc:  # a broken archive or stream shows up only while reading it
        raise IngestError(f"cannot read AIS file {info.path}: {type(exc).__name__}: {exc}") from exc


def _lines(block: bytes, line_no: int, n: int) -> pl.LazyFrame:
    """(line, raw_line) of one block, lazily. Every physical line is one row (a blank line is a null row); the
    line numbers are as long as the newline count, so a line lost or merged by the parser fails the query."""
    return pl.scan_csv(block, **_LINE_OPTIONS).select(
        pl.int_range(line_no, line_no + n, dtype=pl.Int64).alias("line"), "raw_line"
    )


def sniff_ts_format(samples: list[str]) -> str:
    """The known timestamp layout that parses most of the samples (the ISO 'T' layout when none parses)."""
    values = [s for s in samples if s]

    def parses(python_fmt: str) -> int:
        count = 0
        for value in values:
            try:
                datetime.strptime(value, python_fmt)
                count += 1
            except ValueError:
                pass
        return count

    scores = [parses(python_fmt) for _, python_fmt in _TS_FORMATS]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return _TS_FORMATS[best][0] if scores[best] else _TS_FORMATS[0][0]


def _csv_ts_samples(info: SourceInfo, ts_index: int, n: int = 20) -> list[str]:
    """Timestamps of the first data lines; a line that is not valid CSV (a stray CR inside quotes) is skipped
    here and quarantined by the ingest."""
    samples: list[str] = []
    try:
        with _open_stream(info) as fh:
            fh.readline()
            for raw in fh:
                try:
                    fields = _csv_columns(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
                except csv.Error:
                    continue
                if len(fields) > ts_index:
                    samples.append(fields[ts_index])
                if len(samples) >= n:
                    break
    except Exception as exc:
        raise IngestError(f"cannot read AIS file {info.path}: {type(exc).__name__}: {exc}") from exc
    return samples


def _unquote_lines(lines: pl.Series) -> pl.Series:
    """Rewrite the rare lines with quotes so that a plain split on ',' cuts them into the right fields.

    Quoted fields lose their quotes ("" becomes ") and their commas become a stand-in restored after the split.
    A line that is not valid CSV is left as it is and fails the field count downstream.
    """
    has_quote = lines.str.contains('"', literal=True).fill_null(False)
    if not has_quote.any():
        return lines
    index = has_quote.arg_true()
    fixed = []
    for line in lines.gather(index).to_list():
        try:
            fields = next(csv.reader([line]), [])
            fixed.append(",".join(f.replace(",", _QUOTED_COMMA) for f in fields))
        except csv.Error:
            fixed.append(line)
    out = lines.clone()
    out.scatter(index, pl.Series(fixed, dtype=pl.String))
    return out


def _line_splitter(columns: list[str]) -> Callable[[FrameT], FrameT]:
    """A function adding `n_fields` and the `raw_<field>` strings, cut from `raw_line`, to a (lazy) frame."""
    positions = {_ALIASES.get(_normalise(c)): i for i, c in enumerate(columns)}

    def split(frame: FrameT) -> FrameT:
        parts = pl.col("_parts")
        fields = [parts.list.len().cast(pl.Int32).alias("n_fields")]
        for name in RAW_FIELDS:
            if name not in positions:
                fields.append(pl.lit(None, dtype=pl.String).alias(f"raw_{name}"))
                continue
            value = parts.list.get(positions[name], null_on_oob=True)
            if name in ("vessel_name", "call_sign", "imo"):
                value = value.str.replace_all(_QUOTED_COMMA, ",", literal=True)
            fields.append(value.alias(f"raw_{name}"))
        unquoted = pl.col("raw_line").map_batches(_unquote_lines, return_dtype=pl.String, is_elementwise=True)
        return frame.with_columns(_parts=unquoted.str.split(",")).with_columns(fields).drop("_parts")

    return split


def _csv_source(info: SourceInfo) -> RawSource:
    split = _line_splitter(info.columns)
    positions = {_ALIASES.get(_normalise(c)): i for i, c in enumerate(info.columns)}
    # The duplicate-key pre-pass only needs the leading fields: cut each line once, not into all 17 pieces.
    key_fields = ("mmsi", "ts", "lat", "lon")
    width = max(positions[f] for f in key_fields) + 2
    head = (
        pl.col("raw_line")
        .map_batches(_unquote_lines, return_dtype=pl.String, is_elementwise=True)
        .str.splitn(",", width)
    )

    def blocks(rows: int) -> Iterator[pl.LazyFrame]:
        for block in _line_blocks(info, _block_bytes(rows)):
            yield split(_lines(*block)).select(
                "line", "raw_line", "n_fields", *(f"raw_{f}" for f in RAW_FIELDS)
            )

    def key_blocks(rows: int) -> Iterator[pl.LazyFrame]:
        for block in _line_blocks(info, _block_bytes(rows)):
            yield (
                _lines(*block)
                .select(head.alias("_head"))
                .select(
                    pl.col("_head").struct.field(f"field_{positions[f]}").alias(f"raw_{f}")
                    for f in key_fields
                )
            )

    ts_format = sniff_ts_format(_csv_ts_samples(info, positions["ts"]))
    return RawSource(info, ts_format, len(info.columns), False, blocks, key_blocks, split)


def _block_bytes(rows: int) -> int:
    """Bytes per read block for about `rows` lines (MarineCadastre lines are ~100 bytes)."""
    return max(1 << 20, rows * 100)


def wkb_point_exprs(geometry: str | pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(lon, lat) from WKB / EWKB / ISO WKB points, either byte order; null for anything else or empty."""
    g = pl.col(geometry) if isinstance(geometry, str) else geometry
    little = g.bin.starts_with(b"\x01")

    def read(offset: pl.Expr | int, dtype: pl.DataType) -> pl.Expr:
        size = 8 if dtype == pl.Float64 else 4
        chunk = g.bin.slice(offset, size)
        return (
            pl.when(little)
            .then(chunk.bin.reinterpret(dtype=dtype, endianness="little"))
            .otherwise(chunk.bin.reinterpret(dtype=dtype, endianness="big"))
        )

    gtype = read(1, pl.UInt32())
    has_srid = (gtype & 0x20000000) != 0
    is_point = (gtype & 0x0FFFFFFF) % 1000 == 1
    offset = pl.when(has_srid).then(pl.lit(9)).otherwise(pl.lit(5))
    x = read(offset, pl.Float64())
    y = read(offset + 8, pl.Float64())
    ok = is_point & x.is_not_nan() & y.is_not_nan()
    return pl.when(ok).then(x), pl.when(ok).then(y)


def _parquet_source(info: SourceInfo) -> RawSource:
    try:
        schema = pl.read_parquet_schema(info.path)
    except Exception as exc:
        raise IngestError(f"cannot read AIS file {info.path}: {type(exc).__name__}: {exc}") from exc
    by_field = {}
    geometry = None
    for name in schema:
        norm = _normalise(name)
        if norm in _GEOMETRY_NAMES:
            geometry = name
        elif _ALIASES.get(norm) and _ALIASES[norm] not in by_field:
            by_field[_ALIASES[norm]] = name
    ts_format = PARQUET_TS_FORMAT
    exprs = []
    for name in RAW_FIELDS:
        source = by_field.get(name)
        if name in ("lat", "lon") and geometry is not None and source is None:
            lon, lat = wkb_point_exprs(geometry)
            exprs.append((lat if name == "lat" else lon).cast(pl.String).alias(f"raw_{name}"))
        elif source is None:
            exprs.append(pl.lit(None, dtype=pl.String).alias(f"raw_{name}"))
        elif name == "ts" and isinstance(schema[source], pl.Datetime):
            ts = pl.col(source)
            if schema[source].time_zone is not None:
                ts = ts.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            exprs.append(ts.dt.to_string(PARQUET_TS_FORMAT).alias("raw_ts"))
        else:
            exprs.append(pl.col(source).cast(pl.String).alias(f"raw_{name}"))
    if "ts" in by_field and schema[by_field["ts"]] == pl.String:
        head = pl.read_parquet(info.path, columns=[by_field["ts"]], n_rows=20)
        ts_format = sniff_ts_format(head.to_series().drop_nulls().to_list())

    def frames(rows: int) -> Iterator[pl.DataFrame]:
        try:
            reader = pq.ParquetFile(info.path)
            offset = 1
            for batch in reader.iter_batches(batch_size=rows):
                frame = pl.from_arrow(batch)
                yield frame.with_columns(
                    pl.int_range(offset, offset + frame.height, dtype=pl.Int64).alias("line")
                )
                offset += frame.height
        except Exception as exc:
            raise IngestError(f"cannot read AIS file {info.path}: {type(exc).__name__}: {exc}") from exc

    def blocks(rows: int) -> Iterator[pl.LazyFrame]:
        for frame in frames(rows):
            yield frame.lazy().select(
                "line",
                pl.lit(None, dtype=pl.String).alias("raw_line"),
                pl.lit(len(RAW_FIELDS), dtype=pl.Int32).alias("n_fields"),
                *exprs,
            )

    def key_blocks(rows: int) -> Iterator[pl.LazyFrame]:
        for lf in blocks(rows):
            yield lf.select("raw_mmsi", "raw_ts", "raw_lat", "raw_lon")

    return RawSource(info, ts_format, len(RAW_FIELDS), True, blocks, key_blocks)


def open_source(path: str | Path) -> RawSource:
    """Open any supported AIS file as a `RawSource` (format from the bytes; IngestError names the file)."""
    info = detect_format(path)
    return _parquet_source(info) if info.container == "parquet" else _csv_source(info)
