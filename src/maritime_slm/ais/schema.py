"""The canonical AIS point schema every reader maps to and every later stage reads.

Explicit dtypes so that nothing is inferred on big files; units are the MarineCadastre ones
(degrees, knots, degrees true, metres, UTC).
"""

import polars as pl

POINT_SCHEMA: dict[str, pl.DataType] = {
    "mmsi": pl.Int32(),
    "ts": pl.Datetime("us", "UTC"),
    "lat": pl.Float64(),
    "lon": pl.Float64(),
    "sog": pl.Float32(),  # knots; null when not available (102.3 sentinel)
    "cog": pl.Float32(),  # degrees true; null when not available (360 sentinel)
    "heading": pl.Float32(),  # degrees true; null when not available (511 sentinel)
    "vessel_name": pl.String(),
    "imo": pl.String(),  # "IMO1234567"; null for IMO0000000 / blank
    "call_sign": pl.String(),
    "vessel_type": pl.Int16(),  # AIS ship-and-cargo type code 0-99
    "status": pl.Int8(),  # navigational status 0-15 (ITU-R M.1371)
    "length": pl.Float32(),  # metres
    "width": pl.Float32(),  # metres
    "draft": pl.Float32(),  # metres
    "cargo": pl.Int16(),
    "transceiver": pl.String(),  # "A" or "B"
    "station_kind": pl.String(),  # ship, aton, craft_associated, sart_mob_epirb, sar_aircraft, other
}

POINT_COLUMNS = list(POINT_SCHEMA)

# The 17 fields every source carries, in the ≤2024 CSV order, under their canonical names ("ts" is
# BaseDateTime / base_date_time). Readers hand these over as raw strings; cleaning types them.
RAW_FIELDS: list[str] = [
    "mmsi",
    "ts",
    "lat",
    "lon",
    "sog",
    "cog",
    "heading",
    "vessel_name",
    "imo",
    "call_sign",
    "vessel_type",
    "status",
    "length",
    "width",
    "draft",
    "cargo",
    "transceiver",
]

# The identity of a report for duplicate detection (an exact duplicate repeats all four).
DEDUP_KEY: list[str] = ["mmsi", "ts", "lat", "lon"]

# A rejected row keeps what the source said, as text, so it can be audited without the raw file.
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "line": pl.Int64(),  # 1-based line in the (decompressed) CSV, header = line 1; row number for Parquet
    "reason": pl.String(),
    "detail": pl.String(),
    "raw_line": pl.String(),  # the whole line for CSV sources; null for Parquet and for duplicates
    **{f"raw_{name}": pl.String() for name in RAW_FIELDS},
}

# One row per MMSI (vessels.parquet): the latest non-null static fields and where the station was seen.
VESSEL_SCHEMA: dict[str, pl.DataType] = {
    "mmsi": pl.Int32(),
    "station_kind": pl.String(),
    "mid": pl.Int16(),
    "flag_state": pl.String(),
    "flag_iso2": pl.String(),
    "vessel_name": pl.String(),
    "imo": pl.String(),
    "call_sign": pl.String(),
    "vessel_type": pl.Int16(),
    "type_group": pl.String(),
    "length": pl.Float32(),
    "width": pl.Float32(),
    "draft": pl.Float32(),
    "cargo": pl.Int16(),
    "transceiver": pl.String(),
    "reports": pl.UInt32(),
    "first_seen": pl.Datetime("us", "UTC"),
    "last_seen": pl.Datetime("us", "UTC"),
}
