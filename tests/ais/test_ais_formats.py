"""The three MarineCadastre formats, recognised from their bytes, map to the same canonical rows."""

from __future__ import annotations

import zipfile

import polars as pl
import pytest
from ais_testdata import REPORTS, write_csv_zst, write_geoparquet, write_legacy_csv

from maritime_slm.ais.readers import AisFormat, IngestError, detect_format
from maritime_slm.ais.schema import POINT_SCHEMA
from maritime_slm.ingest.files import ingest_files, read_ais


@pytest.fixture
def three_formats(tmp_path):
    return {
        AisFormat.CSV_LEGACY: write_legacy_csv(tmp_path / "AIS_2024_06_01.csv"),
        AisFormat.CSV_2025: write_csv_zst(tmp_path / "ais-2024-06-01.csv.zst"),
        AisFormat.GEOPARQUET_2024: write_geoparquet(tmp_path / "ais-2024-06-01.parquet"),
    }


def test_formats_are_detected_from_the_bytes_not_the_name(three_formats, tmp_path):
    for fmt, path in three_formats.items():
        assert detect_format(path).format == fmt
        disguised = tmp_path / f"renamed_{fmt}.dat"
        disguised.write_bytes(path.read_bytes())
        assert detect_format(disguised).format == fmt
    zipped = tmp_path / "AIS_2024_06_01.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(three_formats[AisFormat.CSV_LEGACY], "AIS_2024_06_01.csv")
    info = detect_format(zipped)
    assert (info.format, info.container, info.member) == (AisFormat.CSV_LEGACY, "zip", "AIS_2024_06_01.csv")


def test_all_formats_yield_identical_canonical_frames(three_formats):
    frames = {}
    for fmt, path in three_formats.items():
        points, quarantine = read_ais(path)
        assert quarantine.height == 0, (fmt, quarantine)
        frames[fmt] = points.sort("mmsi", "ts")
    legacy = frames[AisFormat.CSV_LEGACY]
    assert legacy.schema == pl.Schema(POINT_SCHEMA)
    assert legacy.height == len(REPORTS)
    for fmt, frame in frames.items():
        assert frame.equals(legacy), fmt


def test_canonical_values_of_the_reports(three_formats):
    points, _ = read_ais(three_formats[AisFormat.CSV_LEGACY])
    rows = {r["mmsi"]: r for r in points.iter_rows(named=True)}
    eagle = rows[367379190]
    assert (eagle["lat"], eagle["lon"], eagle["heading"], eagle["imo"]) == (
        30.3706,
        -88.56408,
        None,
        "IMO8207721",
    )
    assert str(eagle["ts"]) == "2024-06-01 00:00:00+00:00"
    cazador = rows[338148873]
    assert (
        cazador["sog"] is None and cazador["cog"] is None and cazador["imo"] is None
    )  # 102.3 / 360 / IMO0000000
    assert cazador["status"] is None and cazador["transceiver"] == "B"
    assert rows[249853000]["vessel_name"] == "RIVERA, SR"  # a quoted comma survives
    assert rows[366993510]["vessel_name"] == 'LIL "D"'  # doubled quotes are unescaped
    assert rows[993661234]["station_kind"] == "aton"
    assert (
        rows[249853000]["heading"] == 358.0
        and rows[249853000]["draft"] == pl.Series([13.3], dtype=pl.Float32)[0]
    )


def test_geoparquet_bad_geometry_is_quarantined(tmp_path):
    path = write_geoparquet(tmp_path / "ais-2024-06-01.parquet")
    table = pl.read_parquet(path)
    broken = table.with_columns(
        geometry=pl.when(pl.col("mmsi") == 338148873)
        .then(pl.lit(b"\x01\x02\x00"))
        .otherwise(pl.col("geometry"))
    )
    broken.write_parquet(path)
    points, quarantine = read_ais(path)
    assert points.height == len(REPORTS) - 1
    assert quarantine.select("line", "reason", "raw_mmsi").rows() == [(2, "missing_position", "338148873")]


def test_an_unreadable_file_is_an_error_naming_it(tmp_path):
    garbage = tmp_path / "AIS_2024_06_02.csv"
    garbage.write_bytes(b"\x00\x01\x02 this is not AIS at all \xff\xfe")
    with pytest.raises(IngestError, match="AIS_2024_06_02.csv"):
        ingest_files([garbage], tmp_path / "out1", progress=False)
    broken_zip = tmp_path / "AIS_2024_06_03.zip"
    broken_zip.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    with pytest.raises(IngestError, match="AIS_2024_06_03.zip"):
        ingest_files([broken_zip], tmp_path / "out2", progress=False)
    with pytest.raises(IngestError, match="missing_day.csv"):
        ingest_files([tmp_path / "missing_day.csv"], tmp_path / "out3", progress=False)
    empty = tmp_path / "ais-2025-01-01.csv.zst"
    empty.write_bytes(b"")
    with pytest.raises(IngestError, match="ais-2025-01-01.csv.zst"):
        detect_format(empty)


def test_a_good_file_before_a_bad_one_does_not_hide_the_error(tmp_path, three_formats):
    bad = tmp_path / "AIS_2024_06_09.csv"
    bad.write_text("this,is,not\nan,ais,file\n")
    with pytest.raises(IngestError, match=r"AIS_2024_06_09\.csv.*not a MarineCadastre AIS table"):
        ingest_files([three_formats[AisFormat.CSV_LEGACY], bad], tmp_path / "out", progress=False)
