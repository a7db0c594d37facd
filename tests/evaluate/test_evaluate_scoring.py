"""Scoring and statistics on a hand-made prediction set whose accuracies, paired counts and agreement are known."""

import math

import polars as pl
import pytest
from evaluate_testdata import make_run, right_answer, wrong_answer

from maritime_slm.answers import parse_final_answer
from maritime_slm.evaluate.analysis import (
    accuracy_table,
    kappa_table,
    mcnemar_table,
    paradox_correlations,
    paradox_table,
    speed_table,
)
from maritime_slm.evaluate.figures import figure_5, table_5, table_6, table_6_title
from maritime_slm.evaluate.items import load_items, spread_over_categories
from maritime_slm.evaluate.judge import JudgeGrade
from maritime_slm.evaluate.predict import Prediction, oracle_predictions, prior_predictions
from maritime_slm.evaluate.score import score_predictions
from maritime_slm.evaluate.stats import wilson_ci

MODELS = ["student-base", "student-tuned", "t1", "rules-oracle"]


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("run"))
    items = load_items(run["curate"])
    rows = {r["id"]: r for r in run["rows"]}
    ctx = {c["context_id"]: c for c in run["contexts"]}
    assert len(items) == 12

    def pred(model, role, i, reply, status="ok", **kw):
        return Prediction(
            items[i].id, model, role, reply, parse_final_answer(reply or ""), status=status, **kw
        )

    preds, grades = [], []
    for i, it in enumerate(items):
        row = rows[it.id]
        # base: right on items 0-3 (4/12)
        preds.append(pred("student-base", "student_base", i, right_answer(run, row) if i < 4 else wrong_answer(run, row),
                          latency_s=2.0, gen_share_s=0.5, batch_size=4, input_tokens=100, output_tokens=10))  # fmt: skip
        grades.append(JudgeGrade("CORRECT" if i < 4 else "INCORRECT", "ok"))
        # tuned: right on items 0-8 (9/12); item 11 has no "Final answer:" line
        if i < 9:
            reply = right_answer(run, row)
        elif i == 11:
            reply = "I think it is " + right_answer(run, row).split("Final answer: ")[1]
        else:
            reply = wrong_answer(run, row)
        preds.append(pred("student-tuned", "student_tuned", i, reply, latency_s=1.0, gen_share_s=0.25, batch_size=4,
                          input_tokens=100, output_tokens=20))  # fmt: skip
        # the judge errs twice on the tuned student: calls item 9 correct, item 0 unparseable
        grades.append(
            JudgeGrade(None, "unparseable", "???")
            if i == 0
            else JudgeGrade("CORRECT" if i < 10 else "INCORRECT", "ok")
        )
        # teacher: the reference answer verbatim, except a wrong item 1 and a failed call on item 5
        if i == 5:
            preds.append(pred("t1", "teacher", i, None, status="failed:http_error"))
            grades.append(JudgeGrade(None, "not_answered"))
        else:
            ref = it.reference if i != 1 else wrong_answer(run, row)
            preds.append(pred("t1", "teacher", i, ref, latency_s=3.0, input_tokens=90, output_tokens=30))
            grades.append(JudgeGrade("CORRECT" if i != 1 else "INCORRECT", "ok"))
    oracle = oracle_predictions(items, run["facts"])
    preds += oracle
    grades += [JudgeGrade("CORRECT", "ok")] * len(oracle)
    df = score_predictions(preds, {it.id: it for it in items}, run["facts"], ctx, grades)
    return {"run": run, "items": items, "df": df}


def test_grounded_accuracy_and_wilson(hand):
    acc = {r["model"]: r for r in accuracy_table(hand["df"], MODELS).iter_rows(named=True)}
    assert list(acc) == MODELS
    assert (acc["student-base"]["correct"], acc["student-base"]["n_scored"]) == (4, 12)
    assert (acc["student-tuned"]["correct"], acc["student-tuned"]["n_scored"]) == (9, 12)
    assert (acc["t1"]["correct"], acc["t1"]["n_scored"], acc["t1"]["not_answered"]) == (10, 11, 1)
    assert (acc["rules-oracle"]["correct"], acc["rules-oracle"]["n_scored"]) == (12, 12)
    assert (acc["student-tuned"]["ci_low"], acc["student-tuned"]["ci_high"]) == pytest.approx(
        wilson_ci(9, 12)
    )
    df = hand["df"]
    no_final = df.filter((pl.col("model") == "student-tuned") & (pl.col("error_type") == "no_final_answer"))
    assert len(no_final) == 1 and no_final["grounded"][0] is False
    assert acc["student-tuned"]["no_final_answer"] == 1 and acc["student-base"]["no_final_answer"] == 0
    failed = df.filter(pl.col("status") == "failed:http_error")
    assert failed["grounded"][0] is None and failed["grounded_status"][0] == "not_answered"


