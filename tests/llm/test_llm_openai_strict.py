"""The project's requests against a strict emulator of the OpenAI API (issue 16): the scripted server accepts any
body, the real API refuses unknown fields, sampling parameters on reasoning models and schemas outside strict
structured outputs, and bills cached and reasoning tokens."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any, Literal

import pytest
from llm_helpers import FAST, ask, make_endpoint
from pydantic import AnyUrl, BaseModel, Field

from maritime_slm.config import load_params
from maritime_slm.curate.revise import EditorRevision
from maritime_slm.generate.records import TeacherOutput
from maritime_slm.llm import Ledger, LLMRequest, read_log, run_batch
from maritime_slm.llm.emulator import (
    CACHE_INCREMENT_TOKENS,
    CHARS_PER_TOKEN,
    REASONING_TOKENS_BY_EFFORT,
    PromptCache,
    check_request,
    schema_problem,
)
from maritime_slm.llm.formats import response_format
from maritime_slm.llm.testserver import Reply, json_reply

PAIR = {
    "fact_key": "kinematics.speed:367000001",
    "question": "How fast is vessel 367000001 going?",
    "reasoning": "Its last report gives SOG 12.3 kn.",
    "answer": "It makes 12.3 knots.",
    "final_answer": "12.3 kn",
}
REVISION = {k: v for k, v in PAIR.items() if k != "fact_key"} | {"change": "fixed the speed"}


def gpt_4o(server, **overrides):
    """Shaped like params/paper.yaml's gpt-4o teacher."""
    fields = dict(name="gpt-4o", model="gpt-4o", temperature=0.7, max_tokens=1024, price_in_per_m=2.50)
    fields |= dict(price_out_per_m=10.00, price_cached_in_per_m=1.25)
    return make_endpoint(server, **(fields | overrides))


def o3_mini(server, **overrides):
    """Shaped like params/paper.yaml's o3-mini teacher."""
    fields = dict(
        name="o3-mini", model="o3-mini", reasoning_effort="medium", temperature=None, max_tokens=25000
    )
    fields |= dict(price_in_per_m=1.10, price_out_per_m=4.40, price_cached_in_per_m=0.55)
    return make_endpoint(server, **(fields | overrides))


def post(server, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        server.base_url + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def chat(model: str = "gpt-4o", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "q"}], **fields}


def strict_format(schema: dict[str, Any], strict: bool = True) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "Out", "schema": schema, "strict": strict}}


def obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    base = {"type": "object", "properties": properties, "required": list(properties)}
    return base | {"additionalProperties": False} | extra


