"""What the real OpenAI API does to a paid run (issue 16): reasoning models that spend max_tokens on hidden
reasoning, an account out of quota, cached and reasoning tokens, timed-out requests that were billed anyway,
and budget lines that keep one role from spending another's share."""

from __future__ import annotations

import pytest
from llm_helpers import FAST, ask, make_endpoint

from maritime_slm.config import ModelEndpoint, load_params
from maritime_slm.llm import Budget, BudgetExceeded, Ledger, read_log, run_batch
from maritime_slm.llm.testserver import Fail, Hang, Reply, json_reply

QUOTA = Fail(
    429,
    "You exceeded your current quota, please check your plan and billing details.",
    code="insufficient_quota",
)


def attempts(folder) -> list[dict]:
    return [e for e in read_log(folder / "calls.jsonl") if e["event"] == "attempt"]


def test_reasoning_model_cut_off_by_max_tokens_is_not_reasked(scripted):
    cut = Reply("", finish_reason="length", completion_tokens=300, reasoning_tokens=300)
    server = scripted(script={"q": [cut] * 3})
    endpoint = make_endpoint(
        server, model="o3-mini", reasoning_effort="medium", temperature=None, max_tokens=300
    )
    result = run_batch(endpoint, [ask("q")], backoff=FAST, max_reasks=2, progress=False)[0]
    assert result.failure == "truncated" and result.reasks == 0
    assert server.count("q") == 1  # the whole context is not sent again into the same budget
    assert "the reasoning used the max_tokens budget of 300 tokens" in result.detail


def test_chat_model_cut_off_by_max_tokens_is_still_reasked(scripted):
    server = scripted(script={"q": [Reply('{"prompt": "q", "len', finish_reason="length")]})
    result = run_batch(make_endpoint(server, model="gpt-4o"), [ask("q")], backoff=FAST, progress=False)[0]
    assert result.ok and result.reasks == 1 and server.count("q") == 2


def test_insufficient_quota_is_not_retried(scripted, tmp_path):
    server = scripted(script={"q": [QUOTA] * 4, "r": [Fail(429)]})
    endpoint = make_endpoint(server, max_retries=3)
    with Ledger(tmp_path) as ledger:
        out_of_quota, rate_limited = run_batch(
            endpoint, [ask("q"), ask("r")], ledger=ledger, backoff=FAST, progress=False
        )
    assert server.count("q") == 1 and out_of_quota.calls == 1
    assert out_of_quota.failure == "http_error"
    assert out_of_quota.detail.startswith("insufficient_quota: the API account is out of quota")
    assert "\n" not in out_of_quota.detail
    assert rate_limited.ok and server.count("r") == 2  # a plain rate limit is still waited out
    assert sorted(e["error"] for e in attempts(tmp_path) if "error" in e) == [
        "insufficient_quota",
        "rate_limited",
    ]


def test_ledger_records_served_model_cached_and_reasoning_tokens(scripted, tmp_path):
    usage = {"prompt_tokens": 1000, "completion_tokens": 100}
    served = json_reply(
        {"prompt": "q", "length": 1},
        **usage,
        cached_tokens=800,
        reasoning_tokens=60,
        model="gpt-4o-2024-08-06",
        system_fingerprint="fp_0123abcd",
    )
    server = scripted(script={"q": [served], "r": [json_reply({"prompt": "r", "length": 1}, **usage)]})
    cached_price = make_endpoint(server, price_in_per_m=2.5, price_cached_in_per_m=1.25, price_out_per_m=10.0)
    same_price = make_endpoint(server, name="uncached", price_in_per_m=2.5, price_out_per_m=10.0)
    with Ledger(tmp_path) as ledger:
        first = run_batch(cached_price, [ask("q")], ledger=ledger, backoff=FAST, progress=False)[0]
        second = run_batch(same_price, [ask("r")], ledger=ledger, backoff=FAST, progress=False)[0]
        rows = {r.teacher: r for r in ledger.rows()}

    assert first.usd == pytest.approx((200 * 2.5 + 800 * 1.25 + 100 * 10.0) / 1e6)
    assert second.usd == pytest.approx((1000 * 2.5 + 100 * 10.0) / 1e6)
    q, r = attempts(tmp_path)
    assert (q["model"], q["served_model"], q["system_fingerprint"]) == (
        "gpt-4o",
        "gpt-4o-2024-08-06",
        "fp_0123abcd",
    )
    assert (q["cached_input_tokens"], q["reasoning_tokens"]) == (800, 60)
    assert (r["cached_input_tokens"], r["reasoning_tokens"]) == (0, 0) and "system_fingerprint" not in r
    assert (rows["teacher"].cached_input_tokens, rows["teacher"].reasoning_tokens) == (800, 60)
    header = (tmp_path / "ledger.csv").read_text().splitlines()[0]
    assert header.endswith(",usd,failures,cached_input_tokens,reasoning_tokens")


