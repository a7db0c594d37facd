"""Shared, session-scoped ingest runs for the AIS tests (each real-sample ingest takes about a second)."""

import pytest
from ais_testdata import SAMPLE_ZIP

from maritime_slm.ais.simulate import simulate
from maritime_slm.ingest.files import ingest_files


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory):
    """(summary, out_dir) of ingesting the shipped real sample."""
    out = tmp_path_factory.mktemp("sample_run")
    return ingest_files([SAMPLE_ZIP], out, progress=False), out


@pytest.fixture(scope="session")
def sim_files(tmp_path_factory):
    """A simulated day slice with every anomaly kind and every malformed-line form."""
    out = tmp_path_factory.mktemp("sim")
    csv_path, labels_path = simulate(
        n_vessels=80, hours=2.0, start="2024-06-01T06:00:00", seed=7, anomaly_rate=0.15,
        malformed_lines=8, out_dir=out,
    )  # fmt: skip
    return csv_path, labels_path


@pytest.fixture(scope="session")
def sim_run(sim_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("sim_run")
    return ingest_files([sim_files[0]], out, progress=False), out
