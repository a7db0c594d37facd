"""Tracks on small hand-made frames: order, step, implied speed, segments."""

from datetime import timedelta

import polars as pl
import pytest
from facts_testdata import T0

from maritime_slm.facts.tracks import build_tracks, by_vessel_and_time, segment_summary
from maritime_slm.geo import NM_PER_DEG_LAT

# 10 kn along the equator: 1/6 nm per minute = this many degrees of longitude
DLON_10KN_PER_MIN = (10 / 60) / NM_PER_DEG_LAT


def eastbound(mmsi, minutes, lat=0.0):
    return [dict(mmsi=mmsi, t=t, lat=lat, lon=t * DLON_10KN_PER_MIN, sog=10.0, cog=90.0) for t in minutes]


@pytest.mark.parametrize(
    ("minutes", "lat_order"),
    [([0, 1, 1, 2, 1], [1, 3, 0, 2, 4]), ([2, 1, 1, 2, 2], [1, 3, 2, 0, 4])],
    ids=["in-time-order", "out-of-order"],
)
def test_vessel_time_order_is_the_stable_sort_whichever_path(make_points, minutes, lat_order):
    """Reports in time order take the MMSI-only sort, others the full one: both give the stable (mmsi, ts)
    sort, a vessel's reports with the same time (lat 2 and 4, vessel 3) in arrival order."""
    vessels = [3, 1, 3, 1, 3]
    rows = [
        dict(mmsi=m, t=t, lat=float(i), lon=0.0)
        for i, (m, t) in enumerate(zip(vessels, minutes, strict=True))
    ]
    points = make_points(rows)
    expected = points.sort(["mmsi", "ts"], maintain_order=True)
    assert expected["lat"].to_list() == [float(i) for i in lat_order]
    assert by_vessel_and_time(points).equals(expected)
    assert by_vessel_and_time(points.lazy()).collect().equals(expected)


def test_sorted_steps_and_implied_speed(make_points):
    rows = eastbound(2, [0, 1, 2]) + eastbound(1, [3, 0, 1])  # vessels interleaved, times shuffled
    tr = build_tracks(make_points(rows), gap_minutes=10)
    assert tr["mmsi"].to_list() == [1, 1, 1, 2, 2, 2]
    assert tr["ts"].to_list()[:3] == [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=3)]
    assert tr["dt_min"].to_list() == [None, 1.0, 2.0, None, 1.0, 1.0]
    assert tr["step_nm"][0] is None and tr["step_nm"][3] is None  # never across vessels
    assert tr["step_nm"][2] == pytest.approx(2 / 6)
    assert tr["implied_kn"].drop_nulls().to_list() == pytest.approx([10.0] * 4)
    assert tr["segment"].to_list() == [0, 0, 0, 0, 0, 0]
    assert set(tr.columns) >= {"dt_min", "step_nm", "implied_kn", "segment"}


def test_segments_split_at_gaps_strictly_over_threshold(make_points):
    # gaps: 10 min (not over 10), 10.5 min (over), then 30 min (over)
    rows = eastbound(7, [0, 10, 20.5, 21, 51])
    tr = build_tracks(make_points(rows), gap_minutes=10)
    assert tr["segment"].to_list() == [0, 0, 1, 1, 2]
    assert tr["dt_min"].to_list() == [None, 10.0, 10.5, 0.5, 30.0]
    summary = segment_summary(tr)
    assert summary["segment"].to_list() == [0, 1, 2]
    assert summary["n_reports"].to_list() == [2, 2, 1]
    assert summary["duration_min"].to_list() == [10.0, 0.5, 0.0]
    # distance inside segments only: 10 min and 0.5 min at 10 kn
    assert summary["distance_nm"].to_list() == pytest.approx([10 / 6, 0.5 / 6, 0.0])


def test_duplicate_timestamp_has_no_implied_speed(make_points):
    rows = eastbound(3, [0, 1]) + [dict(mmsi=3, t=1, lat=0.5, lon=0.0)]
    tr = build_tracks(make_points(rows), gap_minutes=10)
    assert tr["dt_min"].to_list() == [None, 1.0, 0.0]
    assert tr["implied_kn"][2] is None
    assert tr["step_nm"][2] > 29


def test_lazy_in_lazy_out(make_points):
    lf = make_points(eastbound(1, [0, 1, 2])).lazy()
    out = build_tracks(lf, gap_minutes=10)
    assert isinstance(out, pl.LazyFrame)
    assert out.collect()["implied_kn"].drop_nulls().to_list() == pytest.approx([10.0, 10.0])
