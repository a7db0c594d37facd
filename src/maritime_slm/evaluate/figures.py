"""The paper artifacts of the evaluate stage: table_5 (accuracy, Wilson CI, McNemar vs base, the paper's 75 %),
table_6 (the evaluation paradox: BLEU / ROUGE-L beside judged and grounded accuracy) and figure_5 (per-category
accuracy with CI error bars)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from maritime_slm.evaluate.predict import (
    BASE_NAME,
    ROLE_BASE,
    ROLE_ORACLE,
    ROLE_PRIOR,
    ROLE_TEACHER,
    ROLE_TUNED,
    TUNED_NAME,
)

ROLE_LABELS = {
    ROLE_BASE: "student, base (not fine-tuned)",
    ROLE_TUNED: "student, fine-tuned (LoRA)",
    ROLE_TEACHER: "teacher LLM",
    ROLE_ORACLE: "rules oracle (reads the fact sheet: upper bound, not a model)",
    ROLE_PRIOR: "train prior (commonest train answer to the question kind, context unread: floor)",
}


def _pct(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(100.0 * float(x), 1)


def _num(x: float | None, digits: int = 2) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), digits)


def fmt_p(p: float | None) -> str | None:
    """A p-value for a table: 3 decimals, or scientific below 0.001 (never a bare 0)."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return None
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def table_5(
    acc: pl.DataFrame,
    mcnemar_vs_base: pl.DataFrame,
    mcnemar_vs_prior: pl.DataFrame,
    paper_accuracy: float | None,
) -> pl.DataFrame:
    """Accuracy per model with its 95 % Wilson CI and exact McNemar tests against the base student and against
    the context-blind train prior (the floor a student reaches without reading the snapshot)."""
    tests = {r["model_b"]: r for r in mcnemar_vs_base.iter_rows(named=True)} if len(mcnemar_vs_base) else {}
    priors = (
        {r["model_b"]: r for r in mcnemar_vs_prior.iter_rows(named=True)} if len(mcnemar_vs_prior) else {}
    )
    rows = []
    for r in acc.iter_rows(named=True):
        t, q = tests.get(r["model"]), priors.get(r["model"])
        rows.append({
            "model": r["model"],
            "kind": ROLE_LABELS.get(r["role"], r["role"]),
            "n scored": r["n_scored"],
            "correct": r["correct"],
            "accuracy (%)": _pct(r["accuracy"]),
            "95% CI low (%)": _pct(r["ci_low"]),
            "95% CI high (%)": _pct(r["ci_high"]),
            "not answered": r["not_answered"],
            "no 'Final answer:' line": r["no_final_answer"],
            "vs base: only this right (c)": t["c_b_only"] if t else None,
            "vs base: only base right (b)": t["b_a_only"] if t else None,
            "McNemar exact p": fmt_p(t["p_value"]) if t else None,
            "vs prior: only this right (c)": q["c_b_only"] if q else None,
            "vs prior: only prior right (b)": q["b_a_only"] if q else None,
            "McNemar vs prior p": fmt_p(q["p_value"]) if q else None,
            "paper reported (%)": _pct(paper_accuracy) if r["role"] == ROLE_TUNED else None,
        })  # fmt: skip
    return pl.DataFrame(rows)


def table_5_title(n_items: int, paper_accuracy: float | None, n_llm_items: int | None = None) -> str:
    paper = f"; paper reported: tuned Qwen2.5-7B {100 * paper_accuracy:.0f} %" if paper_accuracy else ""
    subset = (
        f" (LLM teachers answered, and the judge graded, {n_llm_items} of them, spread over categories: "
        "evaluate.llm_max_items)"
        if n_llm_items is not None and n_llm_items < n_items
        else ""
    )
    return (
        f"Table 5. Grounded accuracy on the held-out test set ({n_items} items{subset}) with 95 % Wilson CIs; exact "
        f"McNemar test of each model against the base student and against the train prior on the same items "
        f"(b, c = discordant pairs){paper}. "
        "A reply without a 'Final answer:' line (the format every model is asked for) is scored incorrect. "
        "The rules oracle reads the fact sheet and bounds what grounded scoring can give."
    )


