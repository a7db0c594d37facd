"""Events on small synthetic tracks with known injected anomalies: the exact expected rows."""

import math
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from facts_testdata import T0
from polars.testing import assert_frame_equal

from maritime_slm.config import FactsParams
from maritime_slm.facts.encounters import cpa_tcpa
from maritime_slm.facts.events import (
    _slow_compact_spans,
    close_encounters,
    detect_events,
    encounter_hits,
    loitering,
    position_jumps,
    reporting_gaps,
    snapshot_positions,
    speed_zone_violations,
    status_inconsistencies,
)
from maritime_slm.facts.tracks import build_tracks
from maritime_slm.facts.zones import load_zones
from maritime_slm.geo import NM_PER_DEG_LAT, from_local_xy_nm


def at_min(minutes):
    return T0 + timedelta(minutes=minutes)


def track(mmsi, minutes, x0=0.0, y0=0.0, sog=10.0, cog=90.0, origin=(40.0, -70.0), **extra):
    """Reports of a vessel on a straight line from (x0, y0) nm about `origin` at `sog` along `cog`."""
    c = math.radians(cog)
    rows = []
    for t in minutes:
        d = sog * t / 60.0
        lat, lon = from_local_xy_nm(x0 + d * math.sin(c), y0 + d * math.cos(c), *origin)
        rows.append(dict(mmsi=mmsi, t=t, lat=lat, lon=lon, sog=sog, cog=cog, **extra))
    return rows


def tracks_of(make_points, rows, gap_minutes=10.0):
    return build_tracks(make_points(rows), gap_minutes)


# ---------------------------------------------------------------- gaps
def test_reporting_gaps_exact(make_points):
    rows = track(1, [0, 1, 2, 12.5, 13, 40]) + track(2, [0, 10, 20])  # vessel 2: gaps of exactly 10 min
    gaps = reporting_gaps(tracks_of(make_points, rows), gap_minutes=10)
    assert gaps["mmsi"].to_list() == [1, 1]
    assert gaps["start"].to_list() == [at_min(2), at_min(13)]
    assert gaps["end"].to_list() == [at_min(12.5), at_min(40)]
    assert gaps["duration_min"].to_list() == [10.5, 27.0]
    assert gaps["distance_nm"].to_list() == pytest.approx([10.5 / 6, 27 / 6])
    assert gaps["implied_kn"].to_list() == pytest.approx([10.0, 10.0])


# ---------------------------------------------------------------- jumps
def test_position_jumps_exact(make_points):
    rows = track(1, range(7))
    rows[3]["lat"] += 3 / NM_PER_DEG_LAT  # one fix 3 nm off the line: out and back
    slow = track(2, range(6), sog=2.0, cog=0.0, origin=(41.0, -70.0))
    for r in slow[3:]:  # from minute 3 on, shifted 0.5 nm east: 30 kn implied, under 60 but >> 2 kn reported
        r["lon"] += 0.5 / (NM_PER_DEG_LAT * math.cos(math.radians(41.0)))
    gap_ok = track(3, [0], sog=2.0, origin=(42.0, -70.0))
    gap_ok += [
        dict(mmsi=3, t=20, lat=42.0 + 8 / NM_PER_DEG_LAT, lon=-70.0, sog=2.0, cog=0.0)
    ]  # 24 kn, over a gap
    gap_ok += [dict(mmsi=3, t=40, lat=42.0 + 33 / NM_PER_DEG_LAT, lon=-70.0, sog=2.0, cog=0.0)]  # 75 kn
    jitter = [
        dict(mmsi=4, t=k / 6, lat=43.0 + (0.05 * (k % 2)) / NM_PER_DEG_LAT, lon=-70.0, sog=0.0, cog=0.0)
        for k in range(12)
    ]  # 0.05 nm every 10 s = 18 kn implied for a vessel at 0 kn: noise, below min_step_nm
    dup = [
        dict(mmsi=5, t=0, lat=44.0, lon=-70.0),
        dict(mmsi=5, t=0, lat=44.0 + 1 / NM_PER_DEG_LAT, lon=-70.0),
    ]
    tr = tracks_of(make_points, rows + slow + gap_ok + jitter + dup)
    jumps = position_jumps(tr, jump_speed_kn=60, gap_minutes=10)
    got = list(zip(jumps["mmsi"], jumps["start"], jumps["end"], jumps["reason"], strict=True))
    assert got == [
        (1, at_min(2), at_min(3), "implausible_speed"),
        (1, at_min(3), at_min(4), "implausible_speed"),
        (2, at_min(2), at_min(3), "exceeds_reported_sog"),
        (3, at_min(20), at_min(40), "implausible_speed"),
        (5, at_min(0), at_min(0), "duplicate_timestamp"),
    ]
    assert jumps["implied_kn"][2] == pytest.approx(math.hypot(0.5, 2 / 60) * 60, rel=1e-3)
    assert jumps["sog_kn"][2] == 2.0
    assert jumps["implied_kn"][3] == pytest.approx(75.0, rel=1e-6)
    assert jumps["implied_kn"][4] is None


