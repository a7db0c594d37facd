"""Paper artifacts of the ingest stage: figure 1 (traffic density), figure 2 (quality funnel), table 1 rows.

Figures are drawn on `matplotlib.figure.Figure` objects (no pyplot state), sized for a two-column paper page
(7 in wide) at 200 dpi. Figure 1 aggregates points into small lat/lon cells with one streaming group-by first,
so it costs the same for a sample and for a year of data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from maritime_slm.ais.clean import REASONS
from maritime_slm.ais.simulate import load_ports
from maritime_slm.report.tables import write_table

DPI = 200
PAPER_RECORDS = 3_200_000_000  # the paper: ~3.2 B AIS records, one year of U.S. coastal data
REASON_LABELS = {
    "malformed_line": "malformed line",
    "bad_mmsi": "MMSI not 9 digits",
    "bad_timestamp": "bad timestamp",
    "bad_number": "unparseable number",
    "missing_position": "missing position",
    "position_out_of_range": "position out of range",
    "null_island": "position (0, 0)",
    "duplicate": "exact duplicate",
}
# Map panels: (title, lon range, lat range). CONUS first; the rest are insets below it.
PANELS = {
    "Contiguous U.S. and Great Lakes": ((-127.5, -64.0), (23.0, 50.5)),
    "Alaska": ((-172.0, -128.0), (50.5, 68.0)),
    "Hawaii": ((-161.0, -154.0), (18.5, 22.8)),
    "Caribbean": ((-68.5, -64.0), (17.2, 19.2)),
}
REGION_ANCHORS = {  # where the region name is written on the CONUS panel (lon, lat), away from the coasts
    "West Coast": (-115.5, 45.5),
    "East Coast": (-67.5, 32.0),
    "Gulf of Mexico": (-90.0, 24.6),
    "Great Lakes": (-98.0, 46.0),
}
GRIDSIZE = {"Contiguous U.S. and Great Lakes": 150}  # hexagons across a panel; insets use 45


def density_cells(points: pl.LazyFrame, cell_deg: float = 0.05) -> pl.DataFrame:
    """Report counts per `cell_deg` lat/lon cell (cell centres), with the region of the nearest port."""
    cells = (
        points.select(
            ((pl.col("lat") / cell_deg).floor() * cell_deg + cell_deg / 2).alias("lat"),
            ((pl.col("lon") / cell_deg).floor() * cell_deg + cell_deg / 2).alias("lon"),
        )
        .group_by("lat", "lon")
        .len("reports")
        .collect(engine="streaming")
    )
    ports = load_ports()
    if cells.height == 0:
        return cells.with_columns(region=pl.lit(None, dtype=pl.String))
    lat, lon = cells["lat"].to_numpy(), cells["lon"].to_numpy()
    north = lat[:, None] - ports["lat"].to_numpy()[None, :]
    east = (lon[:, None] - ports["lon"].to_numpy()[None, :]) * np.cos(np.radians(lat))[:, None]
    nearest = np.argmin(north**2 + east**2, axis=1)
    return cells.with_columns(region=pl.Series(ports["region"].to_numpy()[nearest]))


def _points_frame(points: str | Path | pl.LazyFrame) -> pl.LazyFrame:
    if isinstance(points, pl.LazyFrame):
        return points
    return pl.scan_parquet(Path(points), hive_partitioning=True)


def figure_1(points: str | Path | pl.LazyFrame, out_path: str | Path, *, cell_deg: float = 0.05) -> Path:
    """AIS traffic density (hexbin of clean reports, log colour scale) with the regions used as strata."""
    cells = density_cells(_points_frame(points), cell_deg)
    ports = load_ports()
    totals = dict(cells.group_by("region").agg(pl.col("reports").sum()).iter_rows()) if cells.height else {}
    fig = Figure(figsize=(7.0, 5.9), dpi=DPI, layout="constrained")
    grid = fig.add_gridspec(2, 3, height_ratios=[2.6, 1.0])
    axes = [fig.add_subplot(grid[0, :])] + [fig.add_subplot(grid[1, i]) for i in range(3)]
    vmax = max(int(cells["reports"].max() or 1), 2) if cells.height else 2
    norm = LogNorm(vmin=1, vmax=vmax)
    mappable = None
    for ax, (title, (lons, lats)) in zip(axes, PANELS.items(), strict=True):
        inside = cells.filter(pl.col("lon").is_between(*lons) & pl.col("lat").is_between(*lats))
        ax.set_facecolor("#eef3f7")
        if inside.height:
            mappable = ax.hexbin(
                inside["lon"].to_numpy(),
                inside["lat"].to_numpy(),
                C=inside["reports"].to_numpy(),
                reduce_C_function=np.sum,
                gridsize=GRIDSIZE.get(title, 45),
                extent=(*lons, *lats),
                cmap="viridis",
                norm=norm,
                mincnt=1,
                linewidths=0,
            )
        else:
            ax.text(np.mean(lons), np.mean(lats), "no reports", ha="center", va="center", fontsize=8, color="#555555",
                    bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none"))  # fmt: skip
        here = ports.filter(pl.col("lon").is_between(*lons) & pl.col("lat").is_between(*lats))
        ax.scatter(here["lon"], here["lat"], s=9, facecolors="none", edgecolors="#d62728", linewidths=0.7,
                   label="U.S. port (ports.csv)")  # fmt: skip
        ax.set_xlim(*lons)
        ax.set_ylim(*lats)
        ax.set_aspect(1.0 / np.cos(np.radians(np.mean(lats))))
        ax.tick_params(labelsize=7)
        ax.set_xlabel("longitude (°E)", fontsize=8)
        ax.set_ylabel("latitude (°N)", fontsize=8)
        if title in ("Alaska", "Hawaii", "Caribbean"):
            ax.set_title(f"{title}  (n = {totals.get(title, 0):,})", fontsize=8)
    main = axes[0]
    for region, (x, y) in REGION_ANCHORS.items():
        main.text(x, y, f"{region}\nn = {totals.get(region, 0):,}", fontsize=8, ha="center", va="center",
                  bbox=dict(boxstyle="round,pad=0.25", facecolor="white", alpha=0.85, edgecolor="#888888"))  # fmt: skip
    total = int(cells["reports"].sum() or 0) if cells.height else 0
    shown = 0
    for lons, lats in PANELS.values():
        box = cells.filter(pl.col("lon").is_between(*lons) & pl.col("lat").is_between(*lats))
        shown += int(box["reports"].sum() or 0) if box.height else 0
    main.set_title(
        f"AIS traffic density: {total:,} clean reports ({total - shown:,} outside these panels); "
        "regions by nearest port",
        fontsize=9,
    )
    main.legend(loc="lower left", fontsize=7, framealpha=0.9)
    if mappable is not None:
        bar = fig.colorbar(mappable, ax=axes, shrink=0.8, pad=0.01)
        bar.set_label(f"reports per hex cell (log scale; {cell_deg:g}° aggregation)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=DPI)
    return out_path


def _quality(quality: pl.DataFrame | str | Path) -> pl.DataFrame:
    return quality if isinstance(quality, pl.DataFrame) else pl.read_csv(quality)


def figure_2(quality: pl.DataFrame | str | Path, out_path: str | Path) -> Path:
    """Quality funnel: rows in -> rows removed per reason (in check order) -> clean rows; log-scale bars."""
    table = _quality(quality)
    counts = dict(zip(table["reason"], table["rows"], strict=True))
    rows_in = int(table["rows"].sum())
    labels = ["rows in"] + [REASON_LABELS.get(r, r) for r in REASONS] + ["clean"]
    values = [rows_in] + [int(counts.get(r, 0)) for r in REASONS] + [int(counts.get("clean", 0))]
    colors = ["#7f7f7f"] + ["#d62728"] * len(REASONS) + ["#2ca02c"]
    fig = Figure(figsize=(7.0, 3.8), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(labels))[::-1]
    shown = [max(v, 0.8) for v in values]
    ax.barh(y, shown, color=colors, height=0.7)
    for yi, value in zip(y, values, strict=True):
        share = value / rows_in if rows_in else 0.0
        text = f"{value:,}  ({share:.3%})" if value else "0"
        ax.text(max(value, 1) * 1.15, yi, text, va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(0.8, max(rows_in, 10) * 30)
    ax.set_yticks(y, labels, fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("rows (log scale)", fontsize=9)
    ax.set_title("Data-quality funnel: every row is clean or quarantined with one reason", fontsize=10)
    handles = [
        Patch(color=c, label=lbl)
        for c, lbl in (
            ("#7f7f7f", "rows read"),
            ("#d62728", "quarantined, by reason"),
            ("#2ca02c", "kept (clean)"),
        )
    ]
    ax.legend(handles=handles, loc="center right", fontsize=8)
    ax.grid(axis="x", which="major", alpha=0.3)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=DPI)
    return out_path


def table_1_ingest(summary: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """The ingest rows of table 1 (data funnel) beside what the paper reported, plus the 3.2 B projection."""
    rows_in, clean = summary["rows_in"], summary["rows_clean"]
    quarantined = summary["rows_quarantined"]
    rate = summary.get("rows_per_s") or 0
    hours = PAPER_RECORDS / rate / 3600 if rate else None
    top = sorted(((n, r) for r, n in summary["reasons"].items() if n), reverse=True)[:3]
    table = pl.DataFrame(
        {
            "step": [
                "raw AIS records read",
                "quarantined (one reason each)",
                "clean position reports",
                "distinct MMSIs (vessel table)",
                "days covered",
                "ingest throughput (rows/s, this machine)",
                "projected time for 3.2 B records at this throughput",
            ],
            "this_run": [
                f"{rows_in:,}",
                f"{quarantined:,} ({quarantined / rows_in:.3%})" if rows_in else "0",
                f"{clean:,} ({clean / rows_in:.3%})" if rows_in else "0",
                f"{summary.get('vessels') or 0:,}",
                str(len(summary.get("dates", []))),
                f"{rate:,}",
                f"{hours:.1f} h" if hours else "n/a",
            ],
            "paper_reported": [
                "3.2 B (one year, U.S. coastal)",
                "not reported",
                "not reported",
                "not reported",
                "365",
                "not reported",
                "not reported",
            ],  # fmt: skip
            "note": [
                f"{summary['files']} file(s)",
                "; ".join(f"{REASON_LABELS.get(r, r)}: {n:,}" for n, r in top) or "none",
                "partitioned by UTC date",
                "latest static fields per MMSI",
                ", ".join(summary.get("dates", [])[:3])
                + (" ..." if len(summary.get("dates", [])) > 3 else ""),
                "single process, streaming",
                "linear extrapolation, one file after another",
            ],
        }
    )
    out_dir = Path(out_dir)
    md_path = write_table(
        table, out_dir, "table_1_ingest", "Table 1 (ingest rows): raw AIS records to clean reports"
    )
    return out_dir / "table_1_ingest.csv", md_path


def write_ingest_artifacts(stage_dir: str | Path, summary: dict[str, Any]) -> dict[str, Path]:
    """figure_1.png, figure_2.png and table_1_ingest.csv/.md in `stage_dir/paper/`."""
    stage_dir = Path(stage_dir)
    paper = stage_dir / "paper"
    csv_path, md_path = table_1_ingest(summary, paper)
    has_points = any((stage_dir / "points").rglob("*.parquet"))
    points = (
        stage_dir / "points" if has_points else pl.LazyFrame(schema={"lat": pl.Float64, "lon": pl.Float64})
    )
    return {
        "figure_1": figure_1(points, paper / "figure_1.png"),
        "figure_2": figure_2(stage_dir / "quality.csv", paper / "figure_2.png"),
        "table_1_csv": csv_path,
        "table_1_md": md_path,
    }