def test_by_category_adds_up(hand):
    by_cat = accuracy_table(hand["df"], MODELS, by_category=True)
    assert set(by_cat["category"]) == {"vessel_profile", "kinematics", "traffic", "anomaly", "collision_risk",
                                       "compliance"}  # fmt: skip
    totals = by_cat.group_by("model").agg(pl.col("correct").sum(), pl.col("n_scored").sum())
    got = {r["model"]: (r["correct"], r["n_scored"]) for r in totals.iter_rows(named=True)}
    assert got == {
        "student-base": (4, 12),
        "student-tuned": (9, 12),
        "t1": (10, 11),
        "rules-oracle": (12, 12),
    }


def test_mcnemar_on_shared_items(hand):
    t = mcnemar_table(hand["df"], [("student-tuned", "student-base"), ("student-tuned", "t1")])
    vs_base, vs_t1 = t.row(0, named=True), t.row(1, named=True)
    # tuned right on 0-8, base on 0-3: tuned-only 5 (4..8), base-only 0 -> p = 2 / 2^5
    assert (vs_base["n_paired"], vs_base["b_a_only"], vs_base["c_b_only"]) == (12, 5, 0)
    assert vs_base["p_value"] == pytest.approx(2 / 32)
    # vs the teacher: item 5 dropped (no answer); tuned-only: 1; teacher-only: 9, 10, 11 -> 3
    assert (vs_t1["n_paired"], vs_t1["b_a_only"], vs_t1["c_b_only"]) == (11, 1, 3)
    assert vs_t1["p_value"] == pytest.approx(2 * (1 + 4) / 16)


def test_kappa_judge_vs_grounded(hand):
    k = {r["scope"]: r for r in kappa_table(hand["df"], MODELS).iter_rows(named=True)}
    base = k["student-base"]
    assert base["kappa"] == pytest.approx(1.0) and base["n"] == 12
    tuned = k["student-tuned"]
    # grounded: 9 correct; judge: correct on 1-9 (item 0 unparseable -> incorrect), item 9 wrongly correct
    assert (tuned["judge_correct_grounded_correct"], tuned["judge_correct_grounded_wrong"]) == (8, 1)
    assert (tuned["judge_wrong_grounded_correct"], tuned["judge_wrong_grounded_wrong"]) == (1, 2)
    # p_o = 10/12, p_e = (9*9 + 3*3)/144 = 0.625 -> kappa = (0.8333 - 0.625) / 0.375 = 0.5556
    assert tuned["kappa"] == pytest.approx((10 / 12 - 0.625) / 0.375)
    assert tuned["judge_unparseable"] == 1
    pooled = k["all models (oracle, prior excluded)"]
    assert pooled["n"] == 12 + 12 + 11  # the failed teacher call is neither judged nor grounded
    assert k["t1"]["judge_failed"] == 0


def test_paradox_scores(hand):
    df = hand["df"]
    teacher = df.filter((pl.col("model") == "t1") & pl.col("grounded"))
    assert teacher["bleu"].min() == pytest.approx(100.0) and teacher["rouge_l"].min() == pytest.approx(100.0)
    assert df.filter(pl.col("status") != "ok")["bleu"].to_list() == [None]
    par = {r["model"]: r for r in paradox_table(df, MODELS).iter_rows(named=True)}
    assert par["t1"]["grounded_accuracy"] == pytest.approx(10 / 11)
    assert par["student-tuned"]["judged_accuracy"] == pytest.approx(9 / 12)  # unparseable counted incorrect
    assert par["student-base"]["bleu_corpus"] < par["t1"]["bleu_corpus"]
    corr = paradox_correlations(df, MODELS)
    pooled = corr.filter(pl.col("scope").str.starts_with("all") & (pl.col("metric") == "bleu")).row(
        0, named=True
    )
    assert (
        pooled["n"] == 35 and -1 <= pooled["point_biserial_r"] <= 1 and not math.isnan(pooled["spearman_rho"])
    )
    assert "point-biserial r =" in table_6_title(corr, "judge x")
    t6 = table_6(paradox_table(df, MODELS))
    assert t6["judged - grounded (pp)"].to_list()[1] == pytest.approx(0.0)


