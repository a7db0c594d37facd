"""Vessel classification: AIS ship-type code -> type group, navigational status code -> label, MMSI -> flag.

Scalar functions for facts and answers, polars expressions for whole frames; both read the same tables.
The type-group table (AIS "type of ship and cargo type", ITU-R M.1371 message 5, in MarineCadastre's groups with
the 40-49 high-speed craft kept apart from passenger ships) and the MID -> flag state table belong to ingest
(`maritime_slm.ais.vessels`, `maritime_slm.ais.mid`), which writes them into the vessel table; they are
imported here, not copied, so a fact and the vessel table can never disagree.
"""

from __future__ import annotations

import polars as pl

from maritime_slm.ais.mid import flag_state, flag_state_expr, mid_expr
from maritime_slm.ais.vessels import TYPE_GROUP_BY_CODE, TYPE_GROUPS, type_group_expr

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

# Navigational status, ITU-R M.1371-5 (messages 1, 2, 3).
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


def status_label_expr(col: str | pl.Expr = "status") -> pl.Expr:
    """Polars expression: `status_label` over a column of status codes."""
    expr = pl.col(col) if isinstance(col, str) else col
    return (
        expr.cast(pl.Int64)
        .replace_strict(STATUS_LABELS, default=STATUS_LABELS[15], return_dtype=pl.String)
        .fill_null(STATUS_LABELS[15])
    )
