"""Events derived from tracks, each a polars frame: the ground truth behind anomaly, compliance and
collision-risk questions.

Every function takes the output of `build_tracks` (DataFrame or LazyFrame, sorted by mmsi, ts) and returns an
eager DataFrame with one row per event. Multi-report events (loitering, status, speed zones, encounters) are
episodes: maximal runs of consecutive reports of one vessel (within one track segment) that meet the test.
Times are UTC datetimes, durations in minutes, distances in nm, speeds in knots.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from maritime_slm.config import FactsParams
from maritime_slm.facts.encounters import (
    ENCOUNTERS,
    GIVE_WAY,
    closest_approach,
    encounter_codes,
    relative_position,
)
from maritime_slm.facts.tracks import exact_mean, minutes_between, prev
from maritime_slm.facts.vessels import status_label_expr
from maritime_slm.facts.zones import Zone, load_zones
from maritime_slm.geo import NM_PER_DEG_LAT, haversine_nm_expr, velocity_kn

# Status codes whose low-speed dwell is declared, hence not loitering: 1 at anchor, 5 moored.
DECLARED_STATIONARY = (1, 5)
SNAPSHOT_MINUTES = 5.0  # encounter snapshots: every vessel dead-reckoned to a grid of this step
VESSEL_EVENTS = ("gaps", "jumps", "loitering", "status", "speed_zones")  # each about one vessel's own track


def _lazy(tracks: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return tracks.lazy() if isinstance(tracks, pl.DataFrame) else tracks


def _with_row(tracks) -> pl.LazyFrame:
    """Row number in the (mmsi, ts)-sorted tracks: consecutive reports of a vessel have consecutive rows."""
    return _lazy(tracks).with_row_index("_row")


def _changed(keys: list[str]) -> pl.Expr:
    """True where any of `keys` differs from the row before, and on the first row."""
    new = pl.lit(False)
    for k in keys:
        new = new | (pl.col(k) != pl.col(k).shift(1))
    return new.fill_null(True)


def _episode_ids(keys: list[str]) -> pl.Expr:
    """Episode counter over flagged rows sorted by keys + _row: a new episode at any key change or row gap."""
    return ((pl.col("_row") != pl.col("_row").shift(1) + 1) | _changed(keys)).fill_null(True).cum_sum()


def reporting_gaps(tracks, gap_minutes: float) -> pl.DataFrame:
    """Silences longer than `gap_minutes` between consecutive reports of a vessel.

    Columns: mmsi, start, end, duration_min, distance_nm (straight line across the gap), implied_kn,
    start_lat, start_lon, end_lat, end_lon.
    """
    return (
        _lazy(tracks)
        .with_columns(start=prev("ts"), start_lat=prev("lat"), start_lon=prev("lon"))
        .filter(pl.col("dt_min") > gap_minutes)
        .select(
            "mmsi",
            "start",
            end=pl.col("ts"),
            duration_min=pl.col("dt_min"),
            distance_nm=pl.col("step_nm"),
            implied_kn=pl.col("implied_kn"),
            start_lat=pl.col("start_lat"),
            start_lon=pl.col("start_lon"),
            end_lat=pl.col("lat"),
            end_lon=pl.col("lon"),
        )
        .collect()
    )


def position_jumps(
    tracks,
    jump_speed_kn: float,
    gap_minutes: float,
    sog_factor: float = 3.0,
    sog_slack_kn: float = 5.0,
    min_step_nm: float = 0.5,
) -> pl.DataFrame:
    """Steps between consecutive reports that the vessel cannot have sailed.

    A step of at least `min_step_nm` (0.5 nm: GPS jitter and sub-minute position noise of slow, circling or
    drifting vessels never count; measured against the simulator labels) is a jump when
    - reason "implausible_speed": its implied speed exceeds the physical bound `jump_speed_kn`; or
    - reason "exceeds_reported_sog": within continuous reporting (dt <= gap_minutes; across a long silence the
      vessel may have sped up and slowed down) the implied speed exceeds sog_factor x the larger reported SOG
      of the two fixes plus sog_slack_kn; or
    - reason "duplicate_timestamp": two reports at the same instant in different places (implied speed
      undefined; often two transmitters sharing one MMSI).
    A single bad fix shows as two jumps (out and back). Columns: mmsi, start, end, dt_min, distance_nm,
    implied_kn, sog_kn, reason, from_lat, from_lon, to_lat, to_lon.
    """
    sog_ref = pl.max_horizontal(prev("sog"), pl.col("sog"))
    big = pl.col("step_nm") >= min_step_nm
    reason = (
        pl.when(big & (pl.col("dt_min") == 0))
        .then(pl.lit("duplicate_timestamp"))
        .when(big & (pl.col("implied_kn") > jump_speed_kn))
        .then(pl.lit("implausible_speed"))
        .when(
            big
            & (pl.col("dt_min") <= gap_minutes)
            & sog_ref.is_not_null()
            & (pl.col("implied_kn") > sog_factor * sog_ref + sog_slack_kn)
        )
        .then(pl.lit("exceeds_reported_sog"))
    )
    return (
        _lazy(tracks)
        .with_columns(
            reason=reason,
            start=prev("ts"),
            sog_kn=sog_ref.cast(pl.Float64),
            from_lat=prev("lat"),
            from_lon=prev("lon"),
        )
        .filter(pl.col("reason").is_not_null())
        .select(
            "mmsi",
            "start",
            end=pl.col("ts"),
            dt_min=pl.col("dt_min"),
            distance_nm=pl.col("step_nm"),
            implied_kn=pl.col("implied_kn"),
            sog_kn=pl.col("sog_kn"),
            reason=pl.col("reason"),
            from_lat=pl.col("from_lat"),
            from_lon=pl.col("from_lon"),
            to_lat=pl.col("lat"),
            to_lon=pl.col("lon"),
        )
        .collect()
    )


def status_inconsistencies(
    tracks, anchor_max_sog_kn: float = 3.0, moored_max_sog_kn: float = 1.0
) -> pl.DataFrame:
    """Episodes where the declared navigational status contradicts the reported speed.

    Status 1 (at anchor) with SOG > anchor_max_sog_kn, status 5 (moored) with SOG > moored_max_sog_kn; each
    bound is exclusive (exactly 3.0 kn at anchor is consistent). Columns: mmsi, status, status_label, start,
    end, duration_min, n_reports, max_sog_kn, mean_sog_kn, limit_kn.
    """
    limit = pl.when(pl.col("status") == 1).then(anchor_max_sog_kn).when(pl.col("status") == 5)
    limit = limit.then(moored_max_sog_kn)
    keys = ["mmsi", "segment", "status"]
    return (
        _with_row(tracks)
        .with_columns(limit_kn=limit)
        .filter(pl.col("limit_kn").is_not_null() & (pl.col("sog") > pl.col("limit_kn")))
        .sort(keys + ["_row"])
        .with_columns(_episode=_episode_ids(keys))
        .group_by("_episode", maintain_order=True)
        .agg(
            pl.col("mmsi", "status", "limit_kn").first(),
            start=pl.col("ts").first(),
            end=pl.col("ts").last(),
            n_reports=pl.len(),
            max_sog_kn=pl.col("sog").max().cast(pl.Float64),
            mean_sog_kn=exact_mean("sog"),
        )
        .select(
            "mmsi",
            "status",
            status_label=status_label_expr("status"),
            start=pl.col("start"),
            end=pl.col("end"),
            duration_min=minutes_between("start", "end"),
            n_reports=pl.col("n_reports"),
            max_sog_kn=pl.col("max_sog_kn"),
            mean_sog_kn=pl.col("mean_sog_kn"),
            limit_kn=pl.col("limit_kn"),
        )
        .sort(["start", "mmsi"])
        .collect()
    )


def loitering(tracks, radius_nm: float, minutes: float, max_sog_kn: float = 3.0) -> pl.DataFrame:
    """Episodes where a vessel stays within `radius_nm` of one spot at low speed for at least `minutes`.

    Candidates: a report qualifies when every report of its segment in the trailing window [t - minutes, t]
    lies within `radius_nm` of the window's bounding-box centre (half the box diagonal <= radius), every
    report in it has SOG <= max_sog_kn (null SOG passes on position alone), and the vessel does not declare
    itself at anchor or moored (status 1, 5: that dwell is declared, not anomalous). Consecutive qualifying
    reports form an episode starting at the first report of the first window (overlapping episodes merge).
    An episode is kept when it lasts >= `minutes` and all its reports lie within `radius_nm` of its mean
    position: a slow steady transit passes every window test but drifts out of the circle, and is not
    loitering. A vessel at a berth reporting status 0 loiters by this definition; mean_sog_kn tells the
    drifting from the tied-up.
    Columns: mmsi, segment, start, end, duration_min, n_reports, lat, lon (mean position), extent_nm (largest
    distance from it), mean_sog_kn, max_sog_kn.
    """
    window_s = max(1, round(minutes * 60))
    rows = _with_row(tracks).select("_row", "mmsi", "segment", "ts", "lat", "lon", "sog", "status")
    spans = _slow_compact_spans(rows, window_s, radius_nm, max_sog_kn)
    return _loitering_episodes(rows, spans, minutes, radius_nm)


def _slow_compact_spans(
    rows: pl.LazyFrame, window_s: int, radius_nm: float, max_sog_kn: float
) -> pl.DataFrame:
    """Row spans (first_row, last_row) of consecutive reports whose trailing window is slow and compact, merged
    where they overlap: the loitering candidates.

    A window holding a report faster than `max_sog_kn` fails, so the window statistics are computed only over
    the slow reports (a third of a day's), in runs between fast ones, and a report qualifies only if no fast
    report of its segment lies in its window [ts - window, ts]; windows are closed and cover equal times, so a
    fast report at the same time after it counts too. Same rows as the statistics over every report.
    """
    grp = ["mmsi", "segment"]
    fast = (pl.col("sog").cast(pl.Float64) > max_sog_kn).fill_null(False)
    new_segment = _changed(grp)
    ts_type = rows.collect_schema()["ts"]
    # the time of the segment's last fast report up to here (`before`) and its next one from here (`after`);
    # a sentinel where the segment has none, so the fill never reaches into the neighbouring segment
    before = (
        pl.when(fast).then("ts").when(new_segment).then(pl.lit(datetime.min).cast(ts_type)).forward_fill()
    )
    after_end = new_segment.shift(-1).fill_null(True)
    after = pl.when(fast).then("ts").when(after_end).then(pl.lit(datetime.max).cast(ts_type)).backward_fill()
    slow = (
        rows.with_columns(_run=(fast | new_segment).cum_sum(), _fast_before=before, _fast_after=after)
        .filter(~fast)
        .collect()
    )
    window = slow.rolling(index_column="ts", period=f"{window_s}s", closed="both", group_by="_run").agg(
        _lat_min=pl.col("lat").min(),
        _lat_max=pl.col("lat").max(),
        _lon_min=pl.col("lon").min(),
        _lon_max=pl.col("lon").max(),
        _win_row=pl.col("_row").cast(pl.Int64).min(),
    )
    # one row per report, in (_run, ts) order: the slow rows' own order (reports of equal time share a window)
    if not (window["_run"].equals(slow["_run"]) and window["ts"].equals(slow["ts"])):
        raise AssertionError("rolling windows came back in another order than the reports")
    half_diag = (
        ((pl.col("_lat_max") - pl.col("_lat_min")) * NM_PER_DEG_LAT) ** 2
        + (
            (pl.col("_lon_max") - pl.col("_lon_min"))
            * NM_PER_DEG_LAT
            * ((pl.col("_lat_max") + pl.col("_lat_min")) / 2).radians().cos()
        )
        ** 2
    ).sqrt() / 2
    flagged = (
        slow.hstack(window.drop("_run", "ts"))
        .lazy()
        .filter(
            (pl.col("_fast_before") < pl.col("ts") - pl.duration(seconds=window_s))
            & (pl.col("_fast_after") > pl.col("ts"))
            & (half_diag <= radius_nm)
            & ~pl.col("status").is_in(DECLARED_STATIONARY).fill_null(False)
        )
        .sort(grp + ["_row"])
        .with_columns(_episode=_episode_ids(grp))
        .group_by("_episode", maintain_order=True)
        .agg(
            pl.col("mmsi", "segment").first(),
            first_row=pl.col("_win_row").min(),
            last_row=pl.col("_row").max().cast(pl.Int64),
        )
    )
    return (
        flagged.sort("first_row")
        .with_columns(
            _new=((pl.col("first_row") > pl.col("last_row").shift(1) + 1) | _changed(grp)).fill_null(True)
        )
        .with_columns(_episode=pl.col("_new").cum_sum())
        .group_by("_episode", maintain_order=True)
        .agg(pl.col("first_row").min(), pl.col("last_row").max())
        .collect()
    )


def _loitering_episodes(
    rows: pl.LazyFrame, spans: pl.DataFrame, minutes: float, radius_nm: float
) -> pl.DataFrame:
    """The candidate spans that last `minutes` and keep every report within `radius_nm` of their mean position."""
    members = (
        rows.with_columns(pl.col("_row").cast(pl.Int64))
        .join_asof(spans.lazy(), left_on="_row", right_on="first_row", strategy="backward")
        .filter(pl.col("_row") <= pl.col("last_row"))
        .collect()
        .lazy()
    )
    episodes = (
        members.group_by("_episode")
        .agg(
            pl.col("mmsi", "segment").first(),
            start=pl.col("ts").min(),
            end=pl.col("ts").max(),
            n_reports=pl.len(),
            lat=exact_mean("lat"),
            lon=exact_mean("lon"),
            mean_sog_kn=exact_mean("sog"),
            max_sog_kn=pl.col("sog").max().cast(pl.Float64),
        )
        .with_columns(duration_min=minutes_between("start", "end"))
        .filter(pl.col("duration_min") >= minutes)
    )
    extent = (
        members.join(episodes.select("_episode", c_lat="lat", c_lon="lon"), on="_episode")
        .group_by("_episode")
        .agg(
            extent_nm=haversine_nm_expr(pl.col("c_lat"), pl.col("c_lon"), pl.col("lat"), pl.col("lon")).max()
        )
    )
    return (
        episodes.join(extent, on="_episode")
        .filter(pl.col("extent_nm") <= radius_nm)
        .select(
            "mmsi",
            "segment",
            "start",
            "end",
            "duration_min",
            "n_reports",
            "lat",
            "lon",
            "extent_nm",
            "mean_sog_kn",
            "max_sog_kn",
        )
        .sort(["start", "mmsi"])
        .collect()
    )


def speed_zone_violations(tracks, zones: list[Zone] | None = None) -> pl.DataFrame:
    """Episodes of reports inside an active speed-restricted zone with SOG above its limit.

    Applies each zone's rule as written: length >= min_length_m (reports with unknown length are not
    judged), SOG strictly above speed_limit_kn, the report's UTC calendar date inside the season (inclusive).
    Default zones: the shipped right-whale SMAs (see `maritime_slm.facts.zones`).
    Columns: mmsi, zone_id, zone_name, regulation, start, end, duration_min, n_reports, max_sog_kn,
    mean_sog_kn, speed_limit_kn, length_m.
    """
    zones = load_zones() if zones is None else zones
    out_schema = {
        "mmsi": pl.Int32,
        "zone_id": pl.String,
        "zone_name": pl.String,
        "regulation": pl.String,
        "start": pl.Datetime("us", "UTC"),
        "end": pl.Datetime("us", "UTC"),
        "duration_min": pl.Float64,
        "n_reports": pl.UInt32,
        "max_sog_kn": pl.Float64,
        "mean_sog_kn": pl.Float64,
        "speed_limit_kn": pl.Float64,
        "length_m": pl.Float64,
    }
    if not zones:
        return pl.DataFrame(schema=out_schema)
    cand = (
        _with_row(tracks)
        .filter(
            (pl.col("sog") > min(z.speed_limit_kn for z in zones))
            & (pl.col("length") >= min(z.min_length_m for z in zones))
        )
        .select(
            "_row",
            "mmsi",
            "segment",
            "ts",
            "lat",
            "lon",
            "sog",
            "length",
            _md=pl.col("ts").dt.month().cast(pl.Int32) * 100 + pl.col("ts").dt.day().cast(pl.Int32),
        )
        .collect()
    )
    lat, lon = cand["lat"].to_numpy(), cand["lon"].to_numpy()
    sog = cand["sog"].cast(pl.Float64).to_numpy()
    length = cand["length"].cast(pl.Float64).to_numpy()
    md = cand["_md"].to_numpy()
    pieces = []
    for z in zones:
        hit = (sog > z.speed_limit_kn) & (length >= z.min_length_m) & z.active(md) & z.contains(lat, lon)
        if hit.any():
            pieces.append(
                cand.filter(pl.Series(hit)).with_columns(
                    zone_id=pl.lit(z.zone_id),
                    zone_name=pl.lit(z.name),
                    regulation=pl.lit(z.regulation),
                    speed_limit_kn=pl.lit(z.speed_limit_kn),
                )
            )
    if not pieces:
        return pl.DataFrame(schema=out_schema)
    keys = ["zone_id", "mmsi", "segment"]
    return (
        pl.concat(pieces)
        .sort(keys + ["_row"])
        .with_columns(_episode=_episode_ids(keys))
        .group_by("_episode", maintain_order=True)
        .agg(
            pl.col("mmsi", "zone_id", "zone_name", "regulation", "speed_limit_kn").first(),
            start=pl.col("ts").first(),
            end=pl.col("ts").last(),
            n_reports=pl.len(),
            max_sog_kn=pl.col("sog").max().cast(pl.Float64),
            mean_sog_kn=exact_mean("sog"),
            length_m=pl.col("length").max().cast(pl.Float64),
        )
        .with_columns(duration_min=minutes_between("start", "end"))
        .select(list(out_schema))
        .cast(out_schema)
        .sort(["start", "mmsi"])
    )


def snapshot_positions(tracks, step_min: float) -> pl.LazyFrame:
    """Each vessel's latest report in [t - step, t) dead-reckoned to t, for t on a `step_min` grid.

    Only reports with SOG and COG, from ships (station_kind null or "ship": not aids to navigation, SAR
    aircraft or beacons). Columns: snap, mmsi, ts, lat, lon (at snap), sog, cog, heading; rows in (snap, mmsi)
    order, which also keeps the pair join's cells close together (2x faster than in report order). The reports
    may come in any order: the latest is the one with the largest ts, a tie going to the later row, which is
    the last of its run in stably (mmsi, ts)-sorted tracks. A group-by of row numbers picks it, and spares a day
    partition the sort of all its reports.
    """
    every = f"{max(1, round(step_min * 60))}s"
    step = pl.duration(seconds=max(1, round(step_min * 60)))
    is_ship = pl.col("station_kind").is_null() | (pl.col("station_kind") == "ship")
    hours = pl.col("_age_min") / 60.0
    cog = pl.col("cog").cast(pl.Float64).radians()
    sog = pl.col("sog").cast(pl.Float64)
    reports = (
        _lazy(tracks)
        .filter(pl.col("sog").is_not_null() & pl.col("cog").is_not_null() & is_ship)
        .select(
            "mmsi",
            "ts",
            "lat",
            "lon",
            "sog",
            "cog",
            "heading",
            snap=pl.col("ts").dt.truncate(every) + step,
        )
        .collect()
    )
    latest = (
        reports.lazy()
        .with_row_index("_row")
        .group_by("mmsi", "snap")
        .agg(pl.col("_row").sort_by("ts", "_row").last())
        .sort("snap", "mmsi")
        .collect()
        .get_column("_row")
    )
    return (
        reports[latest]
        .lazy()
        .with_columns(_age_min=minutes_between("ts", "snap"))
        .with_columns(
            lat=pl.col("lat") + sog * cog.cos() * hours / NM_PER_DEG_LAT,
            lon=pl.col("lon") + sog * cog.sin() * hours / (NM_PER_DEG_LAT * pl.col("lat").radians().cos()),
        )
        .drop("_age_min")
    )


def _candidate_pairs(
    snaps: pl.DataFrame, close_nm: float, horizon_min: float, moving_kn: float, cell_nm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers (first, second) of the `snaps` pairs whose swept boxes over the horizon (padded by
    close_nm / 2) share a grid cell, the lower MMSI first.

    If two vessels come within close_nm at some time in [0, horizon], their midpoint then lies in both padded
    boxes, so no qualifying pair is missed. At least one vessel of a pair must be moving (>= moving_kn): two
    stationary vessels never close. Each pair appears once (the lowest shared cell). Only row numbers go
    through the join: the caller gathers what it needs for the pairs it keeps.
    """
    cell_deg = cell_nm / NM_PER_DEG_LAT
    h = horizon_min / 60.0
    sog = pl.col("sog").cast(pl.Float64)
    cog = pl.col("cog").cast(pl.Float64).radians()
    coslat = pl.col("lat").radians().cos().clip(0.05, 1.0)
    lat_end = pl.col("lat") + sog * cog.cos() * h / NM_PER_DEG_LAT
    lon_end = pl.col("lon") + sog * cog.sin() * h / (NM_PER_DEG_LAT * coslat)
    pad_lat = 0.55 * close_nm / NM_PER_DEG_LAT
    pad_lon = pad_lat / coslat
    boxes = snaps.lazy().select(
        "snap",
        "mmsi",
        _i=pl.int_range(pl.len(), dtype=pl.UInt32),
        _cx0=((pl.min_horizontal("lon", lon_end) - pad_lon) / cell_deg).floor().cast(pl.Int32),
        _cx1=((pl.max_horizontal("lon", lon_end) + pad_lon) / cell_deg).floor().cast(pl.Int32),
        _cy0=((pl.min_horizontal("lat", lat_end) - pad_lat) / cell_deg).floor().cast(pl.Int32),
        _cy1=((pl.max_horizontal("lat", lat_end) + pad_lat) / cell_deg).floor().cast(pl.Int32),
        _moving=sog >= moving_kn,
    )
    cells = (
        boxes.with_columns(_cx=pl.int_ranges("_cx0", pl.col("_cx1") + 1))
        .explode("_cx")
        .with_columns(_cy=pl.int_ranges("_cy0", pl.col("_cy1") + 1))
        .explode("_cy")
        .drop("_cx1", "_cy1")
    )
    movers = cells.filter(pl.col("_moving"))
    swap = pl.col("mmsi") > pl.col("mmsi_b")
    pairs = (
        movers.join(cells, on=["snap", "_cx", "_cy"], suffix="_b")
        .filter(
            (pl.col("mmsi") != pl.col("mmsi_b"))
            & (~pl.col("_moving_b") | (pl.col("mmsi") < pl.col("mmsi_b")))
            & (pl.col("_cx") == pl.max_horizontal("_cx0", "_cx0_b"))
            & (pl.col("_cy") == pl.max_horizontal("_cy0", "_cy0_b"))
        )
        .select(
            first=pl.when(swap).then(pl.col("_i_b")).otherwise(pl.col("_i")),
            second=pl.when(swap).then(pl.col("_i")).otherwise(pl.col("_i_b")),
        )
        .collect()
    )
    return pairs["first"].to_numpy(), pairs["second"].to_numpy()


