"""The shipped real sample (first 99,999 rows of AIS_2022_01_03) and a corrupted copy of it."""

from __future__ import annotations

import zipfile

import polars as pl
from ais_testdata import SAMPLE_ZIP, points_of, sample_lines

from maritime_slm.ingest.files import ingest_files


def test_row_accounting_is_exact(sample_run):
    summary, out = sample_run
    assert summary["rows_in"] == 99_999
    assert summary["rows_clean"] == 99_897
    assert summary["rows_quarantined"] == 102
    assert summary["reasons"]["bad_mmsi"] == 99
    assert summary["reasons"]["duplicate"] == 3
    assert points_of(out).height == 99_897
    assert pl.read_parquet(out / "quarantine.parquet").height == 102
    quality = pl.read_csv(out / "quality.csv")
    assert quality["rows"].sum() == 99_999
    assert quality.filter(pl.col("reason") == "clean")["rows"].item() == 99_897
    assert abs(quality["share"].sum() - 1.0) < 1e-9


def test_points_are_partitioned_by_date_with_the_canonical_schema(sample_run):
    _, out = sample_run
    parts = sorted((out / "points").rglob("*.parquet"))
    assert [p.parent.name for p in parts] == ["date=2022-01-03"]
    frame = points_of(out)
    assert [str(d) for d in frame["date"].unique().to_list()] == ["2022-01-03"]
    assert frame.schema["mmsi"] == pl.Int32 and frame.schema["ts"] == pl.Datetime("us", "UTC")
    assert frame.schema["status"] == pl.Int8 and frame.schema["heading"] == pl.Float32


def test_sentinels_become_nulls(sample_run):
    """Counts from the raw CSV: among the 99,897 clean rows, 52,186 Heading 511, 13,976 COG 360, 173 SOG 102.3,
    14,549 IMO0000000 and 44,804 blank IMOs; none of these values survive."""
    _, out = sample_run
    frame = points_of(out)
    assert frame["heading"].null_count() == 52_186
    assert frame["cog"].null_count() == 13_976
    assert frame["sog"].null_count() == 173
    assert frame["imo"].null_count() == 14_549 + 44_804
    assert frame.filter(pl.col("heading") == 511).height == 0
    assert frame.filter(pl.col("cog") == 360).height == 0
    assert frame.filter((pl.col("sog") - 102.3).abs() < 1e-3).height == 0
    assert frame.filter(pl.col("imo") == "IMO0000000").height == 0
    row = frame.filter((pl.col("mmsi") == 367379190) & (pl.col("ts").dt.second() == 0)).row(0, named=True)
    assert row["vessel_name"] == "EAGLE" and row["imo"] == "IMO8207721" and row["heading"] is None
    assert (
        row["status"] == 0 and row["length"] == 28 and row["draft"] == pl.Series([3.3], dtype=pl.Float32)[0]
    )


def test_non_ship_mmsis_are_kept_and_labelled(sample_run):
    _, out = sample_run
    frame = points_of(out)
    kinds = dict(frame.group_by("station_kind").len().iter_rows())
    assert kinds == {"ship": 99_784, "craft_associated": 50, "sart_mob_epirb": 18, "other": 45}
    by_mmsi = dict(frame.select("mmsi", "station_kind").unique().iter_rows())
    assert by_mmsi[985346207] == "craft_associated"
    assert by_mmsi[972971214] == "sart_mob_epirb"
    assert by_mmsi[999999999] == "other"  # placeholder: MID 999 does not exist
    assert by_mmsi[367379190] == "ship"


def test_quarantine_keeps_raw_values_and_line_numbers(sample_run):
    _, out = sample_run
    q = pl.read_parquet(out / "quarantine.parquet")
    first = q.filter(pl.col("line") == 30).row(0, named=True)
    assert (
        first["reason"] == "bad_mmsi"
        and first["raw_mmsi"] == "3669884"
        and first["detail"] == "mmsi='3669884'"
    )
    assert first["raw_line"].startswith("3669884,2022-01-03T00:00:08,41.2562,-72.00913")
    dups = q.filter(pl.col("reason") == "duplicate").sort("line")
    assert dups["line"].to_list() == [2599, 2814, 2840]
    assert dups["detail"].to_list() == [
        "duplicate of line 1367",
        "duplicate of line 316",
        "duplicate of line 103",
    ]
    lines = sample_lines()
    assert dups["raw_line"].to_list() == [lines[2598], lines[2813], lines[2839]]
    assert q["source_file"].unique().to_list() == [str(SAMPLE_ZIP)]


def test_vessel_table_has_one_row_per_mmsi(sample_run):
    summary, out = sample_run
    vessels = pl.read_parquet(out / "vessels.parquet")
    assert vessels.height == summary["vessels"] == 10_623
    assert vessels["mmsi"].is_unique().all()
    assert vessels["reports"].sum() == 99_897
    eagle = vessels.filter(pl.col("mmsi") == 367379190).row(0, named=True)
    assert eagle["flag_state"] == "United States" and eagle["flag_iso2"] == "US"
    assert eagle["type_group"] == "tug_tow" and eagle["station_kind"] == "ship"
    rivera = vessels.filter(pl.col("mmsi") == 249853000).row(0, named=True)
    assert rivera["flag_state"] == "Malta" and rivera["type_group"] == "tanker"
    assert vessels.filter(pl.col("station_kind") != "ship")["flag_state"].null_count() >= 7


