"""The student path with the tiny smoke model, the prediction cache, and the whole stage end to end (students,
a scripted teacher and judge, the oracle) with a re-run that loads no model and sends no request."""

from __future__ import annotations

import json

import polars as pl
import pytest
from evaluate_testdata import make_adapter, make_run, params, right_answer

from maritime_slm.config import ModelEndpoint
from maritime_slm.evaluate import evaluate_run, prediction_cache_dir
from maritime_slm.evaluate.cache import PredictionCache, folder_hash
from maritime_slm.evaluate.items import load_items
from maritime_slm.evaluate.predict import student_predictions
from maritime_slm.llm.testserver import Reply, ScriptedServer, prompt_of

pytestmark = pytest.mark.slow


def no_model(*_args, **_kwargs):
    raise AssertionError("the model was loaded although every answer is cached")


def test_student_answers_and_cache(tmp_path):
    run = make_run(tmp_path, n_contexts=1)
    items = load_items(run["curate"])[:2]
    p = params()
    cache = PredictionCache(tmp_path / "pc")
    first = student_predictions(items, p, cache, adapter_dir=None, name="student-base", role="student_base",
                                progress=False)  # fmt: skip
    assert [x.item_id for x in first] == [it.id for it in items]
    for x in first:
        assert isinstance(x.reply, str) and not x.cached and x.status == "ok"
        assert x.input_tokens > 100 and 0 <= x.output_tokens <= p.evaluate.max_new_tokens + 2
        assert (
            x.latency_s > 0
            and x.batch_size == 2
            and x.gen_share_s == pytest.approx(x.latency_s / 2, abs=1e-3)
        )
    again = student_predictions(items, p, cache, adapter_dir=None, name="student-base", role="student_base",
                                loader=no_model, progress=False)  # fmt: skip
    assert all(x.cached for x in again) and [x.reply for x in again] == [x.reply for x in first]
    assert [x.latency_s for x in again] == [x.latency_s for x in first]
    # another token limit is another prediction: not served from the cache
    with pytest.raises(AssertionError, match="model was loaded"):
        student_predictions(items, params("evaluate.max_new_tokens=9"), cache, adapter_dir=None,
                            name="student-base", role="student_base", loader=no_model, progress=False)  # fmt: skip


def test_adapter_hash_tracks_the_weights(tmp_path):
    a = make_adapter(tmp_path / "a", seed=1)
    b = make_adapter(tmp_path / "b", seed=1)
    c = make_adapter(tmp_path / "c", seed=2)
    assert folder_hash(a) == folder_hash(b) != folder_hash(c)


def test_evaluate_stage_end_to_end_and_free_rerun(tmp_path):
    run = make_run(tmp_path, n_contexts=1)
    make_adapter(run["finetune"] / "adapter")
    test_file = run["curate"] / "dataset" / "test.jsonl"
    marked = [{**r, "phrasing": "unseen" if i % 2 else "seen"} for i, r in enumerate(run["rows"])]
    test_file.write_text("".join(json.dumps(r) + "\n" for r in marked))
    n_unseen = sum(r["phrasing"] == "unseen" for r in marked)
    rows = {r["id"]: r for r in run["rows"]}
    answers = {r["messages"][1]["content"]: right_answer(run, r) for r in rows.values()}

    def reply(body):
        prompt = prompt_of(body)
        if prompt in answers:  # a teacher's answer
            return Reply(answers[prompt])
        candidate = prompt.split("Candidate answer:", 1)[1]  # the judge: correct iff the teacher's phrasing
        return Reply("CORRECT" if "Reading the snapshot" in candidate else "**INCORRECT**")

    with ScriptedServer(default=reply) as server:
        p = params()
        p.generate.teachers = [ModelEndpoint(name="t1", model="gpt-4o", base_url=server.base_url, concurrency=2,
                                             max_retries=0, timeout_s=5)]  # fmt: skip
        p.evaluate.judge = ModelEndpoint(name="judge", model="gpt-4o", base_url=server.base_url, temperature=0.0,
                                         max_tokens=8, response_format="text", max_retries=0)  # fmt: skip
        stage = tmp_path / "stage"
        res = evaluate_run(
            run["generate"], run["curate"], run["finetune"], p, stage, run["llm"], progress=False
        )
        n = len(run["rows"])
        assert res["models"] == ["student-base", "student-tuned", "t1", "rules-oracle", "train-prior"]
        assert res["skipped"] == {}
        lines = (stage / "predictions.jsonl").read_text().splitlines()
        assert len(lines) == 5 * n
        first = json.loads(lines[0])
        for key in ("item_id", "model", "reply", "final_answer", "latency_s", "input_tokens", "output_tokens",
                    "grounded", "judged", "bleu", "rouge_l"):  # fmt: skip
            assert key in first
        acc = {r["model"]: r for r in res["accuracy"].iter_rows(named=True)}
        assert acc["t1"]["accuracy"] == 1.0 and acc["rules-oracle"]["accuracy"] == 1.0
        assert acc["student-base"]["n_scored"] == n
        # the judge agrees with grounded scoring on the teacher and the oracle; its grades are all parsed
        assert res["kappa"]["judge_unparseable"].sum() == 0
        t5 = res["table_5"]
        assert t5.filter(pl.col("model") == "student-tuned")["paper reported (%)"][0] == 75.0
        assert set(t5["model"]) == set(res["models"])
        for name in ("table_5.md", "table_5.csv", "table_6.md", "table_6.csv", "figure_5.png"):
            assert (stage / "paper" / name).is_file(), name
        assert "95 % Wilson" in (stage / "paper" / "table_5.md").read_text()
        for name in ("accuracy", "accuracy_by_category", "mcnemar", "kappa", "speed", "paradox", "ledger"):
            assert (stage / f"{name}.csv").is_file(), name
        rec = res["record"]
        assert rec["student_queries_per_s"] > 0 and rec["student_input_tokens_per_query"] > 100
        assert 0 < rec["student_output_tokens_per_query"] <= p.evaluate.max_new_tokens + 2
        assert res["student_queries_per_s"] == rec["student_queries_per_s"]
        json.dumps(rec)  # what Stage.record writes
        mc = {r["model_b"]: r for r in res["mcnemar"].iter_rows(named=True)}
        assert set(mc) == {"student-base", "t1", "train-prior"}
        assert mc["t1"]["n_paired"] == n
        assert (prediction_cache_dir(run["llm"]) / "predictions.sqlite").is_file()
        # the tuned student also answered every held-out-worded item's seen-worded twin
        twins = [json.loads(line) for line in (stage / "wording_twins.jsonl").read_text().splitlines()]
        assert len(twins) == n_unseen and {t["model"] for t in twins} == {"student-tuned"}
        paired = res["accuracy_by_wording_paired"].row(0, named=True)
        assert paired["model"] == "student-tuned" and paired["n_pairs"] == n_unseen
        t5w = res["table_5_wording"].filter(pl.col("model") == "student-tuned").row(0, named=True)
        assert t5w["same facts: n pairs"] == n_unseen
        sent = server.count()
        distinct = (
            res["predictions"].select("item_id", "reply").unique().height
        )  # identical judge prompts: one call
        assert sent == n + distinct  # teacher answers + one grade per distinct (item, reply)

        # the same stage again into a fresh folder: no model load, no request, the same numbers
        stage2 = tmp_path / "stage2"
        res2 = evaluate_run(run["generate"], run["curate"], run["finetune"], p, stage2, run["llm"], progress=False,
                            loader=no_model)  # fmt: skip
        assert server.count() == sent
        recomputed = pl.col("role").is_in(["oracle", "prior"])  # baselines cost nothing: computed again
        assert res2["predictions"].filter(~recomputed)["cached"].all()
        assert res2["accuracy_by_wording_paired"].equals(res["accuracy_by_wording_paired"])
        assert res2["table_5"].equals(res["table_5"])
        assert res2["record"]["student_queries_per_s"] == pytest.approx(rec["student_queries_per_s"])


