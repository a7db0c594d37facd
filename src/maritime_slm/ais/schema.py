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
