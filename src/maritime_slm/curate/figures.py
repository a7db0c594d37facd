"""Paper artifacts of the curate stage: table_2 (dataset composition), table_3 (teacher errors and ARF before/after),
figure_3 (composition by category and teacher, with what verification and revision did to each teacher's pairs).

Functions take what the curate stage computed (pairs, the per-teacher summary, the error-rate table) and return
polars tables / write PNGs; `write_table` (report.tables) writes the CSV + Markdown pair.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from maritime_slm.curate.analyze import rate_row
from maritime_slm.generate.records import QAPair

PAPER_PAIRS = 21_543
PAPER_CATEGORIES = 6
PAPER_TEACHERS = 2
NOT_MEASURED = "not measured"
CATEGORY_ORDER = ["vessel_profile", "kinematics", "traffic", "anomaly", "collision_risk", "compliance"]


def _categories(*groups: Sequence[QAPair]) -> list[str]:
    seen = {p.category for g in groups for p in g}
    return [c for c in CATEGORY_ORDER if c in seen] + sorted(seen - set(CATEGORY_ORDER))


def table_2(dataset: Sequence[QAPair], generated: Sequence[QAPair] = ()) -> pl.DataFrame:
    """Dataset composition, category × teacher (pairs in the curated dataset), beside what was generated and
    what the paper reported (21,543 pairs, 6 categories, 2 teachers; no per-category breakdown)."""
    teachers = sorted({p.teacher for p in dataset} | {p.teacher for p in generated})
    cats = _categories(dataset, generated)
    in_set = Counter((p.category, p.teacher) for p in dataset)
    gen = Counter(p.category for p in generated)
    total = len(dataset) or 1
    rows = []
    for c in cats:
        row = {"category": c, **{t: in_set[(c, t)] for t in teachers}}
        n = sum(in_set[(c, t)] for t in teachers)
        row |= {"dataset_total": n, "dataset_share": n / total, "generated": gen[c], "paper_reported": None}
        rows.append(row)
    rows.append({"category": "all categories", **{t: sum(in_set[(c, t)] for c in cats) for t in teachers},
                 "dataset_total": len(dataset), "dataset_share": 1.0 if dataset else 0.0,
                 "generated": len(generated), "paper_reported": PAPER_PAIRS})  # fmt: skip
    rows.append({"category": "number of categories", **{t: None for t in teachers},
                 "dataset_total": len({p.category for p in dataset}), "dataset_share": None,
                 "generated": len({p.category for p in generated}), "paper_reported": PAPER_CATEGORIES})  # fmt: skip
    rows.append({"category": "number of teachers", **{t: None for t in teachers},
                 "dataset_total": len({p.teacher for p in dataset}), "dataset_share": None,
                 "generated": len({p.teacher for p in generated}), "paper_reported": PAPER_TEACHERS})  # fmt: skip
    schema = {"category": pl.String, **{t: pl.Int64 for t in teachers}, "dataset_total": pl.Int64,
              "dataset_share": pl.Float64, "generated": pl.Int64, "paper_reported": pl.Int64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def table_3(summary: pl.DataFrame, errors: pl.DataFrame) -> pl.DataFrame:
    """Teacher error taxonomy and ARF before/after, long form: one row per (teacher, measure) with count, n,
    rate and Wilson 95 % CI. `summary` = `curate.analyze.teacher_summary`, `errors` = `curate.analyze.error_rates`.
    The paper reported no verification of its pairs, so its column says so."""
    rows = []

    def add(teacher: str, measure: str, k: int, n: int, paper: str | None = None) -> None:
        r = {
            k2: (None if isinstance(v, float) and math.isnan(v) else v)
            for k2, v in rate_row(int(k), int(n)).items()
        }
        rows.append({"teacher": teacher, "measure": measure, "count": int(k), "n": int(n), "rate": r["rate"],
                     "ci_low": r["ci_low"], "ci_high": r["ci_high"], "paper_reported": paper})  # fmt: skip

    overall = errors.filter(pl.col("category") == "all")
    types = [
        t for t in overall.filter(pl.col("teacher") == "all")["error_type"].to_list() if t != "any_error"
    ]
    for s in summary.iter_rows(named=True):
        t, n = s["teacher"], s["pairs"]
        add(t, "verified correct (before ARF)", s["correct"], n, NOT_MEASURED)
        add(
            t,
            "hallucination rate: not verified (incorrect or unanswerable)",
            n - s["correct"],
            n,
            NOT_MEASURED,
        )
        mine = {
            r["error_type"]: r["errors"] for r in overall.filter(pl.col("teacher") == t).iter_rows(named=True)
        }
        for e in types:
            add(t, f"error: {e}", mine.get(e, 0), n)
        add(t, "ARF: revised and kept (of attempted)", s["revision_kept"], s["revision_attempted"])
        add(t, "verified correct (after ARF)", s["correct_after"], n, NOT_MEASURED)
    schema = {"teacher": pl.String, "measure": pl.String, "count": pl.Int64, "n": pl.Int64, "rate": pl.Float64,
              "ci_low": pl.Float64, "ci_high": pl.Float64, "paper_reported": pl.String}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def figure_3(
    dataset: Sequence[QAPair], path: Path, generated: Sequence[QAPair] = (), revised: Sequence[QAPair] = ()
) -> Path:
    """(a) the curated dataset by category, stacked by teacher (revised pairs hatched); (b) per teacher, what
    verification and revision made of its generated pairs (`generated` verified; `revised` = the revisions
    kept, before dedup): verified correct, fixed by revision, dropped. PNG at 200 dpi."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = _categories(dataset, generated)
    teachers = sorted({p.teacher for p in dataset} | {p.teacher for p in generated})
    colours = plt.get_cmap("tab10").colors
    colour = {t: colours[i % len(colours)] for i, t in enumerate(teachers)}
    panels = 2 if generated else 1
    fig, axes = plt.subplots(1, panels, figsize=(7.2 if panels == 2 else 4.6, 4.0), dpi=200, squeeze=False,
                             gridspec_kw={"width_ratios": [1.35, 1] if panels == 2 else [1]})  # fmt: skip
    ax = axes[0][0]
    counts = Counter((p.category, p.teacher, p.revised_from is not None) for p in dataset)
    left = [0] * len(cats)
    y = list(range(len(cats)))
    for t in teachers:
        for is_rev in (False, True):
            widths = [counts[(c, t, is_rev)] for c in cats]
            if not any(widths):
                continue
            label = f"{t} (revised)" if is_rev else t
            ax.barh(y, widths, left=left, color=colour[t], edgecolor="black" if is_rev else "none",
                    hatch="///" if is_rev else None, linewidth=0.3 if is_rev else 0, label=label)  # fmt: skip
            left = [a + b for a, b in zip(left, widths, strict=True)]
    for yi, total in zip(y, left, strict=True):
        ax.text(total, yi, f" {total}", va="center", fontsize=7)
    ax.set_yticks(y, [c.replace("_", " ") for c in cats], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("QA pairs in the curated dataset", fontsize=8)
    ax.set_ylabel("question category", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlim(0, max(left + [1]) * 1.18)
    ax.set_title(f"(a) dataset composition (n = {len(dataset):,})", fontsize=9)
    if dataset:
        ax.legend(fontsize=7, title="teacher", title_fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                  ncol=min(3, max(1, len(teachers))), frameon=False)  # fmt: skip
    if generated:
        ax2 = axes[0][1]
        ok = Counter(p.teacher for p in generated if p.verification and p.verification.status == "correct")
        fixed = Counter(p.teacher for p in revised)
        gen = Counter(p.teacher for p in generated)
        parts = [
            ("verified correct", [ok[t] for t in teachers], "#2e7d32", None),
            ("fixed by revision", [fixed[t] for t in teachers], "#f9a825", "///"),
            (
                "dropped (not verified, not fixed)",
                [gen[t] - ok[t] - fixed[t] for t in teachers],
                "#c62828",
                None,
            ),
        ]
        yt = list(range(len(teachers)))
        base = [0] * len(teachers)
        for label, widths, col, hatch in parts:
            ax2.barh(yt, widths, left=base, color=col, hatch=hatch, edgecolor="black" if hatch else "none",
                     linewidth=0.3 if hatch else 0, label=label)  # fmt: skip
            base = [a + b for a, b in zip(base, widths, strict=True)]
        for yi, t in zip(yt, teachers, strict=True):
            share = ok[t] / gen[t] if gen[t] else math.nan
            ax2.text(base[yi], yi, f" {share:.0%} verified" if gen[t] else "", va="center", fontsize=7)
        ax2.set_yticks(yt, teachers, fontsize=8)
        ax2.invert_yaxis()
        ax2.set_xlabel("generated QA pairs", fontsize=8)
        ax2.tick_params(axis="x", labelsize=7)
        ax2.set_xlim(0, max(base + [1]) * 1.45)
        ax2.set_title("(b) verification and ARF per teacher", fontsize=9)
        ax2.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=200)
    plt.close(fig)
    return path
