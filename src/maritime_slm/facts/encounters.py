"""Closest point of approach and COLREGs encounter type for pairs of vessels.

Both work on scalars and, element-wise, on numpy arrays (broadcasting), so one call scores every candidate pair
of a snapshot. Geometry is a local flat-earth (equirectangular) approximation about the pair's mid latitude,
with straight-line constant-velocity motion: valid for ranges under ~20 nm and horizons of tens of minutes,
which covers every collision-risk question; beyond that the errors grow with range and time.

Units: positions in degrees, SOG in knots, COG/heading in degrees true; CPA in nm, TCPA in minutes.
"""

from __future__ import annotations

import numpy as np

from maritime_slm.geo import angle_diff_deg, to_local_xy_nm, velocity_kn

# Rule 13(b): overtaking = coming up from more than 22.5 deg abaft the beam, i.e. a relative bearing from the
# other vessel's bow strictly between 112.5 and 247.5 deg (the sector of her sternlight).
OVERTAKING_SECTOR_DEG = (112.5, 247.5)
# Rule 14: head-on = reciprocal or nearly reciprocal courses with each vessel seeing the other ahead or nearly
# ahead. "Nearly" is read as +-6 deg, inclusive, for both the course reciprocity and the relative bearings
# (roughly the sector in which both sidelights of the other vessel are seen together).
HEAD_ON_TOL_DEG = 6.0
# Relative speeds below this (knots squared) are treated as zero: the pair keeps its distance for ever.
_ZERO_REL_SPEED_SQ = 1e-12

ENCOUNTERS = ("head_on", "crossing", "overtaking", "none")
GIVE_WAY = ("first", "second", "both", "none")


def _plain(x):
    """Scalars back as Python scalars: facts and answers read better as 0.42 than array(0.42)."""
    if np.ndim(x) == 0:
        x = np.asarray(x)[()]
        return str(x) if isinstance(x, str | np.str_) else float(x)
    return x


def relative_motion(lat1, lon1, sog1, cog1, lat2, lon2, sog2, cog2):
    """Position of 2 relative to 1 (nm, x east / y north) and velocity of 2 relative to 1 (knots)."""
    v1x, v1y = velocity_kn(sog1, cog1)
    v2x, v2y = velocity_kn(sog2, cog2)
    return (*relative_position(lat1, lon1, lat2, lon2), np.subtract(v2x, v1x), np.subtract(v2y, v1y))


def relative_position(lat1, lon1, lat2, lon2):
    """Position of 2 relative to 1 in nm (x east, y north), flat earth about the pair's mid latitude. A caller
    scoring millions of pairs of a few vessels takes the velocities (`velocity_kn`) once per vessel."""
    lat1, lon1, lat2, lon2 = (np.asarray(v, dtype=float) for v in (lat1, lon1, lat2, lon2))
    lat0 = (lat1 + lat2) / 2.0
    x1, y1 = to_local_xy_nm(lat1, lon1, lat0, lon1)
    x2, y2 = to_local_xy_nm(lat2, lon2, lat0, lon1)
    return np.subtract(x2, x1), np.subtract(y2, y1)


def closest_approach(rx, ry, vx, vy):
    """(CPA in nm, TCPA in minutes) from a pair's `relative_motion`: arrays stay arrays (see `cpa_tcpa`)."""
    t = tcpa_hours(rx, ry, vx, vy)
    return np.hypot(rx + vx * t, ry + vy * t), t * 60.0


def tcpa_hours(rx, ry, vx, vy):
    """Time of closest approach in hours; 0 for zero relative velocity, NaN where an input is missing."""
    vv = vx * vx + vy * vy
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(vv > _ZERO_REL_SPEED_SQ, -(rx * vx + ry * vy) / np.where(vv > 0, vv, 1.0), 0.0)
    return np.where(np.isnan(vv) | np.isnan(rx) | np.isnan(ry), np.nan, t)


def cpa_tcpa(lat1, lon1, sog1, cog1, lat2, lon2, sog2, cog2):
    """Closest point of approach (nm) and time to it (minutes) for two vessels on constant course and speed.

    TCPA is negative when the closest approach lies in the past (the pair is opening); CPA is then the
    distance at that past moment. With zero relative velocity (same course and speed) the distance never
    changes: TCPA = 0 and CPA = the current distance. Flat-earth local approximation (see module docstring):
    use for ranges under ~20 nm. Scalars in, floats out; arrays broadcast.
    """
    cpa, tcpa = closest_approach(*relative_motion(lat1, lon1, sog1, cog1, lat2, lon2, sog2, cog2))
    return _plain(cpa), _plain(tcpa)


def relative_bearing_deg(lat1, lon1, bow1, lat2, lon2):
    """Bearing of vessel 2 as seen from vessel 1, measured clockwise from 1's bow direction, in [0, 360)."""
    lat1, lon1, lat2, lon2 = (np.asarray(v, dtype=float) for v in (lat1, lon1, lat2, lon2))
    lat0 = (lat1 + lat2) / 2.0
    x2, y2 = to_local_xy_nm(lat2, lon2, lat0, lon1)
    x1, y1 = to_local_xy_nm(lat1, lon1, lat0, lon1)
    bearing = np.degrees(np.arctan2(np.subtract(x2, x1), np.subtract(y2, y1)))
    return _plain((bearing - np.asarray(bow1, dtype=float)) % 360.0)


