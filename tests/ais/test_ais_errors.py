"""Damaged inputs end as one IngestError line naming the file, never a raw parser traceback or a silent success."""

from __future__ import annotations

import zipfile

import pytest
from ais_testdata import LEGACY_HEADER, REPORTS, legacy_line

from maritime_slm.ais.readers import IngestError, detect_format
from maritime_slm.config import load_params
from maritime_slm.ingest.files import read_ais, run_ingest


def test_stray_carriage_return_in_a_quoted_name_in_the_first_lines_is_survived(tmp_path):
    lines = [legacy_line(r) for r in REPORTS]
    lines[0] = lines[0].replace("EAGLE", '"EAGLE"\r')
    path = tmp_path / "AIS_2024_06_01.csv"
    path.write_bytes((LEGACY_HEADER + "\n" + "\n".join(lines) + "\n").encode())
    points, quarantine = read_ais(path)
    assert points.height + quarantine.height == len(REPORTS)
    assert points.height >= len(REPORTS) - 1


def test_empty_zip_is_named_as_an_empty_archive(tmp_path):
    path = tmp_path / "AIS_2024_06_01.zip"
    with zipfile.ZipFile(path, "w"):
        pass
    with pytest.raises(IngestError, match=r"AIS_2024_06_01.zip: zip archive is empty"):
        detect_format(path)


def _params_for(path):
    return load_params("smoke", [f"ingest.inputs=['{path}']", "ingest.simulate=null"])


def test_header_only_csv_is_an_error_not_an_empty_success(tmp_path):
    path = tmp_path / "AIS_2024_06_01.csv"
    path.write_text(LEGACY_HEADER + "\n")
    with pytest.raises(IngestError) as err:
        run_ingest(_params_for(path), tmp_path / "out", progress=False, paper=False)
    message = str(err.value)
    assert "no usable AIS rows" in message and f"{path}: 0 data rows" in message
    assert "\n" not in message
