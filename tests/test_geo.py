"""Geometry against hand-worked and published reference values.

References: Ed Williams, "Aviation Formulary" worked example LAX (33°57'N 118°24'W) -> JFK (40°38'N 73°47'W):
central angle d = 0.623585 rad (2144 nm with his 1 nm = 1 arc-minute earth), initial true course 1.150035 rad
= 65.89°. JFK-LHR: 2,991 nm on our sphere (IUGG mean radius 6,371.0088 km); Great Circle Mapper gives 2,999 nm
on the WGS-84 ellipsoid, so the spherical figure must sit within ~0.5 % below it.
"""

import math

import numpy as np
import polars as pl
import pytest

from maritime_slm.geo import (
    EARTH_RADIUS_NM,
    NM_PER_DEG_LAT,
    angle_diff_deg,
    dead_reckon,
    flat_leg_nm,
    from_local_xy_nm,
    haversine_nm,
    haversine_nm_expr,
    initial_bearing_deg,
    move_nm,
    to_local_xy_nm,
)

LAX = (33 + 57 / 60, -(118 + 24 / 60))
JFK_FORMULARY = (40 + 38 / 60, -(73 + 47 / 60))
JFK = (40.639751, -73.778925)
LHR = (51.4775, -0.461389)


def test_earth_radius_is_iugg_mean():
    assert EARTH_RADIUS_NM == pytest.approx(6371.0088 / 1.852)
    assert NM_PER_DEG_LAT == pytest.approx(60.0405, abs=1e-4)


def test_haversine_lax_jfk_matches_aviation_formulary():
    d = haversine_nm(*LAX, *JFK_FORMULARY)
    assert d / EARTH_RADIUS_NM == pytest.approx(0.623585, abs=2e-6)
    assert d == pytest.approx(2145.2, abs=0.1)
    # the Formulary's own 1 nm = 1 arc-minute earth gives its published 2144 nm
    assert d / EARTH_RADIUS_NM * 180 * 60 / math.pi == pytest.approx(2144, abs=0.5)


def test_haversine_jfk_lhr():
    d = haversine_nm(*JFK, *LHR)
    assert d == pytest.approx(2991.07, abs=0.1)
    assert 0 < (2999 - d) / 2999 < 0.005  # ellipsoidal reference, spherical model


def test_haversine_simple_cases():
    assert haversine_nm(0, 0, 1, 0) == pytest.approx(NM_PER_DEG_LAT)
    assert haversine_nm(0, 0, 0, 1) == pytest.approx(NM_PER_DEG_LAT)  # equator
    assert haversine_nm(60, 0, 60, 1) == pytest.approx(NM_PER_DEG_LAT / 2, rel=1e-4)  # ~cos 60
    assert haversine_nm(10, 20, 10, 20) == 0.0
    assert haversine_nm(0, 179.99, 0, -179.99) == pytest.approx(0.02 * NM_PER_DEG_LAT, rel=1e-6)
    assert haversine_nm(0, 0, 0, 180) == pytest.approx(math.pi * EARTH_RADIUS_NM)
    assert isinstance(haversine_nm(0, 0, 1, 1), float)


def test_initial_bearing():
    assert initial_bearing_deg(*LAX, *JFK_FORMULARY) == pytest.approx(math.degrees(1.150035), abs=1e-3)
    assert initial_bearing_deg(0, 0, 1, 0) == pytest.approx(0.0)
    assert initial_bearing_deg(0, 0, 0, 1) == pytest.approx(90.0)
    assert initial_bearing_deg(0, 0, -1, 0) == pytest.approx(180.0)
    assert initial_bearing_deg(0, 0, 0, -1) == pytest.approx(270.0)
    assert initial_bearing_deg(0, 179.5, 0, -179.5) == pytest.approx(90.0)  # across the antimeridian


