"""The vessel table: one row per MMSI with its latest static fields, type group, flag state and sightings.

Static fields (name, IMO, call sign, type, dimensions, draught, cargo, class) are taken from the latest report
that carries them, because static data changes (renames, reflagging, draught per voyage) and blanks are common.
Each ingest partition summarises its own file (`vessel_partials`); the stage combines those partials, so memory and
the driver's work grow with the number of MMSIs per file, not with rows.
"""

from __future__ import annotations

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


def _carried_at(value: pl.Expr, when: pl.Expr) -> pl.Expr:
    """`when` on the rows that carry `value`, null on the others."""
    return pl.when(value.is_not_null()).then(when)


def _latest(value: pl.Expr, when: pl.Expr) -> pl.Expr:
    """`value` at its latest `when` among the rows that carry it (the largest value on a tie: the same whatever
    the order or the partitioning of the rows)."""
    at = _carried_at(value, when)
    return value.filter(at == at.max()).max()


def vessel_partials(points: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """Some clean points -> one row per MMSI: reports, first and last seen, and each static field with the time of
    the latest report that carried it. Partials of any split of the points combine (`combine_partials`) into
    exactly the table of all of them, so each ingest partition summarises its own file."""
    return (
        points.lazy()
        .group_by("mmsi")
        .agg(
            pl.len().cast(pl.Int64).alias("reports"),
            pl.col("ts").min().alias("first_seen"),
            pl.col("ts").max().alias("last_seen"),
            *(_latest(pl.col(c), pl.col("ts")).alias(c) for c in STATIC_FIELDS),
            *(_carried_at(pl.col(c), pl.col("ts")).max().alias(f"_ts_{c}") for c in STATIC_FIELDS),
        )
    )


def combine_partials(partials: pl.LazyFrame) -> pl.LazyFrame:
    """Partials (`vessel_partials`) of disjoint sets of points -> the partials of their union."""
    return partials.group_by("mmsi").agg(
        pl.col("reports").sum(),
        pl.col("first_seen").min(),
        pl.col("last_seen").max(),
        *(_latest(pl.col(c), pl.col(f"_ts_{c}")).alias(c) for c in STATIC_FIELDS),
        *(pl.col(f"_ts_{c}").max() for c in STATIC_FIELDS),
    )


def vessel_table(partials: pl.LazyFrame) -> pl.LazyFrame:
    """Partials covering all clean points -> the vessel table, one row per MMSI typed as `VESSEL_SCHEMA`."""
    return (
        combine_partials(partials)
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


def summarize_vessels(points: pl.LazyFrame) -> pl.LazyFrame:
    """Clean points (canonical schema) -> one row per MMSI, typed as `VESSEL_SCHEMA`."""
    return vessel_table(vessel_partials(points))
