"""The USD budget: a batch stops before crossing it, says how far it got, and a resumed run picks up from there."""

from __future__ import annotations

import asyncio

import pytest
from llm_helpers import FAST, ask, make_endpoint

from maritime_slm.llm import Budget, BudgetExceeded, Ledger, RequestCache, run_batch
from maritime_slm.llm.budget import max_input_tokens

# $1,000 per million tokens either way: a call costs a few cents, its worst case ~ half a dollar.
EXPENSIVE = {"price_in_per_m": 1000.0, "price_out_per_m": 1000.0, "max_tokens": 20}


def test_batch_stops_before_exceeding_the_budget_and_resumes(scripted, tmp_path):
    server = scripted(latency_s=0.02)
    endpoint = make_endpoint(server, concurrency=3, **EXPENSIVE)
    requests = [ask(f"question number {i}") for i in range(30)]
    limit = 1.0
    with RequestCache(tmp_path / "cache.db") as cache:
        with Ledger(tmp_path / "run") as ledger:
            budget = Budget(limit)
            batch = run_batch(
                endpoint, requests, cache=cache, ledger=ledger, budget=budget, backoff=FAST, progress=False
            )
            spent = ledger.total_usd()

        assert batch.stopped_by_budget
        assert 0 < batch.n_finished < len(requests)
        assert server.count() == batch.n_finished == batch.n_ok  # nothing sent for the requests it stopped
        assert spent == pytest.approx(budget.spent_usd) and spent <= limit
        assert budget.reserved_usd == 0
        assert all(r.failure == "budget" for r in batch if not r.ok)
        assert (
            f"{batch.n_finished}/30 finished (budget reached: {30 - batch.n_finished} not sent)"
            in batch.summary()
        )

        # Resume with a bigger budget, seeded with what the run already paid: only the rest is sent.
        with Ledger(tmp_path / "run") as ledger:
            budget = Budget(limit * 100, spent_usd=ledger.total_usd())
            resumed = run_batch(
                endpoint, requests, cache=cache, ledger=ledger, budget=budget, backoff=FAST, progress=False
            )
            assert resumed.n_ok == 30 and not resumed.stopped_by_budget
            assert ledger.totals("session").cache_hits == batch.n_finished
    assert server.count() == 30


def test_budget_too_small_for_one_call_sends_nothing(scripted):
    server = scripted()
    batch = run_batch(
        make_endpoint(server, **EXPENSIVE),
        [ask("q"), ask("r")],
        budget=Budget(0.01),
        backoff=FAST,
        progress=False,
    )
    assert batch.n_finished == 0 and server.count() == 0
    assert "budget $0.0100" in batch[0].detail


def test_free_calls_fit_any_budget(scripted):
    server = scripted()
    endpoint = make_endpoint(server, price_in_per_m=0.0, price_out_per_m=0.0)
    batch = run_batch(endpoint, [ask("q")], budget=Budget(0.0), backoff=FAST, progress=False)
    assert batch.n_ok == 1


def test_reservation_waits_for_in_flight_calls_to_settle():
    async def scenario() -> list[str]:
        budget = Budget(1.0)
        first = budget.try_reserve(0.8)
        events = []

        async def second() -> None:
            reservation = await budget.reserve(0.5)  # does not fit while `first` holds 0.8
            events.append("second reserved")
            budget.settle(reservation, 0.2)

        task = asyncio.create_task(second())
        await asyncio.sleep(0.05)
        events.append("first settles")
        budget.settle(first, 0.1)
        await task
        with pytest.raises(BudgetExceeded):
            await budget.reserve(0.8)  # 0.3 spent + 0.8 > 1.0 with nothing in flight: no point waiting
        return events

    assert asyncio.run(scenario()) == ["first settles", "second reserved"]


def test_budget_exhausted_stays_exhausted():
    async def scenario() -> Budget:
        budget = Budget(1.0)
        with pytest.raises(BudgetExceeded):
            await budget.reserve(2.0)
        return budget

    budget = asyncio.run(scenario())
    assert budget.exhausted
    with pytest.raises(BudgetExceeded):
        budget.try_reserve(0.01)  # a run stops for good: no trickle of small calls after the cap
    budget.try_reserve(0.0)


def test_input_bound_covers_the_body():
    body = {"model": "m", "messages": [{"role": "user", "content": "héllo wörld"}]}
    assert max_input_tokens(body) >= len("héllo wörld".encode()) + 10