# ---------------------------------------------------------------- status
def test_status_inconsistencies_exact(make_points):
    anchored = [
        dict(mmsi=10, t=t, lat=40.0, lon=-70.0, sog=s, status=1)
        for t, s in enumerate([2.9, 3.0, 3.1, 3.5, 2.0, 4.0])
    ]
    moored = [
        dict(mmsi=11, t=t, lat=41.0, lon=-70.0, sog=s, status=5) for t, s in enumerate([0.5, 1.0, 1.1, 1.2])
    ]
    fine = [dict(mmsi=12, t=t, lat=42.0, lon=-70.0, sog=20.0, status=0) for t in range(3)]
    unknown = [dict(mmsi=13, t=t, lat=43.0, lon=-70.0, sog=20.0, status=None) for t in range(3)]
    switch = [
        dict(mmsi=14, t=0, lat=44.0, lon=-70.0, sog=5.0, status=1),
        dict(mmsi=14, t=1, lat=44.0, lon=-70.0, sog=5.0, status=5),
    ]
    ev = status_inconsistencies(tracks_of(make_points, anchored + moored + fine + unknown + switch))
    got = list(
        zip(ev["mmsi"], ev["status"], ev["start"], ev["end"], ev["n_reports"], ev["max_sog_kn"], strict=True)
    )
    assert got == [
        (14, 1, at_min(0), at_min(0), 1, 5.0),
        (14, 5, at_min(1), at_min(1), 1, 5.0),  # status changed: a new episode
        (10, 1, at_min(2), at_min(3), 2, 3.5),  # 3.0 kn at anchor is consistent, 3.1 is not
        (11, 5, at_min(2), at_min(3), 2, pytest.approx(1.2)),
        (10, 1, at_min(5), at_min(5), 1, 4.0),  # interrupted by a consistent report
    ]
    assert ev["status_label"].to_list()[:4] == ["at anchor", "moored", "at anchor", "moored"]
    assert ev["limit_kn"].to_list()[:4] == [3.0, 1.0, 3.0, 1.0]


# ---------------------------------------------------------------- loitering
def drifting(mmsi, minutes, origin, sog=0.8, status=0):
    """Reports wandering inside a 0.1 nm box."""
    lat0, lon0 = origin
    return [
        dict(
            mmsi=mmsi,
            t=t,
            lat=lat0 + (0.1 * (t % 3) / 2) / NM_PER_DEG_LAT,
            lon=lon0,
            sog=sog,
            cog=0.0,
            status=status,
        )
        for t in minutes
    ]


def test_loitering_exact(make_points):
    rows = (
        drifting(20, range(30), (40.0, -70.0))
        + drifting(21, range(30), (41.0, -70.0), status=1)  # declared at anchor
        + track(22, range(30), origin=(42.0, -70.0))  # under way
        + drifting(23, range(15), (43.0, -70.0))  # 14 minutes only
        + drifting(25, range(16), (45.0, -70.0))  # exactly 15 minutes
    )
    # vessel 24 steams east at 10 kn until minute 10, then stops where it is
    moving = track(24, range(11), origin=(44.0, -70.0))
    stop = moving[-1]
    moving += [dict(stop, t=t, sog=0.3) for t in range(11, 41)]
    ev = loitering(tracks_of(make_points, rows + moving), radius_nm=0.5, minutes=15, max_sog_kn=3.0)
    got = list(zip(ev["mmsi"], ev["start"], ev["end"], ev["n_reports"], strict=True))
    assert got == [
        (20, at_min(0), at_min(29), 30),
        (25, at_min(0), at_min(15), 16),
        (24, at_min(11), at_min(40), 30),
    ]
    assert ev["duration_min"].to_list() == [29.0, 15.0, 29.0]
    assert ev["extent_nm"][0] == pytest.approx(0.05, abs=0.01)
    assert ev["mean_sog_kn"].to_list() == pytest.approx([0.8, 0.8, 0.3])


