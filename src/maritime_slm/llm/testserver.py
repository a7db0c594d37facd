"""A scripted OpenAI-compatible chat server for fault-injection tests and the generation benchmark.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) for the real `openai` client, runs its own
asyncio loop in a daemon thread, and answers each request by a per-prompt script (the prompt is the first user
message): the n-th request for a prompt gets the n-th scripted behaviour, later ones the default reply.

It accepts any body unless `strict`: then it refuses what the real OpenAI API refuses and bills usage as the API
does (`emulator`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .emulator import PromptCache, bill, check_request
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


@dataclass
class ScriptedServer:
    """`strict`: refuse (HTTP 400) what the real OpenAI API refuses, before any script step is used, and bill as
    it bills (`emulator`)."""

    script: Mapping[str, Sequence[Behaviour]] = field(default_factory=dict)
    default: Callable[[Mapping[str, Any]], Behaviour] = echo_reply
    latency_s: float = 0.0
    strict: bool = False
    host: str = "127.0.0.1"
    port: int = 0
    seen: list[Seen] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port(self.host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._writers: set[asyncio.StreamWriter] = set()
        self._prompt_cache = PromptCache() if self.strict else None

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
        if method == "GET" and path.rstrip("/").endswith("/models"):
            await _write(writer, 200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
            return True
        if not (method == "POST" and path.rstrip("/").endswith("/chat/completions")):
            await _write(
                writer, 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}}
            )
            return True
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
                message = behaviour.message
                if behaviour.echo_authorization:
                    message += f" (got Authorization: {headers.get('authorization', '')})"
                extra = (
                    {} if behaviour.retry_after_s is None else {"retry-after": f"{behaviour.retry_after_s:g}"}
                )
                code = behaviour.code or str(behaviour.status)
                kind = behaviour.code or "scripted"
                error = {"error": {"message": message, "type": kind, "param": None, "code": code}}
                await _write(writer, behaviour.status, error, extra)
            case Reply():
                await asyncio.sleep(behaviour.delay_s)
                await _write(writer, 200, _completion(body, behaviour, self._prompt_cache))
            case Raw():
                await _write(writer, 200, behaviour.body, {"Content-Type": behaviour.content_type})
        seen.answered = time.monotonic()
        return True


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