def table_5_wording(by_wording: pl.DataFrame, paired: pl.DataFrame, models: Sequence[str]) -> pl.DataFrame:
    """Seen vs held-out question wordings per model: accuracy, CI and the gap in points over all test items, and
    where the model answered the twins (`evaluate.wording`), the gap on the same facts with its paired CI."""
    if by_wording.is_empty():
        return pl.DataFrame()
    twins = {r["model"]: r for r in paired.iter_rows(named=True)} if len(paired) else {}
    rows = []
    for model in models:
        part = {r["phrasing"]: r for r in by_wording.filter(pl.col("model") == model).iter_rows(named=True)}
        if "seen" not in part or "unseen" not in part:
            continue
        seen, unseen, twin = part["seen"], part["unseen"], twins.get(model)
        rows.append({
            "model": model,
            "kind": ROLE_LABELS.get(seen["role"], seen["role"]),
            "seen wording: n": seen["n_scored"],
            "seen accuracy (%)": _pct(seen["accuracy"]),
            "seen 95% CI (%)": f"{_pct(seen['ci_low'])}-{_pct(seen['ci_high'])}",
            "unseen wording: n": unseen["n_scored"],
            "unseen accuracy (%)": _pct(unseen["accuracy"]),
            "unseen 95% CI (%)": f"{_pct(unseen['ci_low'])}-{_pct(unseen['ci_high'])}",
            "seen - unseen (pp)": round(_pct(seen["accuracy"]) - _pct(unseen["accuracy"]), 1)
            if seen["accuracy"] is not None and unseen["accuracy"] is not None else None,
            "same facts: n pairs": twin["n_pairs"] if twin else None,
            "same facts: seen / unseen (%)": f"{_pct(twin['seen_accuracy'])} / {_pct(twin['unseen_accuracy'])}"
            if twin else None,
            "same facts: gap (pp) [95% CI]": f"{_pct(twin['gap'])} [{_pct(twin['gap_ci_low'])}, "
            f"{_pct(twin['gap_ci_high'])}]" if twin else None,
            "same facts: McNemar p": fmt_p(twin["mcnemar_p"]) if twin else None,
        })  # fmt: skip
    return pl.DataFrame(rows)


def table_5_wording_title() -> str:
    return (
        "Table 5b. Robustness to wording: grounded accuracy on test questions worded like the training questions "
        "(seen) and with phrasings held out of training and validation (unseen), 95 % Wilson CIs. 'Same facts': "
        "every unseen-worded item asked again in a training wording (same snapshot, same fact, same reference), so "
        "the gap is the wording's alone; 95 % paired CI (Newcombe), exact McNemar p."
    )


def table_6(paradox: pl.DataFrame) -> pl.DataFrame:
    rows = []
    for r in paradox.iter_rows(named=True):
        judged, grounded = _pct(r["judged_accuracy"]), _pct(r["grounded_accuracy"])
        rows.append({
            "model": r["model"],
            "kind": ROLE_LABELS.get(r["role"], r["role"]),
            "n": r["n"],
            "BLEU (corpus)": _num(r["bleu_corpus"], 1),
            "BLEU (mean sentence)": _num(r["bleu_mean"], 1),
            "ROUGE-L F1 (x100)": _num(r["rouge_l_mean"], 1),
            "judged accuracy (%)": judged,
            "grounded accuracy (%)": grounded,
            "judged - grounded (pp)": round(judged - grounded, 1) if judged is not None and grounded is not None
            else None,
        })  # fmt: skip
    return pl.DataFrame(rows)


def table_6_title(correlations: pl.DataFrame, judge_note: str) -> str:
    parts = []
    pooled = (
        correlations.filter(pl.col("scope").str.starts_with("all")) if len(correlations) else correlations
    )
    for r in pooled.iter_rows(named=True):
        name = "BLEU" if r["metric"] == "bleu" else "ROUGE-L"
        if r["point_biserial_r"] is None or math.isnan(r["point_biserial_r"]):
            parts.append(f"{name}: undefined (n = {r['n']}, a constant score or outcome)")
        else:
            parts.append(
                f"{name}: point-biserial r = {r['point_biserial_r']:.2f} (p = {r['point_biserial_p']:.3g}), "
                f"Spearman rho = {r['spearman_rho']:.2f} (n = {r['n']})"
            )
    corr = "; ".join(parts) or "not computed"
    return (
        "Table 6. The evaluation paradox: surface overlap with the reference answer (BLEU, ROUGE-L) beside "
        f"judged and grounded accuracy. Correlation with grounded correctness, all models pooled: {corr}. "
        f"{judge_note}"
    )


