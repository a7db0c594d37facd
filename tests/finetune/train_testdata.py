"""Small curate-stage datasets for the training tests (the real curate stage writes the same shape)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from maritime_slm.config import load_params

SYSTEM = "You are a maritime analyst. Answer from the AIS snapshot; end with 'Final answer: ...'."
TYPES = ["cargo", "tanker", "tug", "passenger", "fishing"]


def qa_row(i: int, rng: random.Random) -> dict:
    vessels = []
    for v in range(2 + i % 4):  # varying lengths, so batches get padded
        mmsi = 367_000_000 + 1000 * i + v
        vessels.append((mmsi, rng.choice(TYPES), round(rng.uniform(0, 20), 1)))
    table = "\n".join(f"MMSI {m} | {t} | SOG {s} kn" for m, t, s in vessels)
    fastest = max(vessels, key=lambda x: x[2])
    question = "Which vessel is the fastest, and at what speed?"
    answer = f"{fastest[0]} at {fastest[2]} kn"
    reasoning = f"Comparing SOG values, MMSI {fastest[0]} has the highest speed ({fastest[2]} kn)."
    return {
        "id": f"q{i}",
        "context_id": f"c{i}",
        "category": "kinematics",
        "teacher": "rules",
        "final_answer": answer,
        "facts_ref": [f"c{i}:sog"],
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"AIS snapshot:\n{table}\n\nQuestion: {question}"},
            {"role": "assistant", "content": f"{reasoning}\nFinal answer: {answer}"},
        ],
    }


def write_dataset(curate_dir: Path, n_train: int = 8, n_val: int = 4, n_test: int = 4, seed: int = 0) -> Path:
    rng = random.Random(seed)
    folder = curate_dir / "dataset"
    folder.mkdir(parents=True, exist_ok=True)
    i = 0
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        with (folder / f"{split}.jsonl").open("w") as fh:
            for _ in range(n):
                fh.write(json.dumps(qa_row(i, rng)) + "\n")
                i += 1
    return curate_dir


def smoke_params(*overrides: str):
    base = [
        "finetune.max_steps=4",
        "finetune.batch_size=2",
        "finetune.lr=0.02",
        "finetune.warmup_steps=0",
        "finetune.lora_r=8",
    ]
    return load_params("smoke", [*base, *overrides])