def example(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """A value of a strict schema, as constrained decoding would give one."""
    defs = schema.get("$defs", {}) if defs is None else defs
    if "$ref" in schema:
        return example(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return example(schema["anyOf"][0], defs)
    kind = schema.get("type")
    if kind == "object":
        return {key: example(sub, defs) for key, sub in schema.get("properties", {}).items()}
    return {"array": [], "integer": 0, "number": 0, "boolean": False, "null": None}.get(
        kind, "a plausible value"
    )


def as_the_api_answers(body) -> Reply:
    """A reply in the requested structured format (strict structured outputs follow the wire schema), else text."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return json_reply(example(fmt["json_schema"]["schema"]))
    return Reply("Verdict: CORRECT")


def attempts(folder) -> list[dict]:
    return [e for e in read_log(folder / "calls.jsonl") if e["event"] == "attempt"]


# ---------------------------------------------------------------------------------------------- the emulator


REFUSED = {
    "o3-mini max_tokens": (
        chat("o3-mini", max_tokens=100),
        "max_tokens",
        "unsupported_parameter",
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
    ),
    "o3-mini temperature": (
        chat("o3-mini", temperature=0.7),
        "temperature",
        "unsupported_parameter",
        "Unsupported parameter: 'temperature' is not supported with this model.",
    ),
    "o3 temperature": (
        chat("o3", temperature=0.2),
        "temperature",
        "unsupported_value",
        "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default (1) value is "
        "supported.",
    ),
    "o1 top_p": (chat("o1", top_p=0.9), "top_p", "unsupported_parameter", "'top_p' is not supported"),
    "gpt-5 presence_penalty": (
        chat("gpt-5", presence_penalty=0.5),
        "presence_penalty",
        "unsupported_parameter",
        "'presence_penalty' is not supported",
    ),
    "o4-mini frequency_penalty": (
        chat("o4-mini", frequency_penalty=0.5),
        "frequency_penalty",
        "unsupported_parameter",
        "'frequency_penalty' is not supported",
    ),
    "o3-mini logprobs": (chat("o3-mini", logprobs=True), "logprobs", "unsupported_parameter", "'logprobs'"),
    "gpt-4o reasoning_effort": (
        chat("gpt-4o", reasoning_effort="medium"),
        None,
        None,
        "Unrecognized request argument supplied: reasoning_effort",
    ),
    "llama.cpp repeat_penalty": (
        chat("gpt-4o", repeat_penalty=1.1),
        None,
        None,
        "Unrecognized request argument supplied: repeat_penalty",
    ),
    "no additionalProperties": (
        chat(response_format=strict_format({"type": "object", "properties": {}, "required": []})),
        "response_format",
        None,
        "Invalid schema for response_format 'Out': In context=(), 'additionalProperties' is required to be "
        "supplied and to be false.",
    ),
    "nested object without required": (
        chat(response_format=strict_format(obj({"a": obj({"b": {"type": "string"}}, required=[])}))),
        "response_format",
        None,
        "In context=('properties', 'a'), 'required' is required to be supplied and to be an array including "
        "every key in properties. Missing 'b'.",
    ),
    "minLength": (
        chat(response_format=strict_format(obj({"q": {"type": "string", "minLength": 5}}))),
        "response_format",
        None,
        "In context=('properties', 'q'), 'minLength' is not permitted.",
    ),
    "allOf in $defs": (
        chat(response_format=strict_format(obj({}, **{"$defs": {"D": {"allOf": []}}}))),
        "response_format",
        None,
        "In context=('$defs', 'D'), 'allOf' is not permitted.",
    ),
    "format uri": (
        chat(response_format=strict_format(obj({"u": {"type": "string", "format": "uri"}}))),
        "response_format",
        None,
        "'format' 'uri' is not permitted.",
    ),
    "array at the root": (
        chat(response_format=strict_format({"type": "array", "items": {"type": "string"}})),
        "response_format",
        None,
        "schema must be a JSON Schema of 'type: \"object\"'",
    ),
    "json_object without json": (
        chat(response_format={"type": "json_object"}),
        "messages",
        None,
        "'messages' must contain the word 'json' in some form",
    ),
}


@pytest.mark.parametrize(("body", "param", "code", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_strict_emulator_refuses_what_the_api_refuses(scripted, body, param, code, message):
    server = scripted(strict=True)
    status, reply = post(server, body)
    assert status == 400
    assert reply.keys() == {"error"} and reply["error"].keys() == {"message", "type", "param", "code"}
    error = reply["error"]
    assert message in error["message"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert [s.behaviour for s in server.rejected()] == ["Rejected"] and server.rejected()[0].error == error[
        "message"
    ]


ACCEPTED = {
    "gpt-4o max_tokens and sampling": chat(max_tokens=10, temperature=0.7, top_p=0.9, presence_penalty=0.1),
    "gpt-4o max_completion_tokens": chat(max_completion_tokens=10, seed=7),
    "gpt-5-chat is no reasoning model": chat("gpt-5-chat-latest", temperature=0.2),
    "o4-mini default temperature": chat("o4-mini", temperature=1, reasoning_effort="high"),
    "o3-mini as the project asks it": chat(
        "o3-mini", max_completion_tokens=100, reasoning_effort="medium", seed=1
    ),
    "supported keywords, names like keywords": chat(
        response_format=strict_format(
            obj(
                {
                    "format": {"type": "string", "pattern": "^[A-Z]+$"},
                    "minLength": {"type": "integer", "minimum": 0, "maximum": 9},
                    "when": {"type": ["string", "null"], "format": "date-time"},
                    "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}, "minItems": 1, "maxItems": 3},
                },
                **{"$defs": {"Tag": obj({"name": {"type": "string", "enum": ["a", "b"]}})}},
            )
        )
    ),
    "non-strict schema may use anything": chat(
        response_format=strict_format({"type": "object", "properties": {"q": {"minLength": 3}}}, strict=False)
    ),
    "json_object with json in the prompt": {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Answer in JSON."}],
        "response_format": {"type": "json_object"},
    },
}


@pytest.mark.parametrize("body", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_strict_emulator_accepts_what_the_api_accepts(scripted, body):
    server = scripted(strict=True, default=lambda body: Reply("{}"))
    status, reply = post(server, body)
    assert status == 200, reply
    assert server.rejected() == []


def test_a_refused_request_uses_no_script_step(scripted):
    server = scripted(strict=True, script={"q": [Reply("scripted")]})
    assert post(server, chat(repeat_penalty=1.1))[0] == 400
    status, reply = post(server, chat())
    assert status == 200 and reply["choices"][0]["message"]["content"] == "scripted"
    assert server.count("q") == 2


def test_usage_always_has_the_details_the_api_sends(scripted):
    server = scripted(strict=True, default=lambda body: Reply("x" * 40))
    usage = post(server, chat(max_tokens=100))[1]["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0
    assert usage["completion_tokens"] == 10
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_a_chat_model_is_cut_at_max_tokens(scripted):
    server = scripted(strict=True, default=lambda body: Reply("x" * 400))
    reply = post(server, chat(max_tokens=16))[1]
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["choices"][0]["message"]["content"] == "x" * 16 * CHARS_PER_TOKEN
    assert reply["usage"]["completion_tokens"] == 16


def test_prompt_cache_hits_come_in_128_token_steps_from_1024():
    cache = PromptCache()
    block = CACHE_INCREMENT_TOKENS * CHARS_PER_TOKEN
    text = "".join(f"{i:07d} " for i in range(2000))
    assert cache.cached_tokens("gpt-4o", text) == 0  # first seen
    assert cache.cached_tokens("gpt-4o", text) == len(text) // block * CACHE_INCREMENT_TOKENS
    assert cache.cached_tokens("gpt-4o", text[:5000] + "changed" + text[5000:]) == 9 * 128  # 1152
    assert cache.cached_tokens("gpt-4o", text[:3000] + "changed") == 0  # a shared prefix under 1024 tokens
    assert cache.cached_tokens("o3-mini", text) == 0  # per model


def test_repeated_long_prefix_is_billed_at_the_cached_price(scripted, tmp_path):
    system = "Vessel table:\n" + "".join(f"{367000000 + i} 12.3 kn 045 deg\n" for i in range(400))
    server = scripted(strict=True, default=lambda body: json_reply(PAIR))
    endpoint = gpt_4o(server)
    with Ledger(tmp_path) as ledger:
        for question in ("first question", "second question"):
            request = LLMRequest.chat(question, system=system, output=TeacherOutput)
            assert run_batch(endpoint, [request], ledger=ledger, backoff=FAST, progress=False)[0].ok
    first, second = attempts(tmp_path)
    assert first["cached_input_tokens"] == 0
    cached = second["cached_input_tokens"]
    assert cached >= 1024 and cached % 128 == 0 and cached <= second["input_tokens"]
    fresh = second["input_tokens"] - cached
    expected = (fresh * 2.50 + cached * 1.25 + second["output_tokens"] * 10.00) / 1e6
    assert second["usd"] == pytest.approx(expected)


def test_reasoning_tokens_are_billed_as_output(scripted, tmp_path):
    server = scripted(strict=True, default=lambda body: json_reply(PAIR))
    with Ledger(tmp_path) as ledger:
        result = run_batch(
            o3_mini(server), [ask("q", output=TeacherOutput)], ledger=ledger, backoff=FAST, progress=False
        )[0]
    assert result.ok, result.detail
    (attempt,) = attempts(tmp_path)
    reasoning = REASONING_TOKENS_BY_EFFORT["medium"]
    assert attempt["reasoning_tokens"] == reasoning
    assert attempt["output_tokens"] == reasoning + math.ceil(len(json.dumps(PAIR)) / CHARS_PER_TOKEN)
    assert attempt["usd"] == pytest.approx(
        (attempt["input_tokens"] * 1.10 + attempt["output_tokens"] * 4.40) / 1e6
    )


def test_budget_spent_on_reasoning_leaves_an_empty_cut_reply_billed_in_full(scripted, tmp_path):
    server = scripted(strict=True, script={"q": [json_reply(PAIR, reasoning_tokens=5000)]})
    endpoint = o3_mini(server, max_tokens=2000)
    with Ledger(tmp_path) as ledger:
        result = run_batch(
            endpoint, [ask("q", output=TeacherOutput)], ledger=ledger, backoff=FAST, progress=False
        )[0]
    assert result.failure == "truncated" and result.text == "" and result.finish_reason == "length"
    assert server.count("q") == 1 and result.reasks == 0
    (attempt,) = attempts(tmp_path)
    assert attempt["output_tokens"] == attempt["reasoning_tokens"] == 2000
    assert result.usd == pytest.approx((attempt["input_tokens"] * 1.10 + 2000 * 4.40) / 1e6)


# ------------------------------------------------------------------------------------ the project's requests


@pytest.mark.parametrize("endpoint", [gpt_4o, o3_mini], ids=["gpt-4o", "o3-mini"])
@pytest.mark.parametrize("output", [TeacherOutput, EditorRevision])
def test_paper_shaped_structured_requests_are_accepted(scripted, tmp_path, endpoint, output):
    """The teachers' and the editor's pydantic models carry `min_length`: sent as `minLength`, strict mode
    refused them."""
    server = scripted(strict=True, default=as_the_api_answers)
    with Ledger(tmp_path) as ledger:
        result = run_batch(
            endpoint(server), [ask("q", output=output)], ledger=ledger, backoff=FAST, progress=False
        )[0]
    assert [s.error for s in server.rejected()] == []
    assert result.ok and result.calls == 1, result.detail
    assert {a.get("http_status") for a in attempts(tmp_path)} == {None}


def test_a_refused_request_fails_once_and_is_not_retried(scripted, tmp_path):
    server = scripted(strict=True)
    endpoint = gpt_4o(server, reasoning_effort="low", max_retries=3)
    with Ledger(tmp_path) as ledger:
        result = run_batch(endpoint, [ask("q")], ledger=ledger, backoff=FAST, progress=False)[0]
    assert result.failure == "http_error" and server.count("q") == 1
    assert "Unrecognized request argument supplied: reasoning_effort" in result.detail
    (attempt,) = attempts(tmp_path)
    assert (attempt["http_status"], attempt["error"], attempt["usd"]) == (400, "client_error", 0)


def test_min_length_is_still_enforced_on_the_reply(scripted):
    """The wire schema no longer carries `minLength`: the reply's validation still holds the model to it."""
    too_short = json_reply(PAIR | {"question": "Hm?"})
    empty_final = json_reply(PAIR | {"final_answer": ""})
    server = scripted(strict=True, script={"q": [too_short, json_reply(PAIR)], "r": [empty_final]})
    endpoint = gpt_4o(server)
    reasked = run_batch(endpoint, [ask("q", output=TeacherOutput)], backoff=FAST, progress=False)[0]
    refused = run_batch(
        endpoint, [ask("r", output=TeacherOutput)], backoff=FAST, progress=False, max_reasks=0
    )[0]
    assert reasked.ok and reasked.reasks == 1 and reasked.value == TeacherOutput(**PAIR)
    assert "question" in server.bodies("q")[1]["messages"][-1]["content"]
    assert refused.failure == "schema_error" and "final_answer" in refused.detail
    assert server.rejected() == []


class Vessel(BaseModel):
    mmsi: str = Field(pattern=r"^\d{9}$")
    seen_at: datetime


class KitchenSink(BaseModel):
    """Every pydantic constraint a project model might use."""

    name: str = Field(min_length=1, max_length=40)
    format: str = Field(description="a field named like a schema keyword")
    speed_kn: float = Field(ge=0, le=102.2)
    tags: list[str] = Field(min_length=1, max_length=3)
    distinct: set[str]
    chart: AnyUrl
    vessel: Vessel
    heading: int | None
    kind: Literal["cargo", "tanker"]


def test_wire_schema_is_portable_and_llama_cpp_keeps_every_constraint():
    wire = response_format("json_schema", KitchenSink)["json_schema"]["schema"]
    assert schema_problem(wire) is None
    text = json.dumps(wire)
    assert '"minLength"' not in text and '"maxLength"' not in text and '"uniqueItems"' not in text
    assert '"uri"' not in text
    assert wire["properties"]["format"]["type"] == "string"
    kept = ('"pattern"', '"minimum"', '"maximum"', '"minItems"', '"maxItems"', '"date-time"')
    assert all(keyword in text for keyword in kept)
    llama = json.dumps(response_format("json_object_schema", KitchenSink)["schema"])
    assert '"minLength"' in llama and '"uniqueItems"' in llama
    assert check_request(chat(response_format=response_format("json_schema", KitchenSink))) is None


# --------------------------------------------------------------------------------- params/paper.yaml as it is


def test_every_paper_endpoint_request_is_accepted(scripted, tmp_path, monkeypatch):
    """What the generate, curate and evaluate stages send for each endpoint of params/paper.yaml, built by their
    own code and sent through the project's client."""
    from testkit import hand_made_context

    from maritime_slm.config import FactsParams
    from maritime_slm.curate.revise import edit_jobs, llm_editor
    from maritime_slm.evaluate.judge import judge_endpoint, judge_messages
    from maritime_slm.evaluate.predict import answer_endpoint, teacher_max_tokens
    from maritime_slm.facts.contexts import serialize
    from maritime_slm.facts.factsheet import compute_facts
    from maritime_slm.generate.records import QAPair, Verification
    from maritime_slm.generate.run import teacher_requests

    (tmp_path / "AIS_2024_01_01.csv").write_text("x\n")
    params = load_params("paper", [f"ingest.inputs=['{tmp_path}/*.csv']"])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-" + "k" * 32)
    server = scripted(strict=True, default=as_the_api_answers)

    def here(endpoint):
        return endpoint.model_copy(update={"base_url": server.base_url})

    context = hand_made_context()
    context["text"] = serialize(context)
    sheet = compute_facts(context, FactsParams())
    cid = context["context_id"]
    results = []
    for teacher in params.generate.teachers:
        requests, _ = teacher_requests([context], {cid: sheet}, params.generate, teacher.name)
        results += run_batch(here(teacher), requests[:2], backoff=FAST, progress=False)
        answerer = answer_endpoint(here(teacher))
        max_tokens = teacher_max_tokens(teacher, params.evaluate.max_new_tokens)
        question = LLMRequest.chat("How fast is 367000001?", max_tokens=max_tokens, temperature=0.0)
        results += run_batch(answerer, [question], backoff=FAST, progress=False)

    fact = sheet[0]
    pair = QAPair(
        id="p1", context_id=cid, category=fact["category"], teacher="gpt-4o", question="What is it?",
        reasoning="r", answer="a", final_answer="0", facts_ref=[fact["key"]],
        verification=Verification(status="incorrect", error_type="wrong_value"),
    )  # fmt: skip
    jobs = edit_jobs([pair], {cid: sheet}, {cid: context})
    editor = llm_editor(here(params.curate.editor), cache=None, ledger=None, budget=None, progress=False)
    revisions = editor(jobs)
    assert len(jobs) == 1 and isinstance(revisions[0], EditorRevision), revisions

    judge = judge_endpoint(here(params.evaluate.judge))
    grading = LLMRequest(messages=judge_messages("How fast?", "12.3 kn", "12.3 kn", "FINAL: 12.3 kn"))
    results += run_batch(judge, [grading], backoff=FAST, progress=False)

    assert [s.error for s in server.rejected()] == []
    assert all(r.ok for r in results), [r.detail for r in results if not r.ok]
    models = {s.body["model"] for s in server.seen}
    assert models == {"gpt-4o-2024-08-06", "o3-mini-2025-01-31"}
    o3 = [s.body for s in server.seen if s.body["model"] == "o3-mini-2025-01-31"]
    assert all(b["reasoning_effort"] == "medium" and "temperature" not in b for b in o3)
    assert {b["max_completion_tokens"] for b in o3} == {25000}
