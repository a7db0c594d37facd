"""Batch mode (issue 16) against the loopback emulator of OpenAI's Batch API: requests go out as JSONL, come back
into the same cache and ledger as sync replies at batch prices, a killed run resumes its open batches by id and
never submits a request twice, expired and failed lines are handled, the budget refuses what its worst case
exceeds."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import openai
import pytest
from llm_helpers import FAST, ask, make_endpoint

from maritime_slm.config import ParamsError, load_params
from maritime_slm.llm import Budget, Ledger, RequestCache, read_log, run_batch
from maritime_slm.llm.batch import STORE_NAME, BatchRunner, BatchStore
from maritime_slm.llm.budget import worst_case_usd
from maritime_slm.llm.client import LLMClient
from maritime_slm.llm.emulator import BATCH_EXPIRED_MESSAGE
from maritime_slm.llm.failures import FailureWatch, ModelCallsFailed
from maritime_slm.llm.ledger import endpoint_prices
from maritime_slm.llm.testserver import BatchPlan, Fail, Hang

SHARED = "You answer questions about one AIS snapshot. " * 120  # > 1024 tokens: a cacheable prefix


class Killed(BaseException):
    """Stands for SIGKILL: nothing after the raise point runs."""


def batch_endpoint(server, **overrides):
    fields = dict(name="gpt-4o", model="gpt-4o", price_cached_in_per_m=1.25, max_retries=1)
    fields["batch"] = {"enabled": True, "poll_s": 0.01}
    return make_endpoint(server, **(fields | overrides))


def prompts(n: int) -> list[str]:
    return [f"question {i}: how fast is vessel {367000000 + i}?" for i in range(n)]


def go(endpoint, texts, tmp_path, **kwargs):
    """run_batch with the run folder's cache and ledger, as a stage calls it."""
    with (
        Ledger(tmp_path / "llm" / "generate") as ledger,
        RequestCache(tmp_path / "llm" / "cache.sqlite") as cache,
    ):
        kwargs.setdefault("progress", False)
        requests = [ask(t, system=SHARED) for t in texts]
        result = run_batch(endpoint, requests, cache=cache, ledger=ledger, backoff=FAST, **kwargs)
        return result, ledger.totals(), ledger.totals("session")


def attempts(tmp_path) -> list[dict]:
    return [e for e in read_log(tmp_path / "llm" / "generate" / "calls.jsonl") if e["event"] == "attempt"]


def sync_calls(server) -> list:
    return [s for s in server.seen if s.batch_id is None]


def test_replies_land_in_the_cache_and_ledger_at_half_the_sync_price(scripted, tmp_path):
    texts = prompts(6)
    server = scripted(strict=True, batch_plans=[BatchPlan(polls=2)])
    result, total, _ = go(batch_endpoint(server), texts, tmp_path / "batch")
    assert result.n_ok == 6 and [r.value.prompt for r in result] == texts
    assert sync_calls(server) == [] and len(server.batches) == 1
    assert len(server.submitted()) == 6 and set(server.submitted().values()) == {1}
    batch = next(iter(server.batches.values()))
    assert batch.retrieves == 3 and batch.status == "completed"  # two polls saw it unfinished
    lines = attempts(tmp_path / "batch")
    assert len(lines) == 6 and {e["batch_id"] for e in lines} == {batch.id}
    assert all("latency_s" not in e and e["status"] == "ok" for e in lines)
    assert total.requests == 6 and total.cache_hits == 0 and total.cached_input_tokens > 0
    assert result.calls == 6 and result.usd == pytest.approx(total.usd)

    # the same work through sync calls costs twice as much (same usage: the emulator bills both alike)
    sync_server = scripted(strict=True)
    sync = batch_endpoint(sync_server, batch={"enabled": False})
    _, sync_total, _ = go(sync, texts, tmp_path / "sync")
    assert (sync_total.input_tokens, sync_total.cached_input_tokens) == (
        total.input_tokens,
        total.cached_input_tokens,
    )
    assert total.usd == pytest.approx(sync_total.usd / 2)
    assert len(server.batches) == 1 and sync_server.batches == {}

    # the same requests again: all from the cache, nothing submitted, nothing paid
    again, _, session = go(batch_endpoint(server), texts, tmp_path / "batch")
    assert again.n_ok == 6 and again.cache_hits == 6 and again.calls == 0
    assert len(server.batches) == 1 and session.usd == 0 and session.cache_hits == 6


