"""A small run folder for the evaluate tests: generate/ (contexts, facts), curate/dataset/test.jsonl (rules pairs in
the training chat format), and helpers to write replies that are right or wrong by construction."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from maritime_slm.config import FactsParams, load_params
from maritime_slm.curate.export import record
from maritime_slm.facts.contexts import serialize
from maritime_slm.facts.factsheet import CATEGORIES, compute_facts, final_answer_text
from maritime_slm.generate.rules import rules_pairs

T0 = datetime(2022, 1, 3, 0, 0, tzinfo=UTC)


def _context(context_id: str, first_mmsi: int, start: datetime, rng: random.Random) -> dict[str, Any]:
    groups = [(70, "cargo"), (80, "tanker"), (30, "fishing"), (60, "passenger"), (52, "tug_tow")]
    vessels, reports = [], []
    for k in range(5):
        m = first_mmsi + k
        code, group = groups[k % len(groups)]
        vessels.append({"mmsi": m, "name": f"SHIP {m % 1000}", "imo": None, "call_sign": None, "vessel_type": code,
                        "type_group": group, "flag": "United States", "transceiver": "A",
                        "length": float(rng.randint(20, 300)), "width": 20.0, "draft": 8.0, "status": 0,
                        "status_label": "under way using engine"})  # fmt: skip
        lat, lon = 29.0 + rng.uniform(-0.1, 0.1), -94.0 + rng.uniform(-0.1, 0.1)
        sog, cog = round(rng.uniform(1, 20), 1), round(rng.uniform(0, 359), 1)
        for j in range(2):
            reports.append({"mmsi": m, "ts": (start + timedelta(minutes=5 + 10 * j)).isoformat(),
                            "lat": lat + 0.01 * j, "lon": lon, "sog": sog, "cog": cog, "heading": None,
                            "status": 0})  # fmt: skip
    ctx = {"context_id": context_id, "window_start": start.isoformat(),
           "window_end": (start + timedelta(minutes=20)).isoformat(), "region": "Gulf of Mexico",
           "center_lat": 29.0, "center_lon": -94.0, "zones": [], "ports": [], "vessels": vessels,
           "reports": reports}  # fmt: skip
    ctx["text"] = serialize(ctx)
    return ctx


def make_run(root: Path, n_contexts: int = 2, pairs_per_context: int = 6, seed: int = 0) -> dict[str, Any]:
    """`root/generate`, `root/curate/dataset/{test,train}.jsonl` (same rows), `root/finetune` (empty), `root/llm`,
    `root/stage`."""
    rng = random.Random(seed)
    gen, cur = root / "generate", root / "curate" / "dataset"
    gen.mkdir(parents=True)
    cur.mkdir(parents=True)
    contexts = [
        _context(f"ctx-{i}", 367_100_000 + 10 * i, T0 + timedelta(minutes=30 * i), rng)
        for i in range(n_contexts)
    ]
    facts = {c["context_id"]: compute_facts(c, FactsParams()) for c in contexts}
    rows = []
    for c in contexts:
        for p in rules_pairs(c["context_id"], facts[c["context_id"]], CATEGORIES, pairs_per_context, seed):
            rows.append(record(p.model_copy(update={"split": "test"}), c["text"]))
    (gen / "contexts.jsonl").write_text("".join(json.dumps(c) + "\n" for c in contexts))
    (gen / "facts.jsonl").write_text(
        "".join(json.dumps({"context_id": cid, "facts": s}) + "\n" for cid, s in facts.items())
    )
    (cur / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (cur / "train.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )  # for the train-prior baseline
    (root / "finetune").mkdir()
    return {"generate": gen, "curate": root / "curate", "finetune": root / "finetune", "llm": root / "llm",
            "stage": root / "stage", "contexts": contexts, "facts": facts, "rows": rows}  # fmt: skip


def fact_of(run: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    return next(f for f in run["facts"][row["context_id"]] if f["key"] == row["facts_ref"][0])


def right_answer(run: dict[str, Any], row: dict[str, Any]) -> str:
    return f"Reading the snapshot.\nFinal answer: {final_answer_text(fact_of(run, row))}"


def wrong_answer(run: dict[str, Any], row: dict[str, Any]) -> str:
    """A final answer the verifier rejects for every fact kind (an MMSI of no vessel, a number far off)."""
    fact = fact_of(run, row)
    kind = fact["kind"]
    if kind == "number":
        wrong = f"{float(fact['value']) * 3 + 50:.2f} {fact['unit']}"
    elif kind == "count":
        wrong = str(int(fact["value"]) + 7)
    elif kind in ("mmsi", "pair"):
        wrong = "123456789"
    else:
        wrong = "zzz-not-a-value"
    return f"Guessing.\nFinal answer: {wrong}"


def params(*overrides: str):
    """Smoke params with the plain transformers backend (no Unsloth import: faster tests), students through
    Hugging Face generate, and no judge unless a test sets one (the smoke profile's local judge would start a
    llama.cpp server)."""
    return load_params("smoke", ["finetune.backend=hf", "evaluate.max_new_tokens=8", "evaluate.batch_size=4",
                                 "evaluate.max_items=null", "evaluate.judge=null", "evaluate.student_runtime=hf",
                                 *overrides])  # fmt: skip


def make_adapter(folder: Path, seed: int = 1) -> Path:
    """A LoRA adapter on the tiny smoke model with non-zero weights (so the tuned student differs from the base)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from maritime_slm.models import tiny_qwen2_dir

    src = str(tiny_qwen2_dir())
    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(src),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 1.0)
    model.save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(src).save_pretrained(str(folder))
    return folder


def export_student(finetune: Path) -> dict[str, Any]:
    """What 04_finetune leaves for serving: `adapter/`, and `export/gguf/` with the tuned (merged) and base tiny
    student as F16, Q8_0 and Q4_K_M GGUF."""
    from types import SimpleNamespace

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from maritime_slm.finetune.export import export_gguf
    from maritime_slm.models import tiny_qwen2_dir

    base = tiny_qwen2_dir()
    adapter = make_adapter(finetune / "adapter")
    merged = finetune / "export" / "merged_16bit"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(adapter))
    model.merge_and_unload().save_pretrained(str(merged))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(merged))
    recipe = SimpleNamespace(gguf_quantization="q8_0")
    return export_gguf(finetune / "export" / "gguf", recipe, merged, adapter, str(base))
