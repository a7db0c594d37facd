"""Event detection against the simulator's labelled anomalies: precision and recall per kind.

A detection matches a label when it names the same vessel and their time spans overlap (2 min slack).
Jumps are detected as two events (out and back) per bad fix, so they are compared per labelled fix.
"""

import polars as pl
import pytest

from maritime_slm.ais.simulate import simulate
from maritime_slm.config import FactsParams
from maritime_slm.facts.events import detect_events
from maritime_slm.facts.tracks import build_tracks
from maritime_slm.ingest.files import read_ais

SLACK = pl.duration(minutes=2)
# event table -> (simulator label kind, detection mmsi columns)
KINDS = {
    "gaps": ("gap", ["mmsi"]),
    "jumps": ("position_jump", ["mmsi"]),
    "status": ("status_mismatch", ["mmsi"]),
    "loitering": ("loitering", ["mmsi"]),
    "encounters": ("close_encounter", ["mmsi_1", "mmsi_2"]),
}


@pytest.fixture(scope="module")
def detected(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    csv, labels = simulate(n_vessels=200, hours=2.0, seed=7, anomaly_rate=0.1, malformed_lines=3, out_dir=out)
    points, _ = read_ais(csv)
    events = detect_events(build_tracks(points, FactsParams().gap_minutes), FactsParams())
    return events, pl.read_parquet(labels)


def precision_recall(
    events: pl.DataFrame, labels: pl.DataFrame, mmsi_cols: list[str]
) -> tuple[float, float, int, int]:
    det = pl.concat(
        [events.select(mmsi=pl.col(c).cast(pl.Int64), start="start", end="end") for c in mmsi_cols]
    ).with_row_index("det")
    lab = labels.select(pl.col("mmsi").cast(pl.Int64), "start", "end").with_row_index("lab")
    pairs = det.join(lab, on="mmsi", suffix="_lab").filter(
        (pl.col("start") <= pl.col("end_lab") + SLACK) & (pl.col("start_lab") <= pl.col("end") + SLACK)
    )
    precision = pairs["det"].n_unique() / det.height if det.height else 1.0
    recall = pairs["lab"].n_unique() / lab.height if lab.height else 1.0
    return precision, recall, det.height, lab.height


def test_precision_and_recall_against_labels(detected):
    events, labels = detected
    rows = []
    for table, (kind, cols) in KINDS.items():
        p, r, n_det, n_lab = precision_recall(events[table], labels.filter(pl.col("kind") == kind), cols)
        rows.append({"event": table, "labels": n_lab, "detections": n_det, "precision": p, "recall": r})
    report = pl.DataFrame(rows)
    print(report)
    by = {row["event"]: row for row in report.iter_rows(named=True)}
    assert all(by[k]["labels"] > 0 for k in by)
    for kind in ["gaps", "jumps", "status"]:
        assert by[kind]["recall"] == 1.0, by[kind]
        assert by[kind]["precision"] >= 0.9, by[kind]
    # measured 2026-11-21: loitering P 0.09 / R 1.0 (berth-bound vessels reporting "under way" also loiter by
    # this definition); encounters P 0.03 / R 0.5 (port traffic has many real close pairs the simulator does not
    # label, and half of the labelled crossings fall between 5-minute snapshots) - known limits, kept visible
    assert by["loitering"]["recall"] == 1.0, by["loitering"]
    assert by["encounters"]["recall"] >= 0.5, by["encounters"]
