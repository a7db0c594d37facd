"""A deterministic AIS simulator that writes the ≤2024 MarineCadastre CSV, with labelled anomalies.

Why: the smoke profile and the benchmarks need AIS of any size, and the anomaly questions need ground truth that
real data does not come with. Vessels move between real U.S. ports (`ports.csv`) along offshore legs, anchor off
them, lie moored, trawl fishing grounds, shuttle as harbour tugs; AtoN stations sit still. Speeds, report
intervals (Class A underway every 10-20 s, thinned from the real 2-10 s; Class B 30 s; at anchor/moored 3 min),
dimensions, flags and sentinels follow what real files look like.

Injected and labelled (labels file: mmsi, kind, start, end, details):
`gap` (reports missing for 15-45 min), `position_jump` (one report 15-40 nm off track), `loitering` (slow
circling in < 0.25 nm for 20-45 min while "under way"), `status_mismatch` (status at anchor/moored while making
way), `close_encounter` (a second vessel crossing within 0.5 nm; one row per vessel), `duplicate` (an exact
repeated report) and `malformed_line` (truncated, ragged, garbage, broken quoting, blank, truncated last line).

Everything is numpy over all reports of a block of vessels at once; blocks of vessels keep memory flat, and each
block is written sorted by time (so a big file is a few time-sorted runs, like concatenated feeds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import polars as pl

from maritime_slm.geo import flat_leg_nm, move_nm, offset_nm

KINDS = ("gap", "position_jump", "loitering", "status_mismatch", "close_encounter")
LABEL_KINDS = (*KINDS, "duplicate", "malformed_line")
MALFORMED_FORMS = ("truncated", "extra_field", "garbage", "semicolons", "unbalanced_quote", "blank")
CSV_COLUMNS = [
    "MMSI",
    "BaseDateTime",
    "LAT",
    "LON",
    "SOG",
    "COG",
    "Heading",
    "VesselName",
    "IMO",
    "CallSign",
    "VesselType",
    "Status",
    "Length",
    "Width",
    "Draft",
    "Cargo",
    "TransceiverClass",
]
LABEL_SCHEMA = {
    "mmsi": pl.Int64,
    "kind": pl.String,
    "start": pl.Datetime("us", "UTC"),
    "end": pl.Datetime("us", "UTC"),
    "details": pl.String,
}


def label(mmsi: int | None, kind: str, start: Any, end: Any, details: str) -> dict[str, Any]:
    """One row of the ground-truth labels: what was injected, for which vessel, when."""
    return {"mmsi": mmsi, "kind": kind, "start": start, "end": end, "details": details}


CLOSE_NM = 0.5
ROWS_PER_BLOCK = 2_000_000
DUPLICATE_RATE = 1e-4

# Behaviours.
TRANSIT, ANCHORED, MOORED, FISHING, HARBOR, ATON, ENCOUNTER = range(7)

# Region weights of U.S. AIS traffic (roughly the share of reports), used to place vessels.
REGION_WEIGHTS = {
    "Gulf of Mexico": 0.30,
    "East Coast": 0.28,
    "West Coast": 0.22,
    "Great Lakes": 0.07,
    "Alaska": 0.05,
    "Hawaii": 0.04,
    "Caribbean": 0.04,
}
# Direction of open water from each port (degrees true): offshore legs and anchorages go that way.
SEAWARD = {
    "East Coast": 110.0,
    "Gulf of Mexico": 180.0,
    "West Coast": 250.0,
    "Great Lakes": 0.0,
    "Alaska": 180.0,
    "Hawaii": 200.0,
    "Caribbean": 0.0,
}
SEAWARD_BY_PORT = {
    "Portland ME": 135, "Boston": 90, "Providence": 180, "New London": 180, "New Haven": 180,
    "New York and New Jersey": 140, "Philadelphia": 170, "Wilmington DE": 150, "Baltimore": 170, "Norfolk": 80,
    "Morehead City": 160, "Wilmington NC": 180, "Charleston": 120, "Savannah": 100, "Brunswick": 100,
    "Jacksonville": 80, "Port Canaveral": 90, "Port Everglades": 90, "Miami": 90, "Key West": 200, "Tampa": 230,
    "New Orleans": 120, "Port Arthur": 150, "Beaumont": 160, "Houston": 150, "Galveston": 130, "Freeport": 140,
    "Corpus Christi": 110, "Brownsville": 90, "San Diego": 240, "Long Beach": 190, "Los Angeles": 190,
    "Port Hueneme": 230, "San Francisco": 270, "Oakland": 280, "Richmond CA": 240, "Stockton": 270,
    "Humboldt Bay": 290, "Coos Bay": 280, "Astoria": 280, "Portland OR": 320, "Longview": 280,
    "Grays Harbor": 270, "Tacoma": 0, "Seattle": 330, "Everett": 270, "Anacortes": 240, "Duluth-Superior": 60,
    "Chicago": 70, "Burns Harbor": 0, "Milwaukee": 90, "Detroit": 200, "Toledo": 60, "Cleveland": 0, "Erie": 330,
    "Buffalo": 250, "Anchorage": 240, "Valdez": 230, "Kodiak": 90, "Dutch Harbor": 0, "Nome": 200,
    "Hilo": 45, "Kahului": 0, "Nawiliwili": 135, "Ponce": 180, "Mayaguez": 270, "Charlotte Amalie": 180,
}  # fmt: skip


@dataclass(frozen=True)
class _TypeSpec:
    share: float
    codes: tuple[int, ...]
    class_a: float  # share of Class A transceivers
    speed: tuple[float, float]  # knots under way
    length: tuple[float, float]  # metres
    draft: tuple[float, float]  # metres
    behaviours: dict[int, float]
    us_flag: float  # share under the U.S. flag (the rest: open registries and trading nations)


TYPES: dict[str, _TypeSpec] = {
    "cargo": _TypeSpec(0.20, (70, 70, 70, 71, 72, 79), 1.0, (11, 17), (120, 300), (8, 14),
                       {TRANSIT: 0.6, ANCHORED: 0.25, MOORED: 0.15}, 0.1),
    "tanker": _TypeSpec(0.10, (80, 80, 81, 82, 84, 89), 1.0, (9, 14), (100, 330), (7, 16),
                        {TRANSIT: 0.55, ANCHORED: 0.3, MOORED: 0.15}, 0.1),
    "passenger": _TypeSpec(0.08, (60, 60, 61, 69, 69), 1.0, (12, 22), (30, 300), (3, 8),
                           {TRANSIT: 0.8, MOORED: 0.2}, 0.6),
    "fishing": _TypeSpec(0.14, (30,), 0.7, (7, 10), (12, 45), (2, 5),
                         {FISHING: 0.6, TRANSIT: 0.25, MOORED: 0.15}, 0.95),
    "tug_tow": _TypeSpec(0.16, (31, 52, 52, 32), 1.0, (5, 10), (18, 40), (3, 5),
                         {HARBOR: 0.6, TRANSIT: 0.3, MOORED: 0.1}, 0.97),
    "pleasure_sailing": _TypeSpec(0.20, (37, 37, 37, 36), 0.15, (5, 20), (7, 25), (1, 3),
                                  {TRANSIT: 0.5, MOORED: 0.5}, 0.95),
    "other": _TypeSpec(0.10, (50, 51, 55, 33, 35, 90), 0.9, (8, 20), (15, 80), (2, 6),
                       {TRANSIT: 0.5, MOORED: 0.3, ANCHORED: 0.2}, 0.95),
}  # fmt: skip
FOREIGN_MIDS = (636, 636, 538, 538, 351, 352, 353, 355, 356, 357, 370, 371, 372, 373, 563, 564, 565, 566,
                477, 477, 215, 229, 248, 249, 256, 309, 311, 240, 241, 257, 258, 413, 414, 431, 440, 219, 244,
                316, 345)  # fmt: skip
US_MIDS = (366, 367, 367, 367, 368, 368, 369, 338)

_WORDS_A = ("ATLANTIC", "PACIFIC", "GULF", "NORTHERN", "SOUTHERN", "GOLDEN", "SILVER", "OCEAN", "SEA", "BLUE",
            "CAPE", "ISLAND", "CORAL", "STAR", "BAY", "MORNING", "EVENING", "GRAND", "LADY", "MISS", "CAPT",
            "GREAT", "ROYAL", "SUN", "ARCTIC", "BRIGHT", "IRON", "LIBERTY", "EASTERN", "WESTERN")  # fmt: skip
_WORDS_B = ("SPIRIT", "EXPRESS", "PIONEER", "VOYAGER", "TRADER", "GLORY", "HARMONY", "PRIDE", "DAWN", "EAGLE",
            "FALCON", "BREEZE", "HUNTER", "RUNNER", "QUEEN", "PRINCESS", "ENDEAVOR", "FORTUNE", "HORIZON",
            "MARINER", "NAVIGATOR", "CHALLENGER", "WIND", "TIDE", "WAVE", "JOY", "LEGACY", "DREAM", "HOPE",
            "ROSE")  # fmt: skip
_QUIRKY_NAMES = ('LIL "D"', 'RAY "CHIEF" TONEY', "SALT, SUN AND SEA", "REEL, TIME")


@cache
def load_ports() -> pl.DataFrame:
    """Real U.S. ports (port, lat, lon, region), the package data the facts stage reuses."""
    with resources.as_file(resources.files("maritime_slm.ais") / "ports.csv") as path:
        return pl.read_csv(
            path, schema={"port": pl.String, "lat": pl.Float64, "lon": pl.Float64, "region": pl.String}
        )


# ------------------------------------------------------------------ the fleet
@dataclass
class _Fleet:
    n: int
    group: np.ndarray
    behaviour: np.ndarray
    class_a: np.ndarray
    mmsi: np.ndarray
    code: np.ndarray
    length: np.ndarray
    width: np.ndarray
    draft: np.ndarray
    names: list[str]
    imo: list[str]
    call_sign: list[str]
    speed: np.ndarray
    interval: np.ndarray
    phase: np.ndarray
    heading_na: np.ndarray
    status: np.ndarray  # base navigational status (-1 = none)
    ref_lat: np.ndarray  # port, anchorage, berth, fishing ground or AtoN position
    ref_lon: np.ndarray
    wp_lat: np.ndarray  # transit waypoints (n, 4)
    wp_lon: np.ndarray
    cum: np.ndarray  # cumulative leg length at each waypoint (n, 4)
    seg_brg: np.ndarray  # (n, 3)
    u0: np.ndarray  # distance already sailed at t=0 (nm)
    theta: np.ndarray  # working direction (fishing / harbour / encounter), degrees
    leg: np.ndarray  # leg length (fishing / harbour), nm; swing radius for anchored
    period: np.ndarray  # anchored swing period, s
    tc: np.ndarray  # encounter time, s


def _imo_numbers(rng: np.random.Generator, n: int) -> list[str]:
    """Valid IMO numbers (7th digit = sum of digits 1-6 weighted 7..2, mod 10)."""
    digits = np.column_stack([np.full(n, 9), rng.integers(0, 10, (n, 5))])
    check = (digits * np.arange(7, 1, -1)).sum(axis=1) % 10
    return [
        "IMO" + "".join(map(str, d)) + str(c) for d, c in zip(digits.tolist(), check.tolist(), strict=True)
    ]


def _call_signs(rng: np.random.Generator, us: np.ndarray) -> list[str]:
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    a = letters[rng.integers(0, 26, (len(us), 3))]
    d = rng.integers(0, 10, (len(us), 4))
    out = []
    for is_us, la, da in zip(us.tolist(), a.tolist(), d.tolist(), strict=True):
        out.append(("WD" + la[0] + "".join(map(str, da))) if is_us else (la[0] + la[1] + str(da[0]) + la[2]))
    return out


def _unique_mmsi(rng: np.random.Generator, mid: np.ndarray, round_thousands: np.ndarray) -> np.ndarray:
    mmsi = mid.astype(np.int64) * 1_000_000 + rng.integers(0, 1_000_000, len(mid))
    mmsi = np.where(round_thousands, mmsi // 1000 * 1000, mmsi)
    while True:
        _, first = np.unique(mmsi, return_index=True)
        dup = np.setdiff1d(np.arange(len(mmsi)), first)
        if dup.size == 0:
            return mmsi
        mmsi[dup] = mid[dup].astype(np.int64) * 1_000_000 + rng.integers(0, 1_000_000, dup.size)


def _transit_position(f: _Fleet, vi: np.ndarray, t_eff: np.ndarray):
    """Position, course and arrival flag of transit vessels `vi` after `t_eff` seconds under way."""
    total = f.cum[vi, 3]
    d = np.minimum(f.u0[vi] + f.speed[vi] * t_eff / 3600.0, total)
    seg = (d >= f.cum[vi, 1]).astype(np.int64) + (d >= f.cum[vi, 2])
    seg = np.minimum(seg, 2)
    start = f.cum[vi, seg]
    length = f.cum[vi, seg + 1] - start
    frac = np.where(length > 0, (d - start) / np.where(length > 0, length, 1.0), 1.0)
    lat = f.wp_lat[vi, seg] + frac * (f.wp_lat[vi, seg + 1] - f.wp_lat[vi, seg])
    lon = f.wp_lon[vi, seg] + frac * (f.wp_lon[vi, seg + 1] - f.wp_lon[vi, seg])
    return lat, lon, f.seg_brg[vi, seg], d >= total


def _arrival_s(f: _Fleet, v: np.ndarray | int) -> np.ndarray:
    return (f.cum[v, 3] - f.u0[v]) / f.speed[v] * 3600.0


@dataclass
class _Ports:
    names: list[str]
    region_of: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    seaward: np.ndarray

    @classmethod
    def load(cls) -> _Ports:
        ports = load_ports()
        region_of = ports["region"].to_numpy()
        seaward = [SEAWARD_BY_PORT.get(p, SEAWARD[r]) for p, r in zip(ports["port"], region_of, strict=True)]
        return cls(
            ports["port"].to_list(),
            region_of,
            ports["lat"].to_numpy(),
            ports["lon"].to_numpy(),
            np.array(seaward),
        )


def _make_fleet(rng: np.random.Generator, n: int, around_ports: Sequence[str] | None = None) -> _Fleet:
    """Who sails where: home ports, types, identities, work areas, routes and reporting, in that order of draws."""
    ports = _Ports.load()
    port = _home_ports(rng, n, ports, around_ports)
    t = _types(rng, n)
    ident = _identities(rng, n, t, ports.names, port)
    ref_lat, ref_lon, theta, leg, speed = _work_areas(rng, n, t, ports, port)
    wp_lat, wp_lon, cum, seg_brg, u0 = _routes(rng, n, ports, port)
    behaviour, class_a, aton = t["behaviour"], t["class_a"], t["group"] == -1
    moving = np.isin(behaviour, [TRANSIT, FISHING, HARBOR])
    interval = np.where(class_a, np.where(speed >= 14, 10.0, 20.0), 30.0)
    interval = np.where(moving, interval, 180.0)
    status = np.select(
        [
            behaviour == TRANSIT,
            behaviour == ANCHORED,
            behaviour == MOORED,
            behaviour == FISHING,
            behaviour == HARBOR,
        ],
        [0, 1, 5, 7, np.where(rng.random(n) < 0.3, 12, 0)],
        -1,
    )
    status = np.where(class_a & ~aton, np.where(rng.random(n) < 0.03, 15, status), -1)
    heading_na = (~class_a & (rng.random(n) < 0.8)) | (class_a & ~moving & (rng.random(n) < 0.3)) | aton
    return _Fleet(
        n=n, group=t["group"], behaviour=behaviour, class_a=class_a, mmsi=ident["mmsi"], code=t["code"],
        length=t["length"], width=ident["width"], draft=t["draft"], names=ident["names"], imo=ident["imo"],
        call_sign=ident["call_sign"], speed=speed, interval=interval, phase=rng.uniform(0, 1, n) * interval,
        heading_na=heading_na, status=status, ref_lat=ref_lat, ref_lon=ref_lon, wp_lat=wp_lat, wp_lon=wp_lon,
        cum=cum, seg_brg=seg_brg, u0=u0, theta=theta, leg=leg, period=rng.uniform(3, 8, n) * 3600,
        tc=np.full(n, np.nan),
    )  # fmt: skip


def _home_ports(rng: np.random.Generator, n: int, ports: _Ports, around: Sequence[str] | None) -> np.ndarray:
    """Each vessel's home port: a region by its traffic weight, then a port of it (or one of `around`)."""
    regions = list(REGION_WEIGHTS)
    weights = np.array([REGION_WEIGHTS[r] for r in regions])
    region = rng.choice(len(regions), n, p=weights / weights.sum())
    port = np.empty(n, dtype=np.int64)
    for r, name in enumerate(regions):
        members = np.flatnonzero(ports.region_of == name)
        sel = region == r
        port[sel] = rng.choice(members, sel.sum())
    if around:
        unknown = [p for p in around if p not in ports.names]
        if unknown:
            raise ValueError(
                f"simulate ports {unknown} are not in ports.csv (e.g. {', '.join(ports.names[:4])})"
            )
        port = rng.choice([ports.names.index(p) for p in around], n)
    return port