def test_explicit_batch_prices_win_over_half_the_sync_prices(scripted):
    server = scripted()
    half = endpoint_prices(batch_endpoint(server), batch=True)
    assert (half.in_per_m, half.out_per_m, half.cached_in_per_m) == (1.25, 5.0, 0.625)
    stated = batch_endpoint(server, batch={"enabled": True, "price_in_per_m": 1.0, "price_out_per_m": 4.0})
    prices = endpoint_prices(stated, batch=True)
    assert (prices.in_per_m, prices.out_per_m, prices.cached_in_per_m) == (1.0, 4.0, 0.625)
    assert endpoint_prices(stated).in_per_m == 2.5


@pytest.mark.parametrize("kill_at", ["created", "after_upload", "before_poll"])
def test_a_killed_run_resumes_its_batch_and_submits_nothing_twice(scripted, tmp_path, monkeypatch, kill_at):
    """Killed after the upload (no batch yet), after `batches.create` but before its id was stored, or after
    the id was stored: the re-run finds the batch (by id, or by its input file) or submits it once."""
    texts = prompts(5)
    server = scripted(strict=True, batch_plans=[BatchPlan(polls=1)])
    endpoint = batch_endpoint(server)
    targets = {"created": (BatchStore, "created"), "after_upload": (BatchRunner, "_create"),
               "before_poll": (BatchRunner, "_poll")}  # fmt: skip
    owner, name = targets[kill_at]
    real = getattr(owner, name)

    def killed(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(owner, name, killed)
    with pytest.raises(Killed):
        go(endpoint, texts, tmp_path)
    assert len(server.batches) == (0 if kill_at == "after_upload" else 1)
    assert server.count() == 0  # no line has run yet

    monkeypatch.setattr(owner, name, real)
    result, total, _ = go(endpoint, texts, tmp_path)
    assert result.n_ok == 5 and [r.value.prompt for r in result] == texts
    assert len(server.batches) == 1 and set(server.submitted().values()) == {1}
    assert server.counts() == Counter(texts) and sync_calls(server) == []
    assert total.requests == 5 and result.calls == 5
    store = BatchStore(tmp_path / "llm" / STORE_NAME)
    try:
        assert store.open_for(endpoint) == []
    finally:
        store.close()


def test_expired_lines_go_into_a_new_batch(scripted, tmp_path):
    texts = prompts(5)
    server = scripted(strict=True, batch_plans=[BatchPlan(polls=1, outcome="expired", done=2)])
    result, total, _ = go(batch_endpoint(server), texts, tmp_path)
    assert result.n_ok == 5 and [r.value.prompt for r in result] == texts
    first, second = server.batches.values()
    assert first.status == "expired" and first.counts == {"total": 5, "completed": 2, "failed": 3}
    assert second.status == "completed" and second.custom_ids == first.custom_ids[2:]
    assert server.counts() == Counter(texts) and sync_calls(server) == []  # every question ran once
    log = read_log(tmp_path / "llm" / "generate" / "calls.jsonl")
    expired = [e for e in log if e["event"] == "not_sent"]
    assert [e["error"] for e in expired] == ["batch_expired"] * 3 and {e["batch_id"] for e in expired} == {
        first.id
    }
    assert BATCH_EXPIRED_MESSAGE in expired[0]["detail"]
    assert total.requests == 5 and result.calls == 5


def test_lines_that_expire_in_every_batch_fail_without_a_sync_call(scripted, tmp_path):
    texts = prompts(3)
    never = BatchPlan(outcome="expired", done=0)
    server = scripted(strict=True, batch_plans=[never, never, never])
    endpoint = batch_endpoint(server, max_failed_share=1.0)
    result, total, _ = go(endpoint, texts, tmp_path)
    assert result.n_ok == 0 and result.by_kind == Counter({"http_error": 3})
    assert all("expired unanswered in 2 batches" in r.detail for r in result)
    assert len(server.batches) == 2 and server.count() == 0  # max_submissions 2; the sync price is never paid
    assert total.usd == 0 and total.failures == 3


def test_partly_failed_batch_sends_only_retryable_lines_again_as_sync_calls(scripted, tmp_path):
    texts = prompts(5)
    script = {
        texts[1]: [Fail(500, "overloaded")],
        texts[2]: [Fail(429, "You exceeded your current quota", code="insufficient_quota")],
        texts[3]: [Hang()],  # never finishes inside the window: expired, then in the next batch
    }
    server = scripted(strict=True, script=script)
    endpoint = batch_endpoint(server, max_failed_share=1.0)
    result, total, _ = go(endpoint, texts, tmp_path)
    ok = [r.ok for r in result]
    assert ok == [True, True, False, True, True]
    assert "insufficient_quota" in result[2].detail and "not retried" in result[2].detail
    assert [s.prompt for s in sync_calls(server)] == [texts[1]]  # the 500 only; the quota error is final
    first = next(iter(server.batches.values()))
    assert first.status == "expired" and first.counts["failed"] == 3
    assert server.submitted()[json_key(server, texts[3])] == 2
    log = attempts(tmp_path)
    sync_line = [e for e in log if "batch_id" not in e]
    assert len(sync_line) == 1 and sync_line[0]["status"] == "ok"
    errors = [e for e in log if e["status"] == "error"]
    assert sorted(e["http_status"] for e in errors) == [429, 500]
    assert result[1].calls == 2  # its failed batch line and its sync call


def json_key(server, prompt: str) -> str:
    """The custom_id the client used for a prompt (from what the server received)."""
    for batch in server.batches.values():
        for line in batch.lines:
            if any(m.get("content") == prompt for m in line["body"]["messages"]):
                return str(line["custom_id"])
    raise AssertionError(prompt)


def test_a_line_the_api_refuses_is_reported_from_the_error_file(scripted, tmp_path):
    """A llama.cpp-style `json_object` request without the word "json" in its prompt: the strict emulator refuses
    that line (400) as the API would, the others run; the refusal is the request's failure, not sent again."""
    server = scripted(strict=True)
    endpoint = batch_endpoint(server, response_format="json_object_schema", max_failed_share=1.0)
    with Ledger(tmp_path / "llm") as ledger, RequestCache(tmp_path / "cache.sqlite") as cache:
        requests = [ask("answer in json: how fast?"), ask("how fast is it?")]
        result = run_batch(endpoint, requests, cache=cache, ledger=ledger, backoff=FAST, progress=False)
    assert [r.ok for r in result] == [True, False]
    assert result[1].failure == "http_error" and "Error code: 400" in result[1].detail
    assert "must contain the word 'json'" in result[1].detail
    batch = next(iter(server.batches.values()))
    assert (
        batch.output_file_id
        and batch.error_file_id
        and batch.counts == {"total": 2, "completed": 1, "failed": 1}
    )
    assert len(server.rejected()) == 1 and server.count() == 2 and sync_calls(server) == []


def test_a_failed_batch_fails_its_requests_with_its_errors_and_the_stage_stops(scripted, tmp_path):
    limit = {"code": "token_limit_exceeded", "line": None, "param": None,
             "message": "Enqueued token limit reached for gpt-4o in organization org-x. Limit: 90,000 enqueued "
                        "tokens. Please try again once some in_progress batches have been completed."}  # fmt: skip
    server = scripted(strict=True, batch_plans=[BatchPlan(polls=1, outcome="failed", errors=(limit,))])
    endpoint = batch_endpoint(server)
    with Ledger(tmp_path / "llm") as ledger, RequestCache(tmp_path / "cache.sqlite") as cache:
        requests = [ask(t) for t in prompts(4)]
        watch = FailureWatch(endpoint, "teacher", len(requests))
        with pytest.raises(ModelCallsFailed, match="Enqueued token limit reached"):
            watch.run(run_batch, endpoint, requests, cache=cache, ledger=ledger, backoff=FAST, progress=False)
    assert server.count() == 0 and len(server.batches) == 1  # nothing resent, not even sync


def test_the_emulator_fails_a_malformed_input_file(scripted):
    """The Batch API's file rules: valid JSON lines, unique custom_id, POST to the batch's url, one model."""
    server = scripted(strict=True)
    client = openai.OpenAI(api_key="test", base_url=server.base_url, max_retries=0)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    lines = [
        {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": body},
        {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": body},
        {"custom_id": "b", "method": "POST", "url": "/v1/embeddings", "body": body},
        {
            "custom_id": "c",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": body | {"model": "o3-mini"},
        },
    ]
    data = ("\n".join(json.dumps(line) for line in lines) + "\nnot json\n").encode()
    upload = client.files.create(file=("in.jsonl", data, "application/jsonl"), purpose="batch")
    assert upload.purpose == "batch" and upload.bytes == len(data)
    with pytest.raises(openai.BadRequestError, match="Supported values are: '24h'"):
        client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="1h"
        )  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-none", endpoint="/v1/chat/completions", completion_window="24h"
        )
    batch = client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "validating"
    batch = client.batches.retrieve(batch.id)
    assert batch.status == "failed" and batch.output_file_id is None
    assert [(e.code, e.line) for e in batch.errors.data] == [
        ("duplicate_custom_id", 2), ("invalid_url", 3), ("mismatched_model", 4), ("invalid_json_line", 5),
    ]  # fmt: skip
    assert [b.id for b in client.batches.list()] == [batch.id]


def test_budget_refuses_a_batch_whose_worst_case_exceeds_what_is_left(scripted, tmp_path, capsys):
    server = scripted(strict=True)
    result, total, _ = go(batch_endpoint(server), prompts(3), tmp_path, budget=Budget(0.0001))
    assert result.stopped_by_budget and result.n_finished == 0 and len(server.batches) == 0
    assert server.count() == 0 and total.usd == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "budget" in line]
    assert len(said) == 1 and "refuses the Batch API submission of 3 requests" in said[0]
    assert "worst case at batch prices" in said[0] and "$0.0001 is left" in said[0]
    assert result[0].detail == said[0]


