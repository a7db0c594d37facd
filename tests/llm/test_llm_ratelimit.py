"""Client-side RPM/TPM limits and the concurrency cap.

Wall-clock bounds must hold on a loaded machine: a limiter can only make a run slower, so lower bounds are exact,
and upper bounds leave seconds of slack but still catch a limiter that waits for far more than it needs.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from llm_helpers import FAST, ask, make_endpoint

from maritime_slm.llm import ratelimit, run_batch
from maritime_slm.llm.ratelimit import RateLimiter, TokenBucket


def test_rpm_limit_spaces_requests(scripted):
    server = scripted()
    endpoint = make_endpoint(server, rpm=600, concurrency=8)  # 10 requests/s
    started = time.monotonic()
    batch = run_batch(endpoint, [ask(f"q{i}") for i in range(11)], backoff=FAST, progress=False)
    elapsed = time.monotonic() - started
    assert batch.n_ok == 11
    # the limiter is made after `started` and lets 1 + 10 requests through by 1.0 s after it
    assert max(s.arrived for s in server.seen) - started >= 0.999
    assert elapsed < 5  # a limit misread as 1 request/s would take 10 s


def test_concurrency_caps_requests_in_flight(scripted):
    server = scripted(latency_s=0.1)
    run_batch(
        make_endpoint(server, concurrency=3), [ask(f"q{i}") for i in range(12)], backoff=FAST, progress=False
    )
    events = sorted([(s.arrived, 1) for s in server.seen] + [(s.answered, -1) for s in server.seen])
    in_flight, peak = 0, 0
    for _, step in events:
        in_flight += step
        peak = max(peak, in_flight)
    assert peak == 3


def test_token_bucket_waits_for_tokens_and_allows_debt():
    async def scenario() -> tuple[list[float], float, float]:
        bucket = TokenBucket(rate_per_s=100, capacity=20)
        started = time.monotonic()
        waits = [await bucket.take(20)]  # a full bucket: no wait
        waits.append(await bucket.take(60))  # over capacity: waits for a full bucket (0.2 s), 40 into debt
        mid = time.monotonic() - started
        waits.append(await bucket.take(10))  # waits out the debt and its own 10 (0.5 s)
        return waits, mid, time.monotonic() - started

    waits, mid, end = asyncio.run(scenario())
    assert 0.199 <= mid < 1.2 and 0.699 <= end < 2.0
    # the planned waits, free of scheduling noise: never more than the bucket needs (0.6 s for all 60 would be)
    assert waits[0] == 0.0 and waits[1] <= 0.2 + 1e-6 and waits[2] <= 0.5 + 1e-6
    limiter = RateLimiter(rpm=120, tpm=6000)
    assert limiter.tokens is not None and limiter.tokens.capacity == 100
    assert limiter.requests is not None and limiter.requests.rate_per_s == 2


def test_token_bucket_keeps_its_rate_when_sleeps_overshoot(monkeypatch):
    """Each sleep wakes 30 % late (a busy event loop): the late part is credit, not lost to the bucket's cap."""
    clock = [0.0]

    async def late_sleep(seconds: float) -> None:
        clock[0] += seconds * 1.3

    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(ratelimit, "asyncio", SimpleNamespace(sleep=late_sleep, Lock=asyncio.Lock))

    async def scenario() -> float:
        bucket = TokenBucket(rate_per_s=100, capacity=1)
        for _ in range(101):
            await bucket.take(1)
        return clock[0]

    assert asyncio.run(scenario()) == pytest.approx(1.0, abs=0.02)  # 100 gaps of 10 ms
