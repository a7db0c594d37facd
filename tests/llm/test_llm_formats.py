"""What goes on the wire per response mode and model family, and how replies are parsed."""

from __future__ import annotations

import pytest
from llm_helpers import FAST, Echo, ask, make_endpoint

from maritime_slm.llm import LLMRequest, run_batch
from maritime_slm.llm.formats import extract_json
from maritime_slm.llm.testserver import Reply, json_reply


def _sent_body(scripted, request=None, **endpoint_fields):
    server = scripted()
    result = run_batch(
        make_endpoint(server, **endpoint_fields), [request or ask("q")], backoff=FAST, progress=False
    )
    return result[0], server.bodies("q")[0]


def test_json_schema_mode_sends_openai_strict_structured_outputs(scripted):
    result, body = _sent_body(scripted, response_format="json_schema")
    assert result.ok
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "Echo"
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False and sorted(schema["required"]) == ["length", "prompt"]


def test_json_object_schema_mode_sends_the_llama_cpp_form(scripted):
    result, body = _sent_body(scripted, response_format="json_object_schema")
    assert result.ok
    assert body["response_format"]["type"] == "json_object"
    assert body["response_format"]["schema"]["properties"].keys() == {"prompt", "length"}


def test_text_mode_sends_no_format_and_finds_json_in_the_text(scripted):
    server = scripted(script={"q": [Reply('Sure! ```json\n{"prompt": "q", "length": 1}\n```')]})
    result = run_batch(
        make_endpoint(server, response_format="text"), [ask("q")], backoff=FAST, progress=False
    )[0]
    assert "response_format" not in server.bodies("q")[0]
    assert result.value == Echo(prompt="q", length=1)


def test_text_without_a_model_returns_the_text(scripted):
    server = scripted(script={"q": [Reply("The answer is 42.")]})
    request = LLMRequest.chat("q", system="Be brief.")
    result = run_batch(
        make_endpoint(server, response_format="text"), [request], backoff=FAST, progress=False
    )[0]
    assert result.ok and result.value == "The answer is 42."
    assert server.bodies("q")[0]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_caller_parser_rejects_and_reasks(scripted):
    def final_number(text: str) -> float:
        if "ANSWER:" not in text:
            raise ValueError("no 'ANSWER:' line")
        return float(text.split("ANSWER:")[1])

    server = scripted(script={"q": [Reply("I think 3"), Reply("ANSWER: 3.5")], "never": [Reply("hmm")] * 3})
    endpoint = make_endpoint(server, response_format="text")
    ok, bad = run_batch(
        endpoint,
        [LLMRequest.chat("q", parser=final_number), LLMRequest.chat("never", parser=final_number)],
        backoff=FAST,
        progress=False,
    )
    assert ok.ok and ok.value == 3.5 and ok.reasks == 1
    assert bad.failure == "schema_error" and "ANSWER" in bad.detail


def test_parser_checks_a_validated_model(scripted):
    def short_prompt(echo: Echo) -> Echo:
        if echo.length > 3:
            raise ValueError("prompt too long")
        return echo

    server = scripted()
    requests = [ask("abc", parser=short_prompt), ask("abcdef", parser=short_prompt)]
    short, long_ = run_batch(make_endpoint(server), requests, backoff=FAST, progress=False, max_reasks=0)
    assert short.ok and long_.failure == "schema_error"


def test_reasoning_models_get_reasoning_effort_and_no_temperature(scripted):
    result, body = _sent_body(scripted, model="o3-mini", reasoning_effort="medium", max_tokens=300)
    assert result.ok
    assert body["reasoning_effort"] == "medium" and body["max_completion_tokens"] == 300
    assert "temperature" not in body and "max_tokens" not in body


def test_chat_models_get_temperature_and_max_tokens(scripted):
    result, body = _sent_body(scripted, ask("q", temperature=0.0, seed=7), model="gpt-4o", temperature=0.7)
    assert body["temperature"] == 0.0 and body["max_tokens"] == 512 and body["seed"] == 7
    assert "reasoning_effort" not in body


def test_usage_and_cost_come_from_the_reply(scripted):
    server = scripted(
        script={"q": [json_reply({"prompt": "q", "length": 1}, prompt_tokens=1000, completion_tokens=100)]}
    )
    endpoint = make_endpoint(server, price_in_per_m=2.5, price_out_per_m=10.0)
    result = run_batch(endpoint, [ask("q")], backoff=FAST, progress=False)[0]
    assert (result.input_tokens, result.output_tokens) == (1000, 100)
    assert result.usd == pytest.approx(1000 * 2.5e-6 + 100 * 10e-6)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('Here you go: {"a": {"b": [1, 2]}} Hope that helps.', {"a": {"b": [1, 2]}}),
    ],
)
def test_extract_json(text, value):
    assert extract_json(text) == value


@pytest.mark.parametrize("text", ["no json here", '{"a": 1', "{'a': 1}"])
def test_extract_json_rejects(text):
    with pytest.raises(ValueError):
        extract_json(text)
