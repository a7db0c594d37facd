"""Ground-truth facts from cleaned AIS: tracks, events, encounters, vessel classification."""

from maritime_slm.facts.encounters import (
    classify_encounter,
    classify_relative,
    cpa_tcpa,
    relative_bearing_deg,
)
from maritime_slm.facts.events import (
    close_encounters,
    detect_events,
    loitering,
    position_jumps,
    reporting_gaps,
    snapshot_positions,
    speed_zone_violations,
    status_inconsistencies,
)
from maritime_slm.facts.tracks import build_tracks, segment_summary
from maritime_slm.facts.vessels import (
    flag_state,
    status_label,
    status_label_expr,
    type_group,
    type_group_expr,
)
from maritime_slm.facts.zones import Zone, load_zones

__all__ = [
    "Zone",
    "build_tracks",
    "classify_encounter",
    "classify_relative",
    "close_encounters",
    "cpa_tcpa",
    "detect_events",
    "flag_state",
    "load_zones",
    "loitering",
    "position_jumps",
    "relative_bearing_deg",
    "reporting_gaps",
    "segment_summary",
    "snapshot_positions",
    "speed_zone_violations",
    "status_inconsistencies",
    "status_label",
    "status_label_expr",
    "type_group",
    "type_group_expr",
]
