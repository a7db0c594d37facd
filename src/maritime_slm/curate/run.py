"""The curate stage in one call: verify -> analyze -> revise (ARF) -> re-verify -> dedup -> split -> export.

Reads `generate/{contexts,facts,pairs}.jsonl`; writes into the stage folder:
- `verified.jsonl` every generated pair with its verification; `error_rates.csv` (teacher × category ×
  error_type, Wilson CIs); `teacher_summary.csv` (before/after ARF)
- `revisions.jsonl` one line per revision attempt (id, error_type, detail, before, after, kept, ...);
  `ledger.csv` / `calls.jsonl` for the editor's calls when a model was used
- `dedup.jsonl` the dropped pairs with the pair each duplicates and why
- `curated.jsonl` the final pairs (QA records with verification and split)
- `dataset/{train,val,test}.jsonl`, `dataset/hf/` (DatasetDict), `dataset/dataset_card.md`
- `paper/table_2.{csv,md}`, `paper/table_3.{csv,md}`, `paper/figure_3.png`
- `summary.json` the numbers `curate_run` returns.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from maritime_slm.config import Params
from maritime_slm.curate.analyze import error_counts, error_rates, teacher_summary
from maritime_slm.curate.dedup import dedup_pairs
from maritime_slm.curate.export import dataset_card, export_dataset
from maritime_slm.curate.figures import figure_3, table_2, table_3
from maritime_slm.curate.revise import EditorFn, run_revision
from maritime_slm.curate.split import decontamination, split_pairs
from maritime_slm.curate.verify import ERROR_DESCRIPTIONS, verify_pairs
from maritime_slm.facts.build import load_facts
from maritime_slm.generate.records import QAPair
from maritime_slm.jsonl import read_jsonl, write_jsonl
from maritime_slm.report.tables import write_table
from maritime_slm.stage import Stage, StageRecord, StageResult


def load_inputs(
    generate_dir: Path,
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]], list[QAPair]]:
    contexts = {c["context_id"]: c for c in read_jsonl(generate_dir / "contexts.jsonl")}
    facts = load_facts(generate_dir / "facts.jsonl")
    pairs = [QAPair.model_validate(r) for r in read_jsonl(generate_dir / "pairs.jsonl")]
    return contexts, facts, pairs


def _clean_floats(value: Any) -> Any:
    """NaN -> None, recursively (JSON has no NaN)."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _clean_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_floats(v) for v in value]
    return value


def curate_run(
    generate_dir: Path,
    params: Params,
    stage_dir: Path,
    llm_dir: Path,
    *,
    editor: EditorFn | None = None,
    run_name: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """Run the whole curate stage (see the module docstring); returns what the notebook shows.

    `editor` replaces the editor model (tests, or a custom reviser); by default `params.curate.editor` is called
    through the llm package (cache, ledger, budget). Deterministic for fixed inputs, params and editor replies.
    """
    started = time.perf_counter()
    generate_dir, stage_dir, llm_dir = Path(generate_dir), Path(stage_dir), Path(llm_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    contexts, facts, pairs = load_inputs(generate_dir)
    cp = params.curate

    # verify + analyze
    verified = verify_pairs(pairs, facts, contexts)
    write_jsonl(stage_dir / "verified.jsonl", verified)
    rates = error_rates(verified)
    rates.write_csv(stage_dir / "error_rates.csv")

    # revise (ARF) and re-verify
    revision = run_revision(
        verified, facts, contexts, params, stage_dir, llm_dir, editor=editor, progress=progress
    )
    write_jsonl(stage_dir / "revisions.jsonl", revision.log)
    summary = teacher_summary(verified, revision.log)
    summary.write_csv(stage_dir / "teacher_summary.csv")

    # dedup, split, export
    correct = [p for p in verified if p.verification and p.verification.status == "correct"] + revision.kept
    dedup = dedup_pairs(correct, contexts, cp.near_dup_threshold)
    write_jsonl(stage_dir / "dedup.jsonl", dedup.dropped)
    split = split_pairs(dedup.kept, contexts, cp.split)
    decon = decontamination(split.pairs, contexts, cp.decontamination_n, cp.dirty_share)
    write_jsonl(stage_dir / "curated.jsonl", split.pairs)
    exported = export_dataset(split.pairs, contexts, stage_dir / "dataset", progress=progress)
    revision_info = {
        "attempted": revision.attempted,
        "kept": revision.n_kept,
        "summary": revision.summary,
        "skipped_reason": revision.skipped_reason,
    }
    card = dataset_card(
        split.pairs,
        run_name=run_name or stage_dir.parent.name,
        teacher_rows=summary.to_dicts(),
        revision=revision_info,
        dedup=dedup.summary(),
        split_report=split.report,
        decontamination=decon,
        error_descriptions=ERROR_DESCRIPTIONS,
    )
    (stage_dir / "dataset" / "dataset_card.md").write_text(card)

    # paper artifacts
    paper = stage_dir / "paper"
    t2 = table_2(split.pairs, verified)
    write_table(
        t2, paper, "table_2", "Table 2. Dataset composition by category and teacher (this run vs paper)"
    )
    t3 = table_3(summary, rates)
    write_table(t3, paper, "table_3", "Table 3. Teacher errors (verified against computed facts) and ARF before/after, "
                "95 % Wilson CIs")  # fmt: skip
    figure_3(split.pairs, paper / "figure_3.png", generated=verified, revised=revision.kept)

    by_teacher = {
        r["teacher"]: {
            "pairs": r["pairs"],
            "correct": r["correct"],
            "verified_rate": r["verified_rate"],
            "verified_ci": [r["verified_ci_low"], r["verified_ci_high"]],
            "hallucination_rate": r["error_rate"],
            "revision_attempted": r["revision_attempted"],
            "revision_kept": r["revision_kept"],
            "after_rate": r["after_rate"],
            "after_ci": [r["after_ci_low"], r["after_ci_high"]],
        }
        for r in summary.to_dicts()
    }
    result = _clean_floats(
        {
            "pairs_generated": len(pairs),
            "verified": by_teacher,
            "errors": error_counts(verified),
            "revision": revision_info,
            "dedup": dedup.summary(),
            "sizes": split.report["sizes"],
            "split": split.report,
            "decontamination": decon,
            "dataset_rows": exported["rows"],
            "paths": {
                "dataset": str(stage_dir / "dataset"),
                "hf": exported["hf"],
                "card": str(stage_dir / "dataset" / "dataset_card.md"),
                "paper": str(paper),
            },
            "seconds": round(time.perf_counter() - started, 2),
        }
    )
    (stage_dir / "summary.json").write_text(json.dumps(result, indent=2, default=str))
    return result


class CurateRecord(StageRecord):
    pairs_generated: int
    dataset_rows: dict[str, int]
    sizes: dict[str, int]
    verified: dict[str, dict[str, Any]]
    revision: dict[str, Any]
    dedup: dict[str, Any]
    decontamination: dict[str, Any]


def run(stage: Stage) -> StageResult:
    """The 03_curate stage."""
    result = curate_run(
        stage.input("generate"), stage.params, stage.dir, stage.llm_dir, run_name=stage.run_dir.name
    )
    record = CurateRecord.from_summary(result)
    record.write(stage.dir)
    return StageResult(record, {"result": result})
