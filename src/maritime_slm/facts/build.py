"""Contexts, fact sheets and event tables for a run, from the ingest stage's outputs (what notebook 02 calls first).

The data work runs in partitions under `params.engine` (`facts.partitions`); contexts and their fact sheets are
assembled in the driver from the chosen cells' reports: that part grows with `contexts.n_contexts`, not with rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import polars as pl

from maritime_slm.ais.mid import flag_state_expr, mid_expr
from maritime_slm.config import Params
from maritime_slm.engine import Engine
from maritime_slm.facts.contexts import assemble_contexts, strata_table
from maritime_slm.facts.factsheet import compute_facts
from maritime_slm.facts.partitions import stage_data
from maritime_slm.jsonl import read_jsonl
from maritime_slm.models import student_token_counter

FACTS_VERSION = "1"
WORK_DIR = "_work"  # the partitions' shuffle files while the stage runs


def facts_version(params: Params) -> str:
    """Facts are versioned with the params that made them (and the fact-code version)."""
    blob = json.dumps(
        {"code": FACTS_VERSION, "contexts": params.contexts.model_dump(), "facts": params.facts.model_dump()},
        sort_keys=True,
    )
    return f"v{FACTS_VERSION}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def read_points(ingest_dir: Path) -> pl.LazyFrame:
    """All clean points of a run at once (the single-process view that the partitions reproduce)."""
    return pl.scan_parquet(ingest_dir / "points" / "**" / "*.parquet", hive_partitioning=False)


def read_flags(ingest_dir: Path) -> dict[int, str]:
    """Flag state of every vessel from its MMSI's MID (the ITU table shipped with the ingest stage)."""
    vessels = pl.read_parquet(ingest_dir / "vessels.parquet", columns=["mmsi"])
    flags = vessels.select("mmsi", flag=flag_state_expr(mid_expr("mmsi")))
    return {m: f for m, f in flags.iter_rows() if f}


def build_contexts_and_facts(
    ingest_dir: Path, params: Params, out_dir: Path, *, progress: bool = True
) -> dict[str, Any]:
    """Writes contexts.jsonl, facts.jsonl, candidates.parquet, strata.csv, events/<kind>/part-*.parquet (one
    part per vessel bucket; `partitions.read_events` reads a table whole) and partitions.csv (one row per partition
    run); returns what it wrote, with the rows of each event table."""
    ingest_dir, out_dir = Path(ingest_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    work = out_dir / WORK_DIR
    shutil.rmtree(work, ignore_errors=True)
    with Engine(params.engine, progress=progress) as engine:
        data = stage_data(ingest_dir, params, work, engine)
        described = engine.describe()
    shutil.rmtree(out_dir / "events", ignore_errors=True)
    data["events_dir"].mkdir(parents=True, exist_ok=True)
    os.replace(data["events_dir"], out_dir / "events")
    shutil.rmtree(work, ignore_errors=True)
    seconds_data = time.perf_counter() - started
    contexts = assemble_contexts(
        data["chosen"], data["points"], read_flags(ingest_dir), params.contexts, params.facts,
        student_token_counter(params.finetune), progress,
    )  # fmt: skip
    version = facts_version(params)
    facts = {ctx["context_id"]: compute_facts(ctx, params.facts) for ctx in contexts}
    with (out_dir / "contexts.jsonl").open("w") as fh:
        for ctx in contexts:
            fh.write(json.dumps(ctx, default=str) + "\n")
    with (out_dir / "facts.jsonl").open("w") as fh:
        for cid, sheet in facts.items():
            fh.write(json.dumps({"context_id": cid, "facts_version": version, "facts": sheet}) + "\n")
    cells = data["cells"]
    strata = strata_table(cells, data["chosen"])
    cells.write_parquet(out_dir / "candidates.parquet")
    strata.write_csv(out_dir / "strata.csv")
    partitions = pl.DataFrame(engine.timings)
    partitions.write_csv(out_dir / "partitions.csv")
    return {
        "contexts": contexts,
        "facts": facts,
        "candidates": cells,
        "strata": strata,
        "events": data["events"],
        "facts_version": version,
        "engine": described,
        "partitions": partitions,
        "rows": data["rows"],
        "days": data["days"],
        "seconds_data": round(seconds_data, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }


def load_facts(path: Path) -> dict[str, list[dict[str, Any]]]:
    return {row["context_id"]: row["facts"] for row in read_jsonl(path)}


def fact_sheet_frame(facts: list[dict[str, Any]]) -> pl.DataFrame:
    """A fact sheet as a table to read: key, kind, value, unit, tolerance."""
    return pl.DataFrame(
        {
            "key": [f["key"] for f in facts],
            "kind": [f["kind"] for f in facts],
            "value": [str(f["value"]) for f in facts],
            "unit": [f["unit"] or "" for f in facts],
            "tolerance": [float(f["tolerance"]) for f in facts],
        }
    )


def context_size_table(contexts: list[dict[str, Any]]) -> pl.DataFrame:
    """Distribution of context sizes (tokens with the student's tokenizer, and vessels)."""
    sizes = pl.DataFrame(
        {
            "tokens": [c["n_tokens"] for c in contexts],
            "vessels": [len(c["vessels"]) for c in contexts],
            "reports": [len(c["reports"]) for c in contexts],
        }  # fmt: skip
    )
    return sizes.describe(percentiles=(0.1, 0.5, 0.9))


def funnel_rows(built: dict[str, Any]) -> pl.DataFrame:
    """The contexts part of table_1 (the ingest part is written by stage 01)."""
    contexts = built["contexts"]
    n_facts = sum(len(f) for f in built["facts"].values())
    rows = [
        ("candidate snapshots (time window x grid cell with enough ships)", len(built["candidates"])),
        ("contexts sampled (stratified)", len(contexts)),
        ("vessels in contexts", sum(len(c["vessels"]) for c in contexts)),
        ("AIS reports in contexts", sum(len(c["reports"]) for c in contexts)),
        ("ground-truth facts", n_facts),
    ]
    return pl.DataFrame(
        {
            "step": [r[0] for r in rows],
            "this_run": [r[1] for r in rows],
            "paper_reported": [None] * len(rows),
        },
        schema={"step": pl.String, "this_run": pl.Int64, "paper_reported": pl.String},
    )
