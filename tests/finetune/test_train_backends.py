"""The training backends end to end on the tiny smoke student, each in its own interpreter (see worker.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

WORKER = Path(__file__).resolve().parent / "worker.py"

pytestmark = pytest.mark.slow


def run_worker(scenario: str, backend: str, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [sys.executable, str(WORKER), scenario, backend, str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, (
        f"worker {scenario}/{backend} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    )
    return json.loads((out / "result.json").read_text())


def check_stage_outputs(stage: Path, summary: dict, backend: str) -> None:
    adapter = stage / "adapter"
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer_config.json",
        "chat_template.jinja",
    ):
        assert (adapter / name).is_file(), f"missing {adapter / name}"
    log = pl.read_csv(stage / "train_log.csv")
    assert {"step", "loss", "val_loss", "lr", "tokens_per_s"} <= set(log.columns)
    assert log.filter(pl.col("loss").is_not_null())["step"].to_list() == [1, 2, 3, 4]
    val = log.filter(pl.col("val_loss").is_not_null())
    assert val["step"].to_list()[0] == 0 and val["step"].to_list()[-1] == 4  # before training and at the end
    assert log["tokens_per_s"].drop_nulls().min() > 0
    assert val["val_loss"][-1] < val["val_loss"][0], "validation loss did not go down"
    assert (stage / "paper" / "figure_4.png").stat().st_size > 10_000
    table = pl.read_csv(stage / "paper" / "table_4.csv")
    assert table.columns == ["item", "this run", "paper reported"]
    items = dict(zip(table["item"], table["this run"], strict=True))
    assert items["trainable parameters"] == f"{summary['trainable_params']:,}"
    assert f"{backend} backend" in items["method"]
    assert any(k.startswith("estimated cost") for k in items)
    assert (stage / "paper" / "table_4.md").read_text().startswith("**Table 4.")
    assert summary["steps"] == 4 and summary["backend"] == backend
    assert summary["train_cost_usd"] > 0 and summary["tokens_per_s"] > 0 and summary["peak_memory_gb"] > 0
    assert summary["exports"]["merged_16bit"]["status"] == "done"
    assert summary["exports"]["merged_16bit"]["path"] == "export/merged_16bit"  # no path of this machine
    assert (stage / "export" / "merged_16bit" / "config.json").is_file()
    assert summary["exports"]["gguf"]["status"] in {"done", "skipped"}
    if summary["exports"]["gguf"]["status"] == "skipped":
        assert "llama.cpp" in summary["exports"]["gguf"]["reason"]


@pytest.mark.parametrize("backend", ["unsloth", "hf"])
def test_smoke_train_reload_generate(backend, tmp_path):
    r = run_worker("smoke", backend, tmp_path)
    assert r["modules"]["unsloth_imported"] == (backend == "unsloth")
    check_stage_outputs(tmp_path / "stage", r["summary"], backend)
    labels = r["labels"]
    assert labels["n"] == 8
    assert labels["masked_texts_ok"], "the loss covers more or less than the assistant answer + <|im_end|>"
    assert labels["prefix_masked"], "labels outside the assistant answer are not -100"
    assert labels["same_as_reference"], "the trainer's labels differ from chat.encode_for_training"
    assert labels["batch_has_padding"] and labels["padding_masked"]
    # greedy outputs of the trained model in memory == after reloading base + saved adapter
    assert r["in_memory"] == r["reloaded"]
    assert len(r["in_memory"]) == 4 and all(isinstance(a, str) for a in r["in_memory"])
    assert r["one_by_one"] == r["reloaded"][:2], "left-padded batches changed the greedy answers"
    assert r["max_logit_diff_reloaded"] == 0.0
    assert r["max_logit_diff_base"] > 1e-3, "the adapter had no effect: the reload test would prove nothing"
    assert r["peft_type"].startswith("PeftModel")


def test_resume_after_crash(tmp_path):
    r = run_worker("resume", "unsloth", tmp_path)
    assert r["crashed"]
    assert r["after_crash"][-1] == "checkpoint-2", r["after_crash"]
    resumed, full = r["resumed"], r["full"]
    assert resumed["resumed_from"] == "checkpoint-2" and full["resumed_from"] is None
    assert resumed["steps"] == 4
    # the resumed run is the uninterrupted run: same losses, same adapter
    assert resumed["final_train_loss"] == pytest.approx(full["final_train_loss"], rel=1e-4)
    assert resumed["final_val_loss"] == pytest.approx(full["final_val_loss"], rel=1e-4)
    assert r["max_adapter_diff"] < 1e-4 and r["lora_b_norm"] > 0
    log = pl.read_csv(tmp_path / "stage" / "train_log.csv")
    assert log.filter(pl.col("loss").is_not_null())["step"].to_list() == [1, 2, 3, 4]
    # a finished run re-run unchanged: nothing left to train, same result
    assert r["again"]["resumed_from"] == "checkpoint-4" and r["again"]["steps"] == 4
    assert r["again"]["final_val_loss"] == pytest.approx(full["final_val_loss"], rel=1e-6)
    # changed params: the old checkpoints are not resumed from
    assert r["changed"]["resumed_from"] is None and r["changed"]["steps"] == 2