def test_slow_transit_is_not_loitering(make_points):
    """1.5 kn in a straight line: each 15-min window spans 0.375 nm (inside a 0.5 nm circle), but over the
    hour the vessel covers 1.5 nm, so the run as a whole does not stay within 0.5 nm of one spot."""
    slow = track(26, range(61), sog=1.5, cog=45.0, origin=(40.0, -70.0))
    assert loitering(tracks_of(make_points, slow), radius_nm=0.5, minutes=15).height == 0
    # the same vessel at 0.5 kn covers 0.5 nm in the hour: within 0.25 nm of its mean position
    crawl = track(27, range(61), sog=0.5, cog=45.0, origin=(40.0, -70.0))
    ev = loitering(tracks_of(make_points, crawl), radius_nm=0.5, minutes=15)
    assert (ev["start"].to_list(), ev["end"].to_list()) == ([at_min(0)], [at_min(60)])
    assert ev["extent_nm"][0] == pytest.approx(0.25, rel=1e-3)


def test_loitering_respects_segments(make_points):
    """Two 10-minute dwells split by a 30-minute silence are not a 40-minute loiter."""
    rows = drifting(30, list(range(10)) + list(range(40, 50)), (40.0, -70.0))
    assert loitering(tracks_of(make_points, rows), radius_nm=0.5, minutes=15).height == 0


def _spans_over_every_report(rows: pl.LazyFrame, window_s: int, radius_nm: float, max_sog_kn: float):
    """The loitering candidates by definition: each report's window statistics over all its segment's reports."""
    grp = ["mmsi", "segment"]

    def roll(col, how):
        expr = getattr(pl.col(col).cast(pl.Float64), f"rolling_{how}_by")
        return expr("ts", window_size=f"{window_s}s", closed="both").over(grp)

    lat_mid = ((pl.col("_lat_max") + pl.col("_lat_min")) / 2).radians().cos()
    half_diag = (
        ((pl.col("_lat_max") - pl.col("_lat_min")) * NM_PER_DEG_LAT) ** 2
        + ((pl.col("_lon_max") - pl.col("_lon_min")) * NM_PER_DEG_LAT * lat_mid) ** 2
    ).sqrt() / 2
    flagged = (
        rows.with_columns(
            **{f"_{c}_{how}": roll(c, how) for c in ("lat", "lon") for how in ("min", "max")},
            _sog_max=roll("sog", "max"),
            _win_row=roll("_row", "min").cast(pl.Int64),
        )
        .filter(
            (half_diag <= radius_nm)
            & (pl.col("_sog_max").is_null() | (pl.col("_sog_max") <= max_sog_kn))
            & ~pl.col("status").is_in([1, 5]).fill_null(False)
        )
        .collect()
    )
    spans = []  # consecutive flagged rows, each reaching back to its window's first row, merged where they touch
    for mmsi, segment, row, first in flagged.select("mmsi", "segment", "_row", "_win_row").iter_rows():
        if spans and spans[-1][:2] == [mmsi, segment] and first <= spans[-1][3] + 1:
            spans[-1][2], spans[-1][3] = min(spans[-1][2], first), row
        else:
            spans.append([mmsi, segment, first, row])
    return [(first, last) for _, _, first, last in spans]


@pytest.mark.parametrize("seed", range(4))
def test_loitering_candidates_equal_the_statistics_over_every_report(make_points, seed):
    """The candidates computed over slow reports only are those of every report's own window, on tracks built to
    hit the edges: fast reports exactly one window before a slow one or at its very time, repeated times, null
    and boundary speeds, declared moorings, gaps that split segments."""
    rng = np.random.default_rng(seed)
    rows = []
    for mmsi in range(1, 7):
        t = 0.0
        for _ in range(160):
            t += float(rng.choice([0.0, 0.5, 1.0, 2.0, 5.0, 15.0, 25.0]))  # 15: one window; 25: a gap
            sog = rng.choice([0.0, 1.0, 3.0, 3.0001, 8.0, np.nan], p=[0.3, 0.25, 0.15, 0.05, 0.15, 0.1])
            rows.append(
                dict(
                    mmsi=mmsi,
                    t=t,
                    lat=40.0 + float(rng.normal(0, 0.002)),
                    lon=-70.0 + float(rng.normal(0, 0.002)),
                    sog=None if np.isnan(sog) else float(sog),
                    status=int(rng.choice([0, 0, 0, 1, 5])),
                )
            )
    tracks = tracks_of(make_points, rows)
    table = tracks.with_row_index("_row").select(
        "_row", "mmsi", "segment", "ts", "lat", "lon", "sog", "status"
    )
    for window_min, radius in ((15, 0.5), (5, 0.2)):
        got = _slow_compact_spans(table.lazy(), window_min * 60, radius, 3.0)
        expected = _spans_over_every_report(table.lazy(), window_min * 60, radius, 3.0)
        assert len(expected) > 3
        assert list(zip(got["first_row"], got["last_row"], strict=True)) == expected


