"""Speed-restricted zones (package data `zones.csv`): geometry, active season, and who they apply to.

The shipped table holds the NOAA North Atlantic right whale Seasonal Management Areas of 50 CFR 224.105
(10 kn, vessels >= 65 ft = 19.8 m, seasonal). Seaward corners and the 20-nm circle centres are transcribed
from the rule; edges that the rule draws along the shoreline, and the COLREGS demarcation lines that cut the
circles off at harbour entrances, are approximated with a few vertices (hundreds of metres, not charts).
A zone is a polygon or a circle (radius in nm), minus an optional exclusion polygon; vertices are
"lat lon;lat lon;..." in decimal degrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

from maritime_slm.geo import NM_PER_DEG_LAT, haversine_nm


def _vertices(text: str | None) -> np.ndarray | None:
    if text is None or not str(text).strip():
        return None
    pts = [tuple(float(v) for v in p.split()) for p in str(text).split(";") if p.strip()]
    arr = np.asarray(pts, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) < 3:
        raise ValueError(f"zone polygon needs >= 3 'lat lon' vertices, got {text!r}")
    return arr


def points_in_polygon(lat, lon, vertices: np.ndarray) -> np.ndarray:
    """Even-odd ray casting in lat/lon degrees, vectorised over points (the loop is over the few edges)."""
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    inside = np.zeros(np.broadcast(lat, lon).shape, dtype=bool)
    ys, xs = vertices[:, 0], vertices[:, 1]
    for i in range(len(vertices)):
        y1, x1, y2, x2 = ys[i - 1], xs[i - 1], ys[i], xs[i]
        if y1 == y2:
            continue
        crosses = (y1 > lat) != (y2 > lat)
        x_at = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (lon < x_at)
    return inside


def _month_day(mmdd: str) -> int:
    month, day = (int(p) for p in mmdd.split("-"))
    return month * 100 + day


@dataclass(frozen=True, eq=False)
class Zone:
    zone_id: str
    name: str
    regulation: str
    active_from: str  # "MM-DD", inclusive
    active_to: str  # "MM-DD", inclusive; earlier than active_from means the season spans the new year
    speed_limit_kn: float
    min_length_m: float
    polygon: np.ndarray | None = None
    center: tuple[float, float] | None = None
    radius_nm: float | None = None
    exclude: np.ndarray | None = None

    def bbox(self) -> tuple[float, float, float, float]:
        """(lat_min, lat_max, lon_min, lon_max) in degrees: a cheap pre-filter before the exact test."""
        if self.polygon is not None:
            return (
                float(self.polygon[:, 0].min()),
                float(self.polygon[:, 0].max()),
                float(self.polygon[:, 1].min()),
                float(self.polygon[:, 1].max()),
            )
        lat0, lon0 = self.center
        dlat = self.radius_nm / NM_PER_DEG_LAT
        dlon = dlat / np.cos(np.radians(lat0))
        return lat0 - dlat, lat0 + dlat, lon0 - dlon, lon0 + dlon

    def contains(self, lat, lon) -> np.ndarray:
        """Boolean mask: points inside the zone (and outside its exclusion polygon)."""
        lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
        lat_min, lat_max, lon_min, lon_max = self.bbox()
        mask = (lat >= lat_min) & (lat <= lat_max) & (lon >= lon_min) & (lon <= lon_max)
        idx = np.flatnonzero(mask)
        if idx.size:
            la, lo = lat.ravel()[idx], lon.ravel()[idx]
            if self.polygon is not None:
                keep = points_in_polygon(la, lo, self.polygon)
            else:
                keep = np.asarray(haversine_nm(self.center[0], self.center[1], la, lo)) <= self.radius_nm
            if self.exclude is not None:
                keep &= ~points_in_polygon(la, lo, self.exclude)
            flat = mask.ravel()
            flat[idx] = keep
            mask = flat.reshape(mask.shape)
        return mask

    def active(self, month_day) -> np.ndarray:
        """Boolean mask over month*100 + day integers (e.g. 1115 for 15 Nov): inside the season, inclusive."""
        md = np.asarray(month_day)
        lo, hi = _month_day(self.active_from), _month_day(self.active_to)
        return (md >= lo) & (md <= hi) if lo <= hi else (md >= lo) | (md <= hi)


def zones_table(path: str | Path | None = None) -> pl.DataFrame:
    """The zone table as a frame (the shipped `zones.csv` unless `path` is given)."""
    if path is None:
        with resources.as_file(resources.files("maritime_slm.facts") / "zones.csv") as p:
            return pl.read_csv(p, infer_schema_length=0)
    return pl.read_csv(path, infer_schema_length=0)


def load_zones(path: str | Path | None = None) -> list[Zone]:
    """Zones from the shipped table (or `path`), parsed and validated."""
    zones = []
    for row in zones_table(path).iter_rows(named=True):
        shape = row["shape"]
        center = radius = None
        polygon = _vertices(row.get("polygon"))
        if shape == "circle":
            center = (float(row["center_lat"]), float(row["center_lon"]))
            radius = float(row["radius_nm"])
        elif shape != "polygon" or polygon is None:
            raise ValueError(f"zone {row['zone_id']}: shape must be 'polygon' (with vertices) or 'circle'")
        zones.append(
            Zone(
                zone_id=row["zone_id"],
                name=row["name"],
                regulation=row["regulation"],
                active_from=row["active_from"],
                active_to=row["active_to"],
                speed_limit_kn=float(row["speed_limit_kn"]),
                min_length_m=float(row["min_length_m"]),
                polygon=polygon if shape == "polygon" else None,
                center=center,
                radius_nm=radius,
                exclude=_vertices(row.get("exclude_polygon")),
            )
        )
    return zones
