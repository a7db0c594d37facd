"""The ingest stage end to end (run_ingest on the smoke profile), the vessel table and MMSI semantics."""

from __future__ import annotations

import json

import polars as pl
import pytest
from ais_testdata import REPORTS, legacy_line, write_legacy_csv

from maritime_slm.ais.mid import flag_state, station_kind
from maritime_slm.config import load_params
from maritime_slm.ingest import files as ingest_module
from maritime_slm.ingest.files import RowAccountingError, ingest_files, run_ingest


def test_run_ingest_smoke_profile_writes_every_output(tmp_path):
    params = load_params("smoke")
    summary = run_ingest(params, tmp_path, progress=False)
    sim = params.ingest.simulate
    assert summary["simulated"]["csv"].endswith("raw/AIS_2024_06_01.csv")
    labels = pl.read_parquet(summary["simulated"]["labels"])
    malformed = labels.filter(pl.col("kind") == "malformed_line").height
    assert malformed == sim.malformed_lines == summary["reasons"]["malformed_line"]
    assert summary["rows_in"] == summary["rows_clean"] + summary["rows_quarantined"]
    assert summary["vessels"] == sim.n_vessels and summary["files"] == 1
    for name in ("quarantine.parquet", "quality.csv", "vessels.parquet", "ingest_summary.json"):
        assert (tmp_path / name).is_file(), name
    assert [p.name for p in (tmp_path / "points").iterdir()] == ["date=2024-06-01"]
    for name in ("figure_1.png", "figure_2.png", "table_1_ingest.csv", "table_1_ingest.md"):
        assert (tmp_path / "paper" / name).stat().st_size > 500, name
    assert json.loads((tmp_path / "ingest_summary.json").read_text())["rows_in"] == summary["rows_in"]
    table = pl.read_csv(tmp_path / "paper" / "table_1_ingest.csv")
    assert table["step"][0] == "raw AIS records read" and table["this_run"][0] == f"{summary['rows_in']:,}"
    assert not list(tmp_path.glob("_ingest-*"))  # temporary folders are gone


def test_quality_report_lists_every_reason_in_order(sample_run):
    quality = pl.read_csv(sample_run[1] / "quality.csv")
    assert quality.columns == ["reason", "rows", "share"]
    assert quality["reason"].to_list() == [
        "malformed_line", "bad_mmsi", "bad_timestamp", "bad_number", "missing_position",
        "position_out_of_range", "null_island", "duplicate", "clean",
    ]  # fmt: skip
    assert quality.filter(pl.col("reason") == "bad_mmsi")["share"].item() == pytest.approx(99 / 99_999)


def test_vessel_table_keeps_the_latest_non_null_static_fields(tmp_path):
    base = dict(REPORTS[0])
    later = dict(base, ts="2024-06-01T01:00:00", name="EAGLE II", imo=None, draft=4.1)
    earlier = dict(base, ts="2024-05-31T23:00:00", name="OLD EAGLE", call="OLD1")
    path = tmp_path / "AIS_2024_06_01.csv"
    write_legacy_csv(path, [base, later, earlier, REPORTS[3]])
    summary = ingest_files([path], tmp_path / "out", progress=False)
    assert summary["dates"] == ["2024-05-31", "2024-06-01"]
    vessels = pl.read_parquet(tmp_path / "out" / "vessels.parquet")
    eagle = vessels.filter(pl.col("mmsi") == 367379190).row(0, named=True)
    assert eagle["vessel_name"] == "EAGLE II"  # the latest report by time, not by file order
    assert eagle["imo"] == "IMO8207721"  # the latest report had none: keep the last one given
    assert eagle["call_sign"] == "WTD4583" and eagle["reports"] == 3
    assert eagle["draft"] == pytest.approx(4.1) and eagle["type_group"] == "tug_tow"
    assert str(eagle["first_seen"]) == "2024-05-31 23:00:00+00:00"
    assert str(eagle["last_seen"]) == "2024-06-01 01:00:00+00:00"