def test_budget_submits_what_its_worst_case_covers_and_the_rest_once_that_settles(scripted, tmp_path):
    texts = prompts(5)
    server = scripted(strict=True)
    endpoint = batch_endpoint(server)
    client = LLMClient(endpoint)
    prices = endpoint_prices(endpoint, batch=True)
    bodies = [client.first_call(ask(t, system=SHARED))[0] for t in texts]
    asyncio.run(client.aclose())
    worst = max(worst_case_usd(b, b["max_tokens"], prices.in_per_m, prices.out_per_m) for b in bodies)
    budget = Budget(2.7 * worst)
    result, total, _ = go(endpoint, texts, tmp_path, budget=budget)
    assert result.n_ok == 5 and [r.value.prompt for r in result] == texts
    assert [len(b.lines) for b in server.batches.values()] == [2, 2, 1]
    assert set(server.submitted().values()) == {1}
    assert budget.spent_usd == pytest.approx(total.usd) and budget.reserved_usd == 0
    assert total.usd < budget.limit_usd


def test_the_stage_paths_go_through_the_switch():
    """Generation, ARF revision and the judge call the `run_batch` that honours `endpoint.batch`."""
    from maritime_slm.curate import revise
    from maritime_slm.evaluate import judge
    from maritime_slm.generate import run
    from maritime_slm.llm import batch

    assert run.run_batch is revise.run_batch is judge.run_batch is batch.run_batch


