"""The teacher prompt's layout: the requests about one context share a prefix covering the whole context, which is
what OpenAI's prompt caching bills at the cached price (issue 16)."""

from __future__ import annotations

import os

from testkit import hand_made_context

from maritime_slm.config import FactsParams, GenerateParams, ModelEndpoint
from maritime_slm.facts.contexts import serialize
from maritime_slm.facts.factsheet import compute_facts
from maritime_slm.generate.records import TeacherOutput
from maritime_slm.generate.run import teacher_requests
from maritime_slm.llm import Ledger, read_log, run_batch
from maritime_slm.llm.emulator import CACHE_INCREMENT_TOKENS, CHARS_PER_TOKEN, prompt_text
from maritime_slm.llm.formats import response_format
from maritime_slm.llm.testserver import ScriptedServer, json_reply


def long_context() -> dict:
    """The hand-made context with 60 more vessels: a snapshot well over OpenAI's 1024-token caching threshold."""
    ctx = hand_made_context()
    for i in range(60):
        vessel = dict(ctx["vessels"][0], mmsi=367100000 + i, name=f"VESSEL {i}")
        report = dict(ctx["reports"][0], mmsi=vessel["mmsi"], lat=29.0 + i / 1000)
        ctx["vessels"].append(vessel)
        ctx["reports"].append(report)
    ctx["text"] = serialize(ctx)
    return ctx


def requests_for_one_context():
    ctx = long_context()
    facts = {ctx["context_id"]: compute_facts(ctx, FactsParams())}
    params = GenerateParams(pairs_per_context=6)
    requests, keys = teacher_requests([ctx], facts, params, "gpt-4o")
    return ctx, requests, keys


def common_prefix(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def test_requests_about_one_context_share_a_prefix_covering_it():
    ctx, requests, keys = requests_for_one_context()
    assert len({category for _, category in keys}) == 6
    fmt = response_format("json_schema", TeacherOutput)
    prompts = [prompt_text({"messages": r.messages, "response_format": fmt}) for r in requests]
    context_end = prompts[0].index(ctx["text"]) + len(ctx["text"])
    for other in prompts[1:]:
        assert common_prefix(prompts[0], other) >= context_end


def test_the_emulated_api_bills_the_shared_context_at_the_cached_price(tmp_path, monkeypatch):
    ctx, requests, _ = requests_for_one_context()
    monkeypatch.setenv("EMULATED_KEY", "sk-emulated-" + "x" * 24)

    pair = {"fact_key": "traffic.total_vessels", "question": "How many vessels?", "reasoning": "", "answer": "63",
            "final_answer": "63"}  # fmt: skip

    with ScriptedServer(strict=True, default=lambda body: json_reply(pair)) as server:
        endpoint = ModelEndpoint(
            name="gpt-4o", model="gpt-4o", base_url=server.base_url, api_key_env="EMULATED_KEY",
            concurrency=1, price_in_per_m=2.5, price_out_per_m=10.0, price_cached_in_per_m=1.25,
        )  # fmt: skip
        with Ledger(tmp_path) as ledger:
            results = run_batch(endpoint, requests, ledger=ledger, progress=False)
    assert all(r.ok for r in results), [r.detail for r in results]
    attempts = [e for e in read_log(tmp_path / "calls.jsonl") if e["event"] == "attempt"]
    fmt = response_format("json_schema", TeacherOutput)
    text = prompt_text({"messages": requests[0].messages, "response_format": fmt})
    through_context = text.index(ctx["text"]) + len(ctx["text"])
    whole_blocks = through_context // (CACHE_INCREMENT_TOKENS * CHARS_PER_TOKEN) * CACHE_INCREMENT_TOKENS
    assert whole_blocks >= 1024 and attempts[0]["cached_input_tokens"] == 0
    assert all(a["cached_input_tokens"] >= whole_blocks for a in attempts[1:]), attempts
    assert os.environ["EMULATED_KEY"] not in (tmp_path / "calls.jsonl").read_text()
