"""Per-vessel tracks: time-ordered reports, segments split at reporting gaps, step distance and implied speed.

Everything is a polars expression over the whole frame (sorted by mmsi, ts; previous-fix values by `shift`
masked at vessel boundaries), so a day of 5-10 M reports is one vectorised pass, never a Python loop.
"""

from __future__ import annotations

from typing import TypeVar

import polars as pl

from maritime_slm.geo import haversine_nm_expr

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

TRACK_COLUMNS = ["dt_min", "step_nm", "implied_kn", "segment"]


def prev(col: str) -> pl.Expr:
    """Value of `col` at the vessel's previous report; null on its first report (frame sorted by mmsi, ts)."""
    return pl.when(pl.col("mmsi") == pl.col("mmsi").shift(1)).then(pl.col(col).shift(1))


def minutes_between(start: str | pl.Expr, end: str | pl.Expr) -> pl.Expr:
    """Float minutes from `start` to `end` (datetime columns or expressions), to the microsecond."""
    start = pl.col(start) if isinstance(start, str) else start
    end = pl.col(end) if isinstance(end, str) else end
    return (end - start).dt.total_microseconds().cast(pl.Float64) / 60e6


FIXED_POINT = 2.0**30  # fixed-point unit of exact means: ~1e-9 degree; speeds (float32) are exact in it


def exact_mean(col: str | pl.Expr) -> pl.Expr:
    """Mean whose bits do not depend on how the rows were chunked, ordered or split over threads.

    Float sums do (polars sums per chunk and morsel), so a partition and the whole frame gave means apart in the
    last bits. Here values are summed as integers in units of 2^-30 (exact for float32 speeds; positions move
    by < 1e-9 degree), then divided once; null for a group of nulls. Exact while a group's sum stays < 2^53.
    """
    x = pl.col(col) if isinstance(col, str) else col
    fixed = (x.cast(pl.Float64) * FIXED_POINT).round().cast(pl.Int64)
    return pl.when(fixed.count() > 0).then(fixed.sum() / fixed.count() / FIXED_POINT)


def by_vessel_and_time(points: Frame) -> Frame:
    """The rows stably sorted by (mmsi, ts). Reports mostly arrive in time order (a daily file, the days of a
    vessel bucket), and then a stable sort by MMSI alone is that order at a third of the cost: it is checked,
    and the rows sorted by time too only where some vessel's reports are not in time order."""
    if isinstance(points, pl.LazyFrame):
        return points.sort(["mmsi", "ts"], maintain_order=True)
    by_vessel = points.sort("mmsi", maintain_order=True)
    backwards = (pl.col("mmsi") == pl.col("mmsi").shift(1)) & (pl.col("ts") < pl.col("ts").shift(1))
    if by_vessel.select(backwards.any()).item():
        return by_vessel.sort(["mmsi", "ts"], maintain_order=True)
    return by_vessel


def build_tracks(points: Frame, gap_minutes: float) -> Frame:
    """Points in the canonical schema -> the same rows sorted by (mmsi, ts) plus track columns.

    - dt_min: minutes since the vessel's previous report (null on its first report)
    - step_nm: great-circle distance from the previous report, nm
    - implied_kn: step_nm / dt, knots; null where dt is 0 (duplicate timestamps) or on the first report
    - segment: per-vessel segment number (UInt32, from 0), incremented after a gap longer than `gap_minutes`,
      so that speeds, loitering and episodes are never computed across a silence.
    """
    dt_min = minutes_between(prev("ts"), pl.col("ts"))
    step_nm = haversine_nm_expr(prev("lat"), prev("lon"), pl.col("lat"), pl.col("lon"))
    new_segment = pl.col("dt_min").is_null() | (pl.col("dt_min") > gap_minutes)
    return (
        by_vessel_and_time(points)
        .with_columns(dt_min=dt_min, step_nm=step_nm)
        .with_columns(
            implied_kn=pl.when(pl.col("dt_min") > 0).then(pl.col("step_nm") / (pl.col("dt_min") / 60.0)),
            segment=(new_segment.cast(pl.UInt32).cum_sum().over("mmsi") - 1),
        )
    )


def segment_summary(tracks: Frame) -> Frame:
    """One row per (mmsi, segment): start, end, duration_min, n_reports, distance_nm, mean_sog_kn.

    distance_nm sums the steps inside the segment (the step into a segment's first report spans the gap and
    is not counted), so it answers "how far did X travel" over continuous reporting.
    """
    return (
        tracks.with_columns(
            _step=pl.when(pl.col("segment") == prev("segment")).then(pl.col("step_nm")).otherwise(0.0),
        )
        .group_by(["mmsi", "segment"], maintain_order=True)
        .agg(
            start=pl.col("ts").first(),
            end=pl.col("ts").last(),
            n_reports=pl.len(),
            distance_nm=pl.col("_step").sum(),
            mean_sog_kn=pl.col("sog").mean(),
        )
        .with_columns(duration_min=minutes_between("start", "end"))
        .select(
            ["mmsi", "segment", "start", "end", "duration_min", "n_reports", "distance_nm", "mean_sog_kn"]
        )
    )