# ---------------------------------------------------------------- speed zones
NY_OCEAN = (40.35, -73.85)  # inside the 20 nm New York/New Jersey SMA, seaward of the COLREGS line
NY_UPPER_BAY = (40.65, -74.05)  # within 20 nm of the centre but inside the harbour: excluded


def zone_rows(mmsi, minutes, where, sog=15.0, length=100.0, day=None):
    lat, lon = where
    rows = [dict(mmsi=mmsi, t=t, lat=lat, lon=lon, sog=sog, cog=0.0, length=length) for t in minutes]
    if day is not None:
        for r in rows:
            r["t"] += (day - T0).total_seconds() / 60
    return rows


def test_speed_zone_violations_exact(make_points):
    rows = (
        zone_rows(50, range(3), NY_OCEAN)  # violation, 3 reports
        + zone_rows(51, range(3), NY_OCEAN, length=15.0)  # under 65 ft: rule does not apply
        + zone_rows(52, range(3), NY_OCEAN, sog=10.0)  # exactly at the limit
        + zone_rows(53, range(3), NY_UPPER_BAY)  # inside the COLREGS line
        + zone_rows(54, range(3), NY_OCEAN, length=None)  # unknown length: not judged
        + zone_rows(55, range(3), NY_OCEAN, day=T0.replace(month=6))  # out of season
    )
    slowing = zone_rows(56, range(5), NY_OCEAN)
    slowing[2]["sog"] = 8.0  # slows down once: two episodes
    ev = speed_zone_violations(tracks_of(make_points, rows + slowing))
    got = list(zip(ev["mmsi"], ev["zone_id"], ev["start"], ev["end"], ev["n_reports"], strict=True))
    assert got == [
        (50, "sma_mid_new_york", at_min(0), at_min(2), 3),
        (56, "sma_mid_new_york", at_min(0), at_min(1), 2),
        (56, "sma_mid_new_york", at_min(3), at_min(4), 2),
    ]
    assert ev["max_sog_kn"][0] == 15.0 and ev["speed_limit_kn"][0] == 10.0
    assert ev["regulation"][0].startswith("50 CFR 224.105")


def test_speed_zone_season_wraps_the_new_year(make_points):
    nov1 = T0.replace(year=2023, month=11, day=1, hour=0)
    dec31, apr30, may1 = (
        T0.replace(year=2023, month=12, day=31),
        T0.replace(month=4, day=30),
        T0.replace(month=5, day=1),
    )
    rows = []
    for i, day in enumerate([nov1, dec31, apr30, may1, T0.replace(year=2023, month=10, day=31, hour=23)]):
        rows += zone_rows(60 + i, [0], NY_OCEAN, day=day)
    ev = speed_zone_violations(tracks_of(make_points, rows))
    assert sorted(ev["mmsi"].to_list()) == [60, 61, 62]


def test_no_zones_gives_empty_frame(make_points):
    ev = speed_zone_violations(tracks_of(make_points, zone_rows(50, range(3), NY_OCEAN)), zones=[])
    assert ev.height == 0 and "zone_id" in ev.columns


