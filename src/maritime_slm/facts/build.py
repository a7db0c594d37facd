"""Contexts and fact sheets for a run, from the ingest stage's outputs (what notebook 02 calls first)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import polars as pl

from maritime_slm.config import Params
from maritime_slm.facts.contexts import sample_contexts
from maritime_slm.facts.factsheet import compute_facts
from maritime_slm.models import count_tokens

FACTS_VERSION = "1"


def facts_version(params: Params) -> str:
    """Facts are versioned with the params that made them (and the fact-code version)."""
    blob = json.dumps(
        {"code": FACTS_VERSION, "contexts": params.contexts.model_dump(), "facts": params.facts.model_dump()},
        sort_keys=True,
    )
    return f"v{FACTS_VERSION}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def read_points(ingest_dir: Path) -> pl.LazyFrame:
    return pl.scan_parquet(ingest_dir / "points" / "**" / "*.parquet", hive_partitioning=False)


def read_flags(ingest_dir: Path) -> dict[int, str]:
    vessels = pl.read_parquet(ingest_dir / "vessels.parquet", columns=["mmsi", "flag_state"])
    return {m: f for m, f in vessels.iter_rows() if f}


def build_contexts_and_facts(ingest_dir: Path, params: Params, out_dir: Path) -> dict[str, Any]:
    """Writes contexts.jsonl, facts.jsonl, candidates.parquet and strata.csv; returns what it wrote."""
    started = time.perf_counter()
    contexts, cells, strata = sample_contexts(
        read_points(ingest_dir), read_flags(ingest_dir), params.contexts, params.facts, count_tokens
    )
    version = facts_version(params)
    facts = {ctx["context_id"]: compute_facts(ctx, params.facts) for ctx in contexts}
    with (out_dir / "contexts.jsonl").open("w") as fh:
        for ctx in contexts:
            fh.write(json.dumps(ctx, default=str) + "\n")
    with (out_dir / "facts.jsonl").open("w") as fh:
        for cid, sheet in facts.items():
            fh.write(json.dumps({"context_id": cid, "facts_version": version, "facts": sheet}) + "\n")
    cells.write_parquet(out_dir / "candidates.parquet")
    strata.write_csv(out_dir / "strata.csv")
    return {
        "contexts": contexts,
        "facts": facts,
        "candidates": cells,
        "strata": strata,
        "facts_version": version,
        "seconds": round(time.perf_counter() - started, 2),
    }


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_facts(path: Path) -> dict[str, list[dict[str, Any]]]:
    return {row["context_id"]: row["facts"] for row in read_jsonl(path)}