def test_missing_adapter_and_no_llms_are_skipped_with_reasons(tmp_path):
    run = make_run(tmp_path, n_contexts=1, pairs_per_context=2)
    p = params("evaluate.evaluate_teachers=false")
    (run["curate"] / "dataset" / "train.jsonl").unlink()
    res = evaluate_run(run["generate"], run["curate"], run["finetune"], p, tmp_path / "stage", run["llm"],
                       progress=False)  # fmt: skip
    assert res["models"] == ["student-base", "rules-oracle"]
    assert set(res["skipped"]) == {"student-tuned", "teachers", "judge", "train-prior"}
    assert res["student_queries_per_s"] is None and res["kappa"].is_empty()
    assert "not computed" in (tmp_path / "stage" / "paper" / "table_6.md").read_text()


def test_llm_subset_and_held_out_wording_table(tmp_path):
    """`evaluate.llm_max_items` caps the teacher's answers and the judge's grades to a category-spread subset
    (the students still answer every item); seen vs unseen wordings get their own table."""
    run = make_run(tmp_path, n_contexts=2)
    test_file = run["curate"] / "dataset" / "test.jsonl"
    rows = [json.loads(line) for line in test_file.read_text().splitlines()]
    for i, r in enumerate(rows):
        r["phrasing"] = "unseen" if i % 2 else "seen"
    test_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers = {r["messages"][1]["content"]: right_answer(run, r) for r in rows}

    def reply(body):
        prompt = prompt_of(body)
        return Reply(answers[prompt]) if prompt in answers else Reply("CORRECT")

    with ScriptedServer(default=reply) as server:
        p = params("evaluate.llm_max_items=4")
        p.generate.teachers = [
            ModelEndpoint(name="t1", model="gpt-4o", base_url=server.base_url, max_retries=0)
        ]
        p.evaluate.judge = ModelEndpoint(name="judge", model="gpt-4o", base_url=server.base_url, temperature=0.0,
                                         max_tokens=8, response_format="text", max_retries=0)  # fmt: skip
        res = evaluate_run(run["generate"], run["curate"], run["finetune"], p, tmp_path / "stage", run["llm"],
                           progress=False)  # fmt: skip
        df = res["predictions"]
        asked = set(df.filter(pl.col("model") == "t1")["item_id"])
        assert len(asked) == 4 and len(set(df["item_id"])) == len(rows)
        assert len({r["category"] for r in rows if r["id"] in asked}) == 4  # spread over categories
        judged = df.filter(pl.col("judge_status") != "not_judged")
        assert set(judged["item_id"]) == asked
        assert server.count() == 4 + judged.select("item_id", "reply").unique().height
    wording = res["accuracy_by_wording"]
    assert set(wording["phrasing"]) == {"seen", "unseen"}
    t1 = wording.filter(pl.col("model") == "student-base")
    assert t1["n_items"].sum() == len(rows)
    t5w = res["table_5_wording"]
    assert set(t5w["model"]) >= {"student-base", "rules-oracle"}
    assert (tmp_path / "stage" / "paper" / "table_5_wording.md").is_file()
    assert "judge graded, 4 of them" in (tmp_path / "stage" / "paper" / "table_5.md").read_text()
    assert "vs prior" in " ".join(res["table_5"].columns)
