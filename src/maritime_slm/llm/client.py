"""The one door to any model server: an async client over the official `openai.AsyncOpenAI`.

Per call: cache lookup -> concurrency slot -> budget reservation -> RPM/TPM limiter -> HTTP call (retried with
backoff on 429/5xx/timeouts/connection errors, never on a 429 `insufficient_quota`) -> log + cache commit ->
validation, with bounded re-asks when the reply is not usable. Every outcome is an `LLMResult`: failures are
recorded with a kind, never raised.
"""

from __future__ import annotations

import asyncio
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
import openai
from tqdm import tqdm

from ..config import ModelEndpoint
from .budget import (
    Budget,
    BudgetExceeded,
    Reservation,
    estimated_input_tokens,
    max_input_tokens,
    worst_case_usd,
)
from .cache import CachedResponse, RequestCache, request_key
from .formats import judge_reply, reask_messages, reasoning_cut_off, response_format
from .ledger import Ledger, cost_usd, endpoint_prices
from .ratelimit import RateLimiter
from .request import BatchResult, FailureKind, LLMRequest, LLMResult, Message, lanes
from .retry import Backoff, classify
from .secrets import Redactor, api_key_for

T = TypeVar("T")
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5(?!-chat))")


def is_reasoning_model(endpoint: ModelEndpoint) -> bool:
    """o-series (and gpt-5) models take `reasoning_effort` and `max_completion_tokens`, and reject `temperature`."""
    return bool(_REASONING_MODEL.match(endpoint.model)) or endpoint.reasoning_effort is not None


def chat_body(
    endpoint: ModelEndpoint, messages: list[Message], request: LLMRequest, max_tokens: int
) -> dict[str, Any]:
    """The chat-completions body of a request; also what the cache key and the cost preview are computed from."""
    body: dict[str, Any] = {"model": endpoint.model, "messages": messages}
    if is_reasoning_model(endpoint):
        body["max_completion_tokens"] = max_tokens
        if endpoint.reasoning_effort:
            body["reasoning_effort"] = endpoint.reasoning_effort
    else:
        body["max_tokens"] = max_tokens
        temperature = request.temperature if request.temperature is not None else endpoint.temperature
        if temperature is not None:
            body["temperature"] = temperature
    if request.seed is not None:
        body["seed"] = request.seed
    if endpoint.local and endpoint.repeat_penalty is not None:
        body["extra_body"] = {"repeat_penalty": endpoint.repeat_penalty}
    fmt = response_format(endpoint.response_format, request.output)
    if fmt is not None:
        body["response_format"] = fmt
    return body


def first_request(endpoint: ModelEndpoint, request: LLMRequest) -> tuple[dict[str, Any], str]:
    """The body `LLMClient.complete` sends first for a request (before any re-ask), and its cache key."""
    max_tokens = request.max_tokens or endpoint.max_tokens
    body = chat_body(endpoint, [dict(m) for m in request.messages], request, max_tokens)
    return body, cache_key(endpoint, body, request)


def cache_key(endpoint: ModelEndpoint, body: Mapping[str, Any], request: LLMRequest) -> str:
    identity: dict[str, Any] = {"body": body, "sample": request.sample}
    if endpoint.local:
        identity["gguf"] = endpoint.local_gguf
    return request_key(identity)


@dataclass(frozen=True)
class _Failed:
    kind: FailureKind
    detail: str


