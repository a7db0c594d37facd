"""Failure thresholds for model calls: a stage whose teacher, editor or judge mostly fails must fail loudly.

A failed request is recorded, never raised, so without a threshold a run whose teacher is down (or out of quota)
would quietly produce a dataset without that teacher. `FailureWatch` sees every result as it arrives and stops
the batch at the first fatal error (authentication, quota, a server never reached) or as soon as the failed share
can no longer stay under the endpoint's `max_failed_share` / `max_invalid_share`. Replies that succeeded are
already in the request cache by then, so a re-run pays only for the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..config import ModelEndpoint
from .request import LLMResult

NO_REPLY = frozenset({"http_error", "timeout"})
UNUSABLE = frozenset({"invalid_json", "truncated", "schema_error", "refusal"})
_FATAL = re.compile(
    r"insufficient_quota|invalid_api_key|AuthenticationError|PermissionDeniedError|Error code: 40[13]\b"
)
T = TypeVar("T")
_UNREACHABLE = re.compile(r"APIConnectionError|ConnectError|Connection refused")


class ModelCallsFailed(RuntimeError):
    """Too many of one model's requests failed, or one failed in a way no retry can fix."""


def endpoint_label(base_url: str | None) -> str:
    """The endpoint's URL without any user:password part (a message may show it; a key never)."""
    if not base_url:
        return "(local server)"
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class FailureWatch:
    """Run a batch through `FailureWatch(...).run(run_batch, ...)`: raises ModelCallsFailed when it must stop.

    `then` is the caller's own `on_result`, called first so that a result is kept before the batch stops.
    """

    def __init__(
        self, endpoint: ModelEndpoint, role: str, total: int, then: Callable[..., None] | None = None
    ):
        self.endpoint = endpoint
        self.role = role
        self.total = total
        self.then = then
        self.ok = self.no_reply = self.unusable = 0
        self.first_error = ""

    def run(self, batch: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`batch(*args, on_result=self, **kwargs)`; a ModelCallsFailed leaves the batch's task group as itself.

        It is raised outside the `except` block so that it carries no exception group as its context (IPython
        then shows it as a plain error, and papermill reports its message).
        """
        try:
            return batch(*args, on_result=self, **kwargs)
        except BaseExceptionGroup as group:
            found = group.subgroup(ModelCallsFailed)
            if found is None:
                raise
            while isinstance(found, BaseExceptionGroup):
                found = found.exceptions[0]
        raise found

    def __call__(self, index: int, result: LLMResult, *rest: object) -> None:
        if self.then is not None:
            self.then(index, result, *rest)
        if result.ok:
            self.ok += 1
            return
        if result.failure in NO_REPLY:
            self.no_reply += 1
        elif result.failure in UNUSABLE:
            self.unusable += 1
        else:
            return
        self.first_error = self.first_error or f"{result.failure}: {result.detail}"[:300]
        if _FATAL.search(result.detail):
            self._fail(f"a fatal error (no retry can fix it): {result.detail[:300]}")
        if result.failure in NO_REPLY and not self.ok and _UNREACHABLE.search(result.detail):
            self._fail(f"the server was never reached: {result.detail[:300]}")
        self._check_shares()

    def _check_shares(self) -> None:
        limits = (
            (self.no_reply, self.endpoint.max_failed_share, "got no reply", "max_failed_share"),
            (self.unusable, self.endpoint.max_invalid_share, "stayed unusable", "max_invalid_share"),
        )
        for count, share, what, key in limits:
            if share < 1 and count > share * self.total:
                self._fail(
                    f"{count} of {self.total} requests {what}, more than its {key} of {share:.0%} allows; "
                    f"first error: {self.first_error}"
                )

    def _fail(self, why: str) -> None:
        raise ModelCallsFailed(
            f"{self.role} '{self.endpoint.name}' (model {self.endpoint.model} at "
            f"{endpoint_label(self.endpoint.base_url)}): {why.rstrip('.')}. The {self.ok} replies that succeeded are "
            "cached, so a re-run pays only for the rest."
        )
