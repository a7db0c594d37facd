"""Typing and judging raw AIS rows: every row ends up either clean or with exactly one reason code.

Raw strings are cast with `strict=False`; a cast failure is a null where the input was not empty, which is how
an unparseable value is told apart from a missing one without any exception. Not-available sentinels (Heading
511, COG 360, SOG 102.3, IMO0000000) become nulls: they are valid reports without that value. Non-ship MMSIs
(AtoN, SART, ...) are valid AIS and stay, labelled in `station_kind`.

Reasons are checked in the order of `REASONS`; a row gets the first that applies. Exact duplicates are found
after typing (`ingest.py`), because they need the whole file.
"""

from __future__ import annotations

import polars as pl

from maritime_slm.ais.mid import station_kind_expr
from maritime_slm.ais.schema import POINT_COLUMNS, POINT_SCHEMA, RAW_FIELDS

# Reason codes in the order they are checked, with what each means (quality.csv and figure 2 use this order).
REASONS: dict[str, str] = {
    "malformed_line": "wrong number of fields (garbage, truncated or merged line, blank line, broken quoting)",
    "bad_mmsi": "MMSI is not exactly nine digits",
    "bad_timestamp": "timestamp missing or not in the file's timestamp layout",
    "bad_number": "a numeric field that is not empty but does not parse as a finite number of its type",
    "missing_position": "latitude or longitude empty",
    "position_out_of_range": "latitude outside [-90, 90] or longitude outside [-180, 180]",
    "null_island": "position exactly (0, 0)",
    "duplicate": "exact duplicate of an earlier report (same MMSI, time, latitude and longitude)",
}

# Numeric fields: parsed as Float64 first (exact sentinel comparison), then cast to the canonical type.
FLOAT_FIELDS = ["lat", "lon", "sog", "cog", "heading", "length", "width", "draft"]
INT_FIELDS = ["vessel_type", "status", "cargo"]
STRING_FIELDS = ["vessel_name", "imo", "call_sign", "transceiver"]
SENTINELS: dict[str, float] = {"sog": 102.3, "cog": 360.0, "heading": 511.0}
NO_IMO = "IMO0000000"

_MMSI_PATTERN = r"^[0-9]{9}$"


def _raw(name: str) -> pl.Expr:
    return pl.col(f"raw_{name}")


def _present(name: str) -> pl.Expr:
    """The source gave a value (an empty string or a missing field is no value)."""
    return _raw(name).str.len_bytes() > 0


def _failed(name: str) -> pl.Expr:
    return pl.col(f"_v_{name}").is_null() & _present(name)


def key_hash(mmsi: pl.Expr, ts: pl.Expr, lat: pl.Expr, lon: pl.Expr) -> pl.Expr:
    """64-bit hash of the duplicate key (MMSI Int32, time, lat, lon Float64).

    The pre-pass (from raw strings, `key_hash_expr`) and the main pass (from the parsed columns) both hash with
    this one function, so a clean row's hash is the same in both.
    """
    return pl.struct(mmsi.alias("mmsi"), ts.alias("ts"), lat.alias("lat"), lon.alias("lon")).hash(seed=0)


def key_hash_expr(ts_format: str) -> pl.Expr:
    """`key_hash` parsed straight from the raw strings (the duplicate pre-pass needs nothing else)."""
    return key_hash(
        _raw("mmsi").cast(pl.Int32, strict=False),
        _raw("ts").str.strptime(pl.Datetime("us", "UTC"), ts_format, strict=False),
        _raw("lat").cast(pl.Float64, strict=False),
        _raw("lon").cast(pl.Float64, strict=False),
    )


