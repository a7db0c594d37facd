"""Type groups, status labels, and the shipped speed-zone table."""

import numpy as np
import polars as pl
import pytest

from maritime_slm.facts.vessels import (
    STATUS_LABELS,
    status_label,
    status_label_expr,
    type_group,
    type_group_expr,
)
from maritime_slm.facts.zones import load_zones, points_in_polygon, zones_table


@pytest.mark.parametrize(
    ("code", "group"),
    [
        (30, "fishing"),
        (31, "tug_tow"),
        (32, "tug_tow"),
        (52, "tug_tow"),
        (33, "other"),
        (36, "pleasure_sailing"),
        (37, "pleasure_sailing"),
        (39, "other"),
        (40, "high_speed_craft"),
        (49, "high_speed_craft"),
        (50, "other"),
        (59, "other"),
        (60, "passenger"),
        (69, "passenger"),
        (70, "cargo"),
        (79, "cargo"),
        (80, "tanker"),
        (89, "tanker"),
        (90, "other"),
        (0, "other"),
        (1004, "other"),
        (None, "other"),
    ],
)
def test_type_group(code, group):
    assert type_group(code) == group


def test_expressions_match_scalars():
    codes = [*range(0, 100), None]
    df = pl.DataFrame(
        {"vessel_type": codes, "status": [c if c is None else c % 17 for c in codes]},
        schema={"vessel_type": pl.Int16, "status": pl.Int8},
    )
    out = df.select(g=type_group_expr(), s=status_label_expr())
    assert out["g"].to_list() == [type_group(c) for c in codes]
    assert out["s"].to_list() == [status_label(c) for c in df["status"].to_list()]


def test_flag_state_from_ingest_mid_table():
    from maritime_slm import facts

    assert facts.flag_state(366123456) == "United States"
    assert facts.flag_state(636012345) == "Liberia"


def test_status_labels():
    assert len(STATUS_LABELS) == 16
    assert status_label(0) == "under way using engine"
    assert status_label(1) == "at anchor"
    assert status_label(5) == "moored"
    assert status_label(7) == "engaged in fishing"
    assert status_label(8) == "under way sailing"
    assert status_label(15) == status_label(None) == status_label(16) == "undefined"


def test_zone_table_is_complete():
    table = zones_table()
    assert table.height == 10
    assert table["zone_id"].n_unique() == 10
    zones = load_zones()
    assert {z.speed_limit_kn for z in zones} == {10.0}
    assert {z.min_length_m for z in zones} == {19.8}
    seasons = {z.zone_id: (z.active_from, z.active_to) for z in zones}
    assert seasons["sma_se_calving"] == ("11-15", "04-15")
    assert seasons["sma_mid_new_york"] == ("11-01", "04-30")
    assert seasons["sma_ne_cape_cod_bay"] == ("01-01", "05-15")
    assert seasons["sma_ne_race_point"] == ("03-01", "04-30")
    assert seasons["sma_ne_great_south_channel"] == ("04-01", "07-31")


@pytest.mark.parametrize(
    ("zone_id", "inside", "outside"),
    [
        ("sma_se_calving", (30.5, -81.2), (30.5, -80.5)),  # off Jacksonville / beyond 080°51.6'W
        ("sma_mid_wilmington_brunswick", (32.6, -79.6), (32.0, -79.0)),  # off Charleston / far offshore
        ("sma_mid_morehead_city", (34.55, -76.75), (34.75, -76.75)),  # ocean / Bogue Sound
        ("sma_mid_chesapeake", (36.95, -75.80), (37.20, -76.20)),  # ocean / inside the bay
        ("sma_mid_delaware", (38.75, -74.85), (39.00, -75.15)),  # ocean / inside the bay
        ("sma_mid_new_york", (40.35, -73.85), (40.65, -74.05)),  # ocean / upper bay
        ("sma_mid_block_island", (41.0, -71.3), (41.3, -71.7)),
        ("sma_ne_cape_cod_bay", (41.9, -70.35), (42.3, -70.35)),
        ("sma_ne_race_point", (42.3, -70.1), (42.6, -70.1)),
        ("sma_ne_great_south_channel", (41.5, -68.8), (40.8, -68.0)),
    ],
)
def test_zone_geometry(zone_id, inside, outside):
    zone = {z.zone_id: z for z in load_zones()}[zone_id]
    got = zone.contains(np.array([inside[0], outside[0]]), np.array([inside[1], outside[1]]))
    assert got.tolist() == [True, False]
    assert bool(zone.contains(*inside)) is True  # scalars work too


def test_zones_do_not_overlap_on_a_grid():
    lat, lon = np.meshgrid(np.arange(29.0, 43.0, 0.05), np.arange(-82.0, -66.0, 0.05))
    hits = sum(z.contains(lat, lon).astype(int) for z in load_zones())
    assert hits.max() == 1
    assert (hits > 0).sum() > 1000


def test_season_wraps_the_new_year():
    zone = {z.zone_id: z for z in load_zones()}["sma_mid_new_york"]
    assert zone.active(np.array([1031, 1101, 1231, 101, 430, 501])).tolist() == [
        False,
        True,
        True,
        True,
        True,
        False,
    ]


def test_points_in_polygon_square():
    square = np.array([[0, 0], [0, 1], [1, 1], [1, 0]], dtype=float)
    got = points_in_polygon(np.array([0.5, 1.5, 0.5, -0.1]), np.array([0.5, 0.5, 0.99, 0.5]), square)
    assert got.tolist() == [True, False, True, False]