def _types(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Type group (-1: an AtoN station, 1 in 50), and what the group decides: behaviour, class, type code, speed,
    size and whether the flag is U.S."""
    names = list(TYPES)
    shares = np.array([TYPES[g].share for g in names])
    group = rng.choice(len(names), n, p=shares / shares.sum())
    group[rng.choice(n, n // 50, replace=False)] = -1
    t = {
        "group": group,
        "behaviour": np.full(n, ATON),
        "class_a": np.ones(n, dtype=bool),
        "code": np.zeros(n, dtype=np.int64),
        "speed": np.zeros(n),
        "length": np.full(n, np.nan),
        "draft": np.full(n, np.nan),
        "us": np.ones(n, dtype=bool),
    }
    for g, name in enumerate(names):
        spec = TYPES[name]
        sel = np.flatnonzero(group == g)
        k = sel.size
        beh = list(spec.behaviours)
        t["behaviour"][sel] = rng.choice(beh, k, p=np.array([spec.behaviours[b] for b in beh]))
        t["class_a"][sel] = rng.random(k) < spec.class_a
        t["code"][sel] = rng.choice(spec.codes, k)
        t["speed"][sel] = rng.uniform(*spec.speed, k)
        t["length"][sel] = np.round(rng.uniform(*spec.length, k))
        t["draft"][sel] = np.round(rng.uniform(*spec.draft, k), 1)
        t["us"][sel] = rng.random(k) < spec.us_flag
    return t


def _identities(
    rng: np.random.Generator, n: int, t: dict[str, np.ndarray], port_names: list[str], port: np.ndarray
) -> dict[str, Any]:
    """Beam, MMSI, name, IMO number and call sign; AtoN stations get a 99 MMSI, a buoy's name and no call sign."""
    length, us, class_a = t["length"], t["us"], t["class_a"]
    aton = t["group"] == -1
    width = np.round(length / np.where(length < 40, rng.uniform(2.8, 3.8, n), rng.uniform(5.5, 7.5, n)))
    mid = np.where(us, rng.choice(US_MIDS, n), rng.choice(FOREIGN_MIDS, n))
    mmsi = _unique_mmsi(rng, mid, (~us) & (rng.random(n) < 0.6))
    mmsi[aton] = 993_660_000 + rng.choice(10_000, int(aton.sum()), replace=False)

    word_a = rng.integers(0, len(_WORDS_A), n)
    word_b = rng.integers(0, len(_WORDS_B), n)
    names = [f"{_WORDS_A[a]} {_WORDS_B[b]}" for a, b in zip(word_a.tolist(), word_b.tolist(), strict=True)]
    pleasure = np.flatnonzero(t["group"] == list(TYPES).index("pleasure_sailing"))
    for i, v in enumerate(pleasure[rng.random(pleasure.size) < 0.05].tolist()):
        names[v] = _QUIRKY_NAMES[i % len(_QUIRKY_NAMES)]
    for v in np.flatnonzero(aton).tolist():
        names[v] = f"{port_names[port[v]].upper()} LIGHTED BUOY {rng.integers(1, 40)}"
    big = (length >= 60) & class_a & ~aton
    imo_numbers = _imo_numbers(rng, n)
    no_imo = rng.random(n) < 0.5
    imo = [
        imo_numbers[v] if big[v] else ("IMO0000000" if no_imo[v] and not aton[v] else "") for v in range(n)
    ]
    call_sign = _call_signs(rng, us)
    for v in np.flatnonzero(aton).tolist():
        call_sign[v] = ""
    return {"width": width, "mmsi": mmsi, "names": names, "imo": imo, "call_sign": call_sign}


def _work_areas(rng: np.random.Generator, n: int, t: dict[str, np.ndarray], ports: _Ports, port: np.ndarray):
    """Where each vessel works, by behaviour: (ref lat, ref lon, heading of its pattern, leg nm, speed)."""
    behaviour = t["behaviour"]
    brg = ports.seaward[port]
    ref_lat, ref_lon = ports.lat[port].copy(), ports.lon[port].copy()

    def around(sel: np.ndarray, bearing: np.ndarray | float, lo: float, hi: float, spread: float):
        """Positions `lo`-`hi` nm from each selected vessel's port, `bearing` +- `spread` degrees."""
        k = int(sel.sum())
        turn = rng.uniform(-spread, spread, k)
        return move_nm(ports.lat[port[sel]], ports.lon[port[sel]], bearing + turn, rng.uniform(lo, hi, k))

    anch, moor, fish = behaviour == ANCHORED, behaviour == MOORED, behaviour == FISHING
    aton = t["group"] == -1
    ref_lat[anch], ref_lon[anch] = around(anch, brg[anch], 2, 5, 40)
    ref_lat[moor], ref_lon[moor] = around(moor, 180.0, 0.1, 1.2, 180)
    ref_lat[fish], ref_lon[fish] = around(fish, brg[fish], 10, 25, 30)
    ref_lat[aton], ref_lon[aton] = around(aton, brg[aton], 1, 6, 60)
    theta = np.where(behaviour == HARBOR, brg + rng.uniform(-20, 20, n), rng.uniform(0, 360, n)) % 360
    leg = np.where(behaviour == FISHING, rng.uniform(1, 3, n), rng.uniform(2, 5, n))
    leg = np.where(anch, rng.uniform(0.02, 0.06, n), leg)
    speed = np.where(fish, rng.uniform(2.5, 4.0, n), t["speed"])
    return ref_lat, ref_lon, theta, leg, speed


def _routes(rng: np.random.Generator, n: int, ports: _Ports, port: np.ndarray):
    """Transit legs: port -> its offshore point -> destination's offshore point -> destination (one of the three
    nearest ports of the same region); (waypoint lats, lons, cumulative nm, leg bearings, start along the route)."""
    dest = port.copy()
    for p in np.unique(port).tolist():
        same = np.flatnonzero((ports.region_of == ports.region_of[p]) & (np.arange(len(ports.names)) != p))
        if same.size == 0:
            continue
        dist, _ = flat_leg_nm(ports.lat[p], ports.lon[p], ports.lat[same], ports.lon[same])
        nearest = same[np.argsort(dist)[:3]]
        sel = np.flatnonzero(port == p)
        dest[sel] = rng.choice(nearest, sel.size)
    off_a = move_nm(ports.lat[port], ports.lon[port], ports.seaward[port], rng.uniform(6, 12, n))
    off_b = move_nm(ports.lat[dest], ports.lon[dest], ports.seaward[dest], rng.uniform(6, 12, n))
    wp_lat = np.column_stack([ports.lat[port], off_a[0], off_b[0], ports.lat[dest]])
    wp_lon = np.column_stack([ports.lon[port], off_a[1], off_b[1], ports.lon[dest]])
    seg_len, seg_brg = flat_leg_nm(wp_lat[:, :3], wp_lon[:, :3], wp_lat[:, 1:], wp_lon[:, 1:])
    cum = np.column_stack([np.zeros(n), np.cumsum(seg_len, axis=1)])
    u0 = rng.uniform(0, 0.9, n) * cum[:, 3]
    return wp_lat, wp_lon, cum, seg_brg, u0


# ------------------------------------------------------------------ anomalies decided up front
@dataclass
class _Anomalies:
    gap: dict[int, tuple[float, float]]  # vessel -> (start s, duration s)
    jump: dict[int, tuple[float, float, float]]  # vessel -> (time s, north nm, east nm)
    loiter: dict[int, tuple[float, float]]
    mismatch: dict[int, tuple[float, float, int]]  # + status shown
    labels: list[dict]


def _window(
    rng: np.random.Generator, lo: float, hi: float, minutes: tuple[float, float]
) -> tuple[float, float]:
    """A window of the given length inside [lo, hi] seconds (shortened to half the room if it must)."""
    dur = round(min(rng.uniform(*minutes) * 60.0, 0.5 * (hi - lo)))
    return float(round(rng.uniform(lo, hi - dur))), float(dur)


def _plan_anomalies(
    rng: np.random.Generator, f: _Fleet, hours: float, rate: float, t0: datetime
) -> _Anomalies:
    horizon = hours * 3600.0
    ships = np.flatnonzero(f.behaviour != ATON)
    n_anom = round(rate * ships.size)
    if rate > 0 and ships.size >= 4 * len(KINDS):
        n_anom = max(n_anom, len(KINDS))
    plan = _Anomalies({}, {}, {}, {}, [])
    used: set[int] = set()
    order = rng.permutation(ships).tolist()
    moving_a = [v for v in order if f.behaviour[v] == TRANSIT and f.class_a[v]]

    def stamp(seconds: float) -> datetime:
        return _stamp(t0, seconds)

    for i in range(n_anom):
        kind = KINDS[i % len(KINDS)]
        if kind in ("gap", "position_jump"):
            pool = [v for v in order if v not in used]
        else:
            pool = [v for v in moving_a if v not in used]
        if not pool:
            continue
        if kind == "gap":
            v = pool[0]
            plan.gap[v] = _window(rng, 0.1 * horizon, 0.9 * horizon, (15, 45))
        elif kind == "position_jump":
            v = pool[0]
            dist, brg = rng.uniform(15, 40), rng.uniform(0, 360)
            plan.jump[v] = (
                float(rng.uniform(0.2, 0.8) * horizon),
                dist * np.cos(np.radians(brg)),
                dist * np.sin(np.radians(brg)),
            )
        else:
            chosen = None
            for v in pool:
                room = min(0.9 * horizon, float(_arrival_s(f, v)))
                if room - 0.1 * horizon >= 20 * 60:
                    chosen = v
                    break
            if chosen is None:
                continue
            v = chosen
            lo, hi = 0.1 * horizon, min(0.9 * horizon, float(_arrival_s(f, v)))
            if kind == "loitering":
                start, dur = _window(rng, lo, hi, (20, 45))
                plan.loiter[v] = (start, dur)
                plan.labels.append(
                    label(
                        int(f.mmsi[v]),
                        kind,
                        stamp(start),
                        stamp(start + dur),
                        f"circling radius_nm=0.1 sog_kn~1.9 status=0 for {dur / 60:.1f} min",
                    )
                )
            elif kind == "status_mismatch":
                start, dur = _window(rng, lo, hi, (15, 30))
                shown = int(rng.choice([1, 5]))
                plan.mismatch[v] = (start, dur, shown)
                plan.labels.append(
                    label(
                        int(f.mmsi[v]),
                        kind,
                        stamp(start),
                        stamp(start + dur),
                        f"status={shown} ({'at anchor' if shown == 1 else 'moored'}) "
                        f"while sog_kn~{f.speed[v]:.1f}",
                    )
                )
            else:
                others = [w for w in order if w not in used and w != v and f.behaviour[w] != ATON]
                if not others:
                    continue
                b = others[0]
                used.add(b)
                _plan_encounter(rng, f, v, b, lo, hi)
                plan.labels.extend(_encounter_labels(f, v, b, horizon, stamp))
        used.add(v)
    return plan


def _plan_encounter(rng: np.random.Generator, f: _Fleet, a: int, b: int, lo: float, hi: float) -> None:
    """Vessel b crosses vessel a's track at time tc, passing 0.05-0.3 nm from it."""
    tc = float(rng.uniform(lo + 0.25 * (hi - lo), hi - 0.25 * (hi - lo)))
    lat, lon, brg, _ = _transit_position(f, np.array([a]), np.array([tc]))
    side = rng.choice([-90.0, 90.0])
    p_lat, p_lon = move_nm(lat, lon, brg + side, rng.uniform(0.05, 0.3))
    crossing = rng.choice([rng.uniform(60, 150), -rng.uniform(60, 150), 180.0 + rng.uniform(-8, 8)])
    f.behaviour[b] = ENCOUNTER
    f.class_a[b] = True
    f.status[b] = 0
    f.speed[b] = rng.uniform(8, 15)
    f.interval[b] = 10.0 if f.speed[b] >= 14 else 20.0
    f.phase[b] = rng.uniform(0, 1) * f.interval[b]
    f.theta[b] = (brg[0] + crossing) % 360.0
    f.ref_lat[b], f.ref_lon[b] = p_lat[0], p_lon[0]
    f.tc[b] = tc


def _encounter_position(f: _Fleet, vi: np.ndarray, t: np.ndarray):
    dist = f.speed[vi] * (t - f.tc[vi]) / 3600.0
    lat, lon = move_nm(f.ref_lat[vi], f.ref_lon[vi], f.theta[vi], dist)
    return lat, lon, f.theta[vi]


def _encounter_labels(f: _Fleet, a: int, b: int, horizon: float, stamp) -> list[dict]:
    grid = np.arange(0.0, horizon, 5.0)
    la, loa, _, _ = _transit_position(f, np.full(grid.size, a), grid)
    lb, lob, _ = _encounter_position(f, np.full(grid.size, b), grid)
    dist, _ = flat_leg_nm(la, loa, lb, lob)
    close = np.flatnonzero(dist < CLOSE_NM)
    i_min = int(np.argmin(dist))
    start, end = (grid[close[0]], grid[close[-1]]) if close.size else (grid[i_min], grid[i_min])
    rows = []
    for me, other in ((a, b), (b, a)):
        rows.append(
            label(
                int(f.mmsi[me]),
                "close_encounter",
                stamp(start),
                stamp(end),
                f"other_mmsi={int(f.mmsi[other])} cpa_nm={dist[i_min]:.3f} "
                f"at={stamp(grid[i_min]).isoformat()}",
            )
        )
    return rows


# ------------------------------------------------------------------ reports of a block of vessels
@dataclass
class _Block:
    """One block's reports while they are being made: vessel index, time (s from start) and the columns."""

    vi: np.ndarray
    t: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    sog: np.ndarray
    cog: np.ndarray
    status: np.ndarray
    keep: np.ndarray

    def rows_of(self, v: int) -> slice:
        return slice(np.searchsorted(self.vi, v, "left"), np.searchsorted(self.vi, v, "right"))


def _schedule(rng: np.random.Generator, f: _Fleet, vessels: np.ndarray, horizon: float) -> _Block:
    """Each vessel's report times (its interval with jitter) and drifting-at-rest defaults for every row."""
    counts = np.floor((horizon - f.phase[vessels]) / f.interval[vessels]).astype(np.int64) + 1
    counts = np.maximum(counts, 1)
    vi = np.repeat(vessels, counts)
    k = np.arange(vi.size) - np.repeat(np.cumsum(counts) - counts, counts)
    iv = f.interval[vi]
    t = np.clip(np.round(f.phase[vi] + k * iv + rng.uniform(-0.2, 0.2, vi.size) * iv), 0, horizon - 1)
    return _Block(
        vi=vi,
        t=t,
        lat=f.ref_lat[vi].copy(),
        lon=f.ref_lon[vi].copy(),
        sog=np.abs(rng.normal(0, 0.04, vi.size)),
        cog=rng.uniform(0, 360, vi.size),
        status=f.status[vi].copy(),
        keep=np.ones(vi.size, dtype=bool),
    )


def _motion(rng: np.random.Generator, f: _Fleet, b: _Block, plan: _Anomalies, in_block: set[int]) -> None:
    """Positions, SOG and COG by behaviour (transit, loitering, encounter, fishing, harbour, anchored, AtoN)."""
    vi, t, lat, lon, sog, cog, status, keep = b.vi, b.t, b.lat, b.lon, b.sog, b.cog, b.status, b.keep
    beh = f.behaviour[vi]
    # Loitering delays the rest of the voyage by the time spent circling.
    t_eff = t.copy()
    loiter_on = np.zeros(vi.size, dtype=bool)
    loiter_start = np.zeros(vi.size)
    for v, (start, dur) in plan.loiter.items():
        if v in in_block:
            r = b.rows_of(v)
            t_eff[r] = t[r] - np.clip(t[r] - start, 0, dur)
            loiter_on[r] = (t[r] >= start) & (t[r] < start + dur)
            loiter_start[r] = start

    m = beh == TRANSIT
    if m.any():
        la, lo, brg, arrived = _transit_position(f, vi[m], t_eff[m])
        lat[m], lon[m] = la, lo
        sog[m] = np.where(arrived, sog[m], f.speed[vi[m]] + rng.normal(0, 0.15, m.sum()))
        cog[m] = np.where(arrived, cog[m], brg + rng.normal(0, 1.0, m.sum()))
        status[m] = np.where(arrived & (status[m] >= 0), 5, status[m])
        # Berthed after arrival: a stationary vessel reports every 3 minutes.
        bucket = np.floor(t[m] / 180.0)
        first_in_bucket = np.r_[True, (bucket[1:] != bucket[:-1]) | (vi[m][1:] != vi[m][:-1])]
        keep[np.flatnonzero(m)[arrived & ~first_in_bucket]] = False
    m = loiter_on
    if m.any():
        vs = vi[m]
        centre_lat, centre_lon, _, _ = _transit_position(f, vs, loiter_start[m])
        phi = 2 * np.pi * t[m] / 1200.0
        lat[m], lon[m] = offset_nm(centre_lat, centre_lon, 0.1 * np.cos(phi), 0.1 * np.sin(phi))
        sog[m] = 1.9 + rng.normal(0, 0.1, m.sum())
        cog[m] = np.degrees(phi) + 90.0
    m = beh == ENCOUNTER
    if m.any():
        lat[m], lon[m], cog[m] = _encounter_position(f, vi[m], t[m])
        sog[m] = f.speed[vi[m]] + rng.normal(0, 0.15, m.sum())
        cog[m] += rng.normal(0, 1.0, m.sum())
    for behaviour in (FISHING, HARBOR):
        m = beh == behaviour
        if not m.any():
            continue
        v = vi[m]
        s = f.speed[v] * t[m] / 3600.0
        leg_no = np.floor(s / f.leg[v])
        along = s - leg_no * f.leg[v]
        forward = leg_no % 2 == 0
        along = np.where(forward, along, f.leg[v] - along)
        side = 0.15 * leg_no if behaviour == FISHING else 0.0
        theta = np.radians(f.theta[v])
        north = along * np.cos(theta) - side * np.sin(theta)
        east = along * np.sin(theta) + side * np.cos(theta)
        lat[m], lon[m] = offset_nm(f.ref_lat[v], f.ref_lon[v], north, east)
        sog[m] = f.speed[v] + rng.normal(0, 0.15, m.sum())
        cog[m] = np.where(forward, f.theta[v], f.theta[v] + 180.0) + rng.normal(0, 1.5, m.sum())
    m = beh == ANCHORED
    if m.any():
        v = vi[m]
        phi = 2 * np.pi * t[m] / f.period[v] + f.theta[v]
        lat[m], lon[m] = offset_nm(f.ref_lat[v], f.ref_lon[v], f.leg[v] * np.cos(phi), f.leg[v] * np.sin(phi))
    m = beh == ATON
    if m.any():
        sog[m] = 0.0
        cog[m] = 360.0


def _inject(f: _Fleet, b: _Block, plan: _Anomalies, in_block: set[int]) -> list[tuple[int, int, float]]:
    """Status mismatches, reporting gaps and position jumps; returns the jumps' (row, vessel, distance nm)."""
    t, status, keep = b.t, b.status, b.keep
    for v, (start, dur, shown) in plan.mismatch.items():
        if v in in_block:
            r = b.rows_of(v)
            status[r] = np.where((t[r] >= start) & (t[r] < start + dur), shown, status[r])
    for v, (start, dur) in plan.gap.items():
        if v in in_block:
            r = b.rows_of(v)
            keep[r] &= ~((t[r] >= start) & (t[r] < start + dur))
    jump_rows = []
    for v, (when, north, east) in plan.jump.items():
        if v not in in_block:
            continue
        r = b.rows_of(v)
        rows = r.start + np.flatnonzero((t[r] >= when) & keep[r])
        if rows.size:
            j = rows[0]
            b.lat[j], b.lon[j] = offset_nm(b.lat[j], b.lon[j], north, east)
            jump_rows.append((j, v, float(np.hypot(north, east))))
    return jump_rows


def _block_labels(
    f: _Fleet, b: _Block, plan: _Anomalies, in_block: set[int], jump_rows, horizon: float, t0
) -> list[dict[str, Any]]:
    """Ground truth for the jumps and gaps as they came out (a gap's ends are the reports around it)."""
    t, keep = b.t, b.keep
    labels = []
    for j, v, dist in jump_rows:
        labels.append(
            label(
                int(f.mmsi[v]),
                "position_jump",
                _stamp(t0, t[j]),
                _stamp(t0, t[j]),
                f"jump_nm={dist:.1f} implied_speed_kn~{dist / (f.interval[v] / 3600):.0f}",
            )
        )
    for v, (start, dur) in plan.gap.items():
        if v not in in_block:
            continue
        r = b.rows_of(v)
        times = t[r][keep[r]]
        if times.size == 0:
            continue
        before, after = times[times < start], times[times >= start + dur]
        lo = before[-1] if before.size else 0.0
        hi = after[0] if after.size else horizon
        labels.append(
            label(int(f.mmsi[v]), "gap", _stamp(t0, lo), _stamp(t0, hi), f"gap_min={(hi - lo) / 60:.1f}")
        )
    return labels


def _block_rows(rng: np.random.Generator, f: _Fleet, vessels: np.ndarray, hours: float, plan: _Anomalies, t0):
    """One block of vessels' reports (columns in time order) and their anomaly labels; the random draws happen
    in a fixed order (schedule, motion, then the receiver's quirks), so a seed gives the same file."""
    horizon = hours * 3600.0
    b = _schedule(rng, f, vessels, horizon)
    in_block = set(vessels.tolist())
    _motion(rng, f, b, plan, in_block)
    jump_rows = _inject(f, b, plan, in_block)

    vi, t, sog, cog = b.vi, b.t, b.sog, b.cog
    beh = f.behaviour[vi]
    stationary = np.isin(beh, [ANCHORED, MOORED]) | (sog < 0.5)
    cog = np.round(cog % 360.0, 1) % 360.0
    cog = np.where(stationary & (rng.random(vi.size) < 0.2), 360.0, cog)
    cog = np.where(beh == ATON, 360.0, cog)
    heading = np.round(np.where(stationary, f.theta[vi], cog) + rng.normal(0, 2.0, vi.size)) % 360
    heading = np.where(f.heading_na[vi], 511, heading).astype(np.int64)
    sog = np.round(np.maximum(sog, 0.0), 1)
    sog = np.where(rng.random(vi.size) < 5e-4, 102.3, sog)

    labels = _block_labels(f, b, plan, in_block, jump_rows, horizon, t0)
    idx = np.flatnonzero(b.keep)
    idx = idx[np.lexsort((vi[idx], t[idx]))]
    cols = dict(vi=vi[idx], t=t[idx], lat=b.lat[idx], lon=b.lon[idx], sog=sog[idx], cog=cog[idx],
                heading=heading[idx], status=b.status[idx])  # fmt: skip
    return cols, labels


def _stamp(t0: datetime, seconds: float) -> datetime:
    return (np.datetime64(t0) + np.timedelta64(int(round(seconds * 1e6)), "us")).astype(datetime)


def _frame(f: _Fleet, cols: dict, t0: datetime) -> pl.DataFrame:
    """The block's reports in the ≤2024 CSV layout."""
    vi = cols["vi"]
    names = pl.Series(f.names, dtype=pl.String)
    imo = pl.Series(f.imo, dtype=pl.String)
    call = pl.Series(f.call_sign, dtype=pl.String)
    vi_s = pl.Series(vi)
    class_a = f.class_a[vi]
    aton = f.behaviour[vi] == ATON
    length = np.where(aton, np.nan, f.length[vi])
    width = np.where(aton, np.nan, f.width[vi])
    draft = np.where(class_a & ~aton, f.draft[vi], np.nan)
    ts = np.datetime64(t0, "us") + (cols["t"] * 1e6).astype("timedelta64[us]")
    return (
        pl.DataFrame(
            {
                "MMSI": f.mmsi[vi],
                "BaseDateTime": ts,
                "LAT": np.round(cols["lat"], 5),
                "LON": np.round(cols["lon"], 5),
                "SOG": cols["sog"],
                "COG": cols["cog"],
                "Heading": cols["heading"],
                "VesselName": names.gather(vi_s),
                "IMO": imo.gather(vi_s),
                "CallSign": call.gather(vi_s),
                "VesselType": pl.Series(np.where(aton, -1, f.code[vi])),
                "Status": pl.Series(cols["status"]),
                "Length": pl.Series(length),
                "Width": pl.Series(width),
                "Draft": pl.Series(draft),
                "Cargo": pl.Series(np.where(class_a & ~aton, f.code[vi], -1)),
                "TransceiverClass": np.where(class_a, "A", "B"),
            }
        )
        .with_columns(
            pl.when(pl.col(c) >= 0).then(pl.col(c)).alias(c) for c in ("VesselType", "Status", "Cargo")
        )
        .with_columns(
            pl.col("Length", "Width").fill_nan(None).cast(pl.Int64),
            pl.col("Draft").fill_nan(None),
            pl.col("VesselName", "IMO", "CallSign").replace("", None),
        )
    )


def _csv_line(row: pl.DataFrame) -> str:
    return row.write_csv(include_header=False, datetime_format="%Y-%m-%dT%H:%M:%S").rstrip("\n")


def _malformed(rng: np.random.Generator, form: str, line: str) -> str:
    """A broken version of a real line (or garbage) whose field count is never 17."""
    if form == "truncated":
        commas = [i for i, c in enumerate(line) if c == ","]
        return line[: commas[int(rng.integers(3, 12))] + int(rng.integers(1, 3))]
    if form == "extra_field":
        return line + ",EXTRA"
    if form == "garbage":
        return "".join(rng.choice(list("#@!~%&*^?<>0123456789ABCDEF "), int(rng.integers(12, 60))))
    if form == "semicolons":
        return line.replace(",", ";")
    if form == "unbalanced_quote":
        fields = line.split(",")
        fields[7] = '"' + fields[7]
        return ",".join(fields)
    return ""


def _with_duplicates(rng: np.random.Generator, frame: pl.DataFrame, anomaly_rate: float):
    """The block with ~1 in 10,000 reports sent twice (at least one), and the rows that are the repeats."""
    if anomaly_rate <= 0 or frame.height <= 1:
        return frame, np.array([], dtype=np.int64)
    n_dup = max(1, round(DUPLICATE_RATE * frame.height))
    picks = np.sort(rng.choice(frame.height, n_dup, replace=False))
    order = np.sort(np.concatenate([np.arange(frame.height), picks]), kind="stable")
    return frame[order], np.flatnonzero(np.r_[False, order[1:] == order[:-1]])


class _CsvWriter:
    """The CSV as it is written: it knows the line numbers the labels of duplicates and malformed lines cite."""

    def __init__(self, out: Any, forms: list[str], labels: list[dict]):
        self.out, self.forms, self.labels = out, iter(forms), labels
        self.line_no = 1
        self.last_line: pl.DataFrame | None = None

    def block(
        self, frame: pl.DataFrame, dup_rows: np.ndarray, cuts: np.ndarray, rng: np.random.Generator
    ) -> None:
        """The block's rows, a malformed line before each cut (drawn from the row there)."""
        dup_set = set(dup_rows.tolist())
        prev = 0
        for cut in [*cuts.tolist(), frame.height]:
            piece = frame[prev:cut]
            if piece.height:
                self.out.write(piece.write_csv(include_header=False, datetime_format="%Y-%m-%dT%H:%M:%S"))
                for r in sorted(x for x in dup_set if prev <= x < cut):
                    row = frame[r]
                    when = row["BaseDateTime"][0]
                    self.labels.append(
                        label(
                            int(row["MMSI"][0]),
                            "duplicate",
                            when,
                            when,
                            f"line={self.line_no + 1 + r - prev}",
                        )
                    )
                self.line_no += piece.height
            if cut < frame.height:
                self._malformed(frame[min(cut, frame.height - 1)], rng)
            prev = cut
        if frame.height:
            self.last_line = frame[frame.height - 1]

    def _malformed(self, source: pl.DataFrame, rng: np.random.Generator) -> None:
        form = next(self.forms)
        self.out.write(_malformed(rng, form, _csv_line(source)) + "\n")
        self.line_no += 1
        mmsi = int(source["MMSI"][0]) if form not in ("garbage", "blank") else None
        self.labels.append(label(mmsi, "malformed_line", None, None, f"line={self.line_no} form={form}"))

    def truncated_last_line(self) -> None:
        """The file ends in half a line with no newline, as a copy cut off mid-write does."""
        last = self.last_line
        text = _csv_line(last) if last is not None else ",".join(CSV_COLUMNS)
        self.out.write(text[: max(1, len(text) // 2)])
        self.line_no += 1
        mmsi = int(last["MMSI"][0]) if last is not None else None
        self.labels.append(
            label(mmsi, "malformed_line", None, None, f"line={self.line_no} form=truncated_last_line")
        )


def _write_labels(labels: list[dict], path: Path) -> None:
    naive = {**LABEL_SCHEMA, "start": pl.Datetime("us"), "end": pl.Datetime("us")}
    table = (
        pl.DataFrame(labels, schema=naive)
        .with_columns(pl.col("start", "end").dt.replace_time_zone("UTC"))
        .sort("kind", "mmsi", "start", nulls_last=True)
    )
    table.write_parquet(path)


def simulate(
    n_vessels: int = 50,
    hours: float = 2.0,
    start: str = "2024-06-01T00:00:00",
    seed: int = 0,
    anomaly_rate: float = 0.05,
    malformed_lines: int = 5,
    out_dir: str | Path = ".",
    ports: Sequence[str] | None = None,
) -> tuple[Path, Path]:
    """Write `AIS_YYYY_MM_DD.csv` and `AIS_YYYY_MM_DD_labels.parquet` into `out_dir`; same seed, same bytes.

    `ports` puts every vessel's home at one of these ports (names in `ports.csv`): the dense traffic of a busy
    port area (hundreds of vessels in one grid cell) from a few thousand vessels instead of the whole coast's.

    With anomaly_rate > 0 every behavioural kind is injected at least once when there are enough vessels
    (>= 20); duplicates are injected at ~1 per 10,000 reports (at least one per block); the last malformed line
    is a truncated final line without a newline.
    """
    if n_vessels <= 0 or hours <= 0:
        raise ValueError("simulate needs n_vessels > 0 and hours > 0")
    rng = np.random.default_rng(seed)
    t0 = datetime.fromisoformat(start).replace(tzinfo=None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"AIS_{t0:%Y_%m_%d}.csv"
    labels_path = out_dir / f"AIS_{t0:%Y_%m_%d}_labels.parquet"

    fleet = _make_fleet(rng, n_vessels, ports)
    plan = _plan_anomalies(rng, fleet, hours, anomaly_rate, t0)
    labels = list(plan.labels)
    per_vessel = np.maximum(np.floor(hours * 3600.0 / fleet.interval), 1)
    blocks = np.array_split(np.arange(n_vessels), max(1, int(np.ceil(per_vessel.sum() / ROWS_PER_BLOCK))))
    block_of_malformed = np.sort(rng.integers(0, len(blocks), max(malformed_lines - 1, 0)))
    forms = [MALFORMED_FORMS[i % len(MALFORMED_FORMS)] for i in range(max(malformed_lines - 1, 0))]
    with csv_path.open("w", newline="\n") as out:
        out.write(",".join(CSV_COLUMNS) + "\n")
        writer = _CsvWriter(out, forms, labels)
        for b, vessels in enumerate(blocks):
            block_rng = np.random.default_rng([seed, b])
            cols, block_labels = _block_rows(block_rng, fleet, vessels, hours, plan, t0)
            labels.extend(block_labels)
            frame, dup_rows = _with_duplicates(block_rng, _frame(fleet, cols, t0), anomaly_rate)
            cuts = np.sort(block_rng.integers(0, frame.height + 1, int((block_of_malformed == b).sum())))
            writer.block(frame, dup_rows, cuts, block_rng)
        if malformed_lines > 0:
            writer.truncated_last_line()
    _write_labels(labels, labels_path)
    return csv_path, labels_path


def vessels_for_rows(rows: int, hours: float = 24.0, seed: int = 0) -> int:
    """How many vessels give about `rows` reports over `hours` (calibrated on a simulated fleet of 300)."""
    rng = np.random.default_rng(seed)
    fleet = _make_fleet(rng, 300)
    plan = _Anomalies({}, {}, {}, {}, [])
    cols, _ = _block_rows(rng, fleet, np.arange(300), hours, plan, datetime(2024, 1, 1))
    return max(1, round(rows / (cols["vi"].size / 300)))


_DAY = r"^[^,]*,(\d{4})-(\d{2})-(\d{2})T"


def split_by_day(csv_path: str | Path, out_dir: str | Path, block_bytes: int = 64 << 20) -> list[Path]:
    """Split a simulated CSV into one `AIS_YYYY_MM_DD.csv` per UTC day (MarineCadastre's layout), each with
    the header; returns them in date order.

    A line without a readable date (a malformed one) goes with the line before it; lines are copied as they
    are, and a last line without a newline stays without one. Memory: one block.
    """
    csv_path, out_dir = Path(csv_path), Path(out_dir)
    if out_dir.resolve() == csv_path.parent.resolve():
        raise ValueError(f"split_by_day: write the daily files to another folder than {csv_path.parent}")
    out_dir.mkdir(parents=True, exist_ok=True)
    handles: dict[str, BinaryIO] = {}
    last_day: str | None = None
    try:
        with csv_path.open("rb") as fh:
            header = fh.readline()
            rest = b""
            while True:
                chunk = fh.read(block_bytes)
                data = rest + chunk
                cut = data.rfind(b"\n") + 1 if chunk else len(data)
                block, rest = data[:cut], data[cut:]
                if block:
                    text = block.decode("utf-8")
                    unterminated = not text.endswith("\n")
                    lines = text.split("\n")
                    if not unterminated:
                        lines.pop()
                    days = pl.Series(lines, dtype=pl.String).str.extract_groups(_DAY).struct.unnest()
                    days = days.select(pl.concat_str(pl.all(), separator="_")).to_series().forward_fill()
                    if last_day is not None:
                        days = days.fill_null(last_day)
                    days = days.backward_fill()
                    if days.null_count():
                        raise ValueError(f"split_by_day: {csv_path} has no line with a date")
                    frame = pl.DataFrame({"line": lines, "day": days})
                    for (day,), group in frame.group_by("day", maintain_order=True):
                        if day not in handles:
                            handles[day] = (out_dir / f"AIS_{day}.csv").open("wb")
                            handles[day].write(header)
                        body = "\n".join(group["line"].to_list())
                        newline = "" if unterminated and day == days[-1] else "\n"
                        handles[day].write((body + newline).encode("utf-8"))
                    last_day = days[-1]
                if not chunk:
                    break
    finally:
        for handle in handles.values():
            handle.close()
    return [out_dir / f"AIS_{day}.csv" for day in sorted(handles)]
