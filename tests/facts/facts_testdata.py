"""Hand-made AIS points in the canonical schema for the facts tests."""

from datetime import UTC, datetime, timedelta

import polars as pl

from maritime_slm.ais.schema import POINT_SCHEMA

T0 = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)


def points(rows: list[dict]) -> pl.DataFrame:
    """Rows given as dicts with at least mmsi, t (minutes after T0), lat, lon; everything else defaults."""
    full = []
    for r in rows:
        r = dict(r)
        minutes = r.pop("t")
        full.append(
            {
                "ts": T0 + timedelta(minutes=minutes),
                "sog": 10.0,
                "cog": 90.0,
                "heading": None,
                "vessel_type": 70,
                "status": 0,
                "length": 100.0,
                "transceiver": "A",
                "station_kind": "ship",
                **r,
            }
        )
    return pl.DataFrame(full, schema_overrides={k: v for k, v in POINT_SCHEMA.items()}).select(
        [
            pl.col(c).cast(t) if c in full[0] else pl.lit(None, dtype=t).alias(c)
            for c, t in POINT_SCHEMA.items()
        ]
    )
