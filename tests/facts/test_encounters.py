"""CPA/TCPA against hand-computed cases, and COLREGs classification at its boundaries.

Positions are built in the local flat frame at the equator (1 nm = 1/60.04 deg both ways), so the hand
arithmetic in each docstring is exact up to the projection.
"""

import math

import numpy as np
import pytest

from maritime_slm import facts
from maritime_slm.facts.encounters import (
    ENCOUNTERS,
    GIVE_WAY,
    classify_encounter,
    classify_relative,
    cpa_tcpa,
    encounter_codes,
    relative_bearing_deg,
    relative_motion,
)
from maritime_slm.geo import from_local_xy_nm, haversine_nm


def at(x_nm, y_nm, lat0=0.0, lon0=0.0):
    """(lat, lon) of a point x nm east, y nm north of (lat0, lon0)."""
    return from_local_xy_nm(x_nm, y_nm, lat0, lon0)


def polar(bearing_deg, dist_nm, lat0=0.0, lon0=0.0):
    b = math.radians(bearing_deg)
    return at(dist_nm * math.sin(b), dist_nm * math.cos(b), lat0, lon0)


def test_public_name():
    assert facts.cpa_tcpa is cpa_tcpa


def test_head_on():
    """2 is 6 nm dead ahead, reciprocal courses, 10 kn each: closing at 20 kn -> 18 min, CPA 0."""
    cpa, tcpa = cpa_tcpa(0, 0, 10, 0, *at(0, 6), 10, 180)
    assert cpa == pytest.approx(0.0, abs=1e-9)
    assert tcpa == pytest.approx(18.0)
    assert classify_encounter(0, 0, 10, 0, *at(0, 6), 10, 180) == ("head_on", "both")


def test_head_on_offset():
    """Same with 2 offset 0.5 nm east: CPA 0.5 nm, still at 18 min."""
    cpa, tcpa = cpa_tcpa(0, 0, 10, 0, *at(0.5, 6), 10, 180)
    assert (cpa, tcpa) == (pytest.approx(0.5), pytest.approx(18.0))


def test_crossing():
    """1 northbound 12 kn; 2 at 4 nm east westbound 12 kn. r = (4, 0), v = (-12, -12):
    t = -(r.v)/|v|^2 = 48/288 h = 10 min; r + v t = (2, -2) -> CPA 2*sqrt(2) nm.
    2 is on 1's starboard bow (090 relative): 1 gives way."""
    cpa, tcpa = cpa_tcpa(0, 0, 12, 0, *at(4, 0), 12, 270)
    assert cpa == pytest.approx(2 * math.sqrt(2))
    assert tcpa == pytest.approx(10.0)
    assert classify_encounter(0, 0, 12, 0, *at(4, 0), 12, 270) == ("crossing", "first")
    # seen from the other side the roles swap
    assert classify_encounter(*at(4, 0), 12, 270, 0, 0, 12, 0) == ("crossing", "second")


def test_overtaking():
    """1 at 15 kn comes up astern of 2 (2 nm ahead, 0.1 nm to starboard, 10 kn, same course):
    v = (0, -5), r = (0.1, 2): t = 10/25 h = 24 min, CPA 0.1 nm; 1 is the overtaking vessel."""
    cpa, tcpa = cpa_tcpa(0, 0, 15, 0, *at(0.1, 2), 10, 0)
    assert (cpa, tcpa) == (pytest.approx(0.1), pytest.approx(24.0))
    assert classify_encounter(0, 0, 15, 0, *at(0.1, 2), 10, 0) == ("overtaking", "first")
    assert classify_encounter(*at(0.1, 2), 10, 0, 0, 0, 15, 0) == ("overtaking", "second")


def test_parallel_same_speed():
    """Same course and speed, 1 nm abeam: the distance never changes -> TCPA 0, CPA = 1 nm, no encounter."""
    lat2, lon2 = at(1 / math.sqrt(2), -1 / math.sqrt(2))
    cpa, tcpa = cpa_tcpa(0, 0, 10, 45, lat2, lon2, 10, 45)
    assert tcpa == 0.0
    assert cpa == pytest.approx(1.0)
    assert cpa == pytest.approx(haversine_nm(0, 0, lat2, lon2), rel=1e-6)
    assert classify_encounter(0, 0, 10, 45, lat2, lon2, 10, 45) == ("none", "none")
    # both stopped: same thing
    assert cpa_tcpa(0, 0, 0, 0, lat2, lon2, 0, 123) == (pytest.approx(1.0), 0.0)


def test_diverging():
    """Stern to stern, 2 nm apart, 10 kn each: they were together 6 min ago -> TCPA -6, CPA 0."""
    cpa, tcpa = cpa_tcpa(0, 0, 10, 180, *at(0, 2), 10, 0)
    assert tcpa == pytest.approx(-6.0)
    assert cpa == pytest.approx(0.0, abs=1e-9)
    assert classify_encounter(0, 0, 10, 180, *at(0, 2), 10, 0) == ("none", "none")