def test_vessel_partials_of_any_split_combine_into_the_table_of_all_points():
    """Each ingest partition summarises its own file; the stage's table must not depend on how rows were split,
    and a tie (two reports at the same latest time) resolves the same way in every split."""
    from datetime import datetime, timedelta

    from maritime_slm.ais.vessels import STATIC_FIELDS, summarize_vessels, vessel_partials, vessel_table

    t0 = datetime(2024, 6, 1)
    rows = []
    for i in range(60):
        mmsi = 367000000 + i % 7
        rows.append({
            "mmsi": mmsi, "ts": t0 + timedelta(minutes=(i // 7) % 4),
            "vessel_name": None if i % 4 == 0 else f"NAME {i % 5}", "imo": None if i % 3 else f"IMO{i}",
            "call_sign": "SAME", "vessel_type": None if i % 6 == 0 else 70 + i % 3, "length": float(i % 9),
            "width": None, "draft": float(i % 4), "cargo": None, "transceiver": "A" if i % 2 else "B",
        })  # fmt: skip
    schema = {"mmsi": pl.Int64, "ts": pl.Datetime("us", "UTC"), "vessel_name": pl.String, "imo": pl.String,
              "call_sign": pl.String, "vessel_type": pl.Int64, "length": pl.Float64, "width": pl.Float64,
              "draft": pl.Float64, "cargo": pl.Int64, "transceiver": pl.String}  # fmt: skip
    points = pl.DataFrame(rows, schema=schema).select("mmsi", "ts", *STATIC_FIELDS)
    whole = summarize_vessels(points.lazy()).collect()
    ties = (
        points.group_by("mmsi", "ts").agg(pl.col("vessel_name").n_unique()).filter(pl.col("vessel_name") > 1)
    )
    assert ties.height > 0  # the data has ties to resolve
    for cuts in ([20, 40], [1, 59], [7, 8, 33]):
        pieces = [points[a:b] for a, b in zip([0, *cuts], [*cuts, points.height], strict=True)]
        for order in (pieces, pieces[::-1]):
            combined = vessel_table(pl.concat([vessel_partials(p).collect() for p in order]).lazy()).collect()
            assert combined.equals(whole), cuts


def test_station_kinds_and_flag_states():
    assert station_kind(367379190) == "ship"
    assert station_kind(993661234) == "aton"
    assert station_kind(985346207) == "craft_associated"
    assert station_kind(972971214) == "sart_mob_epirb"
    assert station_kind(970123456) == "sart_mob_epirb"
    assert station_kind(111366123) == "sar_aircraft"
    assert station_kind(999999999) == "other"
    assert station_kind(3669884) == "other"
    assert flag_state(367379190) == "United States"
    assert flag_state(636019825) == "Liberia"
    assert flag_state(538004512) == "Marshall Islands"
    assert flag_state(993661234) == "United States"  # AtoN 99 + MID 366
    assert flag_state(111232501) == "United Kingdom"  # SAR aircraft 111 + MID 232
    assert flag_state(972971214) is None  # SART/MOB/EPIRB carry no MID
    assert flag_state(999999999) is None


def test_row_accounting_is_enforced(tmp_path, monkeypatch):
    """A writer that loses a row must stop the run, not shrink the data silently."""
    path = write_legacy_csv(tmp_path / "AIS_2024_06_01.csv")
    real_write = ingest_module._Parts.write

    def dropping_write(self, clean):
        real_write(self, clean.head(clean.height - 1))

    monkeypatch.setattr(ingest_module._Parts, "write", dropping_write)
    with pytest.raises(RowAccountingError, match="5 rows in != 4 clean"):
        ingest_files([path], tmp_path / "bad", progress=False)


def test_legacy_line_round_trip_helper_matches_the_real_layout():
    line = legacy_line(REPORTS[1])
    assert (
        line
        == "338148873,2024-06-01T00:00:05,33.60716,-117.91483,102.3,360.0,511,CAZADOR,IMO0000000,,37,,14.0,,,,B"
    )
