"""Fact sheets: for one context, the answer keys of all six question categories, computed from its reports.

A fact is plain JSON: `{key, category, kind, value, unit, tolerance, subject, label, support}`.
`kind` says how an answer is checked: `number` (within `tolerance`, in `unit`), `count` (exact integer),
`mmsi` (exact), `pair` (two MMSIs, any order), `label` (exact after normalisation, e.g. a type group or
"none"), `name` (vessel name or flag, normalised). `label` is the question intent in words, which a teacher
sees in its prompt; `support` holds the numbers behind the value, for reasoning and for the editor model.
Everything is computed only from what the context text shows, so every fact is answerable from the context.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import numpy as np

from maritime_slm.config import FactsParams
from maritime_slm.facts.encounters import classify_encounter, cpa_tcpa
from maritime_slm.geo import dead_reckon, haversine_nm

CATEGORIES = ["vessel_profile", "kinematics", "traffic", "anomaly", "collision_risk", "compliance"]
MOVING_KN = 0.5


def family(key: str) -> str:
    """A fact's family: its key before any ':' arguments (`vessel_profile.flag:538000003` -> `vessel_profile.flag`)."""
    return key.split(":", 1)[0]


def final_answer_text(fact: dict[str, Any]) -> str:
    """The short, machine-checkable form of a fact's value: what every teacher's final answer, the grader and the
    evaluation's reference compare against."""
    kind, value = fact["kind"], fact["value"]
    if kind == "number":
        return f"{value:.2f} {fact['unit']}"
    if kind == "pair":
        return f"{value[0]} and {value[1]}"
    return str(value)


def fact(
    key, category, kind, value, label, unit=None, tolerance=0.0, subject=None, **support
) -> dict[str, Any]:
    if isinstance(value, float):
        value = round(value, 3)
    return {
        "key": key,
        "category": category,
        "kind": kind,
        "value": value,
        "unit": unit,
        "tolerance": tolerance,
        "subject": subject,
        "label": label,
        "support": support,
    }


def _num_tol(value: float, rel: float, floor: float) -> float:
    return round(max(abs(value) * rel, floor), 3)


def _unique_max(items: list[tuple[Any, float]]) -> tuple[Any, float] | None:
    """The argmax if it is unique (a tie makes 'which vessel…' ambiguous, so no fact)."""
    items = [(k, v) for k, v in items if v is not None and not np.isnan(v)]
    if not items:
        return None
    items.sort(key=lambda kv: kv[1], reverse=True)
    if len(items) > 1 and abs(items[0][1] - items[1][1]) < 1e-6:
        return None
    return items[0]