# ---------------------------------------------------------------- close encounters
def encounter_rows():
    r = []
    # head-on, 6.5 nm apart, 12 kn each: closest at 16.25 min
    r += track(4, range(15), 0, 0, 12, 0, origin=(39.0, -72.0))
    r += track(5, range(15), 0, 6.5, 12, 180, origin=(39.0, -72.0))
    # crossing on a collision course: 7 on 6's starboard bow, both reach (0, 4) at minute 20
    r += track(6, range(15), 0, 0, 12, 0, origin=(38.0, -72.0))
    r += track(7, range(15), 4, 4, 12, 270, origin=(38.0, -72.0))
    # overtaking: 12 at 15 kn, 2 nm astern of 13 at 10 kn, 0.1 nm to port of her track
    r += track(12, range(15), -0.1, 0, 15, 0, origin=(37.0, -72.0))
    r += track(13, range(15), 0, 2, 10, 0, origin=(37.0, -72.0))
    # moored neighbours with jittery SOG / COG, 0.2 nm apart
    r += [dict(mmsi=8, t=t, lat=36.0, lon=-72.0, sog=0.3, cog=(37 * t) % 360) for t in range(15)]
    r += [
        dict(mmsi=9, t=t, lat=36.0 + 0.2 / NM_PER_DEG_LAT, lon=-72.0, sog=0.3, cog=(91 * t) % 360)
        for t in range(15)
    ]
    # parallel at the same speed, 0.3 nm apart; and a head-on pair too far apart for the horizon
    r += track(10, range(15), 0, 0, 12, 45, origin=(35.0, -72.0)) + track(
        11, range(15), 0.3, 0, 12, 45, origin=(35.0, -72.0)
    )
    r += track(14, range(15), 0, 0, 12, 0, origin=(34.0, -72.0)) + track(
        15, range(15), 0, 30, 12, 180, origin=(34.0, -72.0)
    )
    return r


def test_close_encounters_exact(make_points):
    ev = close_encounters(tracks_of(make_points, encounter_rows()), close_nm=0.5, horizon_min=30, step_min=5)
    by_pair = {
        (a, b): row for a, b, row in zip(ev["mmsi_1"], ev["mmsi_2"], ev.iter_rows(named=True), strict=True)
    }
    assert set(by_pair) == {(4, 5), (6, 7), (12, 13)}
    for row in by_pair.values():
        assert (row["start"], row["end"], row["n_snapshots"], row["ts"]) == (
            at_min(5),
            at_min(15),
            3,
            at_min(5),
        )
    head_on, crossing, overtaking = by_pair[(4, 5)], by_pair[(6, 7)], by_pair[(12, 13)]
    assert (head_on["encounter"], head_on["give_way"], head_on["give_way_mmsi"]) == ("head_on", "both", None)
    assert head_on["distance_nm"] == pytest.approx(4.5, rel=1e-3)
    assert head_on["tcpa_min"] == pytest.approx(11.25, rel=1e-3)
    assert head_on["cpa_nm"] == pytest.approx(0.0, abs=1e-3)
    assert head_on["cpa_time"] == at_min(16.25)
    assert (crossing["encounter"], crossing["give_way"], crossing["give_way_mmsi"]) == (
        "crossing",
        "first",
        6,
    )
    assert crossing["tcpa_min"] == pytest.approx(15.0, rel=1e-3)
    assert (overtaking["encounter"], overtaking["give_way_mmsi"]) == ("overtaking", 12)
    assert overtaking["cpa_nm"] == pytest.approx(0.1, rel=1e-2)
    assert overtaking["tcpa_min"] == pytest.approx(19.0, rel=1e-3)  # (2 - 5 kn * 5 min) / 5 kn
    assert overtaking["min_cpa_nm"] == pytest.approx(0.1, rel=1e-2)


def test_close_encounters_ignore_non_ships(make_points):
    rows = track(4, range(15), 0, 0, 12, 0, origin=(39.0, -72.0))
    rows += track(5, range(15), 0, 6.5, 12, 180, origin=(39.0, -72.0), station_kind="sar_aircraft")
    assert close_encounters(tracks_of(make_points, rows), 0.5, 30).height == 0


