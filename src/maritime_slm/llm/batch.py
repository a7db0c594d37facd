"""Running one model's requests: concurrent sync calls, or OpenAI's Batch API when the endpoint says `batch: true`
(half the price, a rate-limit pool of its own, results within the 24 h completion window).

`run_batch` is what generation (teachers), ARF revision (editor) and the judge call; the endpoint's switch picks the
way. In batch mode:

1. a request whose reply is in the request cache is not sent; one held by a batch still open from an earlier,
   killed run is not submitted again: that batch is retrieved by its id (`batches.sqlite` beside the cache);
2. the others are written as JSONL, one line per distinct request with `custom_id` = its cache key, uploaded
   (`files.create(purpose="batch")`) and submitted (`batches.create`) in batches of at most `batch.max_requests`
   lines and `batch.max_file_mb`, as many as the budget left covers at their worst case (the input bound of
   `budget.worst_case_usd` plus `max_tokens` outputs, at batch prices); the rest waits for open batches to settle,
   and when none is open the budget refuses it, in one line;
3. the uploaded file is recorded before its batch is created, and the batch id before it is polled, so a killed
   run finds its batches again (a batch whose id was lost with the kill is found by its input file);
4. open batches are polled every `batch.poll_s` seconds under a progress bar; an ended batch's replies are logged
   at batch prices and committed to the same cache and ledger as sync replies (`LLMClient.accept_batch_reply`);
5. every request then goes through `LLMClient.run_batch`, so a batch reply is read from the cache and validated
   exactly as a sync reply (the rare re-ask of an unusable reply is a sync call).

A line without a reply: a retryable error (429 rate limit, 5xx, 408/409) is sent again as a sync call, where
the client's retries and backoff apply (such errors are rare; a new batch would add up to 24 h for them); any
other error ends as that failure, as it would in sync mode. An expired line (it never ran) is submitted in a new
batch, up to `batch.max_submissions` batches per run, and then fails: the sync price is never paid silently for
what the batch queue could not fit. A failed batch (its file refused, an enqueued-token limit) or a cancelled one
ends its requests as failures with the batch's errors; a re-run submits them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import openai
from openai.types import Batch
from openai.types.chat import ChatCompletion
from pydantic import ValidationError
from tqdm import tqdm

from ..config import ModelEndpoint
from .budget import Budget, BudgetExceeded, Reservation, worst_case_usd
from .cache import RequestCache
from .client import BadReply, LLMClient, run_sync
from .ledger import Ledger, endpoint_prices
from .request import BatchResult, FailureKind, LLMRequest, LLMResult
from .retry import OUT_OF_QUOTA, RETRYABLE_STATUS, Backoff, classify

T = TypeVar("T")
STORE_NAME = "batches.sqlite"
ENDPOINT = "/v1/chat/completions"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
MB = 1_000_000


def run_batch(
    endpoint: ModelEndpoint,
    requests: Iterable[LLMRequest],
    *,
    cache: RequestCache | None = None,
    ledger: Ledger | None = None,
    budget: Budget | None = None,
    backoff: Backoff | None = None,
    max_reasks: int = 2,
    progress: bool = True,
    desc: str | None = None,
    on_result: Callable[[int, LLMResult], None] | None = None,
    timed: bool = False,
) -> BatchResult:
    """The endpoint's requests, results in request order: through OpenAI's Batch API when `endpoint.batch` is on,
    else concurrent sync calls (`LLMClient.run_batch`). Blocking; works inside Jupyter's running loop. `timed`
    (answers whose latency is measured) always calls synchronously, nothing queued in the client.

    Without a `cache`, batch mode reads its replies back through a temporary one (and cannot resume)."""

    async def go() -> BatchResult:
        with contextlib.ExitStack() as stack:
            use = cache
            if endpoint.batch.enabled and not timed and cache is None:
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="maritime-slm-batch-"))
                use = stack.enter_context(RequestCache(Path(folder) / "cache.sqlite"))
            async with LLMClient(
                endpoint, cache=use, ledger=ledger, budget=budget, backoff=backoff, max_reasks=max_reasks
            ) as client:
                if endpoint.batch.enabled and not timed:
                    runner = BatchRunner(client, progress=progress, desc=desc)
                    return await runner.run(requests, on_result=on_result)
                return await client.run_batch(
                    requests, progress=progress, desc=desc, on_result=on_result, timed=timed
                )

    return run_sync(go)


# ---------------------------------------------------------------- what survives a kill
@dataclass(frozen=True)
class StoredBatch:
    file_id: str
    batch_id: str | None
    worst_usd: float
    created_at: float
    tags: dict[str, str]


class BatchStore:
    """The batches a run folder has submitted and not yet read back: SQLite, one autocommitted row per step."""

    _SCHEMA = (
        """CREATE TABLE IF NOT EXISTS batches (
            file_id TEXT PRIMARY KEY, batch_id TEXT, endpoint TEXT NOT NULL, model TEXT NOT NULL,
            worst_usd REAL NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL, closed_at REAL)""",
        """CREATE TABLE IF NOT EXISTS lines (
            file_id TEXT NOT NULL, key TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (file_id, key))""",
    )

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        for statement in self._SCHEMA:
            self._conn.execute(statement)

    def uploaded(self, file_id: str, endpoint: ModelEndpoint, worst_usd: float, tags: dict[str, str]) -> None:
        """An input file is uploaded; its batch may be created at any moment now."""
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.execute(
                "INSERT INTO batches VALUES (?, NULL, ?, ?, ?, 'uploaded', ?, NULL)",
                (file_id, endpoint.name, endpoint.model, worst_usd, time.time()),
            )
            self._conn.executemany(
                "INSERT INTO lines VALUES (?, ?, ?)", [(file_id, key, tag) for key, tag in tags.items()]
            )
            self._conn.execute("COMMIT")

    def created(self, file_id: str, batch_id: str) -> None:
        self._set(file_id, "UPDATE batches SET batch_id = ?, status = 'open' WHERE file_id = ?", batch_id)

    def closed(self, file_id: str, status: str) -> None:
        """Its replies are in the cache and the ledger."""
        with self._lock:
            self._conn.execute(
                "UPDATE batches SET status = ?, closed_at = ? WHERE file_id = ?",
                (status, time.time(), file_id),
            )

    def never_created(self, file_id: str) -> None:
        self._set(file_id, "UPDATE batches SET status = ? WHERE file_id = ?", "never_created")

    def open_for(self, endpoint: ModelEndpoint) -> list[StoredBatch]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT file_id, batch_id, worst_usd, created_at FROM batches "
                "WHERE endpoint = ? AND model = ? AND status IN ('uploaded', 'open') ORDER BY created_at",
                (endpoint.name, endpoint.model),
            ).fetchall()
            found = []
            for file_id, batch_id, worst_usd, created_at in rows:
                lines = self._conn.execute("SELECT key, tag FROM lines WHERE file_id = ?", (file_id,))
                found.append(StoredBatch(file_id, batch_id, worst_usd, created_at, dict(lines.fetchall())))
        return found

    def _set(self, file_id: str, sql: str, value: str) -> None:
        with self._lock:
            self._conn.execute(sql, (value, file_id))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# ---------------------------------------------------------------- one run of the Batch API
class BatchAPIError(RuntimeError):
    """The Batch API could not be reached for an open batch; the batch stays recorded for a re-run."""


@dataclass
class _Open:
    file_id: str
    batch_id: str
    tags: dict[str, str]
    reservation: Reservation | None
    batch: Batch | None = None
    done: int = 0


@dataclass
class _Tally:
    ok: int = 0
    failed: int = 0
    expired: int = 0
    usd: float = 0.0
    first_error: str = ""
    counted: set[str] = field(default_factory=set)


class BatchRunner:
    """One `run_batch` call in batch mode, over an `LLMClient` (its cache, ledger, budget, backoff)."""

    def __init__(self, client: LLMClient, *, progress: bool = True, desc: str | None = None):
        endpoint = client.endpoint
        if client.cache is None:
            raise ValueError(
                f"endpoint {endpoint.name!r}: batch mode needs a RequestCache (batch replies are read back "
                "through it, and a resumed run finds them there)"
            )
        self.client, self.endpoint, self.mode, self.cache = client, endpoint, endpoint.batch, client.cache
        self.budget = client.budget
        self.prices = endpoint_prices(endpoint, batch=True)
        self.store = BatchStore(self.cache.path.with_name(STORE_NAME))
        self.progress, self.desc = progress, desc
        self.ended: dict[str, tuple[FailureKind, str]] = {}
        self.to_sync: set[str] = set()
        self.expired: Counter[str] = Counter()
        self.open: list[_Open] = []
        self.stopped: str | None = None
        self.read_lines = 0
        self.bar = tqdm(
            total=0,
            desc=desc or f"batch {endpoint.name}",
            unit="req",
            disable=not progress,
            file=sys.stderr,
            mininterval=0.5,
        )

    async def run(
        self, requests: Iterable[LLMRequest], *, on_result: Callable[[int, LLMResult], None] | None = None
    ) -> BatchResult:
        started = time.monotonic()
        requests = list(requests)
        keys = [self.client.first_call(r)[1] for r in requests]
        todo: dict[str, tuple[LLMRequest, dict[str, Any]]] = {}
        for request in requests:
            body, key = self.client.first_call(request)
            todo.setdefault(key, (request, body))
        try:
            await self._resume(todo)
            while True:
                if self.stopped is None:
                    await self._submit_pending(todo)
                if not self.open:
                    break
                for item in await self._poll():
                    await self._collect(item, todo)
                    self.open.remove(item)
            if self.stopped is not None:  # what the failed submission left unsent is not sent sync either
                for key in todo:
                    if key not in self.ended and key not in self.to_sync and key not in self.cache:
                        self.ended[key] = ("http_error", self.stopped)
        except openai.APIError as exc:
            raise BatchAPIError(
                f"{self.endpoint.name}: the Batch API stopped answering ({type(exc).__name__}: {exc}); the open "
                f"batches are kept in {self.store.path}, and a re-run resumes them"
            ) from None
        finally:
            self.bar.close()
            self.store.close()
        return await self._results(requests, keys, on_result, started)

    # ------------------------------------------------------------------ submit
    async def _submit_pending(self, todo: dict[str, tuple[LLMRequest, dict[str, Any]]]) -> None:
        held = {key for item in self.open for key in item.tags}
        pending = [
            key
            for key in todo
            if key not in self.ended and key not in self.to_sync and key not in held and key not in self.cache
        ]
        if not pending:
            return
        left = self.budget.remaining_usd if self.budget is not None else float("inf")
        max_bytes = int(self.mode.max_file_mb * MB)
        chunks: list[list[tuple[str, bytes, float]]] = [[]]
        size, total = 0, 0.0
        taken = 0
        for key in pending:
            request, body = todo[key]
            line = {"custom_id": key, "method": "POST", "url": ENDPOINT, "body": body}
            data = (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
            cost = self._worst_usd(body)
            if total + cost > left:
                break
            taken += 1
            if len(data) > max_bytes:
                self.ended[key] = ("http_error", f"request of {len(data)} bytes exceeds a batch file's limit")
                continue
            if len(chunks[-1]) >= self.mode.max_requests or size + len(data) > max_bytes:
                chunks.append([])
                size = 0
            chunks[-1].append((key, data, cost))
            size += len(data)
            total += cost
        waiting = pending[taken:]
        if waiting and not self.open and not chunks[0]:
            worst = sum(self._worst_usd(todo[key][1]) for key in waiting)
            line = (
                f"{self.endpoint.name}: budget refuses the Batch API submission of {len(waiting)} requests: their "
                f"worst case at batch prices is ${worst:.4f} (input bound + max_tokens outputs) and "
                f"${left:.4f} is left"
            )
            self._say(line)
            for key in waiting:
                self.ended[key] = ("budget", line)
        elif waiting:
            self._say(
                f"{self.endpoint.name}: {len(waiting)} requests wait for the open batches to settle: the budget "
                f"left (${left:.4f}) covers only the worst case of those submitted now"
            )
        for chunk in chunks:
            if chunk and self.stopped is None:
                await self._submit(chunk, todo)

    def _worst_usd(self, body: dict[str, Any]) -> float:
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
        return worst_case_usd(body, max_tokens, self.prices.in_per_m, self.prices.out_per_m)

    async def _submit(
        self, chunk: list[tuple[str, bytes, float]], todo: dict[str, tuple[LLMRequest, dict[str, Any]]]
    ) -> None:
        keys = [key for key, _, _ in chunk]
        worst = sum(cost for _, _, cost in chunk)
        reservation: Reservation | None = None
        if self.budget is not None:
            try:
                reservation = self.budget.try_reserve(worst)
            except BudgetExceeded as exc:
                for key in keys:
                    self.ended[key] = ("budget", str(exc))
                return
        api = self.client.api
        data = b"".join(line for _, line, _ in chunk)
        name = f"{self.endpoint.name}-{len(keys)}.jsonl"
        try:
            upload = await self._call(
                lambda: api.files.create(file=(name, data, "application/jsonl"), purpose="batch")
            )
            self.store.uploaded(upload.id, self.endpoint, worst, {key: todo[key][0].tag for key in keys})
            batch = await self._create(upload.id, time.time())
        except openai.APIError as exc:
            self._release(reservation)
            error = classify(exc)
            detail = f"Batch API submission failed: {type(exc).__name__}: {exc}"
            detail = f"{error.note}: {detail}" if error.note else detail
            self.stopped = detail[:300]
            self._say(f"{self.endpoint.name}: {self.stopped}")
            for key in keys:
                self.ended[key] = (error.kind, self.stopped)
            return
        self.store.created(upload.id, batch.id)
        self.open.append(_Open(upload.id, batch.id, {k: todo[k][0].tag for k in keys}, reservation, batch))
        self.bar.total += len(keys)
        self.bar.refresh()
        self._say(
            f"{self.endpoint.name}: batch {batch.id} submitted: {len(keys)} requests, worst case ${worst:.4f} at "
            f"batch prices"
        )

    async def _create(self, file_id: str, since: float) -> Batch:
        """`batches.create`, retried only where it surely did not happen: after a timeout or a lost connection
        the batch may exist, and is looked up by its input file before another is created."""
        api = self.client.api
        retry = 0
        while True:
            try:
                return await api.batches.create(
                    input_file_id=file_id,
                    endpoint=ENDPOINT,
                    completion_window=self.mode.completion_window,
                    metadata={"maritime_slm_endpoint": self.endpoint.name[:512]},
                )
            except openai.APIError as exc:
                error = classify(exc)
                if not isinstance(exc, openai.APIStatusError):
                    found = await self._find(file_id, since)
                    if found is not None:
                        return found
                if not error.retryable or retry >= self.endpoint.max_retries:
                    if isinstance(exc, openai.APIStatusError):
                        self.store.never_created(file_id)
                    raise
                await asyncio.sleep(self.client.backoff.delay(retry, error.retry_after_s))
                retry += 1

    async def _find(self, file_id: str, since: float) -> Batch | None:
        """The batch created from an input file, from the newest batches back to an hour before `since`."""
        async for batch in self.client.api.batches.list(limit=100):
            if batch.input_file_id == file_id:
                return batch
            if batch.created_at < since - 3600:
                break
        return None

    # ------------------------------------------------------------------ resume
    async def _resume(self, todo: dict[str, tuple[LLMRequest, dict[str, Any]]]) -> None:
        untouched = []
        for stored in self.store.open_for(self.endpoint):
            if not any(key in todo for key in stored.tags):
                untouched.append(stored.batch_id or stored.file_id)
                continue
            batch_id = stored.batch_id
            if batch_id is None:
                found = await self._call(lambda s=stored: self._find(s.file_id, s.created_at))
                if found is None:
                    self.store.never_created(stored.file_id)
                    continue
                batch_id = found.id
                self.store.created(stored.file_id, batch_id)
            self.open.append(
                _Open(stored.file_id, batch_id, stored.tags, self._reserve_resumed(stored.worst_usd))
            )
            self.bar.total += len(stored.tags)
            self._say(
                f"{self.endpoint.name}: resuming batch {batch_id} ({len(stored.tags)} requests) submitted by an "
                "earlier run"
            )
        if untouched:
            self._say(
                f"{self.endpoint.name}: {len(untouched)} open batch(es) hold none of these requests and stay open: "
                f"{', '.join(untouched[:5])} (in {self.store.path})"
            )

    def _reserve_resumed(self, worst_usd: float) -> Reservation | None:
        """An open batch will be paid whatever the budget says now: it holds what is left of the budget, up to its
        worst case, so that nothing new is submitted against money it may spend."""
        if self.budget is None:
            return None
        try:
            return self.budget.try_reserve(min(worst_usd, self.budget.remaining_usd))
        except BudgetExceeded:
            return None

    # ------------------------------------------------------------------ poll and read back
    async def _poll(self) -> list[_Open]:
        """Retrieve every open batch until at least one has ended."""
        while True:
            for item in self.open:
                item.batch = await self._call(lambda i=item: self.client.api.batches.retrieve(i.batch_id))
                counts = item.batch.request_counts
                item.done = counts.completed + counts.failed if counts is not None else 0
            self.bar.n = self.read_lines + sum(min(i.done, len(i.tags)) for i in self.open)
            self.bar.refresh()
            ended = [item for item in self.open if item.batch is not None and item.batch.status in TERMINAL]
            if ended:
                return ended
            await asyncio.sleep(self.mode.poll_s)

    async def _collect(self, item: _Open, todo: dict[str, tuple[LLMRequest, dict[str, Any]]]) -> None:
        batch = item.batch
        assert batch is not None
        tally = _Tally()
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = await self._call(lambda f=file_id: self.client.api.files.content(f))
            for raw in content.text.splitlines():
                try:
                    line = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                key = str(line.get("custom_id")) if isinstance(line, dict) else ""
                if key in item.tags and key not in tally.counted:
                    tally.counted.add(key)
                    self._read_line(item, key, line, todo, tally)
        why = _batch_errors(batch)
        for key in item.tags:
            if key not in tally.counted:
                self._unanswered(item, key, batch.status, why, todo, tally)
        if item.reservation is not None and self.budget is not None:
            self.budget.settle(item.reservation, tally.usd)
        self.store.closed(item.file_id, batch.status)
        self.read_lines += len(item.tags)
        self.bar.n = self.read_lines + sum(min(i.done, len(i.tags)) for i in self.open if i is not item)
        self.bar.refresh()
        text = f"{self.endpoint.name}: batch {batch.id} {batch.status}: {tally.ok} replies, ${tally.usd:.4f}"
        if tally.failed or tally.expired:
            text += f"; {tally.failed} failed, {tally.expired} not run"
        if batch.status == "failed" and why:
            text += f"; {why}"
        elif tally.first_error:
            text += f"; first error: {tally.first_error}"
        self._say(text[:500])

    def _read_line(
        self,
        item: _Open,
        key: str,
        line: dict[str, Any],
        todo: dict[str, tuple[LLMRequest, dict[str, Any]]],
        tally: _Tally,
    ) -> None:
        """One line of the output or error file, logged (and cached) like the sync call it stands for."""
        if key in self.cache:
            return  # read back by an earlier run that was stopped before it closed this batch
        request, body = todo.get(key) or (
            LLMRequest(messages=(), tag=item.tags[key]),
            {"model": self.endpoint.model},
        )
        response, error = line.get("response"), line.get("error")
        if isinstance(response, dict) and response.get("status_code") == 200:
            try:
                completion = ChatCompletion.model_validate(response.get("body"))
                tally.usd += self.client.accept_batch_reply(completion, body, key, request, item.batch_id)
                tally.ok += 1
                return
            except (ValidationError, BadReply) as exc:
                detail = f"bad_response: a batch line that is not a chat completion: {str(exc)[:200]}"
                self.client.record_batch_error(
                    request, key, item.batch_id, ran=True, error="bad_response", detail=detail
                )
                self._failed(key, "http_error", detail, retry=True, tally=tally)
                return
        if isinstance(response, dict):
            status = int(response.get("status_code") or 0)
            payload = response.get("body")
            detail = f"Error code: {status} - {json.dumps(payload, ensure_ascii=False)}"
            err = payload.get("error") if isinstance(payload, dict) else None
            err = err if isinstance(err, dict) else {}
            out_of_quota = status == 429 and "insufficient_quota" in (err.get("code"), err.get("type"))
            kind = "rate_limited" if status == 429 else "server_error" if status >= 500 else "client_error"
            kind = "insufficient_quota" if out_of_quota else kind
            self.client.record_batch_error(
                request, key, item.batch_id, ran=True, error=kind, http_status=status, detail=detail
            )
            retryable = not out_of_quota and (status >= 500 or status in RETRYABLE_STATUS)
            detail = f"{OUT_OF_QUOTA}: {detail}" if out_of_quota else detail
            self._failed(key, "http_error", detail, retry=retryable, tally=tally)
            return
        error = error if isinstance(error, dict) else {}
        code, message = str(error.get("code") or "no_reply"), str(error.get("message") or "")
        self._not_run(item, key, request, code, message, tally)

    def _unanswered(
        self,
        item: _Open,
        key: str,
        status: str,
        why: str,
        todo: dict[str, tuple[LLMRequest, dict[str, Any]]],
        tally: _Tally,
    ) -> None:
        """A request of the batch on neither file: the batch failed, or ended before it ran."""
        if key in self.cache:
            return
        request = todo[key][0] if key in todo else LLMRequest(messages=(), tag=item.tags[key])
        if status == "failed":
            detail = f"batch {item.batch_id} failed: {why or 'no reason given'}"
            self.client.record_batch_error(
                request, key, item.batch_id, ran=False, error="batch_failed", detail=detail
            )
            self.ended[key] = ("http_error", detail[:300])
            tally.expired += 1
            return
        code = "batch_expired" if status == "expired" else f"batch_{status}"
        self._not_run(item, key, request, code, f"no line for this request in a {status} batch", tally)

    def _not_run(
        self, item: _Open, key: str, request: LLMRequest, code: str, message: str, tally: _Tally
    ) -> None:
        """A line the batch never ran: an expired one goes into a new batch (up to `max_submissions` per run)."""
        self.client.record_batch_error(
            request, key, item.batch_id, ran=False, error=code, detail=f"{code}: {message}"
        )
        tally.expired += 1
        if code == "batch_expired":
            self.expired[key] += 1
            if self.expired[key] < self.mode.max_submissions:
                return
            message = f"expired unanswered in {self.expired[key]} batches; a re-run submits it again"
        self.ended[key] = ("http_error", f"{code}: {message}"[:300])

    def _failed(self, key: str, kind: FailureKind, detail: str, *, retry: bool, tally: _Tally) -> None:
        tally.failed += 1
        tally.first_error = tally.first_error or detail[:200]
        if retry:
            self.to_sync.add(key)
        else:
            self.ended[key] = (kind, detail[:300])

    # ------------------------------------------------------------------ results
    async def _results(
        self,
        requests: list[LLMRequest],
        keys: list[str],
        on_result: Callable[[int, LLMResult], None] | None,
        started: float,
    ) -> BatchResult:
        """Every request's outcome: those that ended without a reply as failures, the others through the client's
        usual path (batch replies from the cache, retryable line errors as sync calls)."""
        results: list[LLMResult | None] = [None] * len(requests)
        through: list[int] = []
        for index, (request, key) in enumerate(zip(requests, keys, strict=True)):
            if key in self.ended:
                kind, detail = self.ended[key]
                results[index] = result = self.client.fail(request, kind, detail)
                if on_result is not None:
                    on_result(index, result)
            else:
                through.append(index)

        def forward(j: int, result: LLMResult) -> None:
            results[through[j]] = result
            if on_result is not None:
                on_result(through[j], result)

        if through:
            await self.client.run_batch(
                [requests[i] for i in through], progress=self.progress, desc=self.desc, on_result=forward
            )
        elif self.client.ledger is not None:
            self.client.ledger.write_csv()
        done = [r for r in results if r is not None]
        return BatchResult(
            done, elapsed_s=time.monotonic() - started, endpoint=f"{self.endpoint.name} (Batch API)"
        )

    # ------------------------------------------------------------------ helpers
    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        """A files/batches call that may be repeated (reads, uploads), retried like a sync request."""
        retry = 0
        while True:
            try:
                return await make()
            except openai.APIError as exc:
                error = classify(exc)
                if not error.retryable or retry >= self.endpoint.max_retries:
                    raise
                await asyncio.sleep(self.client.backoff.delay(retry, error.retry_after_s))
                retry += 1

    def _release(self, reservation: Reservation | None) -> None:
        if reservation is not None and self.budget is not None:
            self.budget.release(reservation)

    def _say(self, line: str) -> None:
        tqdm.write(line)


def _batch_errors(batch: Batch) -> str:
    """A failed batch's errors in one line (its first three)."""
    data = batch.errors.data if batch.errors is not None and batch.errors.data else []
    parts = []
    for error in data[:3]:
        where = f" (line {error.line})" if error.line is not None else ""
        parts.append(f"{error.code or 'error'}{where}: {error.message or ''}")
    more = f" (+{len(data) - 3} more)" if len(data) > 3 else ""
    return "; ".join(parts)[:300] + more
