"""Client-side RPM/TPM limits and the concurrency cap."""

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
    arrivals = sorted(s.arrived for s in server.seen)
    assert arrivals[-1] - arrivals[0] >= 0.85  # 10 gaps of 0.1 s (less connection-setup jitter)
    assert elapsed < 3


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
    async def scenario() -> tuple[float, float]:
        bucket = TokenBucket(rate_per_s=100, capacity=20)
        started = time.monotonic()
        await bucket.take(20)  # a full bucket: no wait
        await bucket.take(60)  # bigger than the bucket: waits for a full one (0.2 s), then runs 40 into debt
        mid = time.monotonic() - started
        await bucket.take(10)  # waits out the debt and its own 10 (0.5 s)
        return mid, time.monotonic() - started

    mid, end = asyncio.run(scenario())
    assert 0.18 <= mid < 0.4
    assert 0.68 <= end < 1.0
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
