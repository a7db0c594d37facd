"""Teacher answering and the judge through the real llm client against a scripted server: faults are recorded,
not raised; the budget is honoured; a re-run is served from the prediction cache."""

from __future__ import annotations

import json
import time

import pytest
from evaluate_testdata import make_run, params, right_answer, wrong_answer

from maritime_slm.config import ModelEndpoint
from maritime_slm.evaluate.cache import PredictionCache
from maritime_slm.evaluate.items import load_items
from maritime_slm.evaluate.judge import judge_predictions
from maritime_slm.evaluate.predict import Prediction, teacher_predictions
from maritime_slm.llm import Budget, Ledger, RequestCache
from maritime_slm.llm.session import LLMSession
from maritime_slm.llm.testserver import Fail, Hang, Reply, ScriptedServer, prompt_of


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path, n_contexts=1)


def endpoint(server: ScriptedServer, name: str, **kw) -> ModelEndpoint:
    fields = {"name": name, "model": "gpt-4o", "base_url": server.base_url, "response_format": "json_schema",
              "temperature": 0.7, "max_tokens": 512, "timeout_s": 1.0, "max_retries": 0, "concurrency": 2}  # fmt: skip
    return ModelEndpoint(**(fields | kw))


def llm_context(root, budget_usd: float | None = None) -> tuple[LLMSession, Ledger]:
    ledger = Ledger(root / "llm" / "evaluate")
    return LLMSession(
        RequestCache(root / "llm" / "cache.sqlite"), ledger, Budget(budget_usd), progress=False
    ), ledger


def test_teacher_answers_with_faults_recorded(run, tmp_path):
    items = load_items(run["curate"])
    rows = {r["id"]: r for r in run["rows"]}
    user = {it.id: it.messages[-1]["content"] for it in items}
    answers = {user[it.id]: right_answer(run, rows[it.id]) for it in items}
    script = {
        user[items[0].id]: [Fail(400, "bad request")],  # not retryable: http_error
        user[items[1].id]: [Hang(5.0)],  # longer than timeout_s: timeout
        user[items[2].id]: [Reply(None, refusal="I cannot help with that.")],  # a refusal: answered, no value
        user[items[3].id]: [Reply(wrong_answer(run, rows[items[3].id]), finish_reason="length")],  # cut: kept
    }
    p = params()
    with ScriptedServer(script=script, default=lambda body: Reply(answers[prompt_of(body)])) as server:
        cache = PredictionCache(tmp_path / "predictions_cache")
        llm, ledger = llm_context(tmp_path)
        with ledger:
            started = time.monotonic()
            preds, summary = teacher_predictions(
                endpoint(server, "t1", max_failed_share=1.0), items, p, cache, llm
            )
            wall_s = time.monotonic() - started
        status = {pr.item_id: pr.status for pr in preds}
        assert status[items[0].id] == "failed:http_error" and status[items[1].id] == "failed:timeout"
        assert status[items[2].id] == "refusal" and preds[2].reply == "" and preds[2].answered
        assert preds[3].status == "ok" and preds[3].final_answer is not None
        assert all(pr.status == "ok" and pr.reply == answers[user[pr.item_id]] for pr in preds[4:])
        assert all(pr.latency_s is not None and 0 < pr.latency_s < wall_s for pr in preds[2:])
        assert preds[5].input_tokens > 0 and preds[5].output_tokens > 0
        assert "2 failed" in summary
        # the same messages as the student, as free text, greedy, with the student's token limit
        body = server.bodies(user[items[5].id])[0]
        assert body["messages"] == items[5].messages
        assert "response_format" not in body
        assert body["temperature"] == 0.0 and body["max_tokens"] == p.evaluate.max_new_tokens
        # failures are in the call log and the ledger
        log = [
            json.loads(line)
            for line in (tmp_path / "llm" / "evaluate" / "calls.jsonl").read_text().splitlines()
        ]
        failures = [e for e in log if e["event"] == "outcome" and e["status"] == "failure"]
        assert sorted(e["failure"] for e in failures) == ["http_error", "refusal", "timeout"]
        sent = server.count()

        # re-run: answered items come from the prediction cache; only the two failed ones are asked again
        llm2, ledger2 = llm_context(tmp_path)
        with ledger2:
            again, summary2 = teacher_predictions(endpoint(server, "t1"), items, p, cache, llm2)
        assert server.count() == sent + 2
        assert sum(pr.cached for pr in again) == len(items) - 2
        assert [pr.reply for pr in again[2:]] == [pr.reply for pr in preds[2:]]
        assert again[0].status == "ok"  # the server's script is used up: this time it answered
        assert f"{len(items) - 2} answers from the prediction cache" in summary2


def test_budget_stops_paid_calls(run, tmp_path):
    items = load_items(run["curate"])[:3]
    with ScriptedServer() as server:
        paid = endpoint(server, "paid", price_in_per_m=2.5, price_out_per_m=10.0)
        llm, ledger = llm_context(tmp_path, budget_usd=0.0)
        with ledger:
            preds, _ = teacher_predictions(paid, items, params(), PredictionCache(tmp_path / "pc"), llm)
        assert [pr.status for pr in preds] == ["failed:budget"] * 3
        assert server.count() == 0


def test_judge_grades_parsed_cached_and_counted(run, tmp_path):
    items = load_items(run["curate"])[:4]
    by_id = {it.id: it for it in items}
    rows = {r["id"]: r for r in run["rows"]}
    preds = [
        Prediction(items[0].id, "m", "teacher", right_answer(run, rows[items[0].id]), None),
        Prediction(items[1].id, "m", "teacher", wrong_answer(run, rows[items[1].id]), None),
        Prediction(items[2].id, "m", "teacher", "something odd", None),
        Prediction(items[3].id, "m", "teacher", None, None, status="failed:timeout"),
        Prediction(items[1].id, "m2", "teacher", "Final answer: 42", None),
    ]

    def judge_reply(body):
        prompt = prompt_of(body)
        candidate = prompt.split("Candidate answer:", 1)[1]
        if "Reading the snapshot" in candidate:
            return Reply("**CORRECT**")
        if "Guessing" in candidate:
            return Reply("The answer is NOT correct.")
        if "42" in candidate:
            return Fail(400, "judge broke")
        return Reply("Hmm, hard to say.")

    with ScriptedServer(default=judge_reply) as server:
        judge = endpoint(server, "judge", temperature=0.0, max_tokens=16, max_failed_share=1.0)
        cache = PredictionCache(tmp_path / "pc")
        llm, ledger = llm_context(tmp_path)
        with ledger:
            grades, summary = judge_predictions(judge, preds, by_id, cache, llm)
        assert [g.status for g in grades] == ["ok", "ok", "unparseable", "not_answered", "failed:http_error"]
        assert [g.judged_correct for g in grades] == [True, False, False, None, None]
        assert "1 unparseable" in summary
        assert server.count() == 4  # the unanswered prediction is not sent to the judge
        body = server.seen[0].body
        assert "response_format" not in body and body["max_tokens"] == 16
        llm2, ledger2 = llm_context(tmp_path)
        with ledger2:
            again, _ = judge_predictions(judge, preds, by_id, cache, llm2)
        assert server.count() == 5  # only the failed grade is asked again
        assert [g.status for g in again[:3]] == ["ok", "ok", "unparseable"] and all(
            g.cached for g in again[:3]
        )
