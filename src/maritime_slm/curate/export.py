"""Export: the curated pairs as chat `messages` JSONL per split, a Hugging Face DatasetDict, and a dataset card.

The message format is the contract with training and evaluation (import these, don't re-type them):
- system: `STUDENT_SYSTEM_PROMPT`
- user: `user_content(context_text, question)` = context text + "\\n\\nQuestion: " + question
- assistant: `assistant_content(reasoning, final_answer)` = reasoning + "\\nFinal answer: " + final_answer
(`maritime_slm.answers`, which also reads the final answer back out of a model's reply). Each JSONL line also carries id,
context_id, category, teacher, question, final_answer, facts_ref, revised_from and split.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from maritime_slm.answers import assistant_content
from maritime_slm.generate.records import QAPair

STUDENT_SYSTEM_PROMPT = (
    "You are a maritime analyst. You answer questions about an AIS (Automatic Identification System) "
    "vessel-tracking snapshot using only the data in it. Units: SOG in knots, COG and heading in degrees true, "
    "lengths in metres, times UTC. Reason briefly, then give the answer on a last line that starts with "
    '"Final answer: ": a number with its unit, an MMSI, two MMSIs joined by "and", a label or a name.'
)
QUESTION_PREFIX = "\n\nQuestion: "
SPLITS = ("train", "val", "test")


def user_content(context_text: str, question: str) -> str:
    return f"{context_text}{QUESTION_PREFIX}{question}"


def chat_messages(
    context_text: str, question: str, reasoning: str | None = None, final_answer: str | None = None
) -> list[dict[str, str]]:
    """system + user (+ assistant when the answer is given: training; without it: the prompt to generate from)."""
    messages = [
        {"role": "system", "content": STUDENT_SYSTEM_PROMPT},
        {"role": "user", "content": user_content(context_text, question)},
    ]
    if final_answer is not None:
        messages.append({"role": "assistant", "content": assistant_content(reasoning or "", final_answer)})
    return messages


def record(p: QAPair, context_text: str) -> dict[str, Any]:
    return {
        "id": p.id,
        "context_id": p.context_id,
        "category": p.category,
        "teacher": p.teacher,
        "question": p.question,
        "final_answer": p.final_answer,
        "facts_ref": list(p.facts_ref),
        "revised_from": p.revised_from,
        "split": p.split,
        "phrasing": p.phrasing,
        "messages": chat_messages(context_text, p.question, p.reasoning, p.final_answer),
    }


def features():
    from datasets import Features, List, Value

    return Features(
        {
            "id": Value("string"),
            "context_id": Value("string"),
            "category": Value("string"),
            "teacher": Value("string"),
            "question": Value("string"),
            "final_answer": Value("string"),
            "facts_ref": List(Value("string")),
            "revised_from": Value("string"),
            "split": Value("string"),
            "phrasing": Value("string"),
            "messages": List({"role": Value("string"), "content": Value("string")}),
        }
    )


def export_dataset(
    pairs: Sequence[QAPair], contexts: Mapping[str, Mapping[str, Any]], out_dir: Path, progress: bool = True
) -> dict[str, Any]:
    """`out_dir/{train,val,test}.jsonl` and `out_dir/hf/` (a DatasetDict); returns rows per split and paths."""
    from datasets import Dataset, DatasetDict
    from datasets.utils import logging as ds_logging

    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for p in pairs:
        if p.split not in rows:
            raise ValueError(f"pair {p.id} has no split")
        rows[p.split].append(record(p, str(contexts[p.context_id]["text"])))
    for split, items in rows.items():
        with (out_dir / f"{split}.jsonl").open("w") as fh:
            for item in items:
                fh.write(json.dumps(item, ensure_ascii=False) + "\n")
    feats = features()
    dd = DatasetDict(
        {
            s: Dataset.from_list(items, features=feats)
            if items
            else Dataset.from_dict(
                {k: [] for k in feats}, features=feats
            )  # keeps the columns of an empty split
            for s, items in rows.items()
        }
    )
    was_enabled = ds_logging.is_progress_bar_enabled()
    if not progress:
        ds_logging.disable_progress_bar()
    try:
        # one shard per split: an empty split saved with 0 shards would not load back
        dd.save_to_disk(str(out_dir / "hf"), num_shards={s: 1 for s in dd})
    finally:
        if was_enabled and not progress:
            ds_logging.enable_progress_bar()
    return {"rows": {s: len(v) for s, v in rows.items()}, "jsonl": str(out_dir), "hf": str(out_dir / "hf")}


def load_split(path: Path) -> list[dict[str, Any]]:
    with Path(path).open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def dataset_card(
    pairs: Sequence[QAPair],
    *,
    run_name: str,
    teacher_rows: Sequence[Mapping[str, Any]],
    revision: Mapping[str, Any],
    dedup: Mapping[str, Any],
    split_report: Mapping[str, Any],
    decontamination: Mapping[str, Any],
    error_descriptions: Mapping[str, str],
) -> str:
    """The Markdown dataset card: composition, teachers, verification and revision rates, known limits."""
    cats = sorted({p.category for p in pairs})
    comp = Counter((p.category, p.split) for p in pairs)
    composition = _md_table(
        ["category", *SPLITS, "total"],
        [[c, *(comp[(c, s)] for s in SPLITS), sum(comp[(c, s)] for s in SPLITS)] for c in cats]
        + [["**total**", *(sum(comp[(c, s)] for c in cats) for s in SPLITS), len(pairs)]],
    )
    by_teacher = Counter((p.teacher, p.revised_from is not None) for p in pairs)
    teachers = sorted(
        {p.teacher for p in pairs} | {str(r["teacher"]) for r in teacher_rows if r["teacher"] != "all"}
    )

    def pct(x: Any) -> str:
        return "n/a" if x is None or x != x else f"{100 * float(x):.1f} %"

    trows = []
    for r in teacher_rows:
        t = str(r["teacher"])
        trows.append([
            t, r["pairs"], r["correct"], f"{pct(r['verified_rate'])} [{pct(r['verified_ci_low'])}, {pct(r['verified_ci_high'])}]",
            r["revision_attempted"], r["revision_kept"], f"{pct(r['after_rate'])}",
            by_teacher[(t, False)] + by_teacher[(t, True)] if t != "all" else len(pairs),
        ])  # fmt: skip
    teacher_table = _md_table(
        ["teacher", "generated", "verified correct", "verified rate [95 % Wilson CI]", "revised", "revision kept",
         "correct after ARF", "in dataset (after dedup)"],
        trows,
    )  # fmt: skip
    errors = "\n".join(f"- `{k}`: {v}" for k, v in error_descriptions.items())
    decon = decontamination
    n = decon.get("n", 13)
    lines = [
        f"# Dataset card: maritime AIS QA ({run_name})",
        "",
        "Question-answer pairs about AIS vessel-tracking snapshots (contexts) sampled from real or simulated AIS "
        "data. Every pair was checked against ground-truth facts computed from its context; only pairs that "
        "verified correct (directly, or after a targeted revision by an editor model: Analyze-Revise-Finetune) "
        "are included.",
        "",
        "## Format",
        "JSONL per split (`train.jsonl`, `val.jsonl`, `test.jsonl`) and a Hugging Face `DatasetDict` in `hf/`. "
        "Each row: `messages` (system = the fixed student prompt; user = context text + `\\n\\nQuestion: ` + "
        "question; assistant = reasoning + `\\nFinal answer: ` + final answer), plus `id`, `context_id`, `category`, "
        "`teacher`, `question`, `final_answer`, `facts_ref` (the fact key the answer is checked against), "
        "`revised_from` (original pair id for revised pairs) and `split`.",
        "",
        "## Composition (category × split)",
        composition,
        "",
        f"Teachers: {', '.join(teachers) or 'none'}. Splits are grouped by context (no context, and no vessel in an "
        "overlapping time window, in two splits) and stratified by category.",
        "",
        f"Held-out wordings: every rules question family has phrasings that only the test split uses; "
        f"{split_report.get('unseen_wording_in_test', 0)} test items are worded that way, and "
        f"{split_report.get('unseen_wording_dropped_from_train_val', 0)} train/val pairs worded that way were "
        "dropped, so no held-out wording is trained on (the `phrasing` field says which each item uses).",
        "",
        "## Verification and revision (per teacher)",
        teacher_table,
        "",
        f"Revision: {revision.get('summary') or revision.get('skipped_reason') or 'not run'}.",
        f"Dedup: {dedup.get('dropped', 0)} pairs dropped ({json.dumps(dedup.get('by_reason', {}))}); "
        f"{dedup.get('template_repeats_kept', 0)} template repeats across different contexts kept.",
        "",
        "Error types used by the verifier:",
        errors,
        "",
        "## Leakage and decontamination",
        f"- Leakage check (must be 0): {json.dumps(split_report.get('leakage', {}))}",
        f"- Test items with at least {100 * decon.get('dirty_share', 0.5):.0f} % of their {n}-grams (context + "
        f"question) also in train: {pct(decon.get(f'share_{n}gram'))}; mean overlap "
        f"{pct(decon.get(f'mean_overlap_{n}gram'))}, max {pct(decon.get(f'max_overlap_{n}gram'))}; any shared "
        f"{n}-gram at all (headers, port lines): {pct(decon.get(f'share_{n}gram_any'))}.",
        f"- Test items whose context shares a vessel with a train context (at other times): "
        f"{pct(decon.get('share_same_vessel_other_time'))}.",
        f"- Test items whose question and final answer both occur in train (another context): "
        f"{pct(decon.get('share_same_question_and_answer'))}.",
        "",
        "## Known limits",
        "- Ground truth is computed from the context only (what the model can read), with documented conventions "
        "(CPA from dead reckoning of the latest report, COLREGs encounter classes from relative bearings); it is "
        "not an expert's judgement of the real traffic situation.",
        "- The rules teacher writes its pairs from templates: correct by construction but repetitive in wording; "
        "its share of the dataset sets how templated the student's training signal is.",
        "- Verification checks the final answer (and entities and the answer sentence); a pair can still carry a "
        "weak reasoning step that states no checkable value.",
        "- Vessels recur across splits at non-overlapping times (same static data: name, type, flag, length), "
        "so vessel-profile questions about such vessels are partly memorisable; see the same-vessel share above.",
        "- Pairs whose intent was not in the fact sheet (`unanswerable_question`) are dropped, not revised.",
    ]
    return "\n".join(lines) + "\n"
