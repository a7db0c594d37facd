"""AIS ingest: MarineCadastre files of any vintage -> clean, typed, date-partitioned Parquet.

Modules: `readers` (format detection, raw strings), `clean` (typing, sentinels, reason codes), `mid` (station
kind and flag state from the MMSI), `vessels` (one row per MMSI), `ingest` (the stage), `simulate` (labelled
synthetic AIS). Package data: `ports.csv` (real U.S. ports), `mid.csv` (MID -> country).
"""

from maritime_slm.ais.clean import REASONS
from maritime_slm.ais.ingest import ingest_files, read_ais, run_ingest
from maritime_slm.ais.mid import flag_state, mid_table, station_kind
from maritime_slm.ais.readers import AisFormat, IngestError, detect_format
from maritime_slm.ais.schema import POINT_COLUMNS, POINT_SCHEMA
from maritime_slm.ais.simulate import load_ports, simulate
from maritime_slm.ais.vessels import type_group_expr

__all__ = [
    "POINT_COLUMNS",
    "POINT_SCHEMA",
    "REASONS",
    "AisFormat",
    "IngestError",
    "detect_format",
    "flag_state",
    "ingest_files",
    "load_ports",
    "mid_table",
    "read_ais",
    "run_ingest",
    "simulate",
    "station_kind",
    "type_group_expr",
]
