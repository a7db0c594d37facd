"""Statistics over the scored frame (one row per model x item, from `score.score_predictions`).

Accuracies leave out predictions that are `not_answered` (call failed) or `unverifiable` (no fact), and say how
many. Paired tests (McNemar) use the items both models have a grounded score for. Judge-vs-grounded agreement
(kappa) pools the real models' predictions (the oracle is left out of the pooled row: it is correct by
construction and would inflate agreement) and is also given per model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from maritime_slm.evaluate.predict import ANSWERED, ROLE_ORACLE, ROLE_PRIOR
from maritime_slm.evaluate.score import corpus_bleu
from maritime_slm.evaluate.stats import accuracy, cohens_kappa_ci, correlations, mcnemar_exact

POOLED = "all models (oracle, prior excluded)"
NOT_MODELS = [ROLE_ORACLE, ROLE_PRIOR]
"""Baselines that are not models: left out of the pooled judge agreement and paradox correlations."""


def _ordered(df: pl.DataFrame, models: Sequence[str]) -> list[str]:
    present = set(df["model"].unique().to_list()) if len(df) else set()
    return [m for m in models if m in present] + sorted(present - set(models))


def _groups(df: pl.DataFrame, models: Sequence[str], by: str | None):
    """(rows of one model, or of one model and one value of column `by`; the row's leading columns)."""
    for model in _ordered(df, models):
        sub = df.filter(pl.col("model") == model)
        for value in sorted(sub[by].drop_nulls().unique().to_list()) if by else [None]:
            part = sub if by is None else sub.filter(pl.col(by) == value)
            head = {"model": model, "role": part["role"][0]}
            if by:
                head[by] = value
            yield part, head


def accuracy_table(
    df: pl.DataFrame,
    models: Sequence[str],
    column: str = "grounded",
    by_category: bool = False,
    by: str | None = None,
) -> pl.DataFrame:
    """Accuracy with its 95 % Wilson CI per model (and category, or any column `by`): n scored, correct,
    accuracy, ci_low, ci_high."""
    rows = []
    for part, head in _groups(df, models, "category" if by_category else by):
        acc = accuracy(part[column].drop_nulls().to_list())
        rows.append(head | {
            "n_items": len(part),
            "n_scored": acc.n,
            "correct": acc.correct,
            "accuracy": acc.accuracy,
            "ci_low": acc.ci_low,
            "ci_high": acc.ci_high,
            "not_answered": int((part["status"].is_in(list(ANSWERED)).not_()).sum()),
            "no_final_answer": int((part["error_type"] == "no_final_answer").sum()),
        })  # fmt: skip
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def paired(df: pl.DataFrame, a: str, b: str, column: str = "grounded") -> tuple[list[bool], list[bool]]:
    """Outcomes of models a and b on the items both have a score for, in item order."""
    left = df.filter(pl.col("model") == a).select("item_id", pl.col(column).alias("a"))
    right = df.filter(pl.col("model") == b).select("item_id", pl.col(column).alias("b"))
    both = left.join(right, on="item_id").drop_nulls().sort("item_id")
    return both["a"].to_list(), both["b"].to_list()


def mcnemar_table(
    df: pl.DataFrame, pairs: Sequence[tuple[str, str]], column: str = "grounded"
) -> pl.DataFrame:
    """Exact McNemar for each (a, b): b = a right & b wrong, c = a wrong & b right, on shared items."""
    rows = []
    for a, b in pairs:
        xa, xb = paired(df, a, b, column)
        if not xa:
            continue
        t = mcnemar_exact(xa, xb)
        rows.append({
            "model_a": a, "model_b": b, "n_paired": t.n, "accuracy_a": sum(xa) / len(xa),
            "accuracy_b": sum(xb) / len(xb), "both_correct": t.both_correct, "b_a_only": t.b, "c_b_only": t.c,
            "both_wrong": t.both_wrong, "p_value": t.p_value,
        })  # fmt: skip
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def kappa_table(df: pl.DataFrame, models: Sequence[str]) -> pl.DataFrame:
    """Cohen's kappa of the judge (unparseable = incorrect) vs grounded scoring, pooled and per model."""
    rows = []
    usable = df.filter(pl.col("judged").is_not_null() & pl.col("grounded").is_not_null())
    scopes: list[tuple[str, pl.DataFrame]] = [(POOLED, usable.filter(~pl.col("role").is_in(NOT_MODELS)))]
    scopes += [(m, usable.filter(pl.col("model") == m)) for m in _ordered(df, models)]
    for scope, part in scopes:
        if part.is_empty():
            continue
        k = cohens_kappa_ci(part["judged"].to_list(), part["grounded"].to_list())
        src = df if scope.startswith("all") else df.filter(pl.col("model") == scope)
        rows.append({
            "scope": scope, "n": k.n, "observed_agreement": k.observed_agreement, "kappa": k.kappa,
            "ci_low": k.ci_low, "ci_high": k.ci_high,
            "judge_correct_grounded_correct": k.table[1][1], "judge_correct_grounded_wrong": k.table[1][0],
            "judge_wrong_grounded_correct": k.table[0][1], "judge_wrong_grounded_wrong": k.table[0][0],
            "judge_unparseable": int((src["judge_status"] == "unparseable").sum()),
            "judge_failed": int(src["judge_status"].str.starts_with("failed").sum()),
        })  # fmt: skip
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def speed_table(df: pl.DataFrame, models: Sequence[str], concurrency: Mapping[str, int]) -> pl.DataFrame:
    """Latency, tokens per query and throughput per model, from the answers whose timing was measured.

    Students: queries/s = answers / generation wall time (batched); teachers: concurrency / mean latency (the
    steady state with `concurrency` requests in flight). tokens/s = queries/s x mean output tokens."""
    rows = []
    for model in _ordered(df, models):
        sub = df.filter((pl.col("model") == model) & pl.col("latency_s").is_not_null())
        if sub.is_empty():
            continue
        lat = sub["latency_s"].to_numpy()
        role = sub["role"][0]
        shares = sub["gen_share_s"].drop_nulls()
        if role.startswith("student") and len(shares) and shares.sum() > 0:
            qps, how = len(shares) / float(shares.sum()), "answers / batched generation time"
        else:
            conc = concurrency.get(model, 1)
            qps, how = conc / float(lat.mean()), f"{conc} in flight / mean latency"
        out_mean = _mean(sub["output_tokens"].to_list())
        rows.append({
            "model": model, "role": role, "n_timed": len(sub), "latency_mean_s": float(lat.mean()),
            "latency_p50_s": float(np.median(lat)), "latency_p90_s": float(np.quantile(lat, 0.9)),
            "input_tokens_per_query": _mean(sub["input_tokens"].to_list()), "output_tokens_per_query": out_mean,
            "queries_per_s": qps, "output_tokens_per_s": qps * out_mean if out_mean is not None else None,
            "batch_size": int(sub["batch_size"].max()) if sub["batch_size"].drop_nulls().len() else None,
            "throughput_basis": how,
        })  # fmt: skip
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def paradox_table(df: pl.DataFrame, models: Sequence[str], by_category: bool = False) -> pl.DataFrame:
    """BLEU / ROUGE-L beside judged and grounded accuracy, per model (and category)."""
    rows = []
    for part, head in _groups(df, models, "category" if by_category else None):
        ans = part.filter(pl.col("bleu").is_not_null())
        judged = part["judged"].drop_nulls()
        grounded = part["grounded"].drop_nulls()
        rows.append(head | {
            "n": len(ans),
            "bleu_corpus": corpus_bleu(ans["reply"].to_list(), _refs(ans)) if len(ans) else None,
            "bleu_mean": _mean(ans["bleu"].to_list()),
            "rouge_l_mean": _mean(ans["rouge_l"].to_list()),
            "judged_accuracy": float(judged.mean()) if len(judged) else None,
            "grounded_accuracy": float(grounded.mean()) if len(grounded) else None,
        })  # fmt: skip
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def _refs(part: pl.DataFrame) -> list[str]:
    return part["reference"].to_list() if "reference" in part.columns else [""] * len(part)


def paradox_correlations(df: pl.DataFrame, models: Sequence[str]) -> pl.DataFrame:
    """Point-biserial r and Spearman rho of BLEU / ROUGE-L with grounded correctness, pooled and per model."""
    usable = df.filter(pl.col("bleu").is_not_null() & pl.col("grounded").is_not_null())
    scopes: list[tuple[str, pl.DataFrame]] = [(POOLED, usable.filter(~pl.col("role").is_in(NOT_MODELS)))]
    scopes += [(m, usable.filter(pl.col("model") == m)) for m in _ordered(df, models)]
    rows = []
    for scope, part in scopes:
        for metric in ("bleu", "rouge_l"):
            c = correlations(part[metric].to_list(), part["grounded"].to_list())
            rows.append({"scope": scope, "metric": metric, "n": c.n, "point_biserial_r": c.point_biserial,
                         "point_biserial_p": c.point_biserial_p, "spearman_rho": c.spearman,
                         "spearman_p": c.spearman_p})  # fmt: skip
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def finite(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x
