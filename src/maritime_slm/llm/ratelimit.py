"""Client-side RPM/TPM limits, so a run stays under the provider's limits instead of living on 429 retries.

A token bucket per limit. The request bucket holds one request by default (calls are spaced evenly at the
limit; no burst) so the measured rate never exceeds the limit; the token bucket holds one second's worth and may
go into debt for a request larger than that, which later requests then wait out.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """`rate_per_s` units refill per second up to `capacity`; `take(n)` waits until n (capped at capacity) are in."""

    def __init__(self, rate_per_s: float, capacity: float):
        if rate_per_s <= 0 or capacity <= 0:
            raise ValueError("rate_per_s and capacity must be positive")
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self._level = capacity
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._level = min(self.capacity, self._level + (now - self._updated) * self.rate_per_s)
        self._updated = now

    async def take(self, amount: float = 1.0) -> float:
        """Wait for `amount` units; returns the seconds waited. Waiters are served first come, first served."""
        async with self._lock:
            self._refill()
            need = min(amount, self.capacity)
            delay = max(0.0, (need - self._level) / self.rate_per_s)
            if delay > 0:
                await asyncio.sleep(delay)
                # Book the refill at the planned time, not the (later) wake-up: oversleeping then counts as credit
                # for the next caller instead of being lost to the cap, so the long-run rate stays at the limit.
                self._level, self._updated = need, self._updated + delay
            self._level -= amount
        return delay


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits of one endpoint (either may be None)."""

    def __init__(self, rpm: int | None = None, tpm: int | None = None, burst_requests: float = 1.0):
        self.requests = TokenBucket(rpm / 60.0, max(1.0, burst_requests)) if rpm else None
        self.tokens = TokenBucket(tpm / 60.0, tpm / 60.0) if tpm else None

    async def acquire(self, tokens: int) -> float:
        waited = 0.0
        if self.requests is not None:
            waited += await self.requests.take(1.0)
        if self.tokens is not None:
            waited += await self.tokens.take(float(tokens))
        return waited