class LLMClient:
    """One endpoint's client. Share one `RequestCache`, `Ledger` and `Budget` (or a `Budget.line` each) per run."""

    def __init__(
        self,
        endpoint: ModelEndpoint,
        *,
        cache: RequestCache | None = None,
        ledger: Ledger | None = None,
        budget: Budget | None = None,
        backoff: Backoff | None = None,
        max_reasks: int = 2,
        base_url: str | None = None,
    ):
        self.endpoint = endpoint
        self.base_url = base_url or endpoint.base_url
        if not self.base_url:
            raise ValueError(
                f"endpoint {endpoint.name!r} has no base_url: for a local model, start the server with "
                "`maritime_slm.llm.serving([endpoint])` and use the endpoint it yields"
            )
        self.cache = cache
        self.ledger = ledger
        self.budget = budget
        self.backoff = backoff or Backoff()
        self.max_reasks = max_reasks
        key = api_key_for(endpoint)
        self._redact = Redactor(key)
        urls = endpoint.replica_urls if endpoint.replica_urls and not base_url else [self.base_url]
        self._replicas = [
            openai.AsyncOpenAI(api_key=key, base_url=url, timeout=endpoint.timeout_s, max_retries=0)
            for url in urls
        ]
        self._slots = [asyncio.Semaphore(endpoint.concurrency) for _ in self._replicas]
        self._limiter = RateLimiter(endpoint.rpm, endpoint.tpm)
        self._inflight: dict[str, asyncio.Future[CachedResponse | _Failed]] = {}
        self._batch_paid: dict[str, LLMResult] = {}

    def __repr__(self) -> str:
        return f"LLMClient({self.endpoint.name!r}, model={self.endpoint.model!r}, base_url={self.base_url!r})"

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for replica in self._replicas:
            await replica.close()

    @property
    def api(self) -> openai.AsyncOpenAI:
        """The `openai` client of the endpoint's first server (the Batch API's files and batches)."""
        return self._replicas[0]

    # ------------------------------------------------------------------ one request
    async def complete(self, request: LLMRequest) -> LLMResult:
        """Ask, validate, re-ask up to `max_reasks` times on invalid/truncated/off-schema replies.

        A reasoning model cut off by max_tokens is not re-asked: it spent the budget on hidden reasoning, and a
        re-ask resends the whole context into the same budget.
        """
        result = LLMResult(ok=False, tag=request.tag)
        messages: list[Message] = [dict(m) for m in request.messages]
        max_tokens = request.max_tokens or self.endpoint.max_tokens
        for round_ in range(self.max_reasks + 1):
            body = self.request_body(messages, request, max_tokens)
            reply = await self._reply(body, request, result)
            if isinstance(reply, _Failed):
                return self._finish(result, reply.kind, reply.detail)
            result.text, result.finish_reason = reply.text, reply.finish_reason
            verdict = judge_reply(reply, request)
            if verdict.ok:
                result.ok, result.value = True, verdict.value
                return self._finish(result)
            if verdict.failure == "truncated" and is_reasoning_model(self.endpoint):
                return self._finish(result, "truncated", reasoning_cut_off(max_tokens, verdict.detail))
            if verdict.failure == "refusal" or round_ == self.max_reasks:
                return self._finish(result, verdict.failure, verdict.detail)
            result.reasks += 1
            messages = messages + reask_messages(reply, verdict, max_tokens)
        raise AssertionError("unreachable")

    def request_body(self, messages: list[Message], request: LLMRequest, max_tokens: int) -> dict[str, Any]:
        return chat_body(self.endpoint, messages, request, max_tokens)

    def first_call(self, request: LLMRequest) -> tuple[dict[str, Any], str]:
        """The body `complete` sends first for a request, and its cache key."""
        max_tokens = request.max_tokens or self.endpoint.max_tokens
        body = self.request_body([dict(m) for m in request.messages], request, max_tokens)
        return body, self._cache_key(body, request)

    def _cache_key(self, body: Mapping[str, Any], request: LLMRequest) -> str:
        return cache_key(self.endpoint, body, request)

    async def _reply(
        self, body: dict[str, Any], request: LLMRequest, result: LLMResult
    ) -> CachedResponse | _Failed:
        """From the cache, from an identical call already in flight, or from the server. A reply a batch has
        just brought into the cache counts as that batch's paid call, not as a cache hit."""
        key = self._cache_key(body, request)
        paid = self._batch_paid.pop(key, None)
        if paid is not None:
            _add_calls(result, paid)
        while (pending := self._inflight.get(key)) is not None:
            await asyncio.wait([pending])
            if not pending.cancelled():
                shared = pending.result()
                if isinstance(shared, CachedResponse):
                    self._record_cache_hit(request, key, result)
                return shared
        if self.cache is not None and (cached := self.cache.get(key)) is not None:
            if paid is None or not paid.ok:
                self._record_cache_hit(request, key, result)
            return cached
        future: asyncio.Future[CachedResponse | _Failed] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            reply = await self._send(body, key, request, result)
            future.set_result(reply)
            return reply
        finally:
            if not future.done():
                future.cancel()
            del self._inflight[key]

    def _record_cache_hit(self, request: LLMRequest, key: str, result: LLMResult) -> None:
        result.cache_hits += 1
        if self.ledger is not None:
            self.ledger.record("cache_hit", self.endpoint.name, request.tag, key=key[:16])

    async def _send(
        self, body: dict[str, Any], key: str, request: LLMRequest, result: LLMResult
    ) -> CachedResponse | _Failed:
        endpoint = self.endpoint
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
        worst_usd = worst_case_usd(body, max_tokens, endpoint.price_in_per_m, endpoint.price_out_per_m)
        rate_tokens = max_input_tokens(body) // 4 + max_tokens
        retry = 0
        while True:
            async with self._slots[request.replica % len(self._replicas)]:
                reservation: Reservation | None = None
                if self.budget is not None:
                    try:
                        reservation = await self.budget.reserve(worst_usd)
                    except BudgetExceeded as exc:
                        return _Failed("budget", str(exc))
                sent, started = False, time.monotonic()
                try:
                    await self._limiter.acquire(rate_tokens)
                    sent, started = True, time.monotonic()
                    server = self._replicas[request.replica % len(self._replicas)]
                    completion = await server.chat.completions.create(**body)
                    _check_has_message(completion)
                except Exception as exc:  # an APIError, or a reply the openai client cannot even parse
                    error = classify(exc)
                    detail = self._redact(f"{type(exc).__name__}: {exc}")
                    detail = (f"{error.note}: {detail}" if error.note else detail)[:300]
                    was_sent = not isinstance(exc.__cause__, httpx2.ConnectError | httpx2.ConnectTimeout)
                    # a request that timed out was probably processed and billed: charge its estimated input
                    estimated = error.error == "timeout" and was_sent
                    input_tokens = estimated_input_tokens(body) if estimated else 0
                    usd = cost_usd(input_tokens, 0, endpoint.price_in_per_m, endpoint.price_out_per_m)
                    self._settle(reservation, usd)
                    self._log_attempt(
                        request, key, retry, result, "error" if was_sent else "not_sent",
                        error=error.error, http_status=error.http_status, detail=detail, started=started,
                        input_tokens=input_tokens, usd=usd, usd_estimated=estimated or None,
                    )  # fmt: skip
                    if not (error.retryable and retry < endpoint.max_retries):
                        return _Failed(error.kind, detail)
                    delay = self.backoff.delay(retry, error.retry_after_s)
                    retry += 1
                except asyncio.CancelledError:
                    self._release(reservation)
                    if sent:
                        self._log_attempt(request, key, retry, result, "cancelled", started=started)
                    raise
                else:
                    return self._accept(
                        completion, body, key, request, retry, result, reservation, worst_usd, started
                    )
            await asyncio.sleep(delay)

    def _accept(
        self,
        completion: Any,
        body: Mapping[str, Any],
        key: str,
        request: LLMRequest,
        retry: int,
        result: LLMResult,
        reservation: Reservation | None,
        worst_usd: float,
        started: float,
        batch_id: str | None = None,
    ) -> CachedResponse:
        """Settle, log, then commit to the cache (so every cached reply has its paid attempt in the log).
        A Batch API reply (`batch_id`) is priced at the endpoint's batch prices."""
        usage = getattr(completion, "usage", None)
        input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        cached_tokens = _usage_detail(usage, "prompt_tokens_details", "cached_tokens")
        reasoning_tokens = _usage_detail(usage, "completion_tokens_details", "reasoning_tokens")
        prices = endpoint_prices(self.endpoint, batch=batch_id is not None)
        usd = prices.usd(input_tokens, output_tokens, cached_tokens)
        if usage is None:
            usd = worst_usd  # a server that reports no usage is charged its worst case, never zero
        self._settle(reservation, usd)
        choice = completion.choices[0]
        reply = CachedResponse(
            text=choice.message.content,
            finish_reason=choice.finish_reason,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            refusal=getattr(choice.message, "refusal", None),
        )
        self._log_attempt(
            request, key, retry, result, "ok", finish_reason=reply.finish_reason,
            input_tokens=input_tokens, output_tokens=output_tokens, usd=usd, started=started,
            cached_input_tokens=cached_tokens, reasoning_tokens=reasoning_tokens,
            served_model=getattr(completion, "model", None),
            system_fingerprint=getattr(completion, "system_fingerprint", None), batch_id=batch_id,
        )  # fmt: skip
        if self.cache is not None:
            self.cache.put(key, str(body["model"]), reply)
        return reply

    # ------------------------------------------------------------------ Batch API lines (see .batch)
    def accept_batch_reply(
        self, completion: Any, body: Mapping[str, Any], key: str, request: LLMRequest, batch_id: str
    ) -> float:
        """A Batch API line's chat completion, handled as a sync reply: logged at batch prices, then cached; the
        request's next `complete` reads it from the cache and counts this paid call. Returns its USD.
        Raises BadReply for a line without a message (nothing is logged or cached then)."""
        _check_has_message(completion)
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
        prices = endpoint_prices(self.endpoint, batch=True)
        worst_usd = worst_case_usd(body, max_tokens, prices.in_per_m, prices.out_per_m)
        paid = LLMResult(ok=True, tag=request.tag)
        self._accept(completion, body, key, request, 0, paid, None, worst_usd, time.monotonic(), batch_id)
        usd = paid.usd
        if (earlier := self._batch_paid.get(key)) is not None:
            _add_calls(paid, earlier)
        self._batch_paid[key] = paid
        return usd

    def record_batch_error(
        self,
        request: LLMRequest,
        key: str,
        batch_id: str,
        *,
        ran: bool,
        error: str,
        detail: str,
        http_status: int | None = None,
    ) -> None:
        """A Batch API line without a reply: one the server ran and refused (`ran`, an attempt like a sync error),
        or one it never ran (expired, cancelled: not sent)."""
        paid = self._batch_paid.setdefault(key, LLMResult(ok=False, tag=request.tag))
        self._log_attempt(
            request, key, 0, paid, "error" if ran else "not_sent", started=time.monotonic(), error=error,
            http_status=http_status, detail=self._redact(detail)[:300], batch_id=batch_id,
        )  # fmt: skip

    def fail(self, request: LLMRequest, kind: FailureKind, detail: str) -> LLMResult:
        """The outcome of a request that ends without a sync call (its batch failed or expired, or the budget
        refused it), with what its batch lines cost."""
        result = LLMResult(ok=False, tag=request.tag)
        paid = self._batch_paid.pop(self.first_call(request)[1], None)
        if paid is not None:
            _add_calls(result, paid)
        return self._finish(result, kind, detail)

    def _release(self, reservation: Reservation | None) -> None:
        if reservation is not None and self.budget is not None:
            self.budget.release(reservation)

    def _settle(self, reservation: Reservation | None, usd: float) -> None:
        if reservation is not None and self.budget is not None:
            self.budget.settle(reservation, usd)

    def _log_attempt(
        self,
        request: LLMRequest,
        key: str,
        retry: int,
        result: LLMResult,
        status: str,
        *,
        started: float,
        error: str | None = None,
        http_status: int | None = None,
        detail: str | None = None,
        finish_reason: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        usd: float = 0.0,
        usd_estimated: bool | None = None,
        cached_input_tokens: int = 0,
        reasoning_tokens: int = 0,
        served_model: str | None = None,
        system_fingerprint: str | None = None,
        batch_id: str | None = None,
    ) -> None:
        if status != "not_sent":
            result.calls += 1
            result.input_tokens += input_tokens
            result.output_tokens += output_tokens
            result.usd += usd
        if self.ledger is None:
            return
        self.ledger.record(
            "attempt" if status != "not_sent" else "not_sent",
            self.endpoint.name,
            request.tag,
            model=self.endpoint.model,
            served_model=served_model,
            system_fingerprint=system_fingerprint,
            key=key[:16],
            retry=retry,
            status=status,
            error=error,
            http_status=http_status,
            detail=detail,
            finish_reason=finish_reason,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached_input_tokens,
            reasoning_tokens=reasoning_tokens,
            usd=usd,
            usd_estimated=usd_estimated,
            latency_s=None if batch_id else round(time.monotonic() - started, 4),
            batch_id=batch_id,
        )

    def _finish(self, result: LLMResult, failure: FailureKind | None = None, detail: str = "") -> LLMResult:
        result.failure, result.detail = failure, self._redact(detail)
        if self.ledger is not None:
            self.ledger.record(
                "outcome",
                self.endpoint.name,
                result.tag,
                status="ok" if result.ok else "failure",
                failure=failure,
                detail=result.detail or None,
                calls=result.calls,
                cache_hits=result.cache_hits,
                reasks=result.reasks,
            )
        return result

    # ------------------------------------------------------------------ many requests
    async def run_batch(
        self,
        requests: Iterable[LLMRequest],
        *,
        progress: bool = True,
        desc: str | None = None,
        on_result: Callable[[int, LLMResult], None] | None = None,
        timed: bool = False,
    ) -> BatchResult:
        """Run requests concurrently (up to the endpoint's concurrency per replica, a snapshot's requests on one
        replica: `lanes`); results in request order.

        `timed`: exactly `concurrency` requests in flight per replica, each replica asking its own lane in order,
        so nothing queues inside the client and each result's `latency_s` is that request's own time (what a
        speed table may add up). A budget stop is not an error: the requests it could not send come back as
        `budget` failures and `BatchResult.summary()` says how far the batch got.
        """
        requests = list(requests)
        replicas = len(self._replicas)
        if timed:
            queues = (
                [iter(lane) for lane in lanes(requests, replicas)]
                if replicas > 1
                else [iter(enumerate(requests))]
            )
            workers = [queue for queue in queues for _ in range(self.endpoint.concurrency)]
        else:
            if replicas > 1:
                requests = [r for _, r in sorted(i_r for lane in lanes(requests, replicas) for i_r in lane)]
            shared = iter(enumerate(requests))
            workers = [shared] * (2 * self.endpoint.concurrency * replicas + 2)
        workers = workers[: max(1, len(requests))]
        results: list[LLMResult | None] = [None] * len(requests)
        started = time.monotonic()
        bar = tqdm(
            total=len(requests),
            desc=desc or self.endpoint.name,
            disable=not progress,
            file=sys.stderr,
            mininterval=0.5,
        )
        failed = 0

        async def worker(pending: Iterator[tuple[int, LLMRequest]]) -> None:
            nonlocal failed
            for index, request in pending:
                sent = time.monotonic()
                result = await self.complete(request)
                if timed:
                    result.latency_s = time.monotonic() - sent
                results[index] = result
                failed += not result.ok
                bar.update(1)
                if failed:
                    bar.set_postfix(failed=failed, refresh=False)
                if on_result is not None:
                    on_result(index, result)

        try:
            async with asyncio.TaskGroup() as group:
                for pending in workers:
                    group.create_task(worker(pending))
        finally:
            bar.close()
            if self.ledger is not None:
                self.ledger.write_csv()
        done = [r for r in results if r is not None]
        return BatchResult(done, elapsed_s=time.monotonic() - started, endpoint=self.endpoint.name)


