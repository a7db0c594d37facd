"""Analyze (the A of ARF): how often each teacher is wrong, where, and how, with Wilson 95 % intervals.

Definitions used everywhere downstream (tables, dataset card, notebook):
- *verified rate*: pairs whose verification is `correct`, over the teacher's pairs.
- *error rate* (the teacher's measured **hallucination rate**): pairs that are not `correct`, i.e. `incorrect`
  (the pair states something the facts contradict) or `unverifiable` because the teacher answered an intent that is
  not in the context's fact sheet (`unanswerable_question`). Pairs without a fact sheet (`missing_context`, a
  pipeline fault, not the teacher's) are left out of every denominator and counted apart.
- *entity hallucination rate*: pairs naming an MMSI that is not in the context (`hallucinated_entity`).
- After ARF: a pair counts as correct if it was correct, or if its revision re-verified correct.
Intervals are Wilson score intervals (`maritime_slm.stats.wilson_ci`, the one evaluate uses too).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

import polars as pl

from maritime_slm.curate.verify import ERROR_TYPES
from maritime_slm.generate.records import QAPair
from maritime_slm.stats import wilson_ci

ALL = "all"
EXCLUDED = {"missing_context"}


def rate_row(k: int, n: int) -> dict[str, float | int]:
    low, high = wilson_ci(k, n)
    return {"k": k, "n": n, "rate": k / n if n else math.nan, "ci_low": low, "ci_high": high}


def status_of(p: QAPair) -> str:
    return p.verification.status if p.verification else "unverified"


def error_of(p: QAPair) -> str | None:
    return p.verification.error_type if p.verification and p.verification.status != "correct" else None


def scored(pairs: Iterable[QAPair]) -> list[QAPair]:
    """Pairs that count in rates (verified, and not missing their fact sheet)."""
    return [p for p in pairs if p.verification is not None and p.verification.error_type not in EXCLUDED]


def error_rates(pairs: Iterable[QAPair]) -> pl.DataFrame:
    """Long table: teacher × category × error_type, with `errors` of `pairs`, rate and Wilson CI.

    Rows for every (teacher, category) cell and the `all` roll-ups; error_type `any_error` is every pair that
    is not correct; individual error types appear where they occur at least once.
    """
    pairs = scored(pairs)
    cells: dict[tuple[str, str], list[QAPair]] = {}
    for p in pairs:
        for teacher in (p.teacher, ALL):
            for category in (p.category, ALL):
                cells.setdefault((teacher, category), []).append(p)
    rows = []
    for (teacher, category), members in sorted(cells.items(), key=lambda kv: (kv[0][0] == ALL, kv[0])):
        n = len(members)
        counts = Counter(error_of(p) for p in members if error_of(p))
        types = ["any_error"] + [t for t in ERROR_TYPES if counts.get(t)]
        types += sorted(t for t in counts if t not in ERROR_TYPES)  # anything unexpected stays visible
        for error_type in types:
            k = sum(counts.values()) if error_type == "any_error" else counts[error_type]
            r = rate_row(k, n)
            rows.append({"teacher": teacher, "category": category, "error_type": error_type, "errors": k,
                         "pairs": n, "rate": r["rate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]})  # fmt: skip
    schema = {"teacher": pl.String, "category": pl.String, "error_type": pl.String, "errors": pl.Int64,
              "pairs": pl.Int64, "rate": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def teacher_summary(
    pairs: Iterable[QAPair],
    revisions: Iterable[Mapping] = (),
) -> pl.DataFrame:
    """One row per teacher (and `all`): verified/error/entity-hallucination rates with Wilson CIs, and ARF
    before/after (`revisions` are the revision log rows: `id`, `teacher`, `kept`)."""
    pairs = list(pairs)
    kept_ids = {r["id"] for r in revisions if r.get("kept")}
    attempted = Counter(r["teacher"] for r in revisions if r.get("attempted", True))
    kept = Counter(r["teacher"] for r in revisions if r.get("kept"))
    teachers = sorted({p.teacher for p in pairs})
    rows = []
    for teacher in [*teachers, ALL]:
        members = [p for p in pairs if teacher in (ALL, p.teacher)]
        counted = scored(members)
        n = len(counted)
        correct = sum(status_of(p) == "correct" for p in counted)
        after = correct + sum(p.id in kept_ids for p in counted)
        halluc = sum(error_of(p) == "hallucinated_entity" for p in counted)
        row: dict[str, float | int | str] = {
            "teacher": teacher,
            "pairs": n,
            "correct": correct,
            "incorrect": sum(status_of(p) == "incorrect" for p in counted),
            "unverifiable": sum(status_of(p) == "unverifiable" for p in counted),
            "missing_context": len(members) - n,
        }
        for name, k in (("verified", correct), ("error", n - correct), ("entity_hallucination", halluc)):
            r = rate_row(k, n)
            row |= {f"{name}_rate": r["rate"], f"{name}_ci_low": r["ci_low"], f"{name}_ci_high": r["ci_high"]}
        row["revision_attempted"] = sum(attempted.values()) if teacher == ALL else attempted.get(teacher, 0)
        row["revision_kept"] = sum(kept.values()) if teacher == ALL else kept.get(teacher, 0)
        r = rate_row(after, n)
        row |= {"correct_after": after, "after_rate": r["rate"], "after_ci_low": r["ci_low"],
                "after_ci_high": r["ci_high"]}  # fmt: skip
        rows.append(row)
    return pl.DataFrame(rows)


def error_counts(pairs: Iterable[QAPair]) -> dict[str, dict[str, int]]:
    """teacher -> error_type -> count (what the notebook prints and table_3 spreads out)."""
    out: dict[str, dict[str, int]] = {}
    for p in pairs:
        e = error_of(p)
        if e:
            out.setdefault(p.teacher, {}).setdefault(e, 0)
            out[p.teacher][e] += 1
    return out
