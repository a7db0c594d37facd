"""A scripted OpenAI-compatible chat server for fault-injection tests and the generation benchmark.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) for the real `openai` client, runs its own
asyncio loop in a daemon thread, and answers each request by a per-prompt script (the prompt is the first user
message): the n-th request for a prompt gets the n-th scripted behaviour, later ones the default reply.

It accepts any body unless `strict`: then it refuses what the real OpenAI API refuses and bills usage as the API
does (`emulator`).

It also runs OpenAI's Batch API: `POST /v1/files` (a multipart JSONL upload, purpose `batch`), `POST /v1/batches`,
`GET /v1/batches[/{id}]` and `GET /v1/files/{id}/content`. A batch's lines run through the same scripts (and, when
strict, the same refusals and billing) as sync requests, when a poll sees the batch end; `batch_plans` script how
each batch runs (`BatchPlan`: polls until it ends, completed / expired part-way / failed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from .emulator import (
    BATCH_EXPIRED_MESSAGE,
    PromptCache,
    batch_error_line,
    batch_output_line,
    bill,
    check_batch_create,
    check_batch_file,
    check_request,
)
from .server import free_port


@dataclass(frozen=True)
class Reply:
    """A completion. Usage defaults to ~4 characters per token; `cached_tokens` and `reasoning_tokens` fill
    OpenAI's usage details, `model` and `system_fingerprint` say what the server ran (default: the model asked).
    On a strict server, unset counts are emulated and `reasoning_tokens` is how long the model would think, which
    the request's token limit may cut."""

    content: str | None
    finish_reason: str = "stop"
    refusal: str | None = None
    delay_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    model: str | None = None
    system_fingerprint: str | None = None


@dataclass(frozen=True)
class Fail:
    """An HTTP error; `code` is the error body's code and type as OpenAI sends them (e.g. `insufficient_quota`;
    default: the status); `echo_authorization` puts the request's Authorization header in the error message."""

    status: int
    message: str = "scripted failure"
    retry_after_s: float | None = None
    echo_authorization: bool = False
    delay_s: float = 0.0
    code: str | None = None


@dataclass(frozen=True)
class Hang:
    """No answer for `seconds` (longer than the client's timeout): a timeout."""

    seconds: float = 30.0


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering: a connection error."""


@dataclass(frozen=True)
class Raw:
    """Any body with status 200: a reply the client cannot parse (a misbehaving proxy)."""

    body: str
    content_type: str = "application/json"


Behaviour = Reply | Fail | Hang | Drop | Raw


@dataclass(frozen=True)
class BatchPlan:
    """How one batch runs: the n-th batch created follows the n-th plan, later ones the default plan.

    `polls` retrieves see it unfinished (validating, then in_progress) and the next one sees it end as `outcome`
    (the default plan: the first retrieve):
    `completed`: every line ran; `expired`: only the first `done` lines ran, the others are in the error file as
    `batch_expired`; `failed`: none ran and the batch reports `errors` (e.g. an enqueued-token limit). An input
    file that fails validation fails its batch whatever the plan. In a batch, a `Hang` line never finishes (it
    expires, and so does its batch); `Drop` and `Raw` lines end in a 500.
    """

    polls: int = 0
    outcome: Literal["completed", "expired", "failed"] = "completed"
    done: int = 0
    errors: tuple[Mapping[str, Any], ...] = ()


@dataclass
class EmulatedBatch:
    """One batch as the server holds it; `lines` are its input file's requests."""

    id: str
    input_file_id: str
    endpoint: str
    plan: BatchPlan
    metadata: dict[str, Any] | None
    created_at: int
    lines: list[dict[str, Any]] = field(default_factory=list)
    status: str = "validating"
    retrieves: int = 0
    errors: list[dict[str, Any]] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: {"total": 0, "completed": 0, "failed": 0})
    usage: dict[str, Any] | None = None
    stamps: dict[str, int] = field(default_factory=dict)

    @property
    def custom_ids(self) -> list[str]:
        return [str(line["custom_id"]) for line in self.lines]

    def to_json(self) -> dict[str, Any]:
        stamps = ("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at")
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": None if self.errors is None else {"object": "list", "data": self.errors},
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "expires_at": self.created_at + 24 * 3600,
            **{name: self.stamps.get(name) for name in stamps},
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": dict(self.counts),
            "metadata": self.metadata,
            "usage": self.usage,
        }