def test_cached_price_above_the_input_price_is_refused():
    with pytest.raises(ValueError, match="price_cached_in_per_m must not exceed price_in_per_m"):
        ModelEndpoint(
            name="t", model="gpt-4o", base_url="http://x/v1", price_in_per_m=1.0, price_cached_in_per_m=2.0
        )


def test_timed_out_attempt_is_charged_its_estimated_input(scripted, tmp_path):
    prompt = "x" * 4000
    server = scripted(script={prompt: [Hang(5)]})
    endpoint = make_endpoint(server, timeout_s=0.4, max_retries=1, price_in_per_m=2.5)
    budget = Budget(10.0)
    with Ledger(tmp_path) as ledger:
        result = run_batch(
            endpoint, [ask(prompt)], ledger=ledger, budget=budget, backoff=FAST, progress=False
        )[0]
        total = ledger.total_usd()
    assert result.ok and result.calls == 2 and server.count(prompt) == 2  # still retried
    timed_out, answered = attempts(tmp_path)
    assert timed_out["error"] == "timeout" and timed_out["usd_estimated"] is True
    assert timed_out["input_tokens"] == 1000 and timed_out["usd"] == pytest.approx(1000 * 2.5 / 1e6)
    assert "usd_estimated" not in answered
    assert total == pytest.approx(timed_out["usd"] + answered["usd"]) == pytest.approx(budget.spent_usd)


def test_budget_line_is_capped_by_its_own_limit_and_by_the_stage():
    stage = Budget(1.0)
    first, second = stage.line(0.5), stage.line(None)
    held = first.try_reserve(0.4)
    with pytest.raises(BudgetExceeded, match=r"budget line \$0\.5000") as refused:
        first.try_reserve(0.2)
    assert refused.value.budget is first
    second.settle(second.try_reserve(0.5), 0.5)
    with pytest.raises(BudgetExceeded, match=r"^budget \$1\.0000") as refused:
        second.try_reserve(0.2)  # 0.5 spent + 0.4 in flight + 0.2 > the stage's 1.0
    assert refused.value.budget is stage
    first.settle(held, 0.1)
    assert (first.spent_usd, second.spent_usd, stage.spent_usd) == (0.1, 0.5, pytest.approx(0.6))
    # the first line's unspent 0.4 stays held for it: the unlimited line cannot take it
    assert stage.reserved_usd == 0 and first.remaining_usd == pytest.approx(0.4)
    assert second.remaining_usd == pytest.approx(0.0)


def _paper_api_endpoints(tmp_path):
    (tmp_path / "AIS_2024_01_01.csv").write_text("x\n")
    params = load_params("paper", [f"ingest.inputs=['{tmp_path}/*.csv']"])
    return [*params.generate.teachers, params.curate.editor, params.evaluate.judge]


def test_paper_profile_pins_dated_model_snapshots(tmp_path):
    """An alias (`gpt-4o`) is moved to a newer model by OpenAI: a study's teachers, editor and judge name dated
    snapshots, so a re-run or a later stage asks the same model."""
    endpoints = _paper_api_endpoints(tmp_path)
    assert {e.model for e in endpoints} == {"gpt-4o-2024-08-06", "o3-mini-2025-01-31"}


def test_paper_profile_timeouts_leave_time_for_the_longest_reply(tmp_path):
    """A request cut off by the client's timeout was likely processed and billed, and is sent again: each API
    model has time for a reply of max_tokens at 25 tokens/s (o3-mini: 25,000 tokens, 1,000 s)."""
    for endpoint in _paper_api_endpoints(tmp_path):
        assert endpoint.timeout_s >= endpoint.max_tokens / 25, endpoint.name


def test_paper_profile_gives_o3_mini_room_to_reason_and_prices_cached_input(tmp_path):
    (tmp_path / "AIS_2024_01_01.csv").write_text("x\n")
    params = load_params("paper", [f"ingest.inputs=['{tmp_path}/*.csv']"])
    gpt_4o, o3_mini = params.generate.teachers
    assert o3_mini.max_tokens == 25000
    assert (gpt_4o.price_cached_in_per_m, o3_mini.price_cached_in_per_m) == (1.25, 0.55)
    assert params.curate.editor.price_cached_in_per_m == params.evaluate.judge.price_cached_in_per_m == 1.25