def test_vectorised_matches_scalar():
    rng = np.random.default_rng(7)
    n = 40
    lat1, lon1 = rng.uniform(30, 45, n), rng.uniform(-80, -60, n)
    lat2, lon2 = lat1 + rng.uniform(-0.2, 0.2, n), lon1 + rng.uniform(-0.2, 0.2, n)
    sog1, sog2 = rng.uniform(0, 25, (2, n))
    cog1, cog2 = rng.uniform(0, 360, (2, n))
    cpa, tcpa = cpa_tcpa(lat1, lon1, sog1, cog1, lat2, lon2, sog2, cog2)
    enc, gw = classify_encounter(lat1, lon1, sog1, cog1, lat2, lon2, sog2, cog2)
    assert cpa.shape == tcpa.shape == enc.shape == gw.shape == (n,)
    for i in range(n):
        c, t = cpa_tcpa(lat1[i], lon1[i], sog1[i], cog1[i], lat2[i], lon2[i], sog2[i], cog2[i])
        assert isinstance(c, float) and isinstance(t, float)
        assert (cpa[i], tcpa[i]) == (pytest.approx(c, rel=1e-12), pytest.approx(t, rel=1e-12, abs=1e-12))
        e, g = classify_encounter(lat1[i], lon1[i], sog1[i], cog1[i], lat2[i], lon2[i], sog2[i], cog2[i])
        assert (enc[i], gw[i]) == (e, g)
    assert set(enc) <= {"head_on", "crossing", "overtaking", "none"}


def test_missing_inputs_give_nan_and_none():
    cpa, tcpa = cpa_tcpa(0, 0, np.nan, 0, *at(0, 6), 10, 180)
    assert math.isnan(cpa) and math.isnan(tcpa)
    assert classify_encounter(0, 0, 10, np.nan, *at(0, 6), 10, 180) == ("none", "none")


def test_cpa_is_the_minimum_distance_along_the_tracks():
    """Brute force: sample the relative motion every second over two hours."""
    rng = np.random.default_rng(11)
    for _ in range(20):
        x2, y2 = rng.uniform(-8, 8, 2)
        s1, s2, c1, c2 = *rng.uniform(1, 20, 2), *rng.uniform(0, 360, 2)
        cpa, tcpa = cpa_tcpa(0, 0, s1, c1, *at(x2, y2), s2, c2)
        t = np.arange(-7200, 7201) / 3600.0
        v = s2 * np.exp(1j * np.radians(90 - c2)) - s1 * np.exp(1j * np.radians(90 - c1))
        d = np.abs((x2 + 1j * y2) + v * t)
        assert cpa == pytest.approx(d.min(), abs=1e-3)
        assert tcpa == pytest.approx(t[d.argmin()] * 60, abs=0.05)


def overtaking_case(bearing_from_2):
    """Vessel 1 placed at `bearing_from_2` relative to 2's bow (2 northbound 10 kn), 1 nm off, 1 northbound 20 kn."""
    lat1, lon1 = polar(bearing_from_2, 1.0)
    return classify_encounter(lat1, lon1, 20, 0, 0.0, 0.0, 10, 0)


@pytest.mark.parametrize(
    ("bearing", "expected"),
    [
        (112.4, ("crossing", "second")),  # forward of the sternlight sector: 2 has 1 on her starboard side
        (112.5 + 1e-4, ("overtaking", "first")),
        (112.6, ("overtaking", "first")),
        (180.0, ("overtaking", "first")),
        (247.4, ("overtaking", "first")),
        (247.6, ("crossing", "first")),  # 1 is on 2's port side, 1 has 2 on her starboard side
    ],
)
def test_overtaking_boundary(bearing, expected):
    assert relative_bearing_deg(0.0, 0.0, 0.0, *polar(bearing, 1.0)) == pytest.approx(bearing, abs=1e-6)
    assert overtaking_case(bearing) == expected


def test_overtaking_boundary_is_exclusive():
    assert overtaking_case(112.5 - 1e-4)[0] == "crossing"
    assert overtaking_case(247.5 + 1e-4)[0] == "crossing"


@pytest.mark.parametrize(
    ("bearing", "course_offset", "expected"),
    [
        (2.0, 5.9, ("head_on", "both")),
        (-2.0, -5.9, ("head_on", "both")),
        (2.0, 6.1, ("crossing", "first")),
        (-2.0, -6.1, ("crossing", "second")),
    ],
)
def test_head_on_course_tolerance(bearing, course_offset, expected):
    """2 bears `bearing` relative, 5 nm off; her course is 180 + offset, so 1 bears bearing - offset from her
    bow (within 6 deg here). Courses within +-6 deg of reciprocal: head-on; beyond, a crossing in which the
    vessel with the other on her starboard bow gives way."""
    lat2, lon2 = polar(bearing, 5.0)
    assert classify_encounter(0, 0, 10, 0, lat2, lon2, 10, 180 + course_offset) == expected


