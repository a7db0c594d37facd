"""What a caller asks a model for, and what comes back: an ok value or a recorded failure, never an exception."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from pydantic import BaseModel

FailureKind = Literal[
    "invalid_json", "truncated", "refusal", "schema_error", "http_error", "timeout", "budget"
]
FAILURE_KINDS: tuple[str, ...] = get_args(FailureKind)

Message = dict[str, str]


@dataclass(frozen=True)
class LLMRequest:
    """One chat call. `tag` is an opaque ledger category; `sample` asks for a distinct (uncached) draw of a prompt.

    `output` validates the reply's JSON into a pydantic model (and selects the endpoint's JSON response format).
    `parser` parses free text when there is no `output`, or further checks the validated model when there is;
    it raises ValueError to reject a reply, which triggers a re-ask. With neither, the reply text is the value.
    `max_tokens` and `temperature` override the endpoint's for this request. `affinity` names what the prompt
    shares with others (e.g. its snapshot): requests with the same affinity go to the same local server replica,
    whose prompt cache holds it; `replica` is that choice (an index into the served endpoint's `replica_urls`).
    """

    messages: Sequence[Message]
    output: type[BaseModel] | None = None
    parser: Callable[[Any], Any] | None = None
    tag: str = ""
    sample: int = 0
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    affinity: str = ""
    replica: int = 0

    @classmethod
    def chat(cls, user: str, *, system: str | None = None, **kwargs: Any) -> LLMRequest:
        system_message = [{"role": "system", "content": system}] if system else []
        return cls(messages=[*system_message, {"role": "user", "content": user}], **kwargs)


@dataclass
class LLMResult:
    """The outcome of one request after retries and re-asks. `calls` are HTTP calls actually sent (and paid)."""

    ok: bool
    value: Any = None
    failure: FailureKind | None = None
    detail: str = ""
    text: str | None = None
    finish_reason: str | None = None
    tag: str = ""
    calls: int = 0
    cache_hits: int = 0
    reasks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0
    latency_s: float | None = None
    """Wall time from send to result, retries and rate-limit waits included: set by a `timed` batch, where no
    request waits behind another in the client."""

    def __repr__(self) -> str:
        state = (
            f"ok value={self.value!r:.80}"
            if self.ok
            else f"failure={self.failure} detail={self.detail!r:.80}"
        )
        return f"LLMResult({state}, calls={self.calls}, cache_hits={self.cache_hits}, reasks={self.reasks})"


@dataclass
class BatchResult:
    """Results in request order. A budget stop leaves `budget` failures for the requests it never sent."""

    results: list[LLMResult]
    elapsed_s: float = 0.0
    endpoint: str = ""
    by_kind: Counter[str] = field(init=False)

    def __post_init__(self) -> None:
        self.by_kind = Counter(r.failure for r in self.results if not r.ok)

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[LLMResult]:
        return iter(self.results)

    def __getitem__(self, index: int) -> LLMResult:
        return self.results[index]

    @property
    def n_ok(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def n_failed(self) -> int:
        return len(self.results) - self.n_ok

    @property
    def stopped_by_budget(self) -> bool:
        return self.by_kind["budget"] > 0

    @property
    def n_finished(self) -> int:
        """Requests that ran to an outcome (ok or a model/server failure), i.e. not stopped by the budget."""
        return len(self.results) - self.by_kind["budget"]

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.results)

    @property
    def cache_hits(self) -> int:
        return sum(r.cache_hits for r in self.results)

    @property
    def usd(self) -> float:
        return sum(r.usd for r in self.results)

    def summary(self) -> str:
        head = f"{self.endpoint}: " if self.endpoint else ""
        text = f"{head}{self.n_finished}/{len(self)} finished"
        if self.stopped_by_budget:
            text += f" (budget reached: {self.by_kind['budget']} not sent)"
        failed = ", ".join(f"{k} {n}" for k, n in sorted(self.by_kind.items()) if k != "budget")
        text += f"; {self.n_ok} ok" + (f", failed: {failed}" if failed else "")
        text += f"; {self.calls} calls sent, {self.cache_hits} cache hits, ${self.usd:.4f}, {self.elapsed_s:.1f} s"
        return text


def lanes(requests: Sequence[LLMRequest], replicas: int) -> list[list[tuple[int, LLMRequest]]]:
    """(index, request) per replica: requests with the same `affinity` in one lane, in their order, each new
    affinity to the lane with the fewest requests so far; each request names its replica."""
    out: list[list[tuple[int, LLMRequest]]] = [[] for _ in range(replicas)]
    home: dict[str, int] = {}
    sizes = Counter(r.affinity or str(i) for i, r in enumerate(requests))
    load = [0] * replicas
    for index, request in enumerate(requests):
        key = request.affinity or str(index)
        if key not in home:
            home[key] = min(range(replicas), key=load.__getitem__)
            load[home[key]] += sizes[key]
        out[home[key]].append((index, replace(request, replica=home[key])))
    return out
