"""The simulator: deterministic, realistic enough to be useful, with every injected anomaly labelled."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
from ais_testdata import points_of

from maritime_slm.ais.simulate import LABEL_KINDS, MALFORMED_FORMS, load_ports, simulate, split_by_day


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = simulate(n_vessels=30, hours=0.5, seed=3, out_dir=tmp_path / "a")
    b = simulate(n_vessels=30, hours=0.5, seed=3, out_dir=tmp_path / "b")
    c = simulate(n_vessels=30, hours=0.5, seed=4, out_dir=tmp_path / "c")
    assert _digest(a[0]) == _digest(b[0]) != _digest(c[0])
    assert pl.read_parquet(a[1]).equals(pl.read_parquet(b[1]))
    assert a[0].name == "AIS_2024_06_01.csv" and a[0].read_text().startswith("MMSI,BaseDateTime,LAT,LON,SOG")


def test_every_anomaly_kind_is_labelled(sim_files):
    labels = pl.read_parquet(sim_files[1])
    counts = dict(labels.group_by("kind").len().iter_rows())
    assert set(counts) == set(LABEL_KINDS)
    assert counts["malformed_line"] == 8 and counts["close_encounter"] % 2 == 0
    forms = labels.filter(pl.col("kind") == "malformed_line")["details"].str.extract(r"form=(\w+)").to_list()
    assert set(forms) == {*MALFORMED_FORMS, "truncated_last_line"}
    timed = labels.filter(~pl.col("kind").is_in(["malformed_line"]))
    assert timed["start"].null_count() == 0 and (timed["end"] >= timed["start"]).all()


def test_malformed_lines_and_duplicates_go_to_quarantine(sim_files, sim_run):
    labels = pl.read_parquet(sim_files[1])
    summary, out = sim_run
    q = pl.read_parquet(out / "quarantine.parquet")
    labelled = {
        kind: sorted(
            int(x) for x in labels.filter(pl.col("kind") == kind)["details"].str.extract(r"line=(\d+)")
        )
        for kind in ("malformed_line", "duplicate")
    }
    assert (
        sorted(q.filter(pl.col("reason") == "malformed_line")["line"].to_list()) == labelled["malformed_line"]
    )
    assert sorted(q.filter(pl.col("reason") == "duplicate")["line"].to_list()) == labelled["duplicate"]
    assert summary["rows_quarantined"] == len(labelled["malformed_line"]) + len(labelled["duplicate"])
    assert summary["rows_in"] == summary["rows_clean"] + summary["rows_quarantined"]


def _track(points: pl.DataFrame, mmsi: int) -> pl.DataFrame:
    return points.filter(pl.col("mmsi") == mmsi).sort("ts")


def _nm(lat1, lon1, lat2, lon2):
    north = (np.asarray(lat2) - lat1) * 60.0
    east = (np.asarray(lon2) - lon1) * 60.0 * np.cos(np.radians((np.asarray(lat1) + lat2) / 2))
    return np.hypot(north, east)


def test_labelled_anomalies_are_in_the_data(sim_files, sim_run):
    labels = pl.read_parquet(sim_files[1])
    points = points_of(sim_run[1])
    for row in labels.filter(pl.col("kind") == "gap").iter_rows(named=True):
        track = _track(points, row["mmsi"])
        inside = track.filter((pl.col("ts") > row["start"]) & (pl.col("ts") < row["end"]))
        assert inside.height == 0 and (row["end"] - row["start"]).total_seconds() >= 15 * 60 - 60
    for row in labels.filter(pl.col("kind") == "position_jump").iter_rows(named=True):
        track = _track(points, row["mmsi"])
        i = track["ts"].to_list().index(row["start"])
        hop = _nm(track["lat"][i - 1], track["lon"][i - 1], track["lat"][i], track["lon"][i])
        hours = (track["ts"][i] - track["ts"][i - 1]).total_seconds() / 3600
        assert hop >= 15 and hop / hours > 300
    for row in labels.filter(pl.col("kind") == "status_mismatch").iter_rows(named=True):
        window = _track(points, row["mmsi"]).filter(
            pl.col("ts").is_between(row["start"], row["end"], closed="left")
        )
        assert window.height > 0 and window["status"].is_in([1, 5]).all() and (window["sog"] > 3).all()
    for row in labels.filter(pl.col("kind") == "loitering").iter_rows(named=True):
        window = _track(points, row["mmsi"]).filter(
            pl.col("ts").is_between(row["start"], row["end"], closed="left")
        )
        spread = _nm(window["lat"].min(), window["lon"].min(), window["lat"].max(), window["lon"].max())
        assert window.height > 10 and spread < 0.35 and (window["sog"] < 3).all()
    pairs = labels.filter(pl.col("kind") == "close_encounter")
    for row in pairs.iter_rows(named=True):
        other = int(row["details"].split("other_mmsi=")[1].split()[0])
        a = _track(points, row["mmsi"]).filter(pl.col("ts").is_between(row["start"], row["end"]))
        b = _track(points, other)
        joined = a.join_asof(b, on="ts", strategy="nearest", tolerance="15s", suffix="_b").drop_nulls("lat_b")
        assert joined.height > 0
        assert _nm(joined["lat"], joined["lon"], joined["lat_b"], joined["lon_b"]).min() < 0.6


def test_traffic_looks_like_us_ais(sim_run):
    points = points_of(sim_run[1])
    vessels = pl.read_parquet(sim_run[1] / "vessels.parquet")
    assert vessels.height == 80
    assert set(vessels["station_kind"]) <= {"ship", "aton"} and (vessels["station_kind"] == "aton").sum() == 1
    groups = set(vessels["type_group"])
    assert {"cargo", "tanker", "fishing", "tug_tow", "pleasure_sailing"} <= groups
    assert set(points["transceiver"]) == {"A", "B"}
    moving = points.filter(pl.col("sog") > 1)
    assert moving["sog"].max() < 30 and moving["sog"].median() > 5
    ports = load_ports()
    near = _nm(points["lat"].to_numpy()[:, None], points["lon"].to_numpy()[:, None],
               ports["lat"].to_numpy()[None, :], ports["lon"].to_numpy()[None, :]).min(axis=1)  # fmt: skip
    assert np.median(near) < 30  # traffic is coastal, around real ports
    assert points["heading"].null_count() > 0 and points["cog"].null_count() > 0  # sentinels were written
    gaps = (
        points.sort("mmsi", "ts")
        .group_by("mmsi")
        .agg(pl.col("ts").diff().dt.total_seconds().median().alias("dt"))
    )
    assert gaps["dt"].min() >= 8 and gaps["dt"].max() <= 190  # 10-30 s under way, 3 min at rest


def test_ports_table_is_the_shared_contract():
    ports = load_ports()
    assert ports.columns == ["port", "lat", "lon", "region"]
    assert set(ports["region"]) == {
        "East Coast", "West Coast", "Gulf of Mexico", "Great Lakes", "Alaska", "Hawaii", "Caribbean",
    }  # fmt: skip
    houston = ports.filter(pl.col("port") == "Houston").row(0, named=True)
    assert abs(houston["lat"] - 29.73) < 0.1 and abs(houston["lon"] + 95.02) < 0.2
    assert ports["port"].is_unique().all() and ports.height >= 80


def test_split_by_day_keeps_every_line_in_its_day(tmp_path):
    csv, _ = simulate(
        n_vessels=20, hours=6, start="2024-06-01T21:00:00", seed=2, malformed_lines=5, out_dir=tmp_path
    )
    original = csv.read_bytes()
    days = split_by_day(csv, tmp_path / "days", block_bytes=1 << 16)  # many blocks, lines cut between them
    assert [d.name for d in days] == ["AIS_2024_06_01.csv", "AIS_2024_06_02.csv"]
    header, *lines = original.split(b"\n")
    parts = [d.read_bytes() for d in days]
    assert all(p.startswith(header + b"\n") for p in parts)
    assert not original.endswith(b"\n") and not parts[-1].endswith(b"\n")  # the cut-off last line stays so
    bodies = [p[len(header) + 1 :] for p in parts]
    got = [line for b in bodies for line in (b[:-1] if b.endswith(b"\n") else b).split(b"\n")]
    assert sorted(got) == sorted(lines)
    for day, text in zip(("2024-06-01", "2024-06-02"), parts, strict=True):
        stamps = [line.split(b",")[1] for line in text.split(b"\n")[1:] if line.count(b",") == 16]
        assert stamps and all(s.startswith(day.encode()) for s in stamps)
