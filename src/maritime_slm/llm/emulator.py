"""What the real OpenAI Chat Completions API refuses, and how it bills what it accepts: the strict mode of the
scripted server (`ScriptedServer(strict=True)`).

The scripted server alone accepts any body, so a request the real API refuses passes every test and fails only
in a paid run. `check_request` answers a body as the API does, with status 400 and
`{"error": {"message", "type", "param", "code"}}` in the wording the API uses (as quoted in public bug reports):

1. a top-level field the API does not know (llama.cpp's `repeat_penalty`): "Unrecognized request argument";
2. a reasoning model (o1, o3, o3-mini, o4-mini, gpt-5 but not gpt-5-chat) given `max_tokens` (it takes
   `max_completion_tokens`) or a sampling parameter of `REASONING_UNSUPPORTED`; `temperature` 1 (the default)
   passes except on o1-mini and o3-mini, which refuse the parameter outright;
3. `reasoning_effort` on any other model: "Unrecognized request argument";
4. `response_format` `json_schema` with `strict: true` whose schema is not an object at the root, has an object
   without `additionalProperties: false` or without a `required` list naming every property, uses a keyword of
   `UNSUPPORTED_SCHEMA_KEYWORDS`, or a `format` outside `SUPPORTED_STRING_FORMATS`;
5. `response_format` `json_object` with no "json" in the messages; an unknown `response_format` type.

`check_batch_create` and `check_batch_file` answer the Batch API (platform.openai.com/docs/guides/batch) as it
answers a batch and its input file; `batch_output_line` / `batch_error_line` are the lines of its output and
error files. Each line's body is then answered like a sync request (`check_request`, `bill`).

`bill` answers with the usage the API reports: `prompt_tokens_details.cached_tokens` from `PromptCache`, and for
reasoning models `completion_tokens_details.reasoning_tokens`, billed as output and counted against the token
limit; a limit reached while reasoning stops the reply with `finish_reason: "length"` and empty content, and the
whole limit is billed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from openai.types.batch_create_params import BatchCreateParams
from openai.types.chat.completion_create_params import CompletionCreateParamsBase

_PARAMS = CompletionCreateParamsBase
KNOWN_FIELDS = frozenset(_PARAMS.__required_keys__ | _PARAMS.__optional_keys__ | {"stream"})
"""The request fields of the Chat Completions API, as the installed `openai` client types them."""

# The API's own rule, written here apart from `client.is_reasoning_model` on purpose: a test double that shared the
# client's detection could not catch a mistake in it.
REASONING_MODEL = re.compile(r"^(o\d|gpt-5(?!-chat))")
_NO_TEMPERATURE = re.compile(r"^o[13]-mini")
REASONING_UNSUPPORTED = (
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
)
"""Parameters reasoning models refuse besides `max_tokens` (OpenAI's reasoning guide, "limitations", as the
OpenAI providers of vercel/ai and pydantic-ai apply it)."""

UNSUPPORTED_SCHEMA_KEYWORDS = frozenset(
    {
        "allOf",
        "not",
        "dependentRequired",
        "dependentSchemas",
        "if",
        "then",
        "else",
        "minLength",
        "maxLength",
        "patternProperties",
        "unevaluatedProperties",
        "propertyNames",
        "minProperties",
        "maxProperties",
        "unevaluatedItems",
        "contains",
        "minContains",
        "maxContains",
        "uniqueItems",
        "prefixItems",
    }
)
"""Schema keywords strict structured outputs refuse. From OpenAI's Structured Outputs guide
(platform.openai.com/docs/guides/structured-outputs, "Supported schemas", read from a stored copy in 2026):

- "Some type-specific keywords are not yet supported": allOf, not, dependentRequired, dependentSchemas, if, then,
  else (for every model);
