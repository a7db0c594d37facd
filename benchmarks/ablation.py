"""Ablation: which training lever moves the tuned student's grounded accuracy, on one run's curated data.

Each configuration is the run's resolved params plus `train.*` overrides; it trains a LoRA adapter in its own
folder (`train_student`, no exports) and answers the same category-spread subset of the run's test split with
the same greedy decoding as the evaluate stage. Every row is scored with the curate verifier and compared with the
context-blind train prior on the same items (exact McNemar). Configurations run one after another, each in its own
interpreter, so one's memory or Unsloth patches never reach the next.

    .venv/bin/python benchmarks/ablation.py --run default --items 120 --out benchmarks/results/ablation.md \\
        --config "packed, lr 1e-3" finetune.turns_per_example=16 finetune.lr=1e-3 finetune.batch_size=2 finetune.max_steps=60 \\
        --config "one question per example, lr 2e-4" finetune.turns_per_example=1 finetune.lr=2e-4 finetune.batch_size=4 \\
            finetune.max_length=896 finetune.max_steps=52
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_config(run_dir: Path, name: str, overrides: list[str], n_items: int, work: Path) -> dict:
    """Train one configuration and score it (in this process)."""
    from maritime_slm.config import Params, apply_overrides, load_resolved
    from maritime_slm.evaluate.cache import PredictionCache
    from maritime_slm.evaluate.items import load_items
    from maritime_slm.evaluate.predict import ROLE_TUNED, prior_predictions, student_predictions
    from maritime_slm.evaluate.score import grounded_check
    from maritime_slm.evaluate.stats import accuracy, mcnemar_exact
    from maritime_slm.facts.build import load_facts
    from maritime_slm.finetune.data import dataset_dir, read_split
    from maritime_slm.finetune.run import train_student
    from maritime_slm.jsonl import read_jsonl

    params = Params.model_validate(
        apply_overrides(load_resolved(run_dir).model_dump(mode="json"), overrides, f"ablation {name!r}")
    )
    curate = run_dir / "curate"
    started = time.perf_counter()
    result = train_student(curate, params, work / "finetune", work / "checkpoints", export=False)
    train_s = time.perf_counter() - started
    del result
    items = load_items(curate, n_items)
    facts = load_facts(run_dir / "generate" / "facts.jsonl")
    contexts = {c["context_id"]: c for c in read_jsonl(run_dir / "generate" / "contexts.jsonl")}
    with PredictionCache(work / "predictions_cache") as cache:
        tuned = student_predictions(items, params, cache, adapter_dir=work / "finetune" / "adapter",
                                    name="student-tuned", role=ROLE_TUNED)  # fmt: skip
    prior = prior_predictions(items, read_split(dataset_dir(curate) / "train.jsonl"))
    by_id = {it.id: it for it in items}

    def outcomes(predictions) -> list[bool]:
        return [bool(grounded_check(p, by_id[p.item_id], facts, contexts)["grounded"]) for p in predictions]

    t, q = outcomes(tuned), outcomes(prior)
    acc, prior_acc, test = accuracy(t), accuracy(q), mcnemar_exact(q, t)
    unseen = [ok for it, ok in zip(items, t, strict=True) if it.phrasing == "unseen"]
    seen = [ok for it, ok in zip(items, t, strict=True) if it.phrasing == "seen"]
    summary = json.loads((work / "finetune" / "train_config.json").read_text())["summary"]
    return {
        "config": name,
        "overrides": overrides,
        "steps": summary["steps"],
        "epochs": summary["epochs"],
        "train_tokens": summary["train_tokens"],
        "train_s": round(train_s),
        "final_val_loss": summary["final_val_loss"],
        "n": acc.n,
        "tuned": acc.accuracy,
        "tuned_ci": [acc.ci_low, acc.ci_high],
        "prior": prior_acc.accuracy,
        "mcnemar_b_prior_only": test.b,
        "mcnemar_c_tuned_only": test.c,
        "mcnemar_p": test.p_value,
        "seen": sum(seen) / len(seen) if seen else None,
        "unseen": sum(unseen) / len(unseen) if unseen else None,
    }


def markdown(rows: list[dict]) -> str:
    head = ("| configuration | steps | epochs | train tokens | train s | final val loss | n | tuned % [95 % CI] | "
            "prior % | tuned - prior (pp) | McNemar vs prior (b / c, p) | seen / unseen wording % |")  # fmt: skip
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        low, high = r["tuned_ci"]
        lines.append(
            f"| {r['config']} | {r['steps']} | {r['epochs']:.2f} | {r['train_tokens']:,.0f} | {r['train_s']} | "
            f"{r['final_val_loss']:.3f} | {r['n']} | {100 * r['tuned']:.1f} [{100 * low:.1f}, {100 * high:.1f}] | "
            f"{100 * r['prior']:.1f} | {100 * (r['tuned'] - r['prior']):+.1f} | {r['mcnemar_b_prior_only']} / "
            f"{r['mcnemar_c_tuned_only']}, {r['mcnemar_p']:.2g} | "
            + (f"{100 * r['seen']:.0f} / {100 * r['unseen']:.0f} |" if r["seen"] is not None and r["unseen"] is not None
               else "n/a |")
        )  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--run", required=True, help="run name under outputs/ (its curate stage must be done)"
    )
    parser.add_argument("--items", type=int, default=120, help="test items, spread over categories")
    parser.add_argument("--config", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"), required=True)
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown table here")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    run_dir = ROOT / "outputs" / args.run
    if args.worker:
        work, name, *overrides = args.worker
        row = run_config(run_dir, name, overrides, args.items, Path(work))
        (Path(work) / "row.json").write_text(json.dumps(row))
        return
    rows = []
    for i, (name, *overrides) in enumerate(args.config):
        work = run_dir / "ablation" / f"{i:02d}"
        done = work / "row.json"
        if done.is_file() and json.loads(done.read_text())["overrides"] == overrides:
            rows.append(json.loads(done.read_text()))
            continue
        subprocess.run(
            [sys.executable, __file__, "--run", args.run, "--items", str(args.items), "--config", name,
             "--worker", str(work), name, *overrides],
            check=True,
        )  # fmt: skip
        rows.append(json.loads((work / "row.json").read_text()))
        print(markdown(rows), flush=True)
    table = markdown(rows)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