def test_speed(hand):
    sp = {r["model"]: r for r in speed_table(hand["df"], MODELS, {"t1": 4}).iter_rows(named=True)}
    assert sp["student-tuned"]["queries_per_s"] == pytest.approx(4.0)  # 12 answers in 12 x 0.25 s
    assert sp["student-tuned"]["output_tokens_per_s"] == pytest.approx(80.0)
    assert sp["student-base"]["latency_mean_s"] == pytest.approx(2.0)
    assert sp["t1"]["queries_per_s"] == pytest.approx(4 / 3.0) and sp["t1"]["n_timed"] == 11
    assert "rules-oracle" not in sp


def test_table_5_and_figure_5(hand, tmp_path):
    df = hand["df"]
    acc = accuracy_table(df, MODELS)
    vs_base = mcnemar_table(df, [("student-base", m) for m in MODELS[1:]])
    vs_prior = mcnemar_table(df, [("student-base", "student-tuned")])
    t5 = table_5(acc, vs_base, vs_prior, 0.75)
    rows = {r["model"]: r for r in t5.iter_rows(named=True)}
    assert rows["student-tuned"]["paper reported (%)"] == 75.0
    assert [r["paper reported (%)"] for m, r in rows.items() if m != "student-tuned"] == [None] * 3
    assert rows["student-tuned"]["accuracy (%)"] == 75.0
    assert rows["student-tuned"]["vs base: only this right (c)"] == 5
    assert rows["student-base"]["McNemar exact p"] is None
    assert float(rows["student-tuned"]["McNemar exact p"]) == pytest.approx(2 / 32, abs=1e-3)
    assert rows["student-tuned"]["McNemar vs prior p"] == rows["student-tuned"]["McNemar exact p"]
    assert rows["student-base"]["McNemar vs prior p"] is None
    assert "upper bound" in rows["rules-oracle"]["kind"]
    path = figure_5(
        accuracy_table(df, MODELS, by_category=True), MODELS, tmp_path / "figure_5.png", "Figure 5"
    )
    from PIL import Image

    with Image.open(path) as img:
        assert img.width >= 1200 and round(img.info["dpi"][0]) >= 150


def test_max_items_spreads_over_categories(hand):
    items = hand["items"]
    few = spread_over_categories(items, 6)
    assert len(few) == 6 and len({it.category for it in few}) == 6
    assert spread_over_categories(items, None) == items
    # the prompt is the training format: the row's messages without the assistant turn
    from maritime_slm.curate.export import chat_messages

    ctx = {c["context_id"]: c for c in hand["run"]["contexts"]}
    it = items[0]
    assert it.messages == chat_messages(ctx[it.context_id]["text"], it.question)
    assert it.reference.endswith(f"Final answer: {it.final_answer}")


def test_train_prior_answers_the_commonest_train_answer_of_the_question_kind(hand):
    first = hand["items"][0]
    items = [first, next(it for it in hand["items"] if it.category != first.category)]
    fam0 = first.fact_key.split(":")[0]
    train = [
        {"final_answer": "7", "facts_ref": [f"{fam0}:1"], "category": items[0].category},
        {"final_answer": "0", "facts_ref": [f"{fam0}:2"], "category": items[0].category},
        {"final_answer": "7", "facts_ref": [f"{fam0}:3"], "category": items[0].category},
        {"final_answer": "none", "facts_ref": ["some.other_family"], "category": items[1].category},
    ]
    got = {p.item_id: p for p in prior_predictions(items, train)}
    assert got[items[0].id].final_answer == "7"
    # no train row of item 1's family: the commonest answer of its category
    assert got[items[1].id].final_answer == "none"
    assert prior_predictions(items, [])[0].final_answer is None
