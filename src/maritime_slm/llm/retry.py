"""Which server errors are worth another attempt, and how long to wait before it.

The `openai` client's own retry loop is switched off (max_retries=0) and the endpoint's `max_retries` is applied
here instead, so that every attempt is rate-limited, budgeted and written to the call log; the client's loop
would hide retried attempts (and what they cost) from the ledger.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time

import openai

from .request import FailureKind

RETRYABLE_STATUS = frozenset({408, 409, 429})
OUT_OF_QUOTA = "insufficient_quota: the API account is out of quota (see its plan and billing); not retried"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter; a server's Retry-After wins when it is longer (up to `max_retry_after_s`)."""

    base_s: float = 1.0
    max_s: float = 60.0
    jitter: float = 0.25
    max_retry_after_s: float = 120.0

    def delay(self, retry: int, retry_after_s: float | None = None) -> float:
        wait = min(self.max_s, self.base_s * 2**retry)
        wait *= 1.0 + self.jitter * (2.0 * random.random() - 1.0)
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, self.max_retry_after_s))
        return max(0.0, wait)


@dataclass(frozen=True)
class AttemptError:
    """A failed HTTP attempt: `error` is the log's fine-grained name, `kind` the result's failure kind."""

    error: str
    kind: FailureKind
    retryable: bool
    http_status: int | None = None
    retry_after_s: float | None = None
    note: str | None = None


def classify(exc: Exception) -> AttemptError:
    """Timeouts, connection errors, 429, 408/409 and 5xx are retried; other 4xx are final; an unparseable
    reply (garbage from a proxy) is retried as `bad_response`. A 429 `insufficient_quota` is no rate limit but an
    empty account: waiting does not refill it, so it is final."""
    if isinstance(exc, openai.APITimeoutError):
        return AttemptError("timeout", "timeout", True)
    if isinstance(exc, openai.APIConnectionError):
        return AttemptError("connection", "http_error", True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry_after = _retry_after_s(exc.response.headers)
        if status == 429 and "insufficient_quota" in (exc.code, exc.type):
            return AttemptError("insufficient_quota", "http_error", False, status, note=OUT_OF_QUOTA)
        if status == 429:
            return AttemptError("rate_limited", "http_error", True, status, retry_after)
        if status >= 500 or status in RETRYABLE_STATUS:
            return AttemptError("server_error", "http_error", True, status, retry_after)
        return AttemptError("client_error", "http_error", False, status)
    return AttemptError("bad_response", "http_error", True)


def _retry_after_s(headers: object) -> float | None:
    get = getattr(headers, "get", None)
    if get is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = get(name)
        if raw is None:
            continue
        try:
            return float(raw) / scale
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(raw).timestamp() - time())
            except (TypeError, ValueError):
                return None
    return None
