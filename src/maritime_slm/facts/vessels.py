"""Vessel classification: AIS ship-type code -> type group, navigational status code -> label, MMSI -> flag.

Scalar functions for facts and answers, polars expressions for whole frames; both read the same tables.
The MID -> flag state table belongs to ingest (`maritime_slm.ais.mid`); it is re-exported here so that every
vessel-profile helper has one home.
"""

from __future__ import annotations

import polars as pl

from maritime_slm.ais.mid import flag_state, flag_state_expr, mid_expr

__all__ = [
    "STATUS_LABELS",
    "TYPE_GROUPS",
    "TYPE_GROUP_BY_CODE",
    "flag_state",
    "flag_state_expr",
    "mid_expr",
    "status_label",
    "status_label_expr",
    "type_group",
    "type_group_expr",
]

# AIS "type of ship and cargo" (ITU-R M.1371, Table 53) grouped the way US AIS analyses usually do
# (MarineCadastre's groups), with the 40-49 high-speed craft kept apart from passenger ships.
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
    table = {30: "fishing", 31: "tug_tow", 32: "tug_tow", 52: "tug_tow", 36: "pleasure_sailing"}
    table[37] = "pleasure_sailing"
    table.update({code: "high_speed_craft" for code in range(40, 50)})
    table.update({code: "passenger" for code in range(60, 70)})
    table.update({code: "cargo" for code in range(70, 80)})
    table.update({code: "tanker" for code in range(80, 90)})
    return table


TYPE_GROUP_BY_CODE: dict[int, str] = _type_table()

# Navigational status, ITU-R M.1371-5 Table 45 (message 1/2/3 field "navigational status").
STATUS_LABELS: dict[int, str] = {
    0: "under way using engine",
    1: "at anchor",
    2: "not under command",
    3: "restricted manoeuvrability",
    4: "constrained by her draught",
    5: "moored",
    6: "aground",
    7: "engaged in fishing",
    8: "under way sailing",
    9: "reserved (HSC)",
    10: "reserved (WIG)",
    11: "power-driven vessel towing astern",
    12: "power-driven vessel pushing ahead or towing alongside",
    13: "reserved",
    14: "AIS-SART, MOB-AIS or EPIRB-AIS active",
    15: "undefined",
}


def type_group(code: int | None) -> str:
    """Type group of an AIS ship-type code; "other" for unlisted codes and for a missing code."""
    if code is None:
        return "other"
    return TYPE_GROUP_BY_CODE.get(int(code), "other")


def status_label(code: int | None) -> str:
    """Label of a navigational status code 0-15; "undefined" for a missing or out-of-range code (as 15)."""
    if code is None:
        return STATUS_LABELS[15]
    return STATUS_LABELS.get(int(code), STATUS_LABELS[15])


def type_group_expr(col: str | pl.Expr = "vessel_type") -> pl.Expr:
    """Polars expression: `type_group` over a column of type codes."""
    expr = pl.col(col) if isinstance(col, str) else col
    return (
        expr.cast(pl.Int64)
        .replace_strict(TYPE_GROUP_BY_CODE, default="other", return_dtype=pl.String)
        .fill_null("other")
    )


def status_label_expr(col: str | pl.Expr = "status") -> pl.Expr:
    """Polars expression: `status_label` over a column of status codes."""
    expr = pl.col(col) if isinstance(col, str) else col
    return (
        expr.cast(pl.Int64)
        .replace_strict(STATUS_LABELS, default=STATUS_LABELS[15], return_dtype=pl.String)
        .fill_null(STATUS_LABELS[15])
    )
