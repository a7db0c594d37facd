"""Builders for the AIS tests: the shipped sample, small hand-made reports in all three formats, corruption."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_ZIP = ROOT / "data" / "sample" / "AIS_2022_01_03_first99999.zip"
LEGACY_HEADER = (
    "MMSI,BaseDateTime,LAT,LON,SOG,COG,Heading,VesselName,IMO,CallSign,VesselType,Status,"
    "Length,Width,Draft,Cargo,TransceiverClass"
)
SNAKE_HEADER = (
    "mmsi,base_date_time,longitude,latitude,sog,cog,heading,vessel_name,imo,call_sign,vessel_type,status,"
    "length,width,draft,cargo,transceiver"
)

# The same five reports as every format would carry them. None = not available (a sentinel in the ≤2024 CSV).
REPORTS = [
    dict(mmsi=367379190, ts="2024-06-01T00:00:00", lat=30.3706, lon=-88.56408, sog=0.0, cog=336.2, heading=None,
         name="EAGLE", imo="IMO8207721", call="WTD4583", vtype=31, status=0, length=28.0, width=11.0, draft=3.3,
         cargo=52, cls="A"),
    dict(mmsi=338148873, ts="2024-06-01T00:00:05", lat=33.60716, lon=-117.91483, sog=None, cog=None, heading=None,
         name="CAZADOR", imo=None, call=None, vtype=37, status=None, length=14.0, width=None, draft=None,
         cargo=None, cls="B"),
    dict(mmsi=993661234, ts="2024-06-01T00:01:00", lat=40.4, lon=-73.8, sog=0.0, cog=None, heading=None,
         name="NY LIGHTED BUOY 2", imo=None, call=None, vtype=None, status=None, length=None, width=None,
         draft=None, cargo=None, cls="A"),
    dict(mmsi=249853000, ts="2024-06-01T00:22:14", lat=26.07872, lon=-79.71839, sog=15.3, cog=0.0, heading=358.0,
         name="RIVERA, SR", imo="IMO9777943", call="9HA4400", vtype=80, status=0, length=250.0, width=44.0,
         draft=13.3, cargo=80, cls="A"),
    dict(mmsi=366993510, ts="2024-06-01T23:59:59", lat=29.857, lon=-90.06391, sog=12.5, cog=271.0, heading=270.0,
         name='LIL "D"', imo=None, call="WDC2462", vtype=31, status=5, length=33.0, width=8.0, draft=None,
         cargo=90, cls="A"),
]  # fmt: skip

_SENTINEL = {"sog": "102.3", "cog": "360.0", "heading": "511"}


def _csv_field(value) -> str:
    if value is None:
        return ""
    text = f"{value}" if not isinstance(value, float) else repr(value)
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if ("," in text or '"' in text) else text


def legacy_line(r: dict) -> str:
    """A ≤2024 CSV line: sentinels for missing SOG/COG/heading, IMO0000000 for a missing IMO on Class B."""
    values = [r["mmsi"], r["ts"], r["lat"], r["lon"]]
    values += [_SENTINEL[k] if r[k] is None else r[k] for k in ("sog", "cog", "heading")]
    imo = r["imo"] if r["imo"] is not None else ("IMO0000000" if r["cls"] == "B" else None)
    values += [r["name"], imo, r["call"], r["vtype"], r["status"], r["length"], r["width"], r["draft"]]
    values += [r["cargo"], r["cls"]]
    return ",".join(v if isinstance(v, str) and v in _SENTINEL.values() else _csv_field(v) for v in values)


def write_legacy_csv(path: Path, reports=REPORTS) -> Path:
    path.write_text(LEGACY_HEADER + "\n" + "\n".join(legacy_line(r) for r in reports) + "\n")
    return path


def write_csv_zst(path: Path, reports=REPORTS) -> Path:
    """2025+ layout: snake_case, longitude first, a space in the timestamp, nulls as empty fields."""
    lines = [SNAKE_HEADER]
    for r in reports:
        values = [r["mmsi"], r["ts"].replace("T", " "), r["lon"], r["lat"], r["sog"], r["cog"], r["heading"],
                  r["name"], r["imo"], r["call"], r["vtype"], r["status"], r["length"], r["width"], r["draft"],
                  r["cargo"], r["cls"]]  # fmt: skip
        lines.append(",".join(_csv_field(v) for v in values))
    path.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode()))
    return path


def wkb_point(lon: float, lat: float, byte_order: str = "<", srid: int | None = None) -> bytes:
    flag = 1 if byte_order == "<" else 0
    if srid is None:
        return struct.pack(f"{byte_order}BIdd", flag, 1, lon, lat)
    return struct.pack(f"{byte_order}BIIdd", flag, 0x20000001, srid, lon, lat)


def write_geoparquet(path: Path, reports=REPORTS) -> Path:
    """2024 GeoParquet layout: typed columns, a UTC timestamp, WKB geometry (mixed byte orders and EWKB)."""
    orders = ["<", ">", "<", "<", ">"]
    srids = [None, None, 4326, None, None]
    table = pa.table(
        {
            "mmsi": pa.array([r["mmsi"] for r in reports], pa.int64()),
            "base_date_time": pa.array([r["ts"] for r in reports], pa.string())
            .cast(pa.timestamp("us"))
            .cast(pa.timestamp("us", tz="UTC")),
            "sog": pa.array([r["sog"] for r in reports], pa.float32()),
            "cog": pa.array([r["cog"] for r in reports], pa.float32()),
            "heading": pa.array([r["heading"] for r in reports], pa.float32()),
            "vessel_name": pa.array([r["name"] for r in reports], pa.string()),
            "imo": pa.array([r["imo"] for r in reports], pa.string()),
            "call_sign": pa.array([r["call"] for r in reports], pa.string()),
            "vessel_type": pa.array([r["vtype"] for r in reports], pa.int16()),
            "status": pa.array([r["status"] for r in reports], pa.int16()),
            "length": pa.array([r["length"] for r in reports], pa.float32()),
            "width": pa.array([r["width"] for r in reports], pa.float32()),
            "draft": pa.array([r["draft"] for r in reports], pa.float32()),
            "cargo": pa.array([r["cargo"] for r in reports], pa.int16()),
            "transceiver": pa.array([r["cls"] for r in reports], pa.string()),
            "geometry": pa.array(
                [wkb_point(r["lon"], r["lat"], o, s) for r, o, s in zip(reports, orders, srids, strict=True)],
                pa.binary(),
            ),
        }
    )
    table = table.replace_schema_metadata({b"geo": b'{"primary_column": "geometry", "version": "1.0.0"}'})
    pq.write_table(table, path)
    return path


def sample_lines() -> list[str]:
    """The sample CSV's lines (header first), without line ends."""
    with zipfile.ZipFile(SAMPLE_ZIP) as zf, zf.open(zf.namelist()[0]) as fh:
        return io.TextIOWrapper(fh, encoding="utf-8").read().splitlines()


def points_of(out_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(out_dir / "points", hive_partitioning=True)
