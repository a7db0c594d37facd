"""The 01_ingest stage in the shape every stage has: `run(stage) -> StageResult`."""

from __future__ import annotations

from maritime_slm.ingest.files import run_ingest
from maritime_slm.stage import Stage, StageRecord, StageResult


class IngestRecord(StageRecord):
    rows_in: int
    rows_clean: int
    rows_quarantined: int
    vessels: int
    rows_per_s: int | float
    reasons: dict[str, int]
    engine: dict


def run(stage: Stage) -> StageResult:
    summary = run_ingest(stage.params, stage.dir)
    record = IngestRecord.from_summary(summary)
    record.write(stage.dir)
    return StageResult(record, {"summary": summary})