def _tracks(ctx: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    tracks: dict[int, list[dict[str, Any]]] = {}
    for r in ctx["reports"]:
        tracks.setdefault(r["mmsi"], []).append({**r, "t": datetime.fromisoformat(r["ts"]).timestamp()})
    for rows in tracks.values():
        rows.sort(key=lambda r: r["t"])
    return tracks


def vessel_profile_facts(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    cat = "vessel_profile"
    vessels = ctx["vessels"]
    out = []
    longest = _unique_max([(v["mmsi"], v["length"]) for v in vessels])
    if longest:
        v = next(v for v in vessels if v["mmsi"] == longest[0])
        out.append(fact(f"{cat}.longest_vessel", cat, "mmsi", v["mmsi"], "MMSI of the longest vessel",
                        length_m=v["length"], name=v["name"], flag=v["flag"]))  # fmt: skip
        out.append(fact(f"{cat}.longest_length", cat, "number", float(v["length"]), "length of the longest vessel",
                        unit="m", tolerance=0.5, mmsi=v["mmsi"], name=v["name"]))  # fmt: skip
        if v["flag"]:
            out.append(fact(f"{cat}.longest_flag", cat, "name", v["flag"], "flag state of the longest vessel",
                            mmsi=v["mmsi"], mid=str(v["mmsi"])[:3]))  # fmt: skip
    groups: dict[str, int] = {}
    for v in vessels:
        groups[v["type_group"]] = groups.get(v["type_group"], 0) + 1
    for group, n in sorted(groups.items()):
        out.append(fact(f"{cat}.count_type:{group}", cat, "count", n, f"number of {group} vessels",
                        subject=group, type_group=group))  # fmt: skip
    class_b = sum(1 for v in vessels if v["transceiver"] == "B")
    out.append(fact(f"{cat}.class_b_count", cat, "count", class_b, "number of Class B transceivers",
                    class_a=sum(1 for v in vessels if v["transceiver"] == "A")))  # fmt: skip
    names = [v["name"] for v in vessels if v["name"]]
    for v in vessels:
        m, row = v["mmsi"], _row_support(v)
        out.append(fact(f"{cat}.type_group:{m}", cat, "label", v["type_group"], f"type group of MMSI {m}",
                        subject=m, vessel_type=v["vessel_type"], **row))  # fmt: skip
        if v["flag"]:
            out.append(fact(f"{cat}.flag:{m}", cat, "name", v["flag"], f"flag state of MMSI {m}", subject=m,
                            mid=str(m)[:3], **row))  # fmt: skip
        if v["length"]:
            out.append(fact(f"{cat}.length:{m}", cat, "number", float(v["length"]), f"length of MMSI {m}",
                            unit="m", tolerance=0.5, subject=m, **row))  # fmt: skip
        if v["width"]:
            out.append(fact(f"{cat}.beam:{m}", cat, "number", float(v["width"]), f"beam (width) of MMSI {m}",
                            unit="m", tolerance=0.5, subject=m, **row))  # fmt: skip
        if v["name"]:
            out.append(fact(f"{cat}.name:{m}", cat, "name", v["name"], f"name broadcast by MMSI {m}", subject=m,
                            **row))  # fmt: skip
            if names.count(v["name"]) == 1:
                out.append(fact(f"{cat}.mmsi_of:{m}", cat, "mmsi", m, f"MMSI of the vessel named {v['name']}",
                                subject=m, **row))  # fmt: skip
    return out


def _row_support(v: dict[str, Any]) -> dict[str, Any]:
    """The vessel-table fields a look-up answer cites, so its reasoning can point at the row it read."""
    return {"name": v["name"] or "no name", "status_label": v["status_label"], "type_group": v["type_group"]}


def kinematics_facts(ctx: dict[str, Any], tracks) -> list[dict[str, Any]]:
    cat = "kinematics"
    out = []
    latest = {m: rows[-1] for m, rows in tracks.items()}
    fastest = _unique_max([(m, r["sog"]) for m, r in latest.items()])
    if fastest:
        out.append(fact(f"{cat}.fastest_vessel", cat, "mmsi", fastest[0], "MMSI of the fastest vessel (latest SOG)",
                        sog_kn=fastest[1], ts=latest[fastest[0]]["ts"]))  # fmt: skip
        out.append(fact(f"{cat}.fastest_sog", cat, "number", float(fastest[1]), "latest SOG of the fastest vessel",
                        unit="kn", tolerance=0.1, mmsi=fastest[0]))  # fmt: skip
    names = {v["mmsi"]: v["name"] or "no name" for v in ctx["vessels"]}
    for m, r in latest.items():
        if r["sog"] is not None:
            out.append(fact(f"{cat}.sog:{m}", cat, "number", float(r["sog"]), f"latest SOG of MMSI {m}", unit="kn",
                            tolerance=0.05, subject=m, name=names.get(m, "no name"), time=r["ts"][11:19],
                            cog=r["cog"]))  # fmt: skip
    stationary = sorted(m for m, r in latest.items() if r["sog"] is not None and r["sog"] < MOVING_KN)
    out.append(fact(f"{cat}.stationary_count", cat, "count", len(stationary),
                    f"number of vessels with latest SOG below {MOVING_KN} kn", mmsis=stationary))  # fmt: skip
    for m, rows in tracks.items():
        if len(rows) < 2 or rows[-1]["t"] - rows[0]["t"] < 60:
            continue
        first, last = rows[0], rows[-1]
        legs = [haversine_nm(a["lat"], a["lon"], b["lat"], b["lon"]) for a, b in itertools.pairwise(rows)]
        dist = float(sum(legs))
        minutes = (last["t"] - first["t"]) / 60.0
        t0, t1 = first["ts"][11:19], last["ts"][11:19]
        out.append(fact(f"{cat}.distance:{m}", cat, "number", dist,
                        f"distance MMSI {m} travelled between its reports at {t0} and {t1} UTC, summed over reports",
                        unit="nm", tolerance=_num_tol(dist, 0.05, 0.02), subject=m, start=first["ts"],
                        end=last["ts"], start_time=t0, end_time=t1, legs_nm=[round(x, 4) for x in legs]))  # fmt: skip
        avg = dist / (minutes / 60.0)
        out.append(fact(f"{cat}.avg_speed:{m}", cat, "number", avg,
                        f"average speed of MMSI {m} between {t0} and {t1} UTC from its positions",
                        unit="kn", tolerance=_num_tol(avg, 0.05, 0.1), subject=m, distance_nm=round(dist, 4),
                        minutes=round(minutes, 2)))  # fmt: skip
    for port in ctx["ports"][:1]:
        for m, r in latest.items():
            if r["sog"] is None or r["sog"] < 1.0:
                continue
            d = float(haversine_nm(r["lat"], r["lon"], port["lat"], port["lon"]))
            eta = d / r["sog"] * 60.0
            out.append(fact(f"{cat}.eta_min:{m}:{port['port']}", cat, "number", eta,
                            f"straight-line time for MMSI {m} to reach {port['port']} at its latest SOG",
                            unit="min", tolerance=_num_tol(eta, 0.05, 1.0), subject=m, distance_nm=round(d, 3),
                            sog_kn=r["sog"]))  # fmt: skip
    return out


def traffic_facts(ctx: dict[str, Any], tracks, params: FactsParams) -> list[dict[str, Any]]:
    cat = "traffic"
    latest = {m: rows[-1] for m, rows in tracks.items()}
    groups = {v["mmsi"]: v["type_group"] for v in ctx["vessels"]}
    out = [
        fact(f"{cat}.total_vessels", cat, "count", len(ctx["vessels"]), "number of vessels in the snapshot")
    ]
    moving = sorted(m for m, r in latest.items() if r["sog"] is not None and r["sog"] >= MOVING_KN)
    out.append(fact(f"{cat}.moving_count", cat, "count", len(moving),
                    f"number of vessels moving (latest SOG at least {MOVING_KN} kn)", mmsis=moving))  # fmt: skip
    counts: dict[str, int] = {}
    for g in groups.values():
        counts[g] = counts.get(g, 0) + 1
    busiest = _unique_max(list(counts.items()))
    if busiest:
        out.append(fact(f"{cat}.most_common_type", cat, "label", busiest[0], "most common vessel type group",
                        counts=counts))  # fmt: skip
    r_nm = params.port_radius_nm
    for port in ctx["ports"]:
        dists = {
            m: float(haversine_nm(r["lat"], r["lon"], port["lat"], port["lon"])) for m, r in latest.items()
        }
        near = sorted(m for m, d in dists.items() if d <= r_nm)
        name = port["port"]
        out.append(fact(f"{cat}.within:{name}", cat, "count", len(near),
                        f"number of vessels within {r_nm:g} nm of {name} (latest positions)", subject=name,
                        mmsis=near, radius_nm=r_nm))  # fmt: skip
        for group in sorted({groups[m] for m in near}):
            n = sum(1 for m in near if groups[m] == group)
            out.append(fact(f"{cat}.within_type:{name}:{group}", cat, "count", n,
                            f"number of {group} vessels within {r_nm:g} nm of {name}", subject=name,
                            radius_nm=r_nm))  # fmt: skip
        closest = min(dists.items(), key=lambda kv: kv[1])
        ranked = sorted(dists.values())
        if len(ranked) < 2 or ranked[1] - ranked[0] > 0.01:
            out.append(fact(f"{cat}.closest_to:{name}", cat, "mmsi", closest[0],
                            f"MMSI of the vessel closest to {name}", subject=name,
                            distance_nm=round(closest[1], 3)))  # fmt: skip
    return out


def anomaly_facts(ctx: dict[str, Any], tracks, params: FactsParams) -> list[dict[str, Any]]:
    cat = "anomaly"
    gaps, jumps = [], []
    for m, rows in tracks.items():
        for a, b in itertools.pairwise(rows):
            minutes = (b["t"] - a["t"]) / 60.0
            if minutes > params.gap_minutes:
                gaps.append((m, minutes, a["ts"], b["ts"]))
            if minutes > 0:
                implied = float(haversine_nm(a["lat"], a["lon"], b["lat"], b["lon"])) / (minutes / 60.0)
                if implied > params.jump_speed_kn:
                    jumps.append((m, implied, a["ts"], b["ts"]))
    out = []
    gap = _unique_max([(g, g[1]) for g in gaps])
    if not gaps:
        out.append(fact(f"{cat}.gap_vessel", cat, "label", "none",
                        f"vessel with the longest reporting gap over {params.gap_minutes:g} min", threshold_min=params.gap_minutes))  # fmt: skip
    elif gap:
        (m, minutes, start, end), _ = gap
        out.append(fact(f"{cat}.gap_vessel", cat, "mmsi", m,
                        f"vessel with the longest reporting gap over {params.gap_minutes:g} min", start=start, end=end,
                        minutes=round(minutes, 2)))  # fmt: skip
        out.append(fact(f"{cat}.gap_minutes", cat, "number", minutes, "length of the longest reporting gap",
                        unit="min", tolerance=_num_tol(minutes, 0.02, 0.5), mmsi=m, start=start, end=end,
                        start_time=start[11:19], end_time=end[11:19]))  # fmt: skip
    out.append(fact(f"{cat}.gap_count", cat, "count", len({g[0] for g in gaps}),
                    f"number of vessels with a reporting gap over {params.gap_minutes:g} min",
                    mmsis=sorted({g[0] for g in gaps})))  # fmt: skip
    jump = _unique_max([(j, j[1]) for j in jumps])
    if not jumps:
        out.append(fact(f"{cat}.jump_vessel", cat, "label", "none",
                        f"vessel whose positions imply more than {params.jump_speed_kn:g} kn (a position jump)"))  # fmt: skip
    elif jump:
        (m, implied, start, end), _ = jump
        out.append(fact(f"{cat}.jump_vessel", cat, "mmsi", m,
                        f"vessel whose positions imply more than {params.jump_speed_kn:g} kn (a position jump)",
                        implied_kn=round(implied, 1), start=start, end=end))  # fmt: skip
    for v in ctx["vessels"]:
        m = v["mmsi"]
        if m in tracks:
            last = tracks[m][-1]["ts"][11:19]
            out.append(fact(f"{cat}.last_seen:{m}", cat, "name", last, f"time (UTC) of the latest report of MMSI {m}",
                            subject=m, n_reports=len(tracks[m]), name=v["name"] or "no name"))  # fmt: skip
    no_flag = sorted(v["mmsi"] for v in ctx["vessels"] if not v["flag"])
    out.append(fact(f"{cat}.unknown_flag_count", cat, "count", len(no_flag),
                    "number of vessels whose MMSI has no valid country code (MID)", mmsis=no_flag))  # fmt: skip
    no_name = sorted(v["mmsi"] for v in ctx["vessels"] if not v["name"])
    out.append(fact(f"{cat}.no_name_count", cat, "count", len(no_name), "number of vessels broadcasting no name",
                    mmsis=no_name))  # fmt: skip
    loiter = []
    for m, rows in tracks.items():
        span = (rows[-1]["t"] - rows[0]["t"]) / 60.0
        if span < params.loiter_minutes or rows[-1]["status"] in (1, 5):
            continue
        radius = max(float(haversine_nm(rows[0]["lat"], rows[0]["lon"], r["lat"], r["lon"])) for r in rows)
        if radius <= params.loiter_radius_nm and all(r["sog"] is not None and r["sog"] < 3.0 for r in rows):
            loiter.append(m)
    out.append(fact(f"{cat}.loitering_count", cat, "count", len(loiter),
                    f"number of vessels loitering (not anchored/moored, under 3 kn, within {params.loiter_radius_nm:g} nm "
                    f"for {params.loiter_minutes:g}+ min)", mmsis=sorted(loiter)))  # fmt: skip
    return out


def collision_facts(ctx: dict[str, Any], tracks, params: FactsParams) -> list[dict[str, Any]]:
    """CPA/TCPA from each vessel's latest report, dead-reckoned to the snapshot time (its latest report)."""
    cat = "collision_risk"
    latest = {
        m: rows[-1]
        for m, rows in tracks.items()
        if rows[-1]["sog"] is not None and rows[-1]["cog"] is not None
    }
    if len(latest) < 2:
        return []
    t_ref = max(r["t"] for r in latest.values())
    pos = {}
    for m, r in latest.items():
        lat, lon = dead_reckon(r["lat"], r["lon"], r["sog"], r["cog"], (t_ref - r["t"]) / 60.0)
        pos[m] = (float(lat), float(lon), float(r["sog"]), float(r["cog"]), r["heading"])
    pairs = []
    for a, b in itertools.combinations(sorted(pos), 2):
        pa, pb = pos[a], pos[b]
        if max(pa[2], pb[2]) < MOVING_KN:
            continue
        cpa, tcpa = cpa_tcpa(pa[0], pa[1], pa[2], pa[3], pb[0], pb[1], pb[2], pb[3])
        if 0.0 <= tcpa <= params.cpa_horizon_min:
            pairs.append(((a, b), float(cpa), float(tcpa)))
    out = []
    snapshot = datetime.fromtimestamp(t_ref, UTC).isoformat()
    n_close = sum(1 for p in pairs if p[1] < params.close_encounter_nm)
    out.append(fact(f"{cat}.close_pairs", cat, "count", n_close,
                    f"number of pairs with CPA under {params.close_encounter_nm:g} nm in the next "
                    f"{params.cpa_horizon_min:g} min", snapshot=snapshot))  # fmt: skip
    if not pairs:
        out.append(fact(f"{cat}.min_cpa_pair", cat, "label", "none",
                        f"pair with the smallest CPA in the next {params.cpa_horizon_min:g} min"))  # fmt: skip
        return out
    pairs.sort(key=lambda p: p[1])
    if len(pairs) > 1 and pairs[1][1] - pairs[0][1] < 0.01:
        return out
    (a, b), cpa, tcpa = pairs[0]
    pa, pb = pos[a], pos[b]
    encounter, give_way = classify_encounter(pa[0], pa[1], pa[2], pa[3], pb[0], pb[1], pb[2], pb[3],
                                             pa[4], pb[4])  # fmt: skip
    out.append(fact(f"{cat}.min_cpa_pair", cat, "pair", [a, b],
                    f"pair with the smallest CPA in the next {params.cpa_horizon_min:g} min", cpa_nm=round(cpa, 3),
                    tcpa_min=round(tcpa, 2), snapshot=snapshot))  # fmt: skip
    out.append(fact(f"{cat}.min_cpa_nm", cat, "number", cpa, "smallest CPA", unit="nm",
                    tolerance=_num_tol(cpa, 0.1, 0.05), pair=[a, b]))  # fmt: skip
    out.append(fact(f"{cat}.min_cpa_tcpa", cat, "number", tcpa, "time to the smallest CPA", unit="min",
                    tolerance=_num_tol(tcpa, 0.1, 0.5), pair=[a, b]))  # fmt: skip
    out.append(fact(f"{cat}.encounter_type", cat, "label", str(encounter).replace("_", "-"),
                    "COLREGs encounter type of the smallest-CPA pair", pair=[a, b]))  # fmt: skip
    give = {"first": a, "second": b}.get(str(give_way), str(give_way))
    out.append(fact(f"{cat}.give_way", cat, "mmsi" if isinstance(give, int) else "label", give,
                    "give-way vessel of the smallest-CPA pair (COLREGs Rules 13-15)", pair=[a, b],
                    encounter=str(encounter)))  # fmt: skip
    return out


def compliance_facts(ctx: dict[str, Any], tracks) -> list[dict[str, Any]]:
    cat = "compliance"
    latest = {m: rows[-1] for m, rows in tracks.items()}
    anchor = sorted(m for m, r in latest.items() if r["status"] == 1 and (r["sog"] or 0) > 3.0)
    moored = sorted(m for m, r in latest.items() if r["status"] == 5 and (r["sog"] or 0) > 1.0)
    out = [
        fact(f"{cat}.anchored_moving_count", cat, "count", len(anchor),
             "number of vessels reporting 'at anchor' while moving over 3 kn", mmsis=anchor),
        fact(f"{cat}.moored_moving_count", cat, "count", len(moored),
             "number of vessels reporting 'moored' while moving over 1 kn", mmsis=moored),
    ]  # fmt: skip
    for v in ctx["vessels"]:
        m = v["mmsi"]
        out.append(fact(f"{cat}.status:{m}", cat, "name", v["status_label"],
                        f"navigational status reported by MMSI {m}", subject=m, name=v["name"] or "no name",
                        sog=latest[m]["sog"] if m in latest else None))  # fmt: skip
    inconsistent = sorted(set(anchor) | set(moored))
    if len(inconsistent) == 1:
        out.append(fact(f"{cat}.status_inconsistent_vessel", cat, "mmsi", inconsistent[0],
                        "vessel whose navigational status contradicts its speed"))  # fmt: skip
    elif not inconsistent:
        out.append(fact(f"{cat}.status_inconsistent_vessel", cat, "label", "none",
                        "vessel whose navigational status contradicts its speed"))  # fmt: skip
    lengths = {v["mmsi"]: v["length"] for v in ctx["vessels"]}
    for zone in ctx["zones"]:
        if not zone["in_force"]:
            continue
        speeding = sorted(
            m for m in zone["mmsis"]
            if (latest[m]["sog"] or 0) > zone["speed_limit_kn"] and (lengths.get(m) or 0) >= zone["min_length_m"]
        )  # fmt: skip
        out.append(fact(f"{cat}.speeding_in:{zone['zone_id']}", cat, "count", len(speeding),
                        f"number of vessels of {zone['min_length_m']:g} m or more above {zone['speed_limit_kn']:g} kn "
                        f"in {zone['name']}", subject=zone["zone_id"], mmsis=speeding,
                        regulation="50 CFR 224.105"))  # fmt: skip
    return out


def compute_facts(ctx: dict[str, Any], params: FactsParams) -> list[dict[str, Any]]:
    """All facts of a context, in category order."""
    tracks = _tracks(ctx)
    return (
        vessel_profile_facts(ctx)
        + kinematics_facts(ctx, tracks)
        + traffic_facts(ctx, tracks, params)
        + anomaly_facts(ctx, tracks, params)
        + collision_facts(ctx, tracks, params)
        + compliance_facts(ctx, tracks)
    )
