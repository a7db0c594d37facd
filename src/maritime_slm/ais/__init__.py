"""AIS, the domain: MarineCadastre files of any vintage read, typed and cleaned; vessels; labelled synthetic AIS.

Modules: `readers` (format detection, raw strings), `clean` (typing, sentinels, reason codes), `mid` (station
kind and flag state from the MMSI), `vessels` (one row per MMSI), `simulate` (labelled synthetic AIS). The 01
ingest stage that runs them over a run's files in partitions is `maritime_slm.ingest`. Package data: `ports.csv`
(real U.S. ports), `mid.csv` (MID -> country).
"""

from maritime_slm.ais.clean import REASONS
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
    "load_ports",
    "mid_table",
    "simulate",
    "station_kind",
    "type_group_expr",
]
