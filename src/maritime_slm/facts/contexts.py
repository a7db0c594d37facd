"""Contexts: stratified AIS snapshots (a time window × a grid cell, N vessels with their reports) for prompts.

Candidates are every (window, cell) with enough ship stations; each gets strata — region, port area vs open
water, local time of day, dominant vessel type, traffic density — and the sample takes candidates round-robin
over strata so rare strata are represented, as in the paper. The aggregation over all points is one lazy polars
query; only the chosen few contexts are built in Python. A context carries exactly the reports its text shows,
so its facts (factsheet.py) are computed from what a model can read.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any, Literal

import numpy as np
import polars as pl

from maritime_slm.ais.simulate import load_ports
from maritime_slm.config import ContextParams, FactsParams
from maritime_slm.facts.tracks import exact_mean
from maritime_slm.facts.vessels import STATUS_LABELS, status_label, type_group, type_group_expr
from maritime_slm.facts.zones import load_zones
from maritime_slm.geo import haversine_nm

STRATA = ["region", "area", "time_of_day", "dominant_type", "density"]

# (region, lat_min, lat_max, lon_min, lon_max), first match wins: the U.S. AIS coverage split the way
# MarineCadastre users usually talk about it.
REGION_BOXES = [
    ("Alaska", 51.0, 72.0, -180.0, -129.0),
    ("Hawaii", 18.0, 23.5, -161.0, -154.0),
    ("Caribbean", 17.0, 19.5, -72.0, -64.0),
    ("Great Lakes", 41.0, 49.5, -92.5, -75.8),
    ("Gulf of Mexico", 17.0, 31.5, -98.0, -81.0),
    ("Inland Rivers", 31.5, 41.0, -97.0, -82.0),
    ("West Coast", 30.0, 51.0, -130.0, -115.0),
    ("East Coast", 23.5, 48.0, -82.0, -60.0),
]


def region_expr(lat: pl.Expr, lon: pl.Expr) -> pl.Expr:
    expr = pl.lit("Other")
    for name, la0, la1, lo0, lo1 in reversed(REGION_BOXES):
        expr = pl.when(lat.is_between(la0, la1) & lon.is_between(lo0, lo1)).then(pl.lit(name)).otherwise(expr)
    return expr


def time_of_day_expr(ts: pl.Expr, lon: pl.Expr) -> pl.Expr:
    """Local *solar* time (UTC + lon/15 h): comparable across time zones without a tz database."""
    hour = ((ts.dt.hour().cast(pl.Float64) + ts.dt.minute() / 60.0 + lon / 15.0) % 24.0 + 24.0) % 24.0
    return (
        pl.when(hour < 6)
        .then(pl.lit("night"))
        .when(hour < 12)
        .then(pl.lit("morning"))
        .when(hour < 18)
        .then(pl.lit("afternoon"))
        .otherwise(pl.lit("evening"))
    )


def with_cell_keys(points: pl.LazyFrame, params: ContextParams) -> pl.LazyFrame:
    """Ship reports keyed by their (time window, grid cell): the unit a context is drawn from."""
    cell = params.cell_deg
    return points.filter(pl.col("station_kind") == "ship").with_columns(
        window=pl.col("ts").dt.truncate(f"{window_seconds(params)}s"),
        cell_lat=(pl.col("lat") / cell).floor().cast(pl.Int32),
        cell_lon=(pl.col("lon") / cell).floor().cast(pl.Int32),
    )


def candidate_cells(points: pl.LazyFrame, params: ContextParams) -> pl.DataFrame:
    """One row per (window, cell) with its ship count and centre: the population the sample is drawn from."""
    per_vessel = (
        with_cell_keys(points, params)
        .group_by("window", "cell_lat", "cell_lon", "mmsi")
        .agg(
            lat=exact_mean("lat"),
            lon=exact_mean("lon"),
            type_group=type_group_expr(pl.col("vessel_type").drop_nulls().last()),
        )
    )
    cells = (
        per_vessel.group_by("window", "cell_lat", "cell_lon")
        .agg(
            n_vessels=pl.len(),
            lat=exact_mean("lat"),
            lon=exact_mean("lon"),
            dominant_type=pl.col("type_group").mode().sort().first(),
        )
        .filter(pl.col("n_vessels") >= params.min_vessels)
        .collect(engine="streaming")
    )
    return cells.sort("window", "cell_lat", "cell_lon")


def assign_strata(cells: pl.DataFrame, params: ContextParams, facts: FactsParams) -> pl.DataFrame:
    ports = load_ports()
    if cells.is_empty():
        return cells.with_columns(
            pl.lit(None, pl.String).alias("nearest_port"),
            pl.lit(None, pl.Float64).alias("nearest_port_nm"),
            *[pl.lit(None, pl.String).alias(c) for c in ["region", "area", "time_of_day", "density"]],
        )
    dist = haversine_nm(
        cells["lat"].to_numpy()[:, None],
        cells["lon"].to_numpy()[:, None],
        ports["lat"].to_numpy()[None, :],
        ports["lon"].to_numpy()[None, :],
    )
    nearest = dist.argmin(axis=1)
    n = params.vessels_per_context
    return cells.with_columns(
        nearest_port=pl.Series(ports["port"].to_numpy()[nearest]),
        nearest_port_nm=pl.Series(dist[np.arange(len(cells)), nearest]),
    ).with_columns(
        region=region_expr(pl.col("lat"), pl.col("lon")),
        area=pl.when(pl.col("nearest_port_nm") <= facts.port_area_nm)
        .then(pl.lit("port area"))
        .otherwise(pl.lit("open water")),
        time_of_day=time_of_day_expr(pl.col("window"), pl.col("lon")),
        density=pl.when(pl.col("n_vessels") < 1.5 * n)
        .then(pl.lit("low"))
        .when(pl.col("n_vessels") < 4 * n)
        .then(pl.lit("medium"))
        .otherwise(pl.lit("high")),
    )


def stratified_sample(cells: pl.DataFrame, n_contexts: int, seed: int) -> pl.DataFrame:
    """Round-robin over strata (shuffled by seed): every stratum gets a context before any gets a second."""
    rng = random.Random(seed)
    groups = cells.select(STRATA).with_row_index("_row").group_by(STRATA, maintain_order=True).agg("_row")
    by_key = sorted(zip(groups.select(STRATA).iter_rows(), groups["_row"].to_list(), strict=True))
    queues = [rng.sample(rows, len(rows)) for _, rows in by_key]
    rng.shuffle(queues)
    chosen: list[int] = []
    while len(chosen) < n_contexts and any(queues):
        for queue in queues:
            if queue and len(chosen) < n_contexts:
                chosen.append(queue.pop())
    return cells[sorted(chosen)] if chosen else cells.clear()


def strata_table(cells: pl.DataFrame, chosen: pl.DataFrame) -> pl.DataFrame:
    """Candidates vs chosen per stratum value (table_1 rows)."""
    rows = []
    for stratum in STRATA:
        avail = cells.group_by(stratum).len("candidates")
        took = chosen.group_by(stratum).len("contexts")
        joined = avail.join(took, on=stratum, how="left").fill_null(0).sort("candidates", descending=True)
        for value, n_cand, n_ctx in joined.iter_rows():
            rows.append({"stratum": stratum, "value": value, "candidates": n_cand, "contexts": n_ctx})
    return pl.DataFrame(rows, schema={"stratum": pl.String, "value": pl.String, "candidates": pl.Int64,
                                      "contexts": pl.Int64})  # fmt: skip


def _pick_report_rows(
    ts_s: np.ndarray, lat: np.ndarray, lon: np.ndarray, k: int, facts: FactsParams
) -> list[int]:
    """k reports spread over the window (k = 1: the latest, a snapshot), plus both ends of the largest gap and of
    the fastest implied hop, so the evidence for an anomaly is in the context whenever the anomaly is."""
    n = len(ts_s)
    spread = np.linspace(0, n - 1, num=min(k, n)) if k > 1 else np.array([n - 1])
    keep = set(np.unique(spread.round().astype(int)).tolist())
    if n >= 2:
        dt_min = np.diff(ts_s) / 60.0
        gap = int(np.argmax(dt_min))
        if dt_min[gap] > facts.gap_minutes:
            keep.update({gap, gap + 1})
        hop_nm = haversine_nm(lat[:-1], lon[:-1], lat[1:], lon[1:])
        with np.errstate(divide="ignore", invalid="ignore"):
            implied = np.where(dt_min > 0, hop_nm / (dt_min / 60.0), np.inf)
        jump = int(np.argmax(implied))
        if implied[jump] > facts.jump_speed_kn:
            keep.update({jump, jump + 1})
    return sorted(keep)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def serialize(ctx: dict[str, Any], layout: Literal["table", "compact"] = "table") -> str:
    """A table-like text: what the teacher and the student read (`ContextParams.layout`)."""
    start = datetime.fromisoformat(ctx["window_start"])
    end = datetime.fromisoformat(ctx["window_end"])
    lines = [
        f"AIS snapshot {start:%Y-%m-%d %H:%M}-{end:%H:%M} UTC, {ctx['region']}, "
        f"centre {ctx['center_lat']:.3f}, {ctx['center_lon']:.3f}",
    ]
    if ctx["ports"]:
        lines.append(
            "Ports: " + "; ".join(f"{p['port']} ({p['lat']:.4f}, {p['lon']:.4f})" for p in ctx["ports"])
        )
    for z in ctx["zones"]:
        lines.append(
            f"Speed zone: {z['name']} - {z['speed_limit_kn']:g} kn limit for vessels >= {z['min_length_m']:g} m, "
            f"in force {z['active']}; contains positions of {', '.join(str(m) for m in z['mmsis']) or 'none'}"
        )
    by_vessel: dict[int, list[dict[str, Any]]] = {}
    for r in ctx["reports"]:
        by_vessel.setdefault(r["mmsi"], []).append(r)
    if layout == "compact":
        return "\n".join(
            lines + _compact_vessels(ctx["vessels"], by_vessel, start.replace(minute=0, second=0))
        )
    lines.append(
        "Vessels (MMSI|name|type (code)|flag|class|length x beam m|draft m|nav status), each followed by its "
        "reports (time UTC|lat|lon|SOG kn|COG deg|heading deg):"
    )
    for v in ctx["vessels"]:
        dims = f"{_fmt(v['length'], 0)}x{_fmt(v['width'], 0)}"
        code = "-" if v["vessel_type"] is None else v["vessel_type"]
        lines.append(
            f"{v['mmsi']}|{v['name'] or '-'}|{v['type_group']} ({code})|{v['flag'] or '-'}|"
            f"{v['transceiver'] or '-'}|{dims}|{_fmt(v['draft'])}|{v['status_label']}"
        )
        for r in by_vessel.get(v["mmsi"], []):
            t = datetime.fromisoformat(r["ts"])
            lines.append(
                f"  {t:%H:%M:%S}|{r['lat']:.4f}|{r['lon']:.4f}|{_fmt(r['sog'])}|{_fmt(r['cog'])}|"
                f"{_fmt(r['heading'], 0)}"
            )
    return "\n".join(lines)


def _status_code(code: int | None) -> int:
    """The code whose label a vessel's status has (a missing or out-of-range code reads as 15, "undefined")."""
    return int(code) if code is not None and int(code) in STATUS_LABELS else 15