@pytest.mark.parametrize(("bearing", "expected"), [(5.9, "head_on"), (6.0, "head_on"), (6.1, "crossing")])
def test_head_on_bearing_tolerance(bearing, expected):
    """Exactly reciprocal courses; 2 bears `bearing` from 1's bow (and so 1 bears the same from 2's)."""
    lat2, lon2 = polar(bearing, 3.0)
    enc, give_way = classify_encounter(0, 0, 10, 0, lat2, lon2, 10, 180)
    assert enc == expected
    # each has the other on her starboard side: Rule 15 names no single vessel -> both
    assert give_way == "both"


def test_custom_head_on_tolerance():
    lat2, lon2 = polar(2.0, 5.0)
    assert classify_encounter(0, 0, 10, 0, lat2, lon2, 10, 190, head_on_tol_deg=10.0)[0] == "head_on"
    assert classify_encounter(0, 0, 10, 0, lat2, lon2, 10, 190)[0] == "crossing"


def test_heading_overrides_cog_for_the_bow():
    """Sectors are relative to the bow: heading where reported, COG where not (NaN)."""
    lat2, lon2 = polar(0.0, 3.0)
    assert relative_bearing_deg(0, 0, 30.0, lat2, lon2) == pytest.approx(330.0)
    # 1 bears 110 from 2's COG (crossing), but 2's bow points 350, so 1 is 120 relative: overtaking
    lat1, lon1 = polar(110.0, 1.0)
    assert classify_encounter(lat1, lon1, 20, 0, 0.0, 0.0, 10, 0) == ("crossing", "second")
    got = classify_encounter(lat1, lon1, 20, 0, 0.0, 0.0, 10, 0, heading1=np.nan, heading2=350.0)
    assert got == ("overtaking", "first")


def test_boundaries_hold_at_mid_latitude():
    """Away from the equator the projection is about the pair's mid latitude; the sectors still hold."""
    for bearing, enc in [(112.4, "crossing"), (112.6, "overtaking")]:
        lat1, lon1 = polar(bearing, 1.0, 42.0, -70.0)
        assert classify_encounter(lat1, lon1, 20, 0, 42.0, -70.0, 10, 0)[0] == enc


@pytest.mark.parametrize(
    ("rel12", "rel21", "cog1", "cog2", "expected"),
    [
        (292.5, 112.5, 0, 0, ("crossing", "second")),  # exactly on the 112.5 line: not overtaking
        (292.5, 112.5 + 1e-9, 0, 0, ("overtaking", "first")),
        (67.5, 247.5, 0, 0, ("crossing", "first")),  # exactly 247.5: not overtaking
        (67.5, 247.5 - 1e-9, 0, 0, ("overtaking", "first")),
        (180.0, 0.0, 0, 0, ("overtaking", "second")),
        (6.0, 354.0, 0, 186.0, ("head_on", "both")),  # all three tolerances met exactly (inclusive)
        (6.0 + 1e-9, 354.0, 0, 186.0, ("crossing", "first")),
        (0.0, 0.0, 0, 186.0 + 1e-9, ("crossing", "both")),  # dead ahead both ways: no side, doubt
    ],
)
def test_classify_relative_exact_boundaries(rel12, rel21, cog1, cog2, expected):
    assert classify_relative(rel12, rel21, cog1, cog2) == expected


def test_classify_relative_not_closing():
    assert classify_relative(90.0, 270.0, 0, 90, closing=False) == ("none", "none")


def test_codes_from_relative_motion_name_the_same_classes_as_the_labels():
    """The bulk path (`relative_motion` once, `encounter_codes` into ENCOUNTERS / GIVE_WAY) gives every pair the
    class the scalar `classify_encounter` gives it, headings missing or not."""
    rng = np.random.default_rng(7)
    n = 2000
    lat1, lon1 = rng.uniform(40, 41, n), rng.uniform(-71, -70, n)
    lat2, lon2 = lat1 + rng.uniform(-0.05, 0.05, n), lon1 + rng.uniform(-0.05, 0.05, n)
    sog1, sog2 = rng.uniform(0, 20, n), rng.uniform(0, 20, n)
    cog1, cog2 = rng.choice([0.0, 90.0, 180.0, 270.0], n), rng.uniform(0, 360, n)
    heading1 = np.where(rng.random(n) < 0.5, np.nan, rng.uniform(0, 360, n))
    motion = relative_motion(lat1, lon1, sog1, cog1, lat2, lon2, sog2, cog2)
    enc, give_way = encounter_codes(*motion, cog1, cog2, heading1=heading1)
    assert set(np.unique(enc)) >= {ENCOUNTERS.index("crossing"), ENCOUNTERS.index("none")}
    for i in range(0, n, 7):
        expected = classify_encounter(lat1[i], lon1[i], sog1[i], cog1[i], lat2[i], lon2[i], sog2[i], cog2[i],
                                      heading1=heading1[i])  # fmt: skip
        assert (ENCOUNTERS[enc[i]], GIVE_WAY[give_way[i]]) == expected