def test_close_encounters_match_brute_force(make_points):
    """The grid pre-filter never drops a qualifying pair: compare with all pairs, small cells to stress it."""
    rng = np.random.default_rng(5)
    n = 80
    rows = [
        dict(mmsi=100 + i, t=rng.uniform(0, 4.9), lat=lat, lon=lon, sog=sog, cog=cog)
        for i, (lat, lon, sog, cog) in enumerate(
            zip(
                40 + rng.uniform(0, 0.15, n),
                -70 + rng.uniform(0, 0.2, n),
                rng.choice([0.0, 0.4, 5.0, 12.0, 20.0], n),
                rng.uniform(0, 360, n),
                strict=True,
            )
        )
    ]
    tr = tracks_of(make_points, rows)
    got = close_encounters(tr, close_nm=1.0, horizon_min=20, step_min=5, cell_nm=0.4)
    snaps = snapshot_positions(tr, 5).collect()
    assert snaps.height == n
    i, j = np.triu_indices(n, 1)
    lat, lon, sog, cog = (snaps[c].cast(pl.Float64).to_numpy() for c in ("lat", "lon", "sog", "cog"))
    cpa, tcpa = cpa_tcpa(lat[i], lon[i], sog[i], cog[i], lat[j], lon[j], sog[j], cog[j])
    rel = np.abs(sog[j] * np.exp(1j * np.radians(cog[j])) - sog[i] * np.exp(1j * np.radians(cog[i])))
    ok = (tcpa > 0) & (tcpa <= 20) & (cpa < 1.0) & (rel >= 1.0)
    m = snaps["mmsi"].to_numpy()
    expected = {tuple(sorted((int(m[a]), int(m[b])))) for a, b in zip(i[ok], j[ok], strict=True)}
    assert len(expected) > 5
    assert set(zip(got["mmsi_1"].to_list(), got["mmsi_2"].to_list(), strict=True)) == expected


@pytest.mark.parametrize(("sog", "expected"), [(1.0, 0), (1.1, 1)])
def test_relative_speed_threshold_is_the_definitions_to_the_last_bit(make_points, sog, expected):
    """A 1 kn vessel on course 0.2 closing on a stopped one: |v2 - v1| in complex form is 0.9999999999999999 kn
    (hypot of the components gives 1.0; so for 837 of the 3,600 courses in tenths of a degree), so by
    `close_encounters`' rule (>= 1 kn) it is not an encounter; at 1.1 kn it is. Pins the rule's arithmetic: the
    facts must not move when the code is made faster, and 1 kn beside 0 kn is common in real AIS."""
    cog = 0.2
    rows = track(1, range(15), 0, 0, sog, cog, origin=(41.0, -71.0))
    rows += track(2, range(15), 0, sog * 20 / 60, 0.0, 90.0, origin=(41.0, -71.0))  # where 1 is at minute 20
    stored = np.array([cog], dtype=np.float32).astype(
        np.float64
    )  # COG is stored as float32; arrays, as the code
    assert np.abs(sog * np.exp(1j * np.radians(stored)))[0] == (0.9999999999999999 if sog == 1.0 else sog)
    assert close_encounters(tracks_of(make_points, rows), 0.5, 30).height == expected


def test_encounter_hits_do_not_depend_on_report_order(make_points):
    """A day partition hands its reports over unsorted: its hits must be those of the (mmsi, ts)-sorted tracks,
    row for row, including which of two reports with the same time a snapshot takes (the later row)."""
    rows = encounter_rows()
    tie = dict(rows[4], lon=rows[4]["lon"] + 0.3 / NM_PER_DEG_LAT)  # vessel 4 again at minute 4, 0.3 nm east
    rows.insert(5, tie)
    points = make_points(rows)
    order = np.random.default_rng(3).permutation(points.height)
    a, b = (int(np.flatnonzero(order == i)[0]) for i in (4, 5))
    order[[a, b]] = order[sorted((a, b))]  # the tie's two rows keep their relative order
    shuffled = points[order]
    params = FactsParams()
    expected = encounter_hits(build_tracks(points, 10.0), params.close_encounter_nm, params.cpa_horizon_min)
    got = encounter_hits(shuffled, params.close_encounter_nm, params.cpa_horizon_min)
    assert expected.height >= 3
    assert_frame_equal(got, expected, check_exact=True)
    at_5 = pl.col("snap") == at_min(5)
    snap = snapshot_positions(shuffled, 5).collect().filter((pl.col("mmsi") == 4) & at_5)
    without_first = snapshot_positions(points[[i for i in range(points.height) if i != 4]], 5).collect()
    assert_frame_equal(snap, without_first.filter((pl.col("mmsi") == 4) & at_5), check_exact=True)
    assert snap.height == 1


# ---------------------------------------------------------------- all together
def test_detect_events_keys_and_params(make_points):
    rows = encounter_rows() + drifting(20, range(30), (30.0, -70.0))
    ev = detect_events(tracks_of(make_points, rows).lazy(), FactsParams())
    assert set(ev) == {"gaps", "jumps", "loitering", "status", "speed_zones", "encounters"}
    assert all(isinstance(v, pl.DataFrame) for v in ev.values())
    assert ev["encounters"].height == 3
    assert 20 in ev["loitering"]["mmsi"].to_list()
    assert len(load_zones()) == 10