- minLength, maxLength: not among the guide's "Supported properties" (strings: pattern and format only); refused
  for fine-tuned models, and for every model in the guide's 2024 edition ("'minLength' is not permitted"). A
  2026 report (pydantic/pydantic-ai#7315) says the live API now accepts them; kept here so that the project's
  wire schema stays portable (fine-tuned models, Azure, older snapshots);
- patternProperties, unevaluatedProperties, propertyNames, minProperties, maxProperties, unevaluatedItems,
  contains, minContains, maxContains, uniqueItems: unsupported in the guide's 2024 edition and absent from its
  supported list since;
- prefixItems: refused by the live API (pydantic/pydantic-ai#7315).

pattern, format (see `SUPPORTED_STRING_FORMATS`), minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf,
minItems and maxItems are supported for base models since 2025.
"""

SUPPORTED_STRING_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

CHARS_PER_TOKEN = 4
CACHE_MIN_TOKENS = 1024
CACHE_INCREMENT_TOKENS = 128
REASONING_TOKENS_BY_EFFORT = {"low": 256, "medium": 1024, "high": 4096}
"""How long the emulated reasoning models think by default (an assumption: real models vary with the task)."""


@dataclass(frozen=True)
class ApiError:
    """One refusal, as the API sends it."""

    message: str
    param: str | None = None
    code: str | None = None
    type: str = "invalid_request_error"
    status: int = 400

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def is_reasoning_model(model: str) -> bool:
    return bool(REASONING_MODEL.match(model))


def check_request(body: Mapping[str, Any]) -> ApiError | None:
    """The API's refusal of a chat-completions body, or None when it would accept it."""
    for field in body:
        if field not in KNOWN_FIELDS:
            return _unrecognized(field)
    if not body.get("model"):
        return ApiError("you must provide a model parameter")
    if not isinstance(body.get("messages"), list):
        return ApiError("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    model = str(body["model"])
    if is_reasoning_model(model):
        if body.get("max_tokens") is not None:
            return ApiError(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "max_tokens",
                "unsupported_parameter",
            )
        for name in REASONING_UNSUPPORTED:
            if (error := _sampling_refusal(model, name, body.get(name))) is not None:
                return error
    elif body.get("reasoning_effort") is not None:
        return _unrecognized("reasoning_effort")
    return _check_response_format(body)


def _unrecognized(field: str) -> ApiError:
    return ApiError(f"Unrecognized request argument supplied: {field}")


def _sampling_refusal(model: str, name: str, value: Any) -> ApiError | None:
    if value is None:
        return None
    if name == "temperature" and not _NO_TEMPERATURE.match(model):
        if value == 1:
            return None
        return ApiError(
            f"Unsupported value: 'temperature' does not support {value} with this model. "
            "Only the default (1) value is supported.",
            "temperature",
            "unsupported_value",
        )
    return ApiError(
        f"Unsupported parameter: '{name}' is not supported with this model.", name, "unsupported_parameter"
    )


def _check_response_format(body: Mapping[str, Any]) -> ApiError | None:
    fmt = body.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        if not any("json" in str(m.get("content", "")).lower() for m in body["messages"]):
            return ApiError(
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                "'json_object'.",
                "messages",
            )
        return None
    if kind != "json_schema":
        return ApiError(
            f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'.",
            "response_format.type",
            "invalid_value",
        )
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict):
        return ApiError(
            "Missing required parameter: 'response_format.json_schema'.",
            "response_format.json_schema",
            "missing_required_parameter",
        )
    name = str(spec.get("name", ""))
    if not _NAME.match(name):
        return ApiError(
            "Invalid 'response_format.json_schema.name': string does not match pattern. Expected a string that "
            "matches the pattern '^[a-zA-Z0-9_-]+$'.",
            "response_format.json_schema.name",
            "invalid_value",
        )
    if spec.get("strict") is not True:
        return None
    problem = schema_problem(spec.get("schema"))
    if problem is None:
        return None
    return ApiError(f"Invalid schema for response_format '{name}': {problem}", "response_format")


def schema_problem(schema: Any) -> str | None:
    """Why strict structured outputs refuse a schema (the API's wording), or None."""
    if not isinstance(schema, dict) or schema.get("type") != "object" or "anyOf" in schema:
        got = schema.get("type") if isinstance(schema, dict) else None
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{got}\"'."
    return next(_problems(schema, ()), None)


_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMAS = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)


def _problems(schema: Any, path: tuple[str, ...]) -> Iterator[str]:
    if not isinstance(schema, dict):
        return
    context = f"In context={path!r}, "
    for key, value in schema.items():
        if key in UNSUPPORTED_SCHEMA_KEYWORDS:
            yield context + f"'{key}' is not permitted."
        if key == "format" and value not in SUPPORTED_STRING_FORMATS:
            yield context + f"'format' {value!r} is not permitted."
    types = schema.get("type")
    if types == "object" or (isinstance(types, list) and "object" in types) or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            yield context + "'additionalProperties' is required to be supplied and to be false."
        properties = schema.get("properties") or {}
        required = schema.get("required", [])
        missing = [key for key in properties if key not in required]
        if not isinstance(required, list) or missing:
            shown = f" Missing '{missing[0]}'." if missing else ""
            yield context + (
                "'required' is required to be supplied and to be an array including every key in properties."
                + shown
            )
        extra = [key for key in required if key not in properties]
        if extra:
            yield context + f"Extra required key '{extra[0]}' supplied."
    for key, value in schema.items():
        if key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            for name, sub in value.items():
                yield from _problems(sub, (*path, key, name))
        elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
            for i, sub in enumerate(value):
                yield from _problems(sub, (*path, key, str(i)))
        elif key in _SUBSCHEMAS and isinstance(value, list):
            for i, sub in enumerate(value):
                yield from _problems(sub, (*path, key, str(i)))
        elif key in _SUBSCHEMAS:
            yield from _problems(value, (*path, key))


def prompt_text(body: Mapping[str, Any]) -> str:
    """What the emulator tokenizes: the structured-output schema first (OpenAI puts it before the system message,
    so it is part of the cached prefix), then each message."""
    parts = []
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        parts.append(json.dumps(fmt.get("json_schema"), sort_keys=True))
    for message in body.get("messages", []):
        parts.append(f"<|{message.get('role')}|>{message.get('content') or ''}")
    return "\n".join(parts)


def count_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


class PromptCache:
    """OpenAI's automatic prompt caching (platform.openai.com/docs/guides/prompt-caching): prompts of 1024 tokens or
    more are cached, and a later prompt with the same prefix gets cache hits "in increments of 128 tokens" (1024,
    1152, 1280, ...). Per model; nothing is evicted (a test runs well within the 5-10 minutes a prefix stays)."""

    def __init__(self) -> None:
        self._prefixes: defaultdict[str, set[str]] = defaultdict(set)

    def cached_tokens(self, model: str, text: str) -> int:
        """The cached tokens of this prompt; it is then cached for the next."""
        block = CACHE_INCREMENT_TOKENS * CHARS_PER_TOKEN
        seen = self._prefixes[model]
        chain = hashlib.sha256()
        hit_blocks, digests = 0, []
        for k in range(len(text) // block):
            chain.update(text[k * block : (k + 1) * block].encode("utf-8"))
            digest = chain.hexdigest()
            if digest in seen:
                hit_blocks = k + 1
            digests.append(digest)
        seen.update(digests)
        cached = hit_blocks * CACHE_INCREMENT_TOKENS
        return cached if cached >= CACHE_MIN_TOKENS else 0


@dataclass(frozen=True)
class Billed:
    content: str | None
    finish_reason: str
    usage: dict[str, Any]


def bill(
    body: Mapping[str, Any],
    content: str | None,
    finish_reason: str,
    cache: PromptCache,
    *,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    cached_tokens: int | None = None,
    reasoning_tokens: int | None = None,
) -> Billed:
    """The reply the API sends for `content` and its usage. The keyword counts override the emulated ones;
    `reasoning_tokens` is how long the model would think, which the token limit may cut."""
    model = str(body.get("model", ""))
    text = prompt_text(body)
    from_cache = cache.cached_tokens(model, text)
    prompt = count_tokens(text) if prompt_tokens is None else prompt_tokens
    cached = from_cache if cached_tokens is None else cached_tokens
    reasoning = reasoning_tokens
    if reasoning is None:
        effort = str(body.get("reasoning_effort") or "medium")
        default = REASONING_TOKENS_BY_EFFORT.get(effort, REASONING_TOKENS_BY_EFFORT["medium"])
        reasoning = default if is_reasoning_model(model) else 0
    visible = count_tokens(content or "")
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None and reasoning + visible > limit:
        finish_reason = "length"
        if reasoning >= limit:
            reasoning, visible, content = limit, 0, ""
        else:
            visible = limit - reasoning
            content = (content or "")[: visible * CHARS_PER_TOKEN]
    completion = reasoning + visible if completion_tokens is None else completion_tokens
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    return Billed(content, finish_reason, usage)


# ---------------------------------------------------------------- the Batch API
BATCH_MAX_LINES = 50_000
BATCH_MAX_BYTES = 200 * 1024 * 1024
"""Per batch: "up to 50,000 requests, and can be up to 200 MB in size" (the API reference, batches.create)."""
BATCH_ENDPOINT = "/v1/chat/completions"
"""The one endpoint the emulator runs; the API also takes /v1/responses, /v1/embeddings and others."""
BATCH_EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."
"""The error file's message for an expired line, as the Batch guide shows it (code `batch_expired`)."""
BATCH_CREATE_FIELDS = frozenset(BatchCreateParams.__required_keys__ | BatchCreateParams.__optional_keys__)


def check_batch_create(body: Mapping[str, Any], file_purpose: str | None) -> ApiError | None:
    """The API's refusal of a `POST /v1/batches` body (`file_purpose`: the input file's, None if no such file)."""
    for field in body:
        if field not in BATCH_CREATE_FIELDS:
            return _unrecognized(field)
    for field in ("input_file_id", "endpoint", "completion_window"):
        if not body.get(field):
            return ApiError(f"Missing required parameter: '{field}'.", field, "missing_required_parameter")
    if body["endpoint"] != BATCH_ENDPOINT:
        return ApiError(f"Invalid value: '{body['endpoint']}'. This emulator runs only '{BATCH_ENDPOINT}'.",
                        "endpoint", "invalid_value")  # fmt: skip
    if body["completion_window"] != "24h":
        return ApiError(f"Invalid value: '{body['completion_window']}'. Supported values are: '24h'.",
                        "completion_window", "invalid_value")  # fmt: skip
    if file_purpose is None:
        return ApiError(f"No such File object: {body['input_file_id']}", "input_file_id", None, status=404)
    if file_purpose != "batch":
        return ApiError(f"File {body['input_file_id']} was uploaded with purpose '{file_purpose}', not 'batch'.",
                        "input_file_id", "invalid_value")  # fmt: skip
    return None


def check_batch_file(data: bytes, endpoint: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The lines of a batch input file, and the errors that fail the batch at validation (`Batch.errors.data`
    items: code, line, message, param). Field names are the API's; the codes are the emulator's own (the API
    documents the rules: one JSON request per line with a unique custom_id, method POST, the batch's url, a body,
    one model per file, at most 50,000 lines and 200 MB)."""
    errors: list[dict[str, Any]] = []

    def error(code: str, line: int | None, message: str, param: str | None = None) -> None:
        errors.append({"code": code, "line": line, "message": message, "param": param})

    if len(data) > BATCH_MAX_BYTES:
        error("file_too_large", None, f"The input file is {len(data)} bytes; a batch takes at most 200 MB.")
    lines: list[dict[str, Any]] = []
    seen_ids: set[str] = set()
    models: set[str] = set()
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            error("invalid_json_line", number, "This line is not parseable as valid JSON.")
            continue
        if not isinstance(line, dict):
            error("invalid_json_line", number, "Each line must be a JSON object.")
            continue
        missing = [f for f in ("custom_id", "method", "url", "body") if f not in line]
        if missing:
            error(
                "missing_required_parameter",
                number,
                f"Missing required parameter: '{missing[0]}'.",
                missing[0],
            )
            continue
        custom_id = str(line["custom_id"])
        if custom_id in seen_ids:
            error("duplicate_custom_id", number, "The custom_id for this request is a duplicate of another "
                  "request. The custom_id parameter must be unique for each request in a batch.", "custom_id")  # fmt: skip
        seen_ids.add(custom_id)
        if line["method"] != "POST":
            error("invalid_method", number, "The method must be 'POST'.", "method")
        if line["url"] != endpoint:
            error("invalid_url", number, "The URL provided for this request does not match the batch endpoint.",
                  "url")  # fmt: skip
        if not isinstance(line["body"], dict):
            error("invalid_body", number, "The body must be a JSON object.", "body")
            continue
        models.add(str(line["body"].get("model")))
        if len(models) > 1:
            error("mismatched_model", number, "A batch input file may hold requests for one model only.",
                  "body.model")  # fmt: skip
            models = {next(iter(models))}
        lines.append(line)
    if len(lines) > BATCH_MAX_LINES:
        error(
            "too_many_requests",
            None,
            f"The input file has {len(lines)} requests; a batch takes at most 50,000.",
        )
    if not lines and not errors:
        error("empty_file", None, "The input file has no requests.")
    return lines, errors


def batch_output_line(custom_id: str, status_code: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """A line of the output file (status 200) or of the error file (any other status): the server's response."""
    return {
        "id": f"batch_req_{uuid.uuid4().hex[:24]}",
        "custom_id": custom_id,
        "response": {"status_code": status_code, "request_id": f"req_{uuid.uuid4().hex}", "body": dict(body)},
        "error": None,
    }


def batch_error_line(custom_id: str, code: str, message: str) -> dict[str, Any]:
    """A line of the error file for a request that never ran (e.g. `batch_expired`)."""
    return {
        "id": f"batch_req_{uuid.uuid4().hex[:24]}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }
