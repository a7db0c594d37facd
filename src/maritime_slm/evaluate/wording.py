"""Robustness to wording, measured on the same facts: every test question asked in a held-out wording gets a twin,
the same fact about the same snapshot asked in one of its family's training wordings.

Comparing all seen-worded items with all unseen-worded ones (table 5b's first rows) mixes the wording with whatever
else differs between the two groups (which kinds of question, which snapshots, how hard each answer is); on 65
unseen items that mix alone moves the gap by several points. The twins differ in the wording only, so the paired
difference (with Newcombe's interval and the exact McNemar test) is what held-out wording costs the student.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import polars as pl

from maritime_slm.curate.export import QUESTION_PREFIX, user_content
from maritime_slm.evaluate.items import EvalItem
from maritime_slm.evaluate.stats import mcnemar_exact, paired_difference
from maritime_slm.generate.rules import TEACHER_NAME, seen_rewording

TWIN_SUFFIX = "~seen"


def wording_twins(items: Sequence[EvalItem], facts: Mapping[str, list[dict[str, Any]]]) -> list[EvalItem]:
    """A seen-worded twin of every rules item asked in a held-out wording: same snapshot, same fact, same reference,
    the question in a training wording chosen by the item's id. Items whose fact is not in the fact sheets (or
    whose prompt does not end with its question) get none."""
    twins = []
    for it in items:
        if it.phrasing != "unseen" or it.source_teacher != TEACHER_NAME or not it.fact_key:
            continue
        fact = next((f for f in facts.get(it.context_id, []) if f["key"] == it.fact_key), None)
        user = it.prompt[-1]
        asked = QUESTION_PREFIX + it.question
        question = seen_rewording(fact, it.id) if fact else None
        if question is None or user["role"] != "user" or not user["content"].endswith(asked):
            continue
        content = user_content(user["content"].removesuffix(asked), question)
        prompt = (*it.prompt[:-1], {"role": "user", "content": content})
        twins.append(replace(it, id=it.id + TWIN_SUFFIX, question=question, prompt=prompt, phrasing="seen"))
    return twins


def paired_wording_table(scored: pl.DataFrame, models: Sequence[str]) -> pl.DataFrame:
    """Per model: the held-out-worded items and their seen-worded twins, scored; accuracy with each wording, the
    gap (seen - unseen) with its 95 % paired CI, and the exact McNemar p of the two wordings."""
    rows = []
    for model in models:
        part = scored.filter(pl.col("model") == model)
        outcome = dict(zip(part["item_id"].to_list(), part["grounded"].to_list(), strict=True))
        ids = [i for i in outcome if i.endswith(TWIN_SUFFIX) and i.removesuffix(TWIN_SUFFIX) in outcome]
        if not ids:
            continue
        seen = [bool(outcome[i]) for i in ids]
        unseen = [bool(outcome[i.removesuffix(TWIN_SUFFIX)]) for i in ids]
        diff, test = paired_difference(seen, unseen), mcnemar_exact(seen, unseen)
        rows.append({
            "model": model, "n_pairs": len(ids), "seen_correct": sum(seen), "unseen_correct": sum(unseen),
            "only_seen_correct": test.b, "only_unseen_correct": test.c,
            "seen_accuracy": diff.p1, "unseen_accuracy": diff.p2,
            "gap": diff.difference, "gap_ci_low": diff.ci_low, "gap_ci_high": diff.ci_high,
            "mcnemar_p": test.p_value,
        })  # fmt: skip
    return pl.DataFrame(rows)
