"""Helpers shared by the top-level tests (a module name no other test folder shadows)."""

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def make_notebook(path: Path, stage: str, body: str) -> Path:
    """A minimal stage notebook: the runner's parameters cell, Stage.open, then `body`."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('run_name = "x"\nprofile = "smoke"\nrun_dir = ""\nstage_dir = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            f"from maritime_slm.stage import Stage, StageRecord\nstage = Stage.open({stage!r}, run_name, profile, run_dir, stage_dir)"
        ),
        nbformat.v4.new_code_cell(body),
    ]
    nb.metadata["kernelspec"] = {
        "name": "maritime-slm",
        "display_name": "Python (maritime-slm)",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _vessel(mmsi, name, vtype, group, flag, cls, length, status, label):
    return {"mmsi": mmsi, "name": name, "imo": None, "call_sign": None, "vessel_type": vtype, "type_group": group,
            "flag": flag, "transceiver": cls, "length": length, "width": 20.0, "draft": 8.0, "status": status,
            "status_label": label}  # fmt: skip


def _report(mmsi, ts, lat, lon, sog, cog, status):
    return {"mmsi": mmsi, "ts": f"2022-01-03T{ts}+00:00", "lat": lat, "lon": lon, "sog": sog, "cog": cog,
            "heading": None, "status": status}  # fmt: skip


def hand_made_context() -> dict:
    """Three vessels off Houston whose facts are worked out by hand in tests/facts/test_factsheet.py."""
    return {
        "context_id": "ctx-test",
        "window_start": "2022-01-03T00:00:00+00:00",
        "window_end": "2022-01-03T00:20:00+00:00",
        "region": "Gulf of Mexico",
        "center_lat": 29.0,
        "center_lon": -93.9,
        "ports": [{"port": "Houston", "lat": 29.0, "lon": -93.95, "center_nm": 1.0}],
        "zones": [],
        "vessels": [
            _vessel(
                367000001, "ALPHA", 70, "cargo", "United States", "A", 180.0, 0, "under way using engine"
            ),
            _vessel(367000002, "BRAVO", 80, "tanker", "United States", "A", 250.0, 1, "at anchor"),
            _vessel(538000003, None, 37, "pleasure_sailing", "Marshall Islands", "B", 12.0, 15, "undefined"),
        ],
        "reports": [
            # A steams east at 12 kn: 0.1 deg of longitude at 29 N in 10 min
            _report(367000001, "00:00:00", 29.0, -94.0, 12.0, 90.0, 0),
            _report(367000001, "00:10:00", 29.0, -93.9, 12.0, 90.0, 0),
            # B reports "at anchor" but heads west at 5 kn, straight at A: head-on
            _report(367000002, "00:10:00", 29.0, -93.8, 5.0, 270.0, 1),
            # C sits still far away, with a 15-minute gap between reports
            _report(538000003, "00:00:00", 30.0, -94.0, 0.0, None, 15),
            _report(538000003, "00:15:00", 30.0, -94.0, 0.0, None, 15),
        ],
    }


def teacher_contexts(n: int) -> tuple[list[dict], dict[str, list[dict]]]:
    """n hand-made contexts, each shifted a little: distinct contexts make distinct prompts (identical prompts
    share a cache entry); with their fact sheets."""
    from maritime_slm.config import FactsParams
    from maritime_slm.facts.contexts import serialize
    from maritime_slm.facts.factsheet import compute_facts

    ctxs = []
    for i in range(n):
        ctx = hand_made_context()
        ctx["context_id"] = f"ctx-{i:03d}"
        for r in ctx["reports"]:
            r["lat"] += 0.01 * i
        ctx["text"] = serialize(ctx)
        ctxs.append(ctx)
    return ctxs, {c["context_id"]: compute_facts(c, FactsParams()) for c in ctxs}


def answer_first_intent(body):
    """A well-behaved teacher: picks the first intent on the menu and answers '1'."""
    import re

    from maritime_slm.llm.testserver import json_reply, prompt_of

    key = re.search(r"^- ([a-z_]+\.[^:\s]+(?::[^:\s]+)*):", prompt_of(body), re.M).group(1)
    return json_reply({"fact_key": key, "question": f"What about {key}?", "reasoning": "Read it off.",
                       "answer": "It is 1.", "final_answer": "1"})  # fmt: skip