def _bow(cog, heading):
    """The direction the hull points: heading where reported, else COG (AIS heading is often missing)."""
    if heading is None:
        return np.asarray(cog, dtype=float)
    heading = np.asarray(heading, dtype=float)
    return np.where(np.isnan(heading), np.asarray(cog, dtype=float), heading)


def classify_encounter(
    lat1,
    lon1,
    sog1,
    cog1,
    lat2,
    lon2,
    sog2,
    cog2,
    heading1=None,
    heading2=None,
    head_on_tol_deg: float = HEAD_ON_TOL_DEG,
):
    """COLREGs encounter type and give-way vessel for a pair: `(encounter, give_way)`.

    encounter is "overtaking" (Rule 13), "head_on" (Rule 14), "crossing" (Rule 15) or "none";
    give_way is "first", "second", "both" or "none". Relative bearings are taken from each vessel's bow
    (heading where given and not NaN, else COG). Conventions, applied in this order:

    - "none" unless the pair is closing (TCPA > 0): the rules of the road govern vessels approaching each
      other; a pair that is opening or keeping its distance has no encounter.
    - overtaking: vessel 1 bears strictly between 112.5 and 247.5 deg from 2's bow (more than 22.5 deg
      abaft her beam) -> 1 is the overtaking vessel and gives way ("first"); symmetrically "second".
      Exactly 112.5 or 247.5 is not overtaking.
    - head-on: courses reciprocal within +-head_on_tol_deg (|180 - course difference| <= tol) and each vessel
      sees the other within +-tol of her bow (inclusive) -> both alter to starboard ("both").
    - crossing otherwise: the vessel that has the other on her starboard side (relative bearing in
      (0, 180)) gives way. If each has the other on the same side (near-reciprocal courses passing clear of
      the head-on cone), Rule 15 names no single vessel: "both" (in doubt, act as in Rule 14).

    Scalars in, str out; arrays broadcast to numpy string arrays.
    """
    rx, ry, vx, vy = relative_motion(lat1, lon1, sog1, cog1, lat2, lon2, sog2, cog2)
    return _labels(*encounter_codes(rx, ry, vx, vy, cog1, cog2, heading1, heading2, head_on_tol_deg))


def encounter_codes(
    rx, ry, vx, vy, cog1, cog2, heading1=None, heading2=None, head_on_tol_deg: float = HEAD_ON_TOL_DEG
):
    """`classify_encounter` from the pair's `relative_motion`, as indices into ENCOUNTERS and GIVE_WAY: a caller
    that already has the relative motion of millions of pairs neither recomputes it nor builds string arrays."""
    closing = tcpa_hours(rx, ry, vx, vy) > 0.0
    bearing12 = np.degrees(np.arctan2(rx, ry)) % 360.0
    rel12 = (bearing12 - _bow(cog1, heading1)) % 360.0  # where 2 appears from 1's bow
    rel21 = (bearing12 + 180.0 - _bow(cog2, heading2)) % 360.0  # where 1 appears from 2's bow
    return _relative_codes(rel12, rel21, cog1, cog2, closing, head_on_tol_deg)


def _labels(encounter, give_way):
    return _plain(np.asarray(ENCOUNTERS)[encounter]), _plain(np.asarray(GIVE_WAY)[give_way])


def classify_relative(
    rel12_deg, rel21_deg, cog1, cog2, closing=True, head_on_tol_deg: float = HEAD_ON_TOL_DEG
):
    """`classify_encounter` from the relative bearings themselves (degrees from each bow, [0, 360)).

    rel12_deg: where vessel 2 appears from 1's bow; rel21_deg: where 1 appears from 2's bow; courses are
    used for the head-on reciprocity test; closing: whether the range is decreasing.
    """
    return _labels(*_relative_codes(rel12_deg, rel21_deg, cog1, cog2, closing, head_on_tol_deg))


def _relative_codes(rel12_deg, rel21_deg, cog1, cog2, closing, head_on_tol_deg: float):
    rel12 = np.asarray(rel12_deg, dtype=float) % 360.0
    rel21 = np.asarray(rel21_deg, dtype=float) % 360.0
    closing = np.asarray(closing, dtype=bool)
    lo, hi = OVERTAKING_SECTOR_DEG
    one_overtakes = (rel21 > lo) & (rel21 < hi)
    two_overtakes = (rel12 > lo) & (rel12 < hi)
    reciprocal = 180.0 - np.asarray(
        angle_diff_deg(np.asarray(cog1, dtype=float), np.asarray(cog2, dtype=float))
    )
    head_on = (
        (reciprocal <= head_on_tol_deg)
        & (np.asarray(angle_diff_deg(rel12, 0.0)) <= head_on_tol_deg)
        & (np.asarray(angle_diff_deg(rel21, 0.0)) <= head_on_tol_deg)
    )
    starboard1 = (rel12 > 0.0) & (rel12 < 180.0)  # 1 has 2 on her starboard side
    starboard2 = (rel21 > 0.0) & (rel21 < 180.0)
    active = [~closing, one_overtakes, two_overtakes, head_on]
    encounter = np.select(active, [ENCOUNTERS.index(e) for e in ("none", "overtaking", "overtaking", "head_on")],
                          ENCOUNTERS.index("crossing"))  # fmt: skip
    give_way = np.select(
        active + [starboard1 & ~starboard2, starboard2 & ~starboard1],
        [GIVE_WAY.index(g) for g in ("none", "first", "second", "both", "first", "second")],
        GIVE_WAY.index("both"),
    )
    return encounter, give_way
