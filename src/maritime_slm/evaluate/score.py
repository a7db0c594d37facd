"""Scoring predictions: grounded (the curate verifier on the parsed final answer) and surface overlap (BLEU,
ROUGE-L against the reference answer), into one frame with a row per (model, item).

Grounded: the reply's last "Final answer: ..." line is checked against the item's fact with
`curate.verify.check_final_answer` (tolerances, unit conversion, MMSI/name/label rules). A reply without that line
is incorrect (`no_final_answer`); an item whose fact is missing is `unverifiable` and left out of accuracies; a
prediction that never came back (HTTP error, timeout, budget) is `not_answered` and left out too (counted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import polars as pl

from maritime_slm.curate.verify import check_final_answer
from maritime_slm.evaluate.items import EvalItem
from maritime_slm.evaluate.judge import JudgeGrade
from maritime_slm.evaluate.predict import Prediction


def grounded_check(
    prediction: Prediction,
    item: EvalItem,
    facts: Mapping[str, list[dict[str, Any]]],
    contexts: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """{grounded: True/False/None, grounded_status, error_type, grounded_detail} for one prediction."""
    if not prediction.answered:
        return _g(None, "not_answered", None, prediction.status)
    sheet = {f["key"]: f for f in facts.get(item.context_id, [])}
    fact = sheet.get(item.fact_key or "")
    if fact is None:
        return _g(None, "unverifiable", "missing_fact", f"no fact {item.fact_key!r} for {item.context_id}")
    final = prediction.final_answer
    if not final:
        return _g(False, "incorrect", "no_final_answer", "the reply has no 'Final answer:' line")
    v = check_final_answer(final, fact, contexts.get(item.context_id))
    if v.status == "unverifiable":
        return _g(None, "unverifiable", v.error_type, v.detail)
    return _g(v.status == "correct", v.status, v.error_type, v.detail)


def _g(grounded: bool | None, status: str, error_type: str | None, detail: str) -> dict[str, Any]:
    return {
        "grounded": grounded,
        "grounded_status": status,
        "error_type": error_type,
        "grounded_detail": detail,
    }


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def sentence_bleu(reply: str, reference: str) -> float:
    """sacrebleu sentence BLEU (0-100, default exponential smoothing)."""
    import sacrebleu

    return float(sacrebleu.sentence_bleu(reply, [reference]).score)


def rouge_l(reply: str, reference: str) -> float:
    """ROUGE-L F1 (rouge-score, Porter stemming), on a 0-100 scale beside BLEU."""
    return 100.0 * float(_rouge().score(reference, reply)["rougeL"].fmeasure)


def corpus_bleu(replies: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    if not replies:
        return float("nan")
    return float(sacrebleu.corpus_bleu(list(replies), [list(references)]).score)


SCORE_SCHEMA = {
    "item_id": pl.String,
    "model": pl.String,
    "role": pl.String,
    "category": pl.String,
    "family": pl.String,
    "phrasing": pl.String,
    "reply": pl.String,
    "final_answer": pl.String,
    "reference_final": pl.String,
    "reference": pl.String,
    "status": pl.String,
    "latency_s": pl.Float64,
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "gen_share_s": pl.Float64,
    "batch_size": pl.Int64,
    "cached": pl.Boolean,
    "grounded": pl.Boolean,
    "grounded_status": pl.String,
    "error_type": pl.String,
    "grounded_detail": pl.String,
    "judge_grade": pl.String,
    "judge_status": pl.String,
    "judged": pl.Boolean,
    "judge_text": pl.String,
    "bleu": pl.Float64,
    "rouge_l": pl.Float64,
}


def score_predictions(
    predictions: Sequence[Prediction],
    items: Mapping[str, EvalItem],
    facts: Mapping[str, list[dict[str, Any]]],
    contexts: Mapping[str, Mapping[str, Any]],
    grades: Sequence[JudgeGrade] | None = None,
) -> pl.DataFrame:
    """One row per prediction: what was answered, grounded and judged scores, BLEU and ROUGE-L."""
    if grades is not None and len(grades) != len(predictions):
        raise ValueError(f"{len(grades)} judge grades for {len(predictions)} predictions")
    rows = []
    for i, p in enumerate(predictions):
        it = items[p.item_id]
        g = grades[i] if grades is not None else None
        row = {
            "item_id": p.item_id, "model": p.model, "role": p.role, "category": it.category,
            "family": it.family, "phrasing": it.phrasing, "reply": p.reply,
            "final_answer": p.final_answer, "reference_final": it.final_answer, "reference": it.reference, "status": p.status,
            "latency_s": p.latency_s, "input_tokens": p.input_tokens, "output_tokens": p.output_tokens,
            "gen_share_s": p.gen_share_s, "batch_size": p.batch_size, "cached": p.cached,
            "judge_grade": g.grade if g else None, "judge_status": g.status if g else "skipped",
            "judged": g.judged_correct if g else None, "judge_text": g.text if g else None,
        }  # fmt: skip
        row |= grounded_check(p, it, facts, contexts)
        answered = p.answered and p.reply is not None
        row["bleu"] = sentence_bleu(p.reply or "", it.reference) if answered else None
        row["rouge_l"] = rouge_l(p.reply or "", it.reference) if answered else None
        rows.append(row)
    return pl.DataFrame(rows, schema=SCORE_SCHEMA)
