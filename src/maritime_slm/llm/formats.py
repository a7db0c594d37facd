"""Response formats on the wire and turning a reply into a validated value (or a named reason it is unusable).

Three modes, one per kind of server:
- `json_schema`: OpenAI strict structured outputs (`{"type": "json_schema", "json_schema": {..., "strict": true}}`),
  with a portable schema: constraints strict mode may refuse are left out on the wire and checked here instead.
- `json_object_schema`: llama.cpp's grammar-constrained JSON (`{"type": "json_object", "schema": {...}}`); the
  llama.cpp server answers `json_schema` with HTTP 500.
- `text`: nothing on the wire; the reply is parsed here (JSON found in the text) or by the caller's parser.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, ValidationError

from .cache import CachedResponse
from .request import FailureKind, LLMRequest, Message

ResponseMode = Literal["json_schema", "json_object_schema", "text"]
# strict=False: raw newlines/tabs inside strings (small local models emit them) are harmless, not invalid.
_DECODER = json.JSONDecoder(strict=False)

UNPORTABLE_CONSTRAINTS = frozenset(
    {
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
        "propertyNames",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
    }
)
"""Value constraints OpenAI's strict mode refuses or leaves undocumented (its Structured Outputs guide lists only
pattern and format for strings; see `emulator.UNSUPPORTED_SCHEMA_KEYWORDS`). Leaving one out only widens what the
model may emit, and the reply's pydantic validation still enforces it (a violation is re-asked)."""
PORTABLE_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
_SUBSCHEMAS = ("items", "additionalProperties", "not", "anyOf", "oneOf", "allOf", "prefixItems")


def response_format(mode: ResponseMode, output: type[BaseModel] | None) -> dict[str, Any] | None:
    """The `response_format` body field, or None to send none. Both JSON modes use OpenAI's strict form of the
    schema (every field required, no extra keys): a tighter grammar for llama.cpp as well, which keeps every
    constraint; OpenAI gets the `portable_schema`."""
    if mode == "text" or output is None:
        return None
    schema = to_strict_json_schema(output)
    if mode == "json_schema":
        name = re.sub(r"[^a-zA-Z0-9_-]", "_", output.__name__)[:64]
        wire = portable_schema(schema)
        return {"type": "json_schema", "json_schema": {"name": name, "schema": wire, "strict": True}}
    return {"type": "json_object", "schema": schema}


def portable_schema(schema: Any) -> Any:
    """The schema without `UNPORTABLE_CONSTRAINTS` and string formats outside `PORTABLE_FORMATS`, at any depth
    (property names are names, not keywords: a field called `format` stays)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in UNPORTABLE_CONSTRAINTS or (key == "format" and value not in PORTABLE_FORMATS):
            continue
        if key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            value = {name: portable_schema(sub) for name, sub in value.items()}
        elif key in _SUBSCHEMAS:
            value = (
                [portable_schema(sub) for sub in value] if isinstance(value, list) else portable_schema(value)
            )
        out[key] = value
    return out


def extract_json(text: str) -> Any:
    """The JSON value in a reply, tolerating code fences and prose around one object. Raises ValueError."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = re.sub(r"^```[a-zA-Z]*\s*|\s*```$", "", stripped)
    try:
        return json.loads(stripped, strict=False)
    except json.JSONDecodeError as exc:
        start = stripped.find("{")
        if start < 0:
            raise ValueError(f"no JSON object in the reply ({exc.msg})") from None
        try:
            return _DECODER.raw_decode(stripped, start)[0]
        except json.JSONDecodeError as inner:
            raise ValueError(f"invalid JSON: {inner.msg} at char {inner.pos}") from None


@dataclass(frozen=True)
class Verdict:
    value: Any = None
    failure: FailureKind | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.failure is None


def judge_reply(reply: CachedResponse, request: LLMRequest) -> Verdict:
    """Ok with the parsed value, or the failure kind: refusal, truncated, invalid_json or schema_error."""
    if reply.refusal or reply.finish_reason == "content_filter":
        return Verdict(failure="refusal", detail=(reply.refusal or "content filter")[:300])
    text = reply.text or ""
    truncated = reply.finish_reason == "length"
    if request.output is None and request.parser is None:
        return Verdict(value=text)
    if request.parser is not None and request.output is None:
        try:
            return Verdict(value=request.parser(text))
        except ValueError as exc:
            kind: FailureKind = "truncated" if truncated else "schema_error"
            return Verdict(failure=kind, detail=str(exc)[:300])
    if not text.strip():
        return Verdict(failure="truncated" if truncated else "invalid_json", detail="empty reply")
    try:
        data = extract_json(text)
    except ValueError as exc:
        return Verdict(failure="truncated" if truncated else "invalid_json", detail=str(exc)[:300])
    assert request.output is not None
    try:
        value = request.output.model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()[:5]
        )
        return Verdict(failure="truncated" if truncated else "schema_error", detail=errors[:300])
    if request.parser is not None:
        try:
            value = request.parser(value)
        except ValueError as exc:
            return Verdict(failure="schema_error", detail=str(exc)[:300])
    return Verdict(value=value)


def reask_messages(reply: CachedResponse, verdict: Verdict, max_tokens: int) -> list[Message]:
    """What to append to the conversation to ask again after an unusable reply."""
    if verdict.failure == "truncated":
        return [
            {
                "role": "user",
                "content": f"Your previous reply was cut off at the limit of {max_tokens} tokens. "
                "Answer again, more briefly, with only the JSON object.",
            }
        ]
    return [
        {"role": "assistant", "content": reply.text or ""},
        {
            "role": "user",
            "content": f"That reply could not be used ({verdict.detail}). "
            "Answer again with only a JSON object that matches the requested schema.",
        },
    ]


def reasoning_cut_off(max_tokens: int, detail: str) -> str:
    """Why a reasoning model's `length` stop is final: its hidden reasoning spent the budget, and a re-ask would
    resend the whole context into the same budget."""
    return (
        f"the reasoning used the max_tokens budget of {max_tokens} tokens before a complete answer; not re-asked: "
        f"raise max_tokens (OpenAI advises reserving ~25,000 tokens for reasoning and output); reply: {detail}"
    )[:300]