def test_timed_answers_stay_sync_calls_with_their_latency_on_a_batch_endpoint(scripted, tmp_path):
    """Evaluate's answers measure latency: a `timed` batch never goes to the Batch API, whatever the endpoint says."""
    server = scripted(strict=True)
    result, total, _ = go(batch_endpoint(server), prompts(4), tmp_path, timed=True)
    assert result.n_ok == 4 and server.batches == {} and len(sync_calls(server)) == 4
    assert all(0 < r.latency_s <= result.elapsed_s for r in result)
    untimed, _, _ = go(batch_endpoint(server, batch={"enabled": False}), prompts(5), tmp_path)
    assert untimed.n_ok == 5 and all(r.latency_s is None for r in untimed)


def test_params_switch_paper_on_and_local_models_refuse_it(tmp_path):
    (tmp_path / "AIS_2024_01_01.csv").write_text("x\n")
    params = load_params("paper", [f"ingest.inputs=['{tmp_path}/*.csv']"])
    api = [*params.generate.teachers, params.curate.editor, params.evaluate.judge]
    assert [e.batch.enabled for e in api] == [True] * 4
    assert all(e.batch.completion_window == "24h" and e.batch.price_in_per_m is None for e in api)
    assert not load_params("default").generate.teachers[0].batch.enabled
    with pytest.raises(ParamsError) as refused:
        load_params("default", ["generate.teachers=[{name: t, model: m, local: true, batch: true}]"])
    message = str(refused.value)
    assert "generate.teachers.0.batch" in message and "local llama.cpp server has no Batch API" in message
