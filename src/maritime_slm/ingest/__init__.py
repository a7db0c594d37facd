"""Stage 01, ingest: a run's raw AIS files -> clean, date-partitioned Parquet, quarantine, vessels, figures 1-2.

Modules: `files` (each file read, cleaned and written as parts in a partition of the engine, then merged), `figures`
(figures 1-2, table 1), `run` (the stage's `run(stage)`). The AIS reading and cleaning rules are `maritime_slm.ais`.
"""

from maritime_slm.ingest.files import ingest_files, read_ais, run_ingest

__all__ = ["ingest_files", "read_ais", "run_ingest"]
