"""Hand-made contexts, fact sheets and pairs for the curate tests (a module name no other test folder uses)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from maritime_slm.config import FactsParams
from maritime_slm.facts.contexts import serialize
from maritime_slm.facts.factsheet import CATEGORIES, compute_facts
from maritime_slm.generate.records import QAPair
from maritime_slm.generate.rules import rules_pairs

T0 = datetime(2022, 1, 3, 0, 0, tzinfo=UTC)


def vessel(mmsi, name, vtype, group, flag, cls, length, status, label) -> dict[str, Any]:
    return {"mmsi": mmsi, "name": name, "imo": None, "call_sign": None, "vessel_type": vtype, "type_group": group,
            "flag": flag, "transceiver": cls, "length": length, "width": 20.0, "draft": 8.0, "status": status,
            "status_label": label}  # fmt: skip


def report(mmsi, ts: datetime, lat, lon, sog, cog, status) -> dict[str, Any]:
    return {"mmsi": mmsi, "ts": ts.isoformat(), "lat": lat, "lon": lon, "sog": sog, "cog": cog, "heading": None,
            "status": status}  # fmt: skip


def finish(ctx: dict[str, Any]) -> dict[str, Any]:
    ctx.setdefault("region", "Gulf of Mexico")
    ctx.setdefault("center_lat", 29.0)
    ctx.setdefault("center_lon", -93.9)
    ctx.setdefault("zones", [])
    ctx.setdefault("ports", [])
    ctx["text"] = serialize(ctx)
    ctx["n_tokens"] = len(ctx["text"]) // 4
    return ctx


def hand_context(context_id: str = "ctx-test", start: datetime = T0) -> dict[str, Any]:
    """The facts tests' hand-worked snapshot: A (cargo, 12 kn east) and B (tanker 'at anchor' at 5 kn west)
    head-on 5.25 nm apart; C (pleasure craft, no name) still, with a 15-minute gap."""

    def t(minutes: float) -> datetime:
        return start + timedelta(minutes=minutes)

    return finish(
        {
            "context_id": context_id,
            "window_start": start.isoformat(),
            "window_end": t(20).isoformat(),
            "ports": [{"port": "Houston", "lat": 29.0, "lon": -93.95, "center_nm": 1.0}],
            "vessels": [
                vessel(
                    367000001, "ALPHA", 70, "cargo", "United States", "A", 180.0, 0, "under way using engine"
                ),
                vessel(367000002, "BRAVO", 80, "tanker", "United States", "A", 250.0, 1, "at anchor"),
                vessel(
                    538000003, None, 37, "pleasure_sailing", "Marshall Islands", "B", 12.0, 15, "undefined"
                ),
            ],
            "reports": [
                report(367000001, t(0), 29.0, -94.0, 12.0, 90.0, 0),
                report(367000001, t(10), 29.0, -93.9, 12.0, 90.0, 0),
                report(367000002, t(10), 29.0, -93.8, 5.0, 270.0, 1),
                report(538000003, t(0), 30.0, -94.0, 0.0, None, 15),
                report(538000003, t(15), 30.0, -94.0, 0.0, None, 15),
            ],
        }
    )


def facts_of(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    return compute_facts(ctx, FactsParams())


def random_context(context_id: str, mmsis: list[int], start: datetime, rng: random.Random) -> dict[str, Any]:
    """A snapshot of the given vessels in a 20-minute window starting at `start`, with random motion."""
    groups = [(70, "cargo"), (80, "tanker"), (30, "fishing"), (60, "passenger"), (52, "tug_tow")]
    vessels, reports = [], []
    for m in mmsis:
        code, group = rng.choice(groups)
        vessels.append(vessel(m, f"SHIP {m % 1000}", code, group, "United States", "A",
                              float(rng.randint(20, 300)), 0, "under way using engine"))  # fmt: skip
        lat, lon = 29.0 + rng.uniform(-0.1, 0.1), -94.0 + rng.uniform(-0.1, 0.1)
        sog, cog = round(rng.uniform(0, 20), 1), round(rng.uniform(0, 359), 1)
        for k in range(2):
            reports.append(report(m, start + timedelta(minutes=5 + 10 * k), lat + 0.01 * k, lon, sog, cog, 0))
    return finish(
        {
            "context_id": context_id,
            "window_start": start.isoformat(),
            "window_end": (start + timedelta(minutes=20)).isoformat(),
            "vessels": vessels,
            "reports": reports,
        }
    )


def rules_for(ctx: dict[str, Any], n: int = 6, seed: int = 0) -> list[QAPair]:
    return rules_pairs(ctx["context_id"], facts_of(ctx), CATEGORIES, n, seed)


def pair(ctx_id: str = "ctx-test", key: str = "traffic.total_vessels", final: str = "3", **kw: Any) -> QAPair:
    fields = {
        "id": kw.pop("id", f"t-{key}-{final}"),
        "context_id": ctx_id,
        "category": key.split(".", 1)[0] if key.split(".", 1)[0] in CATEGORIES else "traffic",
        "teacher": kw.pop("teacher", "llm"),
        "question": kw.pop("question", "How many vessels are in this snapshot?"),
        "reasoning": kw.pop("reasoning", "Counting the rows of the vessel table."),
        "answer": kw.pop("answer", ""),
        "final_answer": final,
        "facts_ref": [key],
    }
    return QAPair(**(fields | kw))


# ------------------------------------------------------------------ a whole stage-02 folder
def _perturb(p: QAPair, fact: dict[str, Any], mode: int, ctx: dict[str, Any]) -> QAPair:
    """An LLM-teacher-like pair: correct (mode 0), or wrong in one of several ways."""
    upd: dict[str, Any] = {"id": p.id.replace("rules-", "fake-"), "teacher": "fake-llm"}
    upd["answer"] = f"The answer is {p.final_answer}."
    if mode == 1 and fact["kind"] in ("number", "count"):
        wrong = float(fact["value"]) * 2 + 5
        shown = f"{wrong:.2f} {fact['unit']}" if fact["kind"] == "number" else str(int(wrong))
        upd |= {"final_answer": shown, "answer": f"The answer is {shown}."}
    elif mode == 2:
        upd |= {"final_answer": "999999999", "answer": "It is MMSI 999999999."}
    elif mode == 3:
        upd |= {"facts_ref": ["traffic.within:Atlantis"]}
    elif mode == 4 and fact["kind"] == "number":
        upd |= {
            "final_answer": f"{fact['value']:.2f} min" if fact["unit"] != "min" else f"{fact['value']:.2f} nm"
        }
    return p.model_copy(update=upd)


def write_generate_dir(folder, n_contexts: int = 12, seed: int = 0) -> dict[str, Any]:
    """contexts.jsonl, facts.jsonl and pairs.jsonl (rules teacher + a fake LLM teacher with known errors).

    Contexts come in windows of 20 minutes; every fourth context reuses vessels of the previous one in the
    same window (an overlapping vessel-window the split must keep together)."""
    import json
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    contexts, next_mmsi = [], 367_100_000
    for i in range(n_contexts):
        start = T0 + timedelta(minutes=20 * (i // 2))
        if i % 4 == 1:
            prev = contexts[-1]
            mmsis = [v["mmsi"] for v in prev["vessels"][:2]] + [next_mmsi + k for k in range(3)]
            start = datetime.fromisoformat(prev["window_start"])
        else:
            mmsis = [next_mmsi + k for k in range(5)]
        next_mmsi += 5
        contexts.append(random_context(f"ctx-{i:05d}", mmsis, start, rng))
    facts = {c["context_id"]: facts_of(c) for c in contexts}
    pairs: list[QAPair] = []
    for c in contexts:
        sheet = {f["key"]: f for f in facts[c["context_id"]]}
        rules = rules_for(c, n=12, seed=seed)
        pairs += rules
        for j, p in enumerate(rules[:6]):
            pairs.append(_perturb(p, sheet[p.facts_ref[0]], (j + rng.randint(0, 4)) % 5, c))
    with (folder / "contexts.jsonl").open("w") as fh:
        for c in contexts:
            fh.write(json.dumps(c) + "\n")
    with (folder / "facts.jsonl").open("w") as fh:
        for cid, sheet in facts.items():
            fh.write(json.dumps({"context_id": cid, "facts_version": "test", "facts": sheet}) + "\n")
    with (folder / "pairs.jsonl").open("w") as fh:
        for p in pairs:
            fh.write(p.model_dump_json() + "\n")
    return {"contexts": contexts, "facts": facts, "pairs": pairs}