def encounter_hits(
    tracks,
    close_nm: float,
    horizon_min: float,
    step_min: float = SNAPSHOT_MINUTES,
    min_rel_speed_kn: float = 1.0,
    cell_nm: float = 3.0,
    bins: tuple[datetime, datetime] | None = None,
) -> pl.DataFrame:
    """Every (snapshot, pair) that qualifies as a close encounter (see `close_encounters`), one row each in
    (snap, mmsi_1, mmsi_2) order, with what `encounter_episodes` reads: snap, the pair's MMSIs and kinematics
    at the snapshot (lat, lon, sog, cog; _1 the lower MMSI), cpa_nm, tcpa_min, encounter, give_way,
    distance_nm.

    A snapshot at t uses only reports in [t - step, t), so with `bins` = (start, end) only snapshots whose
    interval starts in [start, end) are kept and the hits of disjoint time ranges simply add up: a day's
    hits need that day's reports plus, when the step does not divide a day, the next day's first step.
    """
    snaps = snapshot_positions(tracks, step_min)
    if bins is not None:
        opened = pl.col("snap") - pl.duration(seconds=max(1, round(step_min * 60)))
        snaps = snaps.filter((opened >= bins[0]) & (opened < bins[1]))
    snaps = snaps.collect()
    first, second = _candidate_pairs(snaps, close_nm, horizon_min, min_rel_speed_kn / 2.0, cell_nm)
    lat, lon, sog, cog, heading = (
        snaps[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
        for c in ("lat", "lon", "sog", "cog", "heading")
    )
    # velocities once per vessel and snapshot, not once per pair
    vx, vy = velocity_kn(sog, cog)
    velocity = sog * np.exp(1j * np.radians(cog))
    rx, ry = relative_position(lat[first], lon[first], lat[second], lon[second])
    motion = (rx, ry, vx[second] - vx[first], vy[second] - vy[first])
    cpa, tcpa = closest_approach(*motion)
    # the threshold test as `close_encounters` defines it (an exact 1 kn between a pair is common in real data)
    rel_speed = np.abs(velocity[second] - velocity[first])
    keep = (tcpa > 0) & (tcpa <= horizon_min) & (cpa < close_nm) & (rel_speed >= min_rel_speed_kn)
    # in (snap, mmsi_1, mmsi_2) order, whatever order the threads of the join gave
    kept = np.flatnonzero(keep)
    kept = kept[np.argsort((first[kept].astype(np.int64) << 32) | second[kept], kind="stable")]
    first, second = first[kept], second[kept]
    encounter, give_way = encounter_codes(
        *(m[kept] for m in motion), cog[first], cog[second], heading1=heading[first], heading2=heading[second]
    )
    kin = ["mmsi", "lat", "lon", "sog", "cog"]
    return pl.concat(
        [
            snaps.select("snap", *kin)[first].rename({c: f"{c}_1" for c in kin}),
            snaps.select(kin)[second].rename({c: f"{c}_2" for c in kin}),
            pl.DataFrame({"cpa_nm": cpa[kept], "tcpa_min": tcpa[kept]}),
        ],
        how="horizontal",
    ).with_columns(
        encounter=pl.Series(ENCOUNTERS, dtype=pl.String).gather(np.ravel(encounter)),
        give_way=pl.Series(GIVE_WAY, dtype=pl.String).gather(np.ravel(give_way)),
        distance_nm=haversine_nm_expr(pl.col("lat_1"), pl.col("lon_1"), pl.col("lat_2"), pl.col("lon_2")),
    )


def encounter_episodes(hits: pl.DataFrame, step_min: float = SNAPSHOT_MINUTES) -> pl.DataFrame:
    """Consecutive qualifying snapshots of a pair as one episode (the columns of `close_encounters`)."""
    kin = ("lat", "lon", "sog", "cog")
    step_us = max(1, round(step_min * 60)) * 1_000_000
    keys = ["mmsi_1", "mmsi_2"]
    new = ((pl.col("snap") - pl.col("snap").shift(1)).dt.total_microseconds() > step_us) | _changed(keys)
    tcpa_us = (pl.col("tcpa_min") * 60e6).round().cast(pl.Int64)
    give_way_mmsi = pl.when(pl.col("give_way") == "first").then(pl.col("mmsi_1"))
    give_way_mmsi = give_way_mmsi.when(pl.col("give_way") == "second").then(pl.col("mmsi_2"))
    return (
        hits.sort(keys + ["snap"])
        .with_columns(_episode=new.fill_null(True).cum_sum())
        .group_by("_episode", maintain_order=True)
        .agg(
            start=pl.col("snap").min(),
            end=pl.col("snap").max(),
            n_snapshots=pl.len(),
            min_cpa_nm=pl.col("cpa_nm").min(),
            _first=pl.struct(pl.all()).first(),
        )
        .unnest("_first")
        .select(
            "mmsi_1",
            "mmsi_2",
            "start",
            "end",
            "n_snapshots",
            "min_cpa_nm",
            ts=pl.col("snap"),
            distance_nm=pl.col("distance_nm"),
            cpa_nm=pl.col("cpa_nm"),
            tcpa_min=pl.col("tcpa_min"),
            cpa_time=pl.col("snap") + pl.duration(microseconds=tcpa_us),
            encounter=pl.col("encounter"),
            give_way=pl.col("give_way"),
            give_way_mmsi=give_way_mmsi,
            **{f"{f}_{i}": pl.col(f"{f}_{i}").cast(pl.Float64) for i in (1, 2) for f in kin},
        )
        .sort(["start", "mmsi_1", "mmsi_2"])
    )


def close_encounters(
    tracks,
    close_nm: float,
    horizon_min: float,
    step_min: float = SNAPSHOT_MINUTES,
    min_rel_speed_kn: float = 1.0,
    cell_nm: float = 3.0,
) -> pl.DataFrame:
    """Pairs predicted to pass within `close_nm` in the next `horizon_min` minutes, as episodes.

    Every `step_min` minutes each vessel's latest report is dead-reckoned to the snapshot time; a pair
    qualifies at that snapshot when it is closing (0 < TCPA <= horizon), CPA < close_nm, and its relative
    speed is >= min_rel_speed_kn (moored neighbours with jittery SOG are not encounters). Consecutive
    qualifying snapshots of a pair form one episode, described at its first snapshot (ts = start): the
    situation when risk first arises fixes the COLREGs roles (Rule 13(d)), so encounter and give_way are
    classified there (see `classify_encounter`; "first"/"second" mean mmsi_1 < mmsi_2); min_cpa_nm is the
    smallest predicted CPA over the episode. Columns: mmsi_1, mmsi_2, start, end, n_snapshots, min_cpa_nm,
    ts, distance_nm, cpa_nm, tcpa_min, cpa_time, encounter, give_way, give_way_mmsi, lat_1, lon_1, sog_1,
    cog_1, lat_2, lon_2, sog_2, cog_2 (positions dead-reckoned to ts).
    """
    hits = encounter_hits(tracks, close_nm, horizon_min, step_min, min_rel_speed_kn, cell_nm)
    return encounter_episodes(hits, step_min)


def vessel_events(tracks, params: FactsParams, zones: list[Zone] | None = None) -> dict[str, pl.DataFrame]:
    """The events about one vessel's own track (`VESSEL_EVENTS`): tracks of any set of whole vessels give
    exactly their rows of the all-vessel tables."""
    df = tracks.collect() if isinstance(tracks, pl.LazyFrame) else tracks
    return {
        "gaps": reporting_gaps(df, params.gap_minutes),
        "jumps": position_jumps(df, params.jump_speed_kn, params.gap_minutes),
        "loitering": loitering(df, params.loiter_radius_nm, params.loiter_minutes),
        "status": status_inconsistencies(df),
        "speed_zones": speed_zone_violations(df, zones),
    }


def detect_events(tracks, params: FactsParams, zones: list[Zone] | None = None) -> dict[str, pl.DataFrame]:
    """All event tables for a tracks frame, with thresholds from `FactsParams`.

    Keys: gaps, jumps, loitering, status, speed_zones, encounters. The tracks are materialised once.
    """
    df = tracks.collect() if isinstance(tracks, pl.LazyFrame) else tracks
    return {
        **vessel_events(df, params, zones),
        "encounters": close_encounters(df, params.close_encounter_nm, params.cpa_horizon_min),
    }