class BadReply(ValueError):
    """A 200 reply that is not a chat completion (no choices, no message): treated like garbage, retried."""


def _add_calls(result: LLMResult, paid: LLMResult) -> None:
    result.calls += paid.calls
    result.input_tokens += paid.input_tokens
    result.output_tokens += paid.output_tokens
    result.usd += paid.usd


def _usage_detail(usage: Any, group: str, field: str) -> int:
    """A count from OpenAI's usage details (cached input, reasoning tokens); 0 where a server sends none."""
    return int(getattr(getattr(usage, group, None), field, 0) or 0)


def _check_has_message(completion: Any) -> None:
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices or getattr(choices[0], "message", None) is None:
        raise BadReply(f"reply without a message: {str(completion)[:120]}")


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, also where an event loop already runs (Jupyter): then in
    a worker thread with its own loop; Ctrl-C (a kernel interrupt) cancels it there and is re-raised here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_as_coroutine(make))
    box: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> T:
        box["loop"], box["task"] = asyncio.get_running_loop(), asyncio.current_task()
        ready.set()
        return await make()

    def target() -> None:
        try:
            box["value"] = asyncio.run(main())
        except BaseException as exc:
            box["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=target, name="maritime-slm-llm", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:
        ready.wait()
        if "loop" in box:
            box["loop"].call_soon_threadsafe(box["task"].cancel)
        thread.join()
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


async def _as_coroutine(make: Callable[[], Awaitable[T]]) -> T:
    return await make()