def json_reply(value: Any, **kwargs: Any) -> Reply:
    return Reply(json.dumps(value), **kwargs)


def echo_reply(body: Mapping[str, Any]) -> Reply:
    """The default: a JSON object naming the prompt, so a test can check each answer belongs to its question."""
    prompt = prompt_of(body)
    return json_reply({"prompt": prompt, "length": len(prompt)})


def prompt_of(body: Mapping[str, Any]) -> str:
    for message in body.get("messages", []):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


@dataclass
class Seen:
    """One request the server received; `answered` is when its response was written (None: never); `error` is
    why a strict server refused it (its behaviour is then "Rejected")."""

    prompt: str
    body: dict[str, Any]
    arrived: float
    behaviour: str
    answered: float | None = None
    error: str | None = None
    batch_id: str | None = None


@dataclass
class ScriptedServer:
    """`strict`: refuse (HTTP 400) what the real OpenAI API refuses, before any script step is used, and bill as
    it bills (`emulator`)."""

    script: Mapping[str, Sequence[Behaviour]] = field(default_factory=dict)
    default: Callable[[Mapping[str, Any]], Behaviour] = echo_reply
    latency_s: float = 0.0
    strict: bool = False
    batch_plans: Sequence[BatchPlan] = ()
    host: str = "127.0.0.1"
    port: int = 0
    seen: list[Seen] = field(default_factory=list, init=False)
    batches: dict[str, EmulatedBatch] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port(self.host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._writers: set[asyncio.StreamWriter] = set()
        self._prompt_cache = PromptCache() if self.strict else None
        self._files: dict[str, tuple[dict[str, Any], bytes]] = {}

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def count(self, prompt: str | None = None) -> int:
        """Chat requests received (for one prompt, or all)."""
        with self._lock:
            return len(self.seen) if prompt is None else sum(s.prompt == prompt for s in self.seen)

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(s.prompt for s in self.seen)

    def bodies(self, prompt: str) -> list[dict[str, Any]]:
        with self._lock:
            return [s.body for s in self.seen if s.prompt == prompt]

    def rejected(self) -> list[Seen]:
        """The requests a strict server refused."""
        with self._lock:
            return [s for s in self.seen if s.error is not None]

    def submitted(self) -> Counter[str]:
        """custom_id -> how many created batches hold it."""
        with self._lock:
            return Counter(cid for batch in self.batches.values() for cid in batch.custom_ids)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ScriptedServer:
        started = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, self.host, self.port, backlog=1024)
            )
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="scripted-llm-server", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("scripted server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            current = asyncio.current_task()
            handlers = [task for task in asyncio.all_tasks() if task is not current]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                if not await self._respond(method, path, headers, body, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # a cancelled handler (server shutdown) ends quietly: asyncio 3.11 logs cancelled handlers
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _respond(
        self, method: str, path: str, headers: dict[str, str], raw: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        """Write one response; False closes the connection."""
        url = urlsplit(path)
        route = url.path.rstrip("/")
        if method == "GET" and route.endswith("/models"):
            await _write(writer, 200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
            return True
        if method == "POST" and route.endswith("/chat/completions"):
            return await self._chat(headers, raw, writer)
        with self._lock:
            status, payload, content_type = self._batch_api(method, route, parse_qs(url.query), headers, raw)
        extra = {"Content-Type": content_type} if content_type else None
        await _write(writer, status, payload, extra)
        return True

    async def _chat(self, headers: dict[str, str], raw: bytes, writer: asyncio.StreamWriter) -> bool:
        body = json.loads(raw or b"{}")
        prompt = prompt_of(body)
        refusal = check_request(body) if self.strict else None
        if refusal is not None:
            with self._lock:
                seen = Seen(prompt, body, time.monotonic(), "Rejected", error=refusal.message)
                self.seen.append(seen)
            await _write(writer, refusal.status, refusal.body())
            seen.answered = time.monotonic()
            return True
        with self._lock:
            n = self._counts[prompt]
            self._counts[prompt] += 1
            steps = self.script.get(prompt, ())
            behaviour = steps[n] if n < len(steps) else self.default(body)
            seen = Seen(prompt, body, time.monotonic(), type(behaviour).__name__)
            self.seen.append(seen)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        match behaviour:
            case Drop():
                return False
            case Hang(seconds=seconds):
                await asyncio.sleep(seconds)
                return False
            case Fail():
                await asyncio.sleep(behaviour.delay_s)
                extra = (
                    {} if behaviour.retry_after_s is None else {"retry-after": f"{behaviour.retry_after_s:g}"}
                )
                error = _fail_body(behaviour, headers.get("authorization", ""))
                await _write(writer, behaviour.status, error, extra)
            case Reply():
                await asyncio.sleep(behaviour.delay_s)
                await _write(writer, 200, _completion(body, behaviour, self._prompt_cache))
            case Raw():
                await _write(writer, 200, behaviour.body, {"Content-Type": behaviour.content_type})
        seen.answered = time.monotonic()
        return True

    # ------------------------------------------------------------------ the Batch API (called under the lock)
    def _batch_api(
        self, method: str, route: str, query: dict[str, list[str]], headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, str | None]:
        """(status, body, content type) of a files or batches call."""
        if method == "POST" and route.endswith("/files"):
            return (*self._upload(headers.get("content-type", ""), raw), None)
        if method == "GET" and (found := re.fullmatch(r".*/files/([^/]+)/content", route)):
            stored = self._files.get(found.group(1))
            if stored is None:
                return 404, _not_found("File", found.group(1)), None
            return 200, stored[1].decode("utf-8"), "application/octet-stream"
        if method == "POST" and route.endswith("/batches"):
            return (*self._create_batch(json.loads(raw or b"{}")), None)
        if method == "GET" and route.endswith("/batches"):
            return 200, self._list_batches(query), None
        if method == "GET" and (found := re.fullmatch(r".*/batches/([^/]+)", route)):
            batch = self.batches.get(found.group(1))
            if batch is None:
                return 404, _not_found("Batch", found.group(1)), None
            self._advance(batch)
            return 200, batch.to_json(), None
        return 404, {"error": {"message": f"no route {method} {route}", "type": "not_found"}}, None

    def _upload(self, content_type: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        fields = _multipart(raw, content_type)
        purpose = fields.get("purpose", (None, b""))[1].decode()
        name, data = fields.get("file", (None, b""))
        if "file" not in fields or not purpose:
            missing = "file" if "file" not in fields else "purpose"
            return 400, _error_body(f"Missing required parameter: '{missing}'.", missing)
        if purpose == "batch" and not str(name or "").endswith(".jsonl"):
            return 400, _error_body("The Batch API only supports .jsonl files.", "file")
        return 200, self._add_file(data, name or "upload", purpose)[1]

    def _create_batch(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        stored = self._files.get(str(body.get("input_file_id")))
        refusal = check_batch_create(body, None if stored is None else stored[0]["purpose"])
        if refusal is not None:
            return refusal.status, refusal.body()
        n = len(self.batches)
        batch = EmulatedBatch(
            id=f"batch_{uuid.uuid4().hex[:24]}",
            input_file_id=body["input_file_id"],
            endpoint=body["endpoint"],
            plan=self.batch_plans[n] if n < len(self.batch_plans) else BatchPlan(),
            metadata=body.get("metadata"),
            created_at=int(time.time()),
        )
        self.batches[batch.id] = batch
        return 200, batch.to_json()

    def _list_batches(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """Newest first, `limit` per page after the id `after`."""
        ordered = list(reversed(self.batches.values()))
        after = query.get("after", [None])[0]
        if after is not None:
            ids = [b.id for b in ordered]
            ordered = ordered[ids.index(after) + 1 :] if after in ids else []
        limit = int(query.get("limit", ["20"])[0])
        page = ordered[:limit]
        return {
            "object": "list",
            "data": [b.to_json() for b in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": len(ordered) > limit,
        }

    def _advance(self, batch: EmulatedBatch) -> None:
        """One poll: validation on the first, the plan's end after `plan.polls` unfinished polls."""
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return
        batch.retrieves += 1
        now = int(time.time())
        if batch.status == "validating":
            lines, errors = check_batch_file(self._files[batch.input_file_id][1], batch.endpoint)
            if errors:
                batch.status, batch.errors = "failed", errors
                batch.stamps["failed_at"] = now
                return
            batch.lines, batch.status = lines, "in_progress"
            batch.counts["total"] = len(lines)
            batch.stamps["in_progress_at"] = now
        plan = batch.plan
        if batch.retrieves <= plan.polls:
            batch.counts["completed"] = len(batch.lines) * (batch.retrieves - 1) // max(1, plan.polls)
            return
        if plan.outcome == "failed":
            batch.status, batch.errors = "failed", [dict(e) for e in plan.errors]
            batch.counts["completed"] = 0
            batch.stamps["failed_at"] = now
            return
        self._finish(batch, now)

    def _finish(self, batch: EmulatedBatch, now: int) -> None:
        ran = len(batch.lines) if batch.plan.outcome == "completed" else batch.plan.done
        out: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for index, line in enumerate(batch.lines):
            answer = self._run_line(line["body"], batch.id) if index < ran else None
            custom_id = str(line["custom_id"])
            if answer is None:
                errors.append(batch_error_line(custom_id, "batch_expired", BATCH_EXPIRED_MESSAGE))
            elif answer[0] == 200:
                out.append(batch_output_line(custom_id, *answer))
            else:
                errors.append(batch_output_line(custom_id, *answer))
        expired = any(e["error"] is not None and e["error"]["code"] == "batch_expired" for e in errors)
        batch.status = "expired" if expired else "completed"
        batch.stamps["finalizing_at"] = now
        batch.stamps["expired_at" if expired else "completed_at"] = now
        batch.counts.update(completed=len(out), failed=len(errors))
        batch.output_file_id = self._store_output(batch, "output", out)
        batch.error_file_id = self._store_output(batch, "error", errors)
        batch.usage = _batch_usage([line["response"]["body"].get("usage") or {} for line in out])

    def _store_output(self, batch: EmulatedBatch, kind: str, lines: list[dict[str, Any]]) -> str | None:
        if not lines:
            return None
        data = "".join(json.dumps(line) + "\n" for line in lines).encode("utf-8")
        return self._add_file(data, f"{batch.id}_{kind}.jsonl", "batch_output")[0]

    def _add_file(self, data: bytes, filename: str, purpose: str) -> tuple[str, dict[str, Any]]:
        """Store a file as the Files API does; (its id, its object)."""
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        meta = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        self._files[file_id] = (meta, data)
        return file_id, meta

    def _run_line(self, body: dict[str, Any], batch_id: str) -> tuple[int, dict[str, Any]] | None:
        """A batch line answered like a sync request: (status, body), or None for one that never finishes."""
        prompt = prompt_of(body)
        refusal = check_request(body) if self.strict else None
        if refusal is not None:
            self.seen.append(Seen(prompt, body, time.monotonic(), "Rejected", time.monotonic(),
                                  refusal.message, batch_id))  # fmt: skip
            return refusal.status, refusal.body()
        n = self._counts[prompt]
        self._counts[prompt] += 1
        steps = self.script.get(prompt, ())
        behaviour = steps[n] if n < len(steps) else self.default(body)
        seen = Seen(prompt, body, time.monotonic(), type(behaviour).__name__, batch_id=batch_id)
        self.seen.append(seen)
        match behaviour:
            case Hang():
                return None
            case Reply():
                answer = 200, _completion(body, behaviour, self._prompt_cache)
            case Fail():
                answer = behaviour.status, _fail_body(behaviour, "")
            case _:
                answer = 500, _error_body("The server had an error while processing your request.", None,
                                           "server_error")  # fmt: skip
        seen.answered = time.monotonic()
        return answer


def _error_body(message: str, param: str | None, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


def _not_found(what: str, ident: str) -> dict[str, Any]:
    return _error_body(f"No such {what} object: {ident}", None)


def _fail_body(behaviour: Fail, authorization: str) -> dict[str, Any]:
    message = behaviour.message
    if behaviour.echo_authorization:
        message += f" (got Authorization: {authorization})"
    code = behaviour.code or str(behaviour.status)
    kind = behaviour.code or "scripted"
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _batch_usage(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """The batch object's usage: its lines' usage summed, in the Batch API's field names."""

    def total(name: str, group: str | None = None) -> int:
        return sum(int(((u.get(group) or {}) if group else u).get(name) or 0) for u in usages)

    input_tokens, output_tokens = total("prompt_tokens"), total("completion_tokens")
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": total("cached_tokens", "prompt_tokens_details")},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": total("reasoning_tokens", "completion_tokens_details")},
        "total_tokens": input_tokens + output_tokens,
    }


def _multipart(raw: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename or None, value)."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if found is None:
        return {}
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in raw.split(b"--" + found.group(1).encode("latin-1"))[1:]:
        if part.startswith(b"--"):
            break
        head, _, value = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        filename = re.search(rb'filename="([^"]*)"', head)
        if name is not None:
            fields[name.group(1).decode()] = (
                filename.group(1).decode() if filename else None,
                value.removesuffix(b"\r\n"),
            )
    return fields


def _completion(body: Mapping[str, Any], reply: Reply, prompt_cache: PromptCache | None) -> dict[str, Any]:
    """The reply's chat completion; with a prompt cache (a strict server), content and usage as the API bills."""
    content, finish_reason = reply.content, reply.finish_reason
    if prompt_cache is not None:
        billed = bill(
            body, content, finish_reason, prompt_cache, prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens, cached_tokens=reply.cached_tokens,
            reasoning_tokens=reply.reasoning_tokens,
        )  # fmt: skip
        content, finish_reason, usage = billed.content, billed.finish_reason, billed.usage
    else:
        usage = _scripted_usage(body, reply)
    completion: dict[str, Any] = {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model or body.get("model", "scripted"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": reply.refusal},
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
    }
    if reply.system_fingerprint is not None:
        completion["system_fingerprint"] = reply.system_fingerprint
    return completion


def _scripted_usage(body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
    prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
    prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else prompt_chars // 4 + 1
    completion_tokens = (
        reply.completion_tokens if reply.completion_tokens is not None else len(reply.content or "") // 4 + 1
    )
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if reply.cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
    if reply.reasoning_tokens is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reply.reasoning_tokens}
    return usage


async def _write(
    writer: asyncio.StreamWriter, status: int, payload: Any, extra_headers: Mapping[str, str] | None = None
) -> None:
    data = (payload if isinstance(payload, str) else json.dumps(payload)).encode("utf-8")
    headers = {"Content-Type": "application/json", **(extra_headers or {})}
    lines = [f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"Content-Length: {len(data)}", "Connection: keep-alive"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
    await writer.drain()


def main() -> None:
    """Serve echo replies with a fixed latency (for trying the client by hand)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--strict", action="store_true", help="refuse and bill as the OpenAI API does")
    args = parser.parse_args()
    with ScriptedServer(latency_s=args.latency, port=args.port, strict=args.strict) as server:
        print(f"serving on {server.base_url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