# ------------------------------------------------------------------------------------------------ figure 5
_COLORS = {ROLE_BASE: "#9aa5b1", ROLE_TUNED: "#1f5fa8", ROLE_ORACLE: "#d9d9d9", ROLE_PRIOR: "#ffffff"}
_TEACHER_COLORS = ["#e07b39", "#4a9c59", "#b5446e", "#8c6bb1", "#c9a227"]


def figure_5(
    by_cat: pl.DataFrame,
    models: Sequence[str],
    path: Path,
    title: str,
    labels: Mapping[str, str] | None = None,
) -> Path:
    """Grouped bars: accuracy per category per model, 95 % Wilson CI error bars, n per category under the axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = dict(labels or {})
    present = [m for m in models if m in set(by_cat["model"].to_list())]
    cats = sorted(by_cat["category"].unique().to_list())
    n_per_cat = {
        c: int(by_cat.filter(pl.col("category") == c)["n_scored"].max() or 0) for c in cats
    }  # same items for every model (up to failures)
    width = 0.8 / max(1, len(present))
    x = np.arange(len(cats))
    fig, ax = plt.subplots(figsize=(7.2, 3.9), dpi=200)
    teacher_i = 0
    for j, model in enumerate(present):
        sub = {r["category"]: r for r in by_cat.filter(pl.col("model") == model).iter_rows(named=True)}
        role = next(iter(sub.values()))["role"]
        if role == ROLE_TEACHER:
            color = _TEACHER_COLORS[teacher_i % len(_TEACHER_COLORS)]
            teacher_i += 1
        else:
            color = _COLORS.get(role, "#666666")
        acc = np.array(
            [100 * (sub[c]["accuracy"] if c in sub and sub[c]["n_scored"] else np.nan) for c in cats]
        )
        lo = np.array([100 * sub[c]["ci_low"] if c in sub and sub[c]["n_scored"] else np.nan for c in cats])
        hi = np.array([100 * sub[c]["ci_high"] if c in sub and sub[c]["n_scored"] else np.nan for c in cats])
        err = np.clip(np.vstack([np.nan_to_num(acc - lo), np.nan_to_num(hi - acc)]), 0, None)
        pos = x - 0.4 + width * (j + 0.5)
        ax.bar(
            pos, np.nan_to_num(acc), width * 0.92, color=color, edgecolor="#333333", linewidth=0.5,
            hatch={ROLE_ORACLE: "//", ROLE_PRIOR: ".."}.get(role), label=labels.get(model, model), zorder=2,
        )  # fmt: skip
        ax.errorbar(pos, np.nan_to_num(acc), yerr=err, fmt="none", ecolor="#222222", elinewidth=0.8,
                    capsize=2, zorder=3)  # fmt: skip
        for xi, a in zip(pos, acc, strict=True):
            if a == 0:  # a zero bar is invisible: say so
                ax.text(xi, 1.5, "0", ha="center", va="bottom", fontsize=6.5, color="#333333", zorder=4,
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6})  # fmt: skip
    ax.set_xticks(x)
    ax.set_xticklabels([f"{c.replace('_', ' ')}\n(n={n_per_cat[c]})" for c in cats], fontsize=8)
    ax.set_ylabel("grounded accuracy (%)", fontsize=9)
    ax.set_ylim(0, 105)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", color="#e6e6e6", linewidth=0.6, zorder=0)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title, fontsize=9.5)
    ax.legend(fontsize=7.5, ncol=min(3, len(present)), loc="upper center", bbox_to_anchor=(0.5, -0.2),
              frameon=False)  # fmt: skip
    fig.text(0.99, 0.01, "error bars: 95 % Wilson CI", ha="right", va="bottom", fontsize=7, color="#555555")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=200, bbox_inches="tight")
    plt.close(fig)
    return path


def model_labels(models: Sequence[str], student: str) -> dict[str, str]:
    """Legend names: which student the base/tuned rows are."""
    out = {}
    for m in models:
        if m == BASE_NAME:
            out[m] = f"base student ({student})"
        elif m == TUNED_NAME:
            out[m] = f"tuned student ({student} + LoRA)"
        elif m.endswith("oracle"):
            out[m] = "rules oracle (upper bound)"
        elif m.endswith("prior"):
            out[m] = "train prior (floor: context unread)"
        else:
            out[m] = f"teacher {m}"
    return out
