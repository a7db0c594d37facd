"""The paper profile's first paid run, rehearsed (issue 16): params/paper-dry.yaml through the runner, as
`make paper-dry` runs it, with every API model answered by the strict OpenAI emulator; then the same command again,
which must send nothing."""

import json
import subprocess

import polars as pl
import pytest
from testkit import ROOT

from maritime_slm.jsonl import read_jsonl
from maritime_slm.llm import read_log

FAKE_KEY = "dry-run-key-" + "Pq4" * 12
STAGES = ["ingest", "generate", "curate", "finetune", "evaluate", "cost"]


def run_paper_dry(python, env, out):
    return subprocess.run(
        [python, "-m", "maritime_slm", "run", "--profile", "paper-dry", "--run-name", "dry",
         "--outputs-dir", str(out)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=1500,
    )  # fmt: skip


def sent(run_dir):
    """Every request that reached the (emulated) API, from the run's append-only call logs."""
    logs = sorted((run_dir / "llm").glob("*/calls.jsonl"))
    return [e for path in logs for e in read_log(path) if e["event"] == "attempt"]


def ledger(run_dir) -> pl.DataFrame:
    paying = ("generate", "curate", "evaluate")
    frames = [pl.read_csv(run_dir / s / "ledger.csv").with_columns(stage=pl.lit(s)) for s in paying]
    return (
        pl.concat(frames)
        .group_by("stage", "teacher")
        .agg(pl.exclude("category").sum())
        .sort("stage", "teacher")
    )


@pytest.mark.slow
def test_paper_dry_run_end_to_end_then_nothing_is_paid_twice(tmp_path, python, cli_env):
    cli_env["OPENAI_API_KEY"] = FAKE_KEY
    out = tmp_path / "outputs"
    first = run_paper_dry(python, cli_env, out)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "answered by the strict OpenAI emulator at http://127.0.0.1:" in first.stderr
    run_dir = out / "dry"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {s: manifest["stages"][s]["status"] for s in STAGES} == dict.fromkeys(STAGES, "done")

    pairs = read_jsonl(run_dir / "generate" / "pairs.jsonl")
    assert {p["teacher"] for p in pairs} == {"gpt-4o", "o3-mini"}
    revisions = read_jsonl(run_dir / "curate" / "revisions.jsonl")
    assert any(r["failure"] is None for r in revisions) and any(r["kept"] for r in revisions)
    judged = [
        p for p in read_jsonl(run_dir / "evaluate" / "predictions.jsonl") if p.get("judged") is not None
    ]
    assert judged

    costs = ledger(run_dir)
    roles = {(s, t): usd for s, t, usd in costs.select("stage", "teacher", "usd").iter_rows()}
    for role in [("generate", "gpt-4o"), ("generate", "o3-mini"), ("curate", "gpt-4o-editor"),
                 ("evaluate", "gpt-4o"), ("evaluate", "o3-mini"), ("evaluate", "gpt-4o-judge")]:  # fmt: skip
        assert roles.get(role, 0) > 0, (role, roles)
    assert costs.filter(pl.col("teacher") == "o3-mini")["reasoning_tokens"].sum() > 0
    cached_share = costs["cached_input_tokens"].sum() / costs["input_tokens"].sum()
    assert cached_share > 0

    paid = sent(run_dir)
    assert paid and {a["served_model"] for a in paid} == {"gpt-4o-2024-08-06", "o3-mini-2025-01-31"}
    assert all(a.get("http_status") is None for a in paid), [a for a in paid if a.get("http_status")]

    second = run_paper_dry(python, cli_env, out)
    assert second.returncode == 0, second.stderr[-3000:]
    assert sent(run_dir) == paid  # the second run sent nothing: every request came from the request cache
    paid_columns = ["stage", "teacher", "requests", "input_tokens", "output_tokens", "usd"]
    assert ledger(run_dir).select(paid_columns).equals(costs.select(paid_columns))
    leaked = [p for p in run_dir.rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]
    assert leaked == []
