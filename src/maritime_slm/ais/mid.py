"""What an MMSI says about its station: the kind of station (ITU-R M.585) and the flag state of its MID.

Nine-digit MMSIs that are not ship stations are valid AIS, so ingest keeps them and labels them here rather than
dropping them. The MID (Maritime Identification Digits) -> country table ships as package data (`mid.csv`,
ITU list of MIDs), so flag states work offline.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import polars as pl

STATION_KINDS = ("ship", "aton", "craft_associated", "sart_mob_epirb", "sar_aircraft", "other")


@cache
def mid_table() -> pl.DataFrame:
    """MID -> country and ISO 3166 alpha-2 code (one row per MID, 201-775)."""
    with resources.as_file(resources.files("maritime_slm.ais") / "mid.csv") as path:
        return pl.read_csv(path, schema={"mid": pl.Int16, "country": pl.String, "iso2": pl.String})


def _digit(m: pl.Expr, position: int) -> pl.Expr:
    """The digit at 1-based `position` of a nine-digit number."""
    return (m // 10 ** (9 - position)) % 10


def station_kind_expr(mmsi: str | pl.Expr = "mmsi") -> pl.Expr:
    """Station kind from the MMSI's leading digits (M.585): ship MIDxxxxxx, AtoN 99MIDxxxx,
    craft associated with a parent ship 98MIDxxxx, SART/MOB/EPIRB 970/972/974xxxxxx, SAR aircraft 111MIDxxx."""
    m = (pl.col(mmsi) if isinstance(mmsi, str) else mmsi).cast(pl.Int64)
    first3 = m // 1_000_000
    return (
        pl.when(m.is_between(200_000_000, 799_999_999))
        .then(pl.lit("ship"))
        .when((m // 10_000_000 == 99) & _digit(m, 3).is_between(2, 7))
        .then(pl.lit("aton"))
        .when((m // 10_000_000 == 98) & _digit(m, 3).is_between(2, 7))
        .then(pl.lit("craft_associated"))
        .when(first3.is_in([970, 972, 974]))
        .then(pl.lit("sart_mob_epirb"))
        .when((first3 == 111) & _digit(m, 4).is_between(2, 7))
        .then(pl.lit("sar_aircraft"))
        .when(m.is_not_null())
        .then(pl.lit("other"))
    )


def mid_expr(mmsi: str | pl.Expr = "mmsi") -> pl.Expr:
    """The MID embedded in the MMSI where the station kind has one; null otherwise (and for unknown MIDs)."""
    m = (pl.col(mmsi) if isinstance(mmsi, str) else mmsi).cast(pl.Int64)
    kind = station_kind_expr(m)
    mid = (
        pl.when(kind == "ship")
        .then(m // 1_000_000)
        .when(kind.is_in(["aton", "craft_associated"]))
        .then((m // 10_000) % 1000)
        .when(kind == "sar_aircraft")
        .then((m // 1_000) % 1000)
    )
    known = mid_table()["mid"].cast(pl.Int64).implode()
    return pl.when(mid.is_in(known)).then(mid).cast(pl.Int16)


def flag_state_expr(mid: str | pl.Expr = "mid", field: str = "country") -> pl.Expr:
    """Country (or `iso2`) of a MID column."""
    table = mid_table()
    expr = pl.col(mid) if isinstance(mid, str) else mid
    return expr.replace_strict(
        table["mid"].to_list(), table[field].to_list(), default=None, return_dtype=pl.String
    )


def station_kind(mmsi: int) -> str:
    """Scalar version of `station_kind_expr`, for facts and answers."""
    return pl.select(station_kind_expr(pl.lit(mmsi, dtype=pl.Int64))).item()


def flag_state(mmsi: int) -> str | None:
    """Country of an MMSI's MID, or None when the MMSI carries no (known) MID."""
    return pl.select(flag_state_expr(mid_expr(pl.lit(mmsi, dtype=pl.Int64)))).item()