def _corrupt(lines: list[str]) -> tuple[bytes, dict[int, str], dict[int, int]]:
    """The first 2,000 sample rows with 14 injected bad lines and a cut-off last record, a BOM and CRLF line ends.

    Returns the file's bytes, {line number: reason} of the injected lines, {original line: new line}.
    """
    header, rows = lines[0], lines[1:2001]
    good = rows[10].split(",")

    def variant(**changes) -> str:
        fields = list(good)
        for index, value in changes.items():
            fields[int(index[1:])] = value
        return ",".join(fields)

    injected = [
        ("@@@@ not an AIS record @@@@", "malformed_line"),
        (",".join(good[:9]), "malformed_line"),  # too few fields
        (",".join(good + ["EXTRA"]), "malformed_line"),  # too many fields
        ("", "malformed_line"),  # blank line
        (variant(f2="91.0"), "position_out_of_range"),
        (variant(f3="-181.5"), "position_out_of_range"),
        (variant(f0="12345"), "bad_mmsi"),
        (variant(f0="36737919A"), "bad_mmsi"),
        (variant(f1="2022-13-45T99:00:00"), "bad_timestamp"),
        (variant(f1=""), "bad_timestamp"),
        (variant(f4="fast"), "bad_number"),
        (variant(f11="nan"), "bad_number"),
        (variant(f2="", f3=""), "missing_position"),
        (variant(f2="0", f3="0"), "null_island"),
    ]
    out_lines = [header]
    expected: dict[int, str] = {}
    moved: dict[int, int] = {}
    for i, row in enumerate(rows):
        if i < 1999:
            out_lines.append(row)
            moved[i + 2] = len(out_lines)
        if i % 140 == 70 and injected:
            text, reason = injected.pop(0)
            out_lines.append(text)
            expected[len(out_lines)] = reason
    out_lines.append(rows[1999][: len(rows[1999]) // 3])  # the download was cut mid-record, no final newline
    expected[len(out_lines)] = "malformed_line"
    return ("\ufeff" + "\r\n".join(out_lines)).encode(), expected, moved


def test_corrupted_copy_is_quarantined_row_for_row(tmp_path):
    lines = sample_lines()
    clean_copy = tmp_path / "clean.csv"
    clean_copy.write_text("\n".join(lines[:2000]) + "\n")  # header + the 1,999 rows kept whole below
    baseline = ingest_files([clean_copy], tmp_path / "baseline", progress=False)
    base_q = pl.read_parquet(tmp_path / "baseline" / "quarantine.parquet")
    assert baseline["rows_in"] == 1999 and baseline["rows_quarantined"] == 3  # MMSIs on lines 30, 403, 945

    data, injected, moved = _corrupt(lines)
    corrupted = tmp_path / "AIS_2022_01_03_corrupted.zip"
    with zipfile.ZipFile(corrupted, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("AIS_2022_01_03_corrupted.csv", data)
    summary = ingest_files([corrupted], tmp_path / "corrupted", progress=False)
    q = pl.read_parquet(tmp_path / "corrupted" / "quarantine.parquet")

    assert summary["rows_in"] == 1999 + 15
    # The BOM and the CRLF line ends are not defects: every original row parses exactly as before.
    assert summary["rows_clean"] == baseline["rows_clean"] == 1996
    expected = {
        moved[line]: reason for line, reason in base_q.select("line", "reason").iter_rows()
    } | injected
    assert dict(q.select("line", "reason").iter_rows()) == expected
    assert len(expected) == 18 and summary["rows_quarantined"] == 18
    first = q.filter(pl.col("line") == min(injected)).row(0, named=True)
    assert first["raw_line"] == "@@@@ not an AIS record @@@@" and first["detail"] == "1 field(s), expected 17"
    lat91 = q.filter(pl.col("reason") == "position_out_of_range").sort("line").row(0, named=True)
    assert lat91["raw_lat"] == "91.0" and lat91["detail"].startswith("lat='91.0'")
    assert q.filter(pl.col("raw_mmsi") == "12345")["reason"].to_list() == ["bad_mmsi"]
    assert not any(v.endswith("\r") for v in q["raw_line"].drop_nulls().to_list())


def test_zip_and_plain_csv_give_the_same_points(tmp_path, sample_run):
    with zipfile.ZipFile(SAMPLE_ZIP) as zf:
        (tmp_path / "plain.csv").write_bytes(zf.read(zf.namelist()[0]))
    summary = ingest_files([tmp_path / "plain.csv"], tmp_path / "out", progress=False)
    assert (summary["rows_in"], summary["rows_clean"]) == (99_999, 99_897)
    assert points_of(tmp_path / "out").equals(points_of(sample_run[1]))
