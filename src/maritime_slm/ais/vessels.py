"""The vessel table: one row per MMSI with its latest static fields, type group, flag state and sightings.

Static fields (name, IMO, call sign, type, dimensions, draught, cargo, class) are taken from the latest report
that carries them, because static data changes (renames, reflagging, draught per voyage) and blanks are common.
Built with one streaming group-by over the clean points, so memory grows with the number of MMSIs, not rows.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from maritime_slm.ais.mid import flag_state_expr, mid_expr, station_kind_expr
from maritime_slm.ais.schema import VESSEL_SCHEMA

STATIC_FIELDS = [
    "vessel_name",
    "imo",
    "call_sign",
    "vessel_type",
    "length",
    "width",
    "draft",
    "cargo",
    "transceiver",
]

# AIS ship-and-cargo type code -> group, the MarineCadastre grouping (the same table as maritime_slm.facts).
TYPE_GROUPS = (
    "fishing",
    "tug_tow",
    "pleasure_sailing",
    "high_speed_craft",
    "passenger",
    "cargo",
    "tanker",
    "other",
)


def _type_table() -> dict[int, str]:
    table = {
        30: "fishing",
        31: "tug_tow",
        32: "tug_tow",
        52: "tug_tow",
        36: "pleasure_sailing",
        37: "pleasure_sailing",
    }
    table.update({code: "high_speed_craft" for code in range(40, 50)})
    table.update({code: "passenger" for code in range(60, 70)})
    table.update({code: "cargo" for code in range(70, 80)})
    table.update({code: "tanker" for code in range(80, 90)})
    return table


TYPE_GROUP_BY_CODE: dict[int, str] = _type_table()


def type_group_expr(code: str | pl.Expr = "vessel_type") -> pl.Expr:
    """Type group of an AIS type-code column; "other" for unlisted and missing codes."""
    expr = pl.col(code) if isinstance(code, str) else code
    return (
        expr.cast(pl.Int64)
        .replace_strict(TYPE_GROUP_BY_CODE, default="other", return_dtype=pl.String)
        .fill_null("other")
    )


def summarize_vessels(points: pl.LazyFrame) -> pl.LazyFrame:
    """Clean points (canonical schema) -> one row per MMSI, typed as `VESSEL_SCHEMA`."""
    latest = [
        pl.col(c).max_by(pl.when(pl.col(c).is_not_null()).then(pl.col("ts"))).alias(c) for c in STATIC_FIELDS
    ]
    return (
        points.group_by("mmsi")
        .agg(
            pl.len().alias("reports"),
            pl.col("ts").min().alias("first_seen"),
            pl.col("ts").max().alias("last_seen"),
            *latest,
        )
        .with_columns(
            station_kind=station_kind_expr("mmsi"),
            mid=mid_expr("mmsi"),
            type_group=type_group_expr("vessel_type"),
        )
        .with_columns(
            flag_state=flag_state_expr("mid"),
            flag_iso2=flag_state_expr("mid", "iso2"),
        )
        .select(pl.col(name).cast(dtype) for name, dtype in VESSEL_SCHEMA.items())
        .sort("mmsi")
    )


def build_vessels(points_dir: str | Path, out_path: str | Path) -> int:
    """Write vessels.parquet from a hive-partitioned points folder; returns the number of vessels."""
    points = pl.scan_parquet(Path(points_dir), hive_partitioning=True)
    table = summarize_vessels(points.select("mmsi", "ts", *STATIC_FIELDS)).collect(engine="streaming")
    table.write_parquet(out_path)
    return table.height
