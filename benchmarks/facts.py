"""Benchmark: tracks + all events on a synthetic AIS day (default 5 M reports), end to end.

The day is built with numpy alone (no per-row Python): vessels clustered around US port approaches, a mix of
moored, anchored, loitering and under-way traffic with course random walks, irregular report intervals, and
injected anomalies (silences, off-track fixes, status contradicting speed). Run:

    .venv/bin/python benchmarks/facts.py [--rows 5000000] [--vessels 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime

import numpy as np
import polars as pl

from maritime_slm.ais.schema import POINT_SCHEMA
from maritime_slm.config import FactsParams
from maritime_slm.facts.events import (
    close_encounters,
    loitering,
    position_jumps,
    reporting_gaps,
    speed_zone_violations,
    status_inconsistencies,
)
from maritime_slm.facts.tracks import build_tracks
from maritime_slm.geo import NM_PER_DEG_LAT

# approaches to busy US ports (lat, lon): enough overlap for encounters and speed-zone traffic
HUBS = np.array(
    [
        (40.45, -73.85),  # New York
        (38.80, -75.00),  # Delaware Bay
        (36.95, -75.95),  # Chesapeake
        (32.70, -79.75),  # Charleston
        (29.35, -94.70),  # Galveston / Houston
        (33.70, -118.25),  # Los Angeles / Long Beach
        (47.80, -122.45),  # Puget Sound
        (41.30, -71.40),  # Block Island Sound
    ]
)


def synthetic_day(n_rows: int, n_vessels: int, seed: int = 0, day: str = "2024-01-15") -> pl.DataFrame:
    """About `n_rows` reports from `n_vessels` vessels over one UTC day, in the canonical schema."""
    rng = np.random.default_rng(seed)
    per = n_rows // n_vessels
    # irregular report intervals (s), scaled so each vessel's reports span the day
    dt = rng.uniform(2.0, 70.0, (n_vessels, per))
    t = np.cumsum(dt, axis=1)
    t = t / t[:, -1:] * rng.uniform(80_000, 86_399, (n_vessels, 1))
    kind = rng.choice(4, n_vessels, p=[0.30, 0.10, 0.10, 0.50])  # moored, anchored, loitering, under way
    sog0 = np.select([kind == 0, kind == 1, kind == 2], [0.05, 0.2, 1.5], rng.uniform(6.0, 22.0, n_vessels))
    sog = np.clip(sog0[:, None] + rng.normal(0, 0.15 + 0.05 * sog0[:, None], (n_vessels, per)), 0.0, None)
    turn = np.where(kind == 3, 0.5, 8.0)[:, None]
    cog = (
        rng.uniform(0, 360, (n_vessels, 1)) + np.cumsum(rng.normal(0, 1, (n_vessels, per)) * turn, axis=1)
    ) % 360
    step_h = np.diff(t, axis=1, prepend=0.0) / 3600.0
    x = np.cumsum(sog * np.sin(np.radians(cog)) * step_h, axis=1)  # nm east
    y = np.cumsum(sog * np.cos(np.radians(cog)) * step_h, axis=1)  # nm north
    hub = HUBS[rng.integers(0, len(HUBS), n_vessels)]
    lat0 = hub[:, 0] + rng.normal(0, 0.15, n_vessels)
    lon0 = hub[:, 1] + rng.normal(0, 0.2, n_vessels)
    lat = lat0[:, None] + y / NM_PER_DEG_LAT
    lon = lon0[:, None] + x / (NM_PER_DEG_LAT * np.cos(np.radians(lat0[:, None])))
    status = np.select([kind == 0, kind == 1, kind == 2], [5, 1, 7], 0)[:, None].repeat(per, axis=1)
    # anomalies: off-track fixes, anchored/moored vessels that move, silences
    jumps = rng.random((n_vessels, per)) < 2e-4
    lat = lat + jumps * rng.choice([-1, 1], (n_vessels, per)) * rng.uniform(0.05, 0.5, (n_vessels, per))
    moving_anchor = (kind[:, None] <= 1) & (rng.random((n_vessels, per)) < 1e-3)
    sog = np.where(moving_anchor, rng.uniform(3.5, 8.0, (n_vessels, per)), sog)
    keep = np.ones((n_vessels, per), dtype=bool)
    silent = rng.random(n_vessels) < 0.2
    start = rng.integers(0, per - 200, n_vessels)
    length = rng.integers(20, 200, n_vessels)
    cols = np.arange(per)[None, :]
    keep &= ~(silent[:, None] & (cols >= start[:, None]) & (cols < (start + length)[:, None]))

    mmsi = (rng.choice(np.arange(200_000_000, 800_000_000, 1_001), n_vessels, replace=False)).astype(np.int32)
    vessel_type = rng.choice([30, 31, 37, 52, 60, 70, 71, 80, 84, 90], n_vessels).astype(np.int16)
    vlen = rng.uniform(10, 330, n_vessels).astype(np.float32)
    t0 = np.datetime64(datetime.fromisoformat(day).replace(tzinfo=None), "us")
    ts = t0 + (t * 1e6).astype("timedelta64[us]")
    flat = keep.ravel()

    def per_vessel(a):
        return np.repeat(a, per)[flat]

    df = pl.DataFrame(
        {
            "mmsi": per_vessel(mmsi),
            "ts": pl.Series(ts.ravel()[flat]).dt.replace_time_zone("UTC"),
            "lat": lat.ravel()[flat],
            "lon": lon.ravel()[flat],
            "sog": np.round(sog.ravel()[flat], 1).astype(np.float32),
            "cog": np.round(cog.ravel()[flat], 1).astype(np.float32),
            "heading": pl.Series([None], dtype=pl.Float32).extend_constant(None, int(flat.sum()) - 1),
            "vessel_type": per_vessel(vessel_type),
            "status": status.ravel()[flat].astype(np.int8),
            "length": per_vessel(vlen),
            "transceiver": pl.Series(["A"]).extend_constant("A", int(flat.sum()) - 1),
            "station_kind": pl.Series(["ship"]).extend_constant("ship", int(flat.sum()) - 1),
        }
    )
    return df.select(
        [
            pl.col(c).cast(dt) if c in df.columns else pl.lit(None, dtype=dt).alias(c)
            for c, dt in POINT_SCHEMA.items()
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--vessels", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    params = FactsParams()

    t = time.perf_counter()
    points = synthetic_day(args.rows, args.vessels, args.seed)
    print(
        f"synthetic day: {points.height:,} reports, {args.vessels:,} vessels ({time.perf_counter() - t:.1f} s)"
    )

    timings: list[tuple[str, float, int]] = []

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        timings.append((name, time.perf_counter() - t0, out.height))
        return out

    start = time.perf_counter()
    tracks = timed("tracks", lambda: build_tracks(points, params.gap_minutes))
    timed("gaps", lambda: reporting_gaps(tracks, params.gap_minutes))
    timed("jumps", lambda: position_jumps(tracks, params.jump_speed_kn, params.gap_minutes))
    timed("status", lambda: status_inconsistencies(tracks))
    timed("loitering", lambda: loitering(tracks, params.loiter_radius_nm, params.loiter_minutes))
    timed("speed_zones", lambda: speed_zone_violations(tracks))
    timed(
        "encounters",
        lambda: close_encounters(tracks, params.close_encounter_nm, params.cpa_horizon_min),
    )
    total = time.perf_counter() - start
    print(f"{'stage':<12} {'seconds':>8} {'rows out':>10}")
    for name, sec, rows in timings:
        print(f"{name:<12} {sec:>8.2f} {rows:>10,}")
    print(f"{'total':<12} {total:>8.2f}   ({points.height / total / 1e6:.2f} M reports/s)")


if __name__ == "__main__":
    main()