def _compact_vessels(
    vessels: list[dict[str, Any]], by_vessel: dict[int, list[dict[str, Any]]], hour: datetime
) -> list[str]:
    """One line per vessel with its reports, under a heading per type group and transceiver class: about 60 tokens
    a vessel, so a 32k window holds 500. Report times are minutes:seconds past the window's hour; draught and the
    AIS type code are left out (no fact reads them); the status is its code, with one legend for the codes
    present."""
    codes = sorted({_status_code(v["status"]) for v in vessels})
    lines = [
        "Navigational status codes: " + "; ".join(f"{c} {STATUS_LABELS[c]}" for c in codes),
        "Vessels under a heading of their type group and class, one per line (MMSI|name|flag|length x beam m|"
        f"status code|reports: time as minutes:seconds past {hour:%H:%M} UTC, lat, lon, SOG kn, COG deg, heading "
        'deg; reports separated by ";"):',
    ]
    for group, cls in sorted({(v["type_group"], v["transceiver"] or "-") for v in vessels}):
        lines.append(f"{group}, class {cls}:")
        for v in vessels:
            if (v["type_group"], v["transceiver"] or "-") != (group, cls):
                continue
            reports = ";".join(
                f"{_past(datetime.fromisoformat(r['ts']), hour)} {r['lat']:.4f} {r['lon']:.4f} {_fmt(r['sog'])} "
                f"{_fmt(r['cog'])} {_fmt(r['heading'], 0)}"
                for r in by_vessel.get(v["mmsi"], [])
            )
            lines.append(
                f"{v['mmsi']}|{v['name'] or '-'}|{v['flag'] or '-'}|{_fmt(v['length'], 0)}x{_fmt(v['width'], 0)}|"
                f"{_status_code(v['status'])}|{reports}"
            )
    return lines