def test_vectorised_matches_scalar():
    rng = np.random.default_rng(1)
    lat1, lat2 = rng.uniform(-70, 70, (2, 50))
    lon1, lon2 = rng.uniform(-180, 180, (2, 50))
    d = haversine_nm(lat1, lon1, lat2, lon2)
    b = initial_bearing_deg(lat1, lon1, lat2, lon2)
    assert d.shape == b.shape == (50,)
    for i in range(50):
        assert d[i] == pytest.approx(haversine_nm(lat1[i], lon1[i], lat2[i], lon2[i]), rel=1e-12)
        assert b[i] == pytest.approx(initial_bearing_deg(lat1[i], lon1[i], lat2[i], lon2[i]), rel=1e-12)
    assert np.isnan(haversine_nm(np.array([np.nan]), 0, 0, 0))[0]


def test_polars_haversine_matches_numpy():
    rng = np.random.default_rng(2)
    df = pl.DataFrame({c: rng.uniform(-60, 60, 100) for c in ("a", "b", "c", "d")})
    got = df.select(d=haversine_nm_expr(pl.col("a"), pl.col("b"), pl.col("c"), pl.col("d")))["d"].to_numpy()
    np.testing.assert_allclose(got, haversine_nm(df["a"], df["b"], df["c"], df["d"]), rtol=1e-12)


def test_local_projection_round_trip_and_accuracy():
    x, y = to_local_xy_nm(40.1, -69.9, 40.0, -70.0)
    assert y == pytest.approx(0.1 * NM_PER_DEG_LAT)
    assert x == pytest.approx(0.1 * NM_PER_DEG_LAT * math.cos(math.radians(40.0)))
    lat, lon = from_local_xy_nm(x, y, 40.0, -70.0)
    assert (lat, lon) == (pytest.approx(40.1), pytest.approx(-69.9))
    # within 20 nm of an origin at 45 deg the flat distance matches the great circle to ~0.1 %
    rng = np.random.default_rng(3)
    bearing, dist = rng.uniform(0, 360, 200), rng.uniform(1, 20, 200)
    xs, ys = dist * np.sin(np.radians(bearing)), dist * np.cos(np.radians(bearing))
    la, lo = from_local_xy_nm(xs, ys, 45.0, -125.0)
    np.testing.assert_allclose(haversine_nm(45.0, -125.0, la, lo), dist, rtol=2e-3)
    # antimeridian: x stays small
    assert to_local_xy_nm(0.0, -179.99, 0.0, 179.99)[0] == pytest.approx(0.02 * NM_PER_DEG_LAT)


def test_dead_reckon_and_angle_diff():
    lat, lon = dead_reckon(0.0, 0.0, 12.0, 90.0, 30.0)  # 6 nm east at the equator
    assert lat == pytest.approx(0.0, abs=1e-12)
    assert lon == pytest.approx(6.0 / NM_PER_DEG_LAT)
    assert angle_diff_deg(350, 10) == pytest.approx(20)
    assert angle_diff_deg(0, 180) == pytest.approx(180)
    assert angle_diff_deg(90, 90) == 0.0


@pytest.mark.parametrize("lat", [25.0, 47.5, 60.0])
def test_the_simulators_legs_invert_its_moves_and_agree_with_the_great_circle(lat):
    """The simulator moves on this flat earth and labels encounters with `flat_leg_nm`; the facts measure on the
    sphere: over a 20 nm leg they must agree, or a simulated 'close' pair is not close to the facts."""
    brg = np.array([0.0, 45.0, 135.0, 270.0])
    to_lat, to_lon = move_nm(lat, -70.0, brg, 20.0)
    dist, back = flat_leg_nm(lat, -70.0, to_lat, to_lon)
    assert dist == pytest.approx(20.0, rel=2e-3)
    assert back == pytest.approx(brg, abs=0.2)
    assert haversine_nm(lat, -70.0, to_lat, to_lon) == pytest.approx(20.0, rel=2e-3)
