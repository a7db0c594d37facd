"""Issue 16: teacher answers used up the budget the judge needs. Each teacher's answers and the judge now have
their own budget line, made and held before the first paid call, and the stage's cost preview comes first."""

from __future__ import annotations

import json

import pytest
from evaluate_testdata import make_run, params, right_answer

from maritime_slm.config import ModelEndpoint
from maritime_slm.evaluate.cache import PredictionCache
from maritime_slm.evaluate.items import load_items
from maritime_slm.evaluate.judge import judge_predictions
from maritime_slm.evaluate.predict import teacher_predictions
from maritime_slm.evaluate.run import paid_roles
from maritime_slm.llm import Budget, Ledger, RequestCache
from maritime_slm.llm.preview import PREVIEW_FILE, CostOverBudget
from maritime_slm.llm.session import LLMSession
from maritime_slm.llm.testserver import Reply, ScriptedServer, prompt_of


def paid(server: ScriptedServer, name: str, **kw) -> ModelEndpoint:
    fields = {"name": name, "model": "gpt-4o", "base_url": server.base_url, "response_format": "text",
              "temperature": 0.0, "max_tokens": 16, "timeout_s": 5.0, "max_retries": 0, "concurrency": 1,
              "price_in_per_m": 2.5, "price_out_per_m": 10.0, "max_failed_share": 1.0}  # fmt: skip
    return ModelEndpoint(**(fields | kw))


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path, n_contexts=2)


def test_the_judge_still_runs_when_teacher_answers_hit_their_line(run, tmp_path):
    items = load_items(run["curate"])
    by_id = {it.id: it for it in items}
    rows = {r["id"]: r for r in run["rows"]}
    answers = {it.messages[-1]["content"]: right_answer(run, rows[it.id]) for it in items}

    def reply(body):
        prompt = prompt_of(body)
        return Reply("CORRECT") if "Candidate answer:" in prompt else Reply(answers[prompt])

    with ScriptedServer(default=reply) as server:
        teacher, judge = paid(server, "teacher"), paid(server, "judge", budget_usd=0.5)
        p = params("evaluate.budget_usd=1.0", "evaluate.teacher_budget_usd=0.008",
                   "evaluate.refuse_over_budget=false")  # fmt: skip
        p.evaluate.judge = judge
        cache = PredictionCache(tmp_path / "predictions_cache")
        with Ledger(tmp_path / "llm" / "evaluate") as ledger:
            llm = LLMSession(RequestCache(tmp_path / "llm" / "cache.sqlite"), ledger, Budget(1.0), False)
            lines = paid_roles(p, [teacher], [], items, by_id, cache, llm, tmp_path / "stage")
            preds, _ = teacher_predictions(teacher, items, p, cache, lines["teacher"])
            grades, summary = judge_predictions(judge, preds, by_id, cache, lines["judge"])
    statuses = [pr.status for pr in preds]
    assert "failed:budget" in statuses and "ok" in statuses  # the answers stopped at their own line
    answered = [g for g, pr in zip(grades, preds, strict=True) if pr.answered]
    assert answered and all(g.status == "ok" and g.grade == "CORRECT" for g in answered), summary
    shown = json.loads((tmp_path / "stage" / PREVIEW_FILE).read_text())
    assert [r["role"] for r in shown["roles"]] == ["answers", "judge"]
    assert shown["roles"][0]["requests"] == len(items) and shown["roles"][1]["requests"] == len(items)
    assert any("evaluate.teacher_budget_usd" in problem for problem in shown["problems"])


def test_evaluate_refuses_before_teacher_answers_when_over_budget(run, tmp_path):
    items = load_items(run["curate"])
    with ScriptedServer() as server:
        p = params("evaluate.budget_usd=0.001")
        p.evaluate.judge = paid(server, "judge")
        cache = PredictionCache(tmp_path / "predictions_cache")
        with Ledger(tmp_path / "llm" / "evaluate") as ledger:
            llm = LLMSession(RequestCache(tmp_path / "llm" / "cache.sqlite"), ledger, Budget(0.001), False)
            with pytest.raises(CostOverBudget, match="evaluate.budget_usd"):
                paid_roles(p, [paid(server, "teacher")], [], items, {it.id: it for it in items}, cache, llm,
                           tmp_path / "stage")  # fmt: skip
        assert server.count() == 0
