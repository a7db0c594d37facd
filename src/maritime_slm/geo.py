"""Spherical and local flat-earth geometry shared by the simulator and the facts, vectorised over numpy arrays
(and a polars twin of haversine): the ground truth is computed with the geometry the data were simulated in.

Units: degrees for latitude, longitude and angles (true, clockwise from north); nautical miles for distances;
knots for speeds. The earth is a sphere of the IUGG mean radius R1 = 6,371.0088 km = 3,440.07 nm: great-circle
distances differ from the WGS-84 ellipsoid by up to ~0.5 % (JFK-LHR: 2,991 nm here, 2,999 nm on the ellipsoid),
far below what the questions ask for and the same convention every answer is checked against.
"""

from __future__ import annotations

import numpy as np
import polars as pl

EARTH_RADIUS_KM = 6371.0088
NM_KM = 1.852
EARTH_RADIUS_NM = EARTH_RADIUS_KM / NM_KM
NM_PER_DEG_LAT = EARTH_RADIUS_NM * np.pi / 180.0  # ~60.04 nm per degree of latitude on the sphere


def _out(x):
    """Plain Python floats for scalar inputs, arrays otherwise: scalar answers read well in facts."""
    return float(x) if np.ndim(x) == 0 else x


def wrap_lon_deg(dlon):
    """Longitude difference folded into [-180, 180): a pair across the antimeridian is close, not 359 deg apart."""
    return (np.asarray(dlon, dtype=float) + 180.0) % 360.0 - 180.0


def haversine_nm(lat1, lon1, lat2, lon2):
    """Great-circle distance in nm between points in degrees (broadcasts; NaN in, NaN out)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(np.asarray(lon2, dtype=float) - np.asarray(lon1, dtype=float))
    h = np.sin(dphi / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2.0) ** 2
    return _out(2.0 * EARTH_RADIUS_NM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def initial_bearing_deg(lat1, lon1, lat2, lon2):
    """Initial great-circle bearing from point 1 to point 2, degrees true in [0, 360); 0 for identical points."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlmb = np.radians(np.asarray(lon2, dtype=float) - np.asarray(lon1, dtype=float))
    y = np.sin(dlmb) * np.cos(p2)
    x = np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dlmb)
    return _out(np.degrees(np.arctan2(y, x)) % 360.0)


def to_local_xy_nm(lat, lon, lat0, lon0):
    """Equirectangular projection about (lat0, lon0): x east, y north, in nm.

    Distances within ~20 nm of the origin agree with the great circle to ~0.1-0.2 % at mid latitudes (less
    when the origin is the pair's mid latitude), which is why CPA/TCPA and other short-range geometry use it.
    """
    x = (
        np.radians(wrap_lon_deg(np.asarray(lon, dtype=float) - lon0))
        * np.cos(np.radians(lat0))
        * EARTH_RADIUS_NM
    )
    y = np.radians(np.asarray(lat, dtype=float) - lat0) * EARTH_RADIUS_NM
    return _out(x), _out(y)


def from_local_xy_nm(x, y, lat0, lon0):
    """Inverse of `to_local_xy_nm`: (lat, lon) in degrees, longitude folded into [-180, 180)."""
    lat = np.asarray(lat0, dtype=float) + np.degrees(np.asarray(y, dtype=float) / EARTH_RADIUS_NM)
    lon = np.asarray(lon0, dtype=float) + np.degrees(
        np.asarray(x, dtype=float) / (EARTH_RADIUS_NM * np.cos(np.radians(lat0)))
    )
    return _out(lat), _out(wrap_lon_deg(lon))


def offset_nm(lat, lon, north_nm, east_nm):
    """The point `north_nm` north and `east_nm` east of (lat, lon) on the local flat earth about it."""
    return from_local_xy_nm(east_nm, north_nm, lat, lon)


def move_nm(lat, lon, bearing_deg, dist_nm):
    """The point `dist_nm` away from (lat, lon) on `bearing_deg` (flat earth; short steps and legs)."""
    b = np.radians(bearing_deg)
    return offset_nm(lat, lon, np.multiply(dist_nm, np.cos(b)), np.multiply(dist_nm, np.sin(b)))


def flat_leg_nm(lat_a, lon_a, lat_b, lon_b):
    """(distance nm, bearing deg) from a to b on a flat earth scaled at their mid latitude: the inverse of
    `move_nm` to within ~0.1 % over the tens of miles a simulated leg or an encounter spans."""
    mid = np.radians((np.asarray(lat_a, dtype=float) + np.asarray(lat_b, dtype=float)) / 2.0)
    east = np.radians(wrap_lon_deg(np.asarray(lon_b, dtype=float) - lon_a)) * np.cos(mid) * EARTH_RADIUS_NM
    north = np.radians(np.asarray(lat_b, dtype=float) - lat_a) * EARTH_RADIUS_NM
    return _out(np.hypot(north, east)), _out(np.degrees(np.arctan2(east, north)) % 360.0)


def velocity_kn(sog_kn, cog_deg):
    """(east, north) velocity components in knots from speed over ground and course over ground."""
    c = np.radians(cog_deg)
    s = np.asarray(sog_kn, dtype=float)
    return _out(s * np.sin(c)), _out(s * np.cos(c))


def dead_reckon(lat, lon, sog_kn, cog_deg, minutes):
    """Position after `minutes` at constant SOG/COG (flat-earth; fine for the short horizons used here)."""
    vx, vy = velocity_kn(sog_kn, cog_deg)
    hours = np.asarray(minutes, dtype=float) / 60.0
    return from_local_xy_nm(np.multiply(vx, hours), np.multiply(vy, hours), lat, lon)


def angle_diff_deg(a, b):
    """Smallest absolute difference between two directions, in [0, 180]."""
    return _out(np.abs((np.asarray(a, dtype=float) - np.asarray(b, dtype=float) + 180.0) % 360.0 - 180.0))


def haversine_nm_expr(lat1: pl.Expr, lon1: pl.Expr, lat2: pl.Expr, lon2: pl.Expr) -> pl.Expr:
    """Polars expression for `haversine_nm`, so distances stay inside a lazy query (no numpy round trip)."""
    p1, p2 = lat1.radians(), lat2.radians()
    h = ((p2 - p1) / 2).sin() ** 2 + p1.cos() * p2.cos() * ((lon2 - lon1).radians() / 2).sin() ** 2
    return 2.0 * EARTH_RADIUS_NM * h.clip(0.0, 1.0).sqrt().arcsin()
