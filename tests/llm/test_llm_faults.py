"""Fault injection with the real `openai` client against a scripted server: every fault ends as a recorded
outcome of the right kind, none crashes the batch, and the ledger/log count exactly what was sent."""

from __future__ import annotations

import time
from collections import Counter

from llm_helpers import FAST, Echo, ask, make_endpoint

from maritime_slm.llm import Ledger, RequestCache, read_log, run_batch
from maritime_slm.llm.testserver import Drop, Fail, Hang, Raw, Reply, json_reply

# prompt -> (script, expected failure kind or None for ok, expected HTTP calls)
CASES = {
    "rate limited once": ([Fail(429)], None, 2),
    "two server errors": ([Fail(500), Fail(503)], None, 3),
    "always 500": ([Fail(500)] * 3, "http_error", 3),
    "bad request": ([Fail(400)], "http_error", 1),
    "times out once": ([Hang(5)], None, 2),
    "always times out": ([Hang(5)] * 3, "timeout", 3),
    "connection dropped": ([Drop()], None, 2),
    "garbage body": ([Raw("{not json at all")] * 3, "http_error", 3),
    "html then ok": ([Raw("<html>proxy error</html>", "text/html")], None, 2),
    "no choices": ([Raw('{"choices": []}')] * 3, "http_error", 3),
    "invalid json": ([Reply("this is not json")] * 3, "invalid_json", 3),
    "invalid then fixed": ([Reply('{"prompt": oops}')], None, 2),
    "truncated": ([Reply('{"prompt": "trunc', finish_reason="length")] * 3, "truncated", 3),
    "refusal": ([Reply(None, refusal="I can't help with that.")], "refusal", 1),
    "content filter": ([Reply("", finish_reason="content_filter")], "refusal", 1),
    "wrong schema": ([json_reply({"prompt": 7})] * 3, "schema_error", 3),
    "fine": ([], None, 1),
}


def test_every_fault_is_recorded_and_none_crashes_the_batch(scripted, tmp_path):
    server = scripted(script={prompt: script for prompt, (script, _, _) in CASES.items()})
    endpoint = make_endpoint(server, timeout_s=0.4, max_retries=2)
    prompts = list(CASES)
    with Ledger(tmp_path / "ledger") as ledger, RequestCache(tmp_path / "cache.db") as cache:
        batch = run_batch(
            endpoint,
            [ask(p) for p in prompts],
            ledger=ledger,
            cache=cache,
            backoff=FAST,
            max_reasks=2,
            progress=False,
        )
        session = ledger.totals("session")

    assert len(batch) == len(prompts)
    for prompt, result in zip(prompts, batch, strict=True):
        _, kind, calls = CASES[prompt]
        assert result.failure == kind, (prompt, result)
        assert result.ok == (kind is None), prompt
        assert result.calls == calls, (prompt, result)
        assert server.count(prompt) == calls, prompt
        if kind is None:
            assert result.value == Echo(prompt=prompt, length=len(prompt))
        else:
            assert result.detail, prompt

    expected_failures = sum(kind is not None for _, kind, _ in CASES.values())
    assert session.requests == server.count() == sum(calls for _, _, calls in CASES.values())
    assert session.failures == batch.n_failed == expected_failures
    assert session.cache_hits == 0
    assert batch.by_kind == Counter(kind for _, kind, _ in CASES.values() if kind)

    events = read_log(tmp_path / "ledger" / "calls.jsonl")
    errors = Counter(
        (e["error"], e.get("http_status")) for e in events if e["event"] == "attempt" and "error" in e
    )
    assert errors[("rate_limited", 429)] == 1
    assert errors[("server_error", 500)] == 1 + 3 and errors[("server_error", 503)] == 1
    assert errors[("client_error", 400)] == 1
    assert errors[("timeout", None)] == 1 + 3
    assert errors[("connection", None)] == 1
    assert errors[("bad_response", None)] == 3 + 1 + 3
    outcomes = Counter(e.get("failure") for e in events if e["event"] == "outcome")
    assert outcomes == Counter({None: len(prompts) - expected_failures}) + batch.by_kind

    csv_lines = (tmp_path / "ledger" / "ledger.csv").read_text().splitlines()
    assert csv_lines[0] == (
        "teacher,category,requests,cache_hits,input_tokens,output_tokens,usd,failures,"
        "cached_input_tokens,reasoning_tokens"
    )
    assert csv_lines[1].startswith(f"teacher,qa,{server.count()},0,")


def test_reask_shows_the_model_its_bad_reply(scripted):
    server = scripted(script={"q": [Reply('{"prompt": oops}')]})
    result = run_batch(make_endpoint(server), [ask("q")], backoff=FAST, progress=False)[0]
    assert result.ok and result.reasks == 1
    second = server.bodies("q")[1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[1]["content"] == '{"prompt": oops}'
    assert "could not be used" in second[2]["content"]


def test_truncated_reply_is_reasked_for_a_shorter_answer(scripted):
    server = scripted(script={"q": [Reply('{"prompt": "q", "len', finish_reason="length")]})
    result = run_batch(make_endpoint(server), [ask("q", max_tokens=40)], backoff=FAST, progress=False)[0]
    assert result.ok and result.reasks == 1
    nudge = server.bodies("q")[1]["messages"][-1]["content"]
    assert "cut off" in nudge and "40 tokens" in nudge


def test_retry_after_header_is_honoured(scripted):
    server = scripted(script={"q": [Fail(429, retry_after_s=0.5)]})
    started = time.monotonic()
    result = run_batch(make_endpoint(server), [ask("q")], backoff=FAST, progress=False)[0]
    assert result.ok and result.calls == 2
    assert time.monotonic() - started >= 0.5


def test_no_retries_means_one_attempt(scripted):
    server = scripted(script={"q": [Fail(503)]})
    result = run_batch(make_endpoint(server, max_retries=0), [ask("q")], backoff=FAST, progress=False)[0]
    assert result.failure == "http_error" and server.count("q") == 1


def test_unreachable_server_is_a_failure_not_an_exception(tmp_path):
    from maritime_slm.llm.server import free_port

    endpoint_url = f"http://127.0.0.1:{free_port()}/v1"
    from maritime_slm.config import ModelEndpoint

    endpoint = ModelEndpoint(name="gone", model="gpt-4o", base_url=endpoint_url, max_retries=1)
    with Ledger(tmp_path) as ledger:
        result = run_batch(endpoint, [ask("q")], ledger=ledger, backoff=FAST, progress=False)[0]
        assert result.failure == "http_error" and result.calls == 0
        assert ledger.totals("session").requests == 0  # refused connections were never sent