def classify(raw: pl.LazyFrame, ts_format: str, expected_fields: int, keep_raw: bool = True) -> pl.LazyFrame:
    """Raw-string frame (see readers) -> canonical typed columns + `reason` (null = clean, duplicates not yet
    judged) + `line`, `raw_line`, `_key_hash`, and with `keep_raw` also `n_fields` and the raw strings."""
    parsed = raw.with_columns(
        _mmsi_ok=_raw("mmsi").str.contains(_MMSI_PATTERN).fill_null(False),
        _v_ts=_raw("ts").str.strptime(pl.Datetime("us", "UTC"), ts_format, strict=False),
        **{f"_v_{f}": _raw(f).cast(pl.Float64, strict=False) for f in FLOAT_FIELDS},
        **{f"_v_{f}": _raw(f).cast(POINT_SCHEMA[f], strict=False) for f in INT_FIELDS},
    ).with_columns(
        # NaN / inf parse as floats but are not numbers a report can carry: treat them as unparseable.
        **{f"_v_{f}": pl.when(pl.col(f"_v_{f}").is_finite()).then(pl.col(f"_v_{f}")) for f in FLOAT_FIELDS}
    )
    lat, lon = pl.col("_v_lat"), pl.col("_v_lon")
    bad_number = pl.any_horizontal(_failed(f) for f in FLOAT_FIELDS + INT_FIELDS)
    reason = (
        pl.when(pl.col("n_fields").fill_null(0) != expected_fields)
        .then(pl.lit("malformed_line"))
        .when(~pl.col("_mmsi_ok"))
        .then(pl.lit("bad_mmsi"))
        .when(pl.col("_v_ts").is_null())
        .then(pl.lit("bad_timestamp"))
        .when(bad_number)
        .then(pl.lit("bad_number"))
        .when(lat.is_null() | lon.is_null())
        .then(pl.lit("missing_position"))
        .when(~lat.is_between(-90.0, 90.0) | ~lon.is_between(-180.0, 180.0))
        .then(pl.lit("position_out_of_range"))
        .when((lat == 0.0) & (lon == 0.0))
        .then(pl.lit("null_island"))
    )
    typed: dict[str, pl.Expr] = {
        "mmsi": pl.when(pl.col("_mmsi_ok")).then(_raw("mmsi").cast(pl.Int32, strict=False)),
        "ts": pl.col("_v_ts"),
    }
    for f in FLOAT_FIELDS:
        value = pl.col(f"_v_{f}")
        if f in SENTINELS:
            value = pl.when(value != SENTINELS[f]).then(value)
        typed[f] = value.cast(POINT_SCHEMA[f])
    for f in INT_FIELDS:
        typed[f] = pl.col(f"_v_{f}")
    for f in STRING_FIELDS:
        keep = _present(f) & (_raw(f) != NO_IMO) if f == "imo" else _present(f)
        typed[f] = pl.when(keep).then(_raw(f))
    return parsed.select(
        *(typed[c].alias(c) for c in POINT_COLUMNS if c != "station_kind"),
        station_kind_expr(typed["mmsi"]).alias("station_kind"),
        reason.alias("reason"),
        "line",
        "raw_line",
        key_hash(typed["mmsi"], pl.col("_v_ts"), lat, lon).alias("_key_hash"),
        *(["n_fields", *(f"raw_{f}" for f in RAW_FIELDS)] if keep_raw else []),
    )


def describe_rejects(rejects: pl.DataFrame, expected_fields: int) -> pl.Series:
    """A short human-readable `detail` per rejected row (computed on the few rejected rows only)."""

    def quoted(name: str) -> pl.Expr:
        return pl.format("{}='{}'", pl.lit(name), _raw(name).fill_null(""))

    bad_numbers = pl.concat_str(
        [
            pl.when(~_raw(f).cast(pl.Float64, strict=False).is_finite().fill_null(False) & _present(f)).then(
                quoted(f)
            )
            for f in FLOAT_FIELDS
        ]
        + [
            pl.when(_raw(f).cast(POINT_SCHEMA[f], strict=False).is_null() & _present(f)).then(quoted(f))
            for f in INT_FIELDS
        ],
        separator=" ",
        ignore_nulls=True,
    )
    reason = pl.col("reason")
    detail = (
        pl.when(reason == "malformed_line")
        .then(
            pl.when(pl.col("raw_line").is_null() | (pl.col("raw_line") == ""))
            .then(pl.lit("blank line"))
            .otherwise(pl.format("{} field(s), expected {}", pl.col("n_fields"), pl.lit(expected_fields)))
        )
        .when(reason == "bad_mmsi")
        .then(quoted("mmsi"))
        .when(reason == "bad_timestamp")
        .then(quoted("ts"))
        .when(reason == "bad_number")
        .then(bad_numbers)
        .when(reason.is_in(["missing_position", "position_out_of_range", "null_island"]))
        .then(pl.format("{} {}", quoted("lat"), quoted("lon")))
    )
    return rejects.select(detail.alias("detail")).to_series()