def _past(when: datetime, hour: datetime) -> str:
    minutes, seconds = divmod(int((when - hour).total_seconds()), 60)
    return f"{minutes:02d}:{seconds:02d}"


def _active_zones(ctx_lat: np.ndarray, ctx_lon: np.ndarray, mmsi: np.ndarray, when: datetime) -> list[dict]:
    found = []
    for zone in load_zones():
        inside = zone.contains(ctx_lat, ctx_lon)
        if inside.any():
            found.append(
                {
                    "zone_id": zone.zone_id,
                    "name": zone.name,
                    "speed_limit_kn": zone.speed_limit_kn,
                    "min_length_m": zone.min_length_m,
                    "active": f"{zone.active_from} to {zone.active_to}",
                    "in_force": bool(zone.active(when.month * 100 + when.day)),
                    "mmsis": sorted({int(m) for m in mmsi[inside]}),
                }
            )
    return found


def _vessel_and_reports(
    mmsi: int, rows: pl.DataFrame, flags: dict[int, str], params: ContextParams, facts: FactsParams
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A vessel's row and the reports a context shows of it, from its time-sorted points in the cell."""
    ts_s = rows["ts"].dt.epoch("s").to_numpy()
    picked = _pick_report_rows(ts_s, rows["lat"].to_numpy(), rows["lon"].to_numpy(), params.reports_per_vessel,
                               facts)  # fmt: skip
    last = rows.row(len(rows) - 1, named=True)
    static = {c: rows[c].drop_nulls().tail(1).to_list() for c in
              ["vessel_name", "imo", "call_sign", "vessel_type", "length", "width", "draft", "transceiver"]}  # fmt: skip
    static = {c: (v[0] if v else None) for c, v in static.items()}
    vessel = {
        "mmsi": mmsi,
        "name": static["vessel_name"],
        "imo": static["imo"],
        "call_sign": static["call_sign"],
        "vessel_type": static["vessel_type"],
        "type_group": type_group(static["vessel_type"]),
        "flag": flags.get(mmsi),
        "transceiver": static["transceiver"],
        "length": static["length"],
        "width": static["width"],
        "draft": static["draft"],
        "status": last["status"],
        "status_label": status_label(last["status"]),
    }
    reports = []
    for i in picked:
        r = rows.row(i, named=True)
        reports.append(
            {
                "mmsi": mmsi,
                "ts": r["ts"].isoformat(),
                "lat": r["lat"],
                "lon": r["lon"],
                "sog": r["sog"],
                "cog": r["cog"],
                "heading": r["heading"],
                "status": r["status"],
            }
        )
    return vessel, reports


def build_context(
    cell: dict[str, Any],
    points: pl.DataFrame,
    flags: dict[int, str],
    params: ContextParams,
    facts: FactsParams,
    count_tokens,
) -> dict[str, Any] | None:
    """One context from the points of its (window, cell): the vessels nearest the cell's centre, as many as fit the
    token budget (at least 2). A context's tokens grow with every vessel added (its lines come last), so the
    largest count that fits is found by bisection: a few counts of the text instead of one per vessel dropped.

    Points are ordered by (mmsi, ts, lat, lon), a key that ingest keeps unique, so the context does not depend
    on the order they were read in.
    """
    pts = points.sort("mmsi", "ts", "lat", "lon")
    latest = pts.group_by("mmsi", maintain_order=True).last()
    dist = haversine_nm(latest["lat"].to_numpy(), latest["lon"].to_numpy(), cell["lat"], cell["lon"])
    order = [int(m) for m in latest["mmsi"].to_numpy()[np.argsort(dist, kind="stable")]]
    nearest = order[: params.vessels_per_context]
    if len(nearest) < 2:
        return None
    parts = pts.filter(pl.col("mmsi").is_in(nearest)).partition_by("mmsi", as_dict=True)
    records = {m: _vessel_and_reports(m, parts[(m,)], flags, params, facts) for m in nearest}
    ports = load_ports()
    port_d = haversine_nm(ports["lat"].to_numpy(), ports["lon"].to_numpy(), cell["lat"], cell["lon"])
    near_ports = [
        {"port": p, "lat": la, "lon": lo, "center_nm": float(d)}
        for p, la, lo, d in zip(ports["port"], ports["lat"], ports["lon"], port_d, strict=True)
        if d <= facts.port_area_nm + 2 * facts.port_radius_nm
    ]

    def context_of(n: int) -> dict[str, Any]:
        vessels = [records[m][0] for m in nearest[:n]]
        reports = [r for m in nearest[:n] for r in records[m][1]]
        rep = pl.DataFrame(reports)
        ctx = {
            "window_start": cell["window"].isoformat(),
            "window_end": cell["window_end"].isoformat(),
            "center_lat": float(cell["lat"]),
            "center_lon": float(cell["lon"]),
            **{k: cell[k] for k in STRATA},
            "nearest_port": cell["nearest_port"],
            "nearest_port_nm": float(cell["nearest_port_nm"]),
            "ports": near_ports,
            "zones": _active_zones(
                rep["lat"].to_numpy(), rep["lon"].to_numpy(), rep["mmsi"].to_numpy(), cell["window"]
            ),  # fmt: skip
            "vessels": vessels,
            "reports": reports,
        }
        ctx["text"] = serialize(ctx, params.layout)
        ctx["n_tokens"] = count_tokens([ctx["text"]])[0]
        return ctx

    best = context_of(len(nearest))
    if best["n_tokens"] <= params.token_budget:
        return best
    fits, too_big = None, len(nearest)  # the largest count known to fit; the smallest known not to
    low = 2
    while low < too_big:
        middle = (low + too_big) // 2
        ctx = context_of(middle)
        if ctx["n_tokens"] <= params.token_budget:
            fits, low = ctx, middle + 1
        else:
            too_big = middle
    return fits


def window_seconds(params: ContextParams) -> int:
    return int(params.window_minutes * 60)


def choose_cells(cells: pl.DataFrame, params: ContextParams) -> pl.DataFrame:
    """The stratified sample of candidate cells, with each window's end."""
    chosen = stratified_sample(cells, params.n_contexts, params.seed)
    return chosen.with_columns(window_end=pl.col("window") + pl.duration(seconds=window_seconds(params)))


def cell_points(points: pl.LazyFrame, chosen: pl.DataFrame, params: ContextParams) -> pl.LazyFrame:
    """The ship reports of the chosen (window, cell)s, keyed by them."""
    keys = chosen.select("window", "cell_lat", "cell_lon")
    return with_cell_keys(points, params).join(keys.lazy(), on=["window", "cell_lat", "cell_lon"], how="semi")


def assemble_contexts(
    chosen: pl.DataFrame,
    points: pl.DataFrame,
    flags: dict[int, str],
    params: ContextParams,
    facts: FactsParams,
    count_tokens,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Contexts of the chosen cells, in sample order, from their points (`cell_points`); ids count kept ones."""
    from tqdm.auto import tqdm

    by_cell = points.partition_by("window", "cell_lat", "cell_lon", as_dict=True)
    contexts = []
    for row in tqdm(chosen.iter_rows(named=True), total=len(chosen), desc="contexts", disable=not progress):
        key = (row["window"], row["cell_lat"], row["cell_lon"])
        ctx = build_context(row, by_cell[key], flags, params, facts, count_tokens)
        if ctx is not None:
            ctx["context_id"] = f"ctx-{len(contexts):05d}"
            contexts.append(ctx)
    return contexts


def sample_contexts(
    points: pl.LazyFrame,
    flags: dict[int, str],
    params: ContextParams,
    facts: FactsParams,
    count_tokens,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], pl.DataFrame, pl.DataFrame]:
    """(contexts, all candidate cells with strata, strata table) from all points at once. Deterministic for a
    seed; `facts.partitions` computes the same in day partitions."""
    cells = assign_strata(candidate_cells(points, params), params, facts)
    chosen = choose_cells(cells, params)
    pts = cell_points(points, chosen, params).collect(engine="streaming")
    contexts = assemble_contexts(chosen, pts, flags, params, facts, count_tokens, progress)
    return contexts, cells, strata_table(cells, chosen)
